// The sparse offset index of one segment, Kafka's `OffsetIndex`: every `index.interval.bytes` of
// log the segment records (offset, position) of a batch start, so a fetch at offset X reads the
// index instead of scanning the whole segment. File `<20-digit baseOffset>.index`, 8-byte entries,
// big-endian: relativeOffset u32 (offset − baseOffset), position u32 (byte position in the .log).
//
// The index is rebuildable from the log, so its file needs no crash atomicity of its own: a torn
// or stale file fails `sanityCheck` on open and the segment rebuilds it (Kafka's recovery does
// the same, `LogLoader` + `AbstractIndex.sanityCheck`).

import type { FileHandle } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { assert } from '@weir/protocol';
import { storageError, writeFileAtomically } from './checkpoint-file.js';

/** Kafka's `segment.index.bytes` default: the size at which an index counts as full. */
export const DEFAULT_MAX_INDEX_SIZE_BYTES = 10 * 1024 * 1024;

/** Relative offsets are stored as u32; a segment must roll before an offset exceeds this. */
export const MAX_RELATIVE_OFFSET = 0xffff_ffffn;

export const OFFSET_INDEX_ENTRY_SIZE_BYTES = 8;

export interface IndexOptions {
  /** Entries beyond this size make `isFull()` true (Kafka's `segment.index.bytes`). */
  readonly maxIndexSizeBytes?: number;
}

export interface OffsetPosition {
  readonly offset: bigint;
  /** Byte position of the batch start in the segment's .log file. */
  readonly position: number;
}

const INITIAL_CAPACITY_ENTRIES = 64;

/**
 * Kafka's `AbstractIndex` storage: a file of fixed-size entries kept whole in memory (Kafka
 * mmaps it; we hold a growing Buffer) with only the unwritten tail written on `flush`.
 * Shared by the offset and time indexes; not part of the package surface.
 */
export class IndexFile {
  private bytes: Buffer;
  private entryCount: number;
  /** Leading entries whose bytes in the file are known to equal those in memory. */
  private durableEntries: number;
  /** The file's size as last seen or written; -1 when a failed write left it unknown. */
  private fileSizeBytes: number;
  /** Entries the in-flight flush will make durable; lowered by a truncation meanwhile. */
  private flushTargetEntries: number | undefined;
  private flushChain: Promise<void> = Promise.resolve();
  private handle: FileHandle | undefined;

  private constructor(
    private currentPath: string,
    readonly entrySizeBytes: number,
    readonly maxEntries: number,
    bytes: Buffer,
    fileSizeBytes: number,
  ) {
    this.bytes = bytes;
    this.entryCount = Math.floor(fileSizeBytes / entrySizeBytes);
    this.durableEntries = this.entryCount;
    this.fileSizeBytes = fileSizeBytes;
  }

