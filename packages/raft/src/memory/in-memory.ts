// In-memory storage and network for RaftNode, for tests and tools that run several nodes in
// one process (etcd-raft ships its MemoryStorage in the library for the same reason). Nothing
// here is durable: production uses RaftStorage on `level` and the gRPC transport.

import type { Entry, HardState, Message, NodeId, PersistedState, Snapshot } from '../core/types.js';
import { NO_NODE } from '../core/types.js';
import type { RaftNodeStorage, RaftTransport } from '../node/raft-node.js';

export class MemoryRaftStorage implements RaftNodeStorage {
  hardState: HardState = { term: 0, vote: NO_NODE, commit: 0 };
  entries: Entry[] = [];
  snapshot: Snapshot | undefined;

  load(): Promise<PersistedState> {
    return Promise.resolve({
      hardState: this.hardState,
      entries: [...this.entries],
      snapshot: this.snapshot,
    });
  }

  persist(ready: {
    hardState?: HardState;
    entries: readonly Entry[];
    snapshot?: Snapshot;
  }): Promise<void> {
    if (ready.snapshot) this.dropThrough(ready.snapshot);
    const first = ready.entries[0]?.index;
    if (first !== undefined)
      this.entries = [...this.entries.filter((e) => e.index < first), ...ready.entries];
    if (ready.hardState) this.hardState = ready.hardState;
    return Promise.resolve();
  }

  saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.dropThrough(snapshot);
    return Promise.resolve();
  }

  private dropThrough(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    this.entries = this.entries.filter((e) => e.index > snapshot.metadata.index);
  }
}

/**
 * Delivers messages between the nodes of one process, asynchronously (setImmediate), as a
 * network would. Messages from or to a node in `down` are dropped.
 */
export class LocalRaftNetwork {
  private readonly handlers = new Map<NodeId, (m: Message) => void>();
  readonly down = new Set<NodeId>();

  transport(id: NodeId): RaftTransport {
    return {
      send: (messages) => {
        for (const m of messages) {
          if (this.down.has(m.from) || this.down.has(m.to)) continue;
          setImmediate(() => this.handlers.get(m.to)?.(m));
        }
      },
      onMessage: (handler) => this.handlers.set(id, handler),
    };
  }
}
