// The quorum controller on three real RaftNodes (in-memory storage and network): requests on the
// active controller commit through Raft, and every voter's image follows the same records.

import { NO_LEADER, encodeSnapshot } from '@weir/metadata';
import { ErrorCode } from '@weir/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { PRODUCER_ID_BLOCK_SIZE, QuorumController } from '../src/quorum-controller.js';
import {
  BROKERS,
  BROKER_SESSION_TIMEOUT_MS,
  type Quorum,
  type QuorumMember,
  everyImage as imagesOf,
  leaderOf,
  partitionsOf,
  registerCaughtUpBrokers,
  startQuorum,
  waitFor,
} from './metadata-quorum.js';

let quorum: Quorum | undefined;

afterEach(async () => {
  await quorum?.stop();
  quorum = undefined;
});

async function activeController(): Promise<QuorumMember> {
  quorum = await startQuorum();
  return leaderOf(quorum);
}

function everyImage(leader: QuorumController) {
  return imagesOf(quorum!, leader);
}

describe('QuorumController', () => {
  it('registers brokers fenced with the entry offset as epoch and unfences them once caught up', async () => {
    const { controller } = await activeController();
    const { brokerEpoch } = await controller.registerBroker({
      brokerId: 101,
      incarnationId: 'incarnation-101',
      endpoints: [],
    });
    expect(brokerEpoch).toBe(controller.image.offset);
    expect(controller.image.broker(101)).toMatchObject({ fenced: true, brokerEpoch });

    const behind = await controller.brokerHeartbeat({
      brokerId: 101,
      brokerEpoch,
      caughtUpToOffset: brokerEpoch - 1n,
    });
    expect(behind).toEqual({ isCaughtUp: false, isFenced: true });

    const stale = await controller
      .brokerHeartbeat({ brokerId: 101, brokerEpoch: brokerEpoch - 1n, caughtUpToOffset: 0n })
      .catch((e: unknown) => e);
    expect(stale).toMatchObject({ code: ErrorCode.STALE_BROKER_EPOCH });
    const unknown = await controller
      .brokerHeartbeat({ brokerId: 999, brokerEpoch, caughtUpToOffset: 0n })
      .catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: ErrorCode.STALE_BROKER_EPOCH });

    const caughtUp = await controller.brokerHeartbeat({
      brokerId: 101,
      brokerEpoch,
      caughtUpToOffset: controller.image.offset,
    });
    expect(caughtUp).toEqual({ isCaughtUp: true, isFenced: false });
    for (const image of await everyImage(controller)) {
      expect(image.broker(101)).toMatchObject({ fenced: false, brokerEpoch });
    }
  });

  it('creates 12 partitions with RF 3 spread evenly, visible in every voter image', async () => {
    const { controller } = await activeController();
    await registerCaughtUpBrokers(controller);
    const [result] = await controller.createTopics([
      { name: 'orders', partitions: 12, replicationFactor: 3, configs: { 'retention.ms': '1000' } },
    ]);
    expect(result).toMatchObject({ name: 'orders', errorCode: ErrorCode.NONE });

    const images = await everyImage(controller);
    const leaderImageBytes = encodeSnapshot(controller.image);
    for (const image of images) {
      expect(encodeSnapshot(image)).toEqual(leaderImageBytes);
      const partitions = partitionsOf(image, 'orders');
      expect(partitions).toHaveLength(12);
      const leads = new Map<number, number>();
      for (const partition of partitions) {
        expect(new Set(partition.replicas).size).toBe(3);
        expect(partition.replicas.every((id) => BROKERS.includes(id))).toBe(true);
        expect([...partition.isr].sort()).toEqual([...partition.replicas].sort());
        expect(partition.leader).toBe(partition.replicas[0]);
        leads.set(partition.leader, (leads.get(partition.leader) ?? 0) + 1);
      }
      expect([...leads.entries()].sort()).toEqual(BROKERS.map((id) => [id, 4]));
      expect(image.topic('orders')?.topicId).toBe(result!.topicId);
    }
  });

  it('answers bad CreateTopics entries with specific error codes', async () => {
    const { controller } = await activeController();
    await registerCaughtUpBrokers(controller);
    await controller.createTopics([{ name: 'orders', partitions: 1, replicationFactor: 1 }]);
    const results = await controller.createTopics([
      { name: 'bad name!', partitions: 1, replicationFactor: 1 },
      { name: 'too-replicated', partitions: 1, replicationFactor: 4 },
      { name: 'orders', partitions: 1, replicationFactor: 1 },
      { name: 'no-partitions', partitions: 0, replicationFactor: 1 },
      { name: 'bad-config', partitions: 1, replicationFactor: 1, configs: { 'no.such': '1' } },
      { name: 'twice', partitions: 1, replicationFactor: 1 },
      { name: 'twice', partitions: 1, replicationFactor: 1 },
      { name: 'fine', partitions: 2, replicationFactor: 2 },
    ]);
    expect(results.map((r) => [r.name, r.errorCode])).toEqual([
      ['bad name!', ErrorCode.INVALID_TOPIC_EXCEPTION],
      ['too-replicated', ErrorCode.INVALID_REPLICATION_FACTOR],
      ['orders', ErrorCode.TOPIC_ALREADY_EXISTS],
      ['no-partitions', ErrorCode.INVALID_PARTITIONS],
      ['bad-config', ErrorCode.INVALID_CONFIG],
      ['twice', ErrorCode.INVALID_REQUEST],
      ['twice', ErrorCode.INVALID_REQUEST],
      ['fine', ErrorCode.NONE],
    ]);
    expect(results[1]!.errorMessage).toContain('replication factor');
    const image = controller.image;
    expect([...image.topicsByName.keys()].sort()).toEqual(['fine', 'orders']);
  });

  it('refuses requests on a follower with NOT_CONTROLLER naming the active controller', async () => {
    const leader = await activeController();
    const members = quorum!.members;
    const follower = await waitFor('a follower that knows the leader', () =>
      members.find((m) => !m.node.isLeader && m.node.leaderId === leader.id),
    );
    const error = await follower.controller
      .createTopics([{ name: 'orders', partitions: 1, replicationFactor: 1 }])
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCode.NOT_CONTROLLER });
    expect((error as Error).message).toContain(`the active controller is node ${leader.id}`);
    await expect(
      follower.controller.registerBroker({ brokerId: 1, incarnationId: 'x', endpoints: [] }),
    ).rejects.toMatchObject({ code: ErrorCode.NOT_CONTROLLER });
    expect(await follower.controller.tick()).toEqual({
      fencedBrokers: [],
      preferredLeaderElections: 0,
    });
  });

  it('fences a broker whose session expired: it leaves every ISR and leads nothing', async () => {
    const { controller } = await activeController();
    const clock = quorum!.clock;
    const epochs = await registerCaughtUpBrokers(controller);
    await controller.createTopics([{ name: 'orders', partitions: 12, replicationFactor: 3 }]);
    const before = new Map(partitionsOf(controller.image, 'orders').map((p) => [p.partitionId, p]));

    // 101 and 102 keep heartbeating; 103 falls silent.
    clock.nowMs += BROKER_SESSION_TIMEOUT_MS / 2;
    for (const brokerId of [101, 102]) {
      await controller.brokerHeartbeat({
        brokerId,
        brokerEpoch: epochs.get(brokerId)!,
        caughtUpToOffset: controller.image.offset,
      });
    }
    expect(await controller.tick()).toEqual({ fencedBrokers: [], preferredLeaderElections: 0 });
    clock.nowMs += BROKER_SESSION_TIMEOUT_MS / 2;
    expect(await controller.tick()).toEqual({ fencedBrokers: [103], preferredLeaderElections: 0 });

    for (const image of await everyImage(controller)) {
      expect(image.broker(103)?.fenced).toBe(true);
      expect(image.broker(101)?.fenced).toBe(false);
      for (const partition of partitionsOf(image, 'orders')) {
        const previous = before.get(partition.partitionId)!;
        expect(partition.isr).not.toContain(103);
        expect(partition.leader).not.toBe(103);
        expect(partition.leader).not.toBe(NO_LEADER);
        if (previous.leader === 103) {
          expect(partition.leaderEpoch).toBe(previous.leaderEpoch + 1);
          expect(partition.isr).toContain(partition.leader);
        } else {
          expect(partition.leader).toBe(previous.leader);
        }
      }
    }
    // Fenced once: a later tick has nothing to do.
    expect(await controller.tick()).toEqual({ fencedBrokers: [], preferredLeaderElections: 0 });
  });
});

