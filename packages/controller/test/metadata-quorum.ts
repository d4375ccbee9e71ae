// Three real RaftNodes in one process, each with a QuorumController as its state machine: the
// raft package's in-memory network and storage stand in for gRPC and `level`.

import type { MetadataImage, PartitionImage } from '@weir/metadata';
import {
  LocalRaftNetwork as Hub,
  MemoryRaftStorage as MemoryStorage,
  type NodeId,
  RaftNode,
} from '@weir/raft';
import { type BrokerHeartbeatResult, QuorumController } from '../src/quorum-controller.js';

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

export interface QuorumOptions {
  readonly voters?: readonly NodeId[];
  /** Passed to every controller; default the controller's own. */
  readonly leaderImbalanceCheckIntervalMs?: number;
}

export async function startQuorum(options: QuorumOptions = {}): Promise<Quorum> {
  const voters = options.voters ?? [1, 2, 3];
  const hub = new Hub();
  const clock = { nowMs: 0 };
  const members = await Promise.all(
    voters.map(async (id) => {
      const controller = new QuorumController({
        nodeId: id,
        clock: () => clock.nowMs,
        brokerSessionTimeoutMs: BROKER_SESSION_TIMEOUT_MS,
        leaderImbalanceCheckIntervalMs: options.leaderImbalanceCheckIntervalMs,
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

/** The broker ids the tests register. */
export const BROKERS = [101, 102, 103];

/** Waits for the quorum's Raft leader: the active controller. */
export function leaderOf(quorum: Quorum): Promise<QuorumMember> {
  return waitFor('a leader', () => quorum.members.find((m) => m.node.isLeader));
}

/** Registers `brokerId` with endpoints of its own and returns its broker epoch. */
export async function registerBroker(
  controller: QuorumController,
  brokerId: number,
  incarnationId = `incarnation-${brokerId}`,
): Promise<bigint> {
  const { brokerEpoch } = await controller.registerBroker({
    brokerId,
    incarnationId,
    endpoints: [{ name: 'BROKER', host: '127.0.0.1', port: 9000 + brokerId }],
    rack: undefined,
  });
  return brokerEpoch;
}

/** A heartbeat caught up with the controller's image: it unfences a fenced broker. */
export function heartbeat(
  controller: QuorumController,
  brokerId: number,
  brokerEpoch: bigint,
): Promise<BrokerHeartbeatResult> {
  return controller.brokerHeartbeat({
    brokerId,
    brokerEpoch,
    caughtUpToOffset: controller.image.offset,
  });
}

/** Registers BROKERS on `controller` and heartbeats them caught up; returns their epochs. */
export async function registerCaughtUpBrokers(
  controller: QuorumController,
): Promise<Map<number, bigint>> {
  const epochs = new Map<number, bigint>();
  for (const brokerId of BROKERS) epochs.set(brokerId, await registerBroker(controller, brokerId));
  for (const [brokerId, brokerEpoch] of epochs) {
    const result = await heartbeat(controller, brokerId, brokerEpoch);
    if (result.isFenced) throw new Error(`broker ${brokerId} is still fenced after catching up`);
  }
  return epochs;
}

/** Waits until every voter has applied what `leader` has, then returns their images. */
export async function everyImage(
  quorum: Quorum,
  leader: QuorumController,
): Promise<MetadataImage[]> {
  const offset = leader.image.offset;
  await waitFor('every voter to apply the leader offset', () =>
    quorum.members.every((m) => m.controller.image.offset >= offset),
  );
  return quorum.members.map((m) => m.controller.image);
}

/** A topic's partitions by partition id. */
export function partitionsOf(image: MetadataImage, topic: string): PartitionImage[] {
  const partitions = image.topic(topic)?.partitions;
  if (partitions === undefined) throw new Error(`topic ${topic} is not in the image`);
  return [...partitions.values()].sort((a, b) => a.partitionId - b.partitionId);
}
