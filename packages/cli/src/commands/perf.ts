// `weir perf produce` and `weir perf consume`: load generators in the manner of Kafka's
// kafka-producer-perf-test and kafka-consumer-perf-test. The producer sends --records records of
// --record-size random bytes (generated once) with the SDK producer, one send() per record, at
// most MAX_PENDING_RECORDS unacknowledged, optionally capped at --throughput records/s; each
// record's latency runs from its send() to its acknowledgement and goes into a fixed-size
// histogram. The consumer reads --records records from the earliest offsets of every partition.
// Both print a progress line on stderr every second and a summary at the end (one JSON
// document with --json), and stop at --max-duration-ms whatever happened.
//
// MB are 2^20 bytes, as in Kafka's tools; bytes are value bytes (and key bytes when consuming).

import { performance } from 'node:perf_hooks';
import { type Acks, ErrorCode, type Producer, WeirError } from '@weir/client';
import { type Command, InvalidArgumentError } from 'commander';
import {
  type ClientFlags,
  acksArg,
  acksName,
  addBootstrapOption,
  asError,
  clientFor,
  every,
  failRequest,
  nonNegativeInt,
  positiveInt,
  sleep,
  topicPartitions,
} from '../client-command.js';
import { CliExit, EXIT_REQUEST_FAILED } from '../errors.js';
import type { CliIo } from '../io.js';
import { toJson } from '../output.js';
import { LatencyHistogram, type LatencySummary } from '../perf/latency-histogram.js';

interface PerfFlags extends ClientFlags {
  readonly topic: string;
  readonly records: number;
  readonly maxDurationMs: number;
}

interface PerfProduceFlags extends PerfFlags {
  readonly recordSize: number;
  readonly acks: Acks;
  readonly throughput: number;
  readonly batchBytes?: number;
  readonly lingerMs?: number;
}

/** Records sent and not yet acknowledged; the producer waits while this many are. */
const MAX_PENDING_RECORDS = 10_000;
const DEFAULT_MAX_DURATION_MS = 600_000;
const MB = 1024 * 1024;
const POLL_WAIT_MS = 500;

export function registerPerfCommand(program: Command, io: CliIo): void {
  const perf = program
    .command('perf')
    .description('measure produce and consume throughput and latency against a cluster')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  $ weir perf produce --topic bench --records 100000 --record-size 100',
        '  $ weir perf consume --topic bench --records 100000',
        '',
      ].join('\n'),
    );
  registerPerfProduce(perf, io);
  registerPerfConsume(perf, io);
}

/** --topic and --records, first in the help. */
function addPerfTarget(command: Command): Command {
  return command
    .requiredOption('--topic <name>', 'the topic (it must exist)')
    .requiredOption('--records <n>', 'how many records', positiveInt('--records'));
}

/** --max-duration-ms, --json and --bootstrap, after the command's own options. */
function addPerfCommon(command: Command, io: CliIo): Command {
  command
    .option(
      '--max-duration-ms <ms>',
      'stop after this long even if not every record is done (exit code 1)',
      positiveInt('--max-duration-ms'),
      DEFAULT_MAX_DURATION_MS,
    )
    .option('--json', 'print the results as one JSON document');
  return addBootstrapOption(command, io);
}

