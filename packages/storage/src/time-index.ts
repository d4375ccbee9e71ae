// The time index of one segment, Kafka's `TimeIndex` (KIP-33): entries (timestamp, offset) saying
// "the records up to this offset have a max timestamp of this", used to find the first offset
// with a timestamp ≥ T (ListOffsets by time) and for time-based retention.
// File `<20-digit baseOffset>.timeindex`, 12-byte entries, big-endian: timestamp i64 ms,
// relativeOffset u32. Timestamps are strictly increasing: an entry is added only when the max
// timestamp so far grows. Like the offset index it is rebuilt from the log when it fails
// `sanityCheck`.

import { assert } from '@weir/protocol';
import {
  type IndexOptions,
  IndexFile,
  MAX_RELATIVE_OFFSET,
  SegmentIndex,
  largestLowerBound,
} from './index-file.js';

export const TIME_INDEX_ENTRY_SIZE_BYTES = 12;

export interface TimestampOffset {
  readonly timestampMs: bigint;
  readonly offset: bigint;
}

/** RecordBatch v2's NO_TIMESTAMP (-1); negative timestamps are never indexed. */
const NO_TIMESTAMP = -1n;

export class TimeIndex extends SegmentIndex<TimestampOffset> {
  private constructor(file: IndexFile, baseOffset: bigint) {
    super(file, baseOffset);
  }

  /** Opens the index file, creating it when missing. Call `sanityCheck` before trusting it. */
  static async open(
    path: string,
    baseOffset: bigint,
    options: IndexOptions = {},
  ): Promise<TimeIndex> {
    return new TimeIndex(
      await IndexFile.open(path, TIME_INDEX_ENTRY_SIZE_BYTES, options),
      baseOffset,
    );
  }

  /**
   * Writes a fresh index file (tmp + rename) from `entries` fed through `maybeAppend`, so the
   * caller may pass every batch's (maxTimestamp, offset) and only growing timestamps are kept.
   * Close the old instance on `path` first.
   */
  static async rebuild(
    path: string,
    baseOffset: bigint,
    entries: Iterable<TimestampOffset>,
    options: IndexOptions = {},
  ): Promise<TimeIndex> {
    const index = new TimeIndex(
      IndexFile.draft(path, TIME_INDEX_ENTRY_SIZE_BYTES, options),
      baseOffset,
    );
    for (const entry of entries) index.maybeAppend(entry.timestampMs, entry.offset);
    await index.file.persistAtomically();
    return index;
  }

  /**
   * Why the file cannot be trusted, or undefined. Timestamps must be non-negative and strictly
   * increasing, offsets non-decreasing (Kafka's `TimeIndex.sanityCheck` checks the last entry
   * only; checking all of them is cheap and catches a garbage tail).
   */
  sanityCheck(): string | undefined {
    return this.firstProblem('time index', entryProblem);
  }

  /**
   * Appends (maxTimestampMs, offset) when `maxTimestampMs` is greater than the last entry's
   * timestamp; returns whether it did. Kafka ignores an equal or older timestamp the same way
   * (a segment re-appends its last entry when it becomes inactive) and rejects an older offset.
   */
  maybeAppend(maxTimestampMs: bigint, offset: bigint): boolean {
    const last = this.lastEntry();
    if (maxTimestampMs <= (last?.timestampMs ?? NO_TIMESTAMP)) return false;
    assert(
      offset >= this.baseOffset && offset - this.baseOffset <= MAX_RELATIVE_OFFSET,
      () => `offset ${offset} is outside time index ${this.path} (base offset ${this.baseOffset})`,
    );
    assert(
      last === undefined || offset >= last.offset,
      () =>
        `time index ${this.path} append (timestamp ${maxTimestampMs}, offset ${offset}) goes back ` +
        `before the last entry's offset ${last?.offset}`,
    );
    const slot = this.file.appendSlot();
    this.file.buffer.writeBigInt64BE(maxTimestampMs, slot);
    this.file.buffer.writeUInt32BE(Number(offset - this.baseOffset), slot + 8);
    return true;
  }

  /**
   * The last entry with timestamp ≤ `timestampMs`, or undefined when every entry is later: the
   * point from which to scan the log for the first record at or after the target (Kafka's
   * `TimeIndex.lookup`, which returns (NO_TIMESTAMP, baseOffset) where we return undefined).
   */
  lookup(timestampMs: bigint): TimestampOffset | undefined {
    const buffer = this.file.buffer;
    const n = largestLowerBound(
      this.entries,
      (i) => buffer.readBigInt64BE(i * TIME_INDEX_ENTRY_SIZE_BYTES) <= timestampMs,
    );
    return n < 0 ? undefined : this.entryAt(n);
  }

  entryAt(n: number): TimestampOffset {
    assert(
      n >= 0 && n < this.entries,
      () => `entry ${n} is outside time index ${this.path} of ${this.entries} entries`,
    );
    const slot = n * TIME_INDEX_ENTRY_SIZE_BYTES;
    const buffer = this.file.buffer;
    return {
      timestampMs: buffer.readBigInt64BE(slot),
      offset: this.baseOffset + BigInt(buffer.readUInt32BE(slot + 8)),
    };
  }

  /** Removes the entries with offset ≥ `offset` (log truncation); the file follows on flush. */
  truncateTo(offset: bigint): void {
    this.file.truncateToEntries(this.countEntriesBelow(offset));
  }

  private countEntriesBelow(offset: bigint): number {
    if (offset <= this.baseOffset) return 0;
    const relative = offset - this.baseOffset;
    const target = Number(relative > MAX_RELATIVE_OFFSET ? MAX_RELATIVE_OFFSET + 1n : relative);
    const buffer = this.file.buffer;
    // Offsets are sorted (non-decreasing), so "offset < target" holds for a prefix.
    return (
      largestLowerBound(
        this.entries,
        (i) => buffer.readUInt32BE(i * TIME_INDEX_ENTRY_SIZE_BYTES + 8) < target,
      ) + 1
    );
  }
}

function entryProblem(
  entry: TimestampOffset,
  previous: TimestampOffset | undefined,
): string | undefined {
  if (entry.timestampMs < 0n) return `timestamp ${entry.timestampMs} is negative`;
  if (previous === undefined) return undefined;
  if (entry.timestampMs <= previous.timestampMs) {
    return `timestamp ${entry.timestampMs} does not follow ${previous.timestampMs}`;
  }
  if (entry.offset < previous.offset) {
    return `offset ${entry.offset} goes back before ${previous.offset}`;
  }
  return undefined;
}
