// The safety invariants of Raft (Figure 3 of the paper), checked after every event of a run
// against the real core, the storage model of every node and the history of the whole run:
//
//   Election Safety (§5.2)       at most one leader per term, over the whole run
//   one vote per term (§5.2)     a node never votes for two candidates in one term, restarts
//                                included (that is why the vote is persisted)
//   durability (Figure 2)        a granted vote and an acknowledged entry are on stable storage
//                                before the message saying so leaves the node
//   monotonic state (§5.1, §5.3) term, commit index and applied index never go back, on any
//                                node, across restarts too (judged by what was persisted)
//   Log Matching (§5.3)          two logs holding an entry with the same index and term are
//                                identical up to it: one chained hash per (index, term), ever
//   committed entries are final  a committed index always holds the same entry, on every node
//   Leader Completeness (§5.4)   an entry committed in term T is in the log of every leader of
//                                a term > T
//   State Machine Safety (§5.4.3) every node applies the same entry at each index, and reaches
//                                the same state there (snapshots included): the applied
//                                sequences are prefixes of one another
//
// A violation throws SafetyViolation; the simulator adds the seed and the replay command.

import type { RaftCore } from '../core/raft.js';
import { NO_NODE, type Entry, type Message, type NodeId } from '../core/types.js';
import type { KvStateMachine } from './kv.js';
import { entryHash, type StorageModel } from './storage-model.js';

/** What the checker sees of a node: its core (undefined while down), storage and state machine. */
export interface CheckedNode {
  readonly id: NodeId;
  readonly core: RaftCore | undefined;
  readonly storage: StorageModel;
  readonly kv: KvStateMachine;
}

export class SafetyViolation extends Error {
  constructor(
    readonly invariant: string,
    readonly detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'SafetyViolation';
  }
}

export interface CheckerOptions {
  /**
   * The node-local rules (one vote per term, persist before sending). Switched off only to show
   * that the end-to-end invariants alone catch a broken node too.
   */
  readonly localRules: boolean;
}

/** What the checker remembers of one node. */
interface NodeRecord {
  /** Highest term, commit index and applied index seen in the current incarnation. */
  term: number;
  commit: number;
  applied: number;
  /** Highest persisted term and commit ever (they survive restarts). */
  persistedTerm: number;
  persistedCommit: number;
  /** Every vote the node ever persisted, by term. */
  readonly votes: Map<number, NodeId>;
  /** Committed indexes of this node's persisted log already compared with the global ones. */
  checkedCommit: number;
  /** The term in which this node's log was last checked for Leader Completeness. */
  leaderCheckedTerm: number;
}

interface CommittedEntry {
  readonly term: number;
  readonly chain: number;
  readonly dataHash: number;
  /** The lowest term in which some node knew this entry committed. */
  commitTerm: number;
  readonly firstNode: NodeId;
}

export class SafetyChecker {
  private readonly records = new Map<NodeId, NodeRecord>();
  private readonly leaders = new Map<number, NodeId>();
  /** committed[i] is the entry committed at index i. */
  private readonly committed: (CommittedEntry | undefined)[] = [];
  /** The chain hash of every (index, term) ever persisted, and the first node that did. */
  private readonly chains = new Map<number, { chain: number; node: NodeId }>();
  /** The state machine's fingerprint after applying index i. */
  private readonly states: (number | undefined)[] = [];

  constructor(
    private readonly nodes: readonly CheckedNode[],
    private readonly options: CheckerOptions = { localRules: true },
  ) {
    for (const node of nodes) this.records.set(node.id, newRecord());
  }

  get leaderTerms(): number {
    return this.leaders.size;
  }

  get committedIndex(): number {
    return this.committed.length - 1;
  }

  /** The chain hash of (index, term) as first persisted anywhere (-1 when never seen). */
  chainOf(index: number, term: number): number {
    return this.chains.get(chainKey(index, term))?.chain ?? -1;
  }

