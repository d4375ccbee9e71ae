// RaftStorage under the real core: three RaftCore instances, each persisting every Ready to its
// own LevelDB store, exchange messages over a lossy, reordering in-memory network that also
// isolates the leader now and then (so uncommitted suffixes get replaced), compact their
// logs and restart from what load() returns. Every write the core asks for must satisfy the
// storage's checks (a refused write fails the test), and after healing, all nodes hold the same
// committed log. This pins the contract of core/types.ts between the two sides.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_RAFT_CONFIG, RaftCore } from '../core/raft.js';
import type { Entry, Message, NodeId } from '../core/types.js';
import { RaftStorage } from './raft-storage.js';
import { seededRandom } from '../sim/prng.js';

const VOTERS: readonly NodeId[] = [1, 2, 3];

interface Node {
  readonly id: NodeId;
  storage: RaftStorage;
  core: RaftCore;
  /** Indexes and terms applied, in order (a snapshot restore resets it to the snapshot). */
  applied: { index: number; term: number; data: string }[];
}

const dirs: string[] = [];
const opened = new Set<RaftStorage>();

afterEach(async () => {
  for (const storage of opened) await storage.close();
  opened.clear();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

class Cluster {
  readonly nodes = new Map<NodeId, Node>();
  private network: Message[] = [];
  /** Nodes cut off from the others: nothing they send or are sent arrives. */
  readonly isolated = new Set<NodeId>();

  constructor(private readonly random: () => number) {}

  async start(): Promise<void> {
    for (const id of VOTERS) {
      const dir = await mkdtemp(join(tmpdir(), `weir-raft-core-${id}-`));
      dirs.push(dir);
      this.nodes.set(id, await this.boot(id, dir));
    }
  }

  private async boot(id: NodeId, dir: string): Promise<Node> {
    const storage = await RaftStorage.open(dir, { nodeId: id, clusterId: 'weir' });
    opened.add(storage);
    const persisted = await storage.load();
    const core = new RaftCore(
      { ...DEFAULT_RAFT_CONFIG, id, voters: VOTERS, random: this.random },
      persisted,
    );
    const snapshot = persisted.snapshot;
    const applied =
      snapshot === undefined
        ? []
        : [snapshotMarker(snapshot.metadata.index, snapshot.metadata.term)];
    return { id, storage, core, applied };
  }

  /** A crash-restart: nothing but what the store holds survives. */
  async restart(id: NodeId): Promise<void> {
    const node = this.nodes.get(id)!;
    await node.storage.close();
    opened.delete(node.storage);
    this.nodes.set(id, await this.boot(id, node.storage.dir));
  }

  /** Works through a node's Readies in the order Raft requires: persist, send, apply. */
  async drain(node: Node): Promise<void> {
    while (node.core.hasReady()) {
      const ready = node.core.ready();
      await node.storage.persist(ready);
      this.network.push(...ready.messages);
      if (ready.snapshot !== undefined) {
        node.applied = [
          snapshotMarker(ready.snapshot.metadata.index, ready.snapshot.metadata.term),
        ];
      }
      for (const entry of ready.committedEntries) node.applied.push(summarize(entry));
      node.core.advance(ready);
    }
  }

  async round(options: { dropRate: number; propose: boolean }): Promise<void> {
    for (const node of this.nodes.values()) {
      node.core.tick();
      await this.drain(node);
    }
    // Deliver what is in flight in a random order, dropping some.
    const inFlight = this.network;
    this.network = [];
    shuffle(inFlight, this.random);
    for (const message of inFlight) {
      if (this.random() < options.dropRate) continue;
      if (this.isolated.has(message.from) || this.isolated.has(message.to)) continue;
      const node = this.nodes.get(message.to);
      if (node === undefined) continue;
      node.core.step(message);
      await this.drain(node);
    }
    if (options.propose) {
      // Every node that believes it leads takes proposals: an isolated old leader appends
      // entries that never commit, and the new leader's log replaces them later.
      for (const node of this.nodes.values()) {
        if (node.core.role !== 'leader') continue;
        node.core.propose(new TextEncoder().encode(`value ${Math.floor(this.random() * 1e6)}`));
        await this.drain(node);
      }
    }
  }

  leader(): Node | undefined {
    return [...this.nodes.values()].find((node) => node.core.role === 'leader');
  }

  /** The application's snapshot at its applied index, as RaftNode.snapshot() takes it. */
  async compact(node: Node): Promise<void> {
    const applied = node.core.appliedIndex;
    if (applied <= node.core.firstIndex) return;
    node.core.compact(applied, new TextEncoder().encode(`state at ${applied}`));
    await node.storage.saveSnapshot(node.core.latestSnapshot()!);
  }
}

function snapshotMarker(
  index: number,
  term: number,
): { index: number; term: number; data: string } {
  return { index, term, data: 'snapshot' };
}

function summarize(entry: Entry): { index: number; term: number; data: string } {
  return { index: entry.index, term: entry.term, data: new TextDecoder().decode(entry.data) };
}

function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
}

describe('RaftStorage with the real core', () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`persists every Ready the core produces, through drops, partitions, restarts and compaction (seed ${seed})`, async () => {
      const random = seededRandom(seed);
      const cluster = new Cluster(random);
      await cluster.start();
      for (let round = 0; round < 300; round++) {
        await cluster.round({ dropRate: 0.1, propose: round % 2 === 0 });
        if (round % 60 === 10) {
          const leader = cluster.leader();
          if (leader !== undefined) cluster.isolated.add(leader.id);
        }
        if (round % 60 === 40) cluster.isolated.clear();
        if (random() < 0.03) await cluster.restart(VOTERS[Math.floor(random() * 3)]!);
        if (random() < 0.05)
          await cluster.compact(cluster.nodes.get(VOTERS[Math.floor(random() * 3)]!)!);
      }
      // Heal: no drops, no faults, until every node has applied the same committed log.
      cluster.isolated.clear();
      for (let round = 0; round < 200; round++) {
        await cluster.round({ dropRate: 0, propose: false });
        const commits = new Set([...cluster.nodes.values()].map((n) => n.core.appliedIndex));
        if (commits.size === 1 && cluster.leader() !== undefined) break;
      }
      const nodes = [...cluster.nodes.values()];
      const leader = cluster.leader();
      expect(leader).toBeDefined();
      expect(new Set(nodes.map((n) => n.core.appliedIndex)).size).toBe(1);
      expect(leader!.core.commitIndex).toBeGreaterThan(20);

      // Same index, same entry, on every node (State Machine Safety), including after reopening.
      const byIndex = new Map<number, string>();
      for (const node of nodes) {
        for (const applied of node.applied) {
          if (applied.data === 'snapshot') continue;
          const key = `${applied.term}:${applied.data}`;
          expect(byIndex.get(applied.index) ?? key, `index ${applied.index}`).toBe(key);
          byIndex.set(applied.index, key);
        }
      }
      for (const id of VOTERS) await cluster.restart(id);
      for (const node of cluster.nodes.values()) {
        const stored = await node.storage.entries(
          node.storage.firstIndex,
          node.storage.lastIndex + 1,
        );
        for (const entry of stored) {
          const known = byIndex.get(entry.index);
          if (known !== undefined) expect(`${entry.term}:${summarize(entry).data}`).toBe(known);
        }
      }
    });
  }
});
