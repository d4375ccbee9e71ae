// The broker's replicas (Kafka's ReplicaManager): it turns each MetadataDelta into leader and
// follower transitions for this broker's partitions, owns their logs, answers produce and
// fetch through them, and keeps ISRs honest by proposing AlterPartition changes to the
// controller. Waiting requests (acks=all produces, long-polling fetches) sit in purgatories
// that the partitions' progress wakes up; nothing polls.

import {
  ConfigResourceType,
  type MetadataDelta,
  type MetadataImage,
  type PartitionImage,
} from '@weir/metadata';
import { ErrorCode, WeirError, isWeirError } from '@weir/protocol';
import {
  DEFAULT_LOG_CONFIG,
  type LogConfig,
  type LogManager,
  type TopicPartition,
  type TopicPartitionOffset,
  readTopicPartitionOffsets,
  writeTopicPartitionOffsets,
} from '@weir/storage';
import { join } from 'node:path';
import { Purgatory } from '../purgatory.js';
import type { AlterPartitionProposal } from './leader-state.js';
import { Partition, partitionKey } from './partition.js';
import { readPartitionMetadata, writePartitionMetadata } from './partition-metadata.js';

export interface ReplicaManagerOptions {
  readonly brokerId: number;
  readonly logManager: LogManager;
  readonly clock?: () => number;
  /** `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR. */
  readonly replicaLagTimeMaxMs?: number;
  /** Sends an ISR change to the controller; resolves with the committed partition state. */
  readonly alterPartition: (proposal: AlterPartitionProposal) => Promise<CommittedState>;
  /** Whether a broker may join an ISR: registered, unfenced, not shutting down. */
  readonly isEligibleReplica?: (brokerId: number) => boolean;
  /**
   * How often the partitions' high watermarks are written to REPLICATION_OFFSET_CHECKPOINT
   * (`replica.high.watermark.checkpoint.interval.ms`), and producer snapshots are taken where a
   * segment rolled since the last one; both are also written once on close.
   */
  readonly highWatermarkCheckpointIntervalMs?: number;
  /** Waiting produce and fetch requests beyond which new ones are refused. */
  readonly maxWatchedOperations?: number;
  readonly onTransition?: (event: ReplicaTransition) => void;
}

export interface CommittedState {
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
  readonly isr: readonly number[];
}

export type ReplicaTransition =
  | { readonly kind: 'leader' | 'follower'; readonly partition: Partition }
  | {
      readonly kind: 'stopped';
      readonly topic: string;
      readonly partitionId: number;
      readonly deleted: boolean;
    }
  | {
      /** A log folder of another topic's, or of a partition this broker no longer hosts. */
      readonly kind: 'stray-log-deleted';
      readonly topic: string;
      readonly partitionId: number;
      readonly reason: string;
    }
  | { readonly kind: 'isr-change-failed'; readonly partition: Partition; readonly error: unknown }
  | {
      /** The replica's log could not be opened; it is tried again with every checkpoint tick. */
      readonly kind: 'open-failed';
      readonly topic: string;
      readonly partitionId: number;
      readonly error: unknown;
    }
  | {
      /** The high-watermark checkpoint could not be read: every HW starts at the log start. */
      readonly kind: 'high-watermark-checkpoint-unreadable';
      readonly error: unknown;
    };

/** Told when partitions start or stop following a leader: the fetcher manager's input. */
export interface FollowerChanges {
  readonly follow: readonly Partition[];
  readonly unfollow: readonly Partition[];
}

export const DEFAULT_REPLICA_LAG_TIME_MAX_MS = 30_000;
export const DEFAULT_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS = 5_000;
/**
 * Every partition's high watermark, in the partition logs' folder: one file, one fsync per
 * checkpoint however many partitions (Kafka's name and format).
 */
export const REPLICATION_OFFSET_CHECKPOINT = 'replication-offset-checkpoint';
const DEFAULT_MAX_WATCHED_OPERATIONS = 10_000;

export class ReplicaManager {
  private readonly partitions = new Map<string, Partition>();
  readonly producePurgatory: Purgatory<string>;
  readonly fetchPurgatory: Purgatory<string>;
  private readonly followerListeners: ((changes: FollowerChanges) => void)[] = [];
  private applying: Promise<void> = Promise.resolve();
  private readonly clock: () => number;
  private readonly timers: NodeJS.Timeout[] = [];
  private checkpointing: Promise<void> | undefined;
  /** The checkpoint read at start-up, by log folder name; read once, on first use. */
  private checkpointedHighWatermarks: Promise<Map<string, bigint>> | undefined;
  private lastCheckpoint: string | undefined;
  /** Replicas of this broker whose log failed to open, by key: tried again until they open. */
  private readonly unopened = new Map<string, { topicId: string; partitionId: number }>();
  private image: MetadataImage | undefined;
  private closed = false;

