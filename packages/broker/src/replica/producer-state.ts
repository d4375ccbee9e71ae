// Idempotent-producer state of one partition (Kafka's ProducerStateManager, ProducerStateEntry
// and ProducerAppendInfo, without transactions): per producer id its epoch and the metadata of
// its last batches, to answer a retried batch with the offsets it got the first time, and to
// refuse gaps and stale epochs. Pure and in memory; the log is its source of truth. A replica
// that opens its log `load`s the newest producer snapshot (producer-snapshot.ts) and records the
// batches after it; without a snapshot, `rebuild` replays the whole log.

import { ErrorCode, type RecordBatch, WeirError, assert } from '@weir/protocol';

/** The producer id of a batch written without idempotence (Kafka's RecordBatch.NO_PRODUCER_ID). */
export const NO_PRODUCER_ID = -1n;

/**
 * How many of a producer's last batches are remembered for duplicate detection (Kafka's
 * ProducerStateEntry.NumBatchesToRetain); a producer may have as many requests in flight.
 */
export const BATCHES_RETAINED_PER_PRODUCER = 5;

/** The default bound on producers remembered per partition. */
export const DEFAULT_MAX_PRODUCER_IDS = 10_000;

const INT32_MAX = 0x7fff_ffff;
const INT16_MAX = 0x7fff;

/** The producer fields of a record batch, as the broker checks them before appending. */
export interface ProducerBatch {
  readonly producerId: bigint;
  readonly producerEpoch: number;
  readonly baseSequence: number;
  /** baseSequence + lastOffsetDelta, wrapping past 2^31 - 1 to 0 (see lastSequenceOf). */
  readonly lastSequence: number;
}

/** A producer batch as it stands in the log. */
export interface LoggedProducerBatch extends ProducerBatch {
  readonly baseOffset: bigint;
  readonly lastOffset: bigint;
}

/** What the log remembers of one of a producer's batches (Kafka's BatchMetadata). */
export interface BatchMetadata {
  readonly firstSequence: number;
  readonly lastSequence: number;
  readonly firstOffset: bigint;
  readonly lastOffset: bigint;
}

export interface ProducerStateEntry {
  readonly producerId: bigint;
  readonly producerEpoch: number;
  /** Oldest first; at most BATCHES_RETAINED_PER_PRODUCER, all of `producerEpoch`. */
  readonly batches: readonly BatchMetadata[];
}

/**
 * The decision for a batch about to be appended: `append` it, or answer it as a `duplicate` of
 * a batch already in the log, with that batch's offsets.
 */
export type ProducerAppendDecision =
  | { readonly kind: 'append' }
  | { readonly kind: 'duplicate'; readonly firstOffset: bigint; readonly lastOffset: bigint };

export interface ProducerStateManagerOptions {
  /** For error messages, e.g. `topicId:partition`. */
  readonly partition: string;
  /** The most producers remembered; default DEFAULT_MAX_PRODUCER_IDS. See the class comment. */
  readonly maxProducerIds?: number;
}

/** Kafka's DefaultRecordBatch.incrementSequence: sequences wrap from 2^31 - 1 to 0. */
export function lastSequenceOf(baseSequence: number, lastOffsetDelta: number): number {
  if (baseSequence > INT32_MAX - lastOffsetDelta) {
    return lastOffsetDelta - (INT32_MAX - baseSequence) - 1;
  }
  return baseSequence + lastOffsetDelta;
}

/** The producer fields and offsets of a record batch, for checkAppend, record and rebuild. */
export function producerBatchOf(batch: RecordBatch): LoggedProducerBatch {
  return {
    producerId: batch.producerId,
    producerEpoch: batch.producerEpoch,
    baseSequence: batch.baseSequence,
    lastSequence: lastSequenceOf(batch.baseSequence, batch.lastOffsetDelta),
    baseOffset: batch.baseOffset,
    lastOffset: batch.lastOffset,
  };
}

/** Where a producer's sequence stands: a new batch must follow it. */
interface SequenceTail {
  readonly producerEpoch: number;
  readonly lastSequence: number;
}

