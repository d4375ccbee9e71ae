// Three RaftNodes in one process, each with its own gRPC server on loopback, real `level`
// storage and the gRPC transport: elections, commits, a leader going away, and a restart from
// disk. (The multi-process kill -9 test is raft-process.test.ts.)

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { ErrorCode, proto } from '@weir/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Entry, NodeId, Snapshot } from '../src/core/types.js';
import { RaftNode } from '../src/node/raft-node.js';
import { RaftStorage } from '../src/storage/raft-storage.js';
import { GrpcRaftTransport, RAFT_GRPC_SERVER_OPTIONS } from '../src/transport/grpc-transport.js';

const CLUSTER_ID = 'raft-grpc-test';
const voters: NodeId[] = [1, 2, 3];

class Register {
  values: string[] = [];
  apply(entries: readonly Entry[]): void {
    for (const e of entries)
      if (e.type === 'normal') this.values.push(new TextDecoder().decode(e.data));
  }
  restore(snapshot: Snapshot): void {
    this.values = JSON.parse(new TextDecoder().decode(snapshot.data)) as string[];
  }
}

interface Member {
  id: NodeId;
  port: number;
  server: Server;
  storage: RaftStorage;
  transport: GrpcRaftTransport;
  node: RaftNode;
  register: Register;
}

let dir: string;
const members = new Map<NodeId, Member>();
const ports = new Map<NodeId, number>();

async function bind(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
}

/** Binds every server first (port 0), so each transport knows its peers' real ports. */
async function startAll(): Promise<void> {
  const servers = new Map<NodeId, Server>();
  for (const id of voters) {
    const server = new Server(RAFT_GRPC_SERVER_OPTIONS);
    servers.set(id, server);
    ports.set(id, await bind(server, ports.get(id) ?? 0));
  }
  for (const id of voters) await startMember(id, servers.get(id));
}

async function startMember(id: NodeId, server?: Server): Promise<Member> {
  if (server === undefined) {
    server = new Server(RAFT_GRPC_SERVER_OPTIONS);
    await bind(server, ports.get(id)!);
  }
  const peers = new Map(voters.map((v) => [v, `127.0.0.1:${ports.get(v)}`]));
  const transport = new GrpcRaftTransport({
    nodeId: id,
    clusterId: CLUSTER_ID,
    peers,
    reconnectBackoffMs: 20,
  });
  const implementation: proto.weir.raft.RaftServiceServer = {
    ...transport.serverHandlers(),
    fetchLog: (_call, callback) => callback({ code: status.UNIMPLEMENTED }, null),
    fetchSnapshot: (call) => call.destroy(new Error('not in this test')),
  };
  server.addService(proto.weir.raft.RaftServiceService, implementation);
  const storage = await RaftStorage.open(join(dir, `node-${id}`), {
    nodeId: id,
    clusterId: CLUSTER_ID,
  });
  const register = new Register();
  const node = await RaftNode.start({
    id,
    voters,
    storage,
    transport,
    stateMachine: register,
    tickMs: 20,
    proposeTimeoutMs: 5000,
  });
  const member = { id, port: ports.get(id)!, server, storage, transport, node, register };
  members.set(id, member);
  return member;
}

async function stopMember(id: NodeId): Promise<void> {
  const member = members.get(id);
  if (member === undefined) return;
  members.delete(id);
  await member.node.stop();
  member.transport.close();
  member.server.forceShutdown();
  await member.storage.close();
}

async function waitFor<T>(
  what: string,
  check: () => T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const leader = () => [...members.values()].find((m) => m.node.isLeader);
const text = (s: string) => new TextEncoder().encode(s);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-raft-grpc-'));
  ports.clear();
});

afterEach(async () => {
  for (const id of [...members.keys()]) await stopMember(id);
  await rm(dir, { recursive: true, force: true });
});

describe('Raft over gRPC with level storage', () => {
  it('elects a leader and commits on every node', async () => {
    await startAll();
    const first = await waitFor('a leader', leader);
    for (const v of ['a', 'b', 'c']) await first.node.propose(text(v));
    await waitFor('every node to apply', () =>
      [...members.values()].every((m) => m.register.values.join() === 'a,b,c'),
    );
  });

  it('survives the leader going away, and the old leader catches up from disk when it returns', async () => {
    await startAll();
    const first = await waitFor('a leader', leader);
    await first.node.propose(text('before'));
    await stopMember(first.id);
    const second = await waitFor('a new leader', leader);
    expect(second.id).not.toBe(first.id);
    await second.node.propose(text('after'));

    const back = await startMember(first.id);
    await waitFor(
      'the old leader to catch up',
      () => back.register.values.join() === 'before,after',
    );
    expect(back.node.isLeader).toBe(false);
  });

  it('refuses messages from another cluster', async () => {
    await startAll();
    await waitFor('a leader', leader);
    const stranger = new GrpcRaftTransport({
      nodeId: 9,
      clusterId: 'another-cluster',
      peers: new Map([[1, `127.0.0.1:${ports.get(1)}`]]),
    });
    stranger.send([{ type: 'heartbeat', from: 9, to: 1, term: 100, commit: 0, context: 0 }]);
    await waitFor('the refusal', () => members.get(1)!.transport.stats.rejectedRequests > 0);
    expect(members.get(1)!.node.term).toBeLessThan(100);
    stranger.close();
  });

  it('stops a proposal on a follower with NOT_CONTROLLER', async () => {
    await startAll();
    const current = await waitFor('a leader', leader);
    const follower = await waitFor('a follower that knows the leader', () =>
      [...members.values()].find((m) => !m.node.isLeader && m.node.leaderId === current.id),
    );
    await expect(follower.node.propose(text('x'))).rejects.toMatchObject({
      code: ErrorCode.NOT_CONTROLLER,
    });
  });
});
