// Partition on a real Log in a temporary directory: the leader's and the follower's paths that
// depend on how the log and the leader state move together, and producer-state snapshots.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { PartitionImage } from '@weir/metadata';
import { RecordBatchBuilder, batchesIn } from '@weir/protocol';
import { type LogOptions, Log } from '@weir/storage';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PRODUCER_SNAPSHOTS_RETAINED, Partition } from './partition.js';
import { listProducerSnapshotOffsets, producerSnapshotFileName } from './producer-snapshot.js';
import {
  type LoggedProducerBatch,
  type ProducerStateEntry,
  ProducerStateManager,
  producerBatchOf,
} from './producer-state.js';

/** Small segments, so that a few batches roll them; no fsync per append, for speed. */
const LOG_OPTIONS: LogOptions = { config: { segmentBytes: 400, flushPolicy: 'never' } };

let dir: string;
let logDir: string;
let log: Log;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-partition-'));
  logDir = join(dir, 'orders-0');
  log = await Log.open(logDir, LOG_OPTIONS);
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

function open(): Promise<Partition> {
  return Partition.open({
    brokerId: 1,
    topic: 'orders',
    topicId: 'topic-id',
    partitionId: 0,
    log,
    clock: () => 0,
    replicaLagTimeMaxMs: 30_000,
  });
}

async function leader(): Promise<Partition> {
  const partition = await open();
  partition.makeLeader(state());
  return partition;
}

describe('Partition as leader', () => {
  it('starts at its checkpointed high watermark after a restart, before any follower fetches', async () => {
    for (let i = 0; i < 5; i++) await log.append(batch(`v${i}`), { leaderEpoch: 0 });
    const partition = await Partition.open({
      brokerId: 1,
      topic: 'orders',
      topicId: 'topic-id',
      partitionId: 0,
      log,
      clock: () => 0,
      replicaLagTimeMaxMs: 30_000,
      highWatermark: 3n,
    });
    partition.makeLeader(state());
    // Without the checkpoint it would be 0 until both followers fetched again.
    expect(partition.highWatermark).toBe(3n);
    const read = await partition.readAsConsumer(0n, 1 << 20, -1);
    expect([...batchesIn(read.records)].map((b) => b.baseOffset)).toEqual([0n, 1n, 2n]);
  });

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

const ACKS_1 = { requiredAcks: 1, minInsyncReplicas: 1 };

function idempotentBatch(
  producerId: bigint,
  producerEpoch: number,
  baseSequence: number,
  count = 1,
): Buffer {
  const builder = new RecordBatchBuilder({ producerId, producerEpoch, baseSequence });
  for (let i = 0; i < count; i++) builder.append({ value: `${producerId}-${baseSequence + i}` });
  return builder.build();
}

/** The producer state a replay of the whole log gives (what Partition.open did before snapshots). */
async function fullReplay(): Promise<ProducerStateEntry[]> {
  const batches: LoggedProducerBatch[] = [];
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const { records } = await log.read(offset, 1 << 20);
    for (const batch of batchesIn(records)) {
      if (batch.producerId >= 0n) batches.push(producerBatchOf(batch));
      offset = batch.nextOffset;
    }
  }
  const state = new ProducerStateManager({ partition: 'orders-0' });
  state.rebuild(batches);
  return state.entries();
}

/** Closes the log and opens it again, as a broker restart does. */
async function reopenLog(): Promise<void> {
  await log.close();
  log = await Log.open(logDir, LOG_OPTIONS);
}

/** Opens a partition on the log, reporting the offsets its producer-state replay read from. */
async function openCountingReads(): Promise<{ partition: Partition; readOffsets: bigint[] }> {
  const read = vi.spyOn(log, 'read');
  const partition = await open();
  const readOffsets = read.mock.calls.map(([offset]) => offset);
  read.mockRestore();
  return { partition, readOffsets };
}

/** Appends `count` single-record batches of producer `producerId` from sequence `from`. */
async function produce(partition: Partition, producerId: bigint, from: number, count: number) {
  const offsets = [];
  for (let sequence = from; sequence < from + count; sequence++) {
    offsets.push(await partition.appendAsLeader(idempotentBatch(producerId, 0, sequence), ACKS_1));
  }
  return offsets;
}

type ProducerAction =
  | { readonly kind: 'produce'; readonly producer: number; readonly count: number }
  | { readonly kind: 'bump'; readonly producer: number }
  | { readonly kind: 'retry'; readonly producer: number; readonly pick: number }
  | { readonly kind: 'plain' }
  | { readonly kind: 'roll' }
  | { readonly kind: 'snapshot'; readonly force: boolean };

const producerActionArbitrary: fc.Arbitrary<ProducerAction> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('produce' as const),
      producer: fc.integer({ min: 1, max: 4 }),
      count: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('bump' as const),
      producer: fc.integer({ min: 1, max: 4 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('retry' as const),
      producer: fc.integer({ min: 1, max: 4 }),
      pick: fc.nat({ max: 6 }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'plain' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'roll' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('snapshot' as const), force: fc.boolean() }),
  },
);

