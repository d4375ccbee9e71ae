// Three real RaftNodes in one process, each with a QuorumController as its state machine: the
// raft package's in-memory network and storage stand in for gRPC and `level`.

import {
  LocalRaftNetwork as Hub,
  MemoryRaftStorage as MemoryStorage,
  type NodeId,
  RaftNode,
} from '@weir/raft';
import { QuorumController } from '../src/quorum-controller.js';

export { Hub, MemoryStorage };

export interface QuorumMember {
  readonly id: NodeId;
  readonly node: RaftNode;
  readonly controller: QuorumController;
}

export interface Quorum {
  readonly members: readonly QuorumMember[];
  /** The injected clock every controller reads; tests move it by hand. */
  readonly clock: { nowMs: number };
  readonly hub: Hub;
  stop(): Promise<void>;
}

export const BROKER_SESSION_TIMEOUT_MS = 9000;

export async function startQuorum(voters: readonly NodeId[] = [1, 2, 3]): Promise<Quorum> {
  const hub = new Hub();
  const clock = { nowMs: 0 };
  const members = await Promise.all(
    voters.map(async (id) => {
      const controller = new QuorumController({
        nodeId: id,
        clock: () => clock.nowMs,
        brokerSessionTimeoutMs: BROKER_SESSION_TIMEOUT_MS,
      });
      const node = await RaftNode.start({
        id,
        voters,
        storage: new MemoryStorage(),
        transport: hub.transport(id),
        stateMachine: controller,
        tickMs: 5,
        proposeTimeoutMs: 5000,
      });
      controller.attach(node);
      return { id, node, controller };
    }),
  );
  return {
    members,
    clock,
    hub,
    stop: async () => {
      await Promise.all(members.map((m) => m.node.stop()));
    },
  };
}

export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