  /** After every input to a live node (tick, message, proposal, restart). */
  observe(node: CheckedNode): void {
    const core = node.core;
    if (core === undefined) return;
    const record = this.record(node.id);
    this.checkMonotonic(node, core, record);
    if (core.role === 'leader') this.checkOneLeader(node.id, core.term);
  }

  private checkMonotonic(node: CheckedNode, core: RaftCore, record: NodeRecord): void {
    const id = node.id;
    if (core.term < record.term || core.term < record.persistedTerm) {
      fail(
        'monotonic term (§5.1)',
        `n${id} went back to term ${core.term} from ${Math.max(record.term, record.persistedTerm)}`,
      );
    }
    if (core.commitIndex < record.commit || core.commitIndex < node.storage.hardState.commit) {
      fail(
        'monotonic commit (§5.3)',
        `n${id} commit index ${core.commitIndex} is below ${record.commit} (persisted ${node.storage.hardState.commit})`,
      );
    }
    if (core.appliedIndex !== node.kv.appliedIndex || core.appliedIndex > core.commitIndex) {
      fail(
        'applied index',
        `n${id} core applied ${core.appliedIndex}, state machine applied ${node.kv.appliedIndex}, commit ${core.commitIndex}`,
      );
    }
    record.term = core.term;
    record.commit = core.commitIndex;
  }

  /** Election Safety (§5.2): at most one leader can be elected in a given term. */
  private checkOneLeader(id: NodeId, term: number): void {
    const leader = this.leaders.get(term);
    if (leader === undefined) this.leaders.set(term, id);
    else if (leader !== id)
      fail('Election Safety (§5.2)', `two leaders in term ${term}: n${leader} and n${id}`);
  }

  /** After a node synced a Ready; `from` is the first entry index it wrote, if any. */
  onPersisted(node: CheckedNode, from: number | undefined): void {
    const record = this.record(node.id);
    this.checkHardState(node, record);
    if (from !== undefined) this.checkLogMatching(node, from);
    this.checkSnapshot(node);
    this.registerCommitted(node, record);
    const core = node.core;
    if (core?.role === 'leader' && record.leaderCheckedTerm !== core.term) {
      this.checkLeaderCompleteness(node, core.term);
      record.leaderCheckedTerm = core.term;
    }
  }

  private checkHardState(node: CheckedNode, record: NodeRecord): void {
    const { term, vote, commit } = node.storage.hardState;
    if (term < record.persistedTerm) {
      fail(
        'monotonic term (§5.1)',
        `n${node.id} persisted term ${term} after ${record.persistedTerm}`,
      );
    }
    if (commit < record.persistedCommit) {
      fail(
        'monotonic commit (§5.3)',
        `n${node.id} persisted commit ${commit} after ${record.persistedCommit}`,
      );
    }
    if (commit > node.storage.lastIndex) {
      fail(
        'durable commit',
        `n${node.id} persisted commit ${commit} beyond its persisted log (last ${node.storage.lastIndex})`,
      );
    }
    record.persistedTerm = term;
    record.persistedCommit = commit;
    if (vote === NO_NODE) return;
    const earlier = record.votes.get(term);
    if (earlier !== undefined && earlier !== vote && this.options.localRules) {
      fail(
        'one vote per term (§5.2)',
        `n${node.id} voted for n${earlier} and then for n${vote} in term ${term}`,
      );
    }
    record.votes.set(term, vote);
  }

  /** Log Matching (§5.3), through one chained hash per (index, term) over the whole run. */
  private checkLogMatching(node: CheckedNode, from: number): void {
    const storage = node.storage;
    for (let index = from; index <= storage.lastIndex; index++) {
      const term = storage.termAt(index)!;
      const chain = storage.chainAt(index)!;
      const key = chainKey(index, term);
      const known = this.chains.get(key);
      if (known === undefined) this.chains.set(key, { chain, node: node.id });
      else if (known.chain !== chain) {
        fail(
          'Log Matching (§5.3)',
          `n${node.id} and n${known.node} both hold an entry at index ${index} of term ${term}, but their logs up to it differ`,
        );
      }
    }
  }

