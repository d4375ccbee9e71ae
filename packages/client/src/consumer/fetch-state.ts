// The consumer's partitions and the records fetched for them but not yet returned (Kafka's
// `SubscriptionState` and `FetchBuffer`). Pure state, no I/O: the fetcher fills it, poll()
// empties it.
//
// Each assigned partition has two offsets: `position`, the next offset poll() returns (it
// advances past returned records only), and `fetchOffset`, where the next Fetch starts (past
// the records buffered). A partition is fetched only while nothing of it is buffered, so the
// two are equal whenever a Fetch is sent. `generation` changes on seek, reset and reassignment,
// so that an answer to a Fetch or ListOffsets sent before is dropped rather than applied.

import { ErrorCode, WeirError, assert, batchesIn } from '@weir/protocol';
import { type TopicPartition, topicPartitionKey } from '../producer/topic-partition.js';

export interface ConsumerRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** A header key sent more than once keeps its last value. */
  readonly headers: Readonly<Record<string, Buffer | null>>;
  /** Milliseconds since the epoch. */
  readonly timestamp: bigint;
}

export interface PartitionState extends TopicPartition {
  readonly key: string;
  /** The next offset poll() returns; undefined until reset by `autoOffsetReset` or seek(). */
  position: bigint | undefined;
  /** The next offset to fetch; undefined with `position`. */
  fetchOffset: bigint | undefined;
  paused: boolean;
  generation: number;
  /** Not fetched or reset before this time (Date.now() ms): a back-off after an error. */
  retryAtMs: number;
  /** How many errors in a row, for the back-off. */
  failures: number;
  /** Since when the metadata has not known the partition, for reporting it. */
  unknownSinceMs: number | undefined;
}

/** The records of one partition from one Fetch answer. */
interface CompletedFetch {
  readonly state: PartitionState;
  readonly generation: number;
  readonly records: readonly ConsumerRecord[];
  /** Where the fetch ends: past the last batch, even if its last records were removed. */
  readonly nextOffset: bigint;
  readonly bytes: number;
  index: number;
}

export class FetchState {
  private readonly partitions = new Map<string, PartitionState>();
  private readonly completed: CompletedFetch[] = [];
  private bufferedBytesCount = 0;
  private bufferedRecordsCount = 0;

  get bufferedBytes(): number {
    return this.bufferedBytesCount;
  }

  get bufferedRecords(): number {
    return this.bufferedRecordsCount;
  }

  /** The assigned partitions, in assignment order. */
  get assigned(): readonly PartitionState[] {
    return [...this.partitions.values()];
  }

  get(topic: string, partition: number): PartitionState | undefined {
    return this.partitions.get(topicPartitionKey(topic, partition));
  }

  /** Replaces the assignment; partitions assigned before keep their positions. */
  assign(partitions: readonly TopicPartition[]): void {
    const next = new Map<string, PartitionState>();
    for (const { topic, partition } of partitions) {
      const key = topicPartitionKey(topic, partition);
      next.set(
        key,
        this.partitions.get(key) ?? {
          topic,
          partition,
          key,
          position: undefined,
          fetchOffset: undefined,
          paused: false,
          generation: 0,
          retryAtMs: 0,
          failures: 0,
          unknownSinceMs: undefined,
        },
      );
    }
    for (const [key, state] of this.partitions) {
      if (!next.has(key)) state.generation++; // drops its buffered records and answers
    }
    this.partitions.clear();
    for (const [key, state] of next) this.partitions.set(key, state);
    this.dropStale();
  }

  /** Moves the partition to `offset` (undefined: reset by `autoOffsetReset`). */
  seek(state: PartitionState, offset: bigint | undefined): void {
    state.generation++;
    state.position = offset;
    state.fetchOffset = offset;
    state.retryAtMs = 0;
    state.failures = 0;
    this.dropStale();
  }

  /** Whether records of the partition are buffered. */
  hasBuffered(state: PartitionState): boolean {
    return this.completed.some((fetch) => fetch.state === state);
  }

