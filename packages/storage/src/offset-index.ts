// The sparse offset index of one segment, Kafka's `OffsetIndex`: every `index.interval.bytes` of
// log the segment records (offset, position) of a batch start, so a fetch at offset X reads the
// index instead of scanning the whole segment. File `<20-digit baseOffset>.index`, 8-byte entries,
// big-endian: relativeOffset u32 (offset − baseOffset), position u32 (byte position in the .log).
//
// The index is rebuildable from the log, so its file needs no crash atomicity of its own: a torn
// or stale file fails `sanityCheck` on open and the segment rebuilds it (Kafka's recovery does
// the same, `LogLoader` + `AbstractIndex.sanityCheck`).

import { assert } from '@weir/protocol';
import {
  type IndexOptions,
  IndexFile,
  MAX_RELATIVE_OFFSET,
  SegmentIndex,
  largestLowerBound,
} from './index-file.js';

export { MAX_RELATIVE_OFFSET };

export const OFFSET_INDEX_ENTRY_SIZE_BYTES = 8;

export interface OffsetPosition {
  readonly offset: bigint;
  /** Byte position of the batch start in the segment's .log file. */
  readonly position: number;
}

export class OffsetIndex extends SegmentIndex<OffsetPosition> {
  private constructor(file: IndexFile, baseOffset: bigint) {
    super(file, baseOffset);
  }

  /** Opens the index file, creating it when missing. Call `sanityCheck` before trusting it. */
  static async open(
    path: string,
    baseOffset: bigint,
    options: IndexOptions = {},
  ): Promise<OffsetIndex> {
    return new OffsetIndex(
      await IndexFile.open(path, OFFSET_INDEX_ENTRY_SIZE_BYTES, options),
      baseOffset,
    );
  }

  /**
   * Writes a fresh index file holding `entries` (tmp + rename) and opens it. Close the old
   * instance on `path` first. Entries must be strictly increasing in offset and position.
   */
  static async rebuild(
    path: string,
    baseOffset: bigint,
    entries: Iterable<OffsetPosition>,
    options: IndexOptions = {},
  ): Promise<OffsetIndex> {
    const index = new OffsetIndex(
      IndexFile.draft(path, OFFSET_INDEX_ENTRY_SIZE_BYTES, options),
      baseOffset,
    );
    for (const entry of entries) index.append(entry.offset, entry.position);
    await index.file.persistAtomically();
    return index;
  }

  /** Whether `offset` fits this segment's u32 relative offsets (Kafka's `canAppendOffset`). */
  canAppendOffset(offset: bigint): boolean {
    return offset >= this.baseOffset && offset - this.baseOffset <= MAX_RELATIVE_OFFSET;
  }

  /**
   * Why the file cannot be trusted, or undefined when it is consistent with a log of
   * `logSizeBytes` bytes. Kafka checks the size and the last offset; we check every entry because
   * a rebuild is cheap and a wrong position makes a fetch return garbage.
   */
  sanityCheck(logSizeBytes: number): string | undefined {
    return this.firstProblem('index', (entry, previous) =>
      entryProblem(entry, previous, logSizeBytes),
    );
  }

  /** Records that the batch starting at `offset` begins at byte `position` of the .log. */
  append(offset: bigint, position: number): void {
    assert(
      this.canAppendOffset(offset),
      () => `offset ${offset} is outside index ${this.path} (base offset ${this.baseOffset})`,
    );
    assert(
      Number.isInteger(position) && position >= 0 && position <= 0xffff_ffff,
      () => `position ${position} for offset ${offset} does not fit a u32 in index ${this.path}`,
    );
    const last = this.lastEntry();
    assert(
      last === undefined || (offset > last.offset && position > last.position),
      () =>
        `index ${this.path} append (offset ${offset}, position ${position}) is not after ` +
        `the last entry (offset ${last?.offset}, position ${last?.position})`,
    );
    const slot = this.file.appendSlot();
    this.file.buffer.writeUInt32BE(Number(offset - this.baseOffset), slot);
    this.file.buffer.writeUInt32BE(position, slot + 4);
  }

  /** The largest entry with offset ≤ `offset`: where to start scanning the log for it. */
  lookup(offset: bigint): OffsetPosition {
    const n = this.largestEntryAtOrBelow(offset);
    return n < 0 ? { offset: this.baseOffset, position: 0 } : this.entryAt(n);
  }

  /** The n-th entry (Kafka's `entry(n)`). */
  entryAt(n: number): OffsetPosition {
    assert(
      n >= 0 && n < this.entries,
      () => `entry ${n} is outside index ${this.path} of ${this.entries} entries`,
    );
    const slot = n * OFFSET_INDEX_ENTRY_SIZE_BYTES;
    const buffer = this.file.buffer;
    return {
      offset: this.baseOffset + BigInt(buffer.readUInt32BE(slot)),
      position: buffer.readUInt32BE(slot + 4),
    };
  }

  /** Removes the entries with offset ≥ `offset` (log truncation); the file follows on flush. */
  truncateTo(offset: bigint): void {
    this.file.truncateToEntries(this.largestEntryAtOrBelow(offset - 1n) + 1);
  }

  private largestEntryAtOrBelow(offset: bigint): number {
    if (offset < this.baseOffset) return -1;
    const relative = offset - this.baseOffset;
    // Clamping keeps the comparison in `number`; every stored relative offset is ≤ the clamp.
    const target = Number(relative > MAX_RELATIVE_OFFSET ? MAX_RELATIVE_OFFSET : relative);
    const buffer = this.file.buffer;
    return largestLowerBound(
      this.entries,
      (n) => buffer.readUInt32BE(n * OFFSET_INDEX_ENTRY_SIZE_BYTES) <= target,
    );
  }
}

function entryProblem(
  entry: OffsetPosition,
  previous: OffsetPosition | undefined,
  logSizeBytes: number,
): string | undefined {
  if (entry.position >= logSizeBytes) {
    return `position ${entry.position} is not inside the ${logSizeBytes}-byte log`;
  }
  if (previous === undefined) return undefined;
  if (entry.offset <= previous.offset) {
    return `offset ${entry.offset} does not follow ${previous.offset}`;
  }
  if (entry.position <= previous.position) {
    return `position ${entry.position} does not follow ${previous.position}`;
  }
  return undefined;
}