  /** A snapshot covers committed entries only, and must agree with them. */
  private checkSnapshot(node: CheckedNode): void {
    const index = node.storage.snapshotIndex;
    if (index === 0) return;
    const entry = this.committed[index];
    if (entry === undefined) {
      fail(
        'snapshot of committed state (§7)',
        `n${node.id} holds a snapshot at ${index}, beyond every known commit`,
      );
    }
    if (entry.term !== node.storage.snapshotTerm || entry.chain !== node.storage.snapshotChain) {
      fail(
        'snapshot of committed state (§7)',
        `n${node.id} snapshot at ${index} (term ${node.storage.snapshotTerm}) differs from the entry committed there (term ${entry.term})`,
      );
    }
  }

  /** Entries up to the persisted commit index join the committed log, or must equal it. */
  private registerCommitted(node: CheckedNode, record: NodeRecord): void {
    const storage = node.storage;
    const commit = Math.min(storage.hardState.commit, storage.lastIndex);
    const commitTerm = storage.hardState.term;
    for (
      let index = Math.max(record.checkedCommit, storage.snapshotIndex) + 1;
      index <= commit;
      index++
    ) {
      const entry = storage.entryAt(index)!;
      this.commit(node.id, entry, storage.chainAt(index)!, commitTerm);
    }
    record.checkedCommit = Math.max(record.checkedCommit, commit);
  }

  private commit(id: NodeId, entry: Entry, chain: number, commitTerm: number): void {
    const index = entry.index;
    const known = this.committed[index];
    if (known === undefined) {
      // A node's commit covers every index before it, so the committed log has no holes.
      if (index > 1 && this.committed[index - 1] === undefined) {
        fail('committed prefix', `n${id} committed ${index} while ${index - 1} is unknown`);
      }
      this.committed[index] = {
        term: entry.term,
        chain,
        dataHash: entryHash(entry),
        commitTerm,
        firstNode: id,
      };
      this.checkLeadersHold(index, commitTerm);
      return;
    }
    if (known.chain !== chain) {
      fail(
        'committed entries are final (§5.4)',
        `n${id} committed index ${index} as an entry of term ${entry.term}; n${known.firstNode} committed an entry of term ${known.term} there`,
      );
    }
    if (commitTerm < known.commitTerm) {
      known.commitTerm = commitTerm;
      this.checkLeadersHold(index, commitTerm);
    }
  }

  /** Leader Completeness (§5.4.1) for a newly committed index against the current leaders. */
  private checkLeadersHold(index: number, commitTerm: number): void {
    for (const node of this.nodes) {
      const core = node.core;
      if (core?.role !== 'leader' || core.term <= commitTerm) continue;
      if (this.record(node.id).leaderCheckedTerm !== core.term) continue; // checked at its first sync
      this.checkHolds(node, index, core.term);
    }
  }

  /** Leader Completeness (§5.4.1): a new leader's log holds every entry committed before. */
  private checkLeaderCompleteness(node: CheckedNode, term: number): void {
    for (let index = 1; index < this.committed.length; index++) {
      const entry = this.committed[index];
      if (entry !== undefined && entry.commitTerm < term) this.checkHolds(node, index, term);
    }
  }

  private checkHolds(node: CheckedNode, index: number, term: number): void {
    const storage = node.storage;
    if (index <= storage.snapshotIndex) return; // covered by its snapshot, itself checked
    const entry = this.committed[index]!;
    if (storage.chainAt(index) !== entry.chain) {
      const held = storage.termAt(index);
      fail(
        'Leader Completeness (§5.4)',
        `n${node.id}, leader of term ${term}, ${held === undefined ? 'lacks' : `holds an entry of term ${held} at`} index ${index}, committed in term ${entry.commitTerm} (entry of term ${entry.term})`,
      );
    }
  }

