// The consumer's fetcher (Kafka's `Fetcher` and `OffsetFetcher`): a background loop that keeps
// at most one Fetch outstanding per leader broker, covering every assigned partition that broker
// leads which is not paused and has nothing buffered, while the buffer is below
// `maxPrefetchBytes` and `maxPrefetchRecords`; and that finds the start of partitions without a
// position with ListOffsets (-2 earliest, -1 latest, by `autoOffsetReset`).
//
// Like the producer's sender it never polls: it sleeps until poll() takes records, the
// assignment or a position changes, an answer arrives or metadata changes, or until a
// partition's back-off ends.
//
// Errors, per partition: OFFSET_OUT_OF_RANGE resets the position by `autoOffsetReset`;
// NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH and the other leadership errors take the leader
// from the answer (KIP-951) or refresh metadata; every error backs the partition off; errors
// that are not retriable are also reported by the next poll().

import { ErrorCode, WeirError, type proto } from '@weir/protocol';
import { Wakeup, backoffMs } from '../backoff.js';
import { errorDetail, fromErrorStatus } from '../errors.js';
import type { BrokerClients } from '../metadata/broker-clients.js';
import type { MetadataCache } from '../metadata/metadata-cache.js';
import { topicPartitionKey } from '../producer/topic-partition.js';
import type { ResolvedConsumerConfig } from './consumer-config.js';
import type { FetchState, PartitionState } from './fetch-state.js';

/** ListOffsets' timestamps for the log start and the high watermark. */
const EARLIEST_TIMESTAMP = -2n;
const LATEST_TIMESTAMP = -1n;

const METADATA_ERRORS: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.FENCED_LEADER_EPOCH,
  ErrorCode.UNKNOWN_LEADER_EPOCH,
  ErrorCode.LEADER_NOT_AVAILABLE,
  ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
  ErrorCode.NETWORK_EXCEPTION,
  ErrorCode.REQUEST_TIMED_OUT,
]);

export interface FetcherOptions {
  readonly config: ResolvedConsumerConfig;
  readonly metadata: MetadataCache;
  readonly clients: BrokerClients;
  readonly state: FetchState;
  /** Records were buffered. */
  readonly onRecords: () => void;
  /** An error for poll() to report. */
  readonly onError: (error: WeirError) => void;
}

/** A partition as a request was sent for it. */
interface Sent {
  readonly state: PartitionState;
  readonly generation: number;
}