  /**
   * Takes a Fetch answer's records for the partition, if it was sent for the current
   * generation: skips records below the fetch offset (an answer starts at the batch holding
   * it) and control batches, and moves the fetch offset past the last whole batch.
   * Throws CORRUPT_MESSAGE for a batch that fails its CRC.
   */
  addFetched(state: PartitionState, generation: number, records: Buffer): void {
    if (!this.isCurrent(state, generation)) return;
    const fetchOffset = state.fetchOffset;
    assert(fetchOffset !== undefined, () => `${state.key} was fetched without a fetch offset`);
    const decoded: ConsumerRecord[] = [];
    let nextOffset = fetchOffset;
    let wholeBatches = 0;
    for (const batch of batchesIn(records, { allowPartialTail: true })) {
      wholeBatches++;
      if (batch.nextOffset <= fetchOffset) continue;
      batch.validate();
      nextOffset = batch.nextOffset;
      if (batch.isControlBatch) continue;
      for (const record of batch.records()) {
        if (record.offset < fetchOffset) continue;
        decoded.push({
          topic: state.topic,
          partition: state.partition,
          offset: record.offset,
          key: record.key,
          value: record.value,
          headers: headerRecord(record.headers),
          timestamp: record.timestamp,
        });
      }
    }
    if (wholeBatches === 0 && records.length > 0) {
      const size = records.length;
      throw new WeirError(
        ErrorCode.CORRUPT_MESSAGE,
        `the ${size}-byte Fetch answer for ${state.key} at offset ${fetchOffset} holds no whole batch; raise maxPartitionBytes or maxBytes`,
      );
    }
    state.fetchOffset = nextOffset;
    if (decoded.length === 0) {
      // Nothing to return (control records only, say): the position moves on with the fetch.
      state.position = nextOffset;
      return;
    }
    this.completed.push({
      state,
      generation,
      records: decoded,
      nextOffset,
      bytes: records.length,
      index: 0,
    });
    this.bufferedBytesCount += records.length;
    this.bufferedRecordsCount += decoded.length;
  }

  /** Sets a reset partition's offsets from ListOffsets, if still current and unset. */
  setResetOffset(state: PartitionState, generation: number, offset: bigint): void {
    if (!this.isCurrent(state, generation) || state.position !== undefined) return;
    state.position = offset;
    state.fetchOffset = offset;
  }

  isCurrent(state: PartitionState, generation: number): boolean {
    return this.partitions.get(state.key) === state && state.generation === generation;
  }

  /**
   * Up to `max` buffered records of partitions that are not paused, oldest fetch first,
   * advancing each partition's position past what is returned.
   */
  take(max: number): ConsumerRecord[] {
    this.dropStale();
    const taken: ConsumerRecord[] = [];
    for (let i = 0; i < this.completed.length && taken.length < max;) {
      const fetch = this.completed[i]!;
      if (fetch.state.paused) {
        i++;
        continue;
      }
      const end = Math.min(fetch.records.length, fetch.index + max - taken.length);
      for (let j = fetch.index; j < end; j++) taken.push(fetch.records[j]!);
      this.bufferedRecordsCount -= end - fetch.index;
      fetch.index = end;
      fetch.state.position = fetch.records[end - 1]!.offset + 1n;
      if (fetch.index === fetch.records.length) {
        fetch.state.position = fetch.nextOffset;
        this.remove(i);
      } else {
        i++;
      }
    }
    return taken;
  }

  /** Whether poll() would return records now. */
  hasReturnable(): boolean {
    return this.completed.some(
      (fetch) => !fetch.state.paused && this.isCurrent(fetch.state, fetch.generation),
    );
  }

  clear(): void {
    this.completed.length = 0;
    this.bufferedBytesCount = 0;
    this.bufferedRecordsCount = 0;
    this.partitions.clear();
  }

  /** Drops buffered records of partitions sought, reset or unassigned since they came. */
  private dropStale(): void {
    for (let i = this.completed.length - 1; i >= 0; i--) {
      const fetch = this.completed[i]!;
      if (!this.isCurrent(fetch.state, fetch.generation)) this.remove(i);
    }
  }

  private remove(index: number): void {
    const [fetch] = this.completed.splice(index, 1);
    this.bufferedBytesCount -= fetch!.bytes;
    this.bufferedRecordsCount -= fetch!.records.length - fetch!.index;
  }
}

function headerRecord(
  headers: readonly { readonly key: string; readonly value: Buffer | null }[],
): Record<string, Buffer | null> {
  // No prototype: a header named __proto__ is a header like any other.
  const result = Object.create(null) as Record<string, Buffer | null>;
  for (const { key, value } of headers) result[key] = value;
  return result;
}
