// The producer's sender (Kafka's `Sender`): one loop that takes ready batches from the record
// accumulators, sends one Produce per leader broker (on its ordered ProduceStream,
// produce-streams.ts) with at most `maxInFlightRequests`
// outstanding per broker, and settles each batch by its partition's answer.
//
// The loop never polls: it sleeps until something can have changed — an append started or
// filled a batch, a flush began, a response arrived, metadata changed — or until the next
// batch's linger or retry back-off ends (`nextReadyCheckDelayMs`).
//
// Errors, per partition:
// - retriable (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
//   REQUEST_TIMED_OUT, NETWORK_EXCEPTION, UNKNOWN_TOPIC_OR_PARTITION while the topic exists, …):
//   the batch goes back to the front of its partition's queue after a back-off, with the same
//   bytes and sequence, until `retries` or `deliveryTimeoutMs` run out. Leadership errors
//   refresh metadata, or take the current leader from the answer without a round trip
//   (KIP-951), in which case the retry goes at once;
// - anything else fails the batch's records with the broker's error;
// - with idempotence (KIP-98), OUT_OF_ORDER_SEQUENCE_NUMBER is expected while an earlier batch of
//   the partition is being retried (the broker saw this one first) and is then retried too
//   (Kafka's `TransactionManager.canRetry`). After a batch that was sent fails for good its
//   sequence is a gap: later batches of that producer id are refused by the broker and fail,
//   and the producer takes a new producer id, once nothing is in flight, for what it sends
//   next. Any other OUT_OF_ORDER_SEQUENCE_NUMBER, and INVALID_PRODUCER_EPOCH, mean the broker and
//   the producer disagree about what was written: the producer stops and fails everything.

import { ErrorCode, WeirError, type proto } from '@weir/protocol';
import { Wakeup, backoffMs } from '../backoff.js';
import { errorDetail, fromErrorStatus } from '../errors.js';
import type { BrokerClients } from '../metadata/broker-clients.js';
import type { MetadataCache } from '../metadata/metadata-cache.js';
import type { ProducerBatch, ProducerIdentity } from './producer-batch.js';
import type { ResolvedProducerConfig } from './producer-config.js';
import { ProduceStreams } from './produce-streams.js';
import type { RecordAccumulator } from './record-accumulator.js';
import { topicPartitionKey } from './topic-partition.js';

/** The client waits this much longer than the broker may take with acks 'all', so that the
 * broker's REQUEST_TIMED_OUT answer arrives rather than a cut call. */
export const PRODUCE_DEADLINE_MARGIN_MS = 1_000;

/** Errors after which the cached leader is probably wrong. */
const METADATA_ERRORS: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.FENCED_LEADER_EPOCH,
  ErrorCode.UNKNOWN_LEADER_EPOCH,
  ErrorCode.LEADER_NOT_AVAILABLE,
  ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
  ErrorCode.NETWORK_EXCEPTION,
  ErrorCode.REQUEST_TIMED_OUT,
]);

/** The idempotent producer's identity and how to get a new one. */
export interface ProducerIdentitySource {
  current(): ProducerIdentity;
  /** A new producer id from the brokers (InitProducerId); sequences restart at 0. */
  renew(): Promise<void>;
}

export interface SenderOptions {
  readonly config: ResolvedProducerConfig;
  readonly metadata: MetadataCache;
  readonly clients: BrokerClients;
  /** The accumulators by acks level; the map may grow while the sender runs. */
  readonly accumulators: ReadonlyMap<-1 | 0 | 1, RecordAccumulator>;
  /** With idempotence. */
  readonly identity?: ProducerIdentitySource;
}

