// One simulated voter: the real RaftCore (absent while the node is down), its storage model
// (what survives a crash) and its state machine, plus the driver's bookkeeping of client
// requests waiting for their entry or read to complete.

import type { RaftCore } from '../core/raft.js';
import type { NodeId, ReadState, Role } from '../core/types.js';
import type { CheckedNode } from './checker.js';
import { KvStateMachine } from './kv.js';
import { StorageModel } from './storage-model.js';

/** A get waiting for its ReadIndex round, and then for the state machine to catch up. */
export interface ReadWaiter {
  readonly client: number;
  readonly seq: number;
  readonly key: number;
}

export class SimNode implements CheckedNode {
  core: RaftCore | undefined;
  /** Bumped by every crash and restart: events of an earlier life are ignored. */
  incarnation = 0;
  readonly storage = new StorageModel();
  kv = new KvStateMachine();
  readyScheduled = false;
  /** Stop-the-world pause: no ticks, no input, until then. */
  pausedUntilMs = 0;
  /** Client → the request id proposed through this node, answered when its entry applies. */
  readonly waitingWrites = new Map<number, number>();
  /** ReadIndex request id → the get it serves. */
  readonly waitingReads = new Map<number, ReadWaiter>();
  /** ReadStates handed out, waiting for the state machine to apply their index. */
  readStates: ReadState[] = [];
  /** For the trace: the last role, term, leader and commit index reported. */
  shown = { role: 'follower' as Role, term: 0, leader: -1, commit: 0 };

  constructor(readonly id: NodeId) {}

  get up(): boolean {
    return this.core !== undefined;
  }

  isPaused(nowMs: number): boolean {
    return this.pausedUntilMs > nowMs;
  }

  /** A crash: everything in memory is gone. */
  crash(): void {
    this.core = undefined;
    this.incarnation++;
    this.readyScheduled = false;
    this.pausedUntilMs = 0;
    this.waitingWrites.clear();
    this.waitingReads.clear();
    this.readStates = [];
  }
}