  constructor(private readonly options: ReplicaManagerOptions) {
    this.clock = options.clock ?? Date.now;
    const maxWatchedOperations = options.maxWatchedOperations ?? DEFAULT_MAX_WATCHED_OPERATIONS;
    this.producePurgatory = new Purgatory({
      name: 'produce',
      maxWatchedOperations,
      clock: this.clock,
    });
    this.fetchPurgatory = new Purgatory({ name: 'fetch', maxWatchedOperations, clock: this.clock });
  }

  get brokerId(): number {
    return this.options.brokerId;
  }

  get replicaLagTimeMaxMs(): number {
    return this.options.replicaLagTimeMaxMs ?? DEFAULT_REPLICA_LAG_TIME_MAX_MS;
  }

  /** The image of the last delta applied. */
  get metadataImage(): MetadataImage | undefined {
    return this.image;
  }

  onFollowerChanges(listener: (changes: FollowerChanges) => void): void {
    this.followerListeners.push(listener);
  }

  /**
   * Starts the periodic tasks: the ISR check (every half replica.lag.time.max.ms, as Kafka) and
   * the partition checkpoints. `onError` hears of a checkpoint that failed; it runs again at the
   * next interval.
   */
  startBackgroundTasks(onError: (task: string, error: unknown) => void = () => undefined): void {
    if (this.timers.length > 0) return;
    const every = (intervalMs: number, task: () => void) => {
      const timer = setInterval(task, Math.max(1, intervalMs));
      timer.unref();
      this.timers.push(timer);
    };
    every(this.replicaLagTimeMaxMs / 2, () => this.maintainIsrs());
    every(
      this.options.highWatermarkCheckpointIntervalMs ??
        DEFAULT_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS,
      () => {
        this.checkpointPartitions().catch((error: unknown) => onError('checkpoint', error));
        if (this.unopened.size > 0) void this.enqueue(() => this.retryUnopened());
      },
    );
  }

  /**
   * Writes every partition's high watermark to REPLICATION_OFFSET_CHECKPOINT, so that a restarted
   * leader serves consumers up to it at once, and takes a producer snapshot where one is due (`force`:
   * wherever the log grew since the last), so that a restarted replica replays only the tail of
   * its log. Runs never overlap; a call during a run joins it. A partition that fails does not
   * stop the others; the first failure is thrown at the end.
   */
  checkpointPartitions(options: { force?: boolean } = {}): Promise<void> {
    if (this.checkpointing === undefined) {
      const run = this.writeCheckpoints(options.force ?? false).finally(() => {
        if (this.checkpointing === run) this.checkpointing = undefined;
      });
      this.checkpointing = run;
    }
    return this.checkpointing;
  }

  private async writeCheckpoints(force: boolean): Promise<void> {
    let failure: Error | undefined;
    const fail = (error: unknown) => {
      failure ??= error instanceof Error ? error : new Error(String(error));
    };
    await this.writeHighWatermarks().catch(fail);
    // A partition removed from the map meanwhile is skipped; one being written when its log is
    // deleted is waited for (see apply).
    for (const partition of this.partitions.values()) {
      await partition.snapshotProducerState({ force }).catch(fail);
    }
    if (failure !== undefined) throw failure;
  }

  /** Writes REPLICATION_OFFSET_CHECKPOINT when any high watermark changed since the last write. */
  private async writeHighWatermarks(): Promise<void> {
    const checkpointed = await this.loadHighWatermarks();
    const entries = new Map<string, TopicPartitionOffset>();
    // Logs that no delta has opened as a replica yet (at start-up) keep their checkpointed HW;
    // logs deleted since drop out.
    for (const [tp] of this.options.logManager.allLogs()) {
      const offset = checkpointed.get(logName(tp.topic, tp.partition));
      if (offset !== undefined) entries.set(logName(tp.topic, tp.partition), { ...tp, offset });
    }
    for (const partition of this.partitions.values()) {
      const { topic, partitionId: p } = partition;
      entries.set(logName(topic, p), { topic, partition: p, offset: partition.highWatermark });
    }
    const sorted = [...entries.keys()].sort().map((name) => entries.get(name)!);
    const content = JSON.stringify(sorted, (_, value: unknown) =>
      typeof value === 'bigint' ? value.toString() : value,
    );
    if (content === this.lastCheckpoint) return;
    await writeTopicPartitionOffsets(this.highWatermarkCheckpointPath, sorted);
    this.lastCheckpoint = content;
  }

