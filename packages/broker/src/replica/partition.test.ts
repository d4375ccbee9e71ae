// Partition on a real Log in a temporary directory: the leader's and the follower's paths that
// depend on how the log and the leader state move together.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PartitionImage } from '@weir/metadata';
import { RecordBatchBuilder } from '@weir/protocol';
import { Log } from '@weir/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Partition } from './partition.js';

let dir: string;
let log: Log;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-partition-'));
  log = await Log.open(join(dir, 'orders-0'));
});
afterEach(async () => {
  await log.close();
  await rm(dir, { recursive: true, force: true });
});

const state = (overrides: Partial<PartitionImage> = {}): PartitionImage => ({
  topicId: 'topic-id',
  partitionId: 0,
  replicas: [1, 2, 3],
  isr: [1, 2, 3],
  leader: 1,
  leaderEpoch: 0,
  partitionEpoch: 0,
  ...overrides,
});

const batch = (value: string): Buffer => new RecordBatchBuilder().append({ value }).build();

async function leader(): Promise<Partition> {
  const partition = await Partition.open({
    brokerId: 1,
    topic: 'orders',
    topicId: 'topic-id',
    partitionId: 0,
    log,
    clock: () => 0,
    replicaLagTimeMaxMs: 30_000,
  });
  partition.makeLeader(state());
  return partition;
}

describe('Partition as leader', () => {
  it('serves a follower fetch that lands after the log grew but before the leader state heard of it', async () => {
    const partition = await leader();
    // The log's end moves when a write completes; the appender tells the leader state a moment
    // later. A follower's fetch in that moment must be served, not refused.
    await log.append(batch('written'), { leaderEpoch: 0 });
    expect(partition.logEndOffset).toBe(1n);
    const result = await partition.readForFollower(2, {
      fetchOffset: 0n,
      lastFetchedEpoch: -1,
      currentLeaderEpoch: 0,
      maxBytes: 1 << 20,
    });
    expect(result.records.length).toBeGreaterThan(0);
    const caughtUp = await partition.readForFollower(3, {
      fetchOffset: 1n,
      lastFetchedEpoch: 0,
      currentLeaderEpoch: 0,
      maxBytes: 1 << 20,
    });
    expect(caughtUp.records.length).toBe(0);
  });

  it('moves the high watermark only when every ISR member has the records', async () => {
    const partition = await leader();
    await partition.appendAsLeader(batch('a'), { requiredAcks: -1, minInsyncReplicas: 2 });
    await partition.appendAsLeader(batch('b'), { requiredAcks: -1, minInsyncReplicas: 2 });
    expect(partition.highWatermark).toBe(0n);
    const fetch = (follower: number, fetchOffset: bigint) =>
      partition.readForFollower(follower, {
        fetchOffset,
        lastFetchedEpoch: fetchOffset === 0n ? -1 : 0,
        currentLeaderEpoch: 0,
        maxBytes: 1 << 20,
      });
    await fetch(2, 2n);
    expect(partition.highWatermark).toBe(0n);
    await fetch(3, 1n);
    expect(partition.highWatermark).toBe(1n);
    await fetch(3, 2n);
    expect(partition.highWatermark).toBe(2n);
    // A consumer reads below the high watermark only.
    const read = await partition.readAsConsumer(0n, 1 << 20, -1);
    expect(read.highWatermark).toBe(2n);
  });

  it('tells a follower whose last epoch ends earlier in the leader log where it diverged', async () => {
    const partition = await leader();
    await partition.appendAsLeader(batch('a'), { requiredAcks: 1, minInsyncReplicas: 1 });
    partition.makeLeader(state({ leaderEpoch: 1, partitionEpoch: 1 }));
    await partition.appendAsLeader(batch('b'), { requiredAcks: 1, minInsyncReplicas: 1 });
    // The follower wrote offsets 1..4 in epoch 0 (an old leader's tail); epoch 0 ends at 1 here.
    const result = await partition.readForFollower(2, {
      fetchOffset: 5n,
      lastFetchedEpoch: 0,
      currentLeaderEpoch: 1,
      maxBytes: 1 << 20,
    });
    expect(result.divergingEpoch).toEqual({ epoch: 0, endOffset: 1n });
    expect(result.records.length).toBe(0);
  });
});
