// The Raft log as the core sees it: a snapshot base (index, term) followed by entries, with
// four positions along it — stable (persisted), committed, applied, and where the next Ready's
// entries start. The whole uncompacted log is in memory; the metadata log is compacted by
// snapshots, so it stays small. Storage is the driver's business (see Ready).

import { assert } from '@weir/protocol';
import type { Entry, Snapshot } from './types.js';

export class RaftLog {
  /** The last index and term covered by the latest snapshot (0, 0 for none). */
  snapshotIndex = 0;
  snapshotTerm = 0;
  /** entries[i].index === snapshotIndex + 1 + i */
  private log: Entry[] = [];
  committed = 0;
  applied = 0;
  /** The last index known to be persisted by the driver. */
  stableIndex = 0;
  /** The first index not yet handed out in a Ready. */
  unstableFrom = 1;
  /** A snapshot received from the leader, to hand out in the next Ready. */
  pendingSnapshot: Snapshot | undefined;
  /** The latest snapshot, sent to followers behind the log start. */
  latestSnapshot: Snapshot | undefined;

  get lastIndex(): number {
    return this.snapshotIndex + this.log.length;
  }

  get lastTerm(): number {
    return this.log.at(-1)?.term ?? this.snapshotTerm;
  }

  get firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  /** The term of the entry at `index`, or undefined when compacted away or not there. */
  term(index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.snapshotIndex || index > this.lastIndex) return undefined;
    return this.log[index - this.snapshotIndex - 1]!.term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.snapshotIndex || index > this.lastIndex) return undefined;
    return this.log[index - this.snapshotIndex - 1];
  }

  /** Entries in [from, to), at most `maxBytes` of data but at least one. `from` ≥ firstIndex. */
  slice(from: number, to: number, maxBytes = Number.POSITIVE_INFINITY): Entry[] {
    assert(
      from >= this.firstIndex,
      () => `slice from ${from} below first index ${this.firstIndex}`,
    );
    const end = Math.min(to, this.lastIndex + 1);
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = from; index < end; index++) {
      const entry = this.log[index - this.snapshotIndex - 1]!;
      bytes += entry.data.length;
      if (result.length > 0 && bytes > maxBytes) break;
      result.push(entry);
    }
    return result;
  }

  /** Raft §5.4.1: is a log ending at (index, term) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  /** Appends entries that follow the last one. */
  append(entries: readonly Entry[]): void {
    for (const entry of entries) {
      assert(
        entry.index === this.lastIndex + 1 && entry.term >= this.lastTerm,
        () =>
          `append of entry (${entry.index}, ${entry.term}) after (${this.lastIndex}, ${this.lastTerm})`,
      );
      this.log.push(entry);
    }
  }

  /**
   * Follower side of AppendEntries (§5.3): entries after `prevLogIndex` from a leader whose log
   * matches ours there. Keeps the entries we already have, replaces ours from the first
   * conflicting one on. Returns the index of the last new entry.
   */
  appendFromLeader(prevLogIndex: number, entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (entry.index <= this.snapshotIndex) continue; // covered by our snapshot
      const existing = this.term(entry.index);
      if (existing === entry.term) continue;
      if (existing !== undefined) this.truncateFrom(entry.index);
      this.append(entries.filter((e) => e.index >= entry.index));
      break;
    }
    return prevLogIndex + entries.length;
  }

  /** Drops the entries from `index` on (never committed ones: that would break §5.4). */
  private truncateFrom(index: number): void {
    assert(
      index > this.committed,
      () => `truncating from ${index} would remove committed entries (commit ${this.committed})`,
    );
    this.log.length = index - this.snapshotIndex - 1;
    this.stableIndex = Math.min(this.stableIndex, index - 1);
    this.unstableFrom = Math.min(this.unstableFrom, index);
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(
      index <= this.lastIndex,
      () => `commit ${index} beyond the last index ${this.lastIndex}`,
    );
    this.committed = index;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term`, with that term: the point from which
   * two logs may agree (etcd's findConflictByTerm, used for fast back-off).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex);
    while (i > this.snapshotIndex && this.term(i)! > term) i--;
    return { index: i, term: this.term(i) ?? 0 };
  }

  /** Entries to hand to the driver for persistence. */
  unstableEntries(): Entry[] {
    return this.unstableFrom > this.lastIndex
      ? []
      : this.slice(Math.max(this.unstableFrom, this.firstIndex), this.lastIndex + 1);
  }

  /** Committed entries that are persisted, or persisted by the Ready that hands them out. */
  entriesToApply(persistedThrough: number): Entry[] {
    const to = Math.min(this.committed, persistedThrough);
    return to > this.applied ? this.slice(this.applied + 1, to + 1) : [];
  }

  /** The driver persisted entries through (index, term); a later truncation may have replaced them. */
  stableTo(index: number, term: number): void {
    if (this.matchTerm(index, term) && index > this.stableIndex) this.stableIndex = index;
  }

  appliedTo(index: number): void {
    assert(
      index >= this.applied && index <= this.committed,
      () => `applied ${index} outside [${this.applied}, ${this.committed}]`,
    );
    this.applied = index;
  }

  /** Replaces the whole log with a snapshot from the leader (§7). */
  restore(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    this.log = [];
    this.snapshotIndex = index;
    this.snapshotTerm = term;
    this.committed = index;
    this.stableIndex = index;
    this.unstableFrom = index + 1;
    this.pendingSnapshot = snapshot;
    this.latestSnapshot = snapshot;
  }

  /** The driver persisted and applied a snapshot from the leader. */
  snapshotApplied(snapshot: Snapshot): void {
    if (this.pendingSnapshot === snapshot) this.pendingSnapshot = undefined;
    if (snapshot.metadata.index > this.applied) this.applied = snapshot.metadata.index;
  }

  /** The application's own snapshot at an applied index: the entries up to it go (§7). */
  compact(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (index <= this.snapshotIndex) return;
    assert(index <= this.applied, () => `snapshot at ${index} beyond applied ${this.applied}`);
    assert(
      this.term(index) === term,
      () => `snapshot term ${term} at ${index} does not match the log`,
    );
    this.log = this.log.slice(index - this.snapshotIndex);
    this.snapshotIndex = index;
    this.snapshotTerm = term;
    this.latestSnapshot = snapshot;
  }

  /** Restart: the persisted snapshot and entries are stable; applied restarts at the snapshot. */
  static fromPersisted(
    snapshot: Snapshot | undefined,
    entries: readonly Entry[],
    commit: number,
  ): RaftLog {
    const log = new RaftLog();
    if (snapshot !== undefined) {
      log.snapshotIndex = snapshot.metadata.index;
      log.snapshotTerm = snapshot.metadata.term;
      log.latestSnapshot = snapshot;
    }
    log.append(entries.filter((entry) => entry.index > log.snapshotIndex));
    log.stableIndex = log.lastIndex;
    log.unstableFrom = log.lastIndex + 1;
    log.applied = log.snapshotIndex;
    log.committed = Math.max(log.snapshotIndex, Math.min(commit, log.lastIndex));
    return log;
  }
}
