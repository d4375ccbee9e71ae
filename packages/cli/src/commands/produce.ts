// `weir produce TOPIC`: every line of standard input is one record (with --key-separator, the
// part before the first separator is its key), sent by the SDK producer (acks all and
// idempotent unless --acks says otherwise). At the end of the input it flushes, closes, and
// prints how many records went to each partition and at which offsets. Sends are pipelined: up
// to MAX_PENDING_RECORDS records are in flight, so a large file streams through in bounded
// memory, and a line typed at a terminal is sent at once.

import { createInterface } from 'node:readline';
import {
  type Acks,
  DEFAULT_REQUEST_TIMEOUT_MS,
  ErrorCode,
  type Producer,
  type RecordMetadata,
  WeirError,
} from '@weir/client';
import type { Command } from 'commander';
import {
  type ClientFlags,
  acksArg,
  acksName,
  addBootstrapOption,
  asError,
  clientFor,
  compactJson,
  every,
  failRequest,
  nonNegativeInt,
  positiveInt,
  topicPartitions,
} from '../client-command.js';
import { usageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { formatTable } from '../output.js';

interface ProduceFlags extends ClientFlags {
  readonly keySeparator?: string;
  readonly acks: Acks;
  readonly partition?: number;
  readonly timeoutMs: number;
}

/** Records sent but not yet acknowledged; reading stops while this many are. */
const MAX_PENDING_RECORDS = 10_000;
/** Progress lines start once this many records have been read from a pipe or file. */
export const PROGRESS_AFTER_RECORDS = 5_000;

interface PartitionSummary {
  readonly partition: number;
  records: number;
  firstOffset: bigint | null;
  lastOffset: bigint | null;
}

export function registerProduceCommand(program: Command, io: CliIo): void {
  const command = program
    .command('produce')
    .description(
      'send each line of standard input as a record; at the end of the input, print where the records went',
    )
    .argument('<topic>', 'the topic')
    .option(
      '--key-separator <sep>',
      'each line is KEY<sep>VALUE: the text before the first <sep> is the key (a line without it is an error)',
    )
    .option(
      '--acks <all|1|0>',
      'all: every in-sync replica has the record (idempotent); 1: the leader has it; 0: no answer',
      acksArg,
      'all' as Acks,
    )
    .option(
      '--partition <n>',
      'send every record to this partition (default: by key, else batches rotate over the partitions)',
      nonNegativeInt('--partition'),
    )
    .option(
      '--timeout-ms <ms>',
      'how long one request may take, and how long to wait for the topic',
      positiveInt('--timeout-ms'),
      DEFAULT_REQUEST_TIMEOUT_MS,
    )
    .option('--json', 'print the summary as one JSON document')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  $ printf "hello\\nworld\\n" | weir produce greetings',
        '  $ weir produce orders --key-separator : < orders.txt',
        '  $ seq 100000 | weir produce numbers --acks 1 --json',
        '',
      ].join('\n'),
    );
  addBootstrapOption(command, io).action(async (topic: string, flags: ProduceFlags) => {
    if (flags.keySeparator === '') usageError(command, '--key-separator must not be empty');
    await runProduce(io, command, topic, flags);
  });
}

async function runProduce(
  io: CliIo,
  command: Command,
  topic: string,
  flags: ProduceFlags,
): Promise<void> {
  const json = flags.json === true;
  const weir = clientFor(io, command, flags.timeoutMs);
  const stdin = io.stdin ?? process.stdin;
  const partitions = new Map<number, PartitionSummary>();
  const startedMs = Date.now();
  let read = 0;
  let acknowledged = 0;
  const summary = (): Record<string, unknown> => ({
    topic,
    acks: flags.acks === 'all' ? 'all' : flags.acks,
    records: acknowledged,
    durationMs: Date.now() - startedMs,
    partitions: [...partitions.values()].sort((a, b) => a.partition - b.partition),
  });
  let producer: Producer | undefined;
  let stopProgress = (): void => undefined;
  try {
    await topicPartitions(weir, topic, flags.partition);
    producer = weir.producer({ acks: flags.acks });
    await producer.connect();
    let failure: Error | undefined;
    let pending = 0;
    let drained: (() => void) | undefined;
    const settle = (): void => {
      pending--;
      drained?.();
    };
    const onAck = ([written]: RecordMetadata[]): void => {
      acknowledged++;
      if (written !== undefined) noteWritten(partitions, written);
      settle();
    };
    const onError = (error: unknown): void => {
      failure ??= asError(error);
      settle();
    };
    stopProgress = progress(io, flags, stdin.isTTY === true, () => ({
      read,
      acknowledged,
    }));
    const lines = createInterface({ input: stdin, crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        if (failure !== undefined) break;
        const message = toMessage(line, flags, read + 1);
        read++;
        while (pending >= MAX_PENDING_RECORDS) {
          await new Promise<void>((resolve) => (drained = resolve));
          drained = undefined;
        }
        pending++;
        producer.send({ topic, messages: [message] }).then(onAck, onError);
      }
    } catch (error) {
      failure ??= asError(error);
    } finally {
      lines.close();
    }
    await producer.flush();
    while (pending > 0) {
      await new Promise<void>((resolve) => (drained = resolve));
      drained = undefined;
    }
    if (failure !== undefined) throw failure;
  } catch (error) {
    await producer?.close().catch(() => undefined);
    failRequest(io, error, json, { sent: summary() });
  } finally {
    stopProgress();
  }
  await producer.close();
  const result = summary();
  io.stdout.write(json ? `${compactJson(result)}\n` : formatSummary(topic, flags.acks, result));
}

