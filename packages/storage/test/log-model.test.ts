// Model-based property test of the partition log: random sequences of leader and follower
// appends (single and concurrent, so writer turns group them), reads, truncations, rolls,
// retention, DeleteRecords, clean reopens and crash reopens, each checked against an in-memory
// model that knows every batch, every segment boundary, the log start offset and the
// leader-epoch cache (Kafka's semantics for OffsetsForLeaderEpoch).
//
// A crash here drops the Log instance without closing it, the way SIGKILL would: whatever the
// process had written is in the page cache, nothing more (no checkpoint, no clean-shutdown
// marker). The next instance must recover to exactly the model.

import { readdir } from 'node:fs/promises';
import {
  type CompressionType,
  ErrorCode,
  type RecordBatch,
  RecordBatchBuilder,
  isWeirError,
} from '@weir/protocol';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type FlushPolicy } from '../src/log-config.js';
import { Log, type LogOptions } from '../src/log.js';
import {
  ManualClock,
  batchesOf,
  offsetsOf,
  propertyRuns,
  propertyTimeoutMs,
  removeDir,
  tempDir,
  valuesBatch,
  withTempDir,
} from './helpers.js';

// ---------------------------------------------------------------------------------------------
// The model

interface ModelRecord {
  readonly key: string | null;
  readonly value: string;
  readonly timestamp: bigint;
}

interface ModelBatch {
  readonly baseOffset: bigint;
  readonly lastOffset: bigint;
  readonly epoch: number;
  readonly sizeBytes: number;
  readonly maxTimestamp: bigint;
  readonly records: readonly ModelRecord[];
}

interface ModelSegment {
  readonly baseOffset: bigint;
  /** What segment.ms counts from: the clock at creation, or the first batch's time after a reopen. */
  createdAtMs: bigint;
  batches: ModelBatch[];
}

interface EpochEntry {
  readonly epoch: number;
  readonly startOffset: bigint;
}

interface RetentionConfig {
  readonly segmentBytes: number;
  readonly segmentMs: number;
}

function segmentEnd(segment: ModelSegment): bigint {
  const last = segment.batches.at(-1);
  return last === undefined ? segment.baseOffset : last.lastOffset + 1n;
}

function segmentSize(segment: ModelSegment): number {
  return segment.batches.reduce((sum, batch) => sum + batch.sizeBytes, 0);
}

function segmentMaxTimestamp(segment: ModelSegment): bigint {
  return segment.batches.reduce((max, b) => (b.maxTimestamp > max ? b.maxTimestamp : max), -1n);
}

class LogModel {
  segments: ModelSegment[];
  logStartOffset = 0n;
  /** The leader-epoch cache: epoch → first offset, both strictly increasing. */
  epochs: EpochEntry[] = [];
  /** The recovery point on disk: every open writes the log end there. */
  private checkpointedRecoveryPoint = 0n;

  constructor(
    private readonly config: RetentionConfig,
    nowMs: bigint,
  ) {
    this.segments = [{ baseOffset: 0n, createdAtMs: nowMs, batches: [] }];
  }

  get active(): ModelSegment {
    return this.segments.at(-1)!;
  }
  get logEndOffset(): bigint {
    return segmentEnd(this.active);
  }
  get sizeInBytes(): number {
    return this.segments.reduce((sum, segment) => sum + segmentSize(segment), 0);
  }
  get latestEpoch(): number | undefined {
    return this.epochs.at(-1)?.epoch;
  }

  /** A batch the log accepted: rolls as the log must, then records its leader epoch. */
  append(batch: ModelBatch, nowMs: bigint): void {
    const active = this.active;
    if (
      active.batches.length > 0 &&
      (segmentSize(active) + batch.sizeBytes > this.config.segmentBytes ||
        nowMs - active.createdAtMs >= BigInt(this.config.segmentMs))
    ) {
      this.segments.push({ baseOffset: batch.baseOffset, createdAtMs: nowMs, batches: [] });
    }
    this.active.batches.push(batch);
    const latest = this.latestEpoch;
    if (batch.epoch >= 0 && (latest === undefined || batch.epoch > latest)) {
      this.assignEpoch(batch.epoch, batch.baseOffset);
    }
  }

  roll(nowMs: bigint): void {
    if (this.active.batches.length > 0) {
      this.segments.push({ baseOffset: this.logEndOffset, createdAtMs: nowMs, batches: [] });
    }
  }

