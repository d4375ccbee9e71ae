// RaftStorage against real LevelDB stores in temporary directories: round trips, suffix
// replacement, compaction, snapshots from a leader, reopening, a model-based property test of
// random write sequences, the invariants every write is checked against, and detection of
// damaged stores (values edited behind the storage's back with classic-level itself).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { ErrorCode, isWeirError } from '@weir/protocol';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Entry, HardState, PersistedState, Snapshot } from '../core/types.js';
import { NO_NODE } from '../core/types.js';
import { RaftStorage } from './raft-storage.js';
import {
  HARD_STATE_KEY,
  SNAPSHOT_CHUNK_BYTES,
  SNAPSHOT_METADATA_KEY,
  encodeEntryValue,
  encodeHardStateValue,
  entryKey,
  snapshotChunkKey,
} from './record-codec.js';

// ---------------------------------------------------------------------------------------------
// Helpers

const dirs: string[] = [];
const stores = new Set<RaftStorage>();

afterEach(async () => {
  vi.restoreAllMocks();
  for (const store of stores) await store.close();
  stores.clear();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'weir-raft-storage-'));
  dirs.push(dir);
  return dir;
}

async function open(dir: string, nodeId = 1, clusterId?: string): Promise<RaftStorage> {
  const store = await RaftStorage.open(dir, { nodeId, clusterId });
  stores.add(store);
  return store;
}

async function reopen(store: RaftStorage): Promise<RaftStorage> {
  await store.close();
  stores.delete(store);
  return open(store.dir, store.nodeId);
}

const encoder = new TextEncoder();

function entries(from: number, through: number, term: number): Entry[] {
  const result: Entry[] = [];
  for (let index = from; index <= through; index++) {
    result.push({ index, term, type: 'normal', data: encoder.encode(`${index}@${term}`) });
  }
  return result;
}

function hs(term: number, vote: number, commit: number): HardState {
  return { term, vote, commit };
}

function snapshot(index: number, term: number, data = `state@${index}`): Snapshot {
  return { metadata: { index, term, voters: [1, 2, 3] }, data: encoder.encode(data) };
}

/**
 * Snapshots compared with their data as bytes: vitest's deep equality walks a typed array
 * element by element, seconds for a few MiB.
 */
function expectSnapshot(actual: Snapshot | undefined, expected: Snapshot | undefined): void {
  expect(actual?.metadata).toEqual(expected?.metadata);
  if (actual === undefined || expected === undefined) {
    expect(actual).toBe(expected);
    return;
  }
  expect(actual.data).toBeInstanceOf(Uint8Array);
  expect(Buffer.from(actual.data).equals(Buffer.from(expected.data))).toBe(true);
}

async function expectError(
  promise: Promise<unknown>,
  code: ErrorCode,
  message?: RegExp,
): Promise<void> {
  let thrown: unknown;
  try {
    await promise;
  } catch (error) {
    thrown = error;
  }
  expect(isWeirError(thrown, code), `expected ${ErrorCode[code]}, got ${String(thrown)}`).toBe(
    true,
  );
  if (message !== undefined) expect((thrown as Error).message).toMatch(message);
}

/** Edits the store with classic-level directly, the way a damaged disk or a bug would. */
async function tamper(
  dir: string,
  edit: (db: ClassicLevel<Uint8Array, Uint8Array>) => Promise<void>,
): Promise<void> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, {
    keyEncoding: 'view',
    valueEncoding: 'view',
  });
  await db.open();
  try {
    await edit(db);
  } finally {
    await db.close();
  }
}

/** A store holding hard state (3, 2, 4), snapshot at 2 (term 1), entries 3..6, then closed. */
async function closedStore(): Promise<string> {
  const dir = await tempDir();
  const store = await open(dir);
  await store.persist({
    hardState: hs(3, 2, 4),
    entries: [...entries(1, 2, 1), ...entries(3, 6, 3)],
  });
  await store.saveSnapshot(snapshot(2, 1));
  await store.close();
  stores.delete(store);
  return dir;
}

// ---------------------------------------------------------------------------------------------