export class Sender {
  private readonly wakeup = new Wakeup();
  private readonly inFlightByBroker = new Map<number, number>();
  private readonly inFlightBatches = new Set<ProducerBatch>();
  /**
   * Batches in flight per partition. Produce requests go on one ordered stream per broker, so
   * an idempotent producer pipelines up to `maxInFlightRequests` (at most 5) batches of a
   * partition, as Kafka does over its ordered connection. A retried batch goes alone, once
   * nothing of its partition is in flight: the batches behind it fail too (the broker refuses
   * their sequences while it is missing) and are retried after it, in sequence order (Kafka's
   * `RecordAccumulator.shouldStopDrainBatchesForPartition`).
   */
  private readonly inFlightPartitions = new Map<string, number>();
  private readonly streams: ProduceStreams;
  private readonly outstanding = new Set<Promise<void>>();
  /** The error each batch last failed with, for the message when it finally fails. */
  private readonly lastErrors = new WeakMap<ProducerBatch, WeirError>();
  /** Per partition, the first sequence (with its producer id) of a batch that failed for good. */
  private readonly gaps = new Map<string, { producerId: bigint; baseSequence: number }>();
  private needsNewIdentity = false;
  private renewFailures = 0;
  private metadataChanged = true;
  private readonly unsubscribe: () => void;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private fatalError: WeirError | undefined;

  constructor(private readonly options: SenderOptions) {
    this.streams = new ProduceStreams(options.clients);
    this.unsubscribe = options.metadata.onUpdate(() => {
      this.metadataChanged = true;
      this.wake();
    });
  }

