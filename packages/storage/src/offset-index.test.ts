import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, isWeirError } from '@weir/protocol';
import type { OffsetPosition } from './offset-index.js';
import { OffsetIndex } from './offset-index.js';

const baseOffset = 1000n;
let dir: string;
let path: string;
let runId = 0;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-offset-index-'));
  path = join(dir, '00000000000000001000.index');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function entriesOf(index: OffsetIndex): OffsetPosition[] {
  return Array.from({ length: index.entries }, (_, n) => index.entryAt(n));
}

/** Strictly increasing (offset, position) pairs from positive gaps. */
const entriesArbitrary = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 5000 })), {
    maxLength: 100,
  })
  .map((gaps) => {
    let offset = baseOffset - 1n;
    let position = -1;
    return gaps.map(([offsetGap, positionGap]) => {
      offset += BigInt(offsetGap);
      position += positionGap;
      return { offset, position };
    });
  });

function modelLookup(entries: OffsetPosition[], target: bigint): OffsetPosition {
  return entries.findLast((entry) => entry.offset <= target) ?? { offset: baseOffset, position: 0 };
}

async function yieldTo(microtasks: number): Promise<void> {
  if (microtasks === 4) return new Promise((resolve) => setImmediate(resolve));
  for (let n = 0; n < microtasks; n++) await Promise.resolve();
}

