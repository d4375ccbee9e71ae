// What one node has on stable storage: exactly what its driver synced. The simulated driver
// writes a Ready's snapshot, entries and hard state as one synced batch (as the level store
// does with one `sync: true` batch), so a crash loses precisely the Readies not yet persisted;
// a restarted node is built from `persistedState()`.
//
// Each entry carries a chained hash (its own term, index and data, and the hash of the entry
// before it) so the checker can test Log Matching (§5.3) in O(1) per entry.

import {
  NO_NODE,
  type Entry,
  type HardState,
  type PersistedState,
  type Ready,
  type Snapshot,
} from '../core/types.js';
import { chainHash, hashBytes } from './hash.js';

export class StorageModel {
  hardState: HardState = { term: 0, vote: NO_NODE, commit: 0 };
  snapshot: Snapshot | undefined;
  /** The chain hash of the snapshot's last entry. */
  snapshotChain = 0;
  /** entries[i].index === snapshotIndex + 1 + i */
  private entries: Entry[] = [];
  private chains: number[] = [];
  /** Incremented by every synced write; the checker uses it to skip unchanged logs. */
  writes = 0;

  get snapshotIndex(): number {
    return this.snapshot?.metadata.index ?? 0;
  }

  get snapshotTerm(): number {
    return this.snapshot?.metadata.term ?? 0;
  }

  get lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  get lastTerm(): number {
    return this.entries.at(-1)?.term ?? this.snapshotTerm;
  }

  entryAt(index: number): Entry | undefined {
    return index > this.snapshotIndex ? this.entries[index - this.snapshotIndex - 1] : undefined;
  }

  termAt(index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    return this.entryAt(index)?.term;
  }

  /** The chain hash at `index` (the snapshot's for its own index), if the log holds it. */
  chainAt(index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshotChain;
    return index > this.snapshotIndex ? this.chains[index - this.snapshotIndex - 1] : undefined;
  }

  /**
   * Syncs a Ready's snapshot, entries and hard state. `chainOf` names the chain hash of a
   * received snapshot's last entry (the checker knows every entry ever written). Returns the
   * first index written, or undefined when no entry was.
   */
  persist(ready: Ready, chainOf: (index: number, term: number) => number): number | undefined {
    this.writes++;
    if (ready.snapshot !== undefined) this.installSnapshot(ready.snapshot, chainOf);
    const from = this.appendEntries(ready.entries);
    if (ready.hardState !== undefined) this.hardState = ready.hardState;
    return from;
  }

  /** A snapshot from the leader replaces the whole log (the core's RaftLog.restore). */
  private installSnapshot(
    snapshot: Snapshot,
    chainOf: (index: number, term: number) => number,
  ): void {
    this.snapshot = snapshot;
    this.snapshotChain = chainOf(snapshot.metadata.index, snapshot.metadata.term);
    this.entries = [];
    this.chains = [];
  }

  /** `entries` replace the stored entries from entries[0].index on (see Ready). */
  private appendEntries(entries: readonly Entry[]): number | undefined {
    const first = entries.find((entry) => entry.index > this.snapshotIndex);
    if (first === undefined) return undefined;
    if (first.index > this.lastIndex + 1) {
      throw new Error(`persisting entry ${first.index} would leave a gap after ${this.lastIndex}`);
    }
    const keep = first.index - this.snapshotIndex - 1;
    this.entries.length = keep;
    this.chains.length = keep;
    let previous = this.chainAt(first.index - 1) ?? 0;
    for (const entry of entries) {
      if (entry.index < first.index) continue;
      if (entry.index !== this.lastIndex + 1) {
        throw new Error(
          `entries to persist are not contiguous: ${entry.index} after ${this.lastIndex}`,
        );
      }
      previous = chainHash(previous, entry.term, entry.index, entryHash(entry));
      this.entries.push(entry);
      this.chains.push(previous);
    }
    return first.index;
  }

  /** The application's snapshot at an applied index: the entries up to it are dropped (§7). */
  compact(snapshot: Snapshot): void {
    const { index } = snapshot.metadata;
    if (index <= this.snapshotIndex) return;
    const chain = this.chainAt(index);
    if (chain === undefined)
      throw new Error(`compaction at ${index} beyond the stored log ${this.lastIndex}`);
    this.writes++;
    const drop = index - this.snapshotIndex;
    this.entries = this.entries.slice(drop);
    this.chains = this.chains.slice(drop);
    this.snapshot = snapshot;
    this.snapshotChain = chain;
  }

  /**
   * What the node restarts from. `forgetVote` is the deliberately broken storage of the
   * checker's self-test: the vote is lost, so the node may vote twice in one term.
   */
  persistedState(forgetVote = false): PersistedState {
    const hardState = forgetVote ? { ...this.hardState, vote: NO_NODE } : this.hardState;
    return { hardState, snapshot: this.snapshot, entries: [...this.entries] };
  }
}

/** An entry's identity apart from its position: its type and data. */
export function entryHash(entry: Entry): number {
  return entry.type === 'noop' ? 0x0badc0de : hashBytes(entry.data);
}
