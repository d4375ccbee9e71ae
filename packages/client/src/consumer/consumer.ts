// The consumer (`weir.consumer(options)`) with manual assignment (consumer groups come in M5),
// shaped after Kafka's KafkaConsumer and KafkaJS: `assign`, `seek`, `pause`/`resume` per
// partition, `poll()` for the next records, and `for await (const record of consumer)`.
// A background fetcher prefetches, bounded by bytes and by records; poll() hands out what it
// buffered and advances each partition's position past the records returned.

import { ErrorCode, WeirError } from '@weir/protocol';
import type { ResolvedConfig } from '../config.js';
import { BrokerClients } from '../metadata/broker-clients.js';
import { MetadataCache } from '../metadata/metadata-cache.js';
import type { TopicPartition } from '../producer/topic-partition.js';
import {
  type ConsumerOptions,
  type ResolvedConsumerConfig,
  resolveConsumerConfig,
} from './consumer-config.js';
import { type ConsumerRecord, FetchState, type PartitionState } from './fetch-state.js';
import { Fetcher } from './fetcher.js';

export interface TopicPartitionOffset extends TopicPartition {
  readonly offset: bigint;
}

export interface PollOptions {
  /** How long to wait for records when none are buffered. Default: the consumer's maxWaitMs. */
  readonly maxWaitMs?: number;
}

