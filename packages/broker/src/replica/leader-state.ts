// The leader's view of one partition's replication: each follower's log end offset and last
// caught-up time, the high watermark, and the ISR as committed by the controller plus the change
// the leader has asked for (an AlterPartition in flight). Kafka's `Partition` and `Replica` on the
// leader, with the KIP-497 partition states. Pure: no I/O, time from an injected clock; the
// replica manager sends the AlterPartition proposals and applies what the controller commits.

import { ErrorCode, WeirError, assert } from '@weir/protocol';

/** A follower's log end offset before its first fetch from this leader (Kafka's UnknownOffset). */
export const UNKNOWN_OFFSET = -1n;

export interface LeaderStateOptions {
  readonly topicId: string;
  readonly partitionId: number;
  /** All assigned replicas, in preference order; includes the leader. */
  readonly replicas: readonly number[];
  /** The ISR as committed in the metadata log; includes the leader. */
  readonly isr: readonly number[];
  readonly leaderId: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
  /** The leader's log end offset (LEO) now. */
  readonly logEndOffset: bigint;
  /** The high watermark the leader starts from (its checkpointed or last known one). */
  readonly highWatermark: bigint;
  /**
   * Where this leader epoch starts in the log: a follower joins the ISR only once it has
   * reached it (Kafka's leaderEpochStartOffset). Defaults to `logEndOffset`, which is what it is
   * when a replica becomes leader.
   */
  readonly leaderEpochStartOffset?: bigint;
  /** Milliseconds; injected so that tests drive time. */
  readonly clock: () => number;
  /** `replica.lag.time.max.ms`: how long an ISR follower may go without catching up. */
  readonly replicaLagTimeMaxMs: number;
}

/** The partition state the controller committed (a PartitionImage fits). */
export interface CommittedPartitionState {
  readonly isr: readonly number[];
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
  /** The assignment, when it changes (reassignment); the current one is kept when absent. */
  readonly replicas?: readonly number[];
  /** When given, must be this leader: a leadership change builds a new LeaderState instead. */
  readonly leader?: number;
}

/**
 * What applyPartitionState did: `stale` — older than what the leader has (ignored);
 * `applied` — new ISR/assignment in the same leader epoch; `new-leader-epoch` — the leader epoch
 * was bumped with this broker still leading: the caller records the epoch at
 * `leaderEpochStartOffset` in the leader-epoch cache.
 */
export type PartitionStateChange = 'stale' | 'applied' | 'new-leader-epoch';

/** An AlterPartition request (KIP-497) as the leader sends it to the controller. */
export interface AlterPartitionProposal {
  readonly topicId: string;
  readonly partitionId: number;
  readonly leaderId: number;
  readonly leaderEpoch: number;
  /** The partition epoch the new ISR was computed from. */
  readonly partitionEpoch: number;
  readonly newIsr: readonly number[];
}

/** A follower's replication state as the leader sees it (Kafka's ReplicaState). */
export interface FollowerState {
  readonly brokerId: number;
  /** The offset of its last fetch, or UNKNOWN_OFFSET before its first fetch from this leader. */
  readonly logEndOffset: bigint;
  /** The last time it was known to be caught up to the leader; undefined for never. */
  readonly lastCaughtUpTimeMs: number | undefined;
  /** When its last fetch happened; undefined before its first fetch. */
  readonly lastFetchTimeMs: number | undefined;
  /** The leader's LEO at its last fetch, or UNKNOWN_OFFSET. */
  readonly lastFetchLeaderLogEndOffset: bigint;
}

/** Whether an acks=all produce whose last offset is `requiredOffset - 1` may be answered. */
export type AcksAllStatus =
  | { readonly done: false }
  | {
      readonly done: true;
      readonly error: ErrorCode.NONE | ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND;
    };

interface MutableFollowerState {
  logEndOffset: bigint;
  lastCaughtUpTimeMs: number | undefined;
  lastFetchTimeMs: number | undefined;
  lastFetchLeaderLogEndOffset: bigint;
}

