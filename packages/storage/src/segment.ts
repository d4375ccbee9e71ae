// One segment of a partition log: `<baseOffset>.log` holding record batches exactly as they
// arrived (after offset assignment), with a sparse offset index and a time index beside it.
// Kafka's LogSegment. A segment does no locking of its own: the Log calls its write methods
// one at a time from its single writer; reads may run concurrently with appends.

import { join } from 'node:path';
import { access, unlink } from 'node:fs/promises';
import {
  ErrorCode,
  LOG_OVERHEAD,
  RECORD_BATCH_OVERHEAD,
  RecordBatch,
  WeirError,
  assert,
  batchSizeAt,
} from '@weir/protocol';
import { MAX_RELATIVE_OFFSET, OffsetIndex } from './offset-index.js';
import { type SegmentFile, type SegmentFileOpener } from './segment-file.js';
import { TimeIndex } from './time-index.js';

export const LOG_FILE_SUFFIX = '.log';
export const INDEX_FILE_SUFFIX = '.index';
export const TIME_INDEX_FILE_SUFFIX = '.timeindex';

/** How much a recovery scan reads at a time. */
const SCAN_CHUNK_BYTES = 1024 * 1024;
/** How much a read reads at a time while looking for the batch holding an offset. */
const SEEK_CHUNK_BYTES = 16 * 1024;
/** Header bytes that tell a batch's base offset, size and last offset delta. */
const SEEK_HEADER_BYTES = 27;
/** Where RecordBatch v2 keeps maxTimestamp (int64) in the batch header. */
const MAX_TIMESTAMP_FIELD_OFFSET = 35;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Kafka's file naming: the base offset as 20 zero-padded digits. */
export function segmentFileName(baseOffset: bigint, suffix: string): string {
  return baseOffset.toString().padStart(20, '0') + suffix;
}

export function storageError(action: string, cause: unknown): WeirError {
  if (cause instanceof WeirError) return cause;
  const message = cause instanceof Error ? cause.message : String(cause);
  return new WeirError(ErrorCode.KAFKA_STORAGE_ERROR, `${action} failed: ${message}`, { cause });
}

export interface SegmentOptions {
  readonly indexIntervalBytes: number;
  readonly openFile: SegmentFileOpener;
  /** Milliseconds since the epoch. */
  readonly clock: () => number;
}

/** What a scan found: the bytes that hold valid batches, and why it stopped early, if it did. */
interface ScanResult {
  readonly validBytes: number;
  readonly problem?: string;
}

type BatchVisitor = (batch: RecordBatch, position: number) => void;

export class LogSegment {
  /** Size of the valid, written part of the file. Reads never look past it. */
  private size = 0;
  private next: bigint;
  private maxTimestampSoFar = -1n;
  private offsetOfMaxTimestampSoFar: bigint;
  /** What segment.ms counts from (see rollTimeBaseMs). */
  private createdAtMs: bigint;
  private bytesSinceLastIndexEntry = 0;
  private readers = 0;
  private closing: Promise<void> | undefined;
  private resolveIdle: (() => void) | undefined;

  private constructor(
    readonly dir: string,
    readonly baseOffset: bigint,
    private readonly file: SegmentFile,
    private readonly offsetIndex: OffsetIndex,
    private readonly timeIndex: TimeIndex,
    private readonly options: SegmentOptions,
  ) {
    this.next = baseOffset;
    this.offsetOfMaxTimestampSoFar = baseOffset;
    this.createdAtMs = BigInt(options.clock());
  }

  /** Creates a new, empty segment. */
  static async create(
    dir: string,
    baseOffset: bigint,
    options: SegmentOptions,
  ): Promise<LogSegment> {
    const segment = await LogSegment.openFiles(dir, baseOffset, options);
    const size = await segment.file.sizeBytes();
    if (size !== 0) {
      // Left behind by a crash between creating a segment and its first append is fine only
      // when empty; otherwise we would be about to write over data.
      await segment.close();
      throw new WeirError(
        ErrorCode.ILLEGAL_STATE,
        `new segment ${join(dir, segmentFileName(baseOffset, LOG_FILE_SUFFIX))} already holds ${size} bytes`,
      );
    }
    segment.offsetIndex.reset();
    segment.timeIndex.reset();
    return segment;
  }