  /** Follower truncation: batches ending at or after `offset` go whole. */
  truncateTo(offset: bigint, nowMs: bigint): void {
    if (offset >= this.logEndOffset) return;
    if (offset < this.logStartOffset) {
      this.reset(offset, nowMs);
      return;
    }
    while (this.segments.length > 1 && this.active.baseOffset >= offset) this.segments.pop();
    this.active.batches = this.active.batches.filter((batch) => batch.lastOffset < offset);
    this.epochs = this.epochs.filter((entry) => entry.startOffset < this.logEndOffset);
    // The batch holding `offset` began below the log start: nothing readable is left.
    if (this.logEndOffset < this.logStartOffset) this.reset(offset, nowMs);
  }

  reset(offset: bigint, nowMs: bigint): void {
    this.segments = [{ baseOffset: offset, createdAtMs: nowMs, batches: [] }];
    this.logStartOffset = offset;
    this.epochs = [];
  }

  deleteRecordsBefore(offset: bigint): void {
    if (offset <= this.logStartOffset) return;
    this.advanceLogStartOffset(offset);
    this.deleteSegmentsWhile((segment) => segmentEnd(segment) <= this.logStartOffset);
  }

  deleteOldSegments(nowMs: bigint, retentionMs: number, retentionBytes: number): number {
    let deleted = 0;
    if (retentionMs >= 0) {
      deleted += this.deleteSegmentsWhile(
        (segment) => nowMs - segmentMaxTimestamp(segment) > BigInt(retentionMs),
      );
    }
    if (retentionBytes >= 0) {
      let size = this.sizeInBytes;
      deleted += this.deleteSegmentsWhile((segment) => {
        if (size - segmentSize(segment) < retentionBytes) return false;
        size -= segmentSize(segment);
        return true;
      });
    }
    deleted += this.deleteSegmentsWhile((segment) => segmentEnd(segment) <= this.logStartOffset);
    return deleted;
  }

  private deleteSegmentsWhile(shouldDelete: (segment: ModelSegment) => boolean): number {
    let count = 0;
    while (this.segments.length > 1 && shouldDelete(this.segments[0]!)) {
      this.advanceLogStartOffset(this.segments[1]!.baseOffset);
      this.segments.shift();
      count++;
    }
    return count;
  }

  private advanceLogStartOffset(offset: bigint): void {
    if (offset <= this.logStartOffset) return;
    this.logStartOffset = offset;
    // Kafka's truncateFromStart: the epoch covering the new start now starts there.
    const covering = this.epochs.findLast((entry) => entry.startOffset <= offset);
    if (covering === undefined) return;
    this.epochs = [
      { epoch: covering.epoch, startOffset: offset },
      ...this.epochs.filter((entry) => entry.startOffset > offset),
    ];
  }

  private assignEpoch(epoch: number, startOffset: bigint): void {
    this.epochs = this.epochs.filter(
      (entry) => entry.epoch < epoch && entry.startOffset < startOffset,
    );
    this.epochs.push({ epoch, startOffset });
  }

  /**
   * What a reopened log believes: segment age from the first batch; the checkpointed epoch
   * cache, after a crash extended from the batches of the segments recovery scans (those from
   * the one holding the checkpointed recovery point on), then trimmed to the log's range.
   */
  reopen(nowMs: bigint, crashed: boolean): void {
    if (crashed) {
      this.segments.forEach((segment, i) => {
        const next = this.segments[i + 1];
        if (next !== undefined && next.baseOffset <= this.checkpointedRecoveryPoint) return;
        for (const batch of segment.batches) {
          const latest = this.latestEpoch;
          if (batch.epoch >= 0 && (latest === undefined || batch.epoch > latest)) {
            this.assignEpoch(batch.epoch, batch.baseOffset);
          }
        }
      });
    }
    for (const segment of this.segments) {
      const first = segment.batches[0];
      segment.createdAtMs =
        first !== undefined && first.maxTimestamp >= 0n && first.maxTimestamp < nowMs
          ? first.maxTimestamp
          : nowMs;
    }
    // Log.load trims the checkpointed cache as Kafka's loader does: truncateFromEnd(LEO), which
    // also drops an entry DeleteRecords moved to exactly the log end, then truncateFromStart.
    this.epochs = this.epochs.filter((entry) => entry.startOffset < this.logEndOffset);
    this.advanceLogStartOffsetInCache(this.logStartOffset);
    this.checkpointedRecoveryPoint = this.logEndOffset;
  }