function registerPerfProduce(perf: Command, io: CliIo): void {
  const command = addPerfTarget(
    perf
      .command('produce')
      .description(
        'send records as fast as the cluster takes them (or at --throughput), and print records/s, MB/s and send-to-acknowledgement latency',
      ),
  )
    .requiredOption(
      '--record-size <bytes>',
      'the size of each record value',
      positiveInt('--record-size'),
    )
    .option(
      '--acks <all|1|0>',
      'all: every in-sync replica (idempotent); 1: the leader; 0: no answer',
      acksArg,
      'all' as Acks,
    )
    .option('--throughput <n>', 'at most this many records/s; -1 for no limit', throughputArg, -1)
    .option(
      '--batch-bytes <bytes>',
      'the producer batch size (default 16384)',
      positiveInt('--batch-bytes'),
    )
    .option(
      '--linger-ms <ms>',
      'how long a batch waits for more records (default 5)',
      nonNegativeInt('--linger-ms'),
    )
    .addHelpText(
      'after',
      [
        '',
        'Latency runs from send() to the acknowledgement (acks 0: to the request being sent).',
        '',
        'Examples:',
        '  $ weir perf produce --topic bench --records 500000 --record-size 100',
        '  $ weir perf produce --topic bench --records 100000 --record-size 1024 --acks 1 --throughput 20000 --json',
        '',
      ].join('\n'),
    );
  addPerfCommon(command, io).action(async (flags: PerfProduceFlags) => {
    await perfProduce(io, command, flags);
  });
}

function registerPerfConsume(perf: Command, io: CliIo): void {
  const command = addPerfTarget(
    perf
      .command('consume')
      .description(
        'read records from the earliest offset of every partition of the topic, and print records/s and MB/s',
      ),
  ).addHelpText(
    'after',
    ['', 'Example:', '  $ weir perf consume --topic bench --records 500000', ''].join('\n'),
  );
  addPerfCommon(command, io).action(async (flags: PerfFlags) => {
    await perfConsume(io, command, flags);
  });
}

function throughputArg(value: string): number {
  const parsed = Number(value);
  if (value === '-1') return -1;
  if (!/^\d+(\.\d+)?$/.test(value) || !(parsed > 0)) {
    throw new InvalidArgumentError(
      `--throughput must be a number of records/s above 0, or -1 for no limit, got '${value}'`,
    );
  }
  return parsed;
}

/** `size` random capital letters, as Kafka's producer perf test makes its payload. */
function randomPayload(size: number): Buffer {
  const payload = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) payload[i] = 65 + Math.floor(Math.random() * 26);
  return payload;
}

/** Records, bytes and latencies since the last progress line. */
class Window {
  records = 0;
  latencySumMs = 0;
  maxLatencyMs = 0;
  startedMs = performance.now();

  add(latencyMs: number): void {
    this.records++;
    this.latencySumMs += latencyMs;
    if (latencyMs > this.maxLatencyMs) this.maxLatencyMs = latencyMs;
  }

  reset(now: number): void {
    this.records = 0;
    this.latencySumMs = 0;
    this.maxLatencyMs = 0;
    this.startedMs = now;
  }
}

export interface PerfProduceResult {
  readonly topic: string;
  readonly records: number;
  readonly requested: number;
  readonly recordSize: number;
  readonly acks: string;
  readonly throughputLimit: number;
  readonly elapsedMs: number;
  readonly recordsPerSec: number;
  readonly mbPerSec: number;
  readonly latencyMs: Omit<LatencySummary, 'count'>;
  readonly errors: number;
}