describe('RaftStorage', () => {
  it('starts empty: term 0, no vote, commit 0, no snapshot, no entries', async () => {
    const store = await open(await tempDir());
    expect(await store.load()).toEqual({
      hardState: hs(0, NO_NODE, 0),
      snapshot: undefined,
      entries: [],
    });
    expect(store.firstIndex).toBe(1);
    expect(store.lastIndex).toBe(0);
    expect(await store.entries(1, 10)).toEqual([]);
  });

  it('round-trips hard state, entries and snapshot, across a reopen', async () => {
    const dir = await tempDir();
    let store = await open(dir);
    const log = [
      ...entries(1, 3, 1),
      { index: 4, term: 2, type: 'noop' as const, data: new Uint8Array() },
    ];
    await store.persist({ hardState: hs(2, 1, 3), entries: log });
    await store.saveSnapshot(snapshot(2, 1));
    const expected: PersistedState = {
      hardState: hs(2, 1, 3),
      snapshot: snapshot(2, 1),
      entries: log.slice(2),
    };
    expect(await store.load()).toEqual(expected);
    store = await reopen(store);
    expect(await store.load()).toEqual(expected);
    expect(store.hardState).toEqual(hs(2, 1, 3));
    expect([store.firstIndex, store.lastIndex]).toEqual([3, 4]);
    expect(await store.term(2)).toBe(1);
    expect(await store.term(4)).toBe(2);
    expect(await store.term(1)).toBeUndefined();
    expect(await store.term(5)).toBeUndefined();
    expect(await store.snapshot()).toEqual(snapshot(2, 1));
  });

  it('entries replace the stored suffix from their first index, in the same write', async () => {
    const store = await open(await tempDir());
    await store.persist({ hardState: hs(1, 1, 1), entries: entries(1, 5, 1) });
    await store.persist({ hardState: hs(2, 2, 1), entries: entries(3, 4, 2) });
    const expected = [...entries(1, 2, 1), ...entries(3, 4, 2)];
    expect((await store.load()).entries).toEqual(expected);
    expect(store.lastIndex).toBe(4);
    expect((await (await reopen(store)).load()).entries).toEqual(expected);
  });

  it('compaction deletes the entries a snapshot covers and keeps the later ones', async () => {
    const store = await open(await tempDir());
    await store.persist({ hardState: hs(1, 1, 4), entries: entries(1, 6, 1) });
    await store.saveSnapshot(snapshot(4, 1));
    expect((await store.load()).entries).toEqual(entries(5, 6, 1));
    expect(store.firstIndex).toBe(5);
    await expectError(store.entries(4, 7), ErrorCode.OFFSET_OUT_OF_RANGE, /compacted/);
    expect(await store.entries(5, 100)).toEqual(entries(5, 6, 1));
    // Saving again at the same index replaces the data only.
    await store.saveSnapshot(snapshot(4, 1, 'newer state'));
    expect(await store.snapshot()).toEqual(snapshot(4, 1, 'newer state'));
    expect(await store.entries(5, 7)).toEqual(entries(5, 6, 1));
  });

  it('entries() honours maxBytes but always returns one entry when there is one', async () => {
    const store = await open(await tempDir());
    const log = [1, 2, 3, 4].map((index) => ({
      index,
      term: 1,
      type: 'normal' as const,
      data: new Uint8Array(100),
    }));
    await store.persist({ hardState: hs(1, 1, 0), entries: log });
    expect(await store.entries(1, 5, 250)).toEqual(log.slice(0, 2));
    expect(await store.entries(2, 5, 10)).toEqual(log.slice(1, 2));
    expect(await store.entries(2, 3)).toEqual(log.slice(1, 2));
    expect(await store.entries(5, 9)).toEqual([]);
    await expectError(store.entries(6, 9), ErrorCode.OFFSET_OUT_OF_RANGE, /beyond the end/);
  });

  it("a leader's snapshot keeps the entries after it when the log holds its last entry (Raft Figure 13, step 6)", async () => {
    const store = await open(await tempDir());
    await store.persist({
      hardState: hs(2, 1, 1),
      entries: [...entries(1, 3, 1), ...entries(4, 6, 2)],
    });
    await store.persist({ hardState: hs(2, 1, 4), entries: [], snapshot: snapshot(4, 2) });
    expect(await store.load()).toEqual({
      hardState: hs(2, 1, 4),
      snapshot: snapshot(4, 2),
      entries: entries(5, 6, 2),
    });
  });

  it("a leader's snapshot discards the whole log when it does not hold its last entry (step 7)", async () => {
    const store = await open(await tempDir());
    await store.persist({
      hardState: hs(2, 1, 1),
      entries: [...entries(1, 2, 1), ...entries(3, 6, 2)],
    });
    // The leader's history has term 3 at index 4: entries 5 and 6 here followed another one.
    await store.persist({
      hardState: hs(3, NO_NODE, 4),
      entries: entries(5, 5, 3),
      snapshot: snapshot(4, 3),
    });
    expect(await store.load()).toEqual({
      hardState: hs(3, NO_NODE, 4),
      snapshot: snapshot(4, 3),
      entries: entries(5, 5, 3),
    });
    expect(store.lastIndex).toBe(5);
    // And a snapshot beyond the log's end replaces all of it.
    await store.persist({ hardState: hs(4, NO_NODE, 9), entries: [], snapshot: snapshot(9, 4) });
    expect(await (await reopen(store)).load()).toEqual({
      hardState: hs(4, NO_NODE, 9),
      snapshot: snapshot(9, 4),
      entries: [],
    });
  });

  it('stores large snapshots in chunks and deletes chunks a smaller snapshot no longer needs', async () => {
    const store = await open(await tempDir());
    const big = new Uint8Array(Buffer.alloc(2 * SNAPSHOT_CHUNK_BYTES + 123, 'weir raft snapshot '));
    await store.persist({ hardState: hs(1, 1, 3), entries: entries(1, 3, 1) });
    await store.saveSnapshot({ metadata: { index: 2, term: 1, voters: [1] }, data: big });
    let reopened = await reopen(store);
    const expected = { metadata: { index: 2, term: 1, voters: [1] }, data: big };
    expectSnapshot(await reopened.snapshot(), expected);
    expectSnapshot((await reopened.load()).snapshot, expected);
    await reopened.saveSnapshot(snapshot(3, 1, 'small'));
    reopened = await reopen(reopened); // a leftover chunk would fail this open
    expect((await reopened.load()).snapshot).toEqual(snapshot(3, 1, 'small'));
  });

  it('persists each Ready in ONE synced LevelDB batch, snapshot and suffix deletion included', async () => {
    const store = await open(await tempDir());
    await store.persist({ hardState: hs(1, 1, 0), entries: entries(1, 5, 1) });
    const batch = vi.spyOn(ClassicLevel.prototype, 'batch');
    await store.persist({ hardState: hs(2, 1, 2), entries: entries(2, 3, 2) });
    expect(batch).toHaveBeenCalledTimes(1);
    const [operations, options] = batch.mock.calls[0] as unknown as [
      { type: string; key: Uint8Array }[],
      { sync?: boolean },
    ];
    expect(options).toMatchObject({ sync: true });
    const described = operations.map((op) => `${op.type} ${Buffer.from(op.key).toString('hex')}`);
    expect(described.sort()).toEqual(
      [
        `del ${Buffer.from(entryKey(4)).toString('hex')}`,
        `del ${Buffer.from(entryKey(5)).toString('hex')}`,
        `put ${Buffer.from(entryKey(2)).toString('hex')}`,
        `put ${Buffer.from(entryKey(3)).toString('hex')}`,
        `put ${Buffer.from(HARD_STATE_KEY).toString('hex')}`,
      ].sort(),
    );
    batch.mockClear();
    await store.persist({
      hardState: hs(3, 1, 6),
      entries: entries(7, 7, 3),
      snapshot: snapshot(6, 3),
    });
    expect(batch).toHaveBeenCalledTimes(1);
    await store.persist({ entries: [] });
    expect(batch).toHaveBeenCalledTimes(1); // nothing to write, no write
  });

  it("a leader's snapshot far ahead deletes only the entries the store holds", async () => {
    const store = await open(await tempDir());
    await store.persist({ hardState: hs(1, 1, 1), entries: entries(1, 3, 1) });
    const batch = vi.spyOn(ClassicLevel.prototype, 'batch');
    await store.persist({
      hardState: hs(2, 1, 5_000_000),
      entries: [],
      snapshot: snapshot(5_000_000, 2),
    });
    const [operations] = batch.mock.calls[0] as unknown as [unknown[]];
    expect(operations).toHaveLength(3 + 1 + 1 + 1); // 3 entries, chunk, snapshot metadata, hard state
  });

  it('after a failed write, refuses further writes until reopened', async () => {
    const store = await open(await tempDir());
    await store.persist({ hardState: hs(1, 1, 0), entries: entries(1, 2, 1) });
    vi.spyOn(ClassicLevel.prototype, 'batch').mockRejectedValueOnce(new Error('EIO: i/o error'));
    await expectError(
      store.persist({ entries: entries(3, 3, 1) }),
      ErrorCode.KAFKA_STORAGE_ERROR,
      /EIO/,
    );
    // Whether the batch reached the disk is unknown: the in-memory view may be wrong.
    await expectError(
      store.persist({ entries: entries(3, 3, 1) }),
      ErrorCode.KAFKA_STORAGE_ERROR,
      /an earlier write failed/,
    );
    const reopened = await reopen(store);
    await reopened.persist({ entries: entries(3, 3, 1) });
    expect((await reopened.load()).entries).toEqual(entries(1, 3, 1));
  });

  it('runs concurrent writes one at a time, in call order', async () => {
    const store = await open(await tempDir());
    const writes = [
      store.persist({ hardState: hs(1, 1, 0), entries: entries(1, 3, 1) }),
      store.persist({ hardState: hs(1, 1, 3), entries: entries(4, 5, 1) }),
      store.saveSnapshot(snapshot(3, 1)),
      store.persist({ hardState: hs(2, 2, 3), entries: entries(5, 6, 2) }),
    ];
    await Promise.all(writes);
    expect(await store.load()).toEqual({
      hardState: hs(2, 2, 3),
      snapshot: snapshot(3, 1),
      entries: [...entries(4, 4, 1), ...entries(5, 6, 2)],
    });
  });

  describe('refuses writes that break Raft invariants (a caller bug), writing nothing', () => {
    async function storeWithLog(): Promise<RaftStorage> {
      const store = await open(await tempDir());
      await store.persist({
        hardState: hs(2, 1, 3),
        entries: [...entries(1, 2, 1), ...entries(3, 5, 2)],
      });
      return store;
    }

    const cases: ReadonlyArray<[string, (store: RaftStorage) => Promise<void>, RegExp]> = [
      ['a gap after the last entry', (s) => s.persist({ entries: entries(7, 8, 2) }), /gap/],
      [
        'non-consecutive entries',
        (s) => s.persist({ entries: [...entries(6, 6, 2), ...entries(8, 8, 2)] }),
        /consecutive/,
      ],
      [
        'a term below the entry before',
        (s) => s.persist({ entries: entries(6, 6, 1) }),
        /below the term 2/,
      ],
      [
        'replacing a committed entry',
        (s) => s.persist({ entries: entries(3, 4, 3), hardState: hs(3, 1, 3) }),
        /committed entry 3/,
      ],
      [
        'a term going back',
        (s) => s.persist({ entries: [], hardState: hs(1, 1, 3) }),
        /term would go back/,
      ],
      [
        'a commit going back',
        (s) => s.persist({ entries: [], hardState: hs(2, 1, 2) }),
        /commit index would go back/,
      ],
      [
        'a second vote in one term',
        (s) => s.persist({ entries: [], hardState: hs(2, 3, 3) }),
        /one vote per term/,
      ],
      [
        'a commit beyond the log',
        (s) => s.persist({ entries: [], hardState: hs(2, 1, 9) }),
        /beyond the last index 5/,
      ],
      [
        'entries of a term the hard state has not reached',
        (s) => s.persist({ entries: entries(6, 6, 3) }),
        /term 2 is below the term 3/,
      ],
      [
        'a snapshot beyond the commit index',
        (s) => s.saveSnapshot(snapshot(4, 2)),
        /after the commit index 3/,
      ],
      [
        'a snapshot whose term the log does not have',
        (s) => s.saveSnapshot(snapshot(3, 1)),
        /has term 2 there/,
      ],
      [
        'an older snapshot',
        async (s) => {
          await s.saveSnapshot(snapshot(3, 2));
          await s.saveSnapshot(snapshot(2, 1));
        },
        /older than/,
      ],
      [
        'entries inside the snapshot',
        async (s) => {
          await s.saveSnapshot(snapshot(3, 2));
          await s.persist({ entries: entries(3, 4, 2) });
        },
        /overlap the snapshot/,
      ],
    ];

    for (const [name, write, message] of cases) {
      it(name, async () => {
        const store = await storeWithLog();
        const before = await store.load();
        await expectError(write(store), ErrorCode.ILLEGAL_STATE, message);
        const after = await store.load();
        if (after.snapshot === undefined) expect(after).toEqual(before);
        // The store still takes valid writes: a refused write is not a storage failure.
        await store.persist({ hardState: hs(4, NO_NODE, 3), entries: entries(6, 6, 4) });
        expect((await (await reopen(store)).load()).entries.at(-1)).toEqual(entries(6, 6, 4)[0]);
      });
    }
  });

  describe('identity', () => {
    it('refuses a store written by another node id', async () => {
      const dir = await tempDir();
      await (await open(dir, 1)).close();
      await expectError(
        open(dir, 2),
        ErrorCode.INCONSISTENT_VOTER_SET,
        /belongs to node 1, but this node's id is 2/,
      );
    });

    it('records the cluster id and refuses another one', async () => {
      const dir = await tempDir();
      const store = await open(dir, 1);
      expect(store.clusterId).toBe('');
      await store.close();
      expect((await open(dir, 1, 'alpha')).clusterId).toBe('alpha'); // recorded on first mention
      for (const s of stores) await s.close();
      await expectError(open(dir, 1, 'beta'), ErrorCode.INCONSISTENT_CLUSTER_ID, /"alpha".*"beta"/);
      expect((await open(dir, 1)).clusterId).toBe('alpha');
    });

    it('refuses a second open of the same directory', async () => {
      const dir = await tempDir();
      await open(dir);
      await expectError(RaftStorage.open(dir, { nodeId: 1 }), ErrorCode.LOG_DIRECTORY_LOCKED);
    });

    it('refuses use after close', async () => {
      const store = await open(await tempDir());
      await store.close();
      await expectError(store.load(), ErrorCode.ILLEGAL_STATE, /closed/);
      await expectError(store.persist({ entries: entries(1, 1, 0) }), ErrorCode.ILLEGAL_STATE);
    });
  });

  describe('detects a damaged store on open and refuses it', () => {
    async function expectCorruptOnOpen(dir: string, message: RegExp): Promise<void> {
      await expectError(RaftStorage.open(dir, { nodeId: 1 }), ErrorCode.CORRUPT_STORE, message);
    }

    it('starts from a store that opens cleanly', async () => {
      const store = await open(await closedStore());
      expect(await store.load()).toEqual({
        hardState: hs(3, 2, 4),
        snapshot: snapshot(2, 1),
        entries: entries(3, 6, 3),
      });
    });

    it('a flipped byte in an entry', async () => {
      const dir = await closedStore();
      await tamper(dir, async (db) => {
        const value = (await db.get(entryKey(4))) as Uint8Array;
        const damaged = Uint8Array.from(value);
        damaged[damaged.length - 1] = (damaged[damaged.length - 1] as number) ^ 0x10;
        await db.put(entryKey(4), damaged);
      });
      await expectCorruptOnOpen(dir, new RegExp(`${dir}.*entry 4: CRC-32C mismatch`));
    });

    it('a value cut short (a half-written record)', async () => {
      const dir = await closedStore();
      await tamper(dir, async (db) => {
        const value = (await db.get(HARD_STATE_KEY)) as Uint8Array;
        await db.put(HARD_STATE_KEY, value.subarray(0, 3));
      });
      await expectCorruptOnOpen(dir, /hard state record: value of 3 bytes/);
    });

    it('a gap in the entries', async () => {
      const dir = await closedStore();
      await tamper(dir, (db) => db.del(entryKey(4)));
      await expectCorruptOnOpen(dir, /entry 5: found after entry 3: entries 4..4 are missing/);
    });

    it('a missing first entry after the snapshot', async () => {
      const dir = await closedStore();
      await tamper(dir, (db) => db.del(entryKey(3)));
      await expectCorruptOnOpen(dir, /entries 3..3 are missing/);
    });

    it('an entry at or below the snapshot index that compaction should have deleted', async () => {
      const dir = await closedStore();
      const stale = entries(2, 2, 1)[0] as Entry;
      await tamper(dir, (db) => db.put(entryKey(2), encodeEntryValue(entryKey(2), stale)));
      await expectCorruptOnOpen(dir, /entry 2: at or below the snapshot's index 2/);
    });

    it('a value copied under another key', async () => {
      const dir = await closedStore();
      await tamper(dir, async (db) =>
        db.put(entryKey(7), (await db.get(entryKey(6))) as Uint8Array),
      );
      await expectCorruptOnOpen(dir, /entry 7: CRC-32C mismatch/);
    });

    it('a commit index beyond the last entry', async () => {
      const dir = await closedStore();
      await tamper(dir, (db) => db.put(HARD_STATE_KEY, encodeHardStateValue(hs(3, 2, 7))));
      await expectCorruptOnOpen(dir, /commit index 7 is beyond the last index 6/);
    });

    it('a lost tail of entries the quorum committed', async () => {
      const dir = await closedStore();
      await tamper(dir, (db) =>
        db.batch([4, 5, 6].map((index) => ({ type: 'del' as const, key: entryKey(index) }))),
      );
      await expectCorruptOnOpen(dir, /commit index 4 is beyond the last index 3/);
    });

    it('entries but no hard state (their term was never recorded)', async () => {
      const dir = await closedStore();
      await tamper(dir, (db) => db.del(HARD_STATE_KEY));
      await expectCorruptOnOpen(dir, /hard state term 0 is below the term 3/);
    });

    it('a missing snapshot chunk or metadata record', async () => {
      const dir = await closedStore();
      await tamper(dir, (db) => db.del(snapshotChunkKey(0)));
      await expectCorruptOnOpen(dir, /snapshot chunk 0: missing/);
      const other = await closedStore();
      await tamper(other, (db) => db.del(SNAPSHOT_METADATA_KEY));
      await expectCorruptOnOpen(other, /snapshot chunk 0: stored without snapshot metadata/);
    });

    it('a key the store never writes, and a store without its meta record', async () => {
      const dir = await closedStore();
      await tamper(dir, (db) => db.put(Uint8Array.of(0x42), Uint8Array.of(1)));
      await expectCorruptOnOpen(dir, /key 0x42: not a key this store writes/);
      const other = await closedStore();
      await tamper(other, (db) => db.del(Uint8Array.of(0x01)));
      await expectCorruptOnOpen(other, /meta record: missing, but the store holds records/);
    });

    it('accepts a commit index below the snapshot index (the snapshot holds only committed state)', async () => {
      const dir = await closedStore();
      await tamper(dir, (db) => db.put(HARD_STATE_KEY, encodeHardStateValue(hs(3, 2, 1))));
      const store = await open(dir);
      expect((await store.load()).hardState).toEqual(hs(3, 2, 1));
    });

    it('load() verifies again what it reads after writes', async () => {
      const dir = await closedStore();
      const store = await open(dir);
      await store.persist({ hardState: hs(3, 2, 5), entries: [] });
      // Damage under a running store (another process cannot, the directory is locked; this
      // stands in for the disk).
      const db = (store as unknown as { db: ClassicLevel<Uint8Array, Uint8Array> }).db;
      await db.put(entryKey(5), Uint8Array.of(1, 2, 3, 4, 5, 6));
      await expectError(store.load(), ErrorCode.CORRUPT_STORE, /entry 5: CRC-32C mismatch/);
      await expectError(store.entries(3, 7), ErrorCode.CORRUPT_STORE, /entry 5/);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Model-based property test: random sequences of appends (with suffix replacement), hard-state
// updates, application snapshots, leader snapshots (matching, conflicting, ahead) and reopens,
// each checked against an in-memory model of what must be on disk.

interface Model {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: Entry[];
}

type Op =
  | {
      kind: 'append';
      back: number;
      count: number;
      termBump: number;
      vote: number;
      commit: number;
      withHardState: boolean;
    }
  | { kind: 'commit'; commit: number }
  | { kind: 'compact'; at: number; dataBytes: number }
  | {
      kind: 'install';
      mode: 'match' | 'conflict' | 'ahead';
      at: number;
      termBump: number;
      follow: number;
      dataBytes: number;
    }
  | { kind: 'reopen' };

const fraction = fc.integer({ min: 0, max: 1000 }).map((n) => n / 1000);
/** Commit advances are mostly small, so logs keep an uncommitted tail to replace or discard. */
const commitFraction = fraction.map((f) => f * f * f);
const dataBytes = fc.oneof(
  { weight: 20, arbitrary: fc.integer({ min: 0, max: 40 }) },
  { weight: 1, arbitrary: fc.constant(SNAPSHOT_CHUNK_BYTES + 17) },
);

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      back: fraction,
      count: fc.integer({ min: 0, max: 4 }),
      termBump: fc.integer({ min: 0, max: 2 }),
      vote: fc.integer({ min: -1, max: 5 }),
      commit: commitFraction,
      withHardState: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('commit' as const), commit: commitFraction }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('compact' as const), at: fraction, dataBytes }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('install' as const),
      mode: fc.constantFrom('match' as const, 'conflict' as const, 'ahead' as const),
      at: fraction,
      termBump: fc.integer({ min: 0, max: 2 }),
      follow: fc.integer({ min: 0, max: 3 }),
      dataBytes,
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

function lastOf(model: Model): { index: number; term: number } {
  const last = model.entries.at(-1);
  if (last !== undefined) return { index: last.index, term: last.term };
  return { index: model.snapshot?.metadata.index ?? 0, term: model.snapshot?.metadata.term ?? 0 };
}

function termOf(model: Model, index: number): number | undefined {
  if (index === model.snapshot?.metadata.index) return model.snapshot.metadata.term;
  return model.entries.find((entry) => entry.index === index)?.term;
}

/** An integer in [low, high] picked by a fraction in [0, 1]. */
function pick(low: number, high: number, at: number): number {
  return low + Math.round(at * (high - low));
}

function modelSnapshot(index: number, term: number, size: number): Snapshot {
  const data = new Uint8Array(Buffer.alloc(size, `snapshot at ${index}, `));
  return { metadata: { index, term, voters: [1, 2, 3].slice(0, 1 + (index % 3)) }, data };
}

/** Applies `op` to the store and the model alike (ops impossible in this state do nothing). */
async function step(store: RaftStorage, model: Model, op: Op): Promise<RaftStorage> {
  const snapshotIndex = model.snapshot?.metadata.index ?? 0;
  const last = lastOf(model);
  const { hardState } = model;
  switch (op.kind) {
    case 'append': {
      // Never replace a committed entry: the earliest replaceable index is after the commit.
      const back =
        op.count === 0
          ? 0
          : pick(0, last.index - Math.max(hardState.commit, snapshotIndex), op.back);
      const first = last.index + 1 - back;
      const term = hardState.term + op.termBump;
      const added = entries(first, first + op.count - 1, term);
      const newLast = op.count > 0 ? first + op.count - 1 : last.index;
      const needsHardState = op.withHardState || term > hardState.term;
      if (!needsHardState && added.length === 0) return store;
      const nextHardState = needsHardState
        ? hs(
            term,
            term > hardState.term ? op.vote : hardState.vote,
            pick(hardState.commit, newLast, op.commit),
          )
        : undefined;
      await store.persist({ hardState: nextHardState, entries: added });
      model.entries = [...model.entries.filter((entry) => entry.index < first), ...added];
      if (nextHardState !== undefined) model.hardState = nextHardState;
      return store;
    }
    case 'commit': {
      const next = hs(
        hardState.term,
        hardState.vote,
        pick(hardState.commit, last.index, op.commit),
      );
      await store.persist({ hardState: next, entries: [] });
      model.hardState = next;
      return store;
    }
    case 'compact': {
      if (
        hardState.commit < snapshotIndex ||
        (hardState.commit === snapshotIndex && snapshotIndex === 0)
      ) {
        return store;
      }
      const index = pick(Math.max(snapshotIndex, 1), hardState.commit, op.at);
      const snap = modelSnapshot(index, termOf(model, index) as number, op.dataBytes);
      await store.saveSnapshot(snap);
      model.snapshot = snap;
      model.entries = model.entries.filter((entry) => entry.index > index);
      return store;
    }
    case 'install': {
      let index: number;
      let term: number;
      if (op.mode === 'match') {
        if (last.index <= snapshotIndex) return store;
        index = pick(snapshotIndex + 1, last.index, op.at);
        term = termOf(model, index) as number;
      } else if (op.mode === 'conflict') {
        const low = Math.max(hardState.commit, snapshotIndex) + 1;
        if (last.index < low) return store;
        index = pick(low, last.index, op.at);
        term = Math.max(hardState.term, (termOf(model, index) as number) + 1);
      } else {
        index = last.index + 1 + Math.round(op.at * 5);
        term = Math.max(hardState.term, last.term) + op.termBump;
      }
      const newTerm = Math.max(hardState.term, term) + op.termBump;
      const next = hs(
        newTerm,
        newTerm === hardState.term ? hardState.vote : NO_NODE,
        Math.max(hardState.commit, index),
      );
      const keep = termOf(model, index) === term;
      // Entries after the snapshot may not replace committed ones.
      const follow = next.commit > index && keep ? 0 : op.follow;
      const added = entries(index + 1, index + follow, newTerm);
      const snap = modelSnapshot(index, term, op.dataBytes);
      await store.persist({ hardState: next, entries: added, snapshot: snap });
      // Entries after a snapshot that matches the log stay, unless new entries replace them.
      const kept = keep && follow === 0 ? model.entries.filter((entry) => entry.index > index) : [];
      model.entries = [...kept, ...added];
      model.snapshot = snap;
      model.hardState = next;
      return store;
    }
    case 'reopen':
      return reopen(store);
  }
}

async function checkAgainst(store: RaftStorage, model: Model): Promise<void> {
  const loaded = await store.load();
  expect(loaded.hardState).toEqual(model.hardState);
  expectSnapshot(loaded.snapshot, model.snapshot);
  expect(loaded.entries).toEqual(model.entries);
  const last = lastOf(model);
  expect(store.lastIndex).toBe(last.index);
  expect(store.firstIndex).toBe((model.snapshot?.metadata.index ?? 0) + 1);
  expect(await store.entries(store.firstIndex, last.index + 1)).toEqual(model.entries);
  expect(await store.term(last.index)).toBe(last.index === 0 ? undefined : last.term);
}

describe('RaftStorage model', () => {
  it('matches an in-memory model over random write and reopen sequences', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArbitrary, { minLength: 1, maxLength: 40 }), async (ops) => {
        let store = await open(await tempDir());
        const model: Model = { hardState: hs(0, NO_NODE, 0), snapshot: undefined, entries: [] };
        for (const op of ops) {
          store = await step(store, model, op);
          await checkAgainst(store, model);
        }
        await checkAgainst(await reopen(store), model);
      }),
      { numRuns: 100 },
    );
  }, 120_000);
});
