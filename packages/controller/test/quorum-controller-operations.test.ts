// The QuorumController's remaining write operations on three real RaftNodes: DeleteTopics,
// CreatePartitions, AlterPartition, ControlledShutdown, AllocateProducerIds,
// IncrementalAlterConfigs, duplicate broker registrations and periodic preferred-leader
// elections. Each request commits at most one entry, answers bad entries with Kafka's error
// codes, and leaves every voter with the same image.

import { randomUUID } from 'node:crypto';
import {
  ConfigResourceType,
  type MetadataImage,
  NO_LEADER,
  type PartitionImage,
  encodeSnapshot,
} from '@weir/metadata';
import { ErrorCode, type WeirError } from '@weir/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AlterConfigOp,
  type BrokerAlterPartitionRequest,
  PRODUCER_ID_BLOCK_SIZE,
  type QuorumController,
} from '../src/index.js';
import {
  BROKER_SESSION_TIMEOUT_MS,
  type Quorum,
  type QuorumOptions,
  everyImage,
  heartbeat,
  leaderOf,
  partitionsOf,
  registerBroker,
  registerCaughtUpBrokers,
  startQuorum,
  waitFor,
} from './metadata-quorum.js';

const TOPIC = ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC;
let quorum: Quorum | undefined;

afterEach(async () => {
  await quorum?.stop();
  quorum = undefined;
});

async function start(options: QuorumOptions = {}): Promise<QuorumController> {
  quorum = await startQuorum(options);
  return (await leaderOf(quorum)).controller;
}

/** Every voter's image once caught up, each checked equal to the leader's. */
async function sameOnEveryVoter(leader: QuorumController): Promise<MetadataImage[]> {
  const images = await everyImage(quorum!, leader);
  const expected = encodeSnapshot(leader.image);
  for (const image of images) expect(encodeSnapshot(image)).toEqual(expected);
  return images;
}

/** The error code a request fails with, or NONE. */
function codeOf(request: Promise<unknown>): Promise<ErrorCode> {
  return request.then(
    () => ErrorCode.NONE,
    (error: WeirError) => error.code,
  );
}

function configsOf(image: MetadataImage, topic: string): Record<string, string> {
  return Object.fromEntries(image.configsFor(TOPIC, topic));
}

/** How many partitions of `topic` each broker leads, by broker id. */
function leadersOf(image: MetadataImage, topic: string): [number, number][] {
  const leads = new Map<number, number>();
  for (const { leader } of partitionsOf(image, topic)) {
    leads.set(leader, (leads.get(leader) ?? 0) + 1);
  }
  return [...leads.entries()].sort((a, b) => a[0] - b[0]);
}