describe('QuorumController failover', () => {
  it('lets a new leader carry on from the log and gives every broker a fresh session', async () => {
    const first = await activeController();
    const { clock, hub, members } = quorum!;
    await registerCaughtUpBrokers(first.controller);
    await first.controller.createTopics([{ name: 'orders', partitions: 3, replicationFactor: 3 }]);
    hub.down.add(first.id);
    const second = await waitFor('a new leader', () =>
      members.find((m) => m.node.isLeader && m.id !== first.id),
    );
    // Long past every session the old leader knew of: the new leader starts them afresh.
    clock.nowMs += 10 * BROKER_SESSION_TIMEOUT_MS;
    expect(await second.controller.tick()).toEqual({
      fencedBrokers: [],
      preferredLeaderElections: 0,
    });
    const results = await second.controller.createTopics([
      { name: 'orders', partitions: 1, replicationFactor: 1 },
      { name: 'payments', partitions: 3, replicationFactor: 3 },
    ]);
    expect(results.map((r) => r.errorCode)).toEqual([
      ErrorCode.TOPIC_ALREADY_EXISTS,
      ErrorCode.NONE,
    ]);
    clock.nowMs += BROKER_SESSION_TIMEOUT_MS;
    expect(await second.controller.tick()).toEqual({
      fencedBrokers: BROKERS,
      preferredLeaderElections: 0,
    });
    hub.down.delete(first.id);
    const images = await everyImage(second.controller);
    for (const image of images) expect(image.topic('payments')).toBeDefined();
  });
});

describe('QuorumController as a state machine', () => {
  it('restores its image from its own snapshot', async () => {
    const { controller } = await activeController();
    const epochs = await registerCaughtUpBrokers(controller);
    await controller.createTopics([{ name: 'orders', partitions: 3, replicationFactor: 3 }]);
    await controller.allocateProducerIds({ brokerId: 101, brokerEpoch: epochs.get(101)! });
    await controller.controlledShutdown({ brokerId: 102, brokerEpoch: epochs.get(102)! });
    const restored = new QuorumController({ nodeId: 9 });
    restored.restore({
      metadata: { index: Number(controller.image.offset), term: 1, voters: [1, 2, 3] },
      data: controller.snapshotData(),
    });
    expect(encodeSnapshot(restored.image)).toEqual(encodeSnapshot(controller.image));
    expect(restored.image.producerIds.nextProducerId).toBe(BigInt(PRODUCER_ID_BLOCK_SIZE));
    expect(restored.image.broker(102)?.inControlledShutdown).toBe(true);
  });

  it('refuses a leader imbalance check interval that is not positive', () => {
    expect(() => new QuorumController({ nodeId: 1, leaderImbalanceCheckIntervalMs: 0 })).toThrow(
      /leaderImbalanceCheckIntervalMs must be positive, got 0/,
    );
  });
});