interface ModelProducer {
  epoch: number;
  nextSequence: number;
  /** The batches of the current epoch: first sequence, count and the offsets they got. */
  sent: { sequence: number; count: number; baseOffset: bigint; lastOffset: bigint }[];
}

/** Runs the actions as a leader would see them from clients, checking each answer. */
async function runProducerActions(
  partition: Partition,
  actions: readonly ProducerAction[],
): Promise<void> {
  const producers = new Map<number, ModelProducer>();
  for (const action of actions) {
    if (action.kind === 'plain') {
      await partition.appendAsLeader(batch('plain'), ACKS_1);
    } else if (action.kind === 'roll') {
      await log.roll();
    } else if (action.kind === 'snapshot') {
      await partition.snapshotProducerState({ force: action.force });
    } else {
      const producer = producers.get(action.producer) ?? { epoch: 0, nextSequence: 0, sent: [] };
      producers.set(action.producer, producer);
      const id = BigInt(action.producer);
      if (action.kind === 'retry') {
        const sent = producer.sent.at(-1 - (action.pick % Math.max(producer.sent.length, 1)));
        if (sent === undefined) continue;
        const answer = await partition.appendAsLeader(
          idempotentBatch(id, producer.epoch, sent.sequence, sent.count),
          ACKS_1,
        );
        expect(answer).toEqual({
          baseOffset: sent.baseOffset,
          lastOffset: sent.lastOffset,
          duplicate: true,
        });
        continue;
      }
      if (action.kind === 'bump') {
        producer.epoch += 1;
        producer.nextSequence = 0;
        producer.sent = [];
      }
      const count = action.kind === 'produce' ? action.count : 1;
      const sequence = producer.nextSequence;
      const answer = await partition.appendAsLeader(
        idempotentBatch(id, producer.epoch, sequence, count),
        ACKS_1,
      );
      expect(answer.duplicate).toBe(false);
      producer.nextSequence += count;
      producer.sent = [...producer.sent, { sequence, count, ...answer }].slice(-5);
    }
  }
}

