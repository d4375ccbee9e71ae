// The producer's record accumulator (Kafka's `RecordAccumulator`): records wait here, in one
// queue of batches per partition, until their batch is worth a request. It does no I/O and
// reads no timer: the sender asks `ready(now)` when to look again and `drain(...)` for the
// batches to send, and reports each batch back with `complete`, `reenqueue` (retry) or `fail`.
//
// A batch is ready when it is full (`batchBytes`, or a later batch exists behind it), when
// `lingerMs` has passed since its first record, or at once during flush() and while appends
// wait for buffer memory. Retries go back to the front of their partition's queue in the order
// they were first sent, so with idempotence a partition's sequences reach the broker in order.

import { invalidConfig, wholeNumber } from '../config-values.js';
import { ErrorCode, RECORD_BATCH_OVERHEAD, WeirError, assert } from '@weir/protocol';
import { BufferMemory } from './buffer-memory.js';
import {
  type PreparedRecord,
  ProducerBatch,
  type ProducerIdentity,
  type ProducerRecord,
  type RecordMetadata,
  prepareRecord,
  recordSizeInBytes,
  recordSizeUpperBound,
} from './producer-batch.js';
import { SequenceNumbers } from './sequence-numbers.js';
import { type TopicPartition, topicPartitionKey } from './topic-partition.js';

export const ACCUMULATOR_COMPRESSION_TYPES = ['none', 'gzip'] as const;
export type AccumulatorCompression = (typeof ACCUMULATOR_COMPRESSION_TYPES)[number];

/** Kafka's `batch.size`. */
export const DEFAULT_BATCH_BYTES = 16_384;
/** Kafka's `linger.ms` since 4.0 (KIP-1030): a little waiting buys much fuller batches. */
export const DEFAULT_LINGER_MS = 5;
/** Kafka's `buffer.memory`. */
export const DEFAULT_BUFFER_MEMORY_BYTES = 32 * 1024 * 1024;
/** Kafka's `max.request.size`. */
export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024;
/** setTimeout's limit; a longer linger would fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const MAX_BYTES = 2 ** 31 - 1;

export interface RecordAccumulatorConfig {
  /** A batch takes no more records once it holds this many bytes (uncompressed); a larger
   * record gets a batch of its own. Default 16384. */
  readonly batchBytes?: number;
  /** How long a batch that is not full waits for more records before it is sent. Default 5. */
  readonly lingerMs?: number;
  /** Memory for records not yet acknowledged; appends wait when it is used up. Default 32 MiB. */
  readonly bufferMemoryBytes?: number;
  /** The most batch bytes one request to a broker carries. Default 1 MiB. */
  readonly maxRequestBytes?: number;
  /** How batches are compressed. Default 'none'. */
  readonly compression?: AccumulatorCompression;
  /** Milliseconds since the epoch: batch creation times and record timestamps. */
  readonly clock?: () => number;
  /** The idempotent producer's sequence counters; a fresh set by default. */
  readonly sequences?: SequenceNumbers;
  /** Buffer memory shared with other accumulators of one producer (one per acks level); its
   * size must be `bufferMemoryBytes`. A budget of its own by default. */
  readonly memory?: BufferMemory;
}

export interface ResolvedAccumulatorConfig {
  readonly batchBytes: number;
  readonly lingerMs: number;
  readonly bufferMemoryBytes: number;
  readonly maxRequestBytes: number;
  readonly compression: AccumulatorCompression;
}

export interface AppendOptions {
  /** Stops waiting for buffer memory (the caller's delivery timeout): the append rejects with
   * the signal's reason if it is a WeirError, else with REQUEST_TIMED_OUT. */
  readonly signal?: AbortSignal;
}

/** An appended record. */
export interface RecordHandle {
  readonly topic: string;
  readonly partition: number;
  /** Settles when the record's batch does: its offset, or the batch's error. Callers must
   * handle it, as with any promise that can reject. */
  readonly result: Promise<RecordMetadata>;
  /** The record started a batch: a sender waiting for nothing should wake for its linger. */
  readonly newBatchCreated: boolean;
  /** The record's batch is full, so it is ready now. */
  readonly batchIsFull: boolean;
}

export interface ReadyCheck {
  /** Partitions with a batch ready to drain, whether or not their leader is known. */
  readonly readyPartitions: readonly TopicPartition[];
  /** When a batch that is not ready now will be (its linger or retry back-off ends);
   * Infinity when no batch waits for time. */
  readonly nextReadyCheckDelayMs: number;
}