function noteWritten(partitions: Map<number, PartitionSummary>, written: RecordMetadata): void {
  let summary = partitions.get(written.partition);
  if (summary === undefined) {
    summary = { partition: written.partition, records: 0, firstOffset: null, lastOffset: null };
    partitions.set(written.partition, summary);
  }
  summary.records++;
  if (written.offset < 0n) return; // acks 0: the broker does not say
  if (summary.firstOffset === null || written.offset < summary.firstOffset) {
    summary.firstOffset = written.offset;
  }
  if (summary.lastOffset === null || written.offset > summary.lastOffset) {
    summary.lastOffset = written.offset;
  }
}

/** A line as a message; with --key-separator the text before the first separator is the key. */
function toMessage(
  line: string,
  flags: ProduceFlags,
  lineNumber: number,
): { key?: string; value: string; partition?: number } {
  const partition = flags.partition === undefined ? {} : { partition: flags.partition };
  const separator = flags.keySeparator;
  if (separator === undefined) return { value: line, ...partition };
  const at = line.indexOf(separator);
  if (at < 0) {
    throw new WeirError(
      ErrorCode.INVALID_RECORD,
      `line ${lineNumber} has no key separator ${JSON.stringify(separator)}; nothing after it was sent`,
    );
  }
  return { key: line.slice(0, at), value: line.slice(at + separator.length), ...partition };
}

function formatSummary(topic: string, acks: Acks, result: Record<string, unknown>): string {
  const records = result.records as number;
  const seconds = ((result.durationMs as number) / 1000).toFixed(2);
  const head = `Sent ${records} record${records === 1 ? '' : 's'} to ${topic} in ${seconds} s (acks ${acksName(acks)}${acks === 0 ? ': offsets are not known' : ''}).\n`;
  const partitions = result.partitions as PartitionSummary[];
  if (partitions.length === 0) return head;
  return `${head}${formatTable(
    ['PARTITION', 'RECORDS', 'FIRST OFFSET', 'LAST OFFSET'],
    partitions.map((p) => [
      String(p.partition),
      String(p.records),
      p.firstOffset === null ? '-' : String(p.firstOffset),
      p.lastOffset === null ? '-' : String(p.lastOffset),
    ]),
  )}`;
}

/**
 * Every progress interval, once PROGRESS_AFTER_RECORDS records were read from a pipe or file
 * (never from a terminal): `weir produce: N records read, M acknowledged, R records/s`.
 */
function progress(
  io: CliIo,
  flags: ProduceFlags,
  terminal: boolean,
  counts: () => { read: number; acknowledged: number },
): () => void {
  if (terminal) return () => undefined;
  let lastMs = Date.now();
  let lastAcknowledged = 0;
  return every(flags.progressIntervalMs, () => {
    const { read, acknowledged } = counts();
    const now = Date.now();
    const rate = ((acknowledged - lastAcknowledged) * 1000) / Math.max(1, now - lastMs);
    lastMs = now;
    lastAcknowledged = acknowledged;
    if (read < PROGRESS_AFTER_RECORDS) return;
    io.stderr.write(
      `weir produce: ${read} records read, ${acknowledged} acknowledged, ${Math.round(rate)} records/s\n`,
    );
  });
}