  private get highWatermarkCheckpointPath(): string {
    return join(this.options.logManager.dataDir, REPLICATION_OFFSET_CHECKPOINT);
  }

  /** The HWs checkpointed before start-up; an unreadable file is reported and read as empty. */
  private loadHighWatermarks(): Promise<Map<string, bigint>> {
    this.checkpointedHighWatermarks ??= readTopicPartitionOffsets(
      this.highWatermarkCheckpointPath,
    ).then(
      (entries) =>
        new Map((entries ?? []).map((e) => [logName(e.topic, e.partition), e.offset] as const)),
      (error: unknown) => {
        // Safe to go on: a HW that starts lower only waits for the followers' next fetches.
        this.options.onTransition?.({ kind: 'high-watermark-checkpoint-unreadable', error });
        return new Map<string, bigint>();
      },
    );
    return this.checkpointedHighWatermarks;
  }

  partition(topicId: string, partitionId: number): Partition | undefined {
    return this.partitions.get(partitionKey(topicId, partitionId));
  }

  /** The partition of a topic named by the client, as leader or not; UNKNOWN_TOPIC_OR_PARTITION. */
  partitionByName(topic: string, partitionId: number): Partition {
    const topicImage = this.image?.topic(topic);
    const partition =
      topicImage === undefined ? undefined : this.partition(topicImage.topicId, partitionId);
    if (partition !== undefined) return partition;
    const assigned = topicImage?.partitions.get(partitionId);
    if (assigned?.leader === this.brokerId) {
      // The image names this broker; the delta that opens its replica is still being applied.
      throw new WeirError(
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        `broker ${this.brokerId} is becoming the leader of ${topic}-${partitionId} and cannot serve it yet; retry shortly`,
      );
    }
    if (assigned !== undefined) {
      throw new WeirError(
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        `broker ${this.brokerId} does not host ${topic}-${partitionId}; its leader is broker ${assigned.leader}`,
      );
    }
    throw new WeirError(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      `topic-partition ${topic}-${partitionId} does not exist`,
    );
  }

  allPartitions(): Partition[] {
    return [...this.partitions.values()];
  }

  /** Applies one metadata delta; deltas apply one at a time, in order. */
  applyDelta(delta: MetadataDelta): Promise<void> {
    return this.enqueue(() => this.apply(delta));
  }

  /** Runs `task` after the deltas and tasks queued before it. */
  private enqueue(task: () => Promise<void>): Promise<void> {
    if (this.closed) return Promise.resolve();
    const next = this.applying.then(task);
    this.applying = next.catch(() => undefined);
    return next;
  }

  /** Wakes the requests waiting on a partition after its log end or high watermark moved. */
  progressed(partition: Partition): void {
    this.producePurgatory.checkAndComplete(partition.key);
    this.fetchPurgatory.checkAndComplete(partition.key);
  }

  /**
   * After a follower's fetch: wakes waiting requests, and proposes the follower back into the
   * ISR as soon as it has caught up (Kafka expands on the fetch path; shrinking is periodic).
   */
  followerFetched(partition: Partition): void {
    this.progressed(partition);
    const leader = partition.leader;
    if (leader === undefined || this.closed) return;
    const proposal = leader.maybeExpandIsr(this.options.isEligibleReplica ?? (() => true));
    if (proposal !== undefined) void this.sendIsrChange(partition, proposal);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    this.producePurgatory.shutdown();
    this.fetchPurgatory.shutdown();
    await this.applying;
    // The last run may have started before the final high watermarks: write them once more.
    await this.checkpointing?.catch(() => undefined);
    await this.checkpointPartitions({ force: true });
  }