export interface DrainOptions {
  /** Milliseconds by the accumulator's clock; the clock's time when absent. */
  readonly now?: number;
  /** The partition's leader, or undefined to leave its batches queued (leader unknown, or the
   * broker at its `maxInFlightRequests`). */
  readonly leaderFor: (
    topic: string,
    partition: number,
    /** The batch that would be sent: the first of the partition's queue. */
    head: ProducerBatch,
  ) => number | undefined;
  /** With idempotence: stamped, with the partition's next sequence, on each batch sent for
   * the first time. A retry keeps what it was first sent with. */
  readonly producer?: ProducerIdentity;
}

export interface RetryOptions {
  readonly now: number;
  /** Back-off before the batch may be drained again (the caller's retry policy). */
  readonly backoffMs: number;
}

export interface CompleteOptions {
  /** The offset the broker gave the batch's first record; absent when unknown (acks 0). */
  readonly baseOffset?: bigint;
}

/** One partition's batches: `queued` in send order (retries first), `inFlight` by drain order. */
interface PartitionQueue extends TopicPartition {
  readonly queued: ProducerBatch[];
  readonly inFlight: ProducerBatch[];
}

type Readiness = { readonly ready: true } | { readonly ready: false; readonly delayMs: number };
const READY: Readiness = { ready: true };
const WAITING_FOR_RESPONSE: Readiness = { ready: false, delayMs: Number.POSITIVE_INFINITY };

export class RecordAccumulator {
  readonly config: ResolvedAccumulatorConfig;
  readonly sequences: SequenceNumbers;
  private readonly clock: () => number;
  private readonly memory: BufferMemory;
  private readonly queues = new Map<string, PartitionQueue>();
  private flushesInProgress = 0;
  private drainCount = 0;
  private drainStart = 0;
  private abortedWith: Error | undefined;

  constructor(config: RecordAccumulatorConfig = {}) {
    this.config = resolveAccumulatorConfig(config);
    this.clock = config.clock ?? Date.now;
    this.sequences = config.sequences ?? new SequenceNumbers();
    this.memory = config.memory ?? new BufferMemory(this.config.bufferMemoryBytes);
    assert(
      this.memory.totalBytes === this.config.bufferMemoryBytes,
      () =>
        `shared buffer memory has ${this.memory.totalBytes} bytes, bufferMemoryBytes is ${this.config.bufferMemoryBytes}`,
    );
  }

  /** Bytes of buffer memory held by records not yet acknowledged (and by waiting appends). */
  get bufferedBytes(): number {
    return this.memory.usedBytes;
  }

  /** Appends waiting for buffer memory. */
  get waitingAppends(): number {
    return this.memory.waitingCount;
  }

  /** Batches not yet completed or failed: queued or in flight. */
  get incompleteBatches(): readonly ProducerBatch[] {
    return [...this.queues.values()].flatMap((q) => [...q.inFlight, ...q.queued]);
  }

  /**
   * Adds a record to its partition's open batch, or to a new one. Waits, in FIFO order with
   * other appends, while buffer memory is used up. Rejects at once with MESSAGE_TOO_LARGE if
   * the record alone exceeds `maxRequestBytes` or `bufferMemoryBytes`.
   *
   * An append that does not have to wait adds the record before it returns, so records
   * appended one after another, awaited or not, keep their order.
   */
  async append(record: ProducerRecord, options: AppendOptions = {}): Promise<RecordHandle> {
    this.checkNotAborted();
    checkTopicPartition(record);
    const prepared = prepareRecord(record, this.clock());
    this.checkRecordSize(record, prepared);
    // Enough for the record at any position of any batch, the batch header included; but not
    // more than the whole budget, which a record that fits a batch of its own never needs.
    const reservedBytes = Math.min(
      RECORD_BATCH_OVERHEAD + recordSizeUpperBound(prepared),
      this.memory.totalBytes,
    );
    if (options.signal?.aborted !== true && this.memory.tryReserve(reservedBytes)) {
      return this.appendReserved(record, prepared, reservedBytes);
    }
    await this.memory.reserve(reservedBytes, options.signal);
    if (this.abortedWith !== undefined) {
      // Aborted after the memory was granted but before this continuation ran.
      this.memory.release(reservedBytes);
      throw this.abortedWith;
    }
    return this.appendReserved(record, prepared, reservedBytes);
  }

  /**
   * Whether appending the record to its partition now would start a new batch: the
   * partition has no open batch, or the record does not fit in it. The sticky partitioner
   * moves on when this holds for its partition (KIP-480).
   */
  startsNewBatch(record: ProducerRecord): boolean {
    const open = this.openBatch(record.topic, record.partition);
    if (open === undefined) return true;
    return !open.hasRoomFor(prepareRecord(record, this.clock()), this.config.batchBytes);
  }