/** Errors kept for poll() to report; older ones are dropped beyond this (they repeat). */
const MAX_PENDING_ERRORS = 16;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class Consumer implements AsyncIterable<ConsumerRecord> {
  /** The options in effect, defaults filled in. */
  readonly config: ResolvedConsumerConfig;
  private readonly clients: BrokerClients;
  private readonly metadata: MetadataCache;
  private readonly state = new FetchState();
  private readonly fetcher: Fetcher;
  private readonly waiters = new Set<() => void>();
  private readonly errors: WeirError[] = [];
  private closed = false;
  private closing: Promise<void> | undefined;

  /** @internal Made by `Weir.consumer()`; throws INVALID_CONFIG saying what to change. */
  constructor(client: ResolvedConfig, options: ConsumerOptions = {}) {
    this.config = resolveConsumerConfig(client, options);
    this.clients = new BrokerClients(client.clientId);
    this.metadata = new MetadataCache({
      bootstrap: client.brokers,
      clients: this.clients,
      requestTimeoutMs: this.config.requestTimeoutMs,
      metadataMaxAgeMs: this.config.metadataMaxAgeMs,
      refreshBackoffMs: this.config.retryBackoffMs,
      refreshBackoffMaxMs: this.config.retryBackoffMaxMs,
    });
    this.fetcher = new Fetcher({
      config: this.config,
      metadata: this.metadata,
      clients: this.clients,
      state: this.state,
      onRecords: () => this.notifyWaiters(),
      onError: (error) => this.report(error),
    });
  }

  /**
   * Fetches metadata, so that an unreachable cluster shows up here rather than as an empty
   * poll(). Optional: poll() connects as needed.
   */
  async connect(): Promise<void> {
    this.checkOpen();
    await this.metadata.refresh();
  }

  /**
   * Consumes exactly these partitions from now on, replacing the previous assignment.
   * Partitions that stay assigned keep their positions; new ones start by `autoOffsetReset`
   * unless sought.
   */
  assign(partitions: readonly TopicPartition[]): void {
    this.checkOpen();
    if (!Array.isArray(partitions)) {
      throw invalidRequest(
        `assign() takes an array of { topic, partition }, got ${typeof partitions}`,
      );
    }
    const checked = partitions.map(checkTopicPartition);
    this.state.assign(checked);
    this.metadata.addTopics(checked.map((p) => p.topic));
    this.fetcher.start();
    this.fetcher.wake();
  }

  /** The assigned partitions. */
  assignment(): TopicPartition[] {
    return this.state.assigned.map(({ topic, partition }) => ({ topic, partition }));
  }

  /**
   * Makes the partition's next records start at `offset`; records buffered before are
   * dropped. An offset outside the partition's range is reset by `autoOffsetReset` when
   * fetched.
   */
  seek({ topic, partition, offset }: TopicPartitionOffset): void {
    this.checkOpen();
    if (typeof offset !== 'bigint' || offset < 0n) {
      throw invalidRequest(
        `seek() needs offset as a bigint from 0n, e.g. 42n, got ${typeof offset === 'bigint' ? offset : typeof offset}`,
      );
    }
    this.state.seek(this.assigned({ topic, partition }, 'seek'), offset);
    this.fetcher.wake();
  }

  /** The offset of the next record poll() returns for the partition; undefined until known. */
  position(topicPartition: TopicPartition): bigint | undefined {
    return this.assigned(topicPartition, 'ask the position of').position;
  }

  /** Stops fetching and returning the partitions' records until resume(); positions stay. */
  pause(partitions: readonly TopicPartition[]): void {
    for (const state of partitions.map((p) => this.assigned(p, 'pause'))) state.paused = true;
  }

  resume(partitions: readonly TopicPartition[]): void {
    for (const state of partitions.map((p) => this.assigned(p, 'resume'))) state.paused = false;
    this.fetcher.wake();
    this.notifyWaiters();
  }

  /** The paused partitions. */
  paused(): TopicPartition[] {
    return this.state.assigned
      .filter((state) => state.paused)
      .map(({ topic, partition }) => ({ topic, partition }));
  }

  /**
   * The next records, up to `maxPollRecords`, in offset order per partition: at once when
   * records are buffered, else when some arrive, else [] after `maxWaitMs`. Rejects with an
   * error the fetcher met since the last poll (UNKNOWN_TOPIC_OR_PARTITION for a partition that
   * does not exist, say); fetching goes on.
   */
  async poll(options: PollOptions = {}): Promise<ConsumerRecord[]> {
    this.checkOpen();
    const maxWaitMs = checkWaitMs(options.maxWaitMs, this.config.maxWaitMs);
    this.fetcher.start();
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      const error = this.errors.shift();
      if (error !== undefined) throw error;
      const records = this.state.take(this.config.maxPollRecords);
      if (records.length > 0) {
        this.fetcher.wake(); // room in the prefetch buffer
        return records;
      }
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0 || this.closed) return [];
      await this.waitForRecords(remainingMs);
    }
  }

  /** Every record, polling as needed, until the consumer is closed. */
  async *records(): AsyncGenerator<ConsumerRecord, void, undefined> {
    while (!this.closed) {
      const records = await this.poll();
      for (const record of records) yield record;
    }
  }

  /** `for await (const record of consumer)`: breaking out of the loop leaves it open. */
  [Symbol.asyncIterator](): AsyncIterator<ConsumerRecord> {
    return this.records();
  }

  /** Stops fetching and closes the connections; a waiting poll() returns []. */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    this.closed = true;
    this.notifyWaiters();
    await this.fetcher.stop();
    this.clients.close(); // cuts long polls short
    await this.fetcher.settled();
    this.metadata.close();
    this.state.clear();
  }

  private waitForRecords(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  private notifyWaiters(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private report(error: WeirError): void {
    if (this.errors.length >= MAX_PENDING_ERRORS) this.errors.shift();
    this.errors.push(error);
    this.notifyWaiters();
  }

  private assigned(topicPartition: TopicPartition, action: string): PartitionState {
    const { topic, partition } = checkTopicPartition(topicPartition);
    const state = this.state.get(topic, partition);
    if (state === undefined) {
      throw new WeirError(
        ErrorCode.ILLEGAL_STATE,
        `cannot ${action} ${topic}-${partition}: it is not assigned to this consumer; assign() it first`,
      );
    }
    return state;
  }

  private checkOpen(): void {
    if (this.closed) {
      throw new WeirError(
        ErrorCode.ILLEGAL_STATE,
        'the consumer is closed; get a new one with weir.consumer()',
      );
    }
  }
}

function invalidRequest(detail: string): WeirError {
  return new WeirError(ErrorCode.INVALID_REQUEST, detail);
}

function checkTopicPartition(value: TopicPartition): TopicPartition {
  if (typeof value !== 'object' || value === null) {
    throw invalidRequest(
      `expected { topic, partition }, got ${value === null ? 'null' : typeof value}`,
    );
  }
  const { topic, partition } = value;
  if (typeof topic !== 'string' || topic === '') {
    throw invalidRequest(`a topic name must be a non-empty string, got ${JSON.stringify(topic)}`);
  }
  if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0) {
    throw invalidRequest(
      `partition must be a whole number from 0, got ${String(partition)} for topic '${topic}'`,
    );
  }
  return { topic, partition };
}

function checkWaitMs(value: unknown, defaultValue: number): number {
  if (value === undefined) return defaultValue;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 0 ||
    value > MAX_TIMEOUT_MS
  ) {
    throw invalidRequest(
      `maxWaitMs must be a whole number of milliseconds from 0 to ${MAX_TIMEOUT_MS}, got ${typeof value === 'number' ? value : typeof value}`,
    );
  }
  return value;
}

export type { ConsumerRecord };