describe('Partition producer-state snapshots', () => {
  const actionsArbitrary = fc.array(producerActionArbitrary, { minLength: 1, maxLength: 30 });

  it('replays past retention that moves the log start while the replay runs', async () => {
    const writer = await open();
    writer.makeLeader(state());
    await produce(writer, 1n, 0, 3); // offsets 0..2
    await produce(writer, 2n, 0, 3); // offsets 3..5
    await reopenLog();
    // The replay's first read returns one batch; retention then removes offsets 0..3 before
    // the next read, which must start at the new log start rather than fail.
    const realRead = log.read.bind(log);
    const read = vi.spyOn(log, 'read').mockImplementationOnce(async (offset, maxBytes, options) => {
      const result = await realRead(offset, maxBytes, options);
      const [first] = batchesIn(result.records);
      await log.deleteRecordsBefore(4n);
      return { ...result, records: result.records.subarray(0, first!.sizeInBytes) };
    });
    const partition = await open();
    const offsets = read.mock.calls.map(([offset]) => offset);
    expect(offsets.slice(0, 2)).toEqual([0n, 4n]);
    expect(offsets.slice(1).every((offset) => offset >= 4n)).toBe(true);
    read.mockRestore();
    // Producer 1's batches are all below the log start now; producer 2's last ones remain.
    expect(partition.producerStateEntries().map((entry) => entry.producerId)).toEqual([2n]);
  });

  it('opens from the newest snapshot to the same state as a full replay, reading only the tail (property)', async () => {
    await fc.assert(
      fc.asyncProperty(actionsArbitrary, actionsArbitrary, async (before, after) => {
        await log.delete();
        log = await Log.open(logDir, LOG_OPTIONS);
        const partition = await open();
        partition.makeLeader(state());
        // Snapshots at random points, and one (on shutdown, say) somewhere for sure.
        await runProducerActions(partition, [
          ...before,
          { kind: 'snapshot', force: true },
          ...after,
        ]);
        const live = partition.producerStateEntries();
        expect(live).toEqual(await fullReplay());

        await reopenLog();
        const newest = (await listProducerSnapshotOffsets(logDir)).at(-1);
        const { partition: reopened, readOffsets } = await openCountingReads();
        expect(reopened.producerStateEntries()).toEqual(live);
        const replayStart = newest ?? log.logStartOffset;
        if (replayStart < log.logEndOffset) expect(readOffsets[0]).toBe(replayStart);
        else expect(readOffsets).toEqual([]);
        for (const offset of readOffsets) expect(offset).toBeGreaterThanOrEqual(replayStart);
      }),
      { numRuns: 40 },
    );
  });

  it('answers a retry of a batch written before or after the snapshot with its original offsets after a reopen', async () => {
    const partition = await leader();
    const before = await produce(partition, 7n, 0, 3);
    await log.roll();
    expect(await partition.snapshotProducerState()).toBe(true);
    const after = await produce(partition, 7n, 3, 2);
    await reopenLog();
    const { partition: reopened, readOffsets } = await openCountingReads();
    expect(readOffsets[0]).toBe(3n);
    reopened.makeLeader(state());
    for (const [sequence, original] of [...before, ...after].entries()) {
      expect(await reopened.appendAsLeader(idempotentBatch(7n, 0, sequence), ACKS_1)).toEqual({
        ...original,
        duplicate: true,
      });
    }
    expect(reopened.logEndOffset).toBe(5n);
    // And the next sequence goes on from there.
    expect((await reopened.appendAsLeader(idempotentBatch(7n, 0, 5), ACKS_1)).baseOffset).toBe(5n);
  });

  it('ignores and deletes a snapshot above the log end: a crash lost the tail it describes', async () => {
    const partition = await leader();
    await produce(partition, 1n, 0, 4);
    await produce(partition, 2n, 0, 2);
    expect(await partition.snapshotProducerState({ force: true })).toBe(true);
    // The records after offset 3 were never flushed when the power went.
    await log.truncateTo(3n);
    await reopenLog();
    const { partition: reopened, readOffsets } = await openCountingReads();
    expect(await listProducerSnapshotOffsets(logDir)).toEqual([]);
    expect(readOffsets[0]).toBe(0n);
    expect(reopened.producerStateEntries()).toEqual(await fullReplay());
    expect(reopened.producerStateEntries().map((entry) => entry.producerId)).toEqual([1n]);
  });

  it('falls back to the older snapshot when the newest is corrupt, and deletes it', async () => {
    const partition = await leader();
    await produce(partition, 1n, 0, 2);
    expect(await partition.snapshotProducerState({ force: true })).toBe(true);
    await produce(partition, 2n, 0, 2);
    expect(await partition.snapshotProducerState({ force: true })).toBe(true);
    await produce(partition, 1n, 2, 1);
    const newest = join(logDir, producerSnapshotFileName(4n));
    const bytes = await readFile(newest);
    bytes[bytes.length - 3]! ^= 0x10;
    await writeFile(newest, bytes);
    await reopenLog();
    const { partition: reopened, readOffsets } = await openCountingReads();
    expect(await listProducerSnapshotOffsets(logDir)).toEqual([2n]);
    expect(readOffsets[0]).toBe(2n);
    expect(reopened.producerStateEntries()).toEqual(await fullReplay());
  });

  it('drops the producers whose last batch is below the log start on open', async () => {
    const partition = await leader();
    await produce(partition, 1n, 0, 2);
    await produce(partition, 2n, 0, 2);
    expect(await partition.snapshotProducerState({ force: true })).toBe(true);
    await log.deleteRecordsBefore(3n);
    await reopenLog();
    const reopened = await open();
    expect(reopened.producerStateEntries().map((entry) => entry.producerId)).toEqual([2n]);
  });

  it('truncateToDivergence deletes the snapshots above the truncation point before truncating, then reloads', async () => {
    const partition = await leader();
    await produce(partition, 1n, 0, 3);
    expect(await partition.snapshotProducerState({ force: true })).toBe(true); // at 3
    await produce(partition, 2n, 0, 3);
    await partition.appendAsLeader(idempotentBatch(1n, 0, 3, 3), ACKS_1); // offsets 6..8
    expect(await partition.snapshotProducerState({ force: true })).toBe(true); // at 9
    await produce(partition, 3n, 0, 1);
    expect(await listProducerSnapshotOffsets(logDir)).toEqual([3n, 9n]);

    partition.makeFollower(state({ leader: 2, leaderEpoch: 1, partitionEpoch: 1 }));
    let snapshotsWhenTruncating: bigint[] | undefined;
    const truncate = log.truncateTo.bind(log);
    const truncateTo = vi.spyOn(log, 'truncateTo');
    truncateTo.mockImplementation(async (offset) => {
      snapshotsWhenTruncating = await listProducerSnapshotOffsets(logDir);
      await truncate(offset);
    });
    // The leader's epoch 0 ended at 7, in the middle of the batch at 6..8: that batch goes whole.
    const read = vi.spyOn(log, 'read');
    expect(await partition.truncateToDivergence({ epoch: 0, endOffset: 7n })).toBe(7n);
    expect(snapshotsWhenTruncating).toEqual([3n]);
    expect(log.logEndOffset).toBe(6n);
    expect(read.mock.calls[0]?.[0]).toBe(3n);
    expect(partition.producerStateEntries()).toEqual(await fullReplay());
    expect(
      partition.producerStateEntries().map((entry) => [entry.producerId, entry.batches.length]),
    ).toEqual([
      // The LRU order of the log as it is now: producer 1's batch at 6..8 no longer counts.
      [1n, 3],
      [2n, 3],
    ]);
    truncateTo.mockRestore();
    read.mockRestore();
  });

  it('snapshots when a segment rolled since the last one, or when forced; never twice at one offset', async () => {
    const partition = await leader();
    // An empty log, and one segment only: an open would replay nothing or little.
    expect(await partition.snapshotProducerState({ force: true })).toBe(false);
    await produce(partition, 1n, 0, 1);
    expect(await partition.snapshotProducerState()).toBe(false);
    await log.roll();
    expect(await partition.snapshotProducerState()).toBe(true);
    expect(await partition.snapshotProducerState({ force: true })).toBe(false);
    await produce(partition, 1n, 1, 1);
    expect(await partition.snapshotProducerState()).toBe(false);
    expect(await partition.snapshotProducerState({ force: true })).toBe(true);
    expect(await listProducerSnapshotOffsets(logDir)).toEqual([1n, 2n]);
  });

  it(`keeps the newest ${PRODUCER_SNAPSHOTS_RETAINED} snapshots, and below the log start only the newest`, async () => {
    const partition = await leader();
    for (let sequence = 0; sequence < 4; sequence++) {
      await produce(partition, 1n, sequence, 1);
      expect(await partition.snapshotProducerState({ force: true })).toBe(true);
    }
    expect(await listProducerSnapshotOffsets(logDir)).toEqual([3n, 4n]);
    await produce(partition, 1n, 4, 1);
    await log.roll();
    await log.deleteRecordsBefore(5n);
    await produce(partition, 1n, 5, 1);
    expect(await partition.snapshotProducerState()).toBe(true);
    expect(await listProducerSnapshotOffsets(logDir)).toEqual([6n]);
  });

  it('takes no snapshot while an append is between its log write and its producer state', async () => {
    const partition = await leader();
    await log.roll();
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const append = log.append.bind(log);
    const spy = vi.spyOn(log, 'append').mockImplementation(async (records, options) => {
      const info = await append(records, options);
      await held; // written, not yet recorded in the producer state
      return info;
    });
    const appending = partition.appendAsLeader(idempotentBatch(1n, 0, 0), ACKS_1);
    await vi.waitFor(() => expect(log.logEndOffset).toBe(1n));
    expect(await partition.snapshotProducerState({ force: true })).toBe(false);
    release();
    await appending;
    spy.mockRestore();
    expect(await partition.snapshotProducerState({ force: true })).toBe(true);
  });
});