  /**
   * Opens an existing segment. `recover` scans every batch, truncates a torn or corrupt tail
   * and rebuilds both indexes; otherwise the indexes are trusted when they pass a sanity check
   * and only the tail after the last index entry is read.
   */
  static async load(
    dir: string,
    baseOffset: bigint,
    options: SegmentOptions & { readonly recover: boolean; readonly onBatch?: BatchVisitor },
  ): Promise<{ segment: LogSegment; truncatedBytes: number }> {
    const indexesExisted =
      (await exists(join(dir, segmentFileName(baseOffset, INDEX_FILE_SUFFIX)))) &&
      (await exists(join(dir, segmentFileName(baseOffset, TIME_INDEX_FILE_SUFFIX))));
    const segment = await LogSegment.openFiles(dir, baseOffset, options);
    try {
      segment.size = await segment.file.sizeBytes();
      const insane =
        (indexesExisted ? undefined : 'index files missing') ??
        segment.offsetIndex.sanityCheck(segment.size) ??
        segment.timeIndex.sanityCheck();
      let truncatedBytes = 0;
      if (options.recover || insane !== undefined || !(await segment.loadTail())) {
        truncatedBytes = await segment.recover(options.onBatch);
      }
      await segment.estimateCreationTime();
      return { segment, truncatedBytes };
    } catch (error) {
      await segment.close();
      throw storageError(`loading segment ${segment.logPath}`, error);
    }
  }

  private static async openFiles(
    dir: string,
    baseOffset: bigint,
    options: SegmentOptions,
  ): Promise<LogSegment> {
    const file = await options.openFile(join(dir, segmentFileName(baseOffset, LOG_FILE_SUFFIX)));
    const offsetIndex = await OffsetIndex.open(
      join(dir, segmentFileName(baseOffset, INDEX_FILE_SUFFIX)),
      baseOffset,
    );
    const timeIndex = await TimeIndex.open(
      join(dir, segmentFileName(baseOffset, TIME_INDEX_FILE_SUFFIX)),
      baseOffset,
    );
    return new LogSegment(dir, baseOffset, file, offsetIndex, timeIndex, options);
  }

  get logPath(): string {
    return join(this.dir, segmentFileName(this.baseOffset, LOG_FILE_SUFFIX));
  }
  get sizeInBytes(): number {
    return this.size;
  }
  /** The offset after the last batch; the base offset while empty. */
  get nextOffset(): bigint {
    return this.next;
  }
  get isEmpty(): boolean {
    return this.size === 0;
  }
  /** The newest record timestamp in the segment, -1 while empty (retention.ms looks at it). */
  get maxTimestamp(): bigint {
    return this.maxTimestampSoFar;
  }
  /**
   * What retention.ms compares with: the newest record timestamp, or, when no record carries
   * one (all -1), the segment's creation time — never "infinitely old", which would delete it
   * at once. (Kafka falls back to the file's modification time.)
   */
  get retentionTimestampMs(): bigint {
    return this.maxTimestampSoFar >= 0n ? this.maxTimestampSoFar : this.createdAtMs;
  }

  /**
   * What segment.ms counts from: the broker's clock when the segment was created. Kafka counts
   * from the first batch's record timestamp instead, so a producer sending old timestamps makes
   * it roll on every append; after a restart (creation time unknown) we take the first batch's
   * timestamp, but never a time in the future.
   */
  get rollTimeBaseMs(): bigint {
    return this.createdAtMs;
  }

  /**
   * Whether `batch` must go to a new segment instead of this one, given `pendingBytes` of
   * batches the writer has already placed here in this turn but not yet written (one writev per
   * segment per turn, so the segment's size does not count them yet).
   */
  shouldRoll(
    batch: RecordBatch,
    pendingBytes: number,
    segmentBytes: number,
    segmentMs: number,
    nowMs: bigint,
  ): boolean {
    const size = this.size + pendingBytes;
    if (size === 0) return false;
    return (
      size + batch.sizeInBytes > segmentBytes ||
      nowMs - this.createdAtMs >= BigInt(segmentMs) ||
      !this.offsetIndex.canAppendOffset(batch.lastOffset) ||
      this.offsetIndex.isFull() ||
      this.timeIndex.isFull()
    );
  }

  /**
   * Appends batches (already validated, offsets assigned) with one write. If the write fails,
   * the file is cut back to its previous size so no partial batch stays behind.
   */
  async append(batches: readonly RecordBatch[]): Promise<void> {
    const sizeBefore = this.size;
    try {
      await this.file.append(batches.map((batch) => batch.buffer));
    } catch (error) {
      await this.file.truncate(sizeBefore).catch((truncateError: unknown) => {
        throw storageError(
          `appending to ${this.logPath}, and then cutting the partial write back to ${sizeBefore} bytes`,
          truncateError,
        );
      });
      throw storageError(`appending to ${this.logPath}`, error);
    }
    let position = sizeBefore;
    for (const batch of batches) {
      this.track(batch, position);
      position += batch.sizeInBytes;
    }
    this.size = position;
  }