export class LeaderState {
  readonly topicId: string;
  readonly partitionId: number;
  readonly leaderId: number;
  readonly replicaLagTimeMaxMs: number;
  private readonly clock: () => number;
  private replicaIds: readonly number[];
  private committedIsr: readonly number[];
  /** The ISR of the AlterPartition in flight, if any (KIP-497's PendingExpandIsr/ShrinkIsr). */
  private proposedIsr: readonly number[] | undefined;
  private epoch: number;
  private partitionEpochValue: number;
  private leaderLogEndOffset: bigint;
  private highWatermarkValue: bigint;
  private epochStartOffset: bigint;
  private readonly followers = new Map<number, MutableFollowerState>();

  constructor(options: LeaderStateOptions) {
    if (!Number.isFinite(options.replicaLagTimeMaxMs) || options.replicaLagTimeMaxMs <= 0) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `replicaLagTimeMaxMs must be a positive number of milliseconds, got ${options.replicaLagTimeMaxMs}`,
      );
    }
    this.topicId = options.topicId;
    this.partitionId = options.partitionId;
    this.leaderId = options.leaderId;
    this.replicaLagTimeMaxMs = options.replicaLagTimeMaxMs;
    this.clock = options.clock;
    this.replicaIds = [...options.replicas];
    this.committedIsr = [...options.isr];
    this.epoch = options.leaderEpoch;
    this.partitionEpochValue = options.partitionEpoch;
    this.leaderLogEndOffset = options.logEndOffset;
    this.highWatermarkValue = options.highWatermark;
    this.epochStartOffset = options.leaderEpochStartOffset ?? options.logEndOffset;
    assert(
      options.highWatermark >= 0n,
      () => `${this.label}: high watermark ${options.highWatermark} is negative`,
    );
    assert(
      this.epochStartOffset <= this.leaderLogEndOffset,
      () =>
        `${this.label}: leader epoch start offset ${this.epochStartOffset} is past the log end offset ${this.leaderLogEndOffset}`,
    );
    this.assertMembership(this.replicaIds, this.committedIsr);
    this.assertHighWatermarkBelowLogEnd();
    // A new leader knows nothing of its followers' logs yet; ISR members get a full lag window
    // to fetch, the others start as never caught up (Kafka's Replica.resetReplicaState).
    const now = this.clock();
    for (const id of this.followerIds()) {
      this.followers.set(id, newFollowerState(this.committedIsr.includes(id) ? now : undefined));
    }
  }

  get replicas(): readonly number[] {
    return this.replicaIds;
  }
  /** The ISR committed in the metadata log. */
  get isr(): readonly number[] {
    return this.committedIsr;
  }
  /** The ISR of the AlterPartition in flight, or undefined when none is. */
  get pendingIsr(): readonly number[] | undefined {
    return this.proposedIsr;
  }
  get hasPendingIsrChange(): boolean {
    return this.proposedIsr !== undefined;
  }
  /**
   * The committed ISR plus any replica the pending change adds (KIP-497's "maximal ISR"). The
   * high watermark waits for all of these, so neither a shrink (whose removed replicas stay
   * until committed) nor an expansion (whose added replicas count at once) can make an acks=all
   * write acknowledged on fewer replicas than the ISR the controller may commit.
   */
  get maximalIsr(): readonly number[] {
    if (this.proposedIsr === undefined) return this.committedIsr;
    const added = this.proposedIsr.filter((id) => !this.committedIsr.includes(id));
    return [...this.committedIsr, ...added];
  }
  get leaderEpoch(): number {
    return this.epoch;
  }
  get partitionEpoch(): number {
    return this.partitionEpochValue;
  }
  get logEndOffset(): bigint {
    return this.leaderLogEndOffset;
  }
  get highWatermark(): bigint {
    return this.highWatermarkValue;
  }
  get leaderEpochStartOffset(): bigint {
    return this.epochStartOffset;
  }

  follower(brokerId: number): FollowerState | undefined {
    const state = this.followers.get(brokerId);
    return state === undefined ? undefined : { brokerId, ...state };
  }

  /**
   * Records a follower's fetch at `fetchOffset` (its log end offset), served when the leader's
   * LEO was `leaderLogEndOffsetAtFetch`. Kafka's Replica.updateFetchStateOrThrow: the follower
   * counts as caught up at this fetch's time when it asked for the leader's LEO, and at the
   * previous fetch's time when it has reached the LEO the leader had then. Call it only for a
   * fetch that did not diverge (a diverging follower's offset is not in the leader's log).
   */
  updateFollowerFetch(
    followerId: number,
    fetchOffset: bigint,
    leaderLogEndOffsetAtFetch: bigint = this.leaderLogEndOffset,
  ): void {
    const state = this.followers.get(followerId);
    if (state === undefined) {
      throw new WeirError(
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        `broker ${followerId} is not a follower of ${this.label} (replicas ${formatIds(this.replicaIds)})`,
      );
    }
    if (fetchOffset < 0n || fetchOffset > leaderLogEndOffsetAtFetch) {
      throw new WeirError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `follower ${followerId} fetched ${this.label} at offset ${fetchOffset}, outside [0, ${leaderLogEndOffsetAtFetch}]`,
      );
    }
    assert(
      leaderLogEndOffsetAtFetch <= this.leaderLogEndOffset,
      () =>
        `${this.label}: leader LEO at fetch ${leaderLogEndOffsetAtFetch} is past the current LEO ${this.leaderLogEndOffset}`,
    );
    const now = this.clock();
    if (fetchOffset >= leaderLogEndOffsetAtFetch) {
      state.lastCaughtUpTimeMs = maxTime(state.lastCaughtUpTimeMs, now);
    } else if (fetchOffset >= state.lastFetchLeaderLogEndOffset) {
      state.lastCaughtUpTimeMs = maxTime(state.lastCaughtUpTimeMs, state.lastFetchTimeMs);
    }
    state.logEndOffset = fetchOffset;
    state.lastFetchLeaderLogEndOffset = leaderLogEndOffsetAtFetch;
    state.lastFetchTimeMs = now;
  }

  /** After a leader append: the leader's LEO only grows while it leads. */
  updateLeaderLogEndOffset(logEndOffset: bigint): void {
    assert(
      logEndOffset >= this.leaderLogEndOffset,
      () =>
        `${this.label}: leader log end offset went back from ${this.leaderLogEndOffset} to ${logEndOffset}`,
    );
    this.leaderLogEndOffset = logEndOffset;
  }

  /**
   * Moves the high watermark to the smallest LEO over the maximal ISR (leader included), if
   * that is higher than it is. Returns the new high watermark, or undefined when it did not
   * move: it never goes backwards (Kafka's maybeIncrementLeaderHW).
   */
  maybeAdvanceHighWatermark(): bigint | undefined {
    let candidate = this.leaderLogEndOffset;
    for (const id of this.maximalIsr) {
      if (id === this.leaderId) continue;
      const followerEnd = this.followerOrThrow(id).logEndOffset;
      if (followerEnd < candidate) candidate = followerEnd;
    }
    if (candidate <= this.highWatermarkValue) return undefined;
    this.highWatermarkValue = candidate;
    this.assertHighWatermarkBelowLogEnd();
    return candidate;
  }

  /**
   * ISR followers that have not caught up to the leader's LEO within replicaLagTimeMaxMs: a
   * follower is in sync while its LEO equals the leader's or `now - lastCaughtUpTimeMs` is at
   * most the limit (Kafka's Replica.isCaughtUp), so it leaves one millisecond after the limit.
   * Never the leader.
   */
  outOfSyncReplicas(now: number = this.clock()): number[] {
    return this.committedIsr.filter((id) => id !== this.leaderId && !this.isCaughtUp(id, now));
  }

  /**
   * Replicas outside the maximal ISR that may join it (Kafka's isFollowerInSync): their LEO has
   * reached the high watermark and the start of this leader epoch, and `isEligible` says so —
   * fenced or shutting-down brokers are never added back (KIP-841).
   */
  catchingUpReplicas(isEligible: (brokerId: number) => boolean = () => true): number[] {
    const maximal = this.maximalIsr;
    return this.followerIds().filter((id) => {
      if (maximal.includes(id)) return false;
      const end = this.followerOrThrow(id).logEndOffset;
      return end >= this.highWatermarkValue && end >= this.epochStartOffset && isEligible(id);
    });
  }

  /** Whether the committed ISR is large enough for acks=all (`min.insync.replicas`). */
  isrSatisfies(minInsyncReplicas: number): boolean {
    return this.committedIsr.length >= minInsyncReplicas;
  }

  /**
   * For a waiting acks=all produce (Kafka's checkEnoughReplicasReachOffset): done once the high
   * watermark reaches `requiredOffset` (the batch's last offset + 1), with
   * NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below `minInsyncReplicas` meanwhile.
   * The committed ISR is the right one to count: the high watermark already waited for the
   * maximal ISR, which contains it.
   */
  checkEnoughReplicasReachOffset(requiredOffset: bigint, minInsyncReplicas: number): AcksAllStatus {
    if (this.highWatermarkValue < requiredOffset) return { done: false };
    return {
      done: true,
      error: this.isrSatisfies(minInsyncReplicas)
        ? ErrorCode.NONE
        : ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    };
  }

  /**
   * Marks `newIsr` as the ISR change in flight and returns the AlterPartition to send. Only one
   * change is in flight at a time; it ends when the controller's answer or the metadata log
   * brings a newer partition state (applyPartitionState), or abortIsrChange.
   */
  proposeIsr(newIsr: readonly number[]): AlterPartitionProposal {
    assert(
      this.proposedIsr === undefined,
      () =>
        `${this.label}: ISR change to ${formatIds(newIsr)} proposed while ${formatIds(this.proposedIsr ?? [])} is in flight`,
    );
    this.assertMembership(this.replicaIds, newIsr);
    this.proposedIsr = [...newIsr];
    return {
      topicId: this.topicId,
      partitionId: this.partitionId,
      leaderId: this.leaderId,
      leaderEpoch: this.epoch,
      partitionEpoch: this.partitionEpochValue,
      newIsr: this.proposedIsr,
    };
  }

  /** Proposes removing the out-of-sync followers, unless a change is already in flight. */
  maybeShrinkIsr(now: number = this.clock()): AlterPartitionProposal | undefined {
    if (this.proposedIsr !== undefined) return undefined;
    const outOfSync = this.outOfSyncReplicas(now);
    if (outOfSync.length === 0) return undefined;
    return this.proposeIsr(this.committedIsr.filter((id) => !outOfSync.includes(id)));
  }

  /** Proposes adding the caught-up eligible replicas, unless a change is already in flight. */
  maybeExpandIsr(
    isEligible: (brokerId: number) => boolean = () => true,
  ): AlterPartitionProposal | undefined {
    if (this.proposedIsr !== undefined) return undefined;
    const catchingUp = this.catchingUpReplicas(isEligible);
    if (catchingUp.length === 0) return undefined;
    return this.proposeIsr([...this.committedIsr, ...catchingUp]);
  }

  /**
   * Drops the change in flight, for an AlterPartition that the controller refused without a
   * newer state to apply (Kafka reverts to the last committed state on such errors).
   */
  abortIsrChange(): void {
    this.proposedIsr = undefined;
  }

  /**
   * Applies a partition state the controller committed: its answer to an AlterPartition or a
   * metadata-log change. States older than the current one are ignored. A newer leader epoch
   * with this broker still leading starts the epoch at the current LEO and resets the followers'
   * fetch state the way Kafka's makeLeader does for a leader that stays leader.
   */
  applyPartitionState(state: CommittedPartitionState): PartitionStateChange {
    if (state.leader !== undefined) {
      assert(
        state.leader === this.leaderId,
        () => `${this.label}: partition state names leader ${state.leader}, not ${this.leaderId}`,
      );
    }
    const newLeaderEpoch = state.leaderEpoch > this.epoch;
    if (state.leaderEpoch < this.epoch) return 'stale';
    if (!newLeaderEpoch && state.partitionEpoch <= this.partitionEpochValue) return 'stale';
    assert(
      state.partitionEpoch > this.partitionEpochValue,
      () =>
        `${this.label}: leader epoch ${state.leaderEpoch} came with partition epoch ${state.partitionEpoch}, not above ${this.partitionEpochValue}`,
    );
    const replicas = state.replicas ?? this.replicaIds;
    this.assertMembership(replicas, state.isr);
    this.replicaIds = [...replicas];
    this.committedIsr = [...state.isr];
    this.proposedIsr = undefined;
    this.partitionEpochValue = state.partitionEpoch;
    this.syncFollowers();
    if (!newLeaderEpoch) return 'applied';
    this.epoch = state.leaderEpoch;
    this.epochStartOffset = this.leaderLogEndOffset;
    this.resetFollowersForNewEpoch();
    return 'new-leader-epoch';
  }

  private get label(): string {
    return `partition ${this.topicId}:${this.partitionId}`;
  }

  private followerIds(): number[] {
    return this.replicaIds.filter((id) => id !== this.leaderId);
  }

  private followerOrThrow(id: number): MutableFollowerState {
    const state = this.followers.get(id);
    assert(state !== undefined, () => `${this.label}: no state for replica ${id}`);
    return state;
  }

  private isCaughtUp(id: number, now: number): boolean {
    const state = this.followerOrThrow(id);
    if (state.logEndOffset === this.leaderLogEndOffset) return true;
    return (
      state.lastCaughtUpTimeMs !== undefined &&
      now - state.lastCaughtUpTimeMs <= this.replicaLagTimeMaxMs
    );
  }

  /** Adds state for new replicas, drops state of removed ones. */
  private syncFollowers(): void {
    const ids = new Set(this.followerIds());
    for (const id of this.followers.keys()) if (!ids.has(id)) this.followers.delete(id);
    for (const id of ids) {
      if (!this.followers.has(id)) this.followers.set(id, newFollowerState(undefined));
    }
  }

  /** Kafka's resetReplicaState with isNewLeader = false: known LEOs are kept. */
  private resetFollowersForNewEpoch(): void {
    const now = this.clock();
    for (const [id, state] of this.followers) {
      if (this.committedIsr.includes(id)) state.lastCaughtUpTimeMs = now;
      state.lastFetchLeaderLogEndOffset = this.leaderLogEndOffset;
      state.lastFetchTimeMs = now;
    }
  }

  private assertMembership(replicas: readonly number[], isr: readonly number[]): void {
    assert(
      new Set(replicas).size === replicas.length,
      () => `${this.label}: replicas ${formatIds(replicas)} repeat a broker`,
    );
    assert(
      new Set(isr).size === isr.length,
      () => `${this.label}: ISR ${formatIds(isr)} repeats a broker`,
    );
    assert(
      isr.every((id) => replicas.includes(id)),
      () =>
        `${this.label}: ISR ${formatIds(isr)} is not a subset of replicas ${formatIds(replicas)}`,
    );
    assert(
      isr.includes(this.leaderId),
      () => `${this.label}: leader ${this.leaderId} is not in the ISR ${formatIds(isr)}`,
    );
  }

  private assertHighWatermarkBelowLogEnd(): void {
    assert(
      this.highWatermarkValue <= this.leaderLogEndOffset,
      () =>
        `${this.label}: high watermark ${this.highWatermarkValue} is past the leader's log end offset ${this.leaderLogEndOffset}`,
    );
  }
}

function newFollowerState(lastCaughtUpTimeMs: number | undefined): MutableFollowerState {
  return {
    logEndOffset: UNKNOWN_OFFSET,
    lastCaughtUpTimeMs,
    lastFetchTimeMs: undefined,
    lastFetchLeaderLogEndOffset: UNKNOWN_OFFSET,
  };
}

function maxTime(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.max(a, b);
}

function formatIds(ids: readonly number[]): string {
  return `[${ids.join(', ')}]`;
}