  private advanceLogStartOffsetInCache(offset: bigint): void {
    const covering = this.epochs.findLast((entry) => entry.startOffset <= offset);
    if (covering === undefined) return;
    this.epochs = [
      { epoch: covering.epoch, startOffset: offset },
      ...this.epochs.filter((entry) => entry.startOffset > offset),
    ];
  }

  /** Kafka's LeaderEpochFileCache.endOffsetFor. */
  endOffsetFor(requested: number): { epoch: number; endOffset: bigint } {
    const undefinedAnswer = { epoch: -1, endOffset: -1n };
    const latest = this.epochs.at(-1);
    if (requested === -1 || latest === undefined) return undefinedAnswer;
    if (requested === latest.epoch) return { epoch: requested, endOffset: this.logEndOffset };
    const higherIndex = this.epochs.findIndex((entry) => entry.epoch > requested);
    if (higherIndex < 0) return undefinedAnswer;
    const floor = this.epochs[higherIndex - 1];
    return { epoch: floor?.epoch ?? requested, endOffset: this.epochs[higherIndex]!.startOffset };
  }

  /** The batches a read must return: from the one holding `offset`, within one segment. */
  expectedRead(offset: bigint, maxBytes: number): ModelBatch[] {
    let index = this.segments.findLastIndex((segment) => segment.baseOffset <= offset);
    for (index = Math.max(index, 0); index < this.segments.length; index++) {
      const batches = this.segments[index]!.batches;
      const first = batches.findIndex((batch) => batch.lastOffset >= offset);
      if (first < 0) continue;
      const result = [batches[first]!];
      let bytes = batches[first]!.sizeBytes;
      for (const batch of batches.slice(first + 1)) {
        if (bytes + batch.sizeBytes > maxBytes) break;
        result.push(batch);
        bytes += batch.sizeBytes;
      }
      return result;
    }
    return [];
  }

  allBatches(): ModelBatch[] {
    return this.segments.flatMap((segment) => segment.batches);
  }
}

// ---------------------------------------------------------------------------------------------
// Operations

interface RecordSpec {
  readonly valueBytes: number;
  readonly key: string | null;
  readonly ageMs: number;
}

type Op =
  | { kind: 'append'; records: RecordSpec[]; epochBump: number; gzip: boolean }
  | { kind: 'appendConcurrently'; batches: RecordSpec[][]; epochBump: number }
  | { kind: 'appendAsFollower'; batches: RecordSpec[][]; epochBump: number; gap: boolean }
  | { kind: 'read'; at: number; maxBytes: number }
  | { kind: 'truncateTo'; at: number }
  | { kind: 'truncateFullyAndStartAt'; at: number }
  | { kind: 'roll' }
  | { kind: 'deleteRecordsBefore'; at: number }
  | { kind: 'retention'; retentionMs: number; retentionBytes: number }
  | { kind: 'tick'; ms: number }
  | { kind: 'reopen'; crash: boolean };

const recordSpec = fc.record({
  valueBytes: fc.nat(90),
  key: fc.option(fc.string({ maxLength: 6 }), { freq: 3 }),
  ageMs: fc.nat(4_000),
});
const recordSpecs = fc.array(recordSpec, { minLength: 1, maxLength: 4 });
/** A position within (or just outside) the current offset range, resolved when the op runs. */
const position = fc.integer({ min: 0, max: 1000 });

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      records: recordSpecs,
      epochBump: fc.constantFrom(0, 0, 0, 1, 2),
      gzip: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('appendConcurrently' as const),
      batches: fc.array(recordSpecs, { minLength: 2, maxLength: 6 }),
      epochBump: fc.constantFrom(0, 0, 1),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('appendAsFollower' as const),
      batches: fc.array(recordSpecs, { minLength: 1, maxLength: 3 }),
      epochBump: fc.constantFrom(0, 0, 1),
      gap: fc.oneof(
        { weight: 7, arbitrary: fc.constant(false) },
        { weight: 1, arbitrary: fc.constant(true) },
      ),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      at: position,
      maxBytes: fc.integer({ min: 1, max: 2_500 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncateTo' as const), at: position }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('truncateFullyAndStartAt' as const),
      at: position,
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'roll' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('deleteRecordsBefore' as const), at: position }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('retention' as const),
      retentionMs: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 6_000 })),
      retentionBytes: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 3_000 })),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.nat(6_000) }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('reopen' as const), crash: fc.boolean() }),
  },
);