  /** Before a message leaves a node: what it promises must be on stable storage (Figure 2). */
  onSend(node: CheckedNode, message: Message): void {
    if (!this.options.localRules) return;
    const hard = node.storage.hardState;
    if (message.type === 'voteResponse' && message.granted) {
      const durable =
        hard.term > message.term || (hard.term === message.term && hard.vote === message.to);
      if (!durable) {
        fail(
          'persist before answering (Figure 2)',
          `n${node.id} granted its vote to n${message.to} in term ${message.term}, but has persisted term ${hard.term} vote ${hard.vote}`,
        );
      }
    }
    if (message.type === 'appendResponse' && message.success && hard.term === message.term) {
      if (message.index > node.storage.lastIndex) {
        fail(
          'persist before acknowledging (Figure 2)',
          `n${node.id} acknowledged index ${message.index} in term ${message.term}, but has persisted only up to ${node.storage.lastIndex}`,
        );
      }
    }
  }

  /** State Machine Safety (§5.4.3): after a node applied `entry`. */
  onApplied(node: CheckedNode, entry: Entry): void {
    const record = this.record(node.id);
    if (entry.index !== record.applied + 1) {
      fail('applied in order', `n${node.id} applied index ${entry.index} after ${record.applied}`);
    }
    const committed = this.committed[entry.index];
    if (committed === undefined || entry.index > node.storage.hardState.commit) {
      fail(
        'apply only committed entries (§5.4.3)',
        `n${node.id} applied index ${entry.index} before it was durably committed`,
      );
    }
    if (committed.term !== entry.term || committed.dataHash !== entryHash(entry)) {
      fail(
        'State Machine Safety (§5.4.3)',
        `n${node.id} applied an entry of term ${entry.term} at index ${entry.index}; the entry committed there has term ${committed.term}`,
      );
    }
    record.applied = entry.index;
    this.checkState(node, entry.index);
  }

  /** After a node restored its state machine from a snapshot (§7). */
  onSnapshotRestored(node: CheckedNode): void {
    const record = this.record(node.id);
    const index = node.kv.appliedIndex;
    if (index < record.applied) {
      fail(
        'monotonic applied index',
        `n${node.id} restored a snapshot at ${index} after applying ${record.applied}`,
      );
    }
    record.applied = index;
    this.checkState(node, index);
  }

  private checkState(node: CheckedNode, index: number): void {
    const fingerprint = node.kv.fingerprint;
    const known = this.states[index];
    if (known === undefined) this.states[index] = fingerprint;
    else if (known !== fingerprint) {
      fail(
        'State Machine Safety (§5.4.3)',
        `n${node.id}'s state after index ${index} differs from another node's there`,
      );
    }
  }

  /** A node restarted from its persisted state: a new incarnation starts from it. */
  onRestart(node: CheckedNode): void {
    const record = this.record(node.id);
    const { term, commit } = node.storage.hardState;
    record.term = term;
    record.commit = commit;
    record.applied = node.kv.appliedIndex;
    if (node.kv.appliedIndex < node.storage.snapshotIndex) {
      fail(
        'monotonic applied index',
        `n${node.id} restarted below its own snapshot ${node.storage.snapshotIndex}`,
      );
    }
    this.observe(node);
  }

  private record(id: NodeId): NodeRecord {
    const record = this.records.get(id);
    if (record === undefined) throw new Error(`unknown node ${id}`);
    return record;
  }
}

function newRecord(): NodeRecord {
  return {
    term: 0,
    commit: 0,
    applied: 0,
    persistedTerm: 0,
    persistedCommit: 0,
    votes: new Map(),
    checkedCommit: 0,
    leaderCheckedTerm: 0,
  };
}

/** (index, term) as one number: terms stay far below 2^21 in any run. */
function chainKey(index: number, term: number): number {
  return index * 2_097_152 + term;
}

function fail(invariant: string, detail: string): never {
  throw new SafetyViolation(invariant, detail);
}