  /** Which partitions have a batch to send now, and when to look again. */
  ready(now: number = this.clock()): ReadyCheck {
    const sendAll = this.sendingAll();
    const readyPartitions: TopicPartition[] = [];
    let nextReadyCheckDelayMs = Number.POSITIVE_INFINITY;
    for (const queue of this.queues.values()) {
      const readiness = this.readiness(queue, now, sendAll);
      if (readiness.ready) {
        readyPartitions.push({ topic: queue.topic, partition: queue.partition });
      } else {
        nextReadyCheckDelayMs = Math.min(nextReadyCheckDelayMs, readiness.delayMs);
      }
    }
    return { readyPartitions, nextReadyCheckDelayMs };
  }

  /**
   * Takes the ready batches whose partition has a leader, at most one per partition (so a
   * partition's batches go out one request after another), grouped by leader with at most
   * `maxRequestBytes` of batches per leader (always at least one batch). Batches are built
   * here on their first drain, stamped with `producer` and a sequence when given. Partitions
   * are visited from a rotating start so that none is always last when requests fill up.
   */
  drain(options: DrainOptions): Map<number, ProducerBatch[]> {
    const now = options.now ?? this.clock();
    const sendAll = this.sendingAll();
    const queues = [...this.queues.values()];
    const requests = new Map<number, { batches: ProducerBatch[]; bytes: number }>();
    const start = queues.length === 0 ? 0 : this.drainStart++ % queues.length;
    for (let i = 0; i < queues.length; i++) {
      const queue = queues[(start + i) % queues.length]!;
      if (!this.readiness(queue, now, sendAll).ready) continue;
      const leader = options.leaderFor(queue.topic, queue.partition, queue.queued[0]!);
      if (leader === undefined) continue;
      const batch = queue.queued[0]!;
      const request = requests.get(leader) ?? { batches: [], bytes: 0 };
      // Kafka checks the uncompressed estimate before building, so that a batch is never
      // built (and given a sequence) for a request it then does not go in.
      if (
        request.batches.length > 0 &&
        request.bytes + batch.sizeInBytes > this.config.maxRequestBytes
      ) {
        continue;
      }
      queue.queued.shift();
      this.send(queue, batch, options.producer);
      request.batches.push(batch);
      request.bytes += batch.sizeInBytes;
      requests.set(leader, request);
    }
    return new Map([...requests].map(([leader, request]) => [leader, request.batches]));
  }

  /**
   * Puts an in-flight batch back to be sent again after `backoffMs`, ahead of the partition's
   * batches that were never sent and behind the retries that were first sent before it, so a
   * retry never overtakes: it keeps its bytes, producer id, epoch and sequence.
   */
  reenqueue(batch: ProducerBatch, options: RetryOptions): void {
    if (this.ignoresSettled(batch)) return;
    const queue = this.queueOf(batch);
    removeInFlight(queue, batch);
    batch.markRetry(options.now + options.backoffMs);
    insertByDrainOrder(queue.queued, batch);
  }

  /** The broker wrote the batch: record i resolves with `baseOffset + i`. */
  complete(batch: ProducerBatch, options: CompleteOptions = {}): void {
    if (this.ignoresSettled(batch)) return;
    removeInFlight(this.queueOf(batch), batch);
    batch.complete(options.baseOffset);
    this.memory.release(batch.estimatedSizeInBytes);
  }

  /**
   * Fails a batch, in flight or still queued (expired, say): its records reject with `error`.
   * With idempotence a batch that was sent leaves a gap in its partition's sequences, which
   * the caller resolves (a new producer epoch, KIP-360) before sending more.
   */
  fail(batch: ProducerBatch, error: Error): void {
    if (this.ignoresSettled(batch)) return;
    const queue = this.queueOf(batch);
    const queuedAt = queue.queued.indexOf(batch);
    if (queuedAt >= 0) queue.queued.splice(queuedAt, 1);
    else removeInFlight(queue, batch);
    batch.fail(error);
    this.memory.release(batch.estimatedSizeInBytes);
  }

  /**
   * Queued batches whose first record was appended `deliveryTimeoutMs` or more before `now`
   * (Kafka's `expiredBatches`), oldest first in each partition. They stay queued until the
   * caller fails them.
   */
  expiredBatches(now: number, deliveryTimeoutMs: number): ProducerBatch[] {
    const expired: ProducerBatch[] = [];
    for (const queue of this.queues.values()) {
      for (const batch of queue.queued) {
        if (now - batch.createdMs < deliveryTimeoutMs) break; // the rest are younger
        expired.push(batch);
      }
    }
    return expired;
  }