interface RunConfig {
  readonly segmentBytes: number;
  readonly segmentMs: number;
  readonly indexIntervalBytes: number;
  readonly flushPolicy: FlushPolicy;
}

const runConfig: fc.Arbitrary<RunConfig> = fc.record({
  segmentBytes: fc.integer({ min: 300, max: 2_000 }),
  segmentMs: fc.integer({ min: 3_000, max: 30_000 }),
  indexIntervalBytes: fc.integer({ min: 1, max: 600 }),
  flushPolicy: fc.constantFrom<FlushPolicy>('always', 'always', 'interval', 'never'),
});

/** Maps a 0..1000 position onto [low, high]. */
function offsetAt(at: number, low: bigint, high: bigint): bigint {
  if (low < 0n) low = 0n;
  if (high < low) return low;
  return low + ((high - low) * BigInt(at)) / 1000n;
}

// ---------------------------------------------------------------------------------------------
// Running operations against the real log and the model side by side

class ModelRun {
  private log!: Log;
  private readonly model: LogModel;
  private readonly clock = new ManualClock();
  /** Instances "crashed" by dropping them; closed only after the run, when nothing reads the folder. */
  private readonly abandoned: Log[] = [];
  private epoch = 0;
  private nextValueId = 0;

  constructor(
    private readonly dir: string,
    private readonly config: RunConfig,
  ) {
    this.model = new LogModel(config, this.now);
  }

  private get now(): bigint {
    return BigInt(this.clock.now());
  }

  private get options(): LogOptions {
    return {
      clock: this.clock.now,
      config: {
        segmentBytes: this.config.segmentBytes,
        segmentMs: this.config.segmentMs,
        indexIntervalBytes: this.config.indexIntervalBytes,
        flushPolicy: this.config.flushPolicy,
        retentionMs: -1,
      },
    };
  }

  async start(): Promise<void> {
    this.log = await Log.open(this.dir, this.options);
  }

  async apply(op: Op): Promise<void> {
    switch (op.kind) {
      case 'append':
        return this.appendAsLeader([op.records], op.epochBump, op.gzip ? 'gzip' : 'none');
      case 'appendConcurrently':
        return this.appendAsLeader(op.batches, op.epochBump, 'none');
      case 'appendAsFollower':
        return this.appendAsFollower(op.batches, op.epochBump, op.gap);
      case 'read':
        return this.read(
          offsetAt(op.at, this.model.logStartOffset - 2n, this.model.logEndOffset + 2n),
          op.maxBytes,
        );
      case 'truncateTo': {
        const offset = offsetAt(op.at, this.model.logStartOffset - 3n, this.model.logEndOffset);
        await this.log.truncateTo(offset);
        this.model.truncateTo(offset, this.now);
        return;
      }
      case 'truncateFullyAndStartAt': {
        const offset = offsetAt(op.at, 0n, this.model.logEndOffset + 10n);
        await this.log.truncateFullyAndStartAt(offset);
        this.model.reset(offset, this.now);
        return;
      }
      case 'roll':
        await this.log.roll();
        this.model.roll(this.now);
        return;
      case 'deleteRecordsBefore':
        return this.deleteRecordsBefore(
          offsetAt(op.at, this.model.logStartOffset - 1n, this.model.logEndOffset + 1n),
        );
      case 'retention': {
        this.log.updateConfig({ retentionMs: op.retentionMs, retentionBytes: op.retentionBytes });
        const deleted = await this.log.deleteOldSegments();
        expect(deleted).toBe(
          this.model.deleteOldSegments(this.now, op.retentionMs, op.retentionBytes),
        );
        return;
      }
      case 'tick':
        this.clock.advance(op.ms);
        return;
      case 'reopen':
        return this.reopen(op.crash);
    }
  }