  /** Updates the in-memory state and the indexes for a batch written at `position`. */
  private track(batch: RecordBatch, position: number): void {
    assert(
      batch.baseOffset >= this.next,
      () => `batch offset ${batch.baseOffset} below segment next offset ${this.next}`,
    );
    if (batch.maxTimestamp > this.maxTimestampSoFar) {
      this.maxTimestampSoFar = batch.maxTimestamp;
      this.offsetOfMaxTimestampSoFar = batch.lastOffset;
    }
    // A full index (possible when one turn writes many batches after the roll check) just
    // stops growing: lookups then scan a little further, and the next batch rolls.
    const indexFull = this.offsetIndex.isFull() || this.timeIndex.isFull();
    if (this.bytesSinceLastIndexEntry >= this.options.indexIntervalBytes && !indexFull) {
      this.offsetIndex.append(batch.baseOffset, position);
      this.timeIndex.maybeAppend(this.maxTimestampSoFar, this.offsetOfMaxTimestampSoFar);
      this.bytesSinceLastIndexEntry = 0;
    }
    this.bytesSinceLastIndexEntry += batch.sizeInBytes;
    this.next = batch.nextOffset;
  }

  /**
   * Whole batches starting with the one that holds `offset`, as bytes read from the file: at
   * most `maxBytes`, but always the first batch whole. Stops before a batch whose base offset
   * is `maxOffset` or beyond. Undefined when no batch here ends at or after `offset`.
   * With `buffer` (big enough), the bytes are read into it and the result is a slice of it.
   */
  async read(
    offset: bigint,
    maxBytes: number,
    maxOffset?: bigint,
    buffer?: Buffer,
  ): Promise<Buffer | undefined> {
    this.readers++;
    try {
      const size = this.size;
      // The first chunk covers the index entry's position, the way to the batch (at most about
      // one index interval) and maxBytes after it: one read is usually the whole fetch.
      const found = await this.findBatch(
        offset,
        size,
        Math.max(SEEK_CHUNK_BYTES, maxBytes + 2 * this.options.indexIntervalBytes),
        buffer,
      );
      if (found === undefined) return undefined;
      if (maxOffset !== undefined && found.baseOffset >= maxOffset) return Buffer.alloc(0);
      const length = Math.min(size - found.position, Math.max(maxBytes, found.sizeBytes));
      const at = found.position - found.chunkStart;
      let bytes: Buffer;
      if (found.chunk.length - at >= length) {
        bytes = found.chunk.subarray(at, at + length);
      } else {
        bytes = await this.readAt(found.position, length, buffer);
      }
      return wholeBatches(bytes, maxOffset);
    } catch (error) {
      throw storageError(`reading ${this.logPath}`, error);
    } finally {
      this.readers--;
      if (this.readers === 0) this.resolveIdle?.();
    }
  }

  /**
   * The first batch whose last offset is ≥ offset: its position, base offset and size, and the
   * chunk of the file (read `chunkBytes` at a time) in which its header was found.
   */
  private async findBatch(
    offset: bigint,
    size: number,
    chunkBytes: number,
    scratch?: Buffer,
  ): Promise<
    | { position: number; baseOffset: bigint; sizeBytes: number; chunk: Buffer; chunkStart: number }
    | undefined
  > {
    let position = this.offsetIndex.lookup(offset).position;
    let chunk: Buffer = Buffer.alloc(0);
    let chunkStart = position;
    while (position < size) {
      let at = position - chunkStart;
      if (chunk.length - at < SEEK_HEADER_BYTES) {
        chunk = await this.readAt(position, Math.min(chunkBytes, size - position), scratch);
        chunkStart = position;
        at = 0;
        if (chunk.length < SEEK_HEADER_BYTES) return undefined;
      }
      const sizeBytes = batchSizeAt(chunk, at)!;
      // Only corruption since the last scan can get here; without the check, a size of 0
      // would loop forever.
      if (sizeBytes < RECORD_BATCH_OVERHEAD || sizeBytes > size - position) {
        throw new WeirError(
          ErrorCode.CORRUPT_STORE,
          `batch at position ${position} of ${this.logPath} claims ${sizeBytes} bytes`,
        );
      }
      const baseOffset = chunk.readBigInt64BE(at);
      const lastOffset = baseOffset + BigInt(chunk.readInt32BE(at + 23));
      if (lastOffset >= offset) return { position, baseOffset, sizeBytes, chunk, chunkStart };
      position += sizeBytes;
    }
    return undefined;
  }