interface MutableEntry {
  producerEpoch: number;
  batches: BatchMetadata[];
}

/**
 * Use it as: `checkAppend(batch)` before the log append — `append`, `duplicate` or a WeirError
 * (checking also marks an `append` batch as in flight) — then `record(batch, firstOffset,
 * lastOffset)` once the append succeeded, or `abort(batch)` if it failed, so that a failed append
 * leaves no trace. In-flight batches let a producer pipeline requests: the next batch is checked
 * against the last one in flight, not just the last one written. That is sound because a failed
 * leader append fails every append queued after it (the Log refuses appends once a write failed),
 * so a later batch never lands without the one it was checked against; validate the batch's
 * shape (size, CRC) before checkAppend for the same reason. Call `record` in log order: it
 * asserts a producer's offsets grow.
 *
 * Bound: at most `maxProducerIds` producers are remembered; recording a new one beyond that
 * evicts the least recently used, where use is `record` only: the state is then a function of the
 * log alone, so `rebuild` and a follower recording the same batches reach exactly the leader's
 * state, evictions included. An evicted producer is treated like one whose batches retention
 * removed (Kafka, KIP-360): its next batch is accepted at any sequence, so it is never stuck, but
 * a retry of a batch written before the eviction would be written again. Keep the bound well
 * above the number of producers writing to one partition at a time. In-flight batches are
 * bounded by the caller's in-flight request limits.
 */
export class ProducerStateManager {
  readonly partition: string;
  readonly maxProducerIds: number;
  /** In least-recently-used order: a Map iterates in insertion order, and use re-inserts. */
  private readonly producers = new Map<bigint, MutableEntry>();
  /** Batches that passed checkAppend and are being appended, oldest first, per producer. */
  private readonly inFlight = new Map<bigint, ProducerBatch[]>();