  private buildModelBatch(
    specs: readonly RecordSpec[],
    baseOffset: bigint,
    epoch: number,
    bytes: Buffer,
    records: ModelRecord[],
  ): ModelBatch {
    const timestamps = records.map((record) => record.timestamp);
    return {
      baseOffset,
      lastOffset: baseOffset + BigInt(specs.length - 1),
      epoch,
      sizeBytes: bytes.length,
      maxTimestamp: timestamps.reduce((max, t) => (t > max ? t : max)),
      records,
    };
  }

  private makeRecords(specs: readonly RecordSpec[]): ModelRecord[] {
    return specs.map((spec) => {
      // Every value is unique, so a batch served from the wrong place cannot pass.
      const id = `${this.nextValueId++}:`;
      return {
        key: spec.key,
        value: id + 'v'.repeat(spec.valueBytes),
        timestamp: this.now - BigInt(spec.ageMs),
      };
    });
  }

  private encode(
    records: readonly ModelRecord[],
    options: { compression?: CompressionType; baseOffset?: bigint; epoch?: number } = {},
  ): Buffer {
    const builder = new RecordBatchBuilder({
      compression: options.compression ?? 'none',
      baseOffset: options.baseOffset ?? 0n,
      partitionLeaderEpoch: options.epoch ?? -1,
    });
    for (const record of records) builder.append(record);
    return builder.build();
  }

  private async appendAsLeader(
    batches: readonly (readonly RecordSpec[])[],
    epochBump: number,
    compression: CompressionType,
  ): Promise<void> {
    this.epoch += epochBump;
    const epoch = this.epoch;
    const prepared = batches.map((specs) => {
      const records = this.makeRecords(specs);
      return { specs, records, bytes: this.encode(records, { compression }) };
    });
    // All appends are issued before any is awaited, so one writer turn may take several.
    const results = await Promise.allSettled(
      prepared.map(({ bytes }) => this.log.append(bytes, { leaderEpoch: epoch })),
    );
    const nowMs = this.now;
    prepared.forEach(({ specs, records, bytes }, i) => {
      const result = results[i]!;
      if (bytes.length > this.config.segmentBytes) {
        expect(result.status).toBe('rejected');
        expectWeirError((result as PromiseRejectedResult).reason, ErrorCode.RECORD_LIST_TOO_LARGE);
        return;
      }
      if (result.status === 'rejected') throw result.reason;
      const baseOffset = this.model.logEndOffset;
      expect(result.value).toMatchObject({
        baseOffset,
        lastOffset: baseOffset + BigInt(specs.length - 1),
        recordCount: specs.length,
      });
      this.model.append(this.buildModelBatch(specs, baseOffset, epoch, bytes, records), nowMs);
    });
  }

  private async appendAsFollower(
    batches: readonly (readonly RecordSpec[])[],
    epochBump: number,
    gap: boolean,
  ): Promise<void> {
    this.epoch += epochBump;
    const epoch = this.epoch;
    // Batches as a leader would serve them: offsets and epochs already set, back to back.
    let offset = this.model.logEndOffset + (gap ? 1n : 0n);
    const encoded: Buffer[] = [];
    const prepared = batches.map((specs) => {
      const records = this.makeRecords(specs);
      const bytes = this.encode(records, { baseOffset: offset, epoch });
      encoded.push(bytes);
      const batch = this.buildModelBatch(specs, offset, epoch, bytes, records);
      offset = batch.lastOffset + 1n;
      return batch;
    });
    const append = this.log.appendAsFollower(Buffer.concat(encoded));
    if (prepared.some((batch) => batch.sizeBytes > this.config.segmentBytes)) {
      await expectRejection(append, ErrorCode.RECORD_LIST_TOO_LARGE);
      return;
    }
    if (gap) {
      await expectRejection(append, ErrorCode.OFFSET_OUT_OF_RANGE);
      return;
    }
    const info = await append;
    expect(info.baseOffset).toBe(prepared[0]!.baseOffset);
    expect(info.lastOffset).toBe(prepared.at(-1)!.lastOffset);
    const nowMs = this.now;
    for (const batch of prepared) this.model.append(batch, nowMs);
  }

