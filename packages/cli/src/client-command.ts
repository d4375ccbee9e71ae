// What the data commands (`weir produce`, `weir consume`, `weir perf`) share: the --bootstrap
// and --json flags, one Weir client per run, the topic's partitions, error reporting, flag
// parsers, and the periodic progress line on stderr.

import { type Acks, ErrorCode, Weir, WeirError, errorName, isWeirError } from '@weir/client';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP, bootstrapOf } from './admin-command.js';
import { CliExit, EXIT_REQUEST_FAILED } from './errors.js';
import type { CliIo } from './io.js';
import { errorToJson } from './output.js';

const CLIENT_ID = 'weir-cli';
const INT32_MAX = 2 ** 31 - 1;
const INT64_MAX = (1n << 63n) - 1n;
/** How often progress lines are printed. */
export const PROGRESS_INTERVAL_MS = 1_000;

export interface ClientFlags {
  readonly bootstrap: string;
  readonly json?: boolean;
  readonly progressIntervalMs: number;
}

/** Adds --bootstrap and the hidden --progress-interval-ms (for tests) to a data command. */
export function addBootstrapOption(command: Command, io: CliIo): Command {
  const fromEnv = io.env[BOOTSTRAP_ENV];
  return command
    .option(
      '--bootstrap <host:port,...>',
      `brokers to contact, tried in order (env ${BOOTSTRAP_ENV})`,
      fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_BOOTSTRAP,
    )
    .addOption(
      new Option('--progress-interval-ms <ms>', 'how often the progress line is printed')
        .argParser(positiveInt('--progress-interval-ms'))
        .default(PROGRESS_INTERVAL_MS)
        .hideHelp(),
    );
}

/** A Weir client for the command's --bootstrap (a bad list is a usage error, exit code 2). */
export function clientFor(io: CliIo, command: Command, requestTimeoutMs?: number): Weir {
  const flags = command.opts<ClientFlags>();
  return new Weir({
    bootstrap: bootstrapOf(io, command, flags.bootstrap),
    clientId: CLIENT_ID,
    ...(requestTimeoutMs !== undefined && { requestTimeoutMs }),
  });
}

/**
 * The topic's partitions: every one, or only `only` after checking that it exists. Fails with
 * UNKNOWN_TOPIC_OR_PARTITION for a topic or partition the cluster does not have.
 */
export async function topicPartitions(
  weir: Weir,
  topic: string,
  only: number | undefined,
): Promise<number[]> {
  const admin = weir.admin();
  try {
    const [described] = await admin.describeTopics([topic]);
    const count = described?.partitionCount ?? 0;
    if (only === undefined) return Array.from({ length: count }, (_, partition) => partition);
    if (only >= count) {
      throw new WeirError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        `topic '${topic}' has ${count} partition${count === 1 ? '' : 's'} (0-${count - 1}); there is no partition ${only}`,
      );
    }
    return [only];
  } finally {
    await admin.close();
  }
}

/**
 * Reports a request error as `error: NAME: message` on stderr (and, with --json, as
 * `{"error": {...}, ...extra}` on stdout) and ends the run with exit code 1. Other errors are
 * rethrown.
 */
export function failRequest(
  io: CliIo,
  error: unknown,
  json: boolean,
  extra: Record<string, unknown> = {},
): never {
  if (!isWeirError(error)) throw error;
  io.stderr.write(`error: ${error.message}\n`);
  if (json) io.stdout.write(`${compactJson({ error: errorToJson(error), ...extra })}\n`);
  throw new CliExit(EXIT_REQUEST_FAILED);
}

/** A WeirError's `NAME: message`, for lines that mention an error without failing. */
export function errorLine(error: WeirError): string {
  const { message } = errorToJson(error);
  return `${errorName(error.code)}: ${message}`;
}

/** One line of JSON: bigints as decimal strings. */
export function compactJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    typeof item === 'bigint' ? item.toString() : item,
  );
}

/** Calls `tick` every `intervalMs` until the returned function is called; never keeps the
 * process alive. */
export function every(intervalMs: number, tick: () => void): () => void {
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A parser for a whole number from 1 to 2^31-1. */
export function positiveInt(flag: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || parsed < 1 || parsed > INT32_MAX) {
      throw new InvalidArgumentError(
        `${flag} must be a whole number from 1 to ${INT32_MAX}, e.g. ${flag} 1000`,
      );
    }
    return parsed;
  };
}

/** A parser for a whole number from 0 to 2^31-1 (a partition, a linger time). */
export function nonNegativeInt(flag: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || parsed > INT32_MAX) {
      throw new InvalidArgumentError(
        `${flag} must be a whole number from 0 to ${INT32_MAX}, e.g. ${flag} 0`,
      );
    }
    return parsed;
  };
}

/** A parser for an offset: a whole number from 0 to 2^63-1, as a bigint. */
export function offsetArg(flag: string): (value: string) => bigint {
  return (value) => {
    if (!/^\d+$/.test(value) || BigInt(value) > INT64_MAX) {
      throw new InvalidArgumentError(`${flag} must be a whole number from 0, e.g. ${flag} 42`);
    }
    return BigInt(value);
  };
}

/** `all` (or -1), `1` or `0`, as the producer takes them. */
export function acksArg(value: string): Acks {
  if (value === 'all' || value === '-1') return 'all';
  if (value === '1') return 1;
  if (value === '0') return 0;
  throw new InvalidArgumentError(
    `--acks must be all (every in-sync replica), 1 (the leader) or 0 (no answer), got '${value}'`,
  );
}

/** How acks are shown: `all`, `1` or `0`. */
export function acksName(acks: Acks): string {
  return acks === 'all' || acks === -1 ? 'all' : String(acks);
}

/** What was thrown, as an Error (promise rejections are `unknown`). */
export function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}
