// One partition replica on this broker (Kafka's Partition): its log, its role, and the state
// that role needs. As leader it appends with its leader epoch, serves consumers up to the high
// watermark and followers from any offset, and tracks the followers through LeaderState; as
// follower it appends what it fetched and truncates where it diverged from the leader.
//
// Idempotent producer state is kept on every replica, leader or follower, from the batches it
// appends, so a follower that becomes leader deduplicates retries at once (Kafka does the same).
// Opening the log, or truncating it, loads the newest producer snapshot and replays only the
// batches after it (Kafka's loadProducerState and truncateAndReload); the ReplicaManager has
// snapshots taken now and then, as Kafka takes one when a segment rolls.

import type { PartitionImage } from '@weir/metadata';
import { ErrorCode, RecordBatch, WeirError, assert, batchesIn } from '@weir/protocol';
import type { Log } from '@weir/storage';
import { type AlterPartitionProposal, LeaderState } from './leader-state.js';
import {
  deleteProducerSnapshots,
  listProducerSnapshotOffsets,
  loadNewestProducerSnapshot,
  writeProducerSnapshot,
} from './producer-snapshot.js';
import {
  type ProducerStateEntry,
  ProducerStateManager,
  producerBatchOf,
} from './producer-state.js';

export interface PartitionOptions {
  readonly brokerId: number;
  readonly topic: string;
  readonly topicId: string;
  readonly partitionId: number;
  readonly log: Log;
  readonly clock: () => number;
  readonly replicaLagTimeMaxMs: number;
  /** The high watermark last checkpointed for this partition, if any. */
  readonly highWatermark?: bigint;
}

/** Where a leader's log and a follower's diverge (KIP-320's diverging epoch). */
export interface DivergingEpoch {
  readonly epoch: number;
  readonly endOffset: bigint;
}

export interface LeaderAppendResult {
  readonly baseOffset: bigint;
  readonly lastOffset: bigint;
  /** The batch was a retry of one already in the log; these are its original offsets. */
  readonly duplicate: boolean;
}

export interface FollowerFetchResult {
  readonly records: Buffer;
  readonly highWatermark: bigint;
  readonly logStartOffset: bigint;
  readonly divergingEpoch?: DivergingEpoch;
}

/** How many bytes a replay reads per step when it records the log's producer batches. */
const REPLAY_READ_BYTES = 1024 * 1024;

/**
 * How many producer snapshots a partition keeps: the newest, and one before it to fall back on
 * if the newest turns out corrupt or a follower truncation goes below it.
 */
export const PRODUCER_SNAPSHOTS_RETAINED = 2;

export class Partition {
  readonly key: string;
  private leaderState: LeaderState | undefined;
  private followerHighWatermark = 0n;
  private currentLeaderId = -1;
  private currentLeaderEpoch = -1;
  private currentPartitionEpoch = -1;
  private readonly producers: ProducerStateManager;
  /** Leader and follower appends between the log write and recording it in `producers`. */
  private appendsInProgress = 0;
  /** The offset of the newest producer snapshot on disk, if any. */
  private producerSnapshotOffset: bigint | undefined;
  /** The last snapshot write or truncation: they run one at a time (see snapshotProducerState). */
  private producerSnapshotTail: Promise<unknown> = Promise.resolve();

  private constructor(private readonly options: PartitionOptions) {
    this.key = partitionKey(options.topicId, options.partitionId);
    this.producers = new ProducerStateManager({ partition: this.label });
  }

  /**
   * Opens a replica on `log`: its newest producer snapshot, then the batches after it; the high
   * watermark starts where it was last checkpointed.
   */
  static async open(options: PartitionOptions): Promise<Partition> {
    const partition = new Partition(options);
    // A crash may have cut unsynced records the checkpoint covered; retention may have passed it.
    const { log } = options;
    partition.followerHighWatermark = maxBigint(
      log.logStartOffset,
      minBigint(options.highWatermark ?? 0n, log.logEndOffset),
    );
    await partition.loadProducerState();
    return partition;
  }

