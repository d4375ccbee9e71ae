// Durable Raft storage on LevelDB (classic-level): the hard state, the log entries and the
// latest snapshot of one node, the way KRaft keeps its `__cluster_metadata` log, its
// `quorum-state` file and its snapshots. The core hands over a Ready; the driver calls
// persist() with it and sends messages only after the returned promise resolves, so every
// vote and every acknowledged entry is on disk before anyone hears of it (Raft §5.1, Figure 2).
//
// Rules (docs/raft-storage.md has the full story):
// - A write is ONE LevelDB batch with `sync: true`: whatever a persist() or saveSnapshot()
//   changes reaches the disk together or not at all, and is fsynced before the promise
//   resolves.
// - Writes run one at a time in call order; every write is checked against Raft's invariants
//   before it is made (a violation is a bug in the caller: ILLEGAL_STATE, nothing written).
// - Opening and load() verify everything stored: each value's CRC-32C, contiguous indexes, no
//   entry left below the snapshot, terms that never decrease, a commit index that the log
//   holds. A store that fails is refused with CORRUPT_STORE naming the record, never used.

import { mkdir } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import { ErrorCode, WeirError, assert, crc32c, isWeirError } from '@weir/protocol';
import type { Entry, HardState, NodeId, PersistedState, Snapshot } from '../core/types.js';
import { NO_NODE } from '../core/types.js';
import {
  ENTRY_KEYS_END,
  HARD_STATE_KEY,
  KeyPrefix,
  MAX_CLUSTER_ID_BYTES,
  META_KEY,
  SNAPSHOT_CHUNK_BYTES,
  SNAPSHOT_METADATA_KEY,
  type StoreMeta,
  type StoredSnapshotMetadata,
  corrupt,
  decodeEntryValue,
  decodeHardStateValue,
  decodeMetaValue,
  decodeSnapshotChunkKey,
  decodeSnapshotChunkValue,
  decodeSnapshotMetadataValue,
  encodeEntryValue,
  encodeHardStateValue,
  encodeMetaValue,
  encodeSnapshotChunkValue,
  encodeSnapshotMetadataValue,
  entryKey,
  snapshotChunkCount,
  snapshotChunkKey,
} from './record-codec.js';

export interface RaftStorageOptions {
  /** This node's id. A store written by another node is refused (INCONSISTENT_VOTER_SET). */
  readonly nodeId: NodeId;
  /**
   * The quorum's cluster id. Recorded when the store is created (or first given), then checked
   * on every open: a store of another cluster is refused (INCONSISTENT_CLUSTER_ID).
   */
  readonly clusterId?: string;
}

/** What persist() writes: the persistence part of a Ready (a Ready itself can be passed). */
export interface PersistRequest {
  readonly hardState?: HardState | undefined;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot | undefined;
}

const INITIAL_HARD_STATE: HardState = { term: 0, vote: NO_NODE, commit: 0 };

type Db = ClassicLevel<Uint8Array, Uint8Array>;

type BatchOperation =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: Uint8Array };

/** What is on disk, summarized; kept in step with every successful write. */
interface LogState {
  readonly hardState: HardState;
  readonly snapshot: StoredSnapshotMetadata | undefined;
  /** The last entry's index, or the snapshot's index when no entry follows it (0: empty). */
  readonly lastIndex: number;
  readonly lastTerm: number;
}

export class RaftStorage {
  private state: LogState;
  /** What open() read and verified, handed out by the first load() unless a write came first. */
  private loadedAtOpen: PersistedState | undefined;
  /** The last queued write; writes run one after another. */
  private writes: Promise<unknown> = Promise.resolve();
  /** Set when a write failed: what is on disk is no longer known, so no write may follow. */
  private failure: WeirError | undefined;
  private closed = false;

  private constructor(
    private readonly db: Db,
    /** The store's directory. */
    readonly dir: string,
    readonly nodeId: NodeId,
    /** The cluster id the store belongs to; empty when none was ever given. */
    readonly clusterId: string,
    scanned: ScannedStore,
  ) {
    this.state = scanned.state;
    this.loadedAtOpen = scanned.persisted;
  }