describe('QuorumController.deleteTopics', () => {
  it('removes topics with their configs in one entry; unknown and repeated names fail alone', async () => {
    const controller = await start();
    await registerCaughtUpBrokers(controller);
    const [orders] = await controller.createTopics([
      { name: 'orders', partitions: 3, replicationFactor: 3, configs: { 'retention.ms': '1000' } },
      { name: 'payments', partitions: 1, replicationFactor: 1 },
      { name: 'audit', partitions: 1, replicationFactor: 1 },
    ]);
    const offset = controller.image.offset;

    const results = await controller.deleteTopics(['orders', 'payments', 'nope', 'audit', 'audit']);
    expect(results.map((r) => [r.name, r.errorCode])).toEqual([
      ['orders', ErrorCode.NONE],
      ['payments', ErrorCode.NONE],
      ['nope', ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
      ['audit', ErrorCode.INVALID_REQUEST],
      ['audit', ErrorCode.INVALID_REQUEST],
    ]);
    expect(results[0]!.topicId).toBe(orders!.topicId);
    expect(results[2]!.errorMessage).toContain("topic 'nope' does not exist");
    expect(results[3]!.errorMessage).toContain("topic 'audit' appears more than once");
    expect(controller.image.offset).toBe(offset + 1n);
    for (const image of await sameOnEveryVoter(controller)) {
      expect([...image.topicsByName.keys()]).toEqual(['audit']);
      expect(image.topicById(orders!.topicId!)).toBeUndefined();
      expect(configsOf(image, 'orders')).toEqual({});
    }

    // Nothing to delete: nothing written.
    const after = controller.image.offset;
    expect((await controller.deleteTopics(['orders']))[0]!.errorCode).toBe(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    );
    expect(controller.image.offset).toBe(after);

    // The name is free again, for a new topic that starts from the default configs.
    const [again] = await controller.createTopics([
      { name: 'orders', partitions: 1, replicationFactor: 1 },
    ]);
    expect(again!.errorCode).toBe(ErrorCode.NONE);
    expect(again!.topicId).not.toBe(orders!.topicId);
    expect(configsOf(controller.image, 'orders')).toEqual({});
  });
});

describe('QuorumController.createPartitions', () => {
  it('adds partitions whose preferred leaders restore the balance, all replicas in the ISR', async () => {
    const controller = await start();
    await registerCaughtUpBrokers(controller);
    // 'orders' is the second topic, so its leaders start one broker on: 102, 103, 101, 102.
    await controller.createTopics([
      { name: 'first', partitions: 1, replicationFactor: 1 },
      { name: 'orders', partitions: 4, replicationFactor: 2 },
    ]);
    const before = partitionsOf(controller.image, 'orders');
    expect(leadersOf(controller.image, 'orders')).toEqual([
      [101, 1],
      [102, 2],
      [103, 1],
    ]);
    const offset = controller.image.offset;

    const results = await controller.createPartitions([{ name: 'orders', count: 6 }]);
    expect(results).toEqual([{ name: 'orders', errorCode: ErrorCode.NONE }]);
    expect(controller.image.offset).toBe(offset + 1n);
    for (const image of await sameOnEveryVoter(controller)) {
      const partitions = partitionsOf(image, 'orders');
      expect(partitions.slice(0, 4)).toEqual(before);
      for (const partition of partitions.slice(4)) {
        expect(new Set(partition.replicas).size).toBe(2);
        expect(partition.isr).toEqual(partition.replicas);
        expect(partition).toMatchObject({
          leader: partition.replicas[0],
          leaderEpoch: 0,
          partitionEpoch: 0,
        });
      }
      // The new partitions lead on the brokers that led fewer: two each.
      expect(leadersOf(image, 'orders')).toEqual([
        [101, 2],
        [102, 2],
        [103, 2],
      ]);
    }
  });

  it('answers bad entries with specific error codes and validateOnly writes nothing', async () => {
    const controller = await start();
    const epochs = await registerCaughtUpBrokers(controller);
    await controller.createTopics([
      { name: 'orders', partitions: 3, replicationFactor: 3 },
      { name: 'solo', partitions: 1, replicationFactor: 1 },
      { name: 'twice', partitions: 1, replicationFactor: 1 },
    ]);
    const offset = controller.image.offset;

    const results = await controller.createPartitions([
      { name: 'orders', count: 2 },
      { name: 'solo', count: 1 },
      { name: 'nope', count: 4 },
      { name: 'twice', count: 2 },
      { name: 'twice', count: 3 },
    ]);
    expect(results.map((r) => [r.name, r.errorCode])).toEqual([
      ['orders', ErrorCode.INVALID_PARTITIONS],
      ['solo', ErrorCode.INVALID_PARTITIONS],
      ['nope', ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
      ['twice', ErrorCode.INVALID_REQUEST],
      ['twice', ErrorCode.INVALID_REQUEST],
    ]);
    expect(results[0]!.errorMessage).toContain("topic 'orders' has 3 partitions");
    expect(results[1]!.errorMessage).toContain('ask for more than 1, got 1');

    const validated = await controller.createPartitions([{ name: 'orders', count: 6 }], {
      validateOnly: true,
    });
    expect(validated).toEqual([{ name: 'orders', errorCode: ErrorCode.NONE }]);
    expect(controller.image.offset).toBe(offset);
    expect(partitionsOf(controller.image, 'orders')).toHaveLength(3);

    // With 103 shutting down only two brokers take replicas: too few for RF 3, enough for RF 1.
    await controller.controlledShutdown({ brokerId: 103, brokerEpoch: epochs.get(103)! });
    const [tooFew, enough] = await controller.createPartitions([
      { name: 'orders', count: 4 },
      { name: 'solo', count: 4 },
    ]);
    expect(tooFew).toMatchObject({ errorCode: ErrorCode.INVALID_REPLICATION_FACTOR });
    expect(tooFew!.errorMessage).toContain(
      'replication factor 3 is larger than the 2 live brokers',
    );
    expect(enough!.errorCode).toBe(ErrorCode.NONE);
    for (const image of await sameOnEveryVoter(controller)) {
      expect(partitionsOf(image, 'orders')).toHaveLength(3);
      const solo = partitionsOf(image, 'solo');
      expect(solo).toHaveLength(4);
      expect(solo.slice(1).every((p) => !p.replicas.includes(103))).toBe(true);
    }
  });
});

describe('QuorumController.alterPartition', () => {
  /** A one-partition RF-3 topic and what its leader needs to send AlterPartition. */
  async function onePartition(controller: QuorumController) {
    const epochs = await registerCaughtUpBrokers(controller);
    await controller.createTopics([{ name: 'orders', partitions: 1, replicationFactor: 3 }]);
    const partition = partitionsOf(controller.image, 'orders')[0]!;
    const [leader, follower, other] = partition.replicas as [number, number, number];
    const request: BrokerAlterPartitionRequest = {
      brokerId: leader,
      brokerEpoch: epochs.get(leader)!,
      topicId: partition.topicId,
      partitionId: 0,
      leaderEpoch: partition.leaderEpoch,
      partitionEpoch: partition.partitionEpoch,
      newIsr: [leader, follower],
    };
    return { epochs, partition, leader, follower, other, request };
  }

  function stateOf(partition: PartitionImage | undefined) {
    return {
      leader: partition?.leader,
      leaderEpoch: partition?.leaderEpoch,
      isr: partition?.isr,
      partitionEpoch: partition?.partitionEpoch,
    };
  }

  it("shrinks and expands the leader's ISR and answers with the committed state", async () => {
    const controller = await start();
    const { partition, leader, follower, other, request } = await onePartition(controller);

    const shrunk = await controller.alterPartition(request);
    expect(shrunk).toEqual({ leader, leaderEpoch: 0, isr: [leader, follower], partitionEpoch: 1 });
    for (const image of await sameOnEveryVoter(controller)) {
      expect(stateOf(image.partition(partition.topicId, 0))).toEqual(shrunk);
    }

    // The ISR it already has: nothing written, the same answer.
    const offset = controller.image.offset;
    expect(await controller.alterPartition({ ...request, partitionEpoch: 1 })).toEqual(shrunk);
    expect(controller.image.offset).toBe(offset);

    const grown = await controller.alterPartition({
      ...request,
      partitionEpoch: 1,
      newIsr: [leader, follower, other],
    });
    expect(grown).toEqual({
      leader,
      leaderEpoch: 0,
      isr: [leader, follower, other],
      partitionEpoch: 2,
    });
    for (const image of await sameOnEveryVoter(controller)) {
      expect(stateOf(image.partition(partition.topicId, 0))).toEqual(grown);
    }
  });

  it("refuses requests with Kafka's error codes, writing nothing", async () => {
    const controller = await start();
    const { epochs, leader, follower, other, request } = await onePartition(controller);
    const offset = controller.image.offset;
    const send = (change: Partial<BrokerAlterPartitionRequest>) =>
      codeOf(controller.alterPartition({ ...request, ...change }));

    expect(await send({ brokerEpoch: request.brokerEpoch - 1n })).toBe(
      ErrorCode.STALE_BROKER_EPOCH,
    );
    expect(await send({ topicId: randomUUID() })).toBe(ErrorCode.UNKNOWN_TOPIC_ID);
    expect(await send({ partitionId: 7 })).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect(await send({ leaderEpoch: 1 })).toBe(ErrorCode.FENCED_LEADER_EPOCH);
    expect(await send({ brokerId: follower, brokerEpoch: epochs.get(follower)! })).toBe(
      ErrorCode.NOT_LEADER_OR_FOLLOWER,
    );
    expect(await send({ newIsr: [follower, other] })).toBe(ErrorCode.INVALID_REQUEST);
    expect(await send({ newIsr: [leader, leader] })).toBe(ErrorCode.INVALID_REQUEST);
    expect(controller.image.offset).toBe(offset);

    // A change moves the partition epoch on: an ISR computed from the old epoch is stale.
    await controller.alterPartition(request);
    expect(await send({ newIsr: [leader] })).toBe(ErrorCode.INVALID_UPDATE_VERSION);

    // A broker shutting down may not rejoin the ISR.
    await controller.controlledShutdown({ brokerId: other, brokerEpoch: epochs.get(other)! });
    const error = await controller
      .alterPartition({ ...request, partitionEpoch: 1, newIsr: [leader, follower, other] })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCode.INELIGIBLE_REPLICA });
    expect((error as Error).message).toContain(`adds brokers [${other}]`);
  });
});