  get topic(): string {
    return this.options.topic;
  }
  get topicId(): string {
    return this.options.topicId;
  }
  get partitionId(): number {
    return this.options.partitionId;
  }
  get log(): Log {
    return this.options.log;
  }
  get isLeader(): boolean {
    return this.leaderState !== undefined;
  }
  get leaderId(): number {
    return this.currentLeaderId;
  }
  get leaderEpoch(): number {
    return this.currentLeaderEpoch;
  }
  get partitionEpoch(): number {
    return this.currentPartitionEpoch;
  }
  get isr(): readonly number[] {
    return this.leaderState?.isr ?? [];
  }
  get highWatermark(): bigint {
    return this.leaderState?.highWatermark ?? this.followerHighWatermark;
  }
  get logEndOffset(): bigint {
    return this.log.logEndOffset;
  }
  get leader(): LeaderState | undefined {
    return this.leaderState;
  }
  /** The idempotent producers this replica remembers, least recently written first. */
  producerStateEntries(): ProducerStateEntry[] {
    return this.producers.entries();
  }

  /**
   * Becomes (or stays) leader under `state`. A new leader epoch starts a fresh LeaderState from
   * this replica's log end and high watermark; the same epoch with a newer partition epoch is an
   * ISR change the controller committed.
   */
  makeLeader(state: PartitionImage): void {
    assert(
      state.leader === this.options.brokerId,
      () => `${this.label}: not the leader in ${state.leader}`,
    );
    const current = this.leaderState;
    if (current !== undefined && state.leaderEpoch === current.leaderEpoch) {
      current.applyPartitionState(state);
    } else {
      this.leaderState = new LeaderState({
        topicId: this.topicId,
        partitionId: this.partitionId,
        replicas: state.replicas,
        isr: state.isr,
        leaderId: this.options.brokerId,
        leaderEpoch: state.leaderEpoch,
        partitionEpoch: state.partitionEpoch,
        logEndOffset: this.logEndOffset,
        highWatermark: minBigint(this.highWatermark, this.logEndOffset),
        clock: this.options.clock,
        replicaLagTimeMaxMs: this.options.replicaLagTimeMaxMs,
      });
    }
    this.setState(state);
  }

  /** Becomes (or stays) a follower of `state.leader`. */
  makeFollower(state: PartitionImage): void {
    if (this.leaderState !== undefined) {
      this.followerHighWatermark = this.leaderState.highWatermark;
      this.leaderState = undefined;
    }
    this.setState(state);
  }

  /** The partition's state changed without a leadership change for this broker (ISR, epochs). */
  applyState(state: PartitionImage): void {
    if (state.leader === this.options.brokerId) this.makeLeader(state);
    else this.makeFollower(state);
  }

  /**
   * Appends one producer batch as leader: checks the client's leader epoch, the ISR for
   * acks=all, and the producer's sequence; a retried duplicate answers with its original
   * offsets and writes nothing.
   */
  async appendAsLeader(
    records: Buffer,
    options: { requiredAcks: number; minInsyncReplicas: number },
  ): Promise<LeaderAppendResult> {
    const leader = this.checkLeader();
    if (options.requiredAcks === -1 && !leader.isrSatisfies(options.minInsyncReplicas)) {
      throw new WeirError(
        ErrorCode.NOT_ENOUGH_REPLICAS,
        `${this.label} has ${leader.isr.length} in-sync replicas [${leader.isr.join(',')}], below min.insync.replicas=${options.minInsyncReplicas}; acks=all cannot be met`,
      );
    }
    const batch = singleBatch(records, this.label);
    const producerBatch = producerBatchOf(batch);
    const decision = this.producers.checkAppend(producerBatch);
    if (decision.kind === 'duplicate') {
      return { baseOffset: decision.firstOffset, lastOffset: decision.lastOffset, duplicate: true };
    }
    const info = await this.whileAppending(async () => {
      let appended;
      try {
        appended = await this.log.append(records, { leaderEpoch: leader.leaderEpoch });
      } catch (error) {
        this.producers.abort(producerBatch);
        throw error;
      }
      this.producers.record(producerBatch, appended.baseOffset, appended.lastOffset);
      return appended;
    });
    // The leadership may have moved while the write was queued; the offsets stand regardless.
    this.leaderState?.updateLeaderLogEndOffset(this.logEndOffset);
    this.leaderState?.maybeAdvanceHighWatermark();
    return { baseOffset: info.baseOffset, lastOffset: info.lastOffset, duplicate: false };
  }

