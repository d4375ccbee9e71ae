// The Raft consensus core (Ongaro & Ousterhout, "In Search of an Understandable Consensus
// Algorithm", and Ongaro's thesis), shaped like etcd-raft: no I/O, no clock, no randomness of
// its own. Time is tick(), input is step(message), output is a Ready (persist, send, apply)
// that the driver acknowledges with advance(). Behaviour per role is the step function chosen
// when the role changes.

import { ErrorCode, WeirError, assert } from '@weir/protocol';
import { Progress } from './progress.js';
import { RaftLog } from './raft-log.js';
import {
  type AppendRequest,
  type AppendResponse,
  type Entry,
  type HardState,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type Message,
  NO_NODE,
  type NodeId,
  type PersistedState,
  type RaftConfig,
  type ReadState,
  type Ready,
  type Role,
  type Snapshot,
  type SnapshotRequest,
  type VoteRequest,
  type VoteResponse,
} from './types.js';

export const DEFAULT_RAFT_CONFIG: Omit<RaftConfig, 'id' | 'voters' | 'random'> = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  maxInflightMessages: 256,
  maxBytesPerMessage: 1024 * 1024,
};

type StepFunction = (message: Message) => void;

/** A ReadIndex request waiting for a quorum of heartbeat answers (thesis §6.4). */
interface PendingRead {
  readonly requestId: number;
  readonly index: number;
  readonly context: number;
  readonly acks: Set<NodeId>;
}

export class RaftCore {
  readonly id: NodeId;
  private readonly config: RaftConfig;
  private readonly voters: readonly NodeId[];
  private readonly log: RaftLog;

  private currentTerm = 0;
  private vote: NodeId = NO_NODE;
  private lead: NodeId = NO_NODE;
  private currentRole: Role = 'follower';
  private stepRole: StepFunction;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private readonly votes = new Map<NodeId, boolean>();
  private readonly progress = new Map<NodeId, Progress>();
  private leadTransferee: NodeId = NO_NODE;
  private broadcastPending = false;

  private messages: Message[] = [];
  private readStates: ReadState[] = [];
  private pendingReads: PendingRead[] = [];
  /** Reads asked for before this leader committed an entry of its own term (thesis §6.4). */
  private readsAwaitingCommit: number[] = [];
  private nextReadContext = 1;

  /** The hard state the driver last persisted. */
  private persistedHardState: HardState;
  private readyOutstanding = false;

  constructor(config: RaftConfig, persisted?: PersistedState) {
    validateConfig(config);
    this.config = config;
    this.id = config.id;
    this.voters = config.voters;
    const hardState = persisted?.hardState ?? { term: 0, vote: NO_NODE, commit: 0 };
    this.log = RaftLog.fromPersisted(
      persisted?.snapshot,
      persisted?.entries ?? [],
      hardState.commit,
    );
    this.currentTerm = hardState.term;
    this.vote = hardState.vote;
    this.persistedHardState = { ...hardState, commit: this.log.committed };
    this.stepRole = this.stepFollower;
    this.becomeFollower(this.currentTerm, NO_NODE);
  }

  get role(): Role {
    return this.currentRole;
  }
  get leaderId(): NodeId {
    return this.lead;
  }
  get term(): number {
    return this.currentTerm;
  }
  get commitIndex(): number {
    return this.log.committed;
  }
  get lastIndex(): number {
    return this.log.lastIndex;
  }
  get appliedIndex(): number {
    return this.log.applied;
  }
  get firstIndex(): number {
    return this.log.firstIndex;
  }
  get votedFor(): NodeId {
    return this.vote;
  }
  get voterIds(): readonly NodeId[] {
    return this.voters;
  }

  /** Entries in [from, to) (for observers and tests); `from` must not be compacted. */
  entries(from: number, to: number, maxBytes?: number): Entry[] {
    return this.log.slice(from, to, maxBytes);
  }

  termAt(index: number): number | undefined {
    return this.log.term(index);
  }

  latestSnapshot(): Snapshot | undefined {
    return this.log.latestSnapshot;
  }

  /** Each follower's match index, as the leader sees it (for DescribeQuorum). */
  followerMatchIndexes(): Map<NodeId, number> {
    return new Map([...this.progress].map(([id, pr]) => [id, pr.match]));
  }

