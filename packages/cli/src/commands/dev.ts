// `weir dev`: a local cluster of combined-mode nodes in one terminal (src/dev/dev-cluster.ts).
// Prints `cluster ready: bootstrap=...` once every node is ready, prefixes each node's log
// lines, reports a node that dies, and stops every node cleanly on Ctrl-C.

import { ErrorCode, WeirError } from '@weir/protocol';
import { InvalidArgumentError, type Command } from 'commander';
import { DevCluster, MAX_DEV_NODES } from '../dev/dev-cluster.js';
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
    .option(
      '--nodes <n>',
      `how many nodes (1-${MAX_DEV_NODES})`,
      integer('--nodes', 1, MAX_DEV_NODES),
      3,
    )
    .option(
      '--base-port <port>',
      'node i listens on base+10(i-1) (broker), +1 (controller) and +2 (HTTP)',
      integer('--base-port', 1, 65_535),
      9092,
    )
    .option('--data-dir <dir>', 'where the nodes keep their data and cluster.json', '.weir')
    .option(
      '--ready-timeout-ms <ms>',
      'give up if the cluster is not ready by then',
      integer('--ready-timeout-ms', 1, Number.MAX_SAFE_INTEGER),
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
    // Operands after `--` are `weir server` flags for every node.
    .allowExcessArguments(true)
    .action(async (flags: DevFlags, command: Command) => {
      await runDev(flags, command.args, io);
    });
}

async function runDev(flags: DevFlags, serverArgs: readonly string[], io: CliIo): Promise<void> {
  const width = String(flags.nodes).length;
  let running = flags.nodes;
  let allExited: (() => void) | undefined;
  const cluster = new DevCluster({
    nodes: flags.nodes,
    basePort: flags.basePort,
    dataDir: flags.dataDir,
    // The same program that runs this command runs each node (node, its flags, the script).
    weirCommand: [process.execPath, ...process.execArgv, process.argv[1]!],
    serverArgs,
    onLog: (nodeId, line) => io.stdout.write(`[node-${String(nodeId).padStart(width)}] ${line}\n`),
    onNodeExit: (nodeId, code, signal) => {
      io.stderr.write(
        `weir dev: node ${nodeId} exited (${signal ?? `code ${code}`}); it is not restarted. Ctrl-C stops the others.\n`,
      );
      if (--running === 0) allExited?.();
    },
  });
  const stopped = new Promise<void>((resolve, reject) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      io.stderr.write('weir dev: stopping every node (controlled shutdown)\n');
      cluster.stop().then(resolve, resolve);
    };
    allExited = () =>
      reject(
        new WeirError(ErrorCode.BROKER_NOT_AVAILABLE, 'every node has exited; see the logs above'),
      );
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  // Until the cluster is ready, a failure is reported by waitUntilReady instead.
  stopped.catch(() => undefined);
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

function integer(flag: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!/^\d+$/.test(value) || number < min || number > max) {
      throw new InvalidArgumentError(`${flag} must be a whole number from ${min} to ${max}`);
    }
    return number;
  };
}
