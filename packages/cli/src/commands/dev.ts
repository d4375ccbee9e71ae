// `weir dev`: a local cluster of combined-mode nodes in one terminal (src/dev/dev-cluster.ts).
// Prints `cluster ready: bootstrap=...` once every node is ready, prefixes each node's log
// lines, reports a node that dies, and stops every node cleanly on Ctrl-C.

import { InvalidArgumentError, type Command } from 'commander';
import { DevCluster } from '../dev/dev-cluster.js';
import type { CliIo } from '../io.js';

interface DevFlags {
  readonly nodes: number;
  readonly basePort: number;
  readonly dataDir: string;
  readonly readyTimeoutMs: number;
}

const DEFAULT_READY_TIMEOUT_MS = 60_000;

export function registerDevCommand(program: Command, io: CliIo): void {
  program
    .command('dev')
    .description('start a local cluster of combined broker+controller nodes as child processes')
    .option('--nodes <n>', 'how many nodes (1-9)', integer('--nodes'), 3)
    .option(
      '--base-port <port>',
      'node i listens on base+10(i-1) (broker), +1 (controller) and +2 (HTTP)',
      integer('--base-port'),
      9092,
    )
    .option('--data-dir <dir>', 'where the nodes keep their data and cluster.json', '.weir')
    .option(
      '--ready-timeout-ms <ms>',
      'give up if the cluster is not ready by then',
      integer('--ready-timeout-ms'),
      DEFAULT_READY_TIMEOUT_MS,
    )
    .addHelpText(
      'after',
      [
        '',
        'Extra `weir server` flags for every node go after `--`.',
        '',
        'Examples:',
        '  $ weir dev',
        '  $ weir dev --nodes 5 --base-port 19092 --data-dir /tmp/weir',
        '  $ weir dev -- --broker-session-timeout-ms 3000',
        '',
      ].join('\n'),
    )
    .action(async (flags: DevFlags, command: Command) => {
      await runDev(flags, command.args, io);
    });
}

async function runDev(flags: DevFlags, serverArgs: readonly string[], io: CliIo): Promise<void> {
  const width = String(flags.nodes).length;
  const cluster = new DevCluster({
    nodes: flags.nodes,
    basePort: flags.basePort,
    dataDir: flags.dataDir,
    // The same program that runs this command runs each node (node, its flags, the script).
    weirCommand: [process.execPath, ...process.execArgv, process.argv[1]!],
    serverArgs,
    onLog: (nodeId, line) => io.stdout.write(`[node-${String(nodeId).padStart(width)}] ${line}\n`),
    onNodeExit: (nodeId, code, signal) =>
      io.stderr.write(
        `weir dev: node ${nodeId} exited (${signal ?? `code ${code}`}); it is not restarted. Ctrl-C stops the others.\n`,
      ),
  });
  const stopped = new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      io.stderr.write('weir dev: stopping every node (controlled shutdown)\n');
      cluster.stop().then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await cluster.start();
  try {
    await cluster.waitUntilReady(flags.readyTimeoutMs);
    io.stdout.write(`cluster ready: bootstrap=${cluster.bootstrap()}\n`);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  await stopped;
  io.stderr.write('weir dev: all nodes stopped\n');
}

function integer(flag: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${flag} must be a whole number`);
    return Number(value);
  };
}
