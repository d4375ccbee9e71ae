// The node wiring around metadata snapshots, in one process with real listeners, Raft storage
// and gRPC: the active controller snapshots its image every few entries (so the Raft log is
// truncated), a broker-only node that joins later starts from a snapshot fetched over
// FetchSnapshot, and a controller restarted on a truncated log rebuilds the same image.

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { proto } from '@weir/protocol';
import { afterEach, beforeEach, expect, it } from 'vitest';
import {
  type RunningServer,
  type ServerConfig,
  createLogger,
  loadServerConfig,
  runServer,
} from '../src/index.js';

const SNAPSHOT_INTERVAL_RECORDS = 5;

let dir: string;
const running = new Map<number, RunningServer>();
const lines = new Map<number, string[]>();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-node-'));
});
afterEach(async () => {
  await Promise.all([...running.values()].map((server) => server.stop()));
  running.clear();
  lines.clear();
  await rm(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function config(nodeId: number, roles: string, voters: string, ports: number[]): ServerConfig {
  return loadServerConfig({
    flags: {
      'node.id': String(nodeId),
      'process.roles': roles,
      'cluster.id': 'snapshot-test',
      'controller.quorum.voters': voters,
      'data.dir': join(dir, `node-${nodeId}`),
      'listen.host': '127.0.0.1',
      'broker.port': String(ports[0]),
      'controller.port': String(ports[1]),
      'http.port': String(ports[2]),
      'controller.quorum.tick.ms': '20',
      'controller.quorum.election.ticks': '10',
      'metadata.snapshot.interval.records': String(SNAPSHOT_INTERVAL_RECORDS),
    },
    env: {},
  });
}

async function start(server: ServerConfig): Promise<RunningServer> {
  const log: string[] = [];
  lines.set(server.nodeId, log);
  const logger = createLogger({
    nodeId: server.nodeId,
    level: 'info',
    format: 'json',
    destination: { write: (line: string) => log.push(line) },
  });
  const started = await runServer(server, { logger });
  running.set(server.nodeId, started);
  return started;
}

function admin(port: number): {
  createTopic(name: string): Promise<void>;
  topics(): Promise<string[]>;
  close(): void;
} {
  const client = new proto.weir.admin.AdminServiceClient(
    `127.0.0.1:${port}`,
    credentials.createInsecure(),
  );
  return {
    createTopic: (name) =>
      new Promise((resolve, reject) =>
        client.createTopics(
          {
            topics: [{ name, partitions: 2, replicationFactor: 3, configs: [] }],
            validateOnly: false,
          },
          (error, response) =>
            error
              ? reject(error)
              : response.topics[0]?.error?.code === 0
                ? resolve()
                : reject(new Error(response.topics[0]?.error?.message)),
        ),
      ),
    topics: () =>
      new Promise((resolve, reject) =>
        client.describeTopics({ names: [], includePartitions: false }, (error, response) =>
          error ? reject(error) : resolve(response.topics.map((topic) => topic.name)),
        ),
      ),
    close: () => client.close(),
  };
}

it('snapshots the metadata image; late brokers and restarted controllers start from it', async () => {
  const ports = await Promise.all(
    [1, 2, 3, 4].map(async () => [await freePort(), await freePort(), await freePort()]),
  );
  const voters = [1, 2, 3].map((id) => `${id}@127.0.0.1:${ports[id - 1]![1]}`).join(',');
  for (const id of [1, 2, 3]) await start(config(id, 'broker,controller', voters, ports[id - 1]!));
  await waitFor('three ready nodes', () =>
    [...running.values()].every((server) => server.node.readiness().ready),
  );

  const client = admin(ports[0]![0]!);
  const names = Array.from({ length: 12 }, (_, i) => `topic-${i}`);
  try {
    for (const name of names) await client.createTopic(name);
  } finally {
    client.close();
  }

  // Every voter's Raft log was truncated behind a snapshot (12 topics > 5 entries).
  for (const server of running.values()) {
    const raft = server.node.controllerRole!.raft;
    await waitFor(`node ${raft.id} to snapshot`, () => raft.firstIndex > SNAPSHOT_INTERVAL_RECORDS);
  }

  // A broker-only node joining now cannot replay the log from the start: it gets a snapshot.
  const late = await start(config(4, 'broker', voters, ports[3]!));
  const listener = late.node.brokerRole!.listener;
  await waitFor('the late broker to have every topic', () =>
    names.every((name) => listener.image.topic(name) !== undefined),
  );
  expect(lines.get(4)!.some((line) => line.includes('loaded a metadata snapshot'))).toBe(true);
  await waitFor('the late broker to be unfenced', () => late.node.readiness().ready);

  // A controller restarted on its truncated log rebuilds exactly the others' image.
  const leaderId = running.get(1)!.node.controllerRole!.raft.leaderId;
  const restartId = [1, 2, 3].find((id) => id !== leaderId)!;
  await running.get(restartId)!.stop();
  running.delete(restartId);
  const restarted = await start(
    config(restartId, 'broker,controller', voters, ports[restartId - 1]!),
  );
  const leader = running.get(leaderId)!.node.controllerRole!.controller;
  const rebuilt = restarted.node.controllerRole!.controller;
  await waitFor(
    'the restarted controller to catch up',
    () => rebuilt.image.offset === leader.image.offset,
  );
  expect(Buffer.from(rebuilt.snapshotData())).toEqual(Buffer.from(leader.snapshotData()));

  const viaLate = admin(ports[3]![0]!);
  try {
    expect((await viaLate.topics()).sort()).toEqual([...names].sort());
  } finally {
    viaLate.close();
  }
}, 60_000);