describe('QuorumController.controlledShutdown', () => {
  it('moves leaderships away but keeps those with no other ISR member (KIP-841)', async () => {
    const controller = await start();
    const epochs = await registerCaughtUpBrokers(controller);
    await controller.createTopics([
      { name: 'orders', partitions: 3, replicationFactor: 3 },
      { name: 'solo', partitions: 3, replicationFactor: 1 },
    ]);
    const before = partitionsOf(controller.image, 'orders');
    const request = { brokerId: 102, brokerEpoch: epochs.get(102)! };

    expect(await controller.controlledShutdown(request)).toEqual({ remainingLeaderships: 1 });
    for (const image of await sameOnEveryVoter(controller)) {
      expect(image.broker(102)).toMatchObject({ inControlledShutdown: true, fenced: false });
      for (const partition of partitionsOf(image, 'orders')) {
        const previous = before[partition.partitionId]!;
        expect(partition.isr).not.toContain(102);
        expect([102, NO_LEADER]).not.toContain(partition.leader);
        const moved = previous.leader === 102 ? 1 : 0;
        expect(partition.leaderEpoch).toBe(previous.leaderEpoch + moved);
      }
      // Its RF-1 partition has nowhere to go: it stays led by 102 rather than going offline.
      const own = partitionsOf(image, 'solo').find((p) => p.replicas[0] === 102);
      expect(own).toMatchObject({ leader: 102, isr: [102] });
    }

    // Asking again changes nothing and gives the same answer.
    const offset = controller.image.offset;
    expect(await controller.controlledShutdown(request)).toEqual({ remainingLeaderships: 1 });
    expect(controller.image.offset).toBe(offset);

    expect(await codeOf(controller.controlledShutdown({ brokerId: 102, brokerEpoch: 1n }))).toBe(
      ErrorCode.STALE_BROKER_EPOCH,
    );

    // A broker shutting down receives no new replicas.
    const [later] = await controller.createTopics([
      { name: 'later', partitions: 4, replicationFactor: 2 },
    ]);
    expect(later!.errorCode).toBe(ErrorCode.NONE);
    const replicas = partitionsOf(controller.image, 'later').flatMap((p) => p.replicas);
    expect(replicas).not.toContain(102);

    // Still leading its RF-1 partition, it is not fenced; but it has announced that it goes, so
    // a new incarnation replaces it without waiting for its session to run out.
    expect(controller.image.broker(102)?.fenced).toBe(false);
    const replacement = await registerBroker(controller, 102, 'incarnation-102-next');
    expect(controller.image.broker(102)).toMatchObject({
      incarnationId: 'incarnation-102-next',
      brokerEpoch: replacement,
      inControlledShutdown: false,
      fenced: true,
    });
  });

  it('fences a broker that leads nothing any more, so its next incarnation registers at once', async () => {
    const controller = await start();
    const epochs = await registerCaughtUpBrokers(controller);
    await controller.createTopics([{ name: 'orders', partitions: 3, replicationFactor: 3 }]);
    const request = { brokerId: 102, brokerEpoch: epochs.get(102)! };

    expect(await controller.controlledShutdown(request)).toEqual({ remainingLeaderships: 0 });
    for (const image of await sameOnEveryVoter(controller)) {
      expect(image.broker(102)).toMatchObject({ inControlledShutdown: true, fenced: true });
    }
    // Its heartbeats until it exits do not unfence it.
    expect(await heartbeat(controller, 102, request.brokerEpoch)).toMatchObject({
      isFenced: true,
    });
    expect(controller.image.broker(102)?.fenced).toBe(true);

    // The restarted process (a new incarnation) is not refused as a duplicate, and its
    // registration ends the controlled shutdown.
    const epoch = await registerBroker(controller, 102, 'incarnation-102-restarted');
    expect(await heartbeat(controller, 102, epoch)).toMatchObject({ isFenced: false });
    expect(controller.image.broker(102)).toMatchObject({
      incarnationId: 'incarnation-102-restarted',
      inControlledShutdown: false,
      fenced: false,
    });
  });
});