  /** Opens (creating it if missing) and reads the whole file, torn tail included. */
  static async open(
    path: string,
    entrySizeBytes: number,
    options: IndexOptions,
  ): Promise<IndexFile> {
    let handle: FileHandle | undefined;
    try {
      // O_RDWR without O_APPEND: flush writes at explicit positions after a truncation.
      handle = await open(path, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
      const content = await handle.readFile();
      const file = new IndexFile(
        path,
        entrySizeBytes,
        maxEntriesFor(options, entrySizeBytes),
        content,
        content.length,
      );
      file.handle = handle;
      return file;
    } catch (error) {
      await handle?.close();
      throw storageError('open index', path, error);
    }
  }

  /** An empty index not yet backed by a file; `persistAtomically` writes and opens it. */
  static draft(path: string, entrySizeBytes: number, options: IndexOptions): IndexFile {
    const capacityBytes = INITIAL_CAPACITY_ENTRIES * entrySizeBytes;
    return new IndexFile(
      path,
      entrySizeBytes,
      maxEntriesFor(options, entrySizeBytes),
      Buffer.alloc(capacityBytes),
      0,
    );
  }

  /** Writes a draft as a whole new file (tmp + rename) and keeps it open for appends. */
  async persistAtomically(): Promise<void> {
    assert(
      this.handle === undefined,
      () => `index ${this.currentPath} is already backed by a file`,
    );
    const usedBytes = this.entryCount * this.entrySizeBytes;
    await writeFileAtomically(this.currentPath, this.bytes.subarray(0, usedBytes));
    try {
      this.handle = await open(this.currentPath, fsConstants.O_RDWR);
    } catch (error) {
      throw storageError('open index', this.currentPath, error);
    }
    this.durableEntries = this.entryCount;
    this.fileSizeBytes = usedBytes;
  }

  get path(): string {
    return this.currentPath;
  }

  get entries(): number {
    return this.entryCount;
  }

  /** Bytes after the last whole entry in the file (a torn append); 0 when the file is whole. */
  get trailingBytes(): number {
    return Math.max(this.fileSizeBytes, 0) % this.entrySizeBytes;
  }

  /** The in-memory entries; read with `readUInt32BE(n * entrySizeBytes)` etc. */
  get buffer(): Buffer {
    return this.bytes;
  }

  isFull(): boolean {
    return this.entryCount >= this.maxEntries;
  }

  /** Makes room for one more entry and returns the byte position to write it at. */
  appendSlot(): number {
    assert(!this.isFull(), () => `index ${this.currentPath} is full (${this.entryCount} entries)`);
    const start = this.entryCount * this.entrySizeBytes;
    if (start + this.entrySizeBytes > this.bytes.length) this.grow();
    this.entryCount += 1;
    return start;
  }

  private grow(): void {
    const capacityEntries = Math.min(
      Math.max(this.entryCount * 2, INITIAL_CAPACITY_ENTRIES),
      this.maxEntries,
    );
    const grown = Buffer.alloc(capacityEntries * this.entrySizeBytes);
    this.bytes.copy(grown, 0, 0, this.entryCount * this.entrySizeBytes);
    this.bytes = grown;
  }

  /** Keeps the first `entryCount` entries; the file follows on the next flush. */
  truncateToEntries(entryCount: number): void {
    assert(
      entryCount >= 0,
      () => `cannot truncate index ${this.currentPath} to ${entryCount} entries`,
    );
    if (entryCount >= this.entryCount) return;
    this.entryCount = entryCount;
    this.durableEntries = Math.min(this.durableEntries, entryCount);
    if (this.flushTargetEntries !== undefined) {
      this.flushTargetEntries = Math.min(this.flushTargetEntries, entryCount);
    }
  }

  /**
   * Writes what changed since the last flush and fdatasyncs. Flushes run one at a time; after one
   * resolves the file holds exactly the entries present when it started (or fewer, when a
   * truncation ran meanwhile — the next flush completes it).
   */
  flush(): Promise<void> {
    const flushed = this.flushChain.then(() => this.flushOnce());
    this.flushChain = flushed.catch(() => undefined);
    return flushed;
  }

  private async flushOnce(): Promise<void> {
    const handle = this.openHandle();
    const targetEntries = this.entryCount;
    const validBytes = this.durableEntries * this.entrySizeBytes;
    const targetBytes = targetEntries * this.entrySizeBytes;
    if (this.fileSizeBytes === targetBytes && this.durableEntries === targetEntries) return;
    this.flushTargetEntries = targetEntries;
    try {
      if (this.fileSizeBytes !== validBytes) await handle.truncate(validBytes);
      this.fileSizeBytes = validBytes;
      await writeFully(handle, this.bytes, validBytes, targetBytes);
      this.fileSizeBytes = targetBytes;
      await handle.datasync();
      this.durableEntries = this.flushTargetEntries;
    } catch (error) {
      this.fileSizeBytes = -1;
      throw storageError('flush index', this.currentPath, error);
    } finally {
      this.flushTargetEntries = undefined;
    }
  }

  /** Renames the file (Kafka renames segments' files to `.deleted` before deleting them). */
  async renameTo(path: string): Promise<void> {
    try {
      await rename(this.currentPath, path);
    } catch (error) {
      throw storageError(`rename index to ${path}`, this.currentPath, error);
    }
    this.currentPath = path;
  }

  /** Flushes what is pending, then closes the file. */
  async close(): Promise<void> {
    if (this.handle === undefined) return;
    try {
      await this.flush();
    } finally {
      await this.closeHandle();
    }
  }

  /** Closes without flushing and removes the file. */
  async delete(): Promise<void> {
    await this.flushChain;
    await this.closeHandle();
    try {
      await rm(this.currentPath, { force: true });
    } catch (error) {
      throw storageError('delete index', this.currentPath, error);
    }
  }

  private async closeHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    try {
      await handle?.close();
    } catch (error) {
      throw storageError('close index', this.currentPath, error);
    }
  }

