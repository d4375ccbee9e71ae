// The log of one partition (Kafka's UnifiedLog): an ordered list of segments in one folder,
// plus the leader-epoch cache, the recovery point and the log start offset.
//
// Concurrency: every change goes through one SerialExecutor, so writes, rolls, truncation
// and retention never interleave. Appends queue up while a write (or fsync) is under way and
// the next turn of the writer takes all of them at once: one writev and, with flush policy
// `always`, one fsync for the whole group (group commit). Offsets are assigned inside that
// turn, never at enqueue time, so a truncation between two appends cannot leave a gap.
// Reads do not queue: they see whatever whole batches were written when they start.

import { access, mkdir, readdir, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RecordBatch, WeirError, assert, batchesIn } from '@weir/protocol';
import {
  readOffsetCheckpoint,
  syncDirectory,
  writeCheckpointFile,
  writeOffsetCheckpoint,
} from './checkpoint-file.js';
import { LEADER_EPOCH_CHECKPOINT_FILE_NAME, LeaderEpochCache } from './leader-epoch-cache.js';
import { type LogConfig, logConfig } from './log-config.js';
import {
  INDEX_FILE_SUFFIX,
  LOG_FILE_SUFFIX,
  LogSegment,
  type SegmentOptions,
  TIME_INDEX_FILE_SUFFIX,
  segmentFileName,
  storageError,
} from './segment.js';
import { type SegmentFileOpener, openSegmentFile } from './segment-file.js';
import { SerialExecutor } from './serial-executor.js';

export const RECOVERY_POINT_CHECKPOINT = 'recovery-point-checkpoint';
export const LOG_START_OFFSET_CHECKPOINT = 'log-start-offset-checkpoint';
/** Present only between a clean close and the next open: that open skips recovery. */
export const CLEAN_SHUTDOWN_FILE = '.clean-shutdown';

/** How many bytes a timestamp lookup reads per step. */
const TIMESTAMP_SCAN_BYTES = 1024 * 1024;

/** The most bytes one writer turn writes; more waits for the next turn. */
const MAX_GROUP_BYTES = 8 * 1024 * 1024;

export interface LogOptions {
  readonly config?: Partial<LogConfig>;
  /** Milliseconds since the epoch; the default is Date.now. */
  readonly clock?: () => number;
  /** Opens segment files; tests pass one that injects faults. */
  readonly openFile?: SegmentFileOpener;
}

export interface LogAppendInfo {
  readonly baseOffset: bigint;
  readonly lastOffset: bigint;
  /** The broker's append time when the topic uses LogAppendTime, else -1 (as in Kafka). */
  readonly logAppendTimeMs: bigint;
  readonly recordCount: number;
}

export interface LogReadResult {
  /** Whole record batches, as stored; empty when there is nothing at or after the offset. */
  readonly records: Buffer;
  readonly logStartOffset: bigint;
  readonly logEndOffset: bigint;
}

export interface LogOpenReport {
  /** Bytes cut from torn or corrupt segment tails. */
  readonly truncatedBytes: number;
  readonly recoveredSegments: number;
  readonly cleanShutdown: boolean;
}

interface PendingAppend {
  readonly batches: readonly RecordBatch[];
  /** For leader appends: the epoch to stamp and the offsets to assign. Undefined for followers. */
  readonly leaderEpoch: number | undefined;
  readonly resolve: (info: LogAppendInfo) => void;
  readonly reject: (error: unknown) => void;
}

export class Log {
  private readonly executor = new SerialExecutor();
  private pending: PendingAppend[] = [];
  private drainScheduled = false;
  /** The log end including batches given offsets in this writer turn but not yet written. */
  private assignedEnd: bigint | undefined;
  private startOffset: bigint;
  private recoveredTo: bigint;
  /** The recovery point the checkpoint file holds: an unchanged one is not written again. */
  private checkpointedRecoveryPoint: bigint;
  private unflushedMessages = 0;
  private lastFlushMs: number;
  /** Set by a failed write: appends are refused until the log is reopened (as Kafka does). */
  private failure: WeirError | undefined;
  /** Set when close() or delete() is called: appends from then on are refused. */
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Set once the files are closed: writer tasks queued behind close are refused. */
  private filesClosed = false;