describe('QuorumController.allocateProducerIds', () => {
  it('hands out consecutive blocks, continued by the next controller', async () => {
    const controller = await start();
    const epochs = await registerCaughtUpBrokers(controller);
    const first = await controller.allocateProducerIds({
      brokerId: 101,
      brokerEpoch: epochs.get(101)!,
    });
    const second = await controller.allocateProducerIds({
      brokerId: 102,
      brokerEpoch: epochs.get(102)!,
    });
    expect(first).toEqual({ firstProducerId: 0n, size: PRODUCER_ID_BLOCK_SIZE });
    expect(second).toEqual({ firstProducerId: 1000n, size: PRODUCER_ID_BLOCK_SIZE });
    for (const image of await sameOnEveryVoter(controller)) {
      expect(image.producerIds).toEqual({
        nextProducerId: 2000n,
        lastBlock: { brokerId: 102, firstProducerId: 1000n, size: 1000 },
      });
    }
    const stale = controller.allocateProducerIds({ brokerId: 103, brokerEpoch: 0n });
    expect(await codeOf(stale)).toBe(ErrorCode.STALE_BROKER_EPOCH);

    // The next controller continues after the last block in the log.
    const { hub, members } = quorum!;
    const old = members.find((m) => m.controller === controller)!;
    hub.down.add(old.id);
    const next = await waitFor('a new leader', () =>
      members.find((m) => m.node.isLeader && m.id !== old.id),
    );
    const third = await next.controller.allocateProducerIds({
      brokerId: 103,
      brokerEpoch: epochs.get(103)!,
    });
    expect(third.firstProducerId).toBe(2000n);
    hub.down.delete(old.id);
    await sameOnEveryVoter(next.controller);
  });
});