  /** Records for a consumer: from `fetchOffset`, below the high watermark. */
  async readAsConsumer(
    fetchOffset: bigint,
    maxBytes: number,
    currentLeaderEpoch: number,
  ): Promise<{ records: Buffer; highWatermark: bigint; logStartOffset: bigint }> {
    this.checkLeader(currentLeaderEpoch);
    const highWatermark = this.highWatermark;
    if (fetchOffset > this.logEndOffset || fetchOffset < this.log.logStartOffset) {
      throw new WeirError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `offset ${fetchOffset} is outside ${this.label}'s range [${this.log.logStartOffset}, ${this.logEndOffset}]`,
      );
    }
    const { records, logStartOffset } = await this.log.read(fetchOffset, maxBytes, {
      maxOffset: highWatermark,
    });
    return { records, highWatermark, logStartOffset };
  }

  /**
   * Serves a follower's fetch (KIP-320): a follower whose last fetched epoch ends earlier in
   * this log than its fetch offset has diverged and is told where; otherwise it gets records
   * from its fetch offset, and its fetch counts towards the high watermark and the ISR.
   */
  async readForFollower(
    followerId: number,
    request: {
      fetchOffset: bigint;
      lastFetchedEpoch: number;
      currentLeaderEpoch: number;
      maxBytes: number;
    },
  ): Promise<FollowerFetchResult> {
    const leader = this.checkLeader(request.currentLeaderEpoch);
    const logStartOffset = this.log.logStartOffset;
    if (request.lastFetchedEpoch >= 0) {
      const end = this.log.endOffsetForEpoch(request.lastFetchedEpoch);
      if (end.epoch < request.lastFetchedEpoch || end.endOffset < request.fetchOffset) {
        return {
          records: Buffer.alloc(0),
          highWatermark: leader.highWatermark,
          logStartOffset,
          divergingEpoch: { epoch: end.epoch, endOffset: end.endOffset },
        };
      }
    }
    // The log's end moves when a write completes, before the appender's continuation tells the
    // leader state; a fetch in between must see the same end in both (found under acks=all load:
    // the mismatch refused the fetch and stalled the follower for a long poll).
    const leaderLogEndOffset = this.logEndOffset;
    leader.updateLeaderLogEndOffset(leaderLogEndOffset);
    leader.updateFollowerFetch(followerId, request.fetchOffset, leaderLogEndOffset);
    leader.maybeAdvanceHighWatermark();
    const { records } = await this.log.read(request.fetchOffset, request.maxBytes);
    return { records, highWatermark: leader.highWatermark, logStartOffset };
  }

  /** Appends batches fetched from the leader, then takes the leader's high watermark. */
  async appendAsFollower(records: Buffer, leaderHighWatermark: bigint): Promise<void> {
    if (records.length > 0) {
      await this.whileAppending(async () => {
        await this.log.appendAsFollower(records);
        this.recordProducerBatches(records);
      });
    }
    this.followerHighWatermark = minBigint(leaderHighWatermark, this.logEndOffset);
  }

  /**
   * Truncates a follower's divergent tail (KIP-320): to where the leader's epoch ends or where
   * this log's same epoch ends, whichever is first.
   */
  async truncateToDivergence(diverging: DivergingEpoch): Promise<bigint> {
    const own = this.log.endOffsetForEpoch(diverging.epoch);
    let offset = diverging.endOffset;
    if (own.epoch === diverging.epoch && own.endOffset < offset) offset = own.endOffset;
    offset = maxBigint(offset, this.log.logStartOffset);
    if (offset < this.logEndOffset) {
      await this.oneProducerSnapshotTaskAtATime(() => this.truncateAndReload(offset));
    }
    this.followerHighWatermark = minBigint(this.followerHighWatermark, this.logEndOffset);
    return offset;
  }

  /**
   * Writes a producer snapshot at the log end offset (Kafka's takeSnapshot), so that the next
   * open replays only what comes after it; keeps the newest PRODUCER_SNAPSHOTS_RETAINED. Returns
   * whether it wrote one. Skipped while an append is between its log write and its producer
   * state (the state would not describe the log up to its end), when the log end is where the
   * newest snapshot already is, and, unless `force` (on shutdown), when no segment rolled since
   * that snapshot: as Kafka, about one snapshot per segment. Snapshot writes and truncations of
   * one partition run one at a time, so a truncation never leaves a snapshot above the log end.
   * I/O failures throw KAFKA_STORAGE_ERROR.
   */
  snapshotProducerState(options: { force?: boolean } = {}): Promise<boolean> {
    return this.oneProducerSnapshotTaskAtATime(async () => {
      const offset = this.logEndOffset;
      if (!this.shouldSnapshotProducerState(offset, options.force ?? false)) return false;
      // Taken together with the log end above, with no await in between.
      const entries = this.producers.entries();
      await writeProducerSnapshot(this.log.dir, offset, entries);
      this.producerSnapshotOffset = offset;
      await this.deleteRetiredProducerSnapshots(offset);
      return true;
    });
  }

  /** The ISR change the leader wants now (shrink first), or undefined. */
  isrChange(isEligible: (brokerId: number) => boolean): AlterPartitionProposal | undefined {
    const leader = this.leaderState;
    if (leader === undefined) return undefined;
    return leader.maybeShrinkIsr() ?? leader.maybeExpandIsr(isEligible);
  }

  private setState(state: PartitionImage): void {
    this.currentLeaderId = state.leader;
    this.currentLeaderEpoch = state.leaderEpoch;
    this.currentPartitionEpoch = state.partitionEpoch;
  }

  /** The leader state, checking the client's view of the leader epoch (KIP-320). */
  private checkLeader(clientLeaderEpoch = -1): LeaderState {
    const leader = this.leaderState;
    if (clientLeaderEpoch >= 0 && clientLeaderEpoch < this.currentLeaderEpoch) {
      throw new WeirError(
        ErrorCode.FENCED_LEADER_EPOCH,
        `${this.label} is at leader epoch ${this.currentLeaderEpoch}, the request names ${clientLeaderEpoch}; refresh metadata`,
      );
    }
    if (clientLeaderEpoch > this.currentLeaderEpoch) {
      throw new WeirError(
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        `${this.label} has not reached leader epoch ${clientLeaderEpoch} yet (it is at ${this.currentLeaderEpoch}); retry shortly`,
      );
    }
    if (leader === undefined) {
      throw new WeirError(
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        `broker ${this.options.brokerId} is not the leader of ${this.label}; its leader is broker ${this.currentLeaderId}`,
      );
    }
    return leader;
  }

  /**
   * Loads the newest producer snapshot at or below the log end and replays the batches after
   * it (from the log start if it is older, or if there is none); then forgets the producers whose
   * last batch retention removed (Kafka's loadProducerState and truncateHead).
   */
  private async loadProducerState(): Promise<void> {
    const snapshot = await loadNewestProducerSnapshot(this.log.dir, this.logEndOffset);
    this.producerSnapshotOffset = snapshot?.offset;
    this.producers.load(snapshot?.entries ?? []);
    await this.replayProducerBatches(snapshot?.offset ?? 0n);
    this.producers.truncateHead(this.log.logStartOffset);
  }

  /** Records the producer batches of the log from `offset` to its end. */
  private async replayProducerBatches(offset: bigint): Promise<void> {
    let next = offset;
    for (;;) {
      // Retention may move the log start while the replay runs (read checks it at once, with no
      // await before); what it removed is not replayed.
      next = maxBigint(next, this.log.logStartOffset);
      if (next >= this.logEndOffset) break;
      const { records } = await this.log.read(next, REPLAY_READ_BYTES);
      if (records.length === 0) break;
      next = this.recordProducerBatches(records);
    }
  }

  /** Records the idempotent batches of `records`; returns the offset after the last batch. */
  private recordProducerBatches(records: Buffer): bigint {
    let next = 0n;
    for (const batch of batchesIn(records)) {
      const producerBatch = producerBatchOf(batch);
      if (producerBatch.producerId >= 0n) {
        this.producers.record(producerBatch, batch.baseOffset, batch.lastOffset);
      }
      next = batch.nextOffset;
    }
    return next;
  }

  /**
   * Truncates the log and reloads the producer state (Kafka's truncateAndReload). The snapshots
   * above `offset` go first: after a crash between the two steps, and once the log grew past
   * them again, the next open would trust a snapshot of records the log no longer has.
   */
  private async truncateAndReload(offset: bigint): Promise<void> {
    await deleteProducerSnapshots(this.log.dir, (snapshotOffset) => snapshotOffset > offset);
    await this.log.truncateTo(offset);
    await this.loadProducerState();
  }

  /** Whether a snapshot at `offset`, the log end, is due; see snapshotProducerState. */
  private shouldSnapshotProducerState(offset: bigint, force: boolean): boolean {
    if (this.appendsInProgress > 0) return false;
    assert(
      this.producers.inFlightCount === 0,
      () => `${this.label}: ${this.producers.inFlightCount} producer batches in flight, no append`,
    );
    // Without a snapshot, an open replays from the log start: a snapshot there would save nothing.
    const replayStart = this.producerSnapshotOffset ?? this.log.logStartOffset;
    if (offset <= replayStart) return false;
    const activeSegmentBaseOffset = this.log.segmentBaseOffsets.at(-1) ?? 0n;
    return force || activeSegmentBaseOffset > replayStart;
  }

  /**
   * Keeps the newest PRODUCER_SNAPSHOTS_RETAINED snapshots, and of those below the log start
   * (retention removed what they describe) only `newest`.
   */
  private async deleteRetiredProducerSnapshots(newest: bigint): Promise<void> {
    const offsets = await listProducerSnapshotOffsets(this.log.dir);
    const retained = new Set(offsets.slice(-PRODUCER_SNAPSHOTS_RETAINED));
    const logStartOffset = this.log.logStartOffset;
    await deleteProducerSnapshots(
      this.log.dir,
      (offset) => offset !== newest && (!retained.has(offset) || offset < logStartOffset),
    );
  }

  /** Runs an append, counted so that no producer snapshot is taken while it is under way. */
  private async whileAppending<T>(append: () => Promise<T>): Promise<T> {
    this.appendsInProgress++;
    try {
      return await append();
    } finally {
      this.appendsInProgress--;
    }
  }

  /** Runs snapshot writes and truncations one after another, in call order. */
  private oneProducerSnapshotTaskAtATime<T>(task: () => Promise<T>): Promise<T> {
    const result = this.producerSnapshotTail.then(task);
    // The chain goes on whether or not this task failed; its caller sees the failure.
    this.producerSnapshotTail = result.catch(() => undefined);
    return result;
  }

  private get label(): string {
    return `${this.topic}-${this.partitionId}`;
  }
}

export function partitionKey(topicId: string, partitionId: number): string {
  return `${topicId}:${partitionId}`;
}

/** A produce request's records for one partition must be exactly one batch (as Kafka's v3+). */
function singleBatch(records: Buffer, label: string): RecordBatch {
  const batch = RecordBatch.view(records);
  if (batch.sizeInBytes !== records.length) {
    throw new WeirError(
      ErrorCode.CORRUPT_MESSAGE,
      `the records for ${label} must be one record batch of ${records.length} bytes; its header says ${batch.sizeInBytes}`,
    );
  }
  return batch;
}

function minBigint(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function maxBigint(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
