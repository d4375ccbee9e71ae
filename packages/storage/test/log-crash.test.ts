// Crash recovery: a log written with flush `always` is stopped uncleanly, its last segment is
// cut at a random byte or has bytes flipped in its tail, and the reopened log must end at
// exactly the last intact batch, serve only CRC-valid batches, say how much it cut, and take
// the next append at the right offset. Damaged or missing index files must be rebuilt.

import { open, readFile, readdir, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeOffsetCheckpoint } from '../src/checkpoint-file.js';
import {
  CLEAN_SHUTDOWN_FILE,
  Log,
  type LogOptions,
  RECOVERY_POINT_CHECKPOINT,
} from '../src/log.js';
import { segmentFileName } from '../src/segment.js';
import {
  batchesOf,
  buildBatch,
  propertyRuns,
  propertyTimeoutMs,
  removeDir,
  tempDir,
  withTempDir,
} from './helpers.js';

interface WrittenBatch {
  readonly baseOffset: bigint;
  readonly lastOffset: bigint;
  readonly epoch: number;
  readonly sizeBytes: number;
  readonly values: readonly string[];
  /** Filled in once the segments are known. */
  segmentBaseOffset: bigint;
  position: number;
}

const options = (segmentBytes: number): LogOptions => ({
  config: { segmentBytes, indexIntervalBytes: 128, flushPolicy: 'always' },
});

/** Appends one batch per entry of `shape` (its record count and value size). */
async function writeBatches(
  log: Log,
  shape: readonly { records: number; valueBytes: number }[],
): Promise<WrittenBatch[]> {
  const written: WrittenBatch[] = [];
  for (const [i, { records, valueBytes }] of shape.entries()) {
    const values = Array.from({ length: records }, (_, n) => `${i}.${n}:${'x'.repeat(valueBytes)}`);
    const bytes = buildBatch(values.map((value) => ({ value, timestamp: 1_000 + i })));
    const epoch = Math.floor(i / 3);
    const info = await log.append(bytes, { leaderEpoch: epoch });
    written.push({
      baseOffset: info.baseOffset,
      lastOffset: info.lastOffset,
      epoch,
      sizeBytes: bytes.length,
      values,
      segmentBaseOffset: -1n,
      position: -1,
    });
  }
  const bases = log.segmentBaseOffsets;
  let position = 0;
  let segment = -1n;
  for (const batch of written) {
    const base = bases.findLast((b) => b <= batch.baseOffset)!;
    if (base !== segment) [segment, position] = [base, 0];
    batch.segmentBaseOffset = base;
    batch.position = position;
    position += batch.sizeBytes;
  }
  return written;
}

/** A clean close, made to look like a crash: no marker, recovery point 0 (so all is scanned). */
async function closeAsIfCrashed(log: Log, dir: string): Promise<void> {
  await log.close();
  await unlink(join(dir, CLEAN_SHUTDOWN_FILE));
  await writeOffsetCheckpoint(join(dir, RECOVERY_POINT_CHECKPOINT), 0n);
}

/** Reads every offset from the log start one by one: each lands in its batch, intact. */
async function expectReadable(log: Log, expected: readonly WrittenBatch[]): Promise<void> {
  if (expected.length > 0) expect(log.logEndOffset).toBe(expected.at(-1)!.lastOffset + 1n);
  for (const batch of expected) {
    for (let offset = batch.baseOffset; offset <= batch.lastOffset; offset++) {
      const read = batchesOf((await log.read(offset, 1)).records);
      expect(read.length).toBe(1);
      const [found] = read;
      expect([found!.baseOffset, found!.lastOffset, found!.partitionLeaderEpoch]).toEqual([
        batch.baseOffset,
        batch.lastOffset,
        batch.epoch,
      ]);
      expect([...found!.records()].map((record) => record.value?.toString())).toEqual(batch.values);
    }
  }
  // Larger reads cross batch boundaries and still return only whole, valid batches.
  let offset = log.logStartOffset;
  const seen: bigint[] = [];
  while (offset < log.logEndOffset) {
    const read = batchesOf((await log.read(offset, 700)).records);
    seen.push(...read.map((batch) => batch.baseOffset));
    offset = read.at(-1)!.nextOffset;
  }
  expect(seen).toEqual(expected.map((batch) => batch.baseOffset));
}