async function perfProduce(io: CliIo, command: Command, flags: PerfProduceFlags): Promise<void> {
  const json = flags.json === true;
  const weir = clientFor(io, command);
  const payload = randomPayload(flags.recordSize);
  let producer: Producer | undefined;
  try {
    await topicPartitions(weir, flags.topic, undefined);
    producer = weir.producer({
      acks: flags.acks,
      ...(flags.batchBytes !== undefined && { batchBytes: flags.batchBytes }),
      ...(flags.lingerMs !== undefined && { lingerMs: flags.lingerMs }),
    });
    await producer.connect();
  } catch (error) {
    await producer?.close().catch(() => undefined);
    failRequest(io, error, json);
  }

  const histogram = new LatencyHistogram();
  const window = new Window();
  let acknowledged = 0;
  let errors = 0;
  let failure: Error | undefined;
  let pending = 0;
  let drained: (() => void) | undefined;
  const settle = (): void => {
    pending--;
    drained?.();
  };
  const waitForDrain = async (): Promise<void> => {
    await new Promise<void>((resolve) => (drained = resolve));
    drained = undefined;
  };

  const startMs = performance.now();
  const deadlineMs = startMs + flags.maxDurationMs;
  const stopProgress = every(flags.progressIntervalMs, () => {
    const now = performance.now();
    const seconds = Math.max(1e-3, (now - window.startedMs) / 1000);
    const rate = window.records / seconds;
    io.stderr.write(
      `${window.records} records sent, ${rate.toFixed(1)} records/s (${((rate * flags.recordSize) / MB).toFixed(2)} MB/s), ${(window.records === 0 ? 0 : window.latencySumMs / window.records).toFixed(1)} ms avg latency, ${window.maxLatencyMs.toFixed(1)} ms max latency.\n`,
    );
    window.reset(now);
  });
  let timedOut = false;
  try {
    for (let i = 0; i < flags.records && failure === undefined; i++) {
      while (pending >= MAX_PENDING_RECORDS) await waitForDrain();
      if (flags.throughput > 0) {
        const aheadMs = startMs + (i * 1000) / flags.throughput - performance.now();
        if (aheadMs >= 1) await sleep(aheadMs);
      }
      const sentMs = performance.now();
      if (sentMs > deadlineMs) {
        timedOut = true;
        break;
      }
      pending++;
      producer.send({ topic: flags.topic, messages: [{ value: payload }] }).then(
        () => {
          const latencyMs = performance.now() - sentMs;
          histogram.record(latencyMs);
          window.add(latencyMs);
          acknowledged++;
          settle();
        },
        (error: unknown) => {
          errors++;
          failure ??= asError(error);
          settle();
        },
      );
    }
    await producer.flush();
    while (pending > 0) await waitForDrain();
  } finally {
    stopProgress();
  }
  const elapsedMs = performance.now() - startMs;
  await producer.close();

  const latency = histogram.summary();
  const recordsPerSec = acknowledged / Math.max(1e-3, elapsedMs / 1000);
  const result: PerfProduceResult = {
    topic: flags.topic,
    records: acknowledged,
    requested: flags.records,
    recordSize: flags.recordSize,
    acks: acksName(flags.acks),
    throughputLimit: flags.throughput,
    elapsedMs: round(elapsedMs, 1),
    recordsPerSec: round(recordsPerSec, 1),
    mbPerSec: round((recordsPerSec * flags.recordSize) / MB, 3),
    latencyMs: {
      avgMs: round(latency.avgMs, 3),
      minMs: latency.minMs,
      p50Ms: latency.p50Ms,
      p95Ms: latency.p95Ms,
      p99Ms: latency.p99Ms,
      p999Ms: latency.p999Ms,
      maxMs: latency.maxMs,
    },
    errors,
  };
  io.stdout.write(json ? toJson(result) : formatProduceResult(result));
  if (failure !== undefined) {
    if (!(failure instanceof WeirError)) throw failure;
    io.stderr.write(
      `error: ${failure.message} (${errors} record${errors === 1 ? '' : 's'} failed; sending stopped)\n`,
    );
    throw new CliExit(EXIT_REQUEST_FAILED);
  }
  if (timedOut) deadlineError(io, acknowledged, flags);
}

function formatProduceResult(r: PerfProduceResult): string {
  const l = r.latencyMs;
  return `${r.records} records sent, ${r.recordsPerSec.toFixed(1)} records/s (${r.mbPerSec.toFixed(2)} MB/s), ${l.avgMs.toFixed(2)} ms avg latency, ${l.maxMs.toFixed(2)} ms max latency, ${ms(l.p50Ms)} ms 50th, ${ms(l.p95Ms)} ms 95th, ${ms(l.p99Ms)} ms 99th, ${ms(l.p999Ms)} ms 99.9th.\n`;
}