describe('OffsetIndex', () => {
  it('creates an empty file and answers lookups with the segment start', async () => {
    const index = await OffsetIndex.open(path, baseOffset);
    expect(index.entries).toBe(0);
    expect(index.lastEntry()).toBeUndefined();
    expect(index.lookup(5000n)).toEqual({ offset: baseOffset, position: 0 });
    expect(index.sanityCheck(0)).toBeUndefined();
    await index.close();
    expect((await stat(path)).size).toBe(0);
  });

  it('writes 8-byte big-endian (relativeOffset, position) entries', async () => {
    const index = await OffsetIndex.open(path, baseOffset);
    index.append(1000n, 0);
    index.append(1258n, 0x01020304);
    await index.flush();
    expect([...(await readFile(path))]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 2, 3, 4]);
    await index.close();
  });

  it('finds the largest entry at or below the target, like a linear scan', async () => {
    await fc.assert(
      fc.asyncProperty(
        entriesArbitrary,
        fc.array(fc.bigInt({ min: 0n, max: baseOffset + 6000n }), { maxLength: 30 }),
        async (entries, targets) => {
          const index = await OffsetIndex.rebuild(
            join(dir, `${runId++}.index`),
            baseOffset,
            entries,
          );
          for (const target of [...targets, ...entries.map((entry) => entry.offset)]) {
            expect(index.lookup(target)).toEqual(modelLookup(entries, target));
          }
          expect(index.lastEntry()).toEqual(entries.at(-1));
          await index.delete();
        },
      ),
      { numRuns: 50 },
    );
  });

  it('keeps file and memory equal through appends, truncations and overlapping flushes', async () => {
    type Op =
      | { kind: 'append'; offsetGap: number; positionGap: number }
      | { kind: 'truncate'; back: number }
      | { kind: 'flush' }
      | { kind: 'yield'; microtasks: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant('append' as const),
        offsetGap: fc.integer({ min: 1, max: 10 }),
        positionGap: fc.integer({ min: 1, max: 100 }),
      }),
      fc.record({ kind: fc.constant('truncate' as const), back: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ kind: fc.constant('flush' as const) }),
      // Lets a pending flush get part-way (0-3 microtasks: into its write; 4: a whole turn).
      fc.record({
        kind: fc.constant('yield' as const),
        microtasks: fc.integer({ min: 0, max: 4 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const file = join(dir, `${runId++}.index`);
        const index = await OffsetIndex.open(file, baseOffset);
        let model: OffsetPosition[] = [];
        const flushes: Promise<void>[] = [];
        for (const step of ops) {
          const last = model.at(-1) ?? { offset: baseOffset - 1n, position: -1 };
          if (step.kind === 'append') {
            const entry = {
              offset: last.offset + BigInt(step.offsetGap),
              position: last.position + step.positionGap,
            };
            index.append(entry.offset, entry.position);
            model.push(entry);
          } else if (step.kind === 'truncate') {
            const to = last.offset + 1n - BigInt(step.back);
            index.truncateTo(to);
            model = model.filter((entry) => entry.offset < to);
          } else if (step.kind === 'flush') {
            // Not awaited: the next operations run while this flush is writing.
            flushes.push(index.flush());
          } else {
            await yieldTo(step.microtasks);
          }
          expect(entriesOf(index)).toEqual(model);
        }
        await Promise.all(flushes);
        await index.flush();
        expect((await stat(file)).size).toBe(model.length * 8);
        await index.close();
        const reopened = await OffsetIndex.open(file, baseOffset);
        expect(entriesOf(reopened)).toEqual(model);
        expect(reopened.sanityCheck(Number.MAX_SAFE_INTEGER)).toBeUndefined();
        await reopened.delete();
      }),
      { numRuns: 50 },
    );
  });

  it('truncateTo removes entries at or after the offset', async () => {
    const index = await OffsetIndex.rebuild(path, baseOffset, [
      { offset: 1000n, position: 0 },
      { offset: 1010n, position: 100 },
      { offset: 1020n, position: 200 },
    ]);
    index.truncateTo(1011n);
    expect(entriesOf(index).map((entry) => entry.offset)).toEqual([1000n, 1010n]);
    index.truncateTo(1010n);
    expect(entriesOf(index).map((entry) => entry.offset)).toEqual([1000n]);
    index.truncateTo(5n);
    expect(index.entries).toBe(0);
    await index.close();
    expect((await stat(path)).size).toBe(0);
  });

  it('asserts that appends move forward and fit the segment', async () => {
    const index = await OffsetIndex.open(path, baseOffset);
    index.append(1005n, 10);
    const illegal = (action: () => void): void => {
      expect(action).toThrow(expect.objectContaining({ code: ErrorCode.ILLEGAL_STATE }) as Error);
    };
    illegal(() => index.append(1005n, 20));
    illegal(() => index.append(1006n, 10));
    illegal(() => index.append(999n, 20));
    illegal(() => index.append(baseOffset + 0x1_0000_0000n, 20));
    illegal(() => index.append(1007n, 2 ** 32));
    expect(index.canAppendOffset(baseOffset + 0xffff_ffffn)).toBe(true);
    expect(index.canAppendOffset(baseOffset + 0x1_0000_0000n)).toBe(false);
    expect(index.entries).toBe(1);
    await index.close();
  });

  it('is full at maxIndexSizeBytes', async () => {
    const index = await OffsetIndex.open(path, baseOffset, { maxIndexSizeBytes: 20 });
    index.append(1000n, 0);
    expect(index.isFull()).toBe(false);
    index.append(1001n, 1);
    expect(index.isFull()).toBe(true);
    expect(() => index.append(1002n, 2)).toThrow(/full/);
    await index.close();
  });

  describe('sanityCheck', () => {
    async function reopenWith(bytes: number[]): Promise<OffsetIndex> {
      await writeFile(path, Buffer.from(bytes));
      return OffsetIndex.open(path, baseOffset);
    }

    it('accepts a consistent file', async () => {
      const index = await reopenWith([0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 9]);
      expect(index.sanityCheck(10)).toBeUndefined();
      await index.close();
    });

    it('reports a torn entry', async () => {
      const index = await reopenWith([0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0]);
      expect(index.sanityCheck(10)).toMatch(/3 bytes after its last whole entry/);
      await index.close();
    });

    it('reports offsets that do not increase', async () => {
      const index = await reopenWith([0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 9]);
      expect(index.sanityCheck(10)).toMatch(/entry 1: offset 1002 does not follow 1002/);
      await index.close();
    });

    it('reports positions that do not increase', async () => {
      const index = await reopenWith([0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 5]);
      expect(index.sanityCheck(10)).toMatch(/entry 1: position 5 does not follow 5/);
      await index.close();
    });

    it('reports a position past the end of the log', async () => {
      const index = await reopenWith([0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 9]);
      expect(index.sanityCheck(9)).toMatch(/position 9 is not inside the 9-byte log/);
      await index.close();
    });

    it('lets the caller rebuild a torn file in place', async () => {
      const torn = await reopenWith([0, 0, 0, 1, 0, 0, 0, 5, 7]);
      expect(torn.sanityCheck(100)).toBeDefined();
      await torn.close();
      const rebuilt = await OffsetIndex.rebuild(path, baseOffset, [{ offset: 1001n, position: 5 }]);
      expect(rebuilt.sanityCheck(100)).toBeUndefined();
      rebuilt.append(1002n, 50);
      await rebuilt.close();
      expect((await stat(path)).size).toBe(16);
    });
  });

  it('close flushes pending entries; delete removes the file', async () => {
    const index = await OffsetIndex.open(path, baseOffset);
    index.append(1001n, 7);
    await index.close();
    const reopened = await OffsetIndex.open(path, baseOffset);
    expect(reopened.lastEntry()).toEqual({ offset: 1001n, position: 7 });
    await reopened.delete();
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });

  it('reports an unopenable file as KAFKA_STORAGE_ERROR', async () => {
    await expect(OffsetIndex.open(join(dir, 'missing', 'x.index'), 0n)).rejects.toSatisfy((error) =>
      isWeirError(error, ErrorCode.KAFKA_STORAGE_ERROR),
    );
  });

  it('reopens a file whose tail was cut by a crash and repairs it on flush', async () => {
    const index = await OffsetIndex.rebuild(path, baseOffset, [
      { offset: 1001n, position: 5 },
      { offset: 1002n, position: 9 },
    ]);
    await index.close();
    await truncate(path, 12);
    const reopened = await OffsetIndex.open(path, baseOffset);
    expect(reopened.entries).toBe(1);
    expect(reopened.sanityCheck(100)).toMatch(/4 bytes/);
    reopened.append(1003n, 20);
    await reopened.flush();
    expect((await stat(path)).size).toBe(16);
    expect(reopened.sanityCheck(100)).toBeUndefined();
    await reopened.close();
  });
});