  private async apply(delta: MetadataDelta): Promise<void> {
    this.image = delta.image;
    const changes = delta.leadershipChangesFor(this.brokerId);
    const { follow, unfollow } = await this.openReplicas(
      delta.image,
      changes.leader,
      changes.follower,
    );
    for (const { partition: state, deleted } of changes.stopped) {
      const key = partitionKey(state.topicId, state.partitionId);
      const partition = this.partitions.get(key);
      if (partition === undefined) continue;
      this.partitions.delete(key);
      unfollow.push(partition);
      const topic = partition.topic;
      if (deleted) {
        // A checkpoint run may be writing into the folder: let it finish first.
        await this.checkpointing?.catch(() => undefined);
        await this.options.logManager.deleteLog({ topic, partition: state.partitionId });
      }
      this.options.onTransition?.({
        kind: 'stopped',
        topic,
        partitionId: state.partitionId,
        deleted,
      });
    }
    // ISR and epoch changes of partitions whose leadership did not move for this broker.
    for (const change of delta.partitionChanges) {
      if (change.after === undefined || change.leaderChanged) continue;
      const partition = this.partitions.get(partitionKey(change.topicId, change.partitionId));
      if (partition?.isLeader === true) {
        partition.applyState(change.after);
        this.progressed(partition);
      }
    }
    this.applyConfigChanges(delta);
    this.announce(follow, unfollow);
  }

  /** Wakes requests on partitions no longer led here, and tells the fetchers what to follow. */
  private announce(follow: Partition[], unfollow: Partition[]): void {
    for (const partition of unfollow) this.progressed(partition);
    if (follow.length > 0 || unfollow.length > 0) {
      for (const listener of this.followerListeners) listener({ follow, unfollow });
    }
  }

  private async retryUnopened(): Promise<void> {
    const { follow, unfollow } = await this.openReplicas(this.image, [], []);
    this.announce(follow, unfollow);
  }

  /**
   * Makes this broker the leader or a follower of each partition given, opening replicas as
   * needed, and tries again the replicas that failed to open before (with their state in
   * `image`). A replica that fails to open (a storage error) does not hold up the others: it is
   * reported and kept for the next try. Tells the fetcher manager what to follow.
   */
  private async openReplicas(
    image: MetadataImage | undefined,
    leader: readonly PartitionImage[],
    follower: readonly PartitionImage[],
  ): Promise<{ follow: Partition[]; unfollow: Partition[] }> {
    const follow: Partition[] = [];
    const unfollow: Partition[] = [];
    if (image === undefined) return { follow, unfollow };
    const states = [...leader, ...follower];
    const named = new Set(states.map((state) => partitionKey(state.topicId, state.partitionId)));
    for (const [key, { topicId, partitionId }] of [...this.unopened]) {
      this.unopened.delete(key);
      const state = image.partition(topicId, partitionId);
      if (state === undefined || !state.replicas.includes(this.brokerId) || named.has(key)) {
        continue;
      }
      states.push(state);
    }
    for (const state of states) {
      let partition: Partition;
      try {
        partition = await this.getOrCreate(image, state);
      } catch (error) {
        const key = partitionKey(state.topicId, state.partitionId);
        this.unopened.set(key, { topicId: state.topicId, partitionId: state.partitionId });
        const topic = image.topicById(state.topicId)?.name ?? state.topicId;
        this.options.onTransition?.({
          kind: 'open-failed',
          topic,
          partitionId: state.partitionId,
          error,
        });
        continue;
      }
      if (state.leader === this.brokerId) {
        if (!partition.isLeader) unfollow.push(partition);
        partition.makeLeader(state);
        this.options.onTransition?.({ kind: 'leader', partition });
      } else {
        partition.makeFollower(state);
        follow.push(partition);
        this.options.onTransition?.({ kind: 'follower', partition });
      }
    }
    return { follow, unfollow };
  }

  private async getOrCreate(image: MetadataImage, state: PartitionImage): Promise<Partition> {
    const key = partitionKey(state.topicId, state.partitionId);
    const existing = this.partitions.get(key);
    if (existing !== undefined) return existing;
    const topic = image.topicById(state.topicId);
    if (topic === undefined) {
      throw new WeirError(ErrorCode.ILLEGAL_STATE, `partition ${key} of an unknown topic`);
    }
    const tp = { topic: topic.name, partition: state.partitionId };
    const { logManager } = this.options;
    let log = await logManager.getOrCreateLog(tp, logConfigOf(image, topic.name));
    const storedTopicId = await readPartitionMetadata(log.dir);
    if (storedTopicId !== undefined && storedTopicId !== topic.topicId) {
      // The folder is a deleted topic's of the same name: its records must not be mistaken for
      // this topic's (see partition-metadata.ts).
      await logManager.deleteLog(tp);
      this.options.onTransition?.({
        kind: 'stray-log-deleted',
        topic: topic.name,
        partitionId: state.partitionId,
        reason: `the folder held topic id ${storedTopicId}, not ${topic.topicId}`,
      });
      log = await logManager.getOrCreateLog(tp, logConfigOf(image, topic.name));
    }
    if (storedTopicId !== topic.topicId) await writePartitionMetadata(log.dir, topic.topicId);
    const highWatermarks = await this.loadHighWatermarks();
    const partition = await Partition.open({
      highWatermark: highWatermarks.get(logName(topic.name, state.partitionId)),
      brokerId: this.brokerId,
      topic: topic.name,
      topicId: topic.topicId,
      partitionId: state.partitionId,
      log,
      clock: this.clock,
      replicaLagTimeMaxMs: this.replicaLagTimeMaxMs,
    });
    this.partitions.set(key, partition);
    return partition;
  }

