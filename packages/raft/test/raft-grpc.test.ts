// Three RaftNodes in one process, each with its own gRPC server on loopback, real `level`
// storage and the gRPC transport: elections, commits, a leader going away, and a restart from
// disk. (The multi-process kill -9 test is raft-process.test.ts.)

import { ErrorCode } from '@weir/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GrpcRaftTransport } from '../src/transport/grpc-transport.js';
import { GrpcCluster, text, waitFor } from './grpc-cluster.js';

let cluster: GrpcCluster;

beforeEach(async () => {
  cluster = new GrpcCluster([1, 2, 3]);
  await cluster.start();
});

afterEach(async () => {
  await cluster.stop();
});

describe('Raft over gRPC with level storage', () => {
  it('elects a leader and commits on every node', async () => {
    const first = await waitFor('a leader', () => cluster.leader());
    for (const v of ['a', 'b', 'c']) await first.node.propose(text(v));
    await waitFor('every node to apply', () =>
      [...cluster.members.values()].every((m) => m.register.values.join() === 'a,b,c'),
    );
  });

  it('survives the leader going away, and the old leader catches up from disk when it returns', async () => {
    const first = await waitFor('a leader', () => cluster.leader());
    await first.node.propose(text('before'));
    await cluster.stopMember(first.id);
    const second = await waitFor('a new leader', () => cluster.leader());
    expect(second.id).not.toBe(first.id);
    await second.node.propose(text('after'));

    const back = await cluster.startMember(first.id);
    await waitFor(
      'the old leader to catch up',
      () => back.register.values.join() === 'before,after',
    );
    expect(back.node.isLeader).toBe(false);
  });

  it('brings a voter that is behind the log start up to date with InstallSnapshot', async () => {
    const first = await waitFor('a leader', () => cluster.leader());
    const behind = [...cluster.members.values()].find((m) => m.id !== first.id)!;
    await cluster.stopMember(behind.id);
    for (const v of ['a', 'b', 'c']) await first.node.propose(text(v));
    await first.node.snapshot(first.node.appliedIndex, first.register.snapshotData());
    await first.node.propose(text('d'));
    expect(first.node.firstIndex).toBeGreaterThan(2); // what the stopped voter lacks is gone

    const back = await cluster.startMember(behind.id);
    await waitFor(
      'the snapshot and the entry after it',
      () => back.register.values.join() === 'a,b,c,d',
    );
    expect(back.node.firstIndex).toBe(first.node.firstIndex);
    expect(back.storage.firstIndex).toBe(first.node.firstIndex);
  });

  it('refuses messages from another cluster', async () => {
    await waitFor('a leader', () => cluster.leader());
    const stranger = new GrpcRaftTransport({
      nodeId: 9,
      clusterId: 'another-cluster',
      peers: new Map([[1, cluster.addresses().get(1)!]]),
    });
    stranger.send([{ type: 'heartbeat', from: 9, to: 1, term: 100, commit: 0, context: 0 }]);
    const target = cluster.members.get(1)!;
    await waitFor('the refusal', () => target.transport.stats.rejectedRequests > 0);
    expect(target.node.term).toBeLessThan(100);
    stranger.close();
  });

  it('stops a proposal on a follower with NOT_CONTROLLER', async () => {
    const current = await waitFor('a leader', () => cluster.leader());
    const follower = await waitFor('a follower that knows the leader', () =>
      [...cluster.members.values()].find((m) => !m.node.isLeader && m.node.leaderId === current.id),
    );
    await expect(follower.node.propose(text('x'))).rejects.toMatchObject({
      code: ErrorCode.NOT_CONTROLLER,
    });
  });
});
