// RaftNode, the driver, with three nodes in one process: an in-memory hub stands in for the
// network and an in-memory store for `level` (the gRPC + level version is raft-grpc.test.ts).

import { ErrorCode } from '@weir/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import type { NodeId } from '../src/core/types.js';
import {
  LocalRaftNetwork as Hub,
  MemoryRaftStorage as MemoryStorage,
} from '../src/memory/in-memory.js';
import { RaftNode } from '../src/node/raft-node.js';
import { Register, text, waitFor } from './grpc-cluster.js';

const voters = [1, 2, 3];
let nodes: RaftNode[] = [];

async function startCluster(
  hub: Hub,
  storages: Map<NodeId, MemoryStorage>,
  registers: Map<NodeId, Register>,
) {
  nodes = await Promise.all(
    voters.map((id) => {
      if (!storages.has(id)) storages.set(id, new MemoryStorage());
      registers.set(id, new Register());
      return RaftNode.start({
        id,
        voters,
        storage: storages.get(id)!,
        transport: hub.transport(id),
        stateMachine: registers.get(id)!,
        tickMs: 5,
        proposeTimeoutMs: 2000,
      });
    }),
  );
  return nodes;
}

afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  nodes = [];
});

describe('RaftNode', () => {
  it('elects a leader, resolves proposals at commit and applies them on every node', async () => {
    const registers = new Map<NodeId, Register>();
    await startCluster(new Hub(), new Map(), registers);
    const leader = await waitFor('a leader', () => nodes.find((n) => n.isLeader));
    const positions = await Promise.all(['a', 'b', 'c'].map((v) => leader.propose(text(v))));
    expect(positions.map((p) => p.index)).toEqual([2, 3, 4]); // 1 is the leader's no-op
    expect(registers.get(leader.id)!.values).toEqual(['a', 'b', 'c']);
    await waitFor('followers to apply', () =>
      voters.every((id) => registers.get(id)!.values.length === 3),
    );
  });

  it('refuses proposals on a follower with NOT_CONTROLLER naming the leader', async () => {
    await startCluster(new Hub(), new Map(), new Map());
    const leader = await waitFor('a leader', () => nodes.find((n) => n.isLeader));
    const follower = await waitFor('a follower that knows the leader', () =>
      nodes.find((n) => !n.isLeader && n.leaderId === leader.id),
    );
    const error = await follower.propose(text('x')).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCode.NOT_CONTROLLER });
    expect((error as Error).message).toContain(`the leader is node ${leader.id}`);
  });

  it('elects a new leader when the leader is cut off, and keeps what was committed', async () => {
    const hub = new Hub();
    const registers = new Map<NodeId, Register>();
    await startCluster(hub, new Map(), registers);
    const first = await waitFor('a leader', () => nodes.find((n) => n.isLeader));
    await first.propose(text('before'));
    hub.down.add(first.id);
    const second = await waitFor('a new leader', () =>
      nodes.find((n) => n.isLeader && n.id !== first.id),
    );
    await second.propose(text('after'));
    expect(registers.get(second.id)!.values).toEqual(['before', 'after']);
    hub.down.delete(first.id);
    await waitFor('the old leader to catch up', () => registers.get(first.id)!.values.length === 2);
    expect(registers.get(first.id)!.values).toEqual(['before', 'after']);
  });

  it('restarts every node from storage and loses nothing committed', async () => {
    const hub = new Hub();
    const storages = new Map<NodeId, MemoryStorage>();
    await startCluster(hub, storages, new Map());
    const leader = await waitFor('a leader', () => nodes.find((n) => n.isLeader));
    for (const v of ['a', 'b']) await leader.propose(text(v));
    await leader.snapshot(leader.appliedIndex, text(JSON.stringify(['a', 'b'])));
    await leader.propose(text('c'));
    await Promise.all(nodes.map((n) => n.stop()));

    const registers = new Map<NodeId, Register>();
    await startCluster(hub, storages, registers);
    const next = await waitFor('a leader after restart', () => nodes.find((n) => n.isLeader));
    await next.propose(text('d'));
    expect(registers.get(next.id)!.values).toEqual(['a', 'b', 'c', 'd']);
  });

  it('confirms a linearizable read on the leader', async () => {
    await startCluster(new Hub(), new Map(), new Map());
    const leader = await waitFor('a leader', () => nodes.find((n) => n.isLeader));
    const { index } = await leader.propose(text('x'));
    expect(await leader.readIndex()).toBeGreaterThanOrEqual(index);
  });

  it('hands leadership over on request', async () => {
    await startCluster(new Hub(), new Map(), new Map());
    const leader = await waitFor('a leader', () => nodes.find((n) => n.isLeader));
    await leader.propose(text('x'));
    const target = voters.find((id) => id !== leader.id)!;
    leader.transferLeadership(target);
    await waitFor('the transfer', () => nodes.find((n) => n.id === target && n.isLeader));
  });

  it('refuses a voter set that differs from the stored snapshot', async () => {
    const storage = new MemoryStorage();
    storage.snapshot = { metadata: { index: 5, term: 1, voters: [1, 2, 3] }, data: text('[]') };
    await expect(
      RaftNode.start({
        id: 1,
        voters: [1, 2],
        storage,
        transport: new Hub().transport(1),
        stateMachine: new Register(),
      }),
    ).rejects.toMatchObject({ code: ErrorCode.INCONSISTENT_VOTER_SET });
  });
});
