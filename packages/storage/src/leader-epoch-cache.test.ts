import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, isWeirError } from '@weir/protocol';
import type { EpochEndOffset, EpochEntry } from './leader-epoch-cache.js';
import { LEADER_EPOCH_CHECKPOINT_FILE_NAME, LeaderEpochCache } from './leader-epoch-cache.js';

let dir: string;
let path: string;
let runId = 0;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-epoch-cache-'));
  path = join(dir, LEADER_EPOCH_CHECKPOINT_FILE_NAME);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * The model: a plain array and each rule written the obvious way, straight from Kafka's
 * LeaderEpochFileCache.
 */
class Model {
  entries: EpochEntry[] = [];

  /** Returns false where the real cache must fail its assertion. */
  assign(epoch: number, startOffset: bigint): boolean {
    const latest = this.entries.at(-1);
    if (latest !== undefined && epoch < latest.epoch) return false;
    if (latest !== undefined && epoch === latest.epoch && startOffset >= latest.startOffset)
      return true;
    for (let last = this.entries.at(-1); last !== undefined; last = this.entries.at(-1)) {
      if (last.epoch < epoch && last.startOffset < startOffset) break;
      this.entries.pop();
    }
    this.entries.push({ epoch, startOffset });
    return true;
  }

  truncateFromEnd(endOffset: bigint): void {
    this.entries = this.entries.filter((entry) => entry.startOffset < endOffset);
  }

  truncateFromStart(startOffset: bigint): void {
    const removed = this.entries.filter((entry) => entry.startOffset <= startOffset);
    const last = removed.at(-1);
    if (last === undefined) return;
    this.entries = [{ epoch: last.epoch, startOffset }, ...this.entries.slice(removed.length)];
  }

  endOffsetFor(requested: number, logEndOffset: bigint): EpochEndOffset {
    const undefinedAnswer = { epoch: -1, endOffset: -1n };
    if (requested === -1 || this.entries.length === 0) return undefinedAnswer;
    if (requested === this.entries.at(-1)!.epoch)
      return { epoch: requested, endOffset: logEndOffset };
    const higher = this.entries.filter((entry) => entry.epoch > requested);
    const floor = this.entries.filter((entry) => entry.epoch <= requested);
    if (higher.length === 0) return undefinedAnswer;
    return { epoch: floor.at(-1)?.epoch ?? requested, endOffset: higher[0]!.startOffset };
  }

  epochForOffset(offset: bigint): number | undefined {
    let epoch: number | undefined;
    for (const entry of this.entries) if (entry.startOffset <= offset) epoch = entry.epoch;
    return epoch;
  }
}

type Command =
  | { kind: 'assign'; epochDelta: number; startOffset: bigint }
  | { kind: 'truncateFromEnd'; offset: bigint }
  | { kind: 'truncateFromStart'; offset: bigint }
  | { kind: 'clear' };

const offsetArbitrary = fc.bigInt({ min: 0n, max: 60n });
const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  // Mostly assigns, around the latest epoch: -1 exercises the assertion, 0 the no-op.
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('assign' as const),
      epochDelta: fc.integer({ min: -1, max: 3 }),
      startOffset: offsetArbitrary,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('truncateFromEnd' as const),
      offset: offsetArbitrary,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('truncateFromStart' as const),
      offset: offsetArbitrary,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
);

async function run(cache: LeaderEpochCache, model: Model, command: Command): Promise<void> {
  switch (command.kind) {
    case 'assign': {
      const epoch = Math.max(0, (model.entries.at(-1)?.epoch ?? 0) + command.epochDelta);
      if (model.assign(epoch, command.startOffset)) {
        await cache.assign(epoch, command.startOffset);
      } else {
        await expect(cache.assign(epoch, command.startOffset)).rejects.toSatisfy((error) =>
          isWeirError(error, ErrorCode.ILLEGAL_STATE),
        );
      }
      return;
    }
    case 'truncateFromEnd':
      model.truncateFromEnd(command.offset);
      return cache.truncateFromEnd(command.offset);
    case 'truncateFromStart':
      model.truncateFromStart(command.offset);
      return cache.truncateFromStart(command.offset);
    case 'clear':
      model.entries = [];
      return cache.clear();
  }
}

function expectSameAnswers(cache: LeaderEpochCache, model: Model): void {
  expect(cache.entries()).toEqual(model.entries);
  expect(cache.latestEpoch()).toBe(model.entries.at(-1)?.epoch);
  const maxEpoch = model.entries.at(-1)?.epoch ?? 0;
  for (let epoch = -1; epoch <= maxEpoch + 1; epoch++) {
    expect(cache.endOffsetFor(epoch, 99n)).toEqual(model.endOffsetFor(epoch, 99n));
  }
  for (let offset = 0n; offset <= 61n; offset++) {
    expect(cache.epochForOffset(offset)).toBe(model.epochForOffset(offset));
  }
}