describe('QuorumController.incrementalAlterConfigs', () => {
  function alter(
    controller: QuorumController,
    resourceName: string,
    ops: AlterConfigOp[],
    options?: { validateOnly?: boolean },
  ) {
    return controller.incrementalAlterConfigs(
      [{ resourceType: 'topic', resourceName, ops }],
      options,
    );
  }

  it('sets and deletes topic configs on every voter, writing only values that change', async () => {
    const controller = await start();
    await registerCaughtUpBrokers(controller);
    await controller.createTopics([
      { name: 'orders', partitions: 1, replicationFactor: 3, configs: { 'retention.ms': '1000' } },
    ]);
    const results = await alter(controller, 'orders', [
      { name: 'cleanup.policy', op: 'set', value: 'compact' },
      { name: 'retention.ms', op: 'delete' },
      { name: 'min.insync.replicas', op: 'set', value: '2' },
    ]);
    expect(results).toEqual([
      { resourceType: 'topic', resourceName: 'orders', errorCode: ErrorCode.NONE },
    ]);
    for (const image of await sameOnEveryVoter(controller)) {
      expect(configsOf(image, 'orders')).toEqual({
        'cleanup.policy': 'compact',
        'min.insync.replicas': '2',
      });
    }

    const offset = controller.image.offset;
    const unchanged = await alter(controller, 'orders', [
      { name: 'cleanup.policy', op: 'set', value: 'compact' },
      { name: 'retention.ms', op: 'delete' },
    ]);
    expect(unchanged[0]!.errorCode).toBe(ErrorCode.NONE);
    expect(controller.image.offset).toBe(offset);
  });

  it('refuses bad resources one by one; validateOnly writes nothing', async () => {
    const controller = await start();
    await registerCaughtUpBrokers(controller);
    await controller.createTopics([
      { name: 'orders', partitions: 1, replicationFactor: 3 },
      { name: 'payments', partitions: 1, replicationFactor: 1 },
    ]);
    const offset = controller.image.offset;
    const codeFor = async (name: string, ops: AlterConfigOp[]) => {
      const [result] = await alter(controller, name, ops);
      return [result!.errorCode, result!.errorMessage];
    };

    expect(await codeFor('nope', [{ name: 'retention.ms', op: 'set', value: '1' }])).toEqual([
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      expect.stringContaining("topic 'nope' does not exist"),
    ]);
    expect(await codeFor('orders', [{ name: 'retention.ms', op: 'set', value: 'soon' }])).toEqual([
      ErrorCode.INVALID_CONFIG,
      expect.stringContaining("invalid value 'soon' for retention.ms"),
    ]);
    expect(await codeFor('orders', [{ name: 'no.such', op: 'set', value: '1' }])).toEqual([
      ErrorCode.INVALID_CONFIG,
      expect.stringContaining("unknown topic config 'no.such'"),
    ]);
    expect(await codeFor('orders', [{ name: 'no.such', op: 'delete' }])).toEqual([
      ErrorCode.INVALID_CONFIG,
      expect.stringContaining("unknown topic config 'no.such'"),
    ]);
    expect(
      await codeFor('orders', [{ name: 'min.insync.replicas', op: 'set', value: '4' }]),
    ).toEqual([ErrorCode.INVALID_CONFIG, expect.stringContaining('replication factor 3')]);
    expect(await codeFor('orders', [{ name: 'retention.ms', op: 'set' }])).toEqual([
      ErrorCode.INVALID_REQUEST,
      expect.stringContaining('needs a value'),
    ]);
    expect(
      await codeFor('orders', [
        { name: 'retention.ms', op: 'set', value: '1' },
        { name: 'retention.ms', op: 'delete' },
      ]),
    ).toEqual([ErrorCode.INVALID_REQUEST, expect.stringContaining('appears more than once')]);
    expect(controller.image.offset).toBe(offset);

    // A resource named twice fails; the other resource of the request is still applied.
    const results = await controller.incrementalAlterConfigs([
      { resourceType: 'topic', resourceName: 'orders', ops: [] },
      { resourceType: 'topic', resourceName: 'orders', ops: [] },
      {
        resourceType: 'topic',
        resourceName: 'payments',
        ops: [{ name: 'retention.ms', op: 'set', value: '60000' }],
      },
    ]);
    expect(results.map((r) => r.errorCode)).toEqual([
      ErrorCode.INVALID_REQUEST,
      ErrorCode.INVALID_REQUEST,
      ErrorCode.NONE,
    ]);
    for (const image of await sameOnEveryVoter(controller)) {
      expect(configsOf(image, 'payments')).toEqual({ 'retention.ms': '60000' });
    }

    const before = controller.image.offset;
    const validated = await alter(
      controller,
      'orders',
      [{ name: 'cleanup.policy', op: 'set', value: 'compact' }],
      { validateOnly: true },
    );
    expect(validated[0]!.errorCode).toBe(ErrorCode.NONE);
    expect(controller.image.offset).toBe(before);
    expect(configsOf(controller.image, 'orders')).toEqual({});
  });
});