export interface PerfConsumeResult {
  readonly topic: string;
  readonly records: number;
  readonly requested: number;
  readonly bytes: number;
  readonly mb: number;
  readonly elapsedMs: number;
  readonly firstRecordMs: number | null;
  readonly recordsPerSec: number;
  readonly mbPerSec: number;
}

async function perfConsume(io: CliIo, command: Command, flags: PerfFlags): Promise<void> {
  const json = flags.json === true;
  const weir = clientFor(io, command);
  let partitions: number[];
  try {
    partitions = await topicPartitions(weir, flags.topic, undefined);
  } catch (error) {
    failRequest(io, error, json);
  }
  const consumer = weir.consumer({ autoOffsetReset: 'earliest' });
  let records = 0;
  let bytes = 0;
  let firstRecordMs: number | undefined;
  let windowRecords = 0;
  let windowBytes = 0;
  let windowStartMs = performance.now();
  const startMs = performance.now();
  const deadlineMs = startMs + flags.maxDurationMs;
  const stopProgress = every(flags.progressIntervalMs, () => {
    const now = performance.now();
    const seconds = Math.max(1e-3, (now - windowStartMs) / 1000);
    io.stderr.write(
      `${records} records consumed, ${(windowRecords / seconds).toFixed(1)} records/s (${(windowBytes / MB / seconds).toFixed(2)} MB/s).\n`,
    );
    windowRecords = 0;
    windowBytes = 0;
    windowStartMs = now;
  });
  try {
    consumer.assign(partitions.map((partition) => ({ topic: flags.topic, partition })));
    while (records < flags.records) {
      const remainingMs = deadlineMs - performance.now();
      if (remainingMs <= 0) break;
      const polled = await consumer.poll({
        maxWaitMs: Math.max(0, Math.min(POLL_WAIT_MS, Math.floor(remainingMs))),
      });
      const taken =
        polled.length <= flags.records - records
          ? polled
          : polled.slice(0, flags.records - records);
      if (taken.length === 0) continue;
      firstRecordMs ??= performance.now() - startMs;
      for (const record of taken) {
        const size = (record.key?.length ?? 0) + (record.value?.length ?? 0);
        bytes += size;
        windowBytes += size;
      }
      records += taken.length;
      windowRecords += taken.length;
    }
  } catch (error) {
    failRequest(io, error, json);
  } finally {
    stopProgress();
    await consumer.close();
  }
  const elapsedMs = performance.now() - startMs;
  const seconds = Math.max(1e-3, elapsedMs / 1000);
  const result: PerfConsumeResult = {
    topic: flags.topic,
    records,
    requested: flags.records,
    bytes,
    mb: round(bytes / MB, 3),
    elapsedMs: round(elapsedMs, 1),
    firstRecordMs: firstRecordMs === undefined ? null : round(firstRecordMs, 1),
    recordsPerSec: round(records / seconds, 1),
    mbPerSec: round(bytes / MB / seconds, 3),
  };
  io.stdout.write(
    json
      ? toJson(result)
      : `${result.records} records consumed, ${result.mb.toFixed(2)} MB in ${(result.elapsedMs / 1000).toFixed(2)} s, ${result.recordsPerSec.toFixed(1)} records/s (${result.mbPerSec.toFixed(2)} MB/s), first record after ${result.firstRecordMs ?? '-'} ms.\n`,
  );
  if (records < flags.records) deadlineError(io, records, flags);
}

function deadlineError(io: CliIo, done: number, flags: PerfFlags): never {
  io.stderr.write(
    `error: ${new WeirError(ErrorCode.REQUEST_TIMED_OUT, `${done} of ${flags.records} records within --max-duration-ms ${flags.maxDurationMs}`).message}\n`,
  );
  throw new CliExit(EXIT_REQUEST_FAILED);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** A latency in ms for the summary line: whole ms from 10 up, else two decimals. */
function ms(value: number): string {
  return value >= 10 ? value.toFixed(0) : value.toFixed(2);
}