  constructor(options: ProducerStateManagerOptions) {
    const maxProducerIds = options.maxProducerIds ?? DEFAULT_MAX_PRODUCER_IDS;
    if (!Number.isSafeInteger(maxProducerIds) || maxProducerIds < 1) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `maxProducerIds must be a positive integer, got ${maxProducerIds}`,
      );
    }
    this.partition = options.partition;
    this.maxProducerIds = maxProducerIds;
  }

  /** The number of producers remembered. */
  get size(): number {
    return this.producers.size;
  }

  /** How many batches are between checkAppend and record/abort. */
  get inFlightCount(): number {
    let count = 0;
    for (const batches of this.inFlight.values()) count += batches.length;
    return count;
  }

  entry(producerId: bigint): ProducerStateEntry | undefined {
    const entry = this.producers.get(producerId);
    return entry === undefined ? undefined : snapshotOf(producerId, entry);
  }

  /** Every remembered producer, least recently written first (the eviction order). */
  entries(): ProducerStateEntry[] {
    return [...this.producers].map(([producerId, entry]) => snapshotOf(producerId, entry));
  }

  /**
   * Decides whether a batch from a client may be appended (Kafka's
   * ProducerAppendInfo.checkProducerEpoch and checkSequence, with duplicates looked up first
   * as in Log.analyzeAndValidateProducerState). Throws WeirError:
   * - INVALID_RECORD: a producer id with a negative epoch or sequence;
   * - INVALID_PRODUCER_EPOCH: an epoch below the producer's current one;
   * - OUT_OF_ORDER_SEQUENCE_NUMBER: a new epoch not starting at sequence 0, or a sequence that
   *   does not follow the last one (a gap, or an old batch no longer remembered);
   * - REQUEST_TIMED_OUT (retriable): a retry of a batch still being appended.
   * A producer the partition has no state for is accepted at any sequence: modern Kafka no longer
   * answers UNKNOWN_PRODUCER_ID there (its state may have gone with retention, KIP-360). Batches
   * without a producer id are always appended and not tracked.
   */
  checkAppend(batch: ProducerBatch): ProducerAppendDecision {
    if (batch.producerId === NO_PRODUCER_ID) return { kind: 'append' };
    this.validate(batch);
    const entry = this.producers.get(batch.producerId);
    const duplicate = entry === undefined ? undefined : findDuplicate(entry, batch);
    if (duplicate !== undefined) {
      return {
        kind: 'duplicate',
        firstOffset: duplicate.firstOffset,
        lastOffset: duplicate.lastOffset,
      };
    }
    const pending = this.inFlight.get(batch.producerId) ?? [];
    if (pending.some((other) => sameBatch(other, batch))) {
      throw new WeirError(
        ErrorCode.REQUEST_TIMED_OUT,
        `${this.describe(batch)} is a retry of a batch still being appended to ${this.partition}; retry shortly`,
      );
    }
    const last = pending.at(-1) ?? lastBatchOf(entry);
    if (last !== undefined) this.checkFollows(batch, last);
    pending.push(batch);
    this.inFlight.set(batch.producerId, pending);
    return { kind: 'append' };
  }

  /** Forgets a batch that passed checkAppend but whose append failed. */
  abort(batch: ProducerBatch): void {
    this.removeInFlight(batch);
  }

  /**
   * Records a batch the log now holds at [firstOffset, lastOffset]: after a leader append that
   * checkAppend allowed, for a follower append, and on rebuild (no checks then: the log is the
   * truth, as Kafka's replication-origin appends). A new epoch replaces the producer's batches.
   */
  record(batch: ProducerBatch, firstOffset: bigint, lastOffset: bigint): void {
    if (batch.producerId === NO_PRODUCER_ID) return;
    this.removeInFlight(batch);
    assert(
      lastOffset - firstOffset === BigInt(sequenceSpan(batch)),
      () =>
        `${this.partition}: ${this.describe(batch)} covers offsets ${firstOffset}..${lastOffset}, not as many as its sequences`,
    );
    const entry = this.producers.get(batch.producerId) ?? this.admit(batch.producerId);
    const previous = entry.batches.at(-1);
    assert(
      previous === undefined || firstOffset > previous.lastOffset,
      () =>
        `${this.partition}: ${this.describe(batch)} recorded at offset ${firstOffset}, not after the producer's last batch ending at ${previous?.lastOffset}`,
    );
    if (entry.producerEpoch !== batch.producerEpoch) {
      entry.producerEpoch = batch.producerEpoch;
      entry.batches = [];
    }
    entry.batches.push({
      firstSequence: batch.baseSequence,
      lastSequence: batch.lastSequence,
      firstOffset,
      lastOffset,
    });
    if (entry.batches.length > BATCHES_RETAINED_PER_PRODUCER) entry.batches.shift();
    this.touch(batch.producerId, entry);
  }

  /**
   * Replaces the state with the one the given batches, in log order, produce: a full replay, as
   * opening a log without a snapshot does. Batches without a producer id are skipped; so should
   * control batches be.
   */
  rebuild(batches: Iterable<LoggedProducerBatch>): void {
    this.load([]);
    for (const batch of batches) this.record(batch, batch.baseOffset, batch.lastOffset);
  }

  /**
   * Replaces the state with `entries` from a producer snapshot (Kafka's loadFromSnapshot), least
   * recently used first as `entries()` gives them: that order decides evictions, so recording
   * the log's batches after the snapshot then reaches exactly the state a replay of the whole log
   * would. Beyond maxProducerIds (a snapshot taken under a larger bound) the least recently used
   * are left out, as eviction would have done. In-flight batches are forgotten. The entries must
   * be valid (producerEntryProblem); the snapshot decoder has checked them.
   */
  load(entries: readonly ProducerStateEntry[]): void {
    this.producers.clear();
    this.inFlight.clear();
    const kept = entries.slice(Math.max(entries.length - this.maxProducerIds, 0));
    for (const entry of kept) {
      const problem = producerEntryProblem(entry);
      assert(
        problem === undefined,
        () => `${this.partition}: loading producer ${entry.producerId}: ${problem}`,
      );
      assert(
        !this.producers.has(entry.producerId),
        () => `${this.partition}: producer ${entry.producerId} is loaded twice`,
      );
      this.producers.set(entry.producerId, {
        producerEpoch: entry.producerEpoch,
        batches: [...entry.batches],
      });
    }
  }

  /**
   * Forgets the batches at or after `offset` after the log was truncated there (a batch that
   * straddles it is gone from the log as a whole). A producer left with no batch is dropped
   * entirely, because what came before its remembered batches is unknown; it is then treated as
   * a producer without state (any sequence accepted). Returns the ids dropped, so the caller can
   * rebuild from the log instead where that matters. In-flight batches are forgotten.
   */
  truncateTo(offset: bigint): bigint[] {
    this.inFlight.clear();
    const dropped: bigint[] = [];
    for (const [producerId, entry] of this.producers) {
      entry.batches = entry.batches.filter((batch) => batch.lastOffset < offset);
      if (entry.batches.length > 0) continue;
      this.producers.delete(producerId);
      dropped.push(producerId);
    }
    return dropped;
  }

  /**
   * Drops producers whose last batch is before `logStartOffset`, after retention or
   * DeleteRecords removed it (Kafka's truncateHead and evictUnretainedProducers).
   */
  truncateHead(logStartOffset: bigint): bigint[] {
    const dropped: bigint[] = [];
    for (const [producerId, entry] of this.producers) {
      const last = entry.batches.at(-1);
      if (last !== undefined && last.lastOffset >= logStartOffset) continue;
      this.producers.delete(producerId);
      dropped.push(producerId);
    }
    return dropped;
  }

  private validate(batch: ProducerBatch): void {
    const valid =
      batch.producerId >= 0n &&
      isIntIn(batch.producerEpoch, 0, INT16_MAX) &&
      isIntIn(batch.baseSequence, 0, INT32_MAX) &&
      isIntIn(batch.lastSequence, 0, INT32_MAX);
    if (!valid) {
      throw new WeirError(
        ErrorCode.INVALID_RECORD,
        `${this.describe(batch)}: an idempotent batch needs a producer id, epoch and sequence of 0 or more`,
      );
    }
  }

  private checkFollows(batch: ProducerBatch, last: SequenceTail): void {
    if (batch.producerEpoch < last.producerEpoch) {
      throw new WeirError(
        ErrorCode.INVALID_PRODUCER_EPOCH,
        `${this.describe(batch)} to ${this.partition}: epoch ${batch.producerEpoch} is older than the producer's current epoch ${last.producerEpoch}`,
      );
    }
    if (batch.producerEpoch > last.producerEpoch) {
      if (batch.baseSequence === 0) return;
      throw new WeirError(
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
        `${this.describe(batch)} to ${this.partition}: the first batch of a new epoch must start at sequence 0`,
      );
    }
    if (!inSequence(last.lastSequence, batch.baseSequence)) {
      throw new WeirError(
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
        `${this.describe(batch)} to ${this.partition}: expected sequence ${nextSequence(last.lastSequence)}`,
      );
    }
  }

  private removeInFlight(batch: ProducerBatch): void {
    const pending = this.inFlight.get(batch.producerId);
    if (pending === undefined) return;
    const index = pending.findIndex((other) => sameBatch(other, batch));
    if (index < 0) return;
    pending.splice(index, 1);
    if (pending.length === 0) this.inFlight.delete(batch.producerId);
  }

  /** A new entry, evicting the least recently used one when the bound is reached. */
  private admit(producerId: bigint): MutableEntry {
    if (this.producers.size >= this.maxProducerIds) {
      const leastRecentlyUsed = this.producers.keys().next();
      if (leastRecentlyUsed.done !== true) this.producers.delete(leastRecentlyUsed.value);
    }
    const entry: MutableEntry = { producerEpoch: -1, batches: [] };
    this.producers.set(producerId, entry);
    assert(
      this.producers.size <= this.maxProducerIds,
      () => `${this.partition}: ${this.producers.size} producers exceed ${this.maxProducerIds}`,
    );
    return entry;
  }

  private touch(producerId: bigint, entry: MutableEntry): void {
    this.producers.delete(producerId);
    this.producers.set(producerId, entry);
  }

  private describe(batch: ProducerBatch): string {
    return `batch of producer ${batch.producerId} epoch ${batch.producerEpoch} sequences ${batch.baseSequence}..${batch.lastSequence}`;
  }
}