describe('QuorumController.registerBroker: duplicate registrations', () => {
  it('refuses another incarnation of a live broker until its session expires', async () => {
    const controller = await start();
    const clock = quorum!.clock;
    const first = await registerBroker(controller, 101, 'incarnation-a');
    await heartbeat(controller, 101, first);

    const duplicate = await controller
      .registerBroker({ brokerId: 101, incarnationId: 'incarnation-b', endpoints: [] })
      .catch((e: unknown) => e);
    expect(duplicate).toMatchObject({ code: ErrorCode.DUPLICATE_BROKER_REGISTRATION });
    expect((duplicate as Error).message).toContain('another process with node id 101 is running');
    expect(controller.image.broker(101)).toMatchObject({
      incarnationId: 'incarnation-a',
      brokerEpoch: first,
    });

    // The same incarnation registering again is a retry, and it is accepted.
    const retry = await registerBroker(controller, 101, 'incarnation-a');
    expect(retry).toBeGreaterThan(first);
    expect((await heartbeat(controller, 101, retry)).isFenced).toBe(false);

    // Still unfenced (no tick has run), but once its session has expired the new one may come.
    clock.nowMs += BROKER_SESSION_TIMEOUT_MS - 1;
    expect(await codeOf(registerBroker(controller, 101, 'incarnation-b'))).toBe(
      ErrorCode.DUPLICATE_BROKER_REGISTRATION,
    );
    clock.nowMs += 1;
    expect(controller.image.broker(101)?.fenced).toBe(false);
    const replaced = await registerBroker(controller, 101, 'incarnation-b');
    for (const image of await sameOnEveryVoter(controller)) {
      expect(image.broker(101)).toMatchObject({
        incarnationId: 'incarnation-b',
        brokerEpoch: replaced,
        fenced: true,
      });
    }
  });
});