  /** Reads into `scratch` when it is big enough, else into a new buffer. */
  private async readAt(position: number, length: number, scratch?: Buffer): Promise<Buffer> {
    const target =
      scratch !== undefined && scratch.length >= length ? scratch : Buffer.allocUnsafe(length);
    const read = await this.file.read(target, length, position);
    return target.subarray(0, read);
  }

  /**
   * Removes every batch whose last offset is ≥ `offset` (a batch holding `offset` goes whole,
   * as in Kafka). Returns the number of bytes removed.
   */
  async truncateTo(offset: bigint): Promise<number> {
    const found = await this.findBatch(offset, this.size, SEEK_CHUNK_BYTES);
    if (found === undefined) return 0;
    const removed = this.size - found.position;
    await this.file.truncate(found.position);
    this.offsetIndex.truncateTo(found.baseOffset);
    this.timeIndex.truncateTo(found.baseOffset);
    this.size = found.position;
    this.resetTailState();
    if (!(await this.loadTail())) await this.recover();
    return removed;
  }

  private resetTailState(): void {
    this.next = this.baseOffset;
    this.maxTimestampSoFar = -1n;
    this.offsetOfMaxTimestampSoFar = this.baseOffset;
    this.bytesSinceLastIndexEntry = 0;
  }

  /**
   * After a restart the creation time is unknown: segment.ms counts from the first batch's
   * (max) timestamp instead, unless that lies in the future (see rollTimeBaseMs). Only at load,
   * recovered or not: a truncation keeps the creation time it knows.
   */
  private async estimateCreationTime(): Promise<void> {
    if (this.size < RECORD_BATCH_OVERHEAD) return;
    const header = await this.readAt(0, RECORD_BATCH_OVERHEAD);
    if (header.length < RECORD_BATCH_OVERHEAD) return;
    const firstBatchTimestamp = header.readBigInt64BE(MAX_TIMESTAMP_FIELD_OFFSET);
    if (firstBatchTimestamp >= 0n && firstBatchTimestamp < this.createdAtMs) {
      this.createdAtMs = firstBatchTimestamp;
    }
  }

  /**
   * Restores the in-memory state from trusted indexes plus a scan of the bytes after the last
   * index entry. False when that tail is not clean, so the caller recovers the whole segment.
   */
  private async loadTail(): Promise<boolean> {
    this.resetTailState();
    const lastIndexed = this.offsetIndex.lastEntry();
    const lastTimed = this.timeIndex.lastEntry();
    if (lastTimed !== undefined) {
      this.maxTimestampSoFar = lastTimed.timestampMs;
      this.offsetOfMaxTimestampSoFar = lastTimed.offset;
    }
    // An entry can pass the sanity check and still be stale or garbage; trust the index only
    // if its last entry points at a batch with the offset it names.
    if (lastIndexed !== undefined) {
      const header = await this.readAt(lastIndexed.position, LOG_OVERHEAD);
      if (header.length < LOG_OVERHEAD || header.readBigInt64BE(0) !== lastIndexed.offset) {
        return false;
      }
    }
    // Batches from the last indexed one on are not in the indexes beyond that entry.
    const result = await this.scan(lastIndexed?.position ?? 0, (batch) => this.trackTail(batch));
    // Likewise the time index must not name an offset the segment does not hold.
    if (lastTimed !== undefined && lastTimed.offset >= this.next) return false;
    return result.problem === undefined && result.validBytes === this.size;
  }

  private trackTail(batch: RecordBatch): void {
    if (batch.maxTimestamp > this.maxTimestampSoFar) {
      this.maxTimestampSoFar = batch.maxTimestamp;
      this.offsetOfMaxTimestampSoFar = batch.lastOffset;
    }
    this.bytesSinceLastIndexEntry += batch.sizeInBytes;
    this.next = batch.nextOffset;
  }

  /**
   * Scans every batch from the start, keeps the valid prefix, truncates the rest and rebuilds
   * the indexes. Returns the number of bytes truncated.
   */
  async recover(onBatch?: BatchVisitor): Promise<number> {
    this.offsetIndex.reset();
    this.timeIndex.reset();
    this.resetTailState();
    const result = await this.scan(0, (batch, position) => {
      this.track(batch, position);
      onBatch?.(batch, position);
    });
    const truncated = this.size - result.validBytes;
    if (truncated > 0) await this.file.truncate(result.validBytes);
    this.size = result.validBytes;
    await this.offsetIndex.flush();
    await this.timeIndex.flush();
    return truncated;
  }