/**
 * What is wrong with an entry, or undefined when it is one `record` could have produced: a
 * producer id, an epoch and sequences of 0 or more, 1 to BATCHES_RETAINED_PER_PRODUCER batches in
 * offset order, each covering as many offsets as sequences. For producer snapshots read from disk.
 */
export function producerEntryProblem(entry: ProducerStateEntry): string | undefined {
  if (entry.producerId < 0n) return `producer id ${entry.producerId} is negative`;
  if (!isIntIn(entry.producerEpoch, 0, INT16_MAX)) {
    return `producer epoch ${entry.producerEpoch} is outside [0, ${INT16_MAX}]`;
  }
  const count = entry.batches.length;
  if (count < 1 || count > BATCHES_RETAINED_PER_PRODUCER) {
    return `${count} batches, expected 1 to ${BATCHES_RETAINED_PER_PRODUCER}`;
  }
  let previousLastOffset = -1n;
  for (const batch of entry.batches) {
    const problem = batchMetadataProblem(batch, previousLastOffset);
    if (problem !== undefined) return problem;
    previousLastOffset = batch.lastOffset;
  }
  return undefined;
}

function batchMetadataProblem(
  batch: BatchMetadata,
  previousLastOffset: bigint,
): string | undefined {
  const where = `batch at offsets ${batch.firstOffset}..${batch.lastOffset}`;
  if (!isIntIn(batch.firstSequence, 0, INT32_MAX) || !isIntIn(batch.lastSequence, 0, INT32_MAX)) {
    return `${where} has sequences ${batch.firstSequence}..${batch.lastSequence} outside [0, ${INT32_MAX}]`;
  }
  if (batch.firstOffset <= previousLastOffset) {
    return `${where} does not follow the previous batch ending at ${previousLastOffset}`;
  }
  const span = sequenceSpan({
    baseSequence: batch.firstSequence,
    lastSequence: batch.lastSequence,
  });
  if (batch.lastOffset - batch.firstOffset !== BigInt(span)) {
    return `${where} does not cover as many offsets as its sequences ${batch.firstSequence}..${batch.lastSequence}`;
  }
  return undefined;
}

