// Unit tests of the core, each tied to a rule of the Raft paper (§ numbers) or the thesis.
// A tiny synchronous cluster delivers messages between cores and persists every Ready; the
// randomized, fault-injecting tests live in the simulator (src/sim).

import { describe, expect, it } from 'vitest';
import { RaftCore } from './raft.js';
import {
  type Entry,
  type HardState,
  type Message,
  NO_NODE,
  type NodeId,
  type RaftConfig,
  type ReadState,
  type Snapshot,
} from './types.js';
import { seededRandom } from '../sim/prng.js';

/** What a node's driver persisted, as a restarted node would read it back. */
interface Disk {
  hardState: HardState;
  entries: Entry[];
  snapshot: Snapshot | undefined;
}

class Cluster {
  readonly nodes = new Map<NodeId, RaftCore>();
  readonly disks = new Map<NodeId, Disk>();
  readonly applied = new Map<NodeId, string[]>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  /** Messages matching this are dropped. */
  drop: (m: Message) => boolean = () => false;
  private queue: Message[] = [];

  constructor(
    readonly ids: NodeId[],
    private readonly overrides: Partial<RaftConfig> = {},
  ) {
    for (const id of ids) {
      this.disks.set(id, {
        hardState: { term: 0, vote: NO_NODE, commit: 0 },
        entries: [],
        snapshot: undefined,
      });
      this.start(id);
    }
  }

  config(id: NodeId): RaftConfig {
    return {
      id,
      voters: this.ids,
      electionTicks: 10,
      heartbeatTicks: 1,
      preVote: true,
      checkQuorum: true,
      maxInflightMessages: 4,
      maxBytesPerMessage: 1024,
      random: seededRandom(id),
      ...this.overrides,
    };
  }

  start(id: NodeId): RaftCore {
    const disk = this.disks.get(id)!;
    const node = new RaftCore(this.config(id), { ...disk, entries: [...disk.entries] });
    this.nodes.set(id, node);
    this.applied.set(id, disk.snapshot ? [`snapshot@${disk.snapshot.metadata.index}`] : []);
    return node;
  }

  node(id: NodeId): RaftCore {
    return this.nodes.get(id)!;
  }

  /** Processes every node's Ready and delivers messages until nothing moves. */
  settle(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const [id, node] of this.nodes) {
        while (node.hasReady()) {
          moved = true;
          this.handleReady(id, node);
        }
      }
      const queue = this.queue;
      this.queue = [];
      for (const m of queue) {
        moved = true;
        if (!this.drop(m)) this.nodes.get(m.to)?.step(m);
      }
      if (!moved) return;
    }
    throw new Error('cluster did not settle');
  }

  private handleReady(id: NodeId, node: RaftCore): void {
    const ready = node.ready();
    const disk = this.disks.get(id)!;
    if (ready.snapshot) {
      disk.snapshot = ready.snapshot;
      disk.entries = disk.entries.filter((e) => e.index > ready.snapshot!.metadata.index);
    }
    if (ready.entries.length > 0) {
      const first = ready.entries[0]!.index;
      disk.entries = [...disk.entries.filter((e) => e.index < first), ...ready.entries];
    }
    if (ready.hardState) disk.hardState = ready.hardState;
    this.queue.push(...ready.messages);
    if (ready.snapshot) this.applied.set(id, [`snapshot@${ready.snapshot.metadata.index}`]);
    for (const entry of ready.committedEntries) {
      if (entry.type === 'normal') this.applied.get(id)!.push(new TextDecoder().decode(entry.data));
    }
    this.readStates.set(id, [...(this.readStates.get(id) ?? []), ...ready.readStates]);
    node.advance(ready);
  }

  tick(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const node of this.nodes.values()) node.tick();
      this.settle();
    }
  }

  /** Ticks until some node leads; returns it. */
  electLeader(maxTicks = 100): RaftCore {
    for (let i = 0; i < maxTicks; i++) {
      const leader = [...this.nodes.values()].find((n) => n.role === 'leader');
      if (leader) return leader;
      this.tick();
    }
    throw new Error('no leader elected');
  }

  propose(value: string): { index: number; term: number } {
    const leader = [...this.nodes.values()].find((n) => n.role === 'leader');
    const result = leader?.propose(new TextEncoder().encode(value));
    if (!result) throw new Error('no leader to propose to');
    this.settle();
    return result;
  }

  /** Cuts `id` off from everyone (both directions). */
  isolate(id: NodeId): void {
    this.drop = (m) => m.from === id || m.to === id;
  }

  heal(): void {
    this.drop = () => false;
  }
}

const text = (s: string) => new TextEncoder().encode(s);

