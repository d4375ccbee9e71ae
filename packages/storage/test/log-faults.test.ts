// Bad input and I/O faults. Write faults are injected through LogOptions.openFile: a
// SegmentFile that, once a byte budget is spent, writes only a prefix of what it was given and
// then throws ENOSPC (the way a full disk behaves), or whose fsync fails with EIO.

import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RECORD_BATCH_OVERHEAD, RecordBatchBuilder, isWeirError } from '@weir/protocol';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLEAN_SHUTDOWN_FILE, Log, type LogAppendInfo, type LogOptions } from '../src/log.js';
import { type SegmentFile, type SegmentFileOpener, openSegmentFile } from '../src/segment-file.js';
import {
  batchesOf,
  buildBatch,
  offsetsOf,
  propertyRuns,
  propertyTimeoutMs,
  removeDir,
  tempDir,
  valuesBatch,
  withTempDir,
} from './helpers.js';

/** The fault plan shared by every file of one log: a disk, in effect. */
class FaultyDisk {
  /** Bytes appends may still write; the append that would pass it writes a prefix, then fails. */
  remainingBytes = Number.POSITIVE_INFINITY;
  /** fsyncs that may still succeed. */
  remainingSyncs = Number.POSITIVE_INFINITY;
  /** Whether opening (creating) a segment file fails. */
  failOpen = false;

  readonly opener: SegmentFileOpener = async (path) => {
    if (this.failOpen) throw errno('ENOSPC', `ENOSPC: no space left on device, open '${path}'`);
    return new FaultySegmentFile(await openSegmentFile(path), this);
  };
}

function errno(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

class FaultySegmentFile implements SegmentFile {
  constructor(
    private readonly file: SegmentFile,
    private readonly disk: FaultyDisk,
  ) {}

  async append(buffers: readonly Buffer[]): Promise<void> {
    const total = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
    if (total <= this.disk.remainingBytes) {
      this.disk.remainingBytes -= total;
      return this.file.append(buffers);
    }
    const prefix = Buffer.concat(buffers).subarray(0, this.disk.remainingBytes);
    this.disk.remainingBytes = 0;
    if (prefix.length > 0) await this.file.append([prefix]);
    throw errno('ENOSPC', 'ENOSPC: no space left on device');
  }

  sync(): Promise<void> {
    if (this.disk.remainingSyncs <= 0) {
      return Promise.reject(errno('EIO', 'EIO: i/o error, fdatasync'));
    }
    this.disk.remainingSyncs--;
    return this.file.sync();
  }

  read(target: Buffer, length: number, position: number): Promise<number> {
    return this.file.read(target, length, position);
  }
  truncate(sizeBytes: number): Promise<void> {
    return this.file.truncate(sizeBytes);
  }
  sizeBytes(): Promise<number> {
    return this.file.sizeBytes();
  }
  close(): Promise<void> {
    return this.file.close();
  }
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<unknown> {
  const error = await rejectionOf(promise);
  expect(isWeirError(error, code), `expected ${ErrorCode[code]}, got ${String(error)}`).toBe(true);
  return error;
}

/** The sizes of the segment files on disk, in base-offset order. */
async function logFileBytes(dir: string): Promise<number> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.log'));
  let total = 0;
  for (const name of names) total += (await stat(join(dir, name))).size;
  return total;
}

/** Every batch from the log start, read back; offsets contiguous, CRCs valid. */
async function allBatchOffsets(log: Log): Promise<[bigint, bigint][]> {
  const result: [bigint, bigint][] = [];
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const batches = batchesOf((await log.read(offset, 64 * 1024)).records);
    for (const batch of batches) {
      expect(batch.baseOffset).toBe(offset);
      result.push([batch.baseOffset, batch.lastOffset]);
      offset = batch.nextOffset;
    }
  }
  return result;
}

let dir: string;
beforeEach(async () => {
  dir = await tempDir('faults');
});
afterEach(async () => {
  await removeDir(dir);
});