  private async read(offset: bigint, maxBytes: number): Promise<void> {
    const { logStartOffset, logEndOffset } = this.model;
    if (offset < logStartOffset || offset > logEndOffset) {
      await expectRejection(this.log.read(offset, maxBytes), ErrorCode.OFFSET_OUT_OF_RANGE);
      return;
    }
    const result = await this.log.read(offset, maxBytes);
    expect(result.logStartOffset).toBe(logStartOffset);
    expect(result.logEndOffset).toBe(logEndOffset);
    const expected = this.model.expectedRead(offset, maxBytes);
    const actual = batchesOf(result.records);
    if (actual.length > 1) expect(result.records.length).toBeLessThanOrEqual(maxBytes);
    if (offset < logEndOffset) {
      expect(actual.length).toBeGreaterThan(0);
      expect(actual[0]!.baseOffset).toBeLessThanOrEqual(offset);
      expect(actual[0]!.lastOffset).toBeGreaterThanOrEqual(offset);
    }
    expectBatches(actual, expected);
  }

  private async deleteRecordsBefore(offset: bigint): Promise<void> {
    if (offset > this.model.logEndOffset) {
      await expectRejection(this.log.deleteRecordsBefore(offset), ErrorCode.OFFSET_OUT_OF_RANGE);
      return;
    }
    await this.log.deleteRecordsBefore(offset);
    this.model.deleteRecordsBefore(offset);
  }

  private async reopen(crash: boolean): Promise<void> {
    if (crash) this.abandoned.push(this.log);
    else await this.log.close();
    this.log = await Log.open(this.dir, this.options);
    this.model.reopen(this.now, crash);
    expect(this.log.openReport).toMatchObject({ cleanShutdown: !crash, truncatedBytes: 0 });
    await this.readEverything();
  }

  /** Walks the whole readable log with small reads: every offset comes back exactly once. */
  async readEverything(): Promise<void> {
    let offset = this.model.logStartOffset;
    while (offset < this.model.logEndOffset) {
      const batches = batchesOf((await this.log.read(offset, 1)).records);
      expect(batches.length).toBe(1);
      expectBatches(batches, this.model.expectedRead(offset, 1));
      offset = batches[0]!.nextOffset;
    }
  }

  async check(): Promise<void> {
    const { log, model } = this;
    expect(log.logEndOffset).toBe(model.logEndOffset);
    expect(log.logStartOffset).toBe(model.logStartOffset);
    expect(log.segmentBaseOffsets).toEqual(model.segments.map((segment) => segment.baseOffset));
    expect(log.sizeInBytes).toBe(model.sizeInBytes);
    expect(log.latestEpoch).toBe(model.latestEpoch);
    const highest = (model.latestEpoch ?? 0) + 2;
    for (let epoch = -1; epoch <= highest; epoch++) {
      expect(log.endOffsetForEpoch(epoch), `endOffsetForEpoch(${epoch})`).toEqual(
        model.endOffsetFor(epoch),
      );
    }
    if (this.config.flushPolicy === 'always') expect(log.recoveryPoint).toBe(model.logEndOffset);
    expect(log.recoveryPoint).toBeLessThanOrEqual(model.logEndOffset);
    const files = (await readdir(this.dir)).filter((name) => name.endsWith('.log')).sort();
    expect(files.map((name) => BigInt(name.slice(0, 20)))).toEqual(log.segmentBaseOffsets);
  }

  async finish(): Promise<void> {
    await this.readEverything();
    await this.log.close();
    this.log = await Log.open(this.dir, this.options);
    this.model.reopen(this.now, false);
    await this.check();
    await this.readEverything();
  }

  async dispose(): Promise<void> {
    await this.log.close().catch(() => undefined);
    for (const log of this.abandoned) await log.close().catch(() => undefined);
  }
}

function expectWeirError(error: unknown, code: ErrorCode): void {
  if (!isWeirError(error, code)) {
    throw new Error(`expected WeirError ${ErrorCode[code]}, got ${String(error)}`, {
      cause: error,
    });
  }
}

async function expectRejection(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => ({ error }),
  );
  if (outcome === undefined) throw new Error(`expected a rejection with ${ErrorCode[code]}`);
  expectWeirError(outcome.error, code);
}

