// Weir nodes in this process for integration tests: each a real `runServer` with its own
// listeners on free loopback ports, data directory, Raft storage and partition logs, talking
// real gRPC. Stopping a node is a clean shutdown (for kill -9, see the process tests in
// packages/cli/test).

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { proto } from '@weir/protocol';
import {
  type RunningServer,
  type ServerConfig,
  createLogger,
  loadServerConfig,
  runServer,
} from '@weir/server';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Promisifies one unary call of a generated client. */
export function call<T>(
  invoke: (callback: (error: Error | null, response: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) =>
    invoke((error, response) => (error ? reject(error) : resolve(response))),
  );
}

interface NodePorts {
  readonly broker: number;
  readonly controller: number;
  readonly http: number;
}

export class InProcessCluster {
  readonly servers = new Map<number, RunningServer>();
  readonly logs = new Map<number, string[]>();
  private readonly clients: { close(): void }[] = [];

  private constructor(
    readonly dir: string,
    readonly ports: ReadonlyMap<number, NodePorts>,
    private readonly flags: Readonly<Record<string, string>>,
    /** The controller (quorum voter) nodes; every node is a broker unless it is only a controller. */
    private readonly controllers: readonly number[],
    private readonly brokers: readonly number[],
  ) {}

  /**
   * Starts nodes 1..`nodes` and waits until every one is ready. By default each is combined
   * (broker and controller); `controllers` and `brokers` name the nodes of each role.
   */
  static async start(
    nodes: number,
    flags: Readonly<Record<string, string>> = {},
    roles: { controllers?: readonly number[]; brokers?: readonly number[] } = {},
  ): Promise<InProcessCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'weir-in-process-'));
    const ports = new Map<number, NodePorts>();
    for (let id = 1; id <= nodes; id++) {
      ports.set(id, {
        broker: await freePort(),
        controller: await freePort(),
        http: await freePort(),
      });
    }
    const all = [...ports.keys()];
    const cluster = new InProcessCluster(
      dir,
      ports,
      flags,
      roles.controllers ?? all,
      roles.brokers ?? all,
    );
    for (const id of ports.keys()) await cluster.startNode(id);
    await cluster.waitUntilReady();
    return cluster;
  }

  get voters(): string {
    return this.controllers
      .map((id) => `${id}@127.0.0.1:${this.ports.get(id)!.controller}`)
      .join(',');
  }

  config(id: number): ServerConfig {
    const ports = this.ports.get(id)!;
    return loadServerConfig({
      flags: {
        'node.id': String(id),
        'process.roles': [
          ...(this.brokers.includes(id) ? ['broker'] : []),
          ...(this.controllers.includes(id) ? ['controller'] : []),
        ].join(','),
        'cluster.id': 'in-process-test',
        'controller.quorum.voters': this.voters,
        'data.dir': join(this.dir, `node-${id}`),
        'listen.host': '127.0.0.1',
        'broker.port': String(ports.broker),
        'controller.port': String(ports.controller),
        'http.port': String(ports.http),
        'controller.quorum.tick.ms': '20',
        'controller.quorum.election.ticks': '10',
        // When every node stops at once the last ones find no quorum to move leadership to.
        'controlled.shutdown.timeout.ms': '3000',
        ...this.flags,
      },
      env: {},
    });
  }

  async startNode(id: number): Promise<RunningServer> {
    const lines = this.logs.get(id) ?? [];
    this.logs.set(id, lines);
    const logger = createLogger({
      nodeId: id,
      level: 'info',
      format: 'json',
      destination: { write: (line: string) => lines.push(line) },
    });
    const server = await runServer(this.config(id), { logger });
    this.servers.set(id, server);
    return server;
  }

  async stopNode(id: number): Promise<void> {
    const server = this.servers.get(id);
    this.servers.delete(id);
    await server?.stop();
  }

  waitUntilReady(): Promise<true> {
    return waitFor('every node ready', () =>
      [...this.servers.values()].every((server) => server.node.readiness().ready),
    );
  }

  broker(id: number): proto.weir.broker.BrokerServiceClient {
    const client = new proto.weir.broker.BrokerServiceClient(
      `127.0.0.1:${this.ports.get(id)!.broker}`,
      credentials.createInsecure(),
    );
    this.clients.push(client);
    return client;
  }

  admin(id: number): proto.weir.admin.AdminServiceClient {
    const client = new proto.weir.admin.AdminServiceClient(
      `127.0.0.1:${this.ports.get(id)!.broker}`,
      credentials.createInsecure(),
    );
    this.clients.push(client);
    return client;
  }

  /** Creates a topic through node `via` and waits until every running broker hosts it. */
  async createTopic(
    name: string,
    partitions: number,
    replicationFactor: number,
    configs: Record<string, string> = {},
    via = [...this.servers.keys()][0]!,
  ): Promise<void> {
    const response = await call<proto.weir.controller.CreateTopicsResponse>((callback) =>
      this.admin(via).createTopics(
        {
          topics: [
            {
              name,
              partitions,
              replicationFactor,
              configs: Object.entries(configs).map(([key, value]) => ({ name: key, value })),
            },
          ],
          validateOnly: false,
        },
        callback,
      ),
    );
    const error = response.topics[0]?.error;
    if (error !== undefined && error.code !== 0) throw new Error(error.message);
    await waitFor(`every broker to host ${name}`, () =>
      [...this.servers.values()].every((server) => {
        if (server.node.brokerRole === undefined) return true;
        const replicas = server.node.brokerRole.dataPlane.replicas;
        const topic = replicas.metadataImage?.topic(name);
        return (
          topic !== undefined &&
          [...topic.partitions.values()].every(
            (p) =>
              !p.replicas.includes(server.node.options.nodeId) ||
              replicas.partition(p.topicId, p.partitionId) !== undefined,
          )
        );
      }),
    );
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.close();
    // Brokers first: their controlled shutdown needs a controller to answer.
    const isBrokerOnly = (id: number): boolean => !this.controllers.includes(id);
    const ids = [...this.servers.keys()];
    for (const group of [ids.filter(isBrokerOnly), ids.filter((id) => !isBrokerOnly(id))]) {
      await Promise.all(group.map((id) => this.stopNode(id)));
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
