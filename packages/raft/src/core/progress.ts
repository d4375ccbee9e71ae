// What a leader knows of each follower's log, and how it paces appends to it (etcd's
// tracker.Progress): `probe` sends one append at a time until the follower's match is found,
// `replicate` pipelines up to maxInflightMessages appends, `snapshot` waits for a snapshot to
// be installed.

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  /** The highest index known to match the leader's log. */
  match = 0;
  /** The next index to send. */
  next: number;
  state: ProgressState = 'probe';
  /** Probe: an append is out and we wait for its answer (or a heartbeat answer). */
  probeSent = false;
  /** Snapshot: the index of the snapshot being installed. */
  pendingSnapshot = 0;
  /** Leader ticks spent in the current state; a lost snapshot is re-sent after a while. */
  ticksInState = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** The last index of each append in flight, oldest first (replicate only). */
  private readonly inflights: number[] = [];

  constructor(
    next: number,
    private readonly maxInflightMessages: number,
  ) {
    this.next = next;
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it rather than from an older match.
    const next =
      this.state === 'snapshot' ? Math.max(this.match, this.pendingSnapshot) + 1 : this.match + 1;
    this.reset('probe');
    this.next = next;
  }

  becomeReplicate(): void {
    this.reset('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.reset('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  private reset(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.ticksInState = 0;
    this.inflights.length = 0;
  }

  /** Whether another append may go out now. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.length >= this.maxInflightMessages;
      case 'snapshot':
        return true;
    }
  }

  /** An append carrying entries up to `lastIndex` went out (or an empty probe, with 0). */
  sentAppend(lastIndex: number, entryCount: number): void {
    if (this.state === 'replicate' && entryCount > 0) {
      this.next = lastIndex + 1;
      this.inflights.push(lastIndex);
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** A success answer for `index`; false when it is stale (tells nothing new). */
  maybeUpdate(index: number): boolean {
    const updated = index > this.match;
    if (updated) {
      this.match = index;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    while (this.inflights.length > 0 && this.inflights[0]! <= index) this.inflights.shift();
    return updated;
  }

  /**
   * A rejection of the append whose prevLogIndex was `rejected`; `probeFrom` is where the
   * leader's log may start to agree with the follower's. False when stale.
   */
  maybeDecrease(rejected: number, probeFrom: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, probeFrom + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** A heartbeat answer: the follower is alive, so a lost probe or a full window reopens. */
  onHeartbeatResponse(): void {
    this.probeSent = false;
    if (this.state === 'replicate' && this.inflights.length >= this.maxInflightMessages) {
      this.inflights.shift();
    }
  }
}
