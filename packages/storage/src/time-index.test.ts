import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '@weir/protocol';
import type { TimestampOffset } from './time-index.js';
import { TimeIndex } from './time-index.js';

const baseOffset = 500n;
let dir: string;
let path: string;
let runId = 0;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-time-index-'));
  path = join(dir, '00000000000000000500.timeindex');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function entriesOf(index: TimeIndex): TimestampOffset[] {
  return Array.from({ length: index.entries }, (_, n) => index.entryAt(n));
}

/** Per-batch (maxTimestamp, offset) as a segment sees them: offsets grow, timestamps wander. */
const batchesArbitrary = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 20 }), fc.bigInt({ min: -1n, max: 10_000n })), {
    maxLength: 80,
  })
  .map((batches) => {
    let offset = baseOffset - 1n;
    return batches.map(([gap, timestampMs]) => {
      offset += BigInt(gap);
      return { timestampMs, offset };
    });
  });

/** What Kafka keeps: an entry each time the max timestamp so far grows. */
function modelEntries(batches: TimestampOffset[]): TimestampOffset[] {
  const kept: TimestampOffset[] = [];
  for (const batch of batches) {
    if (batch.timestampMs > (kept.at(-1)?.timestampMs ?? -1n)) kept.push(batch);
  }
  return kept;
}

describe('TimeIndex', () => {
  it('writes 12-byte big-endian (timestamp, relativeOffset) entries', async () => {
    const index = await TimeIndex.open(path, baseOffset);
    expect(index.maybeAppend(0x0102030405060708n, 510n)).toBe(true);
    await index.flush();
    expect([...(await readFile(path))]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 10]);
    await index.close();
  });

  it('keeps only growing timestamps and looks up the last entry at or before a time', async () => {
    await fc.assert(
      fc.asyncProperty(
        batchesArbitrary,
        fc.array(fc.bigInt({ min: -5n, max: 11_000n }), { maxLength: 30 }),
        async (batches, targets) => {
          const file = join(dir, `${runId++}.timeindex`);
          const live = await TimeIndex.open(file, baseOffset);
          for (const batch of batches) live.maybeAppend(batch.timestampMs, batch.offset);
          const expected = modelEntries(batches);
          expect(entriesOf(live)).toEqual(expected);
          for (const target of [...targets, ...expected.map((entry) => entry.timestampMs)]) {
            expect(live.lookup(target)).toEqual(
              expected.findLast((entry) => entry.timestampMs <= target),
            );
          }
          await live.close();
          const rebuilt = await TimeIndex.rebuild(file, baseOffset, batches);
          expect(entriesOf(rebuilt)).toEqual(expected);
          expect(rebuilt.sanityCheck()).toBeUndefined();
          await rebuilt.delete();
        },
      ),
      { numRuns: 50 },
    );
  });

  it('truncateTo removes entries at or after the offset, on disk too', async () => {
    await fc.assert(
      fc.asyncProperty(
        batchesArbitrary,
        fc.bigInt({ min: 0n, max: 2500n }),
        async (batches, to) => {
          const file = join(dir, `${runId++}.timeindex`);
          const index = await TimeIndex.rebuild(file, baseOffset, batches);
          index.truncateTo(to);
          const expected = modelEntries(batches).filter((entry) => entry.offset < to);
          expect(entriesOf(index)).toEqual(expected);
          await index.close();
          const reopened = await TimeIndex.open(file, baseOffset);
          expect(entriesOf(reopened)).toEqual(expected);
          await reopened.delete();
        },
      ),
      { numRuns: 50 },
    );
  });

  it('ignores NO_TIMESTAMP and stale timestamps, and asserts offsets do not go back', async () => {
    const index = await TimeIndex.open(path, baseOffset);
    expect(index.maybeAppend(-1n, 500n)).toBe(false);
    expect(index.maybeAppend(100n, 505n)).toBe(true);
    expect(index.maybeAppend(100n, 506n)).toBe(false);
    expect(index.maybeAppend(99n, 507n)).toBe(false);
    expect(() => index.maybeAppend(200n, 504n)).toThrow(
      expect.objectContaining({ code: ErrorCode.ILLEGAL_STATE }) as Error,
    );
    expect(() => index.maybeAppend(200n, 499n)).toThrow(/outside time index/);
    expect(index.lastEntry()).toEqual({ timestampMs: 100n, offset: 505n });
    expect(index.lookup(99n)).toBeUndefined();
    await index.close();
  });

  it('is full at maxIndexSizeBytes', async () => {
    const index = await TimeIndex.open(path, baseOffset, { maxIndexSizeBytes: 12 });
    index.maybeAppend(1n, 500n);
    expect(index.isFull()).toBe(true);
    expect(() => index.maybeAppend(2n, 501n)).toThrow(/full/);
    await index.close();
  });

  describe('sanityCheck', () => {
    function entry(timestampMs: bigint, relativeOffset: number): Buffer {
      const bytes = Buffer.alloc(12);
      bytes.writeBigInt64BE(timestampMs);
      bytes.writeUInt32BE(relativeOffset, 8);
      return bytes;
    }

    async function reopenWith(...entries: Buffer[]): Promise<TimeIndex> {
      await writeFile(path, Buffer.concat(entries));
      return TimeIndex.open(path, baseOffset);
    }

    it('accepts a consistent file', async () => {
      const index = await reopenWith(entry(5n, 0), entry(6n, 0), entry(9n, 4));
      expect(index.sanityCheck()).toBeUndefined();
      expect(index.lookup(8n)).toEqual({ timestampMs: 6n, offset: 500n });
      await index.close();
    });

    it('reports a torn entry', async () => {
      const index = await reopenWith(entry(5n, 0), entry(6n, 1).subarray(0, 5));
      expect(index.sanityCheck()).toMatch(/5 bytes after its last whole entry/);
      await index.close();
    });

    it('reports timestamps that do not increase', async () => {
      const index = await reopenWith(entry(5n, 0), entry(5n, 1));
      expect(index.sanityCheck()).toMatch(/entry 1: timestamp 5 does not follow 5/);
      await index.close();
    });

    it('reports offsets that go back', async () => {
      const index = await reopenWith(entry(5n, 3), entry(6n, 2));
      expect(index.sanityCheck()).toMatch(/entry 1: offset 502 goes back before 503/);
      await index.close();
    });

    it('reports a negative timestamp', async () => {
      const index = await reopenWith(entry(-7n, 3));
      expect(index.sanityCheck()).toMatch(/negative/);
      await index.close();
    });
  });

  it('reset empties the index and the file', async () => {
    const index = await TimeIndex.rebuild(path, baseOffset, [{ timestampMs: 1n, offset: 501n }]);
    index.reset();
    await index.flush();
    expect((await stat(path)).size).toBe(0);
    await index.delete();
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });
});