describe('Log write faults', () => {
  it('refuses an append that hit ENOSPC, and every later one, but keeps serving reads', async () => {
    const disk = new FaultyDisk();
    const log = await Log.open(dir, { openFile: disk.opener });
    const first = await log.append(valuesBatch(['a', 'b']), { leaderEpoch: 0 });
    const second = await log.append(valuesBatch(['c']), { leaderEpoch: 0 });
    const sizeBefore = log.sizeInBytes;
    disk.remainingBytes = 20; // the next batch gets its first 20 bytes written, then ENOSPC

    const error = await expectCode(
      log.append(valuesBatch(['d', 'e', 'f']), { leaderEpoch: 0 }),
      ErrorCode.KAFKA_STORAGE_ERROR,
    );
    expect((error as Error).message).toContain('ENOSPC');
    expect(((error as Error).cause as NodeJS.ErrnoException).code).toBe('ENOSPC');
    // The partial write was cut back: nothing of the failed batch is on disk or visible.
    expect(log.sizeInBytes).toBe(sizeBefore);
    expect(await logFileBytes(dir)).toBe(sizeBefore);
    expect(log.logEndOffset).toBe(3n);

    // Space is back, but the log stays failed until reopened, as Kafka takes the dir offline.
    disk.remainingBytes = Number.POSITIVE_INFINITY;
    await Promise.all([
      expectCode(log.append(valuesBatch(['g']), { leaderEpoch: 0 }), ErrorCode.KAFKA_STORAGE_ERROR),
      expectCode(log.append(valuesBatch(['h']), { leaderEpoch: 0 }), ErrorCode.KAFKA_STORAGE_ERROR),
    ]);
    expect(offsetsOf((await log.read(0n, 1 << 20)).records)).toEqual([0n, 1n, 2n]);
    await log.close();
    // A failed log does not claim a clean shutdown.
    expect((await readdir(dir)).includes(CLEAN_SHUTDOWN_FILE)).toBe(false);

    const reopened = await Log.open(dir);
    try {
      expect(reopened.openReport.truncatedBytes).toBe(0);
      expect(await allBatchOffsets(reopened)).toEqual([
        [first.baseOffset, first.lastOffset],
        [second.baseOffset, second.lastOffset],
      ]);
      const next = await reopened.append(valuesBatch(['again']), { leaderEpoch: 1 });
      expect(next.baseOffset).toBe(3n);
    } finally {
      await reopened.close();
    }
  });

  it('refuses appends queued behind a failed writer turn instead of leaving them pending', async () => {
    const disk = new FaultyDisk();
    const log = await Log.open(dir, { openFile: disk.opener });
    await log.append(valuesBatch(['a']), { leaderEpoch: 0 });
    disk.remainingBytes = 0;
    // The first turn takes the first append; the others queue behind it and must settle too.
    const appends = ['b', 'c', 'd'].map((value) =>
      log.append(valuesBatch([value]), { leaderEpoch: 0 }),
    );
    for (const append of appends) await expectCode(append, ErrorCode.KAFKA_STORAGE_ERROR);
    expect(log.logEndOffset).toBe(1n);
    await log.close();
  });

  it('undoes a failed fsync: the append is refused and does not reappear after reopen', async () => {
    const disk = new FaultyDisk();
    const log = await Log.open(dir, { openFile: disk.opener });
    await log.append(valuesBatch(['a']), { leaderEpoch: 0 });
    disk.remainingSyncs = 0;
    await expectCode(
      log.append(valuesBatch(['b']), { leaderEpoch: 1 }),
      ErrorCode.KAFKA_STORAGE_ERROR,
    );
    expect(log.logEndOffset).toBe(1n);
    expect(log.latestEpoch).toBe(0);
    expect(offsetsOf((await log.read(0n, 1 << 20)).records)).toEqual([0n]);
    await log.close();

    const reopened = await Log.open(dir);
    try {
      expect(await allBatchOffsets(reopened)).toEqual([[0n, 0n]]);
      expect(reopened.latestEpoch).toBe(0);
    } finally {
      await reopened.close();
    }
  });

  it('refuses the append when the next segment cannot be created', async () => {
    const disk = new FaultyDisk();
    const log = await Log.open(dir, { openFile: disk.opener, config: { segmentBytes: 200 } });
    await log.append(valuesBatch(['a'.repeat(100)]), { leaderEpoch: 0 });
    disk.failOpen = true;
    await expectCode(
      log.append(valuesBatch(['b'.repeat(100)]), { leaderEpoch: 0 }),
      ErrorCode.KAFKA_STORAGE_ERROR,
    );
    expect(log.segmentCount).toBe(1);
    expect(offsetsOf((await log.read(0n, 1 << 20)).records)).toEqual([0n]);
    await log.close();
    const reopened = await Log.open(dir, { config: { segmentBytes: 200 } });
    try {
      expect(await allBatchOffsets(reopened)).toEqual([[0n, 0n]]);
      expect(
        (await reopened.append(valuesBatch(['c'.repeat(100)]), { leaderEpoch: 0 })).baseOffset,
      ).toBe(1n);
      expect(reopened.segmentCount).toBe(2);
    } finally {
      await reopened.close();
    }
  });

  const runs = propertyRuns(30);
  it(
    'after any ENOSPC, reopening finds exactly the appends that resolved',
    async () => {
      // Concurrent appends form writer turns that span segment rolls; the disk fills up at a
      // random byte, possibly inside the second segment a turn writes to.
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 2, maxLength: 24 }),
          fc.integer({ min: 0, max: 3_000 }),
          fc.integer({ min: 250, max: 700 }),
          fc.constantFrom('ENOSPC', 'EIO'),
          (valueSizes, budget, segmentBytes, fault) =>
            withTempDir('faults-enospc', async (dir) => {
              const disk = new FaultyDisk();
              const options: LogOptions = { config: { segmentBytes, indexIntervalBytes: 64 } };
              const log = await Log.open(dir, { ...options, openFile: disk.opener });
              if (fault === 'ENOSPC') disk.remainingBytes = budget;
              else disk.remainingSyncs = Math.floor(budget / 300);

              const results = await Promise.allSettled(
                valueSizes.map((size, i) =>
                  log.append(valuesBatch([`${i}:${'x'.repeat(size)}`]), { leaderEpoch: 0 }),
                ),
              );
              for (const result of results) {
                if (result.status === 'rejected') {
                  expect(isWeirError(result.reason, ErrorCode.KAFKA_STORAGE_ERROR)).toBe(true);
                }
              }
              const resolved = results
                .filter((r): r is PromiseFulfilledResult<LogAppendInfo> => r.status === 'fulfilled')
                .map((r) => [r.value.baseOffset, r.value.lastOffset] as [bigint, bigint])
                .sort((a, b) => (a[0] < b[0] ? -1 : 1));
              // Before reopening: the failed log serves exactly the resolved appends.
              expect(await allBatchOffsets(log)).toEqual(resolved);
              disk.remainingBytes = disk.remainingSyncs = Number.POSITIVE_INFINITY;
              await log.close();

              const reopened = await Log.open(dir, options);
              try {
                expect(await allBatchOffsets(reopened)).toEqual(resolved);
                const end = resolved.at(-1)?.[1] ?? -1n;
                expect(reopened.logEndOffset).toBe(end + 1n);
                const next = await reopened.append(valuesBatch(['next']), { leaderEpoch: 0 });
                expect(next.baseOffset).toBe(end + 1n);
              } finally {
                await reopened.close();
              }
            }),
        ),
        { numRuns: runs },
      );
    },
    propertyTimeoutMs(runs, 200),
  );
});

