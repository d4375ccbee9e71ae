// The driver around the deterministic core: it ticks on a timer, feeds received messages in,
// and works through each Ready in Raft's order (persist with sync, then send, then apply, then
// advance). This is the API the controller uses: propose() resolves when the entry is
// committed and applied here, onCommitted() streams committed entries in order.

import { ErrorCode, WeirError } from '@weir/protocol';
import { DEFAULT_RAFT_CONFIG, RaftCore } from '../core/raft.js';
import {
  type Entry,
  type HardState,
  type Message,
  NO_NODE,
  type NodeId,
  type PersistedState,
  type RaftConfig,
  type Ready,
  type Role,
  type Snapshot,
} from '../core/types.js';

/** Durable storage of the log (RaftStorage on `level` in production). */
export interface RaftNodeStorage {
  load(): Promise<PersistedState>;
  persist(ready: {
    hardState?: HardState;
    entries: readonly Entry[];
    snapshot?: Snapshot;
  }): Promise<void>;
  saveSnapshot(snapshot: Snapshot): Promise<void>;
}

/** Delivers messages to peers; a message to a peer that is down is dropped, not queued. */
export interface RaftTransport {
  send(messages: readonly Message[]): void;
  /** Called with every message that arrives for this node. */
  onMessage(handler: (message: Message) => void): void;
}

/** The replicated state machine: applies committed entries, restores from snapshots. */
export interface StateMachine {
  apply(entries: readonly Entry[]): void | Promise<void>;
  restore(snapshot: Snapshot): void | Promise<void>;
}

export interface RaftNodeOptions {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  readonly storage: RaftNodeStorage;
  readonly transport: RaftTransport;
  readonly stateMachine: StateMachine;
  /** Milliseconds per tick; electionTicks and heartbeatTicks count in these. */
  readonly tickMs?: number;
  /** How long propose() waits for its entry to commit before failing with REQUEST_TIMED_OUT. */
  readonly proposeTimeoutMs?: number;
  readonly raft?: Partial<Omit<RaftConfig, 'id' | 'voters'>>;
  /** Told about role and leader changes. */
  readonly onRoleChange?: (role: Role, leaderId: NodeId, term: number) => void;
}

interface PendingProposal {
  readonly term: number;
  readonly resolve: (position: { index: number; term: number }) => void;
  readonly reject: (error: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

interface PendingRead {
  readonly resolve: (index: number) => void;
  readonly reject: (error: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

const DEFAULT_TICK_MS = 100;
const DEFAULT_PROPOSE_TIMEOUT_MS = 10_000;

export class RaftNode {
  private readonly core: RaftCore;
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly reads = new Map<number, PendingRead>();
  private readonly committedHandlers: ((entries: readonly Entry[]) => void)[] = [];
  private readonly ticker: NodeJS.Timeout;
  /** Reads confirmed by a quorum, waiting for the state machine to reach their index. */
  private readsAwaitingApply: { index: number; read: PendingRead }[] = [];
  private nextReadId = 1;
  private draining: Promise<void> | undefined;
  private stopped = false;
  private failure: unknown;
  private lastRole: Role = 'follower';
  private lastLeader: NodeId = NO_NODE;

  private constructor(
    private readonly options: RaftNodeOptions,
    persisted: PersistedState,
  ) {
    this.core = new RaftCore(
      {
        ...DEFAULT_RAFT_CONFIG,
        random: Math.random,
        ...options.raft,
        id: options.id,
        voters: options.voters,
      },
      persisted,
    );
    options.transport.onMessage((message) => this.receive(message));
    this.ticker = setInterval(() => this.tick(), options.tickMs ?? DEFAULT_TICK_MS);
    this.ticker.unref();
  }

  /** Loads the persisted state, restores the state machine from its snapshot, and starts. */
  static async start(options: RaftNodeOptions): Promise<RaftNode> {
    checkVoters(options.id, options.voters);
    const persisted = await options.storage.load();
    const snapshotVoters = persisted.snapshot?.metadata.voters;
    if (snapshotVoters !== undefined && !sameVoters(snapshotVoters, options.voters)) {
      throw new WeirError(
        ErrorCode.INCONSISTENT_VOTER_SET,
        `the configured voters ${options.voters.join(',')} differ from the voters ${snapshotVoters.join(',')} in the stored snapshot; dynamic membership is not supported, start with the original voter set`,
      );
    }
    if (persisted.snapshot !== undefined) await options.stateMachine.restore(persisted.snapshot);
    const node = new RaftNode(options, persisted);
    node.process();
    return node;
  }

  get id(): NodeId {
    return this.options.id;
  }
  get isLeader(): boolean {
    return this.core.role === 'leader';
  }
  get leaderId(): NodeId {
    return this.core.leaderId;
  }
  get role(): Role {
    return this.core.role;
  }
  get term(): number {
    return this.core.term;
  }
  get commitIndex(): number {
    return this.core.commitIndex;
  }
  get appliedIndex(): number {
    return this.core.appliedIndex;
  }
  get lastIndex(): number {
    return this.core.lastIndex;
  }
  get firstIndex(): number {
    return this.core.firstIndex;
  }

  /** Committed entries in [from, to), for observers fetching the log (FetchLog). */
  committedEntries(from: number, to: number, maxBytes?: number): Entry[] {
    return this.core.entries(from, Math.min(to, this.core.commitIndex + 1), maxBytes);
  }

  termAt(index: number): number | undefined {
    return this.core.termAt(index);
  }

  latestSnapshot(): Snapshot | undefined {
    return this.core.latestSnapshot();
  }

  followerMatchIndexes(): Map<NodeId, number> {
    return this.core.followerMatchIndexes();
  }

  /** Called, in order, with every batch of committed entries this node applies. */
  onCommitted(handler: (entries: readonly Entry[]) => void): void {
    this.committedHandlers.push(handler);
  }

  /**
   * Appends `data` to the log. Resolves with its position once it is committed and applied
   * on this node; NOT_CONTROLLER when this node does not lead (the error names the leader),
   * REQUEST_TIMED_OUT when it does not commit in time (it may still commit later).
   */
  propose(data: Uint8Array): Promise<{ index: number; term: number }> {
    this.checkRunning();
    const position = this.core.propose(data);
    if (position === undefined) return Promise.reject(this.notLeader());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.proposals.delete(position.index);
        reject(
          new WeirError(
            ErrorCode.REQUEST_TIMED_OUT,
            `entry ${position.index} did not commit within ${this.proposeTimeoutMs} ms; it may still commit`,
          ),
        );
      }, this.proposeTimeoutMs);
      this.proposals.set(position.index, { term: position.term, resolve, reject, timer });
      this.process();
    });
  }