  /**
   * Makes every batch ready now and resolves when each batch that exists at the call has
   * completed or failed (Kafka's `beginFlush` + `awaitFlushCompletion`). The caller wakes its
   * sender so that the batches go out.
   */
  async flush(): Promise<void> {
    this.flushesInProgress++;
    try {
      await Promise.all(this.incompleteBatches.map((batch) => batch.done));
    } finally {
      this.flushesInProgress--;
    }
  }

  /**
   * Fails every incomplete batch, queued or in flight, and every waiting append with `error`,
   * and refuses appends from now on (a forced close, after the sender has stopped). Later
   * complete/fail/reenqueue calls for those batches are ignored.
   */
  abortAll(error: Error): void {
    this.abortedWith ??= error;
    this.memory.rejectWaiters(error);
    for (const batch of this.incompleteBatches) this.fail(batch, error);
  }

  private appendReserved(
    record: ProducerRecord,
    prepared: PreparedRecord,
    reservedBytes: number,
  ): RecordHandle {
    const { topic, partition } = record;
    const queue = this.queueFor(topic, partition);
    let batch = this.openBatch(topic, partition);
    const newBatchCreated =
      batch === undefined || !batch.hasRoomFor(prepared, this.config.batchBytes);
    const bytesBefore = newBatchCreated ? 0 : batch!.estimatedSizeInBytes;
    if (newBatchCreated) {
      batch = new ProducerBatch(topic, partition, this.clock(), this.config.compression);
      queue.queued.push(batch);
    }
    const result = batch!.append(prepared);
    const chargedBytes = batch!.estimatedSizeInBytes - bytesBefore;
    assert(
      chargedBytes <= reservedBytes,
      () => `record took ${chargedBytes} bytes of buffer memory but reserved ${reservedBytes}`,
    );
    this.memory.release(reservedBytes - chargedBytes);
    const batchIsFull =
      queue.queued.length > 1 || batch!.estimatedSizeInBytes >= this.config.batchBytes;
    return { topic, partition, result, newBatchCreated, batchIsFull };
  }

  private send(queue: PartitionQueue, batch: ProducerBatch, producer?: ProducerIdentity): void {
    if (!batch.isClosed) {
      batch.close(
        producer === undefined
          ? undefined
          : {
              ...producer,
              baseSequence: this.sequences.take(queue.topic, queue.partition, batch.recordCount),
            },
      );
    }
    batch.markDrained(this.drainCount++);
    insertByDrainOrder(queue.inFlight, batch);
  }

  /** Kafka's `ready` per partition: full, lingered, flushing or out of memory, and not backing
   * off; a retry also waits until no earlier batch of its partition is in flight, so that
   * batches reach the broker in sequence order (Kafka's `shouldStopDrainBatchesForPartition`). */
  private readiness(queue: PartitionQueue, now: number, sendAll: boolean): Readiness {
    const first = queue.queued[0];
    if (first === undefined) return WAITING_FOR_RESPONSE;
    if (first.attempts > 0) {
      const earlier = queue.inFlight[0];
      if (earlier !== undefined && earlier.drainOrder! < first.drainOrder!) {
        return WAITING_FOR_RESPONSE;
      }
      return now >= first.retryAtMs ? READY : { ready: false, delayMs: first.retryAtMs - now };
    }
    const full = queue.queued.length > 1 || first.estimatedSizeInBytes >= this.config.batchBytes;
    if (full || sendAll) return READY;
    const waitedMs = now - first.createdMs;
    if (waitedMs >= this.config.lingerMs) return READY;
    return { ready: false, delayMs: this.config.lingerMs - waitedMs };
  }

  /** Every batch is ready while a flush waits, or while appends wait for memory that only
   * sending frees (Kafka's `exhausted`). */
  private sendingAll(): boolean {
    return this.flushesInProgress > 0 || this.memory.waitingCount > 0;
  }

  /** The batch records are appended to: the last queued one, if it was never sent. */
  private openBatch(topic: string, partition: number): ProducerBatch | undefined {
    const last = this.queues.get(topicPartitionKey(topic, partition))?.queued.at(-1);
    return last === undefined || last.isClosed ? undefined : last;
  }

  private queueFor(topic: string, partition: number): PartitionQueue {
    const key = topicPartitionKey(topic, partition);
    let queue = this.queues.get(key);
    if (queue === undefined) {
      queue = { topic, partition, queued: [], inFlight: [] };
      this.queues.set(key, queue);
    }
    return queue;
  }