/** After recovery the log takes appends at its end, and they survive a clean reopen. */
async function expectAppendsContinue(log: Log, dir: string, segmentBytes: number): Promise<void> {
  const end = log.logEndOffset;
  const info = await log.append(buildBatch([{ value: 'after', timestamp: 5_000 }]), {
    leaderEpoch: 100,
  });
  expect(info.baseOffset).toBe(end);
  await log.close();
  const reopened = await Log.open(dir, options(segmentBytes));
  try {
    expect(reopened.openReport.cleanShutdown).toBe(true);
    expect(reopened.logEndOffset).toBe(end + 1n);
    const [last] = batchesOf((await reopened.read(end, 1)).records);
    expect([...last!.records()][0]!.value?.toString()).toBe('after');
    expect(reopened.endOffsetForEpoch(100)).toEqual({ epoch: 100, endOffset: end + 1n });
  } finally {
    await reopened.close();
  }
}

const batchShapes = fc.array(
  fc.record({ records: fc.integer({ min: 1, max: 5 }), valueBytes: fc.nat(150) }),
  { minLength: 1, maxLength: 14 },
);

/** Byte positions of a batch whose corruption the format can detect: all but the fields the CRC leaves out (baseOffset's low word, partitionLeaderEpoch). */
function detectablePositions(batch: WrittenBatch): number[] {
  const positions: number[] = [];
  for (let i = 0; i < batch.sizeBytes; i++) {
    if ((i >= 4 && i < 8) || (i >= 12 && i < 16)) continue;
    positions.push(batch.position + i);
  }
  return positions;
}

let dir: string;
beforeEach(async () => {
  dir = await tempDir('crash');
});
afterEach(async () => {
  await removeDir(dir);
});

