// How the weir command ends: exit code 0 on success, 1 when a request failed, 2 for a usage
// error (a bad flag, a missing argument), as commander and most Unix tools count them.

import { type Command, CommanderError } from 'commander';

export const EXIT_OK = 0;
export const EXIT_REQUEST_FAILED = 1;
export const EXIT_USAGE = 2;

/** Thrown once an error has been reported, to end the run with `exitCode`. */
export class CliExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

/** Reports a usage error the way commander reports its own, and ends with exit code 2. */
export function usageError(command: Command, message: string): never {
  command.error(`error: ${message}`, { exitCode: EXIT_USAGE, code: 'weir.usage' });
}

/** The exit code for an error that ended a run; errors not yet reported are written first. */
export function exitCodeFor(error: unknown, writeErr: (text: string) => void): number {
  if (error instanceof CliExit) return error.exitCode;
  if (error instanceof CommanderError) {
    // commander has printed it; help and --version end in exit code 0.
    return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  writeErr(`error: ${error instanceof Error ? error.message : String(error)}\n`);
  return EXIT_REQUEST_FAILED;
}