function expectBatches(actual: readonly RecordBatch[], expected: readonly ModelBatch[]): void {
  expect(actual.map((batch) => [batch.baseOffset, batch.lastOffset])).toEqual(
    expected.map((batch) => [batch.baseOffset, batch.lastOffset]),
  );
  actual.forEach((batch, i) => {
    const model = expected[i]!;
    expect(batch.partitionLeaderEpoch).toBe(model.epoch);
    expect(batch.sizeInBytes).toBe(model.sizeBytes);
    const records = [...batch.records()].map((record) => ({
      offset: record.offset,
      key: record.key?.toString('utf8') ?? null,
      value: record.value?.toString('utf8'),
      timestamp: record.timestamp,
    }));
    expect(records).toEqual(
      model.records.map((record, n) => ({ offset: model.baseOffset + BigInt(n), ...record })),
    );
  });
  // Consecutive batches in one read follow each other without a gap.
  for (let i = 1; i < actual.length; i++) {
    expect(actual[i]!.baseOffset).toBe(actual[i - 1]!.nextOffset);
  }
}

describe('Log against an in-memory model', () => {
  const runs = propertyRuns(30);
  const timeoutMs = propertyTimeoutMs(runs, 1_000) + 30_000;
  it(
    'agrees on every append, read, truncation, roll, retention and reopen',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          runConfig,
          fc.array(op, { minLength: 1, maxLength: 60, size: 'max' }),
          (config, ops) =>
            withTempDir('model', async (dir) => {
              const run = new ModelRun(dir, config);
              try {
                await run.start();
                for (const next of ops) {
                  await run.apply(next);
                  await run.check();
                }
                await run.finish();
              } finally {
                await run.dispose();
              }
            }),
        ),
        // A failure found late can take minutes to shrink; report the best one found in time.
        { numRuns: runs, interruptAfterTimeLimit: timeoutMs - 15_000 },
      );
    },
    timeoutMs,
  );
});

describe('Log regressions the model found', () => {
  let dir: string;
  let log: Log;
  const openLog = async (options: LogOptions = {}) => {
    dir = await tempDir('model-regression');
    log = await Log.open(dir, options);
    return log;
  };
  afterEach(async () => {
    await log.close();
    await removeDir(dir);
  });

  it('rolls inside one writer turn when concurrent appends outgrow segment.bytes', async () => {
    await openLog({ config: { segmentBytes: 300 } });
    const appends = Array.from({ length: 10 }, (_, i) =>
      log.append(valuesBatch([`value-${i}-${'x'.repeat(60)}`]), { leaderEpoch: 0 }),
    );
    await Promise.all(appends);
    expect(log.segmentCount).toBeGreaterThan(3);
    // No segment holds more than segment.bytes.
    let offset = 0n;
    for (const base of log.segmentBaseOffsets.slice(1)) {
      const { records } = await log.read(offset, 1 << 20);
      expect(records.length).toBeLessThanOrEqual(300);
      expect(batchesOf(records).at(-1)!.nextOffset).toBe(base);
      offset = base;
    }
  });

  it('truncates fully to the base offset of a segment that already exists', async () => {
    await openLog();
    await log.append(valuesBatch(['a', 'b']), { leaderEpoch: 0 });
    await log.truncateFullyAndStartAt(0n);
    expect([log.logStartOffset, log.logEndOffset, log.sizeInBytes]).toEqual([0n, 0n, 0]);
    expect(log.latestEpoch).toBeUndefined();
    await log.append(valuesBatch(['c']), { leaderEpoch: 1 });
    await log.truncateFullyAndStartAt(0n);
    await log.truncateFullyAndStartAt(0n); // the new segment is empty and has the same name
    await log.append(valuesBatch(['d']), { leaderEpoch: 2 });
    expect(offsetsOf((await log.read(0n, 1 << 20)).records)).toEqual([0n]);
    await log.close();
    log = await Log.open(dir);
    expect(offsetsOf((await log.read(0n, 1 << 20)).records)).toEqual([0n]);
  });

  it('empties the log at the truncation offset when the batch holding it began below the log start', async () => {
    await openLog();
    await log.append(valuesBatch(['a', 'b', 'c', 'd']), { leaderEpoch: 0 }); // offsets 0-3
    await log.deleteRecordsBefore(2n);
    // The batch holding offset 3 starts at 0, below the log start: it goes whole.
    await log.truncateTo(3n);
    expect([log.logStartOffset, log.logEndOffset]).toEqual([3n, 3n]);
    expect((await log.read(3n, 1_000)).records.length).toBe(0);
    const next = await log.append(valuesBatch(['e']), { leaderEpoch: 1 });
    expect(next.baseOffset).toBe(3n);
  });
});