  private queueOf(batch: ProducerBatch): PartitionQueue {
    const queue = this.queues.get(topicPartitionKey(batch.topic, batch.partition));
    assert(queue !== undefined, () => `no queue for batch ${batch.describe()}`);
    return queue;
  }

  /** After abortAll, the sender may still report batches that were failed under it. */
  private ignoresSettled(batch: ProducerBatch): boolean {
    if (!batch.isDone) return false;
    assert(
      this.abortedWith !== undefined,
      () => `batch ${batch.describe()} was already completed or failed`,
    );
    return true;
  }

  private checkNotAborted(): void {
    if (this.abortedWith !== undefined) throw this.abortedWith;
  }

  private checkRecordSize(record: ProducerRecord, prepared: PreparedRecord): void {
    const aloneBytes = RECORD_BATCH_OVERHEAD + recordSizeInBytes(prepared, 0, 0n);
    const limit =
      aloneBytes > this.config.maxRequestBytes
        ? `maxRequestBytes ${this.config.maxRequestBytes}`
        : aloneBytes > this.config.bufferMemoryBytes
          ? `bufferMemoryBytes ${this.config.bufferMemoryBytes}`
          : undefined;
    if (limit === undefined) return;
    throw new WeirError(
      ErrorCode.MESSAGE_TOO_LARGE,
      `a record for ${record.topic}-${record.partition} takes ${aloneBytes} bytes in a batch of its own, more than ${limit}; send smaller records or raise ${limit.split(' ')[0]}`,
    );
  }
}

/** Inserts a sent batch before the first batch sent after it or never sent: queues and
 * in-flight lists stay in the order their batches were first sent. */
function insertByDrainOrder(batches: ProducerBatch[], batch: ProducerBatch): void {
  const order = batch.drainOrder!;
  const index = batches.findIndex((b) => b.drainOrder === undefined || b.drainOrder > order);
  batches.splice(index < 0 ? batches.length : index, 0, batch);
}

function removeInFlight(queue: PartitionQueue, batch: ProducerBatch): void {
  const index = queue.inFlight.indexOf(batch);
  assert(index >= 0, () => `batch ${batch.describe()} is not in flight`);
  queue.inFlight.splice(index, 1);
}

function checkTopicPartition(record: ProducerRecord): void {
  assert(
    typeof record.topic === 'string' && record.topic !== '',
    () => `a record needs a topic, got ${String(record.topic)}`,
  );
  assert(
    Number.isInteger(record.partition) && record.partition >= 0,
    () => `a record for '${record.topic}' needs a partition from 0, got ${record.partition}`,
  );
}

/** Fills in defaults and checks the limits, with messages that say what to change. */
export function resolveAccumulatorConfig(
  config: RecordAccumulatorConfig,
): ResolvedAccumulatorConfig {
  const maxRequestBytes = wholeNumber(
    'maxRequestBytes',
    config.maxRequestBytes,
    DEFAULT_MAX_REQUEST_BYTES,
    RECORD_BATCH_OVERHEAD + 1,
    MAX_BYTES,
  );
  const batchBytes = wholeNumber(
    'batchBytes',
    config.batchBytes,
    DEFAULT_BATCH_BYTES,
    1,
    MAX_BYTES,
  );
  if (batchBytes > maxRequestBytes) {
    throw invalidConfig(
      `batchBytes (${batchBytes}) must not exceed maxRequestBytes (${maxRequestBytes}): a full batch must fit in a request`,
    );
  }
  return {
    batchBytes,
    lingerMs: wholeNumber('lingerMs', config.lingerMs, DEFAULT_LINGER_MS, 0, MAX_TIMEOUT_MS),
    bufferMemoryBytes: wholeNumber(
      'bufferMemoryBytes',
      config.bufferMemoryBytes,
      DEFAULT_BUFFER_MEMORY_BYTES,
      RECORD_BATCH_OVERHEAD + 1,
      Number.MAX_SAFE_INTEGER,
    ),
    maxRequestBytes,
    compression: resolveCompression(config.compression),
  };
}

function resolveCompression(compression: unknown): AccumulatorCompression {
  if (compression === undefined) return 'none';
  if (!(ACCUMULATOR_COMPRESSION_TYPES as readonly unknown[]).includes(compression)) {
    throw invalidConfig(
      `compression must be 'none' or 'gzip', got ${JSON.stringify(compression)}; snappy, lz4 and zstd are not supported yet`,
    );
  }
  return compression as AccumulatorCompression;
}