function snapshotOf(producerId: bigint, entry: MutableEntry): ProducerStateEntry {
  return { producerId, producerEpoch: entry.producerEpoch, batches: [...entry.batches] };
}

/** A retry: the same epoch and the same sequence range as one of the remembered batches. */
function findDuplicate(entry: MutableEntry, batch: ProducerBatch): BatchMetadata | undefined {
  if (entry.producerEpoch !== batch.producerEpoch) return undefined;
  return entry.batches.find(
    (metadata) =>
      metadata.firstSequence === batch.baseSequence && metadata.lastSequence === batch.lastSequence,
  );
}

function lastBatchOf(entry: MutableEntry | undefined): SequenceTail | undefined {
  const last = entry?.batches.at(-1);
  if (entry === undefined || last === undefined) return undefined;
  return { producerEpoch: entry.producerEpoch, lastSequence: last.lastSequence };
}

function sameBatch(a: ProducerBatch, b: ProducerBatch): boolean {
  return (
    a.producerId === b.producerId &&
    a.producerEpoch === b.producerEpoch &&
    a.baseSequence === b.baseSequence &&
    a.lastSequence === b.lastSequence
  );
}

/** How many sequence numbers after the first the batch covers (its lastOffsetDelta). */
function sequenceSpan(batch: Pick<ProducerBatch, 'baseSequence' | 'lastSequence'>): number {
  const span = batch.lastSequence - batch.baseSequence;
  return span >= 0 ? span : span + INT32_MAX + 1;
}

function nextSequence(lastSequence: number): number {
  return lastSequence === INT32_MAX ? 0 : lastSequence + 1;
}

/** Kafka's ProducerAppendInfo.inSequence. */
function inSequence(lastSequence: number, nextSequenceNumber: number): boolean {
  return nextSequenceNumber === nextSequence(lastSequence);
}

function isIntIn(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}
