// Observers (KRaft's brokers) follow the committed log by long-polling FetchLog: they apply
// everything in order, install a snapshot when behind the log start, follow a new leader,
// never count towards a commit, and refuse another cluster.

import { ErrorCode } from '@weir/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RaftObserver } from '../src/observer/observer.js';
import { GrpcCluster, Register, text, waitFor } from './grpc-cluster.js';

let cluster: GrpcCluster;
const observers: RaftObserver[] = [];

function startObserver(register: Register, clusterId = cluster.clusterId): RaftObserver {
  const observer = RaftObserver.start({
    nodeId: 100 + observers.length,
    clusterId,
    voters: cluster.addresses(),
    stateMachine: register,
    maxWaitMs: 200,
  });
  observers.push(observer);
  return observer;
}

beforeEach(async () => {
  cluster = new GrpcCluster([1, 2, 3], 'observer-test', 1500);
  await cluster.start();
});

afterEach(async () => {
  for (const observer of observers.splice(0)) await observer.stop();
  await cluster.stop();
});

describe('RaftObserver', () => {
  it('applies the committed log in order as it grows', async () => {
    const leader = await waitFor('a leader', () => cluster.leader());
    const register = new Register();
    startObserver(register);
    for (const v of ['a', 'b', 'c']) await leader.node.propose(text(v));
    await waitFor('the observer to apply', () => register.values.join() === 'a,b,c');
    await leader.node.propose(text('d'));
    await waitFor(
      'the long poll to deliver the next entry',
      () => register.values.join() === 'a,b,c,d',
    );
  });

  it('installs a snapshot when it starts behind the log start, then follows the log', async () => {
    const leader = await waitFor('a leader', () => cluster.leader());
    for (const v of ['a', 'b']) await leader.node.propose(text(v));
    await leader.node.snapshot(leader.node.appliedIndex, leader.register.snapshotData());
    await leader.node.propose(text('c'));
    const register = new Register();
    const observer = startObserver(register);
    await waitFor('snapshot plus log', () => register.values.join() === 'a,b,c');
    expect(observer.appliedIndex).toBe(leader.node.commitIndex);
  });

  it('moves to the new leader when the leader goes away', async () => {
    const first = await waitFor('a leader', () => cluster.leader());
    const register = new Register();
    const observer = startObserver(register);
    await first.node.propose(text('one'));
    await waitFor('the first entry', () => register.values.length === 1);
    await cluster.stopMember(first.id);
    const second = await waitFor('a new leader', () => cluster.leader());
    await second.node.propose(text('two'));
    await waitFor('the entry from the new leader', () => register.values.join() === 'one,two');
    expect(observer.leaderId).toBe(second.id);
  });

  it('does not count towards commits: with two of three voters down nothing commits', async () => {
    const leader = await waitFor('a leader', () => cluster.leader());
    const register = new Register();
    startObserver(register);
    await leader.node.propose(text('ok'));
    await waitFor('the observer to apply', () => register.values.length === 1);
    for (const member of [...cluster.members.values()]) {
      if (member.id !== leader.id) await cluster.stopMember(member.id);
    }
    // Timed out, or refused once check-quorum made the leader step down: never committed.
    const error = await leader.node.propose(text('no quorum')).catch((e: unknown) => e);
    expect([ErrorCode.REQUEST_TIMED_OUT, ErrorCode.NOT_CONTROLLER]).toContain(
      (error as { code: number }).code,
    );
    expect(register.values).toEqual(['ok']);
  });

  it('stops for good when the quorum belongs to another cluster', async () => {
    await waitFor('a leader', () => cluster.leader());
    const observer = startObserver(new Register(), 'another-cluster');
    await waitFor('the refusal', () => observer.failure);
    expect(observer.failure?.code).toBe(ErrorCode.INCONSISTENT_CLUSTER_ID);
  });
});