  private constructor(
    readonly dir: string,
    private config: LogConfig,
    private readonly segments: LogSegment[],
    readonly leaderEpochCache: LeaderEpochCache,
    logStartOffset: bigint,
    recoveryPoint: bigint,
    private readonly clock: () => number,
    private readonly segmentOptions: SegmentOptions,
    readonly openReport: LogOpenReport,
  ) {
    this.startOffset = logStartOffset;
    this.recoveredTo = recoveryPoint;
    this.checkpointedRecoveryPoint = recoveryPoint;
    this.lastFlushMs = clock();
  }

  static async open(dir: string, options: LogOptions = {}): Promise<Log> {
    const config = logConfig(options.config);
    const clock = options.clock ?? Date.now;
    const segmentOptions: SegmentOptions = {
      indexIntervalBytes: config.indexIntervalBytes,
      openFile: options.openFile ?? openSegmentFile,
      clock,
    };
    try {
      await mkdir(dir, { recursive: true });
      return await Log.load(dir, config, clock, segmentOptions);
    } catch (error) {
      throw storageError(`opening log ${dir}`, error);
    }
  }

  private static async load(
    dir: string,
    config: LogConfig,
    clock: () => number,
    segmentOptions: SegmentOptions,
  ): Promise<Log> {
    const cleanShutdown = await exists(join(dir, CLEAN_SHUTDOWN_FILE));
    const checkpointedRecoveryPoint =
      (await readOffsetCheckpoint(join(dir, RECOVERY_POINT_CHECKPOINT))) ?? 0n;
    const checkpointedStart =
      (await readOffsetCheckpoint(join(dir, LOG_START_OFFSET_CHECKPOINT))) ?? 0n;
    const leaderEpochCache = await LeaderEpochCache.load(
      join(dir, LEADER_EPOCH_CHECKPOINT_FILE_NAME),
    );
    const baseOffsets = await listSegmentBaseOffsets(dir);

    const { segments, recovered, truncatedBytes } = await loadSegments(dir, baseOffsets, {
      segmentOptions,
      cleanShutdown,
      recoveryPoint: checkpointedRecoveryPoint,
      logStartOffset: checkpointedStart,
      leaderEpochCache,
    });
    const logEndOffset = segments[segments.length - 1]!.nextOffset;
    const logStartOffset = clamp(checkpointedStart, segments[0]!.baseOffset, logEndOffset);
    await leaderEpochCache.truncateFromEnd(logEndOffset);
    await leaderEpochCache.truncateFromStart(logStartOffset);
    // What recovery kept is now made durable, so the recovery point is the log end.
    for (const segment of recovered) await segment.flush();
    await writeOffsetCheckpoint(join(dir, RECOVERY_POINT_CHECKPOINT), logEndOffset);
    // The marker must be gone before the first append: a crash from here on needs recovery.
    if (cleanShutdown) {
      await unlink(join(dir, CLEAN_SHUTDOWN_FILE));
      await syncDirectory(dir);
    }
    assert(
      logStartOffset <= logEndOffset,
      () => `log start ${logStartOffset} > log end ${logEndOffset}`,
    );
    const report = { truncatedBytes, recoveredSegments: recovered.length, cleanShutdown };
    return new Log(
      dir,
      config,
      segments,
      leaderEpochCache,
      logStartOffset,
      logEndOffset,
      clock,
      segmentOptions,
      report,
    );
  }

  get logStartOffset(): bigint {
    return this.startOffset;
  }
  /** The offset the next appended record gets (LEO). */
  get logEndOffset(): bigint {
    return this.activeSegment.nextOffset;
  }
  /** Everything below this offset is known to be on disk (fsynced). */
  get recoveryPoint(): bigint {
    return this.recoveredTo;
  }
  get sizeInBytes(): number {
    return this.segments.reduce((sum, segment) => sum + segment.sizeInBytes, 0);
  }
  get segmentCount(): number {
    return this.segments.length;
  }
  get segmentBaseOffsets(): bigint[] {
    return this.segments.map((segment) => segment.baseOffset);
  }
  get latestEpoch(): number | undefined {
    return this.leaderEpochCache.latestEpoch();
  }
  get logConfig(): LogConfig {
    return this.config;
  }
  private get activeSegment(): LogSegment {
    return this.segments[this.segments.length - 1]!;
  }

  updateConfig(overrides: Partial<LogConfig>): void {
    this.config = logConfig({ ...this.config, ...overrides });
  }