describe('Log input validation', () => {
  let log: Log;
  beforeEach(async () => {
    log = await Log.open(dir, { config: { maxMessageBytes: 300, segmentBytes: 1_000 } });
    await log.append(valuesBatch(['a', 'b']), { leaderEpoch: 0 });
  });
  afterEach(async () => {
    await log.close();
  });

  /** The log is exactly as it was after the setup append, on disk too, and still works. */
  async function expectUnchanged(): Promise<void> {
    expect(log.logEndOffset).toBe(2n);
    expect(log.sizeInBytes).toBe(await logFileBytes(dir));
    expect(offsetsOf((await log.read(0n, 1 << 20)).records)).toEqual([0n, 1n]);
    const next = await log.append(valuesBatch(['ok']), { leaderEpoch: 0 });
    expect(next.baseOffset).toBe(2n);
  }

  it('refuses a batch with a bad CRC with CORRUPT_MESSAGE', async () => {
    const batch = valuesBatch(['x', 'y']);
    batch[batch.length - 1]! ^= 0x01;
    await expectCode(log.append(batch, { leaderEpoch: 0 }), ErrorCode.CORRUPT_MESSAGE);
    await expectUnchanged();
  });

  it.each([
    ['truncated', (batch: Buffer) => batch.subarray(0, batch.length - 5)],
    ['shorter than a header', (batch: Buffer) => batch.subarray(0, RECORD_BATCH_OVERHEAD - 1)],
    ['with trailing bytes', (batch: Buffer) => Buffer.concat([batch, Buffer.from([0])])],
    ['of two batches', (batch: Buffer) => Buffer.concat([batch, valuesBatch(['z'])])],
    [
      'with a wrong magic byte',
      (batch: Buffer) => {
        const copy = Buffer.from(batch);
        copy[16] = 1;
        return copy;
      },
    ],
    [
      'with a batch length beyond the buffer',
      (batch: Buffer) => {
        const copy = Buffer.from(batch);
        copy.writeInt32BE(copy.readInt32BE(8) + 100, 8);
        return copy;
      },
    ],
  ])('refuses a batch %s with CORRUPT_MESSAGE', async (_name, mangle) => {
    await expectCode(
      log.append(mangle(valuesBatch(['x', 'y'])), { leaderEpoch: 0 }),
      ErrorCode.CORRUPT_MESSAGE,
    );
    await expectUnchanged();
  });

  it('refuses a batch larger than max.message.bytes with MESSAGE_TOO_LARGE', async () => {
    await expectCode(
      log.append(valuesBatch(['x'.repeat(400)]), { leaderEpoch: 0 }),
      ErrorCode.MESSAGE_TOO_LARGE,
    );
    await expectCode(
      log.appendAsFollower(buildBatch([{ value: 'x'.repeat(400) }], { baseOffset: 2n })),
      ErrorCode.MESSAGE_TOO_LARGE,
    );
    await expectUnchanged();
  });

  it('takes follower batches with their own offsets and epochs', async () => {
    const batches = Buffer.concat([
      buildBatch([{ value: 'f1' }, { value: 'f2' }], { baseOffset: 2n, partitionLeaderEpoch: 4 }),
      buildBatch([{ value: 'f3' }], { baseOffset: 4n, partitionLeaderEpoch: 5 }),
    ]);
    const info = await log.appendAsFollower(batches);
    expect(info).toMatchObject({ baseOffset: 2n, lastOffset: 4n, recordCount: 3 });
    const read = batchesOf((await log.read(2n, 1 << 20)).records);
    expect(read.map((b) => [b.baseOffset, b.partitionLeaderEpoch])).toEqual([
      [2n, 4],
      [4n, 5],
    ]);
    expect(log.endOffsetForEpoch(4)).toEqual({ epoch: 4, endOffset: 4n });
    expect(log.endOffsetForEpoch(5)).toEqual({ epoch: 5, endOffset: 5n });
  });

  it('refuses follower batches that are not contiguous with each other', async () => {
    const batches = Buffer.concat([
      buildBatch([{ value: 'f1' }], { baseOffset: 2n, partitionLeaderEpoch: 0 }),
      buildBatch([{ value: 'f2' }], { baseOffset: 4n, partitionLeaderEpoch: 0 }),
    ]);
    await expectCode(log.appendAsFollower(batches), ErrorCode.CORRUPT_MESSAGE);
    await expectUnchanged();
  });

  it.each([
    ['after a gap', 3n],
    ['overlapping the log', 1n],
  ])('refuses follower batches starting %s with OFFSET_OUT_OF_RANGE', async (_name, base) => {
    const batch = buildBatch([{ value: 'f' }], { baseOffset: base, partitionLeaderEpoch: 0 });
    await expectCode(log.appendAsFollower(batch), ErrorCode.OFFSET_OUT_OF_RANGE);
    // A refused follower append does not fail the log.
    await expectUnchanged();
  });

  it('refuses an empty follower append and a corrupt follower batch', async () => {
    await expectCode(log.appendAsFollower(Buffer.alloc(0)), ErrorCode.CORRUPT_MESSAGE);
    const corrupt = buildBatch([{ value: 'f' }], { baseOffset: 2n });
    corrupt[corrupt.length - 1]! ^= 0x10;
    await expectCode(log.appendAsFollower(corrupt), ErrorCode.CORRUPT_MESSAGE);
    await expectUnchanged();
  });

  it('answers reads outside [logStartOffset, logEndOffset] with OFFSET_OUT_OF_RANGE', async () => {
    await log.append(valuesBatch(['c', 'd']), { leaderEpoch: 0 });
    await log.deleteRecordsBefore(2n);
    await expectCode(log.read(1n, 1_000), ErrorCode.OFFSET_OUT_OF_RANGE);
    await expectCode(log.read(5n, 1_000), ErrorCode.OFFSET_OUT_OF_RANGE);
    await expectCode(log.read(-1n, 1_000), ErrorCode.OFFSET_OUT_OF_RANGE);
    expect((await log.read(4n, 1_000)).records.length).toBe(0);
    expect(offsetsOf((await log.read(2n, 1_000)).records)).toEqual([2n, 3n]);
    await expectCode(log.deleteRecordsBefore(5n), ErrorCode.OFFSET_OUT_OF_RANGE);
  });

  it('refuses appends after close, and closing twice is harmless', async () => {
    const pending = log.append(valuesBatch(['queued']), { leaderEpoch: 0 });
    const closed = log.close();
    await expectCode(
      log.append(valuesBatch(['late']), { leaderEpoch: 0 }),
      ErrorCode.KAFKA_STORAGE_ERROR,
    );
    expect((await pending).baseOffset).toBe(2n); // accepted before close: written
    await closed;
    await log.close();
    const reopened = await Log.open(dir);
    try {
      expect(reopened.openReport.cleanShutdown).toBe(true);
      expect(reopened.logEndOffset).toBe(3n);
    } finally {
      await reopened.close();
    }
  });
});

describe('Log builder round trip', () => {
  it('stores compressed batches as they are', async () => {
    const log = await Log.open(dir);
    try {
      const builder = new RecordBatchBuilder({ compression: 'gzip' });
      for (let i = 0; i < 50; i++) builder.append({ value: `compressible-${i % 3}`, timestamp: 1 });
      const bytes = builder.build();
      await log.append(bytes, { leaderEpoch: 0 });
      const [stored] = batchesOf((await log.read(0n, 1 << 20)).records);
      expect(stored!.compression).toBe('gzip');
      expect(stored!.sizeInBytes).toBe(bytes.length);
      expect([...stored!.records()].map((r) => r.offset)).toEqual(
        [...Array(50).keys()].map(BigInt),
      );
    } finally {
      await log.close();
    }
  });
});