describe('LeaderEpochCache', () => {
  it('behaves like the array model, and reloads what it wrote', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(commandArbitrary, { maxLength: 25 }), async (commands) => {
        const file = join(dir, `${runId++}-${LEADER_EPOCH_CHECKPOINT_FILE_NAME}`);
        const cache = await LeaderEpochCache.load(file);
        const model = new Model();
        for (const command of commands) {
          await run(cache, model, command);
          expectSameAnswers(cache, model);
        }
        expect((await LeaderEpochCache.load(file)).entries()).toEqual(model.entries);
      }),
      { numRuns: 100 },
    );
  });

  it('persists every change in the checkpoint format', async () => {
    const cache = await LeaderEpochCache.load(path);
    expect(cache.entries()).toEqual([]);
    await cache.assign(0, 0n);
    await cache.assign(0, 5n);
    await cache.assign(3, 10n);
    expect(await readFile(path, 'utf8')).toBe('0\n2\n0 0\n3 10\n');
    const reloaded = await LeaderEpochCache.load(path);
    expect(reloaded.entries()).toEqual([
      { epoch: 0, startOffset: 0n },
      { epoch: 3, startOffset: 10n },
    ]);
    await reloaded.truncateFromStart(4n);
    await reloaded.truncateFromEnd(10n);
    expect(await readFile(path, 'utf8')).toBe('0\n1\n0 4\n');
  });

  it('keeps the last write when changes are not awaited one by one', async () => {
    const cache = await LeaderEpochCache.load(path);
    await Promise.all([
      cache.assign(1, 0n),
      cache.assign(2, 10n),
      cache.assign(4, 20n),
      cache.truncateFromEnd(15n),
    ]);
    expect((await LeaderEpochCache.load(path)).entries()).toEqual([
      { epoch: 1, startOffset: 0n },
      { epoch: 2, startOffset: 10n },
    ]);
  });

  it('answers OffsetsForLeaderEpoch like Kafka', async () => {
    const cache = await LeaderEpochCache.load(path);
    await cache.assign(2, 10n);
    await cache.assign(4, 30n);
    await cache.assign(7, 50n);
    expect(cache.endOffsetFor(7, 80n)).toEqual({ epoch: 7, endOffset: 80n });
    expect(cache.endOffsetFor(5, 80n)).toEqual({ epoch: 4, endOffset: 50n });
    expect(cache.endOffsetFor(4, 80n)).toEqual({ epoch: 4, endOffset: 50n });
    expect(cache.endOffsetFor(3, 80n)).toEqual({ epoch: 2, endOffset: 30n });
    // Below the first epoch Kafka answers the requested epoch and the first start offset.
    expect(cache.endOffsetFor(1, 80n)).toEqual({ epoch: 1, endOffset: 10n });
    expect(cache.endOffsetFor(8, 80n)).toEqual({ epoch: -1, endOffset: -1n });
    expect(cache.endOffsetFor(-1, 80n)).toEqual({ epoch: -1, endOffset: -1n });
  });

  it('a new epoch starting at an offset an older epoch claimed replaces it', async () => {
    const cache = await LeaderEpochCache.load(path);
    await cache.assign(1, 0n);
    await cache.assign(2, 10n);
    await cache.assign(3, 10n);
    expect(cache.entries()).toEqual([
      { epoch: 1, startOffset: 0n },
      { epoch: 3, startOffset: 10n },
    ]);
    await cache.assign(4, 5n);
    expect(cache.entries()).toEqual([
      { epoch: 1, startOffset: 0n },
      { epoch: 4, startOffset: 5n },
    ]);
  });

  it('rejects an older epoch and invalid entries as assertion failures', async () => {
    const cache = await LeaderEpochCache.load(path);
    await cache.assign(5, 10n);
    await expect(cache.assign(4, 20n)).rejects.toThrow(
      /leader epoch 4 at offset 20 is older than the latest epoch 5/,
    );
    await expect(cache.assign(-1, 20n)).rejects.toThrow(/invalid leader epoch entry/);
    await expect(cache.assign(6, -1n)).rejects.toThrow(/invalid leader epoch entry/);
  });

  it.each([
    ['0\n2\n1 5\n1 9\n', 'does not follow'],
    ['0\n2\n1 5\n2 5\n', 'does not follow'],
    ['0\n1\n1 5 6\n', 'is not "<epoch> <startOffset>"'],
    ['0\n1\nx 5\n', 'invalid epoch'],
    ['0\n1\n2147483648 5\n', 'invalid epoch'],
    ['0\n1\n1 -5\n', 'start offset'],
    ['0\n2\n1 5\n', 'declares 2 entries'],
  ])('refuses to load %j', async (content, fragment) => {
    await writeFile(path, content);
    await expect(LeaderEpochCache.load(path)).rejects.toSatisfy(
      (error) =>
        isWeirError(error, ErrorCode.CORRUPT_STORE) &&
        error.message.includes(path) &&
        error.message.includes(fragment),
    );
  });
});