  /** KIP-101/KIP-279: where `epoch` ends in this log, for a follower's divergence check. */
  endOffsetForEpoch(epoch: number): { epoch: number; endOffset: bigint } {
    return this.leaderEpochCache.endOffsetFor(epoch, this.logEndOffset);
  }

  /**
   * Appends one batch as the leader: validates it (CRC, framing, size), assigns offsets from
   * the log end and stamps `leaderEpoch`, rewriting the batch's bytes in place. Resolves once
   * written (and fsynced under flush policy `always`).
   */
  // Async so that a validation error is a rejection; nothing awaits before enqueue, so appends
  // queue in call order.
  async append(batchBytes: Buffer, options: { leaderEpoch: number }): Promise<LogAppendInfo> {
    const batch = this.validateIncoming(batchBytes);
    return this.enqueue([batch], options.leaderEpoch);
  }

  /**
   * Appends batches a follower fetched from its leader: they keep their offsets and leader
   * epochs, and must continue exactly at the log end.
   */
  async appendAsFollower(batchBytes: Buffer): Promise<LogAppendInfo> {
    const batches = [...batchesIn(batchBytes)];
    if (batches.length === 0)
      throw new WeirError(ErrorCode.CORRUPT_MESSAGE, 'no record batch to append');
    for (const batch of batches) this.validateBatch(batch);
    for (let i = 1; i < batches.length; i++) {
      const expected = batches[i - 1]!.nextOffset;
      if (batches[i]!.baseOffset !== expected) {
        throw new WeirError(
          ErrorCode.CORRUPT_MESSAGE,
          `follower batches are not contiguous: offset ${batches[i]!.baseOffset} follows ${expected - 1n}`,
        );
      }
    }
    return this.enqueue(batches, undefined);
  }

  private validateIncoming(batchBytes: Buffer): RecordBatch {
    const batch = RecordBatch.view(batchBytes);
    if (batch.sizeInBytes !== batchBytes.length) {
      throw new WeirError(
        ErrorCode.CORRUPT_MESSAGE,
        `expected one record batch of ${batchBytes.length} bytes, the batch header says ${batch.sizeInBytes}`,
      );
    }
    this.validateBatch(batch);
    return batch;
  }

  private validateBatch(batch: RecordBatch): void {
    if (batch.sizeInBytes > this.config.maxMessageBytes) {
      throw new WeirError(
        ErrorCode.MESSAGE_TOO_LARGE,
        `record batch of ${batch.sizeInBytes} bytes exceeds max.message.bytes ${this.config.maxMessageBytes}`,
      );
    }
    if (batch.sizeInBytes > this.config.segmentBytes) {
      throw new WeirError(
        ErrorCode.RECORD_LIST_TOO_LARGE,
        `record batch of ${batch.sizeInBytes} bytes exceeds segment.bytes ${this.config.segmentBytes}`,
      );
    }
    batch.validate();
  }

  private enqueue(
    batches: readonly RecordBatch[],
    leaderEpoch: number | undefined,
  ): Promise<LogAppendInfo> {
    if (this.closed) return Promise.reject(this.closedError());
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<LogAppendInfo>((resolve, reject) => {
      this.pending.push({ batches, leaderEpoch, resolve, reject });
      this.scheduleDrain();
    });
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    void this.executor.run(() => this.drain());
  }

  /** A writer turn of the executor: takes the queued appends that fit one group. */
  private async drain(): Promise<void> {
    this.drainScheduled = false;
    const group = this.takeGroup();
    if (this.pending.length > 0) this.scheduleDrain();
    if (group.length > 0) await this.writeGroup(group);
  }

  /** Assigns offsets to a group of appends, writes them, fsyncs once if the policy says so. */
  private async writeGroup(group: readonly PendingAppend[]): Promise<void> {
    // Appends queued before the failure was seen are refused like those after it.
    if (this.failure !== undefined) {
      for (const append of group) append.reject(this.failure);
      return;
    }
    const endBefore = this.logEndOffset;
    const accepted: { append: PendingAppend; info: LogAppendInfo }[] = [];
    try {
      const batches: RecordBatch[] = [];
      for (const append of group) {
        const info = this.assignOffsets(append);
        if (info instanceof WeirError) {
          append.reject(info);
          continue;
        }
        accepted.push({ append, info });
        batches.push(...append.batches);
      }
      await this.writeBatches(batches);
      await this.afterWrite(batches);
    } catch (error) {
      const failure = storageError(`appending to log ${this.dir}`, error);
      this.failure = failure;
      // The whole turn is undone, so no batch of a refused append is read or survives a reopen.
      // The segment already cut a failed write back; this also removes what the turn wrote
      // before it (into the segment before a roll), or all of it when the fsync failed. If the
      // cut itself fails, the log stays failed and the next open recovers whole batches only.
      if (this.logEndOffset > endBefore) {
        await this.truncateSegmentsTo(endBefore).catch(() => undefined);
      }
      for (const { append } of accepted) append.reject(failure);
      return;
    }
    for (const { append, info } of accepted) append.resolve(info);
  }