  /**
   * A linearizable read barrier (ReadIndex): resolves with an index once this node has
   * confirmed its leadership with a quorum and applied up to that index.
   */
  readIndex(): Promise<number> {
    this.checkRunning();
    if (!this.isLeader) return Promise.reject(this.notLeader());
    const requestId = this.nextReadId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(requestId);
        reject(new WeirError(ErrorCode.REQUEST_TIMED_OUT, 'leadership was not confirmed in time'));
      }, this.proposeTimeoutMs);
      this.reads.set(requestId, { resolve, reject, timer });
      this.core.readIndex(requestId);
      this.process();
    });
  }

  /** Asks `to` to take over (controlled shutdown); watch leaderId to see it happen. */
  transferLeadership(to: NodeId): void {
    this.checkRunning();
    this.core.transferLeadership(to);
    this.process();
  }

  /** Records the application's snapshot at an applied index and compacts the log before it. */
  async snapshot(index: number, data: Uint8Array): Promise<void> {
    this.checkRunning();
    // A snapshot from the leader that already covers `index` makes this one unnecessary.
    if (!this.core.compact(index, data)) return;
    await this.options.storage.saveSnapshot(this.core.latestSnapshot()!);
  }

  /** Stops ticking and fails what is pending; storage and transport belong to the caller. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.ticker);
    await this.draining;
    this.failPending(new WeirError(ErrorCode.NOT_CONTROLLER, `raft node ${this.id} stopped`));
  }

  private get proposeTimeoutMs(): number {
    return this.options.proposeTimeoutMs ?? DEFAULT_PROPOSE_TIMEOUT_MS;
  }

  private tick(): void {
    if (this.stopped || this.failure !== undefined) return;
    this.core.tick();
    this.process();
  }

  private receive(message: Message): void {
    if (this.stopped || this.failure !== undefined) return;
    this.core.step(message);
    this.process();
  }

  /** Works through Readies one at a time; new input during an await is picked up after. */
  private process(): void {
    if (this.draining !== undefined || this.stopped || this.failure !== undefined) return;
    this.draining = this.drainReadies().finally(() => (this.draining = undefined));
  }

  private async drainReadies(): Promise<void> {
    try {
      while (!this.stopped && this.core.hasReady()) await this.handleReady(this.core.ready());
    } catch (error) {
      // A storage failure leaves us unable to promise durability: stop taking part (the
      // process should restart and recover from what is on disk).
      this.failure = error;
      clearInterval(this.ticker);
      this.failPending(
        new WeirError(
          ErrorCode.KAFKA_STORAGE_ERROR,
          `raft node ${this.id} failed to persist its log`,
          {
            cause: error,
          },
        ),
      );
    }
  }

  private async handleReady(ready: Ready): Promise<void> {
    // A leader's messages (appends, heartbeats) promise nothing about its own disk: they go
    // out while its write is under way, and its own log counts towards a commit only once the
    // write has landed (advance). Raft thesis §10.2.1. Everyone else answers after the write.
    const sendFirst = ready.role === 'leader';
    if (sendFirst && ready.messages.length > 0) this.options.transport.send(ready.messages);
    if (ready.hardState !== undefined || ready.entries.length > 0 || ready.snapshot !== undefined) {
      await this.options.storage.persist({
        ...(ready.hardState !== undefined && { hardState: ready.hardState }),
        entries: ready.entries,
        ...(ready.snapshot !== undefined && { snapshot: ready.snapshot }),
      });
    }
    if (!sendFirst && ready.messages.length > 0) this.options.transport.send(ready.messages);
    if (ready.snapshot !== undefined) await this.options.stateMachine.restore(ready.snapshot);
    if (ready.committedEntries.length > 0) {
      await this.options.stateMachine.apply(ready.committedEntries);
      for (const handler of this.committedHandlers) handler(ready.committedEntries);
    }
    this.core.advance(ready);
    this.settleProposals(ready.committedEntries);
    this.settleReads(ready);
    this.reportRole(ready);
  }

  private settleProposals(committed: readonly Entry[]): void {
    for (const entry of committed) {
      const proposal = this.proposals.get(entry.index);
      if (proposal === undefined) continue;
      this.proposals.delete(entry.index);
      clearTimeout(proposal.timer);
      if (entry.term === proposal.term) {
        proposal.resolve({ index: entry.index, term: entry.term });
      } else {
        // Another leader's entry took this index: ours was overwritten and never commits.
        proposal.reject(this.notLeader());
      }
    }
  }

  private settleReads(ready: Ready): void {
    for (const state of ready.readStates) {
      const read = this.reads.get(state.requestId);
      if (read === undefined) continue;
      this.reads.delete(state.requestId);
      // Served once the state machine has caught up with the read index.
      this.readsAwaitingApply.push({ index: state.index, read });
    }
    const applied = this.core.appliedIndex;
    const waiting = this.readsAwaitingApply;
    this.readsAwaitingApply = waiting.filter(({ index }) => index > applied);
    for (const { index, read } of waiting) {
      if (index > applied) continue;
      clearTimeout(read.timer);
      read.resolve(index);
    }
  }

  private reportRole(ready: Ready): void {
    if (ready.role === this.lastRole && ready.leaderId === this.lastLeader) return;
    this.lastRole = ready.role;
    this.lastLeader = ready.leaderId;
    if (ready.role !== 'leader') this.failReads(this.notLeader());
    this.options.onRoleChange?.(ready.role, ready.leaderId, this.core.term);
  }

  private failReads(error: WeirError): void {
    for (const read of [...this.reads.values(), ...this.readsAwaitingApply.map((w) => w.read)]) {
      clearTimeout(read.timer);
      read.reject(error);
    }
    this.reads.clear();
    this.readsAwaitingApply = [];
  }

  private failPending(error: WeirError): void {
    for (const proposal of this.proposals.values()) {
      clearTimeout(proposal.timer);
      proposal.reject(error);
    }
    this.proposals.clear();
    this.failReads(error);
  }

  private notLeader(): WeirError {
    const leader = this.core.leaderId;
    return new WeirError(
      ErrorCode.NOT_CONTROLLER,
      leader === NO_NODE
        ? `node ${this.id} is not the leader and no leader is known yet; retry shortly`
        : `node ${this.id} is not the leader; the leader is node ${leader}`,
    );
  }

  private checkRunning(): void {
    if (this.stopped)
      throw new WeirError(ErrorCode.NOT_CONTROLLER, `raft node ${this.id} is stopped`);
    if (this.failure !== undefined) {
      throw new WeirError(ErrorCode.KAFKA_STORAGE_ERROR, `raft node ${this.id} failed`, {
        cause: this.failure,
      });
    }
  }
}

function checkVoters(id: NodeId, voters: readonly NodeId[]): void {
  if (voters.length === 0) {
    throw new WeirError(ErrorCode.INVALID_CONFIG, 'the voter set is empty; give --quorum-voters');
  }
  if (new Set(voters).size !== voters.length) {
    throw new WeirError(
      ErrorCode.INVALID_CONFIG,
      `the voter set ${voters.join(',')} names a node twice`,
    );
  }
  if (voters.some((voter) => !Number.isInteger(voter) || voter < 0)) {
    throw new WeirError(
      ErrorCode.INVALID_CONFIG,
      `voter ids must be non-negative integers: ${voters.join(',')}`,
    );
  }
  if (id < 0 || !Number.isInteger(id)) {
    throw new WeirError(
      ErrorCode.INVALID_CONFIG,
      `node id must be a non-negative integer, got ${id}`,
    );
  }
}

function sameVoters(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  const sorted = (ids: readonly NodeId[]) => [...ids].sort((x, y) => x - y).join(',');
  return sorted(a) === sorted(b);
}