  /**
   * Visits valid batches from `from` in order, stopping at the first that is torn, fails its
   * CRC or framing, or goes back in offsets. A visitor must not keep the batch: its bytes live
   * in a scratch buffer that the next chunk overwrites.
   */
  private async scan(from: number, visit: BatchVisitor): Promise<ScanResult> {
    const size = this.size;
    const scratch = Buffer.allocUnsafe(Math.min(SCAN_CHUNK_BYTES, size - from));
    let position = from;
    let expectedOffset = this.baseOffset;
    let chunk: Buffer = Buffer.alloc(0);
    let chunkStart = position;
    while (position < size) {
      let at = position - chunkStart;
      if (chunk.length - at < LOG_OVERHEAD) {
        chunk = await this.readAt(position, Math.min(SCAN_CHUNK_BYTES, size - position), scratch);
        chunkStart = position;
        at = 0;
        if (chunk.length < LOG_OVERHEAD)
          return { validBytes: position, problem: 'torn batch header' };
      }
      const batchSize = batchSizeAt(chunk, at)!;
      if (batchSize < RECORD_BATCH_OVERHEAD || batchSize > size - position) {
        return {
          validBytes: position,
          problem: `batch size ${batchSize} at position ${position} is impossible`,
        };
      }
      if (chunk.length - at < batchSize) {
        chunk = await this.readAt(
          position,
          Math.min(Math.max(SCAN_CHUNK_BYTES, batchSize), size - position),
          scratch,
        );
        chunkStart = position;
        at = 0;
      }
      let batch: RecordBatch;
      try {
        batch = RecordBatch.validated(chunk, at);
      } catch (error) {
        return { validBytes: position, problem: (error as Error).message };
      }
      if (batch.baseOffset < expectedOffset) {
        return {
          validBytes: position,
          problem: `offset ${batch.baseOffset} after ${expectedOffset - 1n}`,
        };
      }
      // The baseOffset field is outside the CRC; a flipped high bit makes an offset the
      // segment's 32-bit relative offsets cannot hold (and the index would refuse).
      if (batch.lastOffset - this.baseOffset > MAX_RELATIVE_OFFSET) {
        return {
          validBytes: position,
          problem: `offset ${batch.lastOffset} does not fit segment ${this.baseOffset}`,
        };
      }
      visit(batch, position);
      expectedOffset = batch.nextOffset;
      position += batchSize;
    }
    return { validBytes: position };
  }

  /**
   * Called when the segment stops being the active one: records the final max timestamp in
   * the time index (as Kafka does) and makes everything durable.
   */
  async onBecomeInactive(): Promise<void> {
    // A full index (the reason for some rolls) goes without the final entry: it only speeds up
    // time lookups, and loading recomputes the max timestamp from the tail anyway.
    if (!this.timeIndex.isFull()) {
      this.timeIndex.maybeAppend(this.maxTimestampSoFar, this.offsetOfMaxTimestampSoFar);
    }
    await this.flush();
  }

  /** Makes the appended batches durable (fdatasync of the .log file only). */
  syncLog(): Promise<void> {
    return this.file.sync();
  }

  async flush(): Promise<void> {
    await this.file.sync();
    await this.offsetIndex.flush();
    await this.timeIndex.flush();
  }

  /** Closes the files once in-flight reads finish. */
  close(): Promise<void> {
    this.closing ??= this.closeWhenIdle();
    return this.closing;
  }

  private async closeWhenIdle(): Promise<void> {
    if (this.readers > 0) await new Promise<void>((resolve) => (this.resolveIdle = resolve));
    await this.offsetIndex.close();
    await this.timeIndex.close();
    await this.file.close();
  }

  async delete(): Promise<void> {
    await this.close();
    await this.offsetIndex.delete();
    await this.timeIndex.delete();
    await unlink(this.logPath).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
}

/** Trims bytes read from a segment to whole batches (and to below maxOffset). */
function wholeBatches(bytes: Buffer, maxOffset: bigint | undefined): Buffer {
  let end = 0;
  while (end < bytes.length) {
    const size = batchSizeAt(bytes, end);
    if (size === undefined || size < RECORD_BATCH_OVERHEAD || size > bytes.length - end) break;
    if (maxOffset !== undefined && bytes.readBigInt64BE(end) >= maxOffset) break;
    end += size;
  }
  return bytes.subarray(0, end);
}
