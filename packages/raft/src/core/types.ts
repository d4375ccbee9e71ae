// The vocabulary of the Raft core: entries, hard state, snapshots, messages and the Ready
// hand-off. The core is deterministic (etcd-raft's shape): input is step(message) and tick(),
// output is a Ready that the driver persists, sends and applies, in that order, then
// acknowledges with advance(). Terms and indexes are numbers (safe integers: a log would need
// 2^53 entries to overflow them); they become uint64 only on the wire.

/** A voter's id: a positive integer, as in `--quorum-voters 1@host:9093,...`. */
export type NodeId = number;
/** No node: no vote cast, no leader known (Kafka's -1). */
export const NO_NODE: NodeId = -1;

/** `noop` is the empty entry a new leader appends to commit the entries of earlier terms. */
export type EntryType = 'normal' | 'noop';

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What must be on disk before any message that depends on it is sent (Raft §5.1, Figure 2). */
export interface HardState {
  readonly term: number;
  /** The candidate voted for in `term`, or NO_NODE. */
  readonly vote: NodeId;
  readonly commit: number;
}

export interface SnapshotMetadata {
  /** The last index the snapshot covers, and its term. */
  readonly index: number;
  readonly term: number;
  readonly voters: readonly NodeId[];
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** The state machine's state at `metadata.index`, opaque to Raft. */
  readonly data: Uint8Array;
}

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/**
 * RequestVote (§5.2) and its pre-vote variant (Ongaro's thesis §9.6): a pre-candidate asks with
 * the term it *would* use (its term + 1) without raising its own term, so a partitioned node
 * cannot disrupt a healthy leader when it comes back.
 */
export interface VoteRequest extends Envelope {
  readonly type: 'vote' | 'preVote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set when a leader hands leadership over: voters ignore their leader lease. */
  readonly transfer: boolean;
}

export interface VoteResponse extends Envelope {
  readonly type: 'voteResponse' | 'preVoteResponse';
  readonly granted: boolean;
}

/** AppendEntries (§5.3). */
export interface AppendRequest extends Envelope {
  readonly type: 'append';
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

export interface AppendResponse extends Envelope {
  readonly type: 'appendResponse';
  readonly success: boolean;
  /** Success: the last index that now matches the leader. Failure: the rejected prevLogIndex. */
  readonly index: number;
  /**
   * Failure only, for fast back-off: the largest index ≤ the rejected one whose term is
   * ≤ the rejected prevLogTerm, and that term (etcd's findConflictByTerm).
   */
  readonly hintIndex: number;
  readonly hintTerm: number;
}

/** Leader liveness, commit propagation, and ReadIndex confirmation via `context`. */
export interface HeartbeatRequest extends Envelope {
  readonly type: 'heartbeat';
  readonly commit: number;
  /** A ReadIndex round this heartbeat confirms leadership for; 0 for none. */
  readonly context: number;
}

export interface HeartbeatResponse extends Envelope {
  readonly type: 'heartbeatResponse';
  readonly context: number;
}

/** InstallSnapshot (§7). The transport splits the data into chunks. */
export interface SnapshotRequest extends Envelope {
  readonly type: 'snapshot';
  readonly snapshot: Snapshot;
}

/** Leadership transfer (thesis §3.10): the target starts an election at once. */
export interface TimeoutNow extends Envelope {
  readonly type: 'timeoutNow';
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotRequest
  | TimeoutNow;

export type MessageType = Message['type'];

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** A linearizable read that may be served once the state machine has applied `index`. */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

/**
 * What the driver must do, in order: persist `snapshot`, `entries` and `hardState` (one
 * synced write), then send `messages`, then apply `snapshot` (if any) and `committedEntries` to
 * the state machine, then call advance(). `entries` replace any stored entries from
 * `entries[0].index` on.
 */
export interface Ready {
  readonly hardState: HardState | undefined;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | undefined;
  readonly messages: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** Current role and leader, for the driver to publish (not persisted). */
  readonly role: Role;
  readonly leaderId: NodeId;
}

export interface RaftConfig {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  /** Ticks without hearing from a leader before an election; randomized in [n, 2n). */
  readonly electionTicks: number;
  /** Ticks between a leader's heartbeats; must be below electionTicks. */
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  /** A leader that has not heard from a quorum for electionTicks steps down. */
  readonly checkQuorum: boolean;
  /** Append messages in flight to one follower before waiting for responses. */
  readonly maxInflightMessages: number;
  /** Entry bytes per append message (at least one entry is always sent). */
  readonly maxBytesPerMessage: number;
  /** Uniform in [0, 1); seeded in simulations. The core has no other source of randomness. */
  readonly random: () => number;
}

/** What a node restarts from: its persisted hard state, snapshot and the entries after it. */
export interface PersistedState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | undefined;
  readonly entries: readonly Entry[];
}