  /**
   * Deletes the logs this broker holds for partitions it does not host: topics deleted, or
   * partitions moved away, while it was down (Kafka's stray replicas). Call it only once this
   * broker has applied the metadata log as far as the controller's (it is then unfenced):
   * before that, a log may belong to a topic whose records the broker has not applied yet. Runs
   * after the deltas already handed to applyDelta.
   */
  deleteStrayLogs(): Promise<TopicPartition[]> {
    const run = this.applying.then(async () => {
      const image = this.image;
      if (this.closed || image === undefined) return [];
      const deleted: TopicPartition[] = [];
      for (const [tp] of this.options.logManager.allLogs()) {
        const assigned = image.topic(tp.topic)?.partitions.get(tp.partition);
        if (assigned?.replicas.includes(this.brokerId) === true) continue;
        await this.options.logManager.deleteLog(tp);
        deleted.push(tp);
        this.options.onTransition?.({
          kind: 'stray-log-deleted',
          topic: tp.topic,
          partitionId: tp.partition,
          reason: 'this broker does not host the partition',
        });
      }
      return deleted;
    });
    this.applying = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Topic config changes reach the logs of the topic's partitions (retention, segment size…). */
  private applyConfigChanges(delta: MetadataDelta): void {
    const topics = new Set(
      delta.configChanges
        .filter((change) => change.resourceType === ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC)
        .map((change) => change.resourceName),
    );
    for (const name of topics) {
      const overrides = logConfigOf(delta.image, name);
      for (const partition of this.partitions.values()) {
        if (partition.topic === name) partition.log.updateConfig(overrides);
      }
    }
  }

  /** Proposes ISR shrinks and expansions of the partitions this broker leads. */
  private maintainIsrs(): void {
    const isEligible = this.options.isEligibleReplica ?? (() => true);
    for (const partition of this.partitions.values()) {
      const proposal = partition.isrChange(isEligible);
      if (proposal !== undefined) void this.sendIsrChange(partition, proposal);
    }
  }

  private async sendIsrChange(
    partition: Partition,
    proposal: AlterPartitionProposal,
  ): Promise<void> {
    try {
      const committed = await this.options.alterPartition(proposal);
      const image = this.image?.partition(partition.topicId, partition.partitionId);
      if (image === undefined || committed.leader !== this.brokerId) {
        partition.leader?.abortIsrChange();
        return;
      }
      partition.leader?.applyPartitionState({ ...committed, leader: this.brokerId });
      partition.leader?.maybeAdvanceHighWatermark();
      this.progressed(partition);
    } catch (error) {
      partition.leader?.abortIsrChange();
      if (!isWeirError(error) || error.code !== ErrorCode.INVALID_UPDATE_VERSION) {
        this.options.onTransition?.({ kind: 'isr-change-failed', partition, error });
      }
    }
  }
}

/** A partition's log folder name, `<topic>-<partition>`: how the checkpoint names it. */
function logName(topic: string, partitionId: number): string {
  return `${topic}-${partitionId}`;
}

/** Topic configs (Kafka's names) as log settings; unset ones keep the log defaults. */
const LOG_CONFIG_KEYS = {
  'segment.bytes': 'segmentBytes',
  'segment.ms': 'segmentMs',
  'retention.ms': 'retentionMs',
  'retention.bytes': 'retentionBytes',
  'max.message.bytes': 'maxMessageBytes',
} as const satisfies Record<string, keyof LogConfig>;

export function logConfigOf(image: MetadataImage, topic: string): Partial<LogConfig> {
  const configs = image.configsFor(ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, topic);
  const overrides: Record<string, number> = {};
  for (const [name, key] of Object.entries(LOG_CONFIG_KEYS)) {
    const value = configs.get(name);
    // A deleted config goes back to the default; the log keeps others as they are.
    overrides[key] = value === undefined ? DEFAULT_LOG_CONFIG[key] : Number(value);
  }
  return overrides;
}