  /** Set once the idempotent producer has stopped; every send fails with it. */
  get fatal(): WeirError | undefined {
    return this.fatalError;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Makes the loop look again now: something it waits for may have happened. */
  wake(): void {
    this.wakeup.wake();
  }

  /** Stops the loop and waits for the requests still outstanding. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.unsubscribe();
    this.wake();
    await this.loop;
    await Promise.all([...this.outstanding]);
    this.streams.close();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.wakeup.clear();
      let delayMs: number;
      try {
        delayMs = await this.runOnce(Date.now());
      } catch (error) {
        // A bug in the loop: stop producing loudly rather than hang every send.
        this.stopProducer(
          error instanceof WeirError
            ? error
            : new WeirError(
                ErrorCode.ILLEGAL_STATE,
                `the producer's sender failed: ${String(error)}`,
              ),
        );
        return;
      }
      if (delayMs <= 0) {
        // More to send: let responses and appends in between.
        await new Promise((resolve) => setImmediate(resolve));
      } else {
        await this.wakeup.wait(delayMs);
      }
    }
  }

  /** One look at the accumulators; returns how long to sleep if nothing wakes the loop. */
  private async runOnce(startedMs: number): Promise<number> {
    let now = startedMs;
    if (this.fatalError !== undefined) return Number.POSITIVE_INFINITY;
    this.failExpired(now);
    if (this.metadataChanged) {
      this.metadataChanged = false;
      this.failBatchesOfMissingTopics(now);
    }
    if (this.needsNewIdentity) {
      // Sequences restart with the new id; wait until nothing of the old one is in flight.
      if (this.outstanding.size > 0) return Number.POSITIVE_INFINITY;
      if (!(await this.renewIdentity())) {
        return backoffMs(
          this.renewFailures,
          this.options.config.retryBackoffMs,
          this.options.config.retryBackoffMaxMs,
        );
      }
      now = Date.now();
    }
    let delayMs = Number.POSITIVE_INFINITY;
    let sent = false;
    for (const [acks, accumulator] of this.options.accumulators) {
      const ready = accumulator.ready(now);
      delayMs = Math.min(delayMs, ready.nextReadyCheckDelayMs);
      const leaderless = ready.readyPartitions.some(
        ({ topic, partition }) => this.options.metadata.leaderFor(topic, partition) === undefined,
      );
      if (leaderless) {
        this.options.metadata.requestRefresh(); // wakes the loop when it lands
        delayMs = Math.min(delayMs, this.options.config.retryBackoffMaxMs);
      }
      const requests = accumulator.drain({
        now,
        leaderFor: (topic, partition, head) => {
          if (
            this.options.identity !== undefined &&
            head.attempts > 0 &&
            this.inFlightPartitions.has(`${topic}:${partition}`)
          ) {
            return undefined;
          }
          const leader = this.options.metadata.leaderFor(topic, partition);
          return leader !== undefined && this.hasRoom(leader) ? leader : undefined;
        },
        producer: this.options.identity?.current(),
      });
      for (const [leader, batches] of requests) {
        this.sendProduce(leader, acks, accumulator, batches);
        sent = true;
      }
    }
    return sent ? 0 : delayMs;
  }

  private hasRoom(brokerId: number): boolean {
    return (this.inFlightByBroker.get(brokerId) ?? 0) < this.options.config.maxInFlightRequests;
  }

  private sendProduce(
    leader: number,
    acks: -1 | 0 | 1,
    accumulator: RecordAccumulator,
    batches: ProducerBatch[],
  ): void {
    this.inFlightByBroker.set(leader, (this.inFlightByBroker.get(leader) ?? 0) + 1);
    for (const batch of batches) {
      this.inFlightBatches.add(batch);
      const key = `${batch.topic}:${batch.partition}`;
      this.inFlightPartitions.set(key, (this.inFlightPartitions.get(key) ?? 0) + 1);
    }
    const request = this.produce(leader, acks, accumulator, batches)
      .catch((error: unknown) => {
        // produce() settles every batch itself; this is a bug report, not a retry path.
        this.stopProducer(
          new WeirError(
            ErrorCode.ILLEGAL_STATE,
            `handling a Produce answer failed: ${error instanceof Error ? error.message : String(error)}`,
          ),
        );
      })
      .finally(() => {
        this.inFlightByBroker.set(leader, this.inFlightByBroker.get(leader)! - 1);
        for (const batch of batches) {
          this.inFlightBatches.delete(batch);
          const key = `${batch.topic}:${batch.partition}`;
          const left = this.inFlightPartitions.get(key)! - 1;
          if (left === 0) this.inFlightPartitions.delete(key);
          else this.inFlightPartitions.set(key, left);
        }
        this.outstanding.delete(request);
        this.wake();
      });
    this.outstanding.add(request);
  }

  private async produce(
    leader: number,
    acks: -1 | 0 | 1,
    accumulator: RecordAccumulator,
    batches: readonly ProducerBatch[],
  ): Promise<void> {
    const { config, metadata } = this.options;
    const address = metadata.brokerAddress(leader);
    if (address === undefined) {
      // leaderFor() vouched for the address a moment ago; a refresh may have dropped it since.
      const error = new WeirError(
        ErrorCode.NETWORK_EXCEPTION,
        `broker ${leader} is no longer in the cluster's metadata`,
      );
      for (const batch of batches) this.handleError(accumulator, batch, error, undefined);
      return;
    }
    const request = produceRequest(acks, config.requestTimeoutMs, batches);
    const call = this.streams.produce(
      address,
      request,
      config.requestTimeoutMs + PRODUCE_DEADLINE_MARGIN_MS,
    );
    if (acks === 0) {
      // Nothing to wait for (Kafka completes acks-0 batches once sent); the call stays
      // outstanding so that close() lets it reach the broker.
      for (const batch of batches) accumulator.complete(batch);
      await call.catch(() => metadata.requestRefresh());
      return;
    }
    let response: proto.weir.broker.ProduceResponse;
    try {
      response = await call;
    } catch (error) {
      for (const batch of batches)
        this.handleError(accumulator, batch, error as WeirError, undefined);
      return;
    }
    const answers = new Map<string, proto.weir.broker.ProduceResponse_Partition>();
    for (const topic of response.topics) {
      for (const p of topic.partitions) answers.set(topicPartitionKey(topic.topic, p.partition), p);
    }
    for (const batch of batches) {
      const answer = answers.get(topicPartitionKey(batch.topic, batch.partition));
      if (answer === undefined) {
        this.handleError(
          accumulator,
          batch,
          new WeirError(
            ErrorCode.UNKNOWN_SERVER_ERROR,
            `broker ${leader} answered Produce without ${batch.topic}-${batch.partition}`,
          ),
          undefined,
        );
        continue;
      }
      const error = fromErrorStatus(answer.error);
      if (error === undefined) {
        accumulator.complete(batch, { baseOffset: answer.baseOffset });
      } else {
        this.handleError(accumulator, batch, error, answer.currentLeader);
      }
    }
  }

  private handleError(
    accumulator: RecordAccumulator,
    batch: ProducerBatch,
    error: WeirError,
    hint: proto.weir.broker.CurrentLeader | undefined,
  ): void {
    if (batch.isDone) return; // failed under us by a fatal error
    const { config, metadata } = this.options;
    this.lastErrors.set(batch, error);
    let leaderMoved = false;
    if (METADATA_ERRORS.has(error.code)) {
      leaderMoved = metadata.applyLeaderHint(batch.topic, batch.partition, hint);
    }
    if (error.code === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER && batch.baseSequence >= 0) {
      this.handleOutOfOrder(accumulator, batch, error);
      return;
    }
    if (error.code === ErrorCode.INVALID_PRODUCER_EPOCH) {
      this.stopProducer(error);
      return;
    }
    const now = Date.now();
    const retry = batch.attempts; // the retry this would be: 1 for the first
    const waitMs = leaderMoved
      ? 0
      : backoffMs(retry, config.retryBackoffMs, config.retryBackoffMaxMs);
    const missingTopic =
      error.code === ErrorCode.UNKNOWN_TOPIC_OR_PARTITION && this.isGone(batch.topic, now);
    if (
      error.retriable &&
      !missingTopic &&
      retry <= config.retries &&
      now + waitMs - batch.createdMs < config.deliveryTimeoutMs
    ) {
      accumulator.reenqueue(batch, { now, backoffMs: waitMs });
      return;
    }
    this.fail(accumulator, batch, giveUpError(batch, error, now, config));
  }

  private handleOutOfOrder(
    accumulator: RecordAccumulator,
    batch: ProducerBatch,
    error: WeirError,
  ): void {
    const { config } = this.options;
    const earlierPending = accumulator.incompleteBatches.some(
      (other) =>
        other !== batch &&
        other.topic === batch.topic &&
        other.partition === batch.partition &&
        other.producerId === batch.producerId &&
        other.drainOrder !== undefined &&
        other.drainOrder < batch.drainOrder!,
    );
    const now = Date.now();
    if (earlierPending && now - batch.createdMs < config.deliveryTimeoutMs) {
      // The broker saw this batch before an earlier one that is being retried.
      accumulator.reenqueue(batch, {
        now,
        backoffMs: backoffMs(batch.attempts, config.retryBackoffMs, config.retryBackoffMaxMs),
      });
      return;
    }
    const gap = this.gaps.get(topicPartitionKey(batch.topic, batch.partition));
    if (gap !== undefined && gap.producerId === batch.producerId) {
      this.fail(
        accumulator,
        batch,
        new WeirError(
          ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
          `${batch.topic}-${batch.partition}: an earlier batch of this producer failed (sequence ${gap.baseSequence}), so the broker refused this one to keep the partition's order; send these records again`,
          { cause: error },
        ),
      );
      return;
    }
    this.stopProducer(error);
  }

  /**
   * Whether the brokers have said for `requestTimeoutMs` that the topic does not exist: a
   * moment after a topic is created some brokers may not know it yet, so UNKNOWN_TOPIC_OR_PARTITION
   * is retried briefly; send() waits as long for a topic it has never seen.
   */
  private isGone(topic: string, now: number): boolean {
    const missing = this.options.metadata.missingTopic(topic);
    return missing !== undefined && now - missing.sinceMs >= this.options.config.requestTimeoutMs;
  }

  /** Fails batches still queued (not in flight) whose topic the brokers say is gone. */
  private failBatchesOfMissingTopics(now: number): void {
    const { metadata } = this.options;
    for (const accumulator of this.options.accumulators.values()) {
      for (const batch of accumulator.incompleteBatches) {
        if (this.inFlightBatches.has(batch) || !this.isGone(batch.topic, now)) continue;
        const missing = metadata.missingTopic(batch.topic)!;
        this.fail(
          accumulator,
          batch,
          new WeirError(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            `topic '${batch.topic}' no longer exists; ${batch.recordCount} records for partition ${batch.partition} were not delivered`,
            { cause: missing.error },
          ),
        );
      }
    }
  }

  /** Fails queued batches older than the delivery timeout (Kafka's `expiredBatches`). */
  private failExpired(now: number): void {
    const { config } = this.options;
    for (const accumulator of this.options.accumulators.values()) {
      for (const batch of accumulator.expiredBatches(now, config.deliveryTimeoutMs)) {
        const last = this.lastErrors.get(batch);
        const error =
          last ??
          new WeirError(
            ErrorCode.REQUEST_TIMED_OUT,
            `${batch.topic}-${batch.partition} had no leader to send to`,
          );
        this.fail(accumulator, batch, giveUpError(batch, error, now, config));
      }
    }
  }

  private fail(accumulator: RecordAccumulator, batch: ProducerBatch, error: WeirError): void {
    const sent = batch.attempts > 0 && batch.baseSequence >= 0;
    accumulator.fail(batch, error);
    const identity = this.options.identity;
    if (sent && identity !== undefined && batch.producerId === identity.current().producerId) {
      // The broker may never get this sequence: later batches of this id would wait for it.
      const key = topicPartitionKey(batch.topic, batch.partition);
      if (!this.gaps.has(key) || this.gaps.get(key)!.producerId !== batch.producerId) {
        this.gaps.set(key, { producerId: batch.producerId, baseSequence: batch.baseSequence });
      }
      this.needsNewIdentity = true;
    }
  }

  private async renewIdentity(): Promise<boolean> {
    try {
      await this.options.identity!.renew();
    } catch {
      this.renewFailures++;
      return false;
    }
    this.renewFailures = 0;
    this.needsNewIdentity = false;
    return true;
  }

  /** The producer cannot go on: every record not yet acknowledged fails with `cause`. */
  private stopProducer(cause: WeirError): void {
    if (this.fatalError !== undefined) return;
    this.fatalError = new WeirError(
      cause.code,
      `the producer stopped: ${errorDetail(cause)}. Every record not yet acknowledged was failed; create a new producer with weir.producer() to go on`,
      { cause },
    );
    for (const accumulator of this.options.accumulators.values()) {
      accumulator.abortAll(this.fatalError);
    }
  }
}

function produceRequest(
  acks: -1 | 0 | 1,
  timeoutMs: number,
  batches: readonly ProducerBatch[],
): proto.weir.broker.ProduceRequest {
  const topics = new Map<string, proto.weir.broker.ProduceRequest_Partition[]>();
  for (const batch of batches) {
    const partitions = topics.get(batch.topic) ?? [];
    partitions.push({ partition: batch.partition, records: batch.buffer });
    topics.set(batch.topic, partitions);
  }
  return {
    acks,
    timeoutMs,
    topics: [...topics].map(([topic, partitions]) => ({ topic, partitions })),
  };
}

/** The batch's final error: the broker's code, with how long and how often it was tried. */
function giveUpError(
  batch: ProducerBatch,
  error: WeirError,
  now: number,
  config: ResolvedProducerConfig,
): WeirError {
  if (!error.retriable) return error;
  const attempts =
    batch.attempts === 0
      ? 'without sending it'
      : batch.attempts === 1
        ? 'after 1 attempt'
        : `after ${batch.attempts} attempts`;
  const limit =
    batch.attempts > config.retries
      ? `retries (${config.retries})`
      : `deliveryTimeoutMs (${config.deliveryTimeoutMs} ms)`;
  return new WeirError(
    error.code,
    `${batch.recordCount} records for ${batch.topic}-${batch.partition} were not delivered: ${errorDetail(error)} (gave up ${attempts} in ${now - batch.createdMs} ms: ${limit} ran out)`,
    { cause: error },
  );
}