describe('Log recovery after an unclean stop', () => {
  const runs = propertyRuns(40);
  it(
    'recovers to the last whole batch when the last segment is cut anywhere',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          batchShapes,
          fc.integer({ min: 1_000, max: 3_000 }),
          fc.integer({ min: 0, max: 1_000 }),
          (shape, segmentBytes, cutAt) =>
            withTempDir('crash-cut', async (dir) => {
              const log = await Log.open(dir, options(segmentBytes));
              const written = await writeBatches(log, shape);
              const lastSegment = log.segmentBaseOffsets.at(-1)!;
              const inLast = written.filter((batch) => batch.segmentBaseOffset === lastSegment);
              const size = inLast.reduce((sum, batch) => sum + batch.sizeBytes, 0);
              await closeAsIfCrashed(log, dir);

              const cut = Math.floor((size * cutAt) / 1_000);
              await truncate(join(dir, segmentFileName(lastSegment, '.log')), cut);
              const intact = written.filter(
                (batch) =>
                  batch.segmentBaseOffset !== lastSegment ||
                  batch.position + batch.sizeBytes <= cut,
              );
              const keptInLast = intact.filter((batch) => batch.segmentBaseOffset === lastSegment);
              const intactBytes = keptInLast.reduce((sum, batch) => sum + batch.sizeBytes, 0);

              const reopened = await Log.open(dir, options(segmentBytes));
              try {
                expect(reopened.openReport).toMatchObject({
                  cleanShutdown: false,
                  truncatedBytes: cut - intactBytes,
                });
                expect(reopened.logEndOffset).toBe(
                  intact.length === 0 ? 0n : intact.at(-1)!.lastOffset + 1n,
                );
                expect(reopened.latestEpoch).toBe(intact.at(-1)?.epoch);
                await expectReadable(reopened, intact);
                await expectAppendsContinue(reopened, dir, segmentBytes);
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

  it(
    'cuts the tail at the first batch with a flipped byte',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          batchShapes,
          fc.integer({ min: 1_000, max: 3_000 }),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), {
            minLength: 1,
            maxLength: 3,
          }),
          (shape, segmentBytes, flips) =>
            withTempDir('crash-flip', async (dir) => {
              const log = await Log.open(dir, options(segmentBytes));
              const written = await writeBatches(log, shape);
              const lastSegment = log.segmentBaseOffsets.at(-1)!;
              const inLast = written.filter((batch) => batch.segmentBaseOffset === lastSegment);
              const size = inLast.reduce((sum, batch) => sum + batch.sizeBytes, 0);
              await closeAsIfCrashed(log, dir);

              const candidates = inLast.flatMap(detectablePositions);
              const path = join(dir, segmentFileName(lastSegment, '.log'));
              const bytes = await readFile(path);
              const flipped = flips.map(([at, mask]) => {
                const position = candidates[at % candidates.length]!;
                bytes[position]! ^= mask;
                return position;
              });
              await writeFile(path, bytes);
              const firstFlip = Math.min(...flipped);
              const intact = written.filter(
                (batch) =>
                  batch.segmentBaseOffset !== lastSegment ||
                  batch.position + batch.sizeBytes <= firstFlip,
              );
              const intactBytes = intact
                .filter((batch) => batch.segmentBaseOffset === lastSegment)
                .reduce((sum, batch) => sum + batch.sizeBytes, 0);

              const reopened = await Log.open(dir, options(segmentBytes));
              try {
                expect(reopened.openReport).toMatchObject({
                  cleanShutdown: false,
                  truncatedBytes: size - intactBytes,
                });
                expect(reopened.logEndOffset).toBe(
                  intact.length === 0 ? 0n : intact.at(-1)!.lastOffset + 1n,
                );
                await expectReadable(reopened, intact);
                await expectAppendsContinue(reopened, dir, segmentBytes);
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

  it('recovers a log whose process died without closing it', async () => {
    const log = await Log.open(dir, options(1_000));
    const written = await writeBatches(
      log,
      Array.from({ length: 12 }, (_, i) => ({ records: 1 + (i % 4), valueBytes: 40 + i * 7 })),
    );
    // No close: no checkpoint, no marker. Cut the last batch in half, as a torn write would.
    const last = written.at(-1)!;
    await truncate(
      join(dir, segmentFileName(last.segmentBaseOffset, '.log')),
      last.position + Math.floor(last.sizeBytes / 2),
    );
    const reopened = await Log.open(dir, options(1_000));
    try {
      expect(reopened.openReport).toMatchObject({
        cleanShutdown: false,
        truncatedBytes: Math.floor(last.sizeBytes / 2),
      });
      await expectReadable(reopened, written.slice(0, -1));
      await expectAppendsContinue(reopened, dir, 1_000);
    } finally {
      await reopened.close();
      await log.close().catch(() => undefined); // only now: its close writes into the folder
    }
  });

  it('deletes the segments after a corrupt one, counting their bytes as truncated', async () => {
    const log = await Log.open(dir, options(600));
    const written = await writeBatches(
      log,
      Array.from({ length: 15 }, (_, i) => ({ records: 2, valueBytes: 60 + i })),
    );
    const bases = log.segmentBaseOffsets;
    expect(bases.length).toBeGreaterThan(3);
    await closeAsIfCrashed(log, dir);
    // Tear the second segment's first batch: the segments after it would follow a hole.
    const victim = bases[1]!;
    const path = join(dir, segmentFileName(victim, '.log'));
    const bytes = await readFile(path);
    bytes[bytes.length > 30 ? 30 : 0]! ^= 0xff;
    await writeFile(path, bytes);
    const lost = written.filter((batch) => batch.segmentBaseOffset >= victim);
    const lostBytes = lost.reduce((sum, batch) => sum + batch.sizeBytes, 0);

    const reopened = await Log.open(dir, options(600));
    try {
      expect(reopened.openReport.truncatedBytes).toBe(lostBytes);
      expect(reopened.segmentBaseOffsets).toEqual([bases[0], victim]);
      expect(reopened.logEndOffset).toBe(victim);
      const files = (await readdir(dir)).filter((name) => /^\d{20}\./.test(name)).sort();
      expect(files).toEqual(
        [bases[0]!, victim].flatMap((base) =>
          ['.index', '.log', '.timeindex'].map((suffix) => segmentFileName(base, suffix)),
        ),
      );
      await expectReadable(
        reopened,
        written.filter((batch) => batch.segmentBaseOffset < victim),
      );
      await expectAppendsContinue(reopened, dir, 600);
    } finally {
      await reopened.close();
    }
  });
});

type IndexDamage = 'delete' | 'garbage' | 'torn-entry' | 'stale-last-entry' | 'empty';

/** Damages one index file the way a crash, a bad disk or an operator might. */
async function damage(path: string, how: IndexDamage, seed: number): Promise<void> {
  switch (how) {
    case 'delete':
      return rm(path, { force: true });
    case 'empty':
      return writeFile(path, Buffer.alloc(0));
    case 'garbage': {
      const garbage = Buffer.alloc(8 + (seed % 61));
      for (let i = 0; i < garbage.length; i++) garbage[i] = (seed * 31 + i * 17) & 0xff;
      return writeFile(path, garbage);
    }
    case 'torn-entry': {
      const handle = await open(path, 'a');
      await handle.write(Buffer.from([1, 2, 3]));
      return handle.close();
    }
    case 'stale-last-entry': {
      // The last offset-index entry names an offset lower than the batch it points at: it
      // passes every ordering check, but a lookup trusting it would serve the wrong batch.
      const bytes = await readFile(path);
      if (!path.endsWith('.index') || bytes.length < 16) return;
      const previous = bytes.readUInt32BE(bytes.length - 16);
      bytes.writeUInt32BE(previous + 1, bytes.length - 8);
      return writeFile(path, bytes);
    }
  }
}

describe('Log index rebuilding', () => {
  const damages: IndexDamage[] = ['delete', 'garbage', 'torn-entry', 'stale-last-entry', 'empty'];

  it.each(damages)(
    'rebuilds %s indexes after a clean shutdown and finds every offset',
    async (how) => {
      const log = await Log.open(dir, options(2_500));
      const written = await writeBatches(
        log,
        Array.from({ length: 40 }, (_, i) => ({
          records: 1 + (i % 3),
          valueBytes: 20 + (i % 7) * 9,
        })),
      );
      expect(log.segmentCount).toBeGreaterThan(1);
      await log.close();
      const indexFiles = (await readdir(dir)).filter((name) => /\.(index|timeindex)$/.test(name));
      for (const [i, name] of indexFiles.entries()) await damage(join(dir, name), how, i + 7);

      const reopened = await Log.open(dir, options(2_500));
      try {
        expect(reopened.openReport).toMatchObject({ cleanShutdown: true, truncatedBytes: 0 });
        expect(reopened.segmentBaseOffsets).toEqual(log.segmentBaseOffsets);
        await expectReadable(reopened, written);
        await expectAppendsContinue(reopened, dir, 2_500);
      } finally {
        await reopened.close();
      }
    },
  );

  it('rebuilds indexes of every scanned segment after a crash', async () => {
    const log = await Log.open(dir, options(2_500));
    const written = await writeBatches(
      log,
      Array.from({ length: 30 }, (_, i) => ({ records: 2, valueBytes: 30 + i })),
    );
    await closeAsIfCrashed(log, dir);
    const indexFiles = (await readdir(dir)).filter((name) => /\.(index|timeindex)$/.test(name));
    for (const [i, name] of indexFiles.entries()) {
      await damage(join(dir, name), i % 2 === 0 ? 'garbage' : 'delete', i);
    }
    const reopened = await Log.open(dir, options(2_500));
    try {
      expect(reopened.openReport).toMatchObject({ cleanShutdown: false, truncatedBytes: 0 });
      expect(reopened.openReport.recoveredSegments).toBe(reopened.segmentCount);
      await expectReadable(reopened, written);
    } finally {
      await reopened.close();
    }
  });
});
