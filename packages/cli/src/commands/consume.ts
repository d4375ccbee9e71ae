// `weir consume TOPIC`: reads every partition of the topic (or one) by manual assignment, from
// the latest offset, the earliest (--from-beginning) or a given one (--offset), and prints each
// record's value as a line, or each record as one line of JSON. It stops after --max-messages,
// at the --timeout-ms deadline, or on Ctrl-C (SIGINT/SIGTERM), closing the consumer first.
//
// --json: key, value and header values are strings when their bytes are valid UTF-8, null when
// absent, and {"base64": "..."} otherwise; offsets and timestamps are decimal strings.

import { isUtf8 } from 'node:buffer';
import { type ConsumerRecord, ErrorCode, WeirError } from '@weir/client';
import { type Command, Option } from 'commander';
import {
  type ClientFlags,
  addBootstrapOption,
  clientFor,
  compactJson,
  failRequest,
  nonNegativeInt,
  offsetArg,
  positiveInt,
} from '../client-command.js';
import { topicPartitions } from '../client-command.js';
import type { CliIo } from '../io.js';

interface ConsumeFlags extends ClientFlags {
  readonly fromBeginning?: boolean;
  readonly offset?: bigint;
  readonly partition?: number;
  readonly maxMessages?: number;
  readonly printKey?: boolean;
  readonly printOffset?: boolean;
  readonly printPartition?: boolean;
  readonly timeoutMs?: number;
}

/** The longest one poll() waits, so that the deadline and Ctrl-C are noticed promptly. */
const POLL_WAIT_MS = 500;

export function registerConsumeCommand(program: Command, io: CliIo): void {
  const command = program
    .command('consume')
    .description(
      "print a topic's records: each value as a line (or each record as a JSON line), until --max-messages or Ctrl-C",
    )
    .argument('<topic>', 'the topic')
    .addOption(
      new Option('--from-beginning', 'start at the earliest offset of each partition').conflicts(
        'offset',
      ),
    )
    .addOption(
      new Option(
        '--offset <n>',
        'start at this offset in each partition read (at the latest offset when outside the partition)',
      ).argParser(offsetArg('--offset')),
    )
    .option(
      '--partition <n>',
      'read only this partition (default: all)',
      nonNegativeInt('--partition'),
    )
    .option('--max-messages <n>', 'stop after this many records', positiveInt('--max-messages'))
    .option('--print-partition', 'start each line with the partition and a tab')
    .option('--print-offset', 'start each line with the offset and a tab (after the partition)')
    .option('--print-key', 'put the key and a tab before the value ("null" for no key)')
    .option(
      '--timeout-ms <ms>',
      'stop after this long; with --max-messages, not reaching it by then is an error (exit 1)',
      positiveInt('--timeout-ms'),
    )
    .option(
      '--json',
      'print each record as one line of JSON: topic, partition, offset, timestamp, key, value, headers',
    )
    .addHelpText(
      'after',
      [
        '',
        'Without --from-beginning or --offset, only records produced from now on are printed.',
        'With --json, key, value and header values are strings when they are valid UTF-8, and',
        '{"base64": "..."} when they are not; offsets and timestamps are decimal strings.',
        '',
        'Examples:',
        '  $ weir consume orders --from-beginning --max-messages 10 --print-key',
        '  $ weir consume orders --partition 2 --offset 1000 --print-offset',
        '  $ weir consume orders --from-beginning --json --max-messages 100 --timeout-ms 5000',
        '',
      ].join('\n'),
    );
  addBootstrapOption(command, io).action(async (topic: string, flags: ConsumeFlags) => {
    await runConsume(io, command, topic, flags);
  });
}

async function runConsume(
  io: CliIo,
  command: Command,
  topic: string,
  flags: ConsumeFlags,
): Promise<void> {
  const json = flags.json === true;
  const weir = clientFor(io, command);
  const deadline = flags.timeoutMs === undefined ? undefined : Date.now() + flags.timeoutMs;
  const max = flags.maxMessages;
  let consumed = 0;
  let partitions: number[];
  try {
    partitions = await topicPartitions(weir, topic, flags.partition);
  } catch (error) {
    failRequest(io, error, json);
  }
  const consumer = weir.consumer({
    autoOffsetReset: flags.fromBeginning === true ? 'earliest' : 'latest',
  });
  let stopped = false;
  const stop = (): void => {
    stopped = true;
    // A poll() under way returns [] at once.
    void consumer.close();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    consumer.assign(partitions.map((partition) => ({ topic, partition })));
    if (flags.offset !== undefined) {
      for (const partition of partitions) consumer.seek({ topic, partition, offset: flags.offset });
    }
    while (!stopped && (max === undefined || consumed < max)) {
      const remainingMs = deadline === undefined ? POLL_WAIT_MS : deadline - Date.now();
      if (remainingMs <= 0) break;
      const records = await consumer.poll({ maxWaitMs: Math.min(POLL_WAIT_MS, remainingMs) });
      const taken = max === undefined ? records : records.slice(0, max - consumed);
      if (taken.length === 0) continue;
      consumed += taken.length;
      io.stdout.write(taken.map((record) => formatRecord(record, flags, json)).join(''));
    }
    if (!stopped && max !== undefined && consumed < max) {
      throw new WeirError(
        ErrorCode.REQUEST_TIMED_OUT,
        `read ${consumed} of ${max} messages within --timeout-ms ${flags.timeoutMs}`,
      );
    }
  } catch (error) {
    failRequest(io, error, json);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await consumer.close();
    io.stderr.write(`Consumed ${consumed} message${consumed === 1 ? '' : 's'}.\n`);
  }
}

function formatRecord(record: ConsumerRecord, flags: ConsumeFlags, json: boolean): string {
  if (json) {
    return `${compactJson({
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      timestamp: record.timestamp,
      key: jsonBytes(record.key),
      value: jsonBytes(record.value),
      headers: Object.fromEntries(
        Object.entries(record.headers).map(([key, value]) => [key, jsonBytes(value)]),
      ),
    })}\n`;
  }
  let line = '';
  if (flags.printPartition === true) line += `${record.partition}\t`;
  if (flags.printOffset === true) line += `${record.offset}\t`;
  if (flags.printKey === true) line += `${textBytes(record.key)}\t`;
  return `${line}${textBytes(record.value)}\n`;
}

/** Bytes in JSON: the text when valid UTF-8, else {"base64": "..."}; null stays null. */
export function jsonBytes(bytes: Buffer | null): string | { base64: string } | null {
  if (bytes === null) return null;
  return isUtf8(bytes) ? bytes.toString('utf8') : { base64: bytes.toString('base64') };
}

/** Bytes as text, as Kafka's console consumer prints them: "null" for none. */
function textBytes(bytes: Buffer | null): string {
  return bytes === null ? 'null' : bytes.toString('utf8');
}
