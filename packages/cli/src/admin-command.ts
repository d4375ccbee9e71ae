// What every admin command shares: the --bootstrap, --timeout-ms and --json flags, one admin
// client per run, error reporting, and the flag parsers that check values locally.

import {
  type Admin,
  DEFAULT_REQUEST_TIMEOUT_MS,
  Weir,
  WeirError,
  parseBootstrap,
} from '@weir/client';
import { type Command, InvalidArgumentError } from 'commander';
import { CliExit, EXIT_REQUEST_FAILED, usageError } from './errors.js';
import type { CliIo } from './io.js';
import { errorToJson, writeJson } from './output.js';

export const DEFAULT_BOOTSTRAP = '127.0.0.1:9092';
export const BOOTSTRAP_ENV = 'WEIR_BOOTSTRAP';
const CLIENT_ID = 'weir-cli';
const INT32_MAX = 2 ** 31 - 1;

interface ConnectionFlags {
  readonly bootstrap: string;
  readonly timeoutMs: number;
  readonly json?: boolean;
}

/** Adds --bootstrap, --timeout-ms and --json to an admin command. */
export function addConnectionOptions(command: Command, io: CliIo): Command {
  const fromEnv = io.env[BOOTSTRAP_ENV];
  return command
    .option(
      '--bootstrap <host:port,...>',
      `brokers to contact, tried in order (env ${BOOTSTRAP_ENV})`,
      fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_BOOTSTRAP,
    )
    .option(
      '--timeout-ms <ms>',
      'how long a request may take, retries included',
      positiveInteger('--timeout-ms'),
      DEFAULT_REQUEST_TIMEOUT_MS,
    )
    .option('--json', 'print one JSON document on stdout instead of tables');
}

/** Whether the command's output is JSON. */
export function jsonOutput(command: Command): boolean {
  return command.opts<ConnectionFlags>().json === true;
}

/**
 * Runs `work` with an admin client for the command's --bootstrap, and closes it. A request error
 * is printed as `error: NAME: message` on stderr (and as `{"error": ...}` on stdout with --json)
 * and ends the run with exit code 1.
 */
export async function withAdmin(
  io: CliIo,
  command: Command,
  work: (admin: Admin) => Promise<void>,
): Promise<void> {
  const flags = command.opts<ConnectionFlags>();
  const brokers = bootstrapOf(io, command, flags.bootstrap);
  const admin = new Weir({
    bootstrap: brokers,
    clientId: CLIENT_ID,
    requestTimeoutMs: flags.timeoutMs,
  }).admin();
  try {
    await work(admin);
  } catch (error) {
    if (!(error instanceof WeirError)) throw error;
    reportRequestError(io, error, flags.json === true);
    throw new CliExit(EXIT_REQUEST_FAILED);
  } finally {
    await admin.close();
  }
}

/** The --bootstrap list; a bad one is a usage error naming where it came from (flag or env). */
export function bootstrapOf(io: CliIo, command: Command, bootstrap: string): string[] {
  try {
    return parseBootstrap(bootstrap);
  } catch (error) {
    if (!(error instanceof WeirError)) throw error;
    const fromEnv =
      command.getOptionValueSource('bootstrap') === 'default' &&
      io.env[BOOTSTRAP_ENV] === bootstrap;
    const source = fromEnv ? `${BOOTSTRAP_ENV}=${bootstrap}` : `--bootstrap ${bootstrap}`;
    return usageError(command, `${source}: ${errorToJson(error).message}`);
  }
}

function reportRequestError(io: CliIo, error: WeirError, json: boolean): void {
  io.stderr.write(`error: ${error.message}\n`);
  if (!json) return;
  const results = (error as { results?: unknown }).results;
  writeJson(io, {
    error: { ...errorToJson(error), ...(results !== undefined && { topics: results }) },
  });
}

/** A parser for a flag that takes a whole number from 1 to 2^31-1. */
export function positiveInteger(flag: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || parsed < 1 || parsed > INT32_MAX) {
      throw new InvalidArgumentError(
        `${flag} must be a positive integer (at most ${INT32_MAX}), e.g. ${flag} 3`,
      );
    }
    return parsed;
  };
}

/** Collects repeated `--config key=value` flags into one record. */
export function collectConfig(
  value: string,
  previous: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const equals = value.indexOf('=');
  const key = equals < 0 ? '' : value.slice(0, equals).trim();
  const configValue = equals < 0 ? '' : value.slice(equals + 1);
  if (key === '' || configValue === '') {
    throw new InvalidArgumentError(
      '--config must be key=value, e.g. --config retention.ms=86400000 (to remove a config, use --delete-config key on topics alter)',
    );
  }
  if (previous !== undefined && Object.hasOwn(previous, key)) {
    throw new InvalidArgumentError(`--config ${key} is given twice; give each key once`);
  }
  return { ...previous, [key]: configValue };
}

/** Collects a repeatable flag's values. */
export function collect(value: string, previous: readonly string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