  private openHandle(): FileHandle {
    assert(this.handle !== undefined, () => `index ${this.currentPath} is closed`);
    return this.handle;
  }
}

function maxEntriesFor(options: IndexOptions, entrySizeBytes: number): number {
  const maxIndexSizeBytes = options.maxIndexSizeBytes ?? DEFAULT_MAX_INDEX_SIZE_BYTES;
  assert(
    Number.isSafeInteger(maxIndexSizeBytes) && maxIndexSizeBytes >= entrySizeBytes,
    () =>
      `maxIndexSizeBytes ${maxIndexSizeBytes} must hold at least one ${entrySizeBytes}-byte entry`,
  );
  return Math.floor(maxIndexSizeBytes / entrySizeBytes);
}

async function writeFully(
  handle: FileHandle,
  bytes: Buffer,
  start: number,
  end: number,
): Promise<void> {
  let position = start;
  while (position < end) {
    const { bytesWritten } = await handle.write(bytes, position, end - position, position);
    position += bytesWritten;
  }
}

/**
 * The largest n in [0, count) with `isAtOrBelow(n)` true, or -1; `isAtOrBelow` must be true for a
 * prefix of the entries and false after it (entries are sorted by the searched key).
 */
export function largestLowerBound(count: number, isAtOrBelow: (n: number) => boolean): number {
  let low = 0;
  let high = count - 1;
  let found = -1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    if (isAtOrBelow(middle)) {
      found = middle;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return found;
}

export class OffsetIndex {
  private constructor(
    private readonly file: IndexFile,
    readonly baseOffset: bigint,
  ) {}

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

  get path(): string {
    return this.file.path;
  }

  get entries(): number {
    return this.file.entries;
  }

  /** True when the segment must roll before indexing more (Kafka's `isFull`). */
  isFull(): boolean {
    return this.file.isFull();
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
    if (this.file.trailingBytes !== 0) {
      return `index ${this.path} has ${this.file.trailingBytes} bytes after its last whole entry`;
    }
    let previous: OffsetPosition | undefined;
    for (let n = 0; n < this.entries; n++) {
      const entry = this.entryAt(n);
      const problem = entryProblem(entry, previous, logSizeBytes);
      if (problem !== undefined) return `index ${this.path} entry ${n}: ${problem}`;
      previous = entry;
    }
    return undefined;
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

  lastEntry(): OffsetPosition | undefined {
    return this.entries === 0 ? undefined : this.entryAt(this.entries - 1);
  }

  /** Removes the entries with offset ≥ `offset` (log truncation); the file follows on flush. */
  truncateTo(offset: bigint): void {
    this.file.truncateToEntries(this.largestEntryAtOrBelow(offset - 1n) + 1);
  }

  /** Drops every entry (Kafka's `reset`, used when a segment is truncated to its base offset). */
  reset(): void {
    this.file.truncateToEntries(0);
  }

  async flush(): Promise<void> {
    await this.file.flush();
  }

  async renameTo(path: string): Promise<void> {
    await this.file.renameTo(path);
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  async delete(): Promise<void> {
    await this.file.delete();
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