  // ---------------------------------------------------------------------------------------
  // Inputs
  // ---------------------------------------------------------------------------------------

  tick(): void {
    if (this.currentRole === 'leader') this.tickLeader();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout && this.isVoter(this.id)) {
      this.electionElapsed = 0;
      this.campaign();
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const pr of this.progress.values()) pr.ticksInState++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      // §6.2 of the thesis: a leader that cannot reach a quorum steps down, so clients and
      // observers look elsewhere instead of waiting on a leader that cannot commit.
      if (this.config.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.currentTerm, NO_NODE);
        return;
      }
      this.leadTransferee = NO_NODE; // a transfer that did not finish within a timeout is abandoned
    }
    this.retryStalledSnapshots();
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat(0);
    }
  }

  /** Starts an election now (pre-vote first when enabled). */
  campaign(): void {
    if (this.currentRole === 'leader' || !this.isVoter(this.id)) return;
    if (this.config.preVote) this.becomePreCandidate();
    else this.becomeCandidate(false);
  }

  /** Appends `data` if this node is the leader; the entry commits later (see Ready). */
  propose(data: Uint8Array): { index: number; term: number } | undefined {
    if (this.currentRole !== 'leader' || this.leadTransferee !== NO_NODE) return undefined;
    const entry: Entry = {
      term: this.currentTerm,
      index: this.log.lastIndex + 1,
      type: 'normal',
      data,
    };
    this.log.append([entry]);
    // Sent when the driver next asks for a Ready, so proposals made together share messages.
    this.broadcastPending = true;
    return { index: entry.index, term: entry.term };
  }

  /**
   * A linearizable read (thesis §6.4): once a quorum confirms this node still leads, a
   * ReadState says the read may be served when the state machine has applied its index.
   * Ignored by non-leaders (the driver redirects the client).
   */
  readIndex(requestId: number): void {
    if (this.currentRole !== 'leader') return;
    if (this.log.term(this.log.committed) !== this.currentTerm) {
      this.readsAwaitingCommit.push(requestId);
      return;
    }
    this.startRead(requestId);
  }

  private startRead(requestId: number): void {
    const index = this.log.committed;
    if (this.voters.length === 1) {
      this.readStates.push({ requestId, index });
      return;
    }
    const context = this.nextReadContext++;
    this.pendingReads.push({ requestId, index, context, acks: new Set([this.id]) });
    this.broadcastHeartbeat(context);
  }

  /** Hands leadership to `to` (thesis §3.10): brings it up to date, then tells it to run. */
  transferLeadership(to: NodeId): void {
    if (this.currentRole !== 'leader' || to === this.id || !this.isVoter(to)) return;
    this.leadTransferee = to;
    this.electionElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex) this.send({ type: 'timeoutNow', to });
    else this.sendAppend(to);
  }

  /**
   * The application's snapshot at an applied index: the log before it is compacted (§7).
   * False, and nothing changes, when a snapshot from the leader already covers the index (it
   * can replace the log between the application applying an entry and snapshotting it).
   */
  compact(index: number, data: Uint8Array): boolean {
    if (index <= this.log.snapshotIndex) return false;
    const term = this.log.term(index);
    assert(term !== undefined, () => `cannot snapshot at ${index}: no such entry`);
    this.log.compact({ metadata: { index, term, voters: this.voters }, data });
    return true;
  }

  step(message: Message): void {
    if (message.to !== this.id) return;
    if (!this.acceptTerm(message)) return;
    switch (message.type) {
      case 'vote':
      case 'preVote':
        this.handleVoteRequest(message);
        return;
      default:
        this.stepRole(message);
    }
  }

  /**
   * Term rules common to every role (§5.1): a higher term makes us a follower, a lower one
   * is answered or ignored. False when the message must go no further.
   */
  private acceptTerm(m: Message): boolean {
    if (m.term > this.currentTerm) {
      if ((m.type === 'vote' || m.type === 'preVote') && !m.transfer && this.inLease()) {
        // A node that hears from a live leader ignores elections (thesis §4.2.3), so a node
        // that was partitioned away cannot depose it.
        return false;
      }
      if (m.type === 'preVote') return true; // asking for a future term changes nothing yet
      if (m.type === 'preVoteResponse' && m.granted) return true; // our own future term
      const leader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
      this.becomeFollower(m.term, leader ? m.from : NO_NODE);
      return true;
    }
    if (m.term < this.currentTerm) {
      if (
        (this.config.checkQuorum || this.config.preVote) &&
        (m.type === 'append' || m.type === 'heartbeat')
      ) {
        // Tell a stale leader about the newer term, or it would never step down while it
        // cannot hear the new leader (etcd does the same).
        this.send({
          type: 'appendResponse',
          to: m.from,
          success: false,
          index: 0,
          hintIndex: 0,
          hintTerm: 0,
        });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResponse', to: m.from, granted: false });
      }
      return false;
    }
    return true;
  }

  private inLease(): boolean {
    return (
      this.config.checkQuorum &&
      this.lead !== NO_NODE &&
      this.electionElapsed < this.config.electionTicks
    );
  }

  /** RequestVote receiver (§5.2, §5.4.1), pre-vote included. */
  private handleVoteRequest(m: VoteRequest): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === NO_NODE && this.lead === NO_NODE) ||
      (m.type === 'preVote' && m.term > this.currentTerm);
    const grant = canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    const responseType = m.type === 'vote' ? 'voteResponse' : 'preVoteResponse';
    if (!grant) {
      this.send({ type: responseType, to: m.from, granted: false });
      return;
    }
    // A granted pre-vote answers with the requested term so the pre-candidate counts it.
    this.send({ type: responseType, to: m.from, term: m.term, granted: true });
    if (m.type === 'vote') {
      this.electionElapsed = 0;
      this.vote = m.from; // persisted before the answer leaves (Ready order)
    }
  }

  // ---------------------------------------------------------------------------------------
  // Roles
  // ---------------------------------------------------------------------------------------

  private becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.currentRole = 'follower';
    this.stepRole = this.stepFollower;
  }

  private becomePreCandidate(): void {
    // The term does not change: a pre-vote that fails leaves no trace (thesis §9.6).
    this.votes.clear();
    this.lead = NO_NODE;
    this.currentRole = 'preCandidate';
    this.stepRole = this.stepCandidate;
    this.requestVotes('preVote', this.currentTerm + 1, false);
  }

  private becomeCandidate(transfer: boolean): void {
    this.reset(this.currentTerm + 1);
    this.vote = this.id;
    this.currentRole = 'candidate';
    this.stepRole = this.stepCandidate;
    this.requestVotes('vote', this.currentTerm, transfer);
  }

  private becomeLeader(): void {
    assert(this.currentRole === 'candidate', () => `leader from role ${this.currentRole}`);
    this.reset(this.currentTerm);
    this.lead = this.id;
    this.currentRole = 'leader';
    this.stepRole = this.stepLeader;
    for (const id of this.voters) {
      const pr = new Progress(this.log.lastIndex + 1, this.config.maxInflightMessages);
      if (id === this.id) pr.match = this.log.stableIndex;
      this.progress.set(id, pr);
    }
    // An empty entry of the new term: once it commits, so do all entries before it (§5.4.2).
    this.log.append([
      {
        term: this.currentTerm,
        index: this.log.lastIndex + 1,
        type: 'noop',
        data: new Uint8Array(0),
      },
    ]);
    this.broadcastAppend();
  }

  private reset(term: number): void {
    if (term !== this.currentTerm) {
      assert(term > this.currentTerm, () => `term going back from ${this.currentTerm} to ${term}`);
      this.currentTerm = term;
      this.vote = NO_NODE;
    }
    this.lead = NO_NODE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.config.electionTicks + Math.floor(this.config.random() * this.config.electionTicks);
    this.votes.clear();
    this.progress.clear();
    this.leadTransferee = NO_NODE;
    this.broadcastPending = false;
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
  }

  private requestVotes(type: 'vote' | 'preVote', term: number, transfer: boolean): void {
    this.votes.set(this.id, true);
    if (this.tallyVotes()) return;
    for (const id of this.voters) {
      if (id === this.id) continue;
      this.send({
        type,
        to: id,
        term,
        lastLogIndex: this.log.lastIndex,
        lastLogTerm: this.log.lastTerm,
        transfer,
      });
    }
  }

  /** Moves on when the votes decide the election; true when they did. */
  private tallyVotes(): boolean {
    let granted = 0;
    let rejected = 0;
    for (const vote of this.votes.values()) {
      if (vote) granted++;
      else rejected++;
    }
    if (granted >= this.quorum()) {
      if (this.currentRole === 'preCandidate') this.becomeCandidate(false);
      else this.becomeLeader();
      return true;
    }
    if (rejected >= this.quorum()) {
      this.becomeFollower(this.currentTerm, NO_NODE);
      return true;
    }
    return false;
  }

  private stepFollower = (m: Message): void => {
    switch (m.type) {
      case 'append':
        this.heardFromLeader(m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.heardFromLeader(m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.heardFromLeader(m.from);
        this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        if (this.isVoter(this.id)) this.becomeCandidate(true); // skip pre-vote: the leader asked
        return;
      default:
        return; // stale answers to an earlier candidacy or leadership
    }
  };

  private heardFromLeader(from: NodeId): void {
    this.electionElapsed = 0;
    this.lead = from;
  }

  private stepCandidate = (m: Message): void => {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // A leader exists for our term (§5.2): follow it.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case 'voteResponse':
      case 'preVoteResponse':
        this.handleVoteResponse(m);
        return;
      default:
        return;
    }
  };

  private handleVoteResponse(m: VoteResponse): void {
    const expected = this.currentRole === 'preCandidate' ? 'preVoteResponse' : 'voteResponse';
    if (m.type !== expected) return;
    if (!this.votes.has(m.from)) this.votes.set(m.from, m.granted);
    this.tallyVotes();
  }

  private stepLeader = (m: Message): void => {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case 'appendResponse':
        pr.recentActive = true;
        if (m.success) this.handleAppendSuccess(m, pr);
        else this.handleAppendRejection(m, pr);
        return;
      case 'heartbeatResponse':
        this.handleHeartbeatResponse(m, pr);
        return;
      default:
        return;
    }
  };

  // ---------------------------------------------------------------------------------------
  // Replication: follower side
  // ---------------------------------------------------------------------------------------

  private handleAppend(m: AppendRequest): void {
    if (m.prevLogIndex < this.log.committed) {
      // Everything up to our commit matches the leader already (§5.4 Leader Completeness).
      this.acknowledgeAppend(m.from, this.log.committed);
      return;
    }
    if (this.log.matchTerm(m.prevLogIndex, m.prevLogTerm)) {
      const lastNew = this.log.appendFromLeader(m.prevLogIndex, m.entries);
      this.log.commitTo(Math.min(m.commit, lastNew));
      this.acknowledgeAppend(m.from, lastNew);
      return;
    }
    const hint = this.log.findConflictByTerm(
      Math.min(m.prevLogIndex, this.log.lastIndex),
      m.prevLogTerm,
    );
    this.send({
      type: 'appendResponse',
      to: m.from,
      success: false,
      index: m.prevLogIndex,
      hintIndex: hint.index,
      hintTerm: hint.term,
    });
  }

  /** Tells the leader our log matches its own through `index`. */
  private acknowledgeAppend(to: NodeId, index: number): void {
    this.send({ type: 'appendResponse', to, success: true, index, hintIndex: 0, hintTerm: 0 });
  }

  private handleHeartbeat(m: HeartbeatRequest): void {
    // The leader sends min(our match, its commit), so this never runs past what we hold.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex));
    this.send({ type: 'heartbeatResponse', to: m.from, context: m.context });
  }

  private handleSnapshot(m: SnapshotRequest): void {
    const { index, term } = m.snapshot.metadata;
    if (index <= this.log.committed) {
      this.acknowledgeAppend(m.from, this.log.committed);
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // We hold the snapshot's last entry already: no need to replace the log (etcd).
      this.log.commitTo(index);
    } else {
      this.log.restore(m.snapshot);
    }
    this.acknowledgeAppend(m.from, index);
  }

  // ---------------------------------------------------------------------------------------
  // Replication: leader side
  // ---------------------------------------------------------------------------------------

  private handleAppendSuccess(m: AppendResponse, pr: Progress): void {
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      if (wasPaused && !pr.isPaused()) this.sendAppend(m.from);
      return;
    }
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) pr.becomeProbe();
    if (this.maybeCommit()) this.broadcastAppend(true);
    else this.sendAppend(m.from);
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex) {
      this.send({ type: 'timeoutNow', to: m.from });
    }
  }

  private handleAppendRejection(m: AppendResponse, pr: Progress): void {
    // Skip back over a whole term at a time (§5.3's optimization, etcd's findConflictByTerm).
    const probeFrom =
      m.hintTerm > 0 ? this.log.findConflictByTerm(m.hintIndex, m.hintTerm).index : m.hintIndex;
    if (!pr.maybeDecrease(m.index, probeFrom)) return;
    if (pr.state === 'replicate') pr.becomeProbe();
    this.sendAppend(m.from);
  }

  private handleHeartbeatResponse(m: HeartbeatResponse, pr: Progress): void {
    pr.recentActive = true;
    pr.onHeartbeatResponse();
    // Even an empty append: when appends to this follower were lost, `next` may already lie
    // past our log end, and only a rejection tells us where the follower really is (etcd).
    if (pr.match < this.log.lastIndex) this.sendAppend(m.from, true);
    if (m.context !== 0) this.acknowledgeRead(m.from, m.context);
  }

  private acknowledgeRead(from: NodeId, context: number): void {
    const read = this.pendingReads.find((r) => r.context === context);
    if (read === undefined) return;
    read.acks.add(from);
    if (read.acks.size < this.quorum()) return;
    // A quorum answered this round: it and every earlier round are confirmed.
    while (this.pendingReads.length > 0 && this.pendingReads[0]!.context <= context) {
      const done = this.pendingReads.shift()!;
      this.readStates.push({ requestId: done.requestId, index: done.index });
    }
  }

  /**
   * Commits the highest index a quorum holds, if it is of the current term (§5.4.2: entries
   * of earlier terms commit only indirectly). True when the commit index moved.
   */
  private maybeCommit(): boolean {
    const matches = this.voters.map((id) => this.progress.get(id)!.match).sort((a, b) => b - a);
    const quorumIndex = matches[this.quorum() - 1]!;
    if (quorumIndex <= this.log.committed || this.log.term(quorumIndex) !== this.currentTerm) {
      return false;
    }
    this.log.commitTo(quorumIndex);
    this.onLeaderCommit();
    return true;
  }

  private onLeaderCommit(): void {
    if (
      this.readsAwaitingCommit.length > 0 &&
      this.log.term(this.log.committed) === this.currentTerm
    ) {
      const waiting = this.readsAwaitingCommit;
      this.readsAwaitingCommit = [];
      for (const requestId of waiting) this.startRead(requestId);
    }
  }

  /** `commitChanged`: followers with nothing new still get an (empty) append carrying it. */
  private broadcastAppend(commitChanged = false): void {
    this.broadcastPending = false;
    for (const id of this.voters) if (id !== this.id) this.sendAppend(id, commitChanged);
  }

  private broadcastHeartbeat(context: number): void {
    for (const id of this.voters) {
      if (id === this.id) continue;
      const pr = this.progress.get(id)!;
      this.send({
        type: 'heartbeat',
        to: id,
        commit: Math.min(pr.match, this.log.committed),
        context,
      });
    }
  }

  /** Sends `to` the entries it lacks, or the snapshot when they are compacted away. */
  private sendAppend(to: NodeId, sendIfEmpty = false): void {
    const pr = this.progress.get(to)!;
    if (pr.isPaused()) return;
    const prevLogIndex = pr.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) {
      this.sendSnapshot(to, pr);
      return;
    }
    const entries = this.log.slice(pr.next, this.log.lastIndex + 1, this.config.maxBytesPerMessage);
    if (entries.length === 0 && pr.state === 'replicate' && !sendIfEmpty) return;
    this.send({
      type: 'append',
      to,
      prevLogIndex,
      prevLogTerm,
      entries,
      commit: this.log.committed,
    });
    pr.sentAppend(entries.at(-1)?.index ?? prevLogIndex, entries.length);
  }

  private sendSnapshot(to: NodeId, pr: Progress): void {
    const snapshot = this.log.latestSnapshot;
    assert(
      snapshot !== undefined,
      () => `follower ${to} needs index ${pr.next}, compacted without a snapshot`,
    );
    this.send({ type: 'snapshot', to, snapshot });
    pr.becomeSnapshot(snapshot.metadata.index);
  }

  /** A snapshot message lost on the way leaves the follower waiting: send it again later. */
  private retryStalledSnapshots(): void {
    for (const [id, pr] of this.progress) {
      if (pr.state === 'snapshot' && pr.ticksInState >= this.config.electionTicks) {
        pr.becomeProbe();
        this.sendAppend(id);
      }
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const [id, pr] of this.progress) {
      if (id === this.id || pr.recentActive) active++;
      pr.recentActive = false;
    }
    return active >= this.quorum();
  }

  private quorum(): number {
    return Math.floor(this.voters.length / 2) + 1;
  }

  private isVoter(id: NodeId): boolean {
    return this.voters.includes(id);
  }

  private send(message: DistributiveOmit<Message, 'from' | 'term'> & { term?: number }): void {
    this.messages.push({
      ...message,
      from: this.id,
      term: message.term ?? this.currentTerm,
    });
  }

  // ---------------------------------------------------------------------------------------
  // Ready
  // ---------------------------------------------------------------------------------------

  hasReady(): boolean {
    if (this.broadcastPending) return true;
    return (
      this.messages.length > 0 ||
      this.readStates.length > 0 ||
      this.log.pendingSnapshot !== undefined ||
      this.log.unstableFrom <= this.log.lastIndex ||
      this.log.entriesToApply(this.log.stableIndex).length > 0 ||
      !sameHardState(this.hardState(), this.persistedHardState)
    );
  }

  ready(): Ready {
    assert(!this.readyOutstanding, 'ready() called again before advance()');
    if (this.broadcastPending) this.broadcastAppend();
    const entries = this.log.unstableEntries();
    const snapshot = this.log.pendingSnapshot;
    const hardState = this.hardState();
    const persistedThrough = Math.max(this.log.stableIndex, entries.at(-1)?.index ?? 0);
    const ready: Ready = {
      hardState: sameHardState(hardState, this.persistedHardState) ? undefined : hardState,
      entries,
      snapshot,
      messages: this.messages,
      committedEntries: snapshot === undefined ? this.log.entriesToApply(persistedThrough) : [],
      readStates: this.readStates,
      role: this.currentRole,
      leaderId: this.lead,
    };
    this.messages = [];
    this.readStates = [];
    this.log.unstableFrom = this.log.lastIndex + 1;
    this.readyOutstanding = true;
    return ready;
  }

  /** The driver persisted, sent and applied `ready`. */
  advance(ready: Ready): void {
    assert(this.readyOutstanding, 'advance() without an outstanding ready()');
    this.readyOutstanding = false;
    if (ready.hardState !== undefined) this.persistedHardState = ready.hardState;
    if (ready.snapshot !== undefined) this.log.snapshotApplied(ready.snapshot);
    const last = ready.entries.at(-1);
    if (last !== undefined) this.log.stableTo(last.index, last.term);
    const applied = ready.committedEntries.at(-1);
    if (applied !== undefined) this.log.appliedTo(applied.index);
    if (this.currentRole === 'leader') {
      const self = this.progress.get(this.id)!;
      self.maybeUpdate(this.log.stableIndex);
      if (this.maybeCommit()) this.broadcastAppend(true);
    }
  }

  private hardState(): HardState {
    return { term: this.currentTerm, vote: this.vote, commit: this.log.committed };
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function validateConfig(config: RaftConfig): void {
  const invalid = (detail: string) => new WeirError(ErrorCode.INVALID_CONFIG, detail);
  if (!Number.isInteger(config.id) || config.id < 0)
    throw invalid(`node id must be a non-negative integer, got ${config.id}`);
  if (new Set(config.voters).size !== config.voters.length) {
    throw invalid(`the voter set ${config.voters.join(',')} names a node twice`);
  }
  if (!(config.heartbeatTicks >= 1 && config.electionTicks > config.heartbeatTicks)) {
    throw invalid(
      `heartbeatTicks (${config.heartbeatTicks}) must be at least 1 and below electionTicks (${config.electionTicks})`,
    );
  }
  if (config.maxInflightMessages < 1 || config.maxBytesPerMessage < 1) {
    throw invalid('maxInflightMessages and maxBytesPerMessage must be positive');
  }
}