export class Fetcher {
  private readonly wakeup = new Wakeup();
  /** Brokers with a Fetch outstanding. */
  private readonly fetchingFrom = new Set<number>();
  /** Partitions in an outstanding Fetch or ListOffsets. */
  private readonly busy = new Set<string>();
  private readonly outstanding = new Set<Promise<void>>();
  private readonly unsubscribe: () => void;
  private loop: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly options: FetcherOptions) {
    this.unsubscribe = options.metadata.onUpdate(() => this.wake());
  }

  start(): void {
    this.loop ??= this.run();
  }

  wake(): void {
    this.wakeup.wake();
  }

  /** Stops the loop; `settled()` then waits for the answers still outstanding. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.unsubscribe();
    this.wake();
    await this.loop;
  }

  async settled(): Promise<void> {
    await Promise.all([...this.outstanding]);
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.wakeup.clear();
      let delayMs: number;
      try {
        delayMs = this.runOnce(Date.now());
      } catch (error) {
        this.options.onError(
          error instanceof WeirError
            ? error
            : new WeirError(
                ErrorCode.ILLEGAL_STATE,
                `the consumer's fetcher failed: ${String(error)}`,
              ),
        );
        delayMs = this.options.config.retryBackoffMaxMs;
      }
      await this.wakeup.wait(delayMs);
    }
  }

  /** Sends what can be sent now; returns how long to sleep if nothing wakes the loop. */
  private runOnce(now: number): number {
    const { state, config } = this.options;
    const prefetchFull =
      state.bufferedBytes >= config.maxPrefetchBytes ||
      state.bufferedRecords >= config.maxPrefetchRecords;
    const resets = new Map<number, PartitionState[]>();
    const fetches = new Map<number, PartitionState[]>();
    let delayMs = Number.POSITIVE_INFINITY;
    for (const partition of state.assigned) {
      if (this.busy.has(partition.key)) continue;
      if (partition.retryAtMs > now) {
        delayMs = Math.min(delayMs, partition.retryAtMs - now);
        continue;
      }
      const needsReset = partition.position === undefined;
      if (!needsReset && (partition.paused || prefetchFull || state.hasBuffered(partition))) {
        continue;
      }
      const leader = this.leaderOf(partition, now);
      if (leader === undefined) {
        delayMs = Math.min(delayMs, config.retryBackoffMaxMs);
        continue;
      }
      if (needsReset) push(resets, leader, partition);
      else if (!this.fetchingFrom.has(leader)) push(fetches, leader, partition);
    }
    for (const [leader, partitions] of resets) this.listOffsets(leader, partitions);
    for (const [leader, partitions] of fetches) this.fetch(leader, partitions);
    return delayMs;
  }

  /** The partition's leader; reports a partition the metadata has not known for a while. */
  private leaderOf(partition: PartitionState, now: number): number | undefined {
    const { metadata, config } = this.options;
    if (metadata.partition(partition.topic, partition.partition) === undefined) {
      metadata.addTopics([partition.topic]);
      metadata.requestRefresh();
      partition.unknownSinceMs ??= now;
      if (now - partition.unknownSinceMs >= config.requestTimeoutMs) {
        partition.unknownSinceMs = now; // report again after as long
        this.options.onError(unknownPartition(metadata, partition));
      }
      return undefined;
    }
    partition.unknownSinceMs = undefined;
    const leader = metadata.leaderFor(partition.topic, partition.partition);
    if (leader === undefined) metadata.requestRefresh();
    return leader;
  }

  private fetch(leader: number, partitions: readonly PartitionState[]): void {
    const { config, metadata } = this.options;
    const sent = partitions.map((state) => ({ state, generation: state.generation }));
    const request: proto.weir.broker.FetchRequest = {
      maxWaitMs: config.maxWaitMs,
      minBytes: config.minBytes,
      maxBytes: config.maxBytes,
      topics: byTopic(partitions, (state) => ({
        partition: state.partition,
        fetchOffset: state.fetchOffset!,
        partitionMaxBytes: config.maxPartitionBytes,
        currentLeaderEpoch: metadata.partition(state.topic, state.partition)?.leaderEpoch ?? -1,
      })),
    };
    this.fetchingFrom.add(leader);
    const answered = this.options.clients
      .call(this.address(leader), 'fetch', request, config.maxWaitMs + config.requestTimeoutMs)
      .then(
        (response) => !this.stopping && this.onFetched(sent, response),
        (error: unknown) => !this.stopping && this.onCallFailed(sent, error as WeirError),
      );
    this.track(sent, answered, () => this.fetchingFrom.delete(leader));
  }

  private listOffsets(leader: number, partitions: readonly PartitionState[]): void {
    const { config, metadata } = this.options;
    const sent = partitions.map((state) => ({ state, generation: state.generation }));
    const timestamp = config.autoOffsetReset === 'earliest' ? EARLIEST_TIMESTAMP : LATEST_TIMESTAMP;
    const request: proto.weir.broker.ListOffsetsRequest = {
      topics: byTopic(partitions, (state) => ({
        partition: state.partition,
        timestamp,
        currentLeaderEpoch: metadata.partition(state.topic, state.partition)?.leaderEpoch ?? -1,
      })),
    };
    const answered = this.options.clients
      .call(this.address(leader), 'listOffsets', request, config.requestTimeoutMs)
      .then(
        (response) => !this.stopping && this.onListedOffsets(sent, response),
        (error: unknown) => !this.stopping && this.onCallFailed(sent, error as WeirError),
      );
    this.track(sent, answered, () => undefined);
  }

  /** leaderOf() found the leader's address a moment ago, in this same turn of the loop. */
  private address(leader: number): string {
    const address = this.options.metadata.brokerAddress(leader);
    if (address === undefined) {
      throw new WeirError(ErrorCode.ILLEGAL_STATE, `broker ${leader} has no known address`);
    }
    return address;
  }

  /** Marks `sent` busy until `answered` settles, and keeps it for settled(). */
  private track(sent: readonly Sent[], answered: Promise<unknown>, onSettled: () => void): void {
    for (const { state } of sent) this.busy.add(state.key);
    const settled = answered.then(
      () => undefined,
      (error: unknown) => {
        // The handlers above do not throw; if they did, report it rather than lose it.
        this.options.onError(
          new WeirError(ErrorCode.ILLEGAL_STATE, `handling an answer failed: ${String(error)}`),
        );
      },
    );
    const done = settled.finally(() => {
      for (const { state } of sent) this.busy.delete(state.key);
      onSettled();
      this.outstanding.delete(done);
      this.wake();
    });
    this.outstanding.add(done);
  }

  private onFetched(sent: readonly Sent[], response: proto.weir.broker.FetchResponse): void {
    const answers = new Map<string, proto.weir.broker.FetchResponse_Partition>();
    for (const topic of response.topics) {
      for (const p of topic.partitions) answers.set(topicPartitionKey(topic.topic, p.partition), p);
    }
    const { state } = this.options;
    let buffered = false;
    for (const { state: partition, generation } of sent) {
      if (!state.isCurrent(partition, generation)) continue;
      const answer = answers.get(partition.key);
      const error =
        answer === undefined ? missingAnswer(partition, 'Fetch') : fromErrorStatus(answer.error);
      if (error !== undefined) {
        this.onPartitionError(partition, error, answer?.currentLeader);
        continue;
      }
      try {
        const before = state.bufferedRecords;
        state.addFetched(partition, generation, answer!.records);
        buffered ||= state.bufferedRecords > before;
        partition.failures = 0;
      } catch (caught) {
        this.onPartitionError(partition, caught as WeirError, undefined);
      }
    }
    if (buffered) this.options.onRecords();
  }

  private onListedOffsets(
    sent: readonly Sent[],
    response: proto.weir.broker.ListOffsetsResponse,
  ): void {
    const answers = new Map<string, proto.weir.broker.ListOffsetsResponse_Partition>();
    for (const topic of response.topics) {
      for (const p of topic.partitions) answers.set(topicPartitionKey(topic.topic, p.partition), p);
    }
    const { state } = this.options;
    for (const { state: partition, generation } of sent) {
      if (!state.isCurrent(partition, generation)) continue;
      const answer = answers.get(partition.key);
      const error =
        answer === undefined
          ? missingAnswer(partition, 'ListOffsets')
          : (fromErrorStatus(answer.error) ??
            (answer.offset < 0n
              ? new WeirError(
                  ErrorCode.OFFSET_NOT_AVAILABLE,
                  `the leader of ${partition.key} gave no ${this.options.config.autoOffsetReset} offset`,
                )
              : undefined));
      if (error !== undefined) {
        this.onPartitionError(partition, error, answer?.currentLeader);
        continue;
      }
      state.setResetOffset(partition, generation, answer!.offset);
      partition.failures = 0;
    }
  }

  private onPartitionError(
    partition: PartitionState,
    error: WeirError,
    hint: proto.weir.broker.CurrentLeader | undefined,
  ): void {
    const { config, metadata, state } = this.options;
    if (error.code === ErrorCode.OFFSET_OUT_OF_RANGE && partition.position !== undefined) {
      // Kafka's auto.offset.reset: start again at the earliest or latest offset.
      state.seek(partition, undefined);
      return;
    }
    let leaderMoved = false;
    if (METADATA_ERRORS.has(error.code)) {
      leaderMoved = metadata.applyLeaderHint(partition.topic, partition.partition, hint);
    }
    partition.failures++;
    partition.retryAtMs =
      Date.now() +
      (leaderMoved
        ? 0
        : backoffMs(partition.failures, config.retryBackoffMs, config.retryBackoffMaxMs));
    if (!error.retriable) {
      this.options.onError(
        new WeirError(error.code, `${partition.key}: ${errorDetail(error)}`, { cause: error }),
      );
    }
  }

  private onCallFailed(sent: readonly Sent[], error: WeirError): void {
    const { config, metadata } = this.options;
    if (METADATA_ERRORS.has(error.code)) metadata.requestRefresh();
    const now = Date.now();
    for (const { state: partition } of sent) {
      partition.failures++;
      partition.retryAtMs =
        now + backoffMs(partition.failures, config.retryBackoffMs, config.retryBackoffMaxMs);
    }
    if (!error.retriable) this.options.onError(error);
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

function byTopic<P>(
  partitions: readonly PartitionState[],
  entry: (state: PartitionState) => P,
): { topic: string; partitions: P[] }[] {
  const topics = new Map<string, P[]>();
  for (const state of partitions) push(topics, state.topic, entry(state));
  return [...topics].map(([topic, entries]) => ({ topic, partitions: entries }));
}

function missingAnswer(partition: PartitionState, method: string): WeirError {
  return new WeirError(
    ErrorCode.UNKNOWN_SERVER_ERROR,
    `the broker answered ${method} without ${partition.key}`,
  );
}

function unknownPartition(metadata: MetadataCache, partition: PartitionState): WeirError {
  const topic = metadata.topic(partition.topic);
  return new WeirError(
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    topic === undefined
      ? `topic '${partition.topic}' does not exist: create it, or assign another topic`
      : `topic '${partition.topic}' has partitions 0 to ${topic.partitions.length - 1}; partition ${partition.partition} does not exist`,
  );
}