describe('QuorumController.tick: preferred-leader elections', () => {
  const INTERVAL_MS = 60_000;

  it('gives a returning broker its preferred leaderships back at the next check', async () => {
    const controller = await start({ leaderImbalanceCheckIntervalMs: INTERVAL_MS });
    const clock = quorum!.clock;
    const epochs = await registerCaughtUpBrokers(controller);
    await controller.createTopics([{ name: 'orders', partitions: 12, replicationFactor: 3 }]);
    const preferring103 = partitionsOf(controller.image, 'orders')
      .filter((p) => p.replicas[0] === 103)
      .map((p) => p.partitionId);
    expect(preferring103).toHaveLength(4);

    // 103 falls silent and is fenced; its leaderships move to 101 and 102.
    clock.nowMs += BROKER_SESSION_TIMEOUT_MS / 2;
    for (const brokerId of [101, 102]) await heartbeat(controller, brokerId, epochs.get(brokerId)!);
    clock.nowMs += BROKER_SESSION_TIMEOUT_MS / 2;
    expect(await controller.tick()).toEqual({ fencedBrokers: [103], preferredLeaderElections: 0 });

    // It comes back, and the leaders take it into their ISRs again.
    epochs.set(103, await registerBroker(controller, 103));
    expect((await heartbeat(controller, 103, epochs.get(103)!)).isFenced).toBe(false);
    for (const partition of partitionsOf(controller.image, 'orders')) {
      await controller.alterPartition({
        brokerId: partition.leader,
        brokerEpoch: epochs.get(partition.leader)!,
        topicId: partition.topicId,
        partitionId: partition.partitionId,
        leaderEpoch: partition.leaderEpoch,
        partitionEpoch: partition.partitionEpoch,
        newIsr: [...partition.isr, 103],
      });
    }
    const rejoined = partitionsOf(controller.image, 'orders');
    expect(rejoined.every((p) => p.isr.includes(103) && p.leader !== 103)).toBe(true);

    // Before the check interval has passed, leadership stays where it is.
    expect(await controller.tick()).toEqual({ fencedBrokers: [], preferredLeaderElections: 0 });
    expect(partitionsOf(controller.image, 'orders')).toEqual(rejoined);

    clock.nowMs = INTERVAL_MS;
    for (const [brokerId, brokerEpoch] of epochs)
      await heartbeat(controller, brokerId, brokerEpoch);
    const offset = controller.image.offset;
    expect(await controller.tick()).toEqual({ fencedBrokers: [], preferredLeaderElections: 4 });
    expect(controller.image.offset).toBe(offset + 1n);
    for (const image of await sameOnEveryVoter(controller)) {
      for (const partition of partitionsOf(image, 'orders')) {
        const previous = rejoined[partition.partitionId]!;
        expect(partition.leader).toBe(partition.replicas[0]);
        const moved = preferring103.includes(partition.partitionId) ? 1 : 0;
        expect(partition.leaderEpoch).toBe(previous.leaderEpoch + moved);
      }
    }
    // Balanced: the next tick has nothing to do.
    expect(await controller.tick()).toEqual({ fencedBrokers: [], preferredLeaderElections: 0 });
  });
});
