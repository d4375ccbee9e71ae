// The weir command line: `weir cluster`, `weir topics`, `weir server`, `weir dev`, `weir produce`,
// `weir consume`, `weir perf`. Built per run around injected streams and environment so tests
// drive it in-process.

import { Command } from 'commander';
import { registerClusterCommand } from './commands/cluster.js';
import { registerConsumeCommand } from './commands/consume.js';
import { registerDevCommand } from './commands/dev.js';
import { registerPerfCommand } from './commands/perf.js';
import { registerProduceCommand } from './commands/produce.js';
import { registerServerCommand } from './commands/server.js';
import { registerTopicsCommand } from './commands/topics.js';
import { exitCodeFor } from './errors.js';
import type { CliIo } from './io.js';

export type { CliIo } from './io.js';

export function buildProgram(io: CliIo): Command {
  const program = new Command('weir')
    .description('Weir: a Raft-replicated, Kafka-style log broker')
    // Set before any subcommand is added: subcommands copy these settings when created.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .showHelpAfterError('(run the command with --help for usage)')
    .addHelpText(
      'after',
      '\nExamples:\n  $ weir cluster status --bootstrap 127.0.0.1:9092\n  $ weir topics create orders --partitions 6 --replication-factor 3\n',
    );
  registerServerCommand(program, io);
  registerDevCommand(program, io);
  registerClusterCommand(program, io);
  registerTopicsCommand(program, io);
  registerProduceCommand(program, io);
  registerConsumeCommand(program, io);
  registerPerfCommand(program, io);
  return program;
}

/**
 * Runs one command line (without the `node` and script arguments) and resolves with its exit
 * code: 0 on success, 1 when a request failed, 2 for a usage error.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    return exitCodeFor(error, (text) => io.stderr.write(text));
  }
}