  private takeGroup(): PendingAppend[] {
    let bytes = 0;
    let count = 0;
    for (const append of this.pending) {
      const size = append.batches.reduce((sum, batch) => sum + batch.sizeInBytes, 0);
      if (count > 0 && bytes + size > MAX_GROUP_BYTES) break;
      bytes += size;
      count++;
    }
    return this.pending.splice(0, count);
  }

  /** Leader appends get offsets from the log end; follower appends must start there. */
  private assignOffsets(append: PendingAppend): LogAppendInfo | WeirError {
    const first = append.batches[0]!;
    const last = append.batches[append.batches.length - 1]!;
    const next = this.logEndOffsetIncludingAssigned();
    if (append.leaderEpoch !== undefined) {
      first.setBaseOffset(next);
      first.setPartitionLeaderEpoch(append.leaderEpoch);
    } else if (first.baseOffset !== next) {
      return new WeirError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `follower append starts at offset ${first.baseOffset} but the log ends at ${next}`,
      );
    }
    this.assignedEnd = last.nextOffset;
    const recordCount = append.batches.reduce((sum, batch) => sum + batch.recordCount, 0);
    return {
      baseOffset: first.baseOffset,
      lastOffset: last.lastOffset,
      logAppendTimeMs: -1n,
      recordCount,
    };
  }

  private logEndOffsetIncludingAssigned(): bigint {
    return this.assignedEnd ?? this.logEndOffset;
  }

  /** Writes batches to the active segment, rolling to new segments where needed. */
  private async writeBatches(batches: readonly RecordBatch[]): Promise<void> {
    try {
      let run: RecordBatch[] = [];
      let runBytes = 0;
      for (const batch of batches) {
        const nowMs = BigInt(this.clock());
        const { segmentBytes, segmentMs } = this.config;
        if (this.activeSegment.shouldRoll(batch, runBytes, segmentBytes, segmentMs, nowMs)) {
          if (run.length > 0) await this.activeSegment.append(run);
          run = [];
          runBytes = 0;
          await this.rollTo(batch.baseOffset);
        }
        run.push(batch);
        runBytes += batch.sizeInBytes;
      }
      if (run.length > 0) await this.activeSegment.append(run);
    } finally {
      this.assignedEnd = undefined;
    }
  }

  /** Records new leader epochs and applies the flush policy. */
  private async afterWrite(batches: readonly RecordBatch[]): Promise<void> {
    for (const batch of batches) {
      const epoch = batch.partitionLeaderEpoch;
      const latest = this.leaderEpochCache.latestEpoch();
      if (epoch >= 0 && (latest === undefined || epoch > latest)) {
        await this.leaderEpochCache.assign(epoch, batch.baseOffset);
      }
      this.unflushedMessages += batch.recordCount;
    }
    if (this.flushDue()) await this.flushActive();
  }

  private flushDue(): boolean {
    switch (this.config.flushPolicy) {
      case 'always':
        return true;
      case 'never':
        return false;
      case 'interval':
        return (
          this.unflushedMessages >= this.config.flushIntervalMessages ||
          this.clock() - this.lastFlushMs >= this.config.flushIntervalMs
        );
    }
  }

  /** fsyncs the log data past the recovery point. Segments before the active one were flushed when they rolled. */
  private async flushActive(): Promise<void> {
    const end = this.logEndOffset;
    await this.activeSegment.syncLog();
    this.recoveredTo = end;
    this.unflushedMessages = 0;
    this.lastFlushMs = this.clock();
  }

  /** For flush policy `interval`: flushes when the interval has passed. Called on a timer. */
  flushIfDue(): Promise<void> {
    return this.executor.run(async () => {
      if (
        !this.filesClosed &&
        this.config.flushPolicy === 'interval' &&
        this.recoveredTo < this.logEndOffset &&
        this.flushDue()
      ) {
        await this.flushActive();
      }
    });
  }

  /** fsyncs everything written so far, indexes included. */
  flush(): Promise<void> {
    return this.whileOpen(() => this.flushAll());
  }

  private async flushAll(): Promise<void> {
    for (const segment of this.segments) {
      if (segment.nextOffset > this.recoveredTo || segment === this.activeSegment) {
        await segment.flush();
      }
    }
    this.recoveredTo = this.logEndOffset;
    this.unflushedMessages = 0;
    this.lastFlushMs = this.clock();
  }

  /** Starts a new segment at the log end (no-op if the active segment is empty). */
  roll(): Promise<void> {
    return this.whileOpen(async () => {
      if (!this.activeSegment.isEmpty) await this.rollTo(this.logEndOffset);
    });
  }

  private async rollTo(baseOffset: bigint): Promise<void> {
    await this.activeSegment.onBecomeInactive();
    this.recoveredTo = this.activeSegment.nextOffset;
    this.segments.push(await LogSegment.create(this.dir, baseOffset, this.segmentOptions));
    await syncDirectory(this.dir);
  }

  /**
   * Whole batches from the one holding `offset`, up to `maxBytes` (but at least one batch) and
   * below `maxOffset` (a consumer's high watermark). OFFSET_OUT_OF_RANGE outside
   * [logStartOffset, logEndOffset].
   *
   * `buffer` lets a caller that reads in a loop reuse memory: when it holds `maxBytes` plus two
   * index intervals, the records are read into it and returned as a slice of it, valid until
   * the caller reuses it. Fresh memory for every read costs page faults: see docs/benchmarks.md.
   */
  async read(
    offset: bigint,
    maxBytes: number,
    options: { maxOffset?: bigint; buffer?: Buffer } = {},
  ): Promise<LogReadResult> {
    if (this.filesClosed) throw this.closedError();
    const logEndOffset = this.logEndOffset;
    const logStartOffset = this.startOffset;
    if (offset < logStartOffset || offset > logEndOffset) {
      throw new WeirError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `offset ${offset} is outside the log's range [${logStartOffset}, ${logEndOffset}] in ${this.dir}`,
      );
    }
    const empty = { records: Buffer.alloc(0), logStartOffset, logEndOffset };
    if (offset === logEndOffset || (options.maxOffset !== undefined && offset >= options.maxOffset))
      return empty;
    let segment: LogSegment | undefined = this.floorSegment(offset);
    while (segment !== undefined) {
      const records = await segment.read(offset, maxBytes, options.maxOffset, options.buffer);
      if (records !== undefined) return { records, logStartOffset, logEndOffset };
      segment = this.segmentAfter(segment.baseOffset);
    }
    return empty;
  }

  /**
   * ListOffsets by timestamp (Kafka's fetchOffsetByTimestamp): the first record whose timestamp
   * is at or after `timestampMs`, or undefined when no record is that new. Segments whose newest
   * record is known to be older are skipped; in the first candidate, batches are read in order
   * and the matching batch's records decoded (a LogAppendTime batch answers with its first
   * offset, all its records sharing the batch's time).
   */
  async offsetForTimestamp(
    timestampMs: bigint,
  ): Promise<{ offset: bigint; timestamp: bigint } | undefined> {
    for (let i = 0; i < this.segments.length; i++) {
      const segment = this.segments[i]!;
      const known = segment.maxTimestamp;
      if (known >= 0n && known < timestampMs) continue;
      const end = this.segments[i + 1]?.baseOffset ?? this.logEndOffset;
      let offset = segment.baseOffset > this.startOffset ? segment.baseOffset : this.startOffset;
      while (offset < end) {
        const { records } = await this.read(offset, TIMESTAMP_SCAN_BYTES, { maxOffset: end });
        if (records.length === 0) break;
        for (const batch of batchesIn(records)) {
          const found =
            batch.maxTimestamp >= timestampMs
              ? firstAtOrAfter(batch, timestampMs, offset)
              : undefined;
          if (found !== undefined) return found;
          offset = batch.nextOffset;
        }
      }
    }
    return undefined;
  }

  private floorSegment(offset: bigint): LogSegment | undefined {
    let low = 0;
    let high = this.segments.length - 1;
    let found: LogSegment | undefined;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const segment = this.segments[middle]!;
      if (segment.baseOffset <= offset) {
        found = segment;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found ?? this.segments[0];
  }

  private segmentAfter(baseOffset: bigint): LogSegment | undefined {
    return this.segments.find((segment) => segment.baseOffset > baseOffset);
  }

  /**
   * Follower truncation: removes every batch whose last offset is ≥ `offset` (a batch holding
   * `offset` goes whole). Below the log start it empties the log and starts at `offset`.
   */
  truncateTo(offset: bigint): Promise<void> {
    return this.whileOpen(async () => {
      if (offset >= this.logEndOffset) return;
      if (offset < this.startOffset) {
        await this.resetTo(offset);
        return;
      }
      await this.truncateSegmentsTo(offset);
      // DeleteRecords may have put the log start inside the batch holding `offset`; that batch
      // went whole, so nothing readable is left and the log end fell below the log start. Start
      // again, empty, at `offset`, as for an offset below the log start (Kafka ends in the same
      // state: log start = log end = offset, no batches).
      if (this.logEndOffset < this.startOffset) await this.resetTo(offset);
    });
  }

  /**
   * Removes the batches whose last offset is ≥ `offset`, whole segments where they start there.
   * The epoch cache and recovery point follow before anything is fsynced, so a failing disk
   * (this also undoes failed writer turns) cannot leave them ahead of the log.
   */
  private async truncateSegmentsTo(offset: bigint): Promise<void> {
    let deletedSegments = 0;
    while (this.segments.length > 1 && this.activeSegment.baseOffset >= offset) {
      await this.segments.pop()!.delete();
      deletedSegments++;
    }
    await this.activeSegment.truncateTo(offset);
    await this.leaderEpochCache.truncateFromEnd(this.logEndOffset);
    if (this.recoveredTo > this.logEndOffset) this.recoveredTo = this.logEndOffset;
    await this.activeSegment.flush();
    // A deleted segment that came back after a power loss would bring back the cut history.
    if (deletedSegments > 0) await syncDirectory(this.dir);
  }

  /** Deletes everything and starts the log again, empty, at `offset` (a follower far behind). */
  truncateFullyAndStartAt(offset: bigint): Promise<void> {
    return this.whileOpen(() => this.resetTo(offset));
  }

  /**
   * Creates the new segment, swaps it in and deletes the old ones, so reads never meet a
   * closed segment. An old segment with `offset` as its base offset holds the file names the
   * new one needs: it goes first (Kafka's createAndDeleteSegment does the same). If a step
   * fails, the log refuses appends until it is reopened, and the next open starts from
   * whatever files are left.
   */
  private async resetTo(offset: bigint): Promise<void> {
    try {
      const clash = this.segments.find((segment) => segment.baseOffset === offset);
      await clash?.delete();
      const fresh = await LogSegment.create(this.dir, offset, this.segmentOptions);
      const old = this.segments.splice(0, this.segments.length, fresh);
      for (const segment of old) if (segment !== clash) await segment.delete();
      await syncDirectory(this.dir);
    } catch (error) {
      this.failure = storageError(`truncating log ${this.dir} fully to offset ${offset}`, error);
      throw this.failure;
    }
    await this.leaderEpochCache.clear();
    this.startOffset = offset;
    this.recoveredTo = offset;
    await writeOffsetCheckpoint(join(this.dir, LOG_START_OFFSET_CHECKPOINT), offset);
  }

  /**
   * Moves the log start to `offset` (Kafka's DeleteRecords) and deletes the segments that lie
   * wholly before it. Offsets below the new start are no longer readable.
   */
  deleteRecordsBefore(offset: bigint): Promise<void> {
    return this.whileOpen(async () => {
      if (offset > this.logEndOffset) {
        throw new WeirError(
          ErrorCode.OFFSET_OUT_OF_RANGE,
          `cannot delete records before ${offset}: the log ends at ${this.logEndOffset}`,
        );
      }
      if (offset <= this.startOffset) return;
      await this.advanceLogStartOffset(offset);
      await this.deleteSegmentsWhile((segment) => segment.nextOffset <= this.startOffset);
    });
  }

  /**
   * Applies retention.ms, retention.bytes and the log start offset, deleting whole segments
   * from the oldest on, never the active one. Returns the number of segments deleted.
   */
  deleteOldSegments(): Promise<number> {
    return this.whileOpen(async () => {
      const nowMs = BigInt(this.clock());
      const retentionMs = this.config.retentionMs;
      let deleted = 0;
      if (retentionMs >= 0) {
        deleted += await this.deleteSegmentsWhile(
          (segment) => nowMs - segment.retentionTimestampMs > BigInt(retentionMs),
        );
      }
      const retentionBytes = this.config.retentionBytes;
      if (retentionBytes >= 0) {
        let size = this.sizeInBytes;
        deleted += await this.deleteSegmentsWhile((segment) => {
          if (size - segment.sizeInBytes < retentionBytes) return false;
          size -= segment.sizeInBytes;
          return true;
        });
      }
      deleted += await this.deleteSegmentsWhile(
        (segment) => segment.nextOffset <= this.startOffset,
      );
      return deleted;
    });
  }

  /** Deletes segments from the oldest while `shouldDelete` holds, never the active one. */
  private async deleteSegmentsWhile(
    shouldDelete: (segment: LogSegment) => boolean,
  ): Promise<number> {
    let count = 0;
    while (this.segments.length > 1 && shouldDelete(this.segments[0]!)) {
      const segment = this.segments[0]!;
      await this.advanceLogStartOffset(this.segments[1]!.baseOffset);
      this.segments.shift();
      await segment.delete();
      count++;
    }
    return count;
  }

  private async advanceLogStartOffset(offset: bigint): Promise<void> {
    if (offset <= this.startOffset) return;
    await writeOffsetCheckpoint(join(this.dir, LOG_START_OFFSET_CHECKPOINT), offset);
    this.startOffset = offset;
    await this.leaderEpochCache.truncateFromStart(offset);
  }

  /**
   * Flushes everything, writes the checkpoints and the clean-shutdown marker, and closes the
   * files, so the next open skips recovery. Appends after close are refused.
   */
  close(): Promise<void> {
    this.closed = true;
    this.closing ??= this.executor.run(async () => {
      if (this.filesClosed) return; // deleted
      // Appends accepted before close are written first: a turn takes at most MAX_GROUP_BYTES,
      // so some may still be queued behind this task.
      while (this.pending.length > 0) await this.writeGroup(this.takeGroup());
      if (this.failure === undefined) {
        await this.flushAll();
        await writeOffsetCheckpoint(join(this.dir, RECOVERY_POINT_CHECKPOINT), this.recoveredTo);
        await writeOffsetCheckpoint(join(this.dir, LOG_START_OFFSET_CHECKPOINT), this.startOffset);
        await writeCheckpointFile(join(this.dir, CLEAN_SHUTDOWN_FILE), '');
      }
      await this.closeFiles();
    });
    return this.closing;
  }

  private async closeFiles(): Promise<void> {
    this.filesClosed = true;
    for (const segment of this.segments) await segment.close();
  }

  /** Closes the log and removes its folder; queued appends are refused. */
  async delete(): Promise<void> {
    this.closed = true;
    await this.executor.run(async () => {
      const deleted = new WeirError(ErrorCode.KAFKA_STORAGE_ERROR, `log ${this.dir} was deleted`);
      for (const append of this.pending.splice(0)) append.reject(deleted);
      if (!this.filesClosed) await this.closeFiles();
    });
    await rm(this.dir, { recursive: true, force: true });
  }

  /**
   * The checkpointed recovery point, written periodically by the LogManager so that recovery
   * after a crash scans only recent segments.
   */
  checkpointRecoveryPoint(): Promise<void> {
    return this.executor.run(async () => {
      // A closed log checkpointed itself; a deleted one has no folder to write to. An idle log's
      // is unchanged: thousands of partitions must not cost three fsyncs each per interval.
      if (this.filesClosed || this.recoveredTo === this.checkpointedRecoveryPoint) return;
      const recoveryPoint = this.recoveredTo;
      await writeOffsetCheckpoint(join(this.dir, RECOVERY_POINT_CHECKPOINT), recoveryPoint);
      this.checkpointedRecoveryPoint = recoveryPoint;
    });
  }

  /** Runs a change on the writer, unless close or delete closed the files before its turn. */
  private whileOpen<T>(task: () => Promise<T>): Promise<T> {
    return this.executor.run(() =>
      this.filesClosed ? Promise.reject(this.closedError()) : task(),
    );
  }

  private closedError(): WeirError {
    return new WeirError(ErrorCode.KAFKA_STORAGE_ERROR, `log ${this.dir} is closed`);
  }
}