describe('leader election (§5.2)', () => {
  it('a single voter elects itself and commits alone', () => {
    const cluster = new Cluster([1]);
    const leader = cluster.electLeader();
    expect(leader.id).toBe(1);
    cluster.propose('a');
    expect(cluster.applied.get(1)).toEqual(['a']);
  });

  it('three voters elect exactly one leader, and everyone learns it', () => {
    const cluster = new Cluster([1, 2, 3]);
    const leader = cluster.electLeader();
    cluster.tick(2);
    const leaders = [...cluster.nodes.values()].filter((n) => n.role === 'leader');
    expect(leaders.map((n) => n.id)).toEqual([leader.id]);
    for (const node of cluster.nodes.values()) expect(node.leaderId).toBe(leader.id);
  });

  it('persists the vote before the answer goes out (Figure 2: respond after persisting)', () => {
    const cluster = new Cluster([1, 2, 3], { preVote: false });
    const voter = cluster.node(2);
    voter.step({
      type: 'vote',
      from: 1,
      to: 2,
      term: 1,
      lastLogIndex: 0,
      lastLogTerm: 0,
      transfer: false,
    });
    const ready = voter.ready();
    expect(ready.hardState).toMatchObject({ term: 1, vote: 1 });
    expect(ready.messages).toContainEqual(
      expect.objectContaining({ type: 'voteResponse', granted: true }),
    );
    voter.advance(ready);
  });

  it('grants at most one vote per term (§5.2)', () => {
    const cluster = new Cluster([1, 2, 3], { preVote: false });
    const voter = cluster.node(3);
    voter.step({
      type: 'vote',
      from: 1,
      to: 3,
      term: 1,
      lastLogIndex: 0,
      lastLogTerm: 0,
      transfer: false,
    });
    voter.step({
      type: 'vote',
      from: 2,
      to: 3,
      term: 1,
      lastLogIndex: 0,
      lastLogTerm: 0,
      transfer: false,
    });
    const grants = voter.ready().messages.filter((m) => m.type === 'voteResponse' && m.granted);
    expect(grants.map((m) => m.to)).toEqual([1]);
  });

  it('refuses a candidate whose log is less up to date (§5.4.1)', () => {
    // No check-quorum, so no leader lease makes the voter ignore the request outright.
    const cluster = new Cluster([1, 2, 3], { preVote: false, checkQuorum: false });
    const leader = cluster.electLeader();
    cluster.propose('x'); // every log now ends (2, term 1): the no-op, then x
    const voter = [...cluster.nodes.values()].find((n) => n.id !== leader.id)!;
    const candidate = { lastLogIndex: 1, lastLogTerm: voter.term };
    voter.step({
      type: 'vote',
      from: leader.id,
      to: voter.id,
      term: voter.term + 1,
      ...candidate,
      transfer: false,
    });
    const answer = voter.ready().messages.find((m) => m.type === 'voteResponse');
    expect(answer).toMatchObject({ granted: false });
  });
});

describe('pre-vote and check-quorum (thesis §9.6, §6.2)', () => {
  it('a node cut off and brought back does not depose the leader or raise the term', () => {
    const cluster = new Cluster([1, 2, 3]);
    const leader = cluster.electLeader();
    const term = leader.term;
    const follower = [...cluster.nodes.values()].find((n) => n.id !== leader.id)!;
    cluster.isolate(follower.id);
    cluster.tick(50); // it times out again and again, but pre-votes fail
    expect(follower.term).toBe(term);
    cluster.heal();
    cluster.tick(5);
    expect(leader.role).toBe('leader');
    expect(leader.term).toBe(term);
  });

  it('a leader that cannot hear a quorum steps down', () => {
    const cluster = new Cluster([1, 2, 3]);
    const leader = cluster.electLeader();
    cluster.isolate(leader.id);
    cluster.tick(25);
    expect(leader.role).not.toBe('leader');
    const others = [...cluster.nodes.values()].filter((n) => n.id !== leader.id);
    expect(others.some((n) => n.role === 'leader')).toBe(true);
  });
});

describe('log replication (§5.3)', () => {
  it('commits on a majority and applies in order everywhere', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.electLeader();
    for (const value of ['a', 'b', 'c']) cluster.propose(value);
    cluster.tick(2);
    for (const id of [1, 2, 3]) expect(cluster.applied.get(id)).toEqual(['a', 'b', 'c']);
  });

  it('commits with one follower down, and the follower catches up when it returns', () => {
    const cluster = new Cluster([1, 2, 3]);
    const leader = cluster.electLeader();
    const down = [1, 2, 3].find((id) => id !== leader.id)!;
    cluster.isolate(down);
    for (let i = 0; i < 20; i++) cluster.propose(`v${i}`);
    expect(cluster.applied.get(leader.id)).toHaveLength(20);
    expect(cluster.applied.get(down)).toHaveLength(0);
    cluster.heal();
    cluster.tick(3);
    expect(cluster.applied.get(down)).toEqual(cluster.applied.get(leader.id));
  });

  it("overwrites a follower's uncommitted entries that conflict with the leader (§5.3)", () => {
    const cluster = new Cluster([1, 2, 3]);
    const oldLeader = cluster.electLeader();
    // The old leader appends entries nobody else receives, then loses leadership.
    cluster.isolate(oldLeader.id);
    for (let i = 0; i < 5; i++) oldLeader.propose(text(`lost${i}`));
    cluster.settle();
    cluster.tick(30);
    const newLeader = [...cluster.nodes.values()].find((n) => n.role === 'leader')!;
    expect(newLeader.id).not.toBe(oldLeader.id);
    cluster.propose('kept');
    cluster.heal();
    cluster.tick(5);
    expect(cluster.applied.get(oldLeader.id)).toEqual(['kept']);
    expect(oldLeader.lastIndex).toBe(newLeader.lastIndex);
  });
});