  /**
   * Opens the store in `dir`, creating it when missing, and verifies all of it. Throws
   * LOG_DIRECTORY_LOCKED when another process has it open, INCONSISTENT_VOTER_SET or
   * INCONSISTENT_CLUSTER_ID when it belongs to another node or cluster, CORRUPT_STORE when
   * anything stored fails verification.
   */
  static async open(dir: string, options: RaftStorageOptions): Promise<RaftStorage> {
    const { nodeId, clusterId = '' } = options;
    assert(
      Number.isInteger(nodeId) && nodeId >= 0 && nodeId < 2 ** 31,
      () => `node id ${nodeId} is not an int32 node id ≥ 0`,
    );
    if (Buffer.byteLength(clusterId) > MAX_CLUSTER_ID_BYTES) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `cluster id ${JSON.stringify(clusterId)} is longer than ${MAX_CLUSTER_ID_BYTES} bytes`,
      );
    }
    try {
      await mkdir(dir, { recursive: true });
    } catch (error) {
      throw storageError(`create ${dir}`, error);
    }
    const db: Db = new ClassicLevel<Uint8Array, Uint8Array>(dir, {
      keyEncoding: 'view',
      valueEncoding: 'view',
    });
    try {
      await db.open();
    } catch (error) {
      throw openError(dir, error);
    }
    try {
      const meta = await claimStore(db, dir, nodeId, clusterId);
      const scanned = await scanStore(db, dir);
      return new RaftStorage(db, dir, nodeId, meta.clusterId, scanned);
    } catch (error) {
      await db.close();
      throw error;
    }
  }

  /** The hard state as last persisted (term 0, no vote, commit 0 for a new store). */
  get hardState(): HardState {
    return this.state.hardState;
  }

  /** The index of the first entry in the log: the one after the snapshot (1 without one). */
  get firstIndex(): number {
    return (this.state.snapshot?.metadata.index ?? 0) + 1;
  }

  /** The index of the last entry, or of the snapshot when no entry follows it; 0 when empty. */
  get lastIndex(): number {
    return this.state.lastIndex;
  }

  /**
   * Everything a restarting node needs: hard state, latest snapshot (metadata and data) and the
   * entries after it in index order, all verified (CORRUPT_STORE otherwise).
   */
  async load(): Promise<PersistedState> {
    this.checkOpen();
    const loaded = this.loadedAtOpen;
    this.loadedAtOpen = undefined;
    if (loaded !== undefined) return loaded;
    return (await scanStore(this.db, this.dir)).persisted;
  }

  /**
   * Makes the persistence part of a Ready durable in one synced batch: `snapshot` replaces the
   * stored one, `entries` replace every stored entry from `entries[0].index` on, `hardState`
   * replaces the stored one. An empty request writes nothing.
   *
   * A snapshot deletes the entries it covers (index ≤ its index). Entries after it stay only
   * when the stored entry at its index has its term; otherwise the whole log is discarded
   * (Raft Figure 13, InstallSnapshot steps 6 and 7): they were appended after a different
   * history and would break the Log Matching property.
   */
  async persist(request: PersistRequest): Promise<void> {
    this.checkOpen();
    const { hardState, entries, snapshot } = request;
    if (hardState === undefined && entries.length === 0 && snapshot === undefined) {
      return;
    }
    checkEntries(entries);
    if (snapshot !== undefined) checkSnapshotShape(snapshot);
    if (hardState !== undefined) checkHardStateShape(hardState);
    await this.enqueueWrite(async () => {
      const plan = new WritePlan(this.state);
      if (snapshot !== undefined) {
        const term = await this.termAt(snapshot.metadata.index);
        plan.replaceSnapshot(snapshot, term === snapshot.metadata.term);
      }
      if (entries.length > 0) {
        const previous = (entries[0] as Entry).index - 1;
        await this.checkCommittedKept(plan, entries);
        plan.append(entries, await this.termAtForAppend(plan, previous));
      }
      if (hardState !== undefined) plan.setHardState(hardState);
      plan.checkResult();
      return plan;
    });
  }

  /**
   * Stores an application snapshot and compacts the log: entries up to its index are deleted,
   * later ones kept. The snapshot must cover only committed entries of this log (ILLEGAL_STATE
   * otherwise). Saving again at the stored snapshot's index replaces its data.
   */
  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.checkOpen();
    checkSnapshotShape(snapshot);
    await this.enqueueWrite(async () => {
      const { index, term } = snapshot.metadata;
      checkNotOlder(snapshot, this.state.snapshot);
      const commit = this.state.hardState.commit;
      if (index > commit) {
        throw illegal(
          `a snapshot at index ${index} covers entries after the commit index ${commit}`,
        );
      }
      const storedTerm = await this.termAt(index);
      if (storedTerm !== term) {
        throw illegal(
          `the snapshot at index ${index} has term ${term}, but this log has ${storedTerm === undefined ? 'no entry' : `term ${storedTerm}`} there`,
        );
      }
      const plan = new WritePlan(this.state);
      plan.replaceSnapshot(snapshot, true);
      plan.checkResult();
      return plan;
    });
  }

  /**
   * The entries in [fromIndex, min(toIndexExclusive, lastIndex + 1)), for FetchLog readers and
   * lagging followers. With `maxBytes`, stops before the entry whose data would go over it, but
   * returns at least one entry when there is one. OFFSET_OUT_OF_RANGE when fromIndex is below
   * the first index (compacted into the snapshot) or beyond lastIndex + 1.
   */
  async entries(
    fromIndex: number,
    toIndexExclusive: number,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<Entry[]> {
    this.checkOpen();
    assert(
      Number.isSafeInteger(fromIndex) && fromIndex >= 1 && toIndexExclusive >= fromIndex,
      () => `entry range [${fromIndex}, ${toIndexExclusive}) is not a valid range`,
    );
    assert(maxBytes >= 0, () => `maxBytes ${maxBytes} is negative`);
    const { firstIndex, lastIndex } = this;
    if (fromIndex < firstIndex) {
      throw new WeirError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `entries before index ${firstIndex} were compacted into the snapshot; send the snapshot instead`,
      );
    }
    if (fromIndex > lastIndex + 1) {
      throw new WeirError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `index ${fromIndex} is beyond the end of the log (last index ${lastIndex})`,
      );
    }
    const endIndex = Math.min(toIndexExclusive, lastIndex + 1);
    if (fromIndex >= endIndex) return [];
    return this.readEntries(fromIndex, endIndex, maxBytes);
  }

  /**
   * The term of the entry at `index`: the snapshot's term at its index, undefined outside
   * [snapshot index, lastIndex].
   */
  async term(index: number): Promise<number | undefined> {
    this.checkOpen();
    // After queued writes: a write deleting the entry between the check of the log's range
    // and the read would otherwise look like a missing record.
    return this.afterWrites(() => this.termAt(index));
  }

  /** The latest snapshot, data included, verified; undefined when none was stored. */
  async snapshot(): Promise<Snapshot | undefined> {
    this.checkOpen();
    return this.afterWrites(() => {
      const stored = this.state.snapshot;
      if (stored === undefined) return Promise.resolve(undefined);
      return this.withStoreErrors(() => readSnapshot(this.db, stored));
    });
  }

  /** Waits for queued writes, then closes the database. Calling it again does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writes;
    await this.db.close();
  }

  /** Runs a read once the writes queued before it are done, ahead of any queued after it. */
  private afterWrites<T>(read: () => Promise<T>): Promise<T> {
    const result = this.writes.then(read);
    this.writes = result.catch(() => undefined);
    return result;
  }

  private enqueueWrite(plan: () => Promise<WritePlan>): Promise<void> {
    const write = this.writes.then(async () => {
      if (this.failure !== undefined) throw this.failure;
      const planned = await this.withStoreErrors(plan);
      try {
        await this.db.batch([...planned.operations], { sync: true });
      } catch (error) {
        // A failed sync may have left the batch on disk or not: reopen to learn which.
        this.failure = storageError(
          `write to ${this.dir} (an earlier write failed; reopen the store to recover what is on disk)`,
          error,
        );
        throw storageError(`write to ${this.dir}`, error);
      }
      this.state = planned.result();
      this.loadedAtOpen = undefined;
    });
    this.writes = write.catch(() => undefined);
    return write;
  }

  /** The stored term at `index`, reading the entry when it is in the log. */
  private async termAt(index: number): Promise<number | undefined> {
    const snapshotMetadata = this.state.snapshot?.metadata;
    if (snapshotMetadata !== undefined && index === snapshotMetadata.index) {
      return snapshotMetadata.term;
    }
    if (index < this.firstIndex || index > this.state.lastIndex) return undefined;
    const key = entryKey(index);
    const value = await this.withStoreErrors(() => this.db.get(key));
    if (value === undefined) {
      throw inStore(this.dir, corrupt(key, `missing, but the log runs to ${this.state.lastIndex}`));
    }
    return decodeEntryValue(key, value).term;
  }

  /**
   * Committed entries are never replaced by different ones (Raft's State Machine Safety). A
   * core may resend committed entries unchanged; by Log Matching it is enough to compare the
   * last committed index the write would overwrite.
   */
  private async checkCommittedKept(plan: WritePlan, entries: readonly Entry[]): Promise<void> {
    const first = entries[0] as Entry;
    const last = entries[entries.length - 1] as Entry;
    const index = Math.min(plan.commit, last.index, plan.lastIndex);
    if (index < first.index || index <= plan.snapshotIndex) return;
    const stored = index === plan.lastIndex ? plan.lastTerm : await this.termAt(index);
    const incoming = (entries[index - first.index] as Entry).term;
    if (stored !== incoming) {
      throw illegal(
        `entries from ${first.index} would replace committed entry ${index} (term ${stored}) with one of term ${incoming}`,
      );
    }
  }

  /** The term before an append: from the plan when its snapshot replaced the log there. */
  private async termAtForAppend(plan: WritePlan, index: number): Promise<number | undefined> {
    if (index === plan.snapshotIndex) return plan.snapshotTerm;
    if (index === plan.lastIndex) return plan.lastTerm;
    if (index > plan.lastIndex) return undefined;
    return this.termAt(index);
  }

  private async readEntries(
    fromIndex: number,
    endIndex: number,
    maxBytes: number,
  ): Promise<Entry[]> {
    const result: Entry[] = [];
    let bytes = 0;
    const iterator = this.db.iterator({
      gte: entryKey(fromIndex),
      lt: endIndex > Number.MAX_SAFE_INTEGER ? ENTRY_KEYS_END : entryKey(endIndex),
    });
    try {
      for await (const [key, value] of iterator) {
        const entry = decodeEntryValue(key, value);
        const expected = fromIndex + result.length;
        if (entry.index !== expected) {
          // The iterator reads one consistent view; a first entry above `fromIndex` means a
          // compaction got there first, a later gap means the store is damaged.
          if (result.length === 0) {
            throw new WeirError(
              ErrorCode.OFFSET_OUT_OF_RANGE,
              `entry ${fromIndex} was compacted into a snapshot while being read`,
            );
          }
          throw corrupt(key, `found where entry ${expected} should be`);
        }
        bytes += entry.data.length;
        if (result.length > 0 && bytes > maxBytes) break;
        result.push(entry);
      }
    } catch (error) {
      throw mapStoreError(this.dir, error);
    } finally {
      await iterator.close();
    }
    return result;
  }

  private async withStoreErrors<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw mapStoreError(this.dir, error);
    }
  }

  private checkOpen(): void {
    if (this.closed) {
      throw new WeirError(ErrorCode.ILLEGAL_STATE, `the Raft store ${this.dir} is closed`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Planning a write: the batch's operations, and the state once they are on disk

class WritePlan {
  private readonly ops: BatchOperation[] = [];
  private hardState: HardState;
  private snapshot: StoredSnapshotMetadata | undefined;
  private last: { index: number; term: number };

  constructor(before: LogState) {
    this.hardState = before.hardState;
    this.snapshot = before.snapshot;
    this.last = { index: before.lastIndex, term: before.lastTerm };
  }

  get operations(): readonly BatchOperation[] {
    return this.ops;
  }

  get snapshotIndex(): number {
    return this.snapshot?.metadata.index ?? 0;
  }

  get snapshotTerm(): number {
    return this.snapshot?.metadata.term ?? 0;
  }

  get lastIndex(): number {
    return this.last.index;
  }

  get lastTerm(): number {
    return this.last.term;
  }

  get commit(): number {
    return this.hardState.commit;
  }

  /** `keepLaterEntries`: the log holds the snapshot's last entry, so what follows it stays. */
  replaceSnapshot(snapshot: Snapshot, keepLaterEntries: boolean): void {
    const { index, term } = snapshot.metadata;
    checkNotOlder(snapshot, this.snapshot);
    const deleteThrough = keepLaterEntries ? index : Math.max(index, this.last.index);
    this.deleteEntries(this.snapshotIndex + 1, deleteThrough);
    if (!keepLaterEntries || this.last.index < index) this.last = { index, term };

    const dataBytes = snapshot.data.length;
    const chunkCount = snapshotChunkCount(dataBytes);
    for (let chunk = 0; chunk < chunkCount; chunk++) {
      const key = snapshotChunkKey(chunk);
      const start = chunk * SNAPSHOT_CHUNK_BYTES;
      const data = snapshot.data.subarray(start, start + SNAPSHOT_CHUNK_BYTES);
      this.ops.push({ type: 'put', key, value: encodeSnapshotChunkValue(key, data) });
    }
    for (let chunk = chunkCount; chunk < (this.snapshot?.chunkCount ?? 0); chunk++) {
      this.ops.push({ type: 'del', key: snapshotChunkKey(chunk) });
    }
    this.snapshot = {
      metadata: { index, term, voters: [...snapshot.metadata.voters] },
      dataBytes,
      chunkCount,
      dataCrc32c: crc32c(snapshot.data),
    };
    this.ops.push({
      type: 'put',
      key: SNAPSHOT_METADATA_KEY,
      value: encodeSnapshotMetadataValue(this.snapshot),
    });
  }

  /** `previousTerm`: the term at entries[0].index - 1, undefined when the log has no entry there. */
  append(entries: readonly Entry[], previousTerm: number | undefined): void {
    const first = entries[0] as Entry;
    const last = entries[entries.length - 1] as Entry;
    if (first.index <= this.snapshotIndex) {
      throw illegal(
        `entries from ${first.index} overlap the snapshot at index ${this.snapshotIndex}; only entries after it can be stored`,
      );
    }
    if (previousTerm === undefined) {
      throw illegal(
        `entries from ${first.index} would leave a gap after the last index ${this.last.index}`,
      );
    }
    if (first.term < previousTerm) {
      throw illegal(
        `entry ${first.index} has term ${first.term}, below the term ${previousTerm} of the entry before it`,
      );
    }
    // Entries being replaced past the new last index go; the rest are overwritten by the puts.
    this.deleteEntries(last.index + 1, this.last.index);
    for (const entry of entries) {
      const key = entryKey(entry.index);
      this.ops.push({ type: 'put', key, value: encodeEntryValue(key, entry) });
    }
    this.last = { index: last.index, term: last.term };
  }

  setHardState(hardState: HardState): void {
    const before = this.hardState;
    if (hardState.term < before.term) {
      throw illegal(`hard state term would go back from ${before.term} to ${hardState.term}`);
    }
    if (hardState.commit < before.commit) {
      throw illegal(`commit index would go back from ${before.commit} to ${hardState.commit}`);
    }
    if (
      hardState.term === before.term &&
      before.vote !== NO_NODE &&
      hardState.vote !== before.vote
    ) {
      throw illegal(
        `the vote in term ${before.term} would change from ${before.vote} to ${hardState.vote} (one vote per term, Raft §5.2)`,
      );
    }
    this.hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
    this.ops.push({ type: 'put', key: HARD_STATE_KEY, value: encodeHardStateValue(hardState) });
  }

  /** The invariants load() verifies, checked before writing so a store is never made invalid. */
  checkResult(): void {
    const problem = stateProblem(this.hardState, this.last.index, this.last.term);
    if (problem !== undefined) throw illegal(`after this write ${problem}`);
  }

  result(): LogState {
    return {
      hardState: this.hardState,
      snapshot: this.snapshot,
      lastIndex: this.last.index,
      lastTerm: this.last.term,
    };
  }

  /** Deletes the stored entries in [from, through]: never more keys than the log holds. */
  private deleteEntries(from: number, through: number): void {
    const last = Math.min(through, this.last.index);
    for (let index = from; index <= last; index++) {
      this.ops.push({ type: 'del', key: entryKey(index) });
    }
  }
}

/** What is wrong with a hard state next to a log ending at (lastIndex, lastTerm), if anything. */
function stateProblem(
  hardState: HardState,
  lastIndex: number,
  lastTerm: number,
): string | undefined {
  // The commit index may lag the snapshot's index (a snapshot holds only committed state, so
  // the effective commit is at least its index); it may never pass what the log holds: those
  // entries were acknowledged as committed and are gone.
  if (hardState.commit > lastIndex) {
    return `the commit index ${hardState.commit} is beyond the last index ${lastIndex}`;
  }
  // A node adopts a leader's term before it accepts any entry of that term (§5.1).
  if (hardState.term < lastTerm) {
    return `the hard state term ${hardState.term} is below the term ${lastTerm} of the last index ${lastIndex}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Checks of what callers hand in (before anything is queued)

/** A snapshot replaces the stored one only when it is newer (or the same one again). */
function checkNotOlder(snapshot: Snapshot, stored: StoredSnapshotMetadata | undefined): void {
  const { index, term } = snapshot.metadata;
  const current = stored?.metadata;
  if (current === undefined) return;
  if (index < current.index || (index === current.index && term !== current.term)) {
    throw illegal(
      `snapshot (index ${index}, term ${term}) is older than or conflicts with the stored one (index ${current.index}, term ${current.term})`,
    );
  }
}

function checkEntries(entries: readonly Entry[]): void {
  let previous: Entry | undefined;
  for (const entry of entries) {
    assert(
      isIndex(entry.index) && isTerm(entry.term) && entry.data instanceof Uint8Array,
      () => `entry ${entry.index} (term ${entry.term}) is not a valid entry`,
    );
    assert(entry.type === 'normal' || entry.type === 'noop', () => `entry type ${entry.type}`);
    if (previous !== undefined) {
      assert(
        entry.index === previous.index + 1,
        () => `entries are not consecutive: ${entry.index} follows ${previous?.index}`,
      );
      assert(
        entry.term >= previous.term,
        () => `entry ${entry.index} has term ${entry.term}, below ${previous?.term} before it`,
      );
    }
    previous = entry;
  }
}

function checkSnapshotShape(snapshot: Snapshot): void {
  const { index, term, voters } = snapshot.metadata;
  assert(isIndex(index) && isTerm(term), () => `snapshot index ${index} term ${term}`);
  assert(snapshot.data instanceof Uint8Array, 'snapshot data is not a Uint8Array');
  for (const voter of voters) {
    assert(Number.isInteger(voter) && voter >= 0 && voter < 2 ** 31, () => `voter id ${voter}`);
  }
}

function checkHardStateShape(hardState: HardState): void {
  const { term, vote, commit } = hardState;
  assert(
    isTerm(term) && isTerm(commit) && Number.isSafeInteger(vote) && vote >= NO_NODE,
    () => `hard state term ${term} vote ${vote} commit ${commit}`,
  );
}

function isIndex(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 1;
}

function isTerm(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

function illegal(problem: string): WeirError {
  return new WeirError(ErrorCode.ILLEGAL_STATE, `Raft storage refused a write: ${problem}`);
}

// ---------------------------------------------------------------------------------------------
// Opening: the store's identity, and the verified scan of everything in it

async function claimStore(
  db: Db,
  dir: string,
  nodeId: NodeId,
  clusterId: string,
): Promise<StoreMeta> {
  const value = await db.get(META_KEY).catch((error: unknown) => {
    throw mapStoreError(dir, error);
  });
  if (value === undefined) {
    const anyKey = await db
      .keys({ limit: 1 })
      .all()
      .catch((error: unknown) => {
        throw mapStoreError(dir, error);
      });
    if (anyKey.length > 0) {
      throw inStore(dir, corrupt(META_KEY, 'missing, but the store holds records'));
    }
    return writeMeta(db, dir, { nodeId, clusterId });
  }
  const meta = withDir(dir, () => decodeMetaValue(META_KEY, value));
  if (meta.nodeId !== nodeId) {
    // Not CORRUPT_STORE: the data is intact and must not be deleted (it holds another voter's
    // votes and log). The configuration points this node at the wrong directory.
    throw new WeirError(
      ErrorCode.INCONSISTENT_VOTER_SET,
      `the Raft store ${dir} belongs to node ${meta.nodeId}, but this node's id is ${nodeId}; point this node at its own data directory or fix its node id`,
    );
  }
  if (clusterId !== '' && meta.clusterId !== '' && meta.clusterId !== clusterId) {
    throw new WeirError(
      ErrorCode.INCONSISTENT_CLUSTER_ID,
      `the Raft store ${dir} belongs to cluster ${JSON.stringify(meta.clusterId)}, but this node is configured for cluster ${JSON.stringify(clusterId)}`,
    );
  }
  if (clusterId !== '' && meta.clusterId === '') return writeMeta(db, dir, { nodeId, clusterId });
  return meta;
}

async function writeMeta(db: Db, dir: string, meta: StoreMeta): Promise<StoreMeta> {
  try {
    await db.batch([{ type: 'put', key: META_KEY, value: encodeMetaValue(meta) }], { sync: true });
  } catch (error) {
    throw storageError(`write to ${dir}`, error);
  }
  return meta;
}

interface ScannedStore {
  readonly state: LogState;
  readonly persisted: PersistedState;
}

/** Reads every record in key order and verifies the whole store. */
async function scanStore(db: Db, dir: string): Promise<ScannedStore> {
  const scan = new StoreScan();
  const iterator = db.iterator();
  try {
    for await (const [key, value] of iterator) scan.add(key, value);
    return scan.finish();
  } catch (error) {
    throw mapStoreError(dir, error);
  } finally {
    await iterator.close();
  }
}

/** The checks of a scan, one record at a time; records arrive in key order. */
class StoreScan {
  private meta: StoreMeta | undefined;
  private hardState: HardState | undefined;
  private snapshotMetadata: StoredSnapshotMetadata | undefined;
  private readonly chunks: Uint8Array[] = [];
  private readonly entries: Entry[] = [];

  add(key: Uint8Array, value: Uint8Array): void {
    const prefix = key[0];
    if (key.length === 1 && prefix === KeyPrefix.meta) {
      this.meta = decodeMetaValue(key, value);
    } else if (key.length === 1 && prefix === KeyPrefix.hardState) {
      this.hardState = decodeHardStateValue(key, value);
    } else if (key.length === 1 && prefix === KeyPrefix.snapshotMetadata) {
      this.snapshotMetadata = decodeSnapshotMetadataValue(key, value);
    } else if (prefix === KeyPrefix.snapshotChunk) {
      this.addChunk(key, value);
    } else if (prefix === KeyPrefix.entry) {
      this.addEntry(decodeEntryValue(key, value), key);
    } else {
      throw corrupt(key, 'not a key this store writes');
    }
  }

  finish(): ScannedStore {
    if (this.meta === undefined) throw corrupt(META_KEY, 'missing');
    const snapshot = this.snapshotMetadata;
    const expectedChunks = snapshot?.chunkCount ?? 0;
    if (this.chunks.length !== expectedChunks) {
      throw corrupt(
        snapshotChunkKey(this.chunks.length),
        `missing: the snapshot has ${expectedChunks} chunks, the store ${this.chunks.length}`,
      );
    }
    const hardState = this.hardState ?? INITIAL_HARD_STATE;
    const lastEntry = this.entries[this.entries.length - 1];
    const lastIndex = lastEntry?.index ?? snapshot?.metadata.index ?? 0;
    const lastTerm = lastEntry?.term ?? snapshot?.metadata.term ?? 0;
    const problem = stateProblem(hardState, lastIndex, lastTerm);
    if (problem !== undefined) throw corrupt(HARD_STATE_KEY, problem);
    return {
      state: { hardState, snapshot, lastIndex, lastTerm },
      persisted: {
        hardState,
        snapshot: snapshot === undefined ? undefined : assembleSnapshot(snapshot, this.chunks),
        entries: this.entries,
      },
    };
  }

  private addChunk(key: Uint8Array, value: Uint8Array): void {
    const chunk = decodeSnapshotChunkKey(key);
    const snapshot = this.snapshotMetadata;
    if (snapshot === undefined) throw corrupt(key, 'stored without snapshot metadata');
    if (chunk !== this.chunks.length) {
      throw corrupt(snapshotChunkKey(this.chunks.length), `missing (found chunk ${chunk} next)`);
    }
    if (chunk >= snapshot.chunkCount) {
      throw corrupt(key, `beyond the snapshot's ${snapshot.chunkCount} chunks (not deleted)`);
    }
    this.chunks.push(decodeSnapshotChunkValue(key, value));
  }

  private addEntry(entry: Entry, key: Uint8Array): void {
    const snapshot = this.snapshotMetadata?.metadata;
    const previous = this.entries[this.entries.length - 1];
    const expected = (previous?.index ?? snapshot?.index ?? 0) + 1;
    const previousTerm = previous?.term ?? snapshot?.term ?? 0;
    if (entry.index !== expected) {
      if (snapshot !== undefined && entry.index <= snapshot.index) {
        throw corrupt(
          key,
          `at or below the snapshot's index ${snapshot.index}: compaction should have deleted it`,
        );
      }
      throw corrupt(
        key,
        `found after ${previous === undefined ? `the log start (${expected - 1})` : `entry ${previous.index}`}: entries ${expected}..${entry.index - 1} are missing`,
      );
    }
    if (entry.term < previousTerm) {
      throw corrupt(
        key,
        `term ${entry.term} is below the term ${previousTerm} of index ${expected - 1}`,
      );
    }
    this.entries.push(entry);
  }
}

/** Joins verified chunks into the snapshot's data and checks the data's own CRC. */
function assembleSnapshot(stored: StoredSnapshotMetadata, chunks: readonly Uint8Array[]): Snapshot {
  let total = 0;
  chunks.forEach((chunk, index) => {
    const expected = Math.min(
      SNAPSHOT_CHUNK_BYTES,
      stored.dataBytes - index * SNAPSHOT_CHUNK_BYTES,
    );
    if (chunk.length !== expected) {
      throw corrupt(snapshotChunkKey(index), `holds ${chunk.length} bytes, expected ${expected}`);
    }
    total += chunk.length;
  });
  // Only now, with the bytes counted, allocate what the metadata claims.
  const data = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    data.set(chunk, offset);
    offset += chunk.length;
  }
  const crc = crc32c(data);
  if (crc !== stored.dataCrc32c) {
    throw corrupt(SNAPSHOT_METADATA_KEY, `the snapshot data's CRC-32C does not match its chunks`);
  }
  return { metadata: stored.metadata, data };
}

async function readSnapshot(db: Db, stored: StoredSnapshotMetadata): Promise<Snapshot> {
  const keys = Array.from({ length: stored.chunkCount }, (_, chunk) => snapshotChunkKey(chunk));
  const values = await db.getMany(keys);
  const chunks = values.map((value, chunk) => {
    const key = keys[chunk] as Uint8Array;
    if (value === undefined) throw corrupt(key, 'missing');
    return decodeSnapshotChunkValue(key, value);
  });
  return assembleSnapshot(stored, chunks);
}

// ---------------------------------------------------------------------------------------------
// Errors

/** CORRUPT_STORE and other WeirErrors gain the store's directory; LevelDB errors are mapped. */
function mapStoreError(dir: string, error: unknown): WeirError {
  if (isWeirError(error)) return inStore(dir, error);
  const code = (error as { code?: unknown; cause?: { code?: unknown } } | undefined)?.cause?.code;
  const ownCode = (error as { code?: unknown } | undefined)?.code;
  if (code === 'LEVEL_CORRUPTION' || ownCode === 'LEVEL_CORRUPTION') {
    return new WeirError(
      ErrorCode.CORRUPT_STORE,
      `the Raft store ${dir}: LevelDB reports corruption: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return storageError(`read ${dir}`, error);
}

function inStore(dir: string, error: WeirError): WeirError {
  if (error.code !== ErrorCode.CORRUPT_STORE || error.message.includes(dir)) return error;
  const detail = error.message.replace(/^CORRUPT_STORE: /, '');
  return new WeirError(
    ErrorCode.CORRUPT_STORE,
    `the Raft store ${dir} is corrupt: ${detail}. Do not delete it to start over: see docs/raft-storage.md#when-a-store-is-corrupt`,
    { cause: error },
  );
}

function withDir<T>(dir: string, decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    throw mapStoreError(dir, error);
  }
}

function storageError(action: string, cause: unknown): WeirError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new WeirError(ErrorCode.KAFKA_STORAGE_ERROR, `could not ${action}: ${reason}`, { cause });
}

function openError(dir: string, error: unknown): WeirError {
  // classic-level wraps LevelDB's status in LEVEL_DATABASE_NOT_OPEN with the reason as `cause`.
  const code = (error as { cause?: { code?: unknown } }).cause?.code;
  if (code === 'LEVEL_LOCKED') {
    return new WeirError(
      ErrorCode.LOG_DIRECTORY_LOCKED,
      `the Raft store ${dir} is open in another process (or in this one); stop it or choose another directory`,
      { cause: error },
    );
  }
  if (code === 'LEVEL_CORRUPTION') {
    return new WeirError(
      ErrorCode.CORRUPT_STORE,
      `LevelDB cannot open the Raft store ${dir}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return storageError(`open the Raft store ${dir}`, error);
}