/**
 * Opens the segments in order. After a crash, the segment holding the recovery point and every
 * one after it are scanned and their tails repaired, and the epoch cache learns the epochs of
 * the scanned batches. Segments after a repaired one are deleted: they would follow a hole.
 */
async function loadSegments(
  dir: string,
  baseOffsets: readonly bigint[],
  context: {
    segmentOptions: SegmentOptions;
    cleanShutdown: boolean;
    recoveryPoint: bigint;
    logStartOffset: bigint;
    leaderEpochCache: LeaderEpochCache;
  },
): Promise<{ segments: LogSegment[]; recovered: LogSegment[]; truncatedBytes: number }> {
  const segments: LogSegment[] = [];
  const recovered: LogSegment[] = [];
  let truncatedBytes = 0;
  try {
    for (let i = 0; i < baseOffsets.length; i++) {
      const baseOffset = baseOffsets[i]!;
      const nextBase = baseOffsets[i + 1];
      const recover =
        !context.cleanShutdown && (nextBase === undefined || nextBase > context.recoveryPoint);
      const epochs: { epoch: number; offset: bigint }[] = [];
      const loaded = await LogSegment.load(dir, baseOffset, {
        ...context.segmentOptions,
        recover,
        onBatch: (batch) =>
          epochs.push({ epoch: batch.partitionLeaderEpoch, offset: batch.baseOffset }),
      });
      segments.push(loaded.segment);
      if (recover) recovered.push(loaded.segment);
      for (const { epoch, offset } of epochs) {
        const latest = context.leaderEpochCache.latestEpoch();
        if (epoch >= 0 && (latest === undefined || epoch > latest)) {
          await context.leaderEpochCache.assign(epoch, offset);
        }
      }
      truncatedBytes += loaded.truncatedBytes;
      if (loaded.truncatedBytes > 0 || (loaded.segment.isEmpty && nextBase !== undefined)) {
        truncatedBytes += await deleteSegmentFiles(dir, baseOffsets.slice(i + 1));
        break;
      }
    }
    if (segments.length === 0) {
      segments.push(await LogSegment.create(dir, context.logStartOffset, context.segmentOptions));
    }
  } catch (error) {
    for (const segment of segments) await segment.close();
    throw error;
  }
  return { segments, recovered, truncatedBytes };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function clamp(value: bigint, min: bigint, max: bigint): bigint {
  return value < min ? min : value > max ? max : value;
}

async function listSegmentBaseOffsets(dir: string): Promise<bigint[]> {
  const names = await readdir(dir);
  for (const name of names) {
    // A crash during an atomic write leaves a .tmp behind; it was never made visible.
    if (name.endsWith('.tmp')) await unlink(join(dir, name));
  }
  return names
    .filter((name) => /^\d{20}\.log$/.test(name))
    .map((name) => BigInt(name.slice(0, 20)))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Deletes the files of segments that followed a corrupt point, without opening them (opening
 * could recover, and so change, what is about to go). Returns the bytes their logs held.
 */
async function deleteSegmentFiles(dir: string, baseOffsets: readonly bigint[]): Promise<number> {
  let bytes = 0;
  for (const baseOffset of baseOffsets) {
    bytes += (await stat(join(dir, segmentFileName(baseOffset, LOG_FILE_SUFFIX)))).size;
    for (const suffix of [LOG_FILE_SUFFIX, INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX]) {
      await rm(join(dir, segmentFileName(baseOffset, suffix)), { force: true });
    }
  }
  if (baseOffsets.length > 0) await syncDirectory(dir);
  return bytes;
}

/** The first record of `batch` at or after `timestampMs` and at or after `fromOffset`. */
function firstAtOrAfter(
  batch: RecordBatch,
  timestampMs: bigint,
  fromOffset: bigint,
): { offset: bigint; timestamp: bigint } | undefined {
  if (batch.timestampType === 'LogAppendTime') {
    const offset = batch.baseOffset > fromOffset ? batch.baseOffset : fromOffset;
    return { offset, timestamp: batch.maxTimestamp };
  }
  for (const record of batch.records()) {
    if (record.offset >= fromOffset && record.timestamp >= timestampMs) {
      return { offset: record.offset, timestamp: record.timestamp };
    }
  }
  return undefined;
}
