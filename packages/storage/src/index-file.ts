// The file behind a segment index (Kafka's `AbstractIndex`), shared by the offset index and
// the time index: fixed-size entries held in memory, with the unwritten tail appended on flush.
// Indexes are rebuildable from the log, so their files need no crash atomicity of their own: a
// torn or stale file fails `sanityCheck` on open and the segment rebuilds it.

import type { FileHandle } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { assert } from '@weir/protocol';
import { storageError, writeFileAtomically } from './checkpoint-file.js';

/** Kafka's `segment.index.bytes` default: the size at which an index counts as full. */
export const DEFAULT_MAX_INDEX_SIZE_BYTES = 10 * 1024 * 1024;

/** Relative offsets are stored as u32; a segment must roll before an offset exceeds this. */
export const MAX_RELATIVE_OFFSET = 0xffff_ffffn;

export interface IndexOptions {
  /** Entries beyond this size make `isFull()` true (Kafka's `segment.index.bytes`). */
  readonly maxIndexSizeBytes?: number;
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

/**
 * What the offset and time indexes share: the file, the base offset their relative offsets
 * count from, and the life cycle. Subclasses define the entry layout.
 */
export abstract class SegmentIndex<Entry> {
  protected constructor(
    protected readonly file: IndexFile,
    readonly baseOffset: bigint,
  ) {}

  abstract entryAt(n: number): Entry;

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

  lastEntry(): Entry | undefined {
    return this.entries === 0 ? undefined : this.entryAt(this.entries - 1);
  }

  /** Drops every entry (Kafka's `reset`); the file follows on the next flush. */
  reset(): void {
    this.file.truncateToEntries(0);
  }

  async flush(): Promise<void> {
    await this.file.flush();
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  async delete(): Promise<void> {
    await this.file.delete();
  }

  /** The first inconsistency: a torn tail, or the first entry `problemOf` rejects. */
  protected firstProblem(
    kind: string,
    problemOf: (entry: Entry, previous: Entry | undefined) => string | undefined,
  ): string | undefined {
    if (this.file.trailingBytes !== 0) {
      return `${kind} ${this.path} has ${this.file.trailingBytes} bytes after its last whole entry`;
    }
    let previous: Entry | undefined;
    for (let n = 0; n < this.entries; n++) {
      const entry = this.entryAt(n);
      const problem = problemOf(entry, previous);
      if (problem !== undefined) return `${kind} ${this.path} entry ${n}: ${problem}`;
      previous = entry;
    }
    return undefined;
  }
}
