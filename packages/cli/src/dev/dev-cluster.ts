// `weir dev`: a local cluster of combined-mode nodes (broker + controller; tests may ask for
// dedicated controller nodes instead), one child process each, for a developer in one
// terminal. Node i (1-based) listens on base+10·(i−1) (broker),
// +1 (controller) and +2 (HTTP). The cluster's layout goes to <data-dir>/cluster.json; the
// cluster is "ready" once every node's /readyz answers 200. A node that dies is reported and
// left dead (a dev cluster that silently restarts nodes would hide the bugs it is for).

import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { ErrorCode, WeirError } from '@weir/protocol';

export interface DevClusterOptions {
  readonly nodes: number;
  readonly basePort: number;
  readonly dataDir: string;
  /** Host the nodes bind and advertise. Default 127.0.0.1. */
  readonly host?: string;
  /** The `weir` command line that runs a node: argv before `server`. */
  readonly weirCommand: readonly string[];
  /**
   * Nodes that run only the controller; they alone are the quorum's voters, and the others run
   * only the broker. Empty or absent (what `weir dev` does): every node runs both.
   */
  readonly controllers?: readonly number[];
  /** Extra `weir server` flags for every node (e.g. a shorter session timeout in tests). */
  readonly serverArgs?: readonly string[];
  /** The nodes' environment; this process's by default. */
  readonly env?: NodeJS.ProcessEnv;
  /** Where each node's log lines go, prefixed. */
  readonly onLog: (nodeId: number, line: string) => void;
  /** A node exited while the cluster was not stopping. */
  readonly onNodeExit: (nodeId: number, code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface DevNodeLayout {
  readonly id: number;
  readonly pid: number | undefined;
  readonly brokerPort: number;
  readonly controllerPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
}

/** The contents of <data-dir>/cluster.json. */
export interface ClusterFile {
  readonly clusterId: string;
  readonly bootstrap: string;
  readonly nodes: readonly DevNodeLayout[];
}

export const MAX_DEV_NODES = 9;
const PORT_STRIDE = 10;
const READY_POLL_MS = 100;
const STOP_GRACE_MS = 40_000;
const DEV_CONTROLLED_SHUTDOWN_TIMEOUT_MS = 5_000;

export class DevCluster {
  private readonly children = new Map<number, ChildProcess>();
  private readonly exits = new Map<number, Promise<void>>();
  private stopping = false;
  private clusterIdValue = '';
  private voters = '';

  constructor(private readonly options: DevClusterOptions) {
    const { nodes, basePort } = options;
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_DEV_NODES) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `--nodes must be an integer from 1 to ${MAX_DEV_NODES}, got ${nodes}`,
      );
    }
    const lastPort = basePort + PORT_STRIDE * (nodes - 1) + 2;
    if (!Number.isInteger(basePort) || basePort < 1 || lastPort > 65535) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `--base-port ${basePort} with ${nodes} nodes needs ports up to ${lastPort}; pick a base port from 1 to ${65535 - PORT_STRIDE * (nodes - 1) - 2}`,
      );
    }
  }

  get host(): string {
    return this.options.host ?? '127.0.0.1';
  }

  get clusterId(): string {
    return this.clusterIdValue;
  }

  /** The layout of every node, by the rule of `weir dev`'s ports. */
  layout(): DevNodeLayout[] {
    const { nodes, basePort, dataDir } = this.options;
    return Array.from({ length: nodes }, (_, index) => {
      const id = index + 1;
      const brokerPort = basePort + PORT_STRIDE * index;
      return {
        id,
        pid: this.children.get(id)?.pid,
        brokerPort,
        controllerPort: brokerPort + 1,
        httpPort: brokerPort + 2,
        dataDir: resolve(dataDir, `node-${id}`),
      };
    });
  }

  /** Whether a node runs only the controller (see DevClusterOptions.controllers). */
  isControllerOnly(nodeId: number): boolean {
    return this.options.controllers?.includes(nodeId) ?? false;
  }

  private processRoles(nodeId: number): string {
    if ((this.options.controllers?.length ?? 0) === 0) return 'broker,controller';
    return this.isControllerOnly(nodeId) ? 'controller' : 'broker';
  }

  bootstrap(): string {
    return this.layout()
      .filter((node) => !this.isControllerOnly(node.id))
      .map((node) => `${this.host}:${node.brokerPort}`)
      .join(',');
  }

  /** Starts every node and writes cluster.json; resolves once the processes are spawned. */
  async start(): Promise<void> {
    // Detached nodes would outlive a `weir dev` that crashes; take them down with it.
    process.once('exit', () => {
      for (const child of this.children.values()) child.kill('SIGKILL');
    });
    await mkdir(this.options.dataDir, { recursive: true });
    this.clusterIdValue = await this.loadClusterId();
    const layout = this.layout();
    // A port held by something else (another cluster, say) would make a node die, or worse,
    // make the readiness check reach someone else's node.
    await checkPortsFree(this.host, layout);
    this.voters = layout
      .filter((node) => this.processRoles(node.id).includes('controller'))
      .map((node) => `${node.id}@${this.host}:${node.controllerPort}`)
      .join(',');
    for (const node of layout) this.spawnNode(node);
    await this.writeClusterFile();
  }

  /** The process of a running node. */
  process(nodeId: number): ChildProcess | undefined {
    return this.children.get(nodeId);
  }

  /** Starts a node that exited again, on its ports and data (tests use it after a kill). */
  async restartNode(nodeId: number): Promise<void> {
    const node = this.layout().find(({ id }) => id === nodeId);
    if (node === undefined || this.children.has(nodeId)) {
      throw new WeirError(ErrorCode.INVALID_REQUEST, `node ${nodeId} is running or unknown`);
    }
    await this.exits.get(nodeId);
    this.spawnNode(node);
    await this.writeClusterFile();
  }

  /** Resolves once every node answers /readyz with 200; rejects if a node exits first. */
  async waitUntilReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(this.layout().map((node) => node.id));
    while (pending.size > 0) {
      for (const node of this.layout()) {
        if (!pending.has(node.id)) continue;
        if (!this.children.has(node.id)) {
          throw new WeirError(
            ErrorCode.BROKER_NOT_AVAILABLE,
            `node ${node.id} exited before the cluster was ready; see its log above`,
          );
        }
        if (await isReady(this.host, node.httpPort)) pending.delete(node.id);
      }
      if (pending.size === 0) break;
      if (Date.now() > deadline) {
        throw new WeirError(
          ErrorCode.REQUEST_TIMED_OUT,
          `${pending.size === 1 ? 'node' : 'nodes'} ${[...pending].join(', ')} not ready within ${timeoutMs} ms`,
        );
      }
      await new Promise((done) => setTimeout(done, READY_POLL_MS));
    }
  }

  /** Stops every node with SIGTERM (controlled shutdown), SIGKILL after a grace period. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const child of this.children.values()) child.kill('SIGTERM');
    const all = Promise.all(this.exits.values());
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((done) => {
      timer = setTimeout(() => done('timeout'), STOP_GRACE_MS);
    });
    if ((await Promise.race([all, grace])) === 'timeout') {
      for (const child of this.children.values()) child.kill('SIGKILL');
      await all;
    }
    clearTimeout(timer);
  }

  private spawnNode(node: DevNodeLayout): void {
    const args = [
      ...this.options.weirCommand,
      'server',
      '--node-id',
      String(node.id),
      '--cluster-id',
      this.clusterIdValue,
      '--process-roles',
      this.processRoles(node.id),
      '--controller-quorum-voters',
      this.voters,
      '--data-dir',
      node.dataDir,
      '--listen-host',
      this.host,
      '--advertised-host',
      this.host,
      '--broker-port',
      String(node.brokerPort),
      '--controller-port',
      String(node.controllerPort),
      '--http-port',
      String(node.httpPort),
      '--log-format',
      'pretty',
      // When every node stops at once, the last ones may find no quorum left to move their
      // leaderships; a dev cluster should not wait the production default of 30 s for that.
      '--controlled-shutdown-timeout-ms',
      String(DEV_CONTROLLED_SHUTDOWN_TIMEOUT_MS),
      ...(this.options.serverArgs ?? []),
    ];
    const [command, ...rest] = args;
    // Each node in its own process group: a Ctrl-C in the terminal reaches `weir dev` alone,
    // which then stops the nodes one orderly SIGTERM each.
    const child = spawn(command!, rest, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: this.options.env ?? process.env,
    });
    this.children.set(node.id, child);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => this.options.onLog(node.id, line));
    }
    this.exits.set(
      node.id,
      new Promise((done) => {
        child.on('exit', (code, signal) => {
          this.children.delete(node.id);
          if (!this.stopping) this.options.onNodeExit(node.id, code, signal);
          done();
        });
      }),
    );
  }

  /** A data dir used before keeps its cluster id; its node count must match. */
  private async loadClusterId(): Promise<string> {
    let previous: ClusterFile;
    try {
      previous = JSON.parse(await readFile(this.clusterFilePath(), 'utf8')) as ClusterFile;
    } catch {
      return `weir-dev-${randomUUID()}`;
    }
    if (previous.nodes.length !== this.options.nodes) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `${this.options.dataDir} holds a ${previous.nodes.length}-node cluster; run with --nodes ${previous.nodes.length}, or use another --data-dir`,
      );
    }
    return previous.clusterId;
  }

  private clusterFilePath(): string {
    return join(this.options.dataDir, 'cluster.json');
  }

  private async writeClusterFile(): Promise<void> {
    const file: ClusterFile = {
      clusterId: this.clusterIdValue,
      bootstrap: this.bootstrap(),
      nodes: this.layout(),
    };
    const path = this.clusterFilePath();
    await writeFile(`${path}.tmp`, `${JSON.stringify(file, null, 2)}\n`);
    await rename(`${path}.tmp`, path);
  }
}

async function checkPortsFree(host: string, layout: readonly DevNodeLayout[]): Promise<void> {
  for (const node of layout) {
    const listeners = {
      broker: node.brokerPort,
      controller: node.controllerPort,
      HTTP: node.httpPort,
    };
    for (const [listener, port] of Object.entries(listeners)) {
      if (!(await portFree(host, port))) {
        throw new WeirError(
          ErrorCode.INVALID_CONFIG,
          `port ${port} (node ${node.id}'s ${listener} listener) is in use; stop what holds it or pick another --base-port`,
        );
      }
    }
  }
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

async function isReady(host: string, port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://${host}:${port}/readyz`, {
      signal: AbortSignal.timeout(1_000),
    });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}