describe('commitment (§5.4.2)', () => {
  it('a new leader commits entries of earlier terms only through an entry of its own term', () => {
    const cluster = new Cluster([1, 2, 3]);
    const leader = cluster.electLeader();
    cluster.propose('a');
    // Every entry after a leader change starts with the leader's no-op of its term.
    const noop = leader
      .entries(leader.firstIndex, leader.lastIndex + 1)
      .find((e) => e.type === 'noop');
    expect(noop?.term).toBe(leader.term);
    expect(leader.commitIndex).toBe(leader.lastIndex);
  });
});

describe('snapshots (§7)', () => {
  it('sends a snapshot to a follower that is behind the log start', () => {
    const cluster = new Cluster([1, 2, 3]);
    const leader = cluster.electLeader();
    const behind = [1, 2, 3].find((id) => id !== leader.id)!;
    cluster.isolate(behind);
    for (let i = 0; i < 10; i++) cluster.propose(`v${i}`);
    leader.compact(leader.appliedIndex, text('state-at-applied'));
    expect(leader.firstIndex).toBe(leader.appliedIndex + 1);
    cluster.heal();
    cluster.tick(3);
    const follower = cluster.node(behind);
    expect(follower.commitIndex).toBe(leader.commitIndex);
    expect(cluster.disks.get(behind)!.snapshot?.data).toEqual(text('state-at-applied'));
    cluster.propose('after');
    cluster.tick(2);
    expect(cluster.applied.get(behind)?.at(-1)).toBe('after');
  });

  it('ignores an application snapshot that a snapshot from the leader already covers', () => {
    // Found by the simulator: the log is replaced by the leader's snapshot between the
    // application applying index 1 and snapshotting it.
    const cluster = new Cluster([1, 2, 3]);
    const follower = cluster.node(2);
    const snapshot = { metadata: { index: 5, term: 1, voters: [1, 2, 3] }, data: text('s') };
    follower.step({ type: 'snapshot', from: 1, to: 2, term: 1, snapshot });
    expect(follower.compact(1, text('older'))).toBe(false);
    expect(follower.latestSnapshot()).toBe(snapshot);
  });

  it('restarts from a snapshot and the entries after it', () => {
    const cluster = new Cluster([1]);
    const leader = cluster.electLeader();
    cluster.propose('a');
    leader.compact(leader.appliedIndex, text('s'));
    cluster.disks.get(1)!.snapshot = leader.latestSnapshot();
    cluster.propose('b');
    const restarted = cluster.start(1);
    expect(restarted.firstIndex).toBe(leader.firstIndex);
    expect(restarted.lastIndex).toBe(leader.lastIndex);
    expect(restarted.term).toBe(leader.term);
  });
});

describe('leadership transfer (thesis §3.10) and ReadIndex (thesis §6.4)', () => {
  it('hands leadership to a chosen follower', () => {
    const cluster = new Cluster([1, 2, 3]);
    const leader = cluster.electLeader();
    const target = [1, 2, 3].find((id) => id !== leader.id)!;
    cluster.propose('a');
    leader.transferLeadership(target);
    expect(leader.propose(text('refused during transfer'))).toBeUndefined();
    cluster.settle();
    expect(cluster.node(target).role).toBe('leader');
    expect(leader.role).toBe('follower');
  });

  it('confirms leadership with a quorum before answering a read', () => {
    const cluster = new Cluster([1, 2, 3]);
    const leader = cluster.electLeader();
    cluster.propose('a');
    leader.readIndex(7);
    cluster.settle();
    expect(cluster.readStates.get(leader.id)).toEqual([
      { requestId: 7, index: leader.commitIndex },
    ]);
    cluster.isolate(leader.id);
    leader.readIndex(8);
    cluster.settle();
    expect(cluster.readStates.get(leader.id)?.map((r) => r.requestId)).toEqual([7]);
  });
});

describe('configuration', () => {
  it('refuses heartbeatTicks not below electionTicks', () => {
    expect(() => new Cluster([1], { heartbeatTicks: 10, electionTicks: 10 })).toThrow(
      /heartbeatTicks/,
    );
  });
});
