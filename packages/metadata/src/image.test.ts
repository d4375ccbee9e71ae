import { ErrorCode, WeirError } from '@weir/protocol';
import { describe, expect, it } from 'vitest';
import {
  changeBroker,
  changePartition,
  config,
  partition,
  producerIds,
  registerBroker,
  removeTopic,
  topic,
  topicConfig,
} from '../test/builders.js';
import { MetadataImage } from './image.js';
import { ConfigResourceType, type MetadataRecord } from './records.js';

/** Applies each batch at the next offset, returning the last image and delta. */
function replay(...batches: MetadataRecord[][]) {
  let image = MetadataImage.EMPTY;
  let result = image.apply([], 0n);
  for (const batch of batches) {
    result = image.apply(batch, image.offset + BigInt(Math.max(batch.length, 1)));
    image = result.image;
  }
  return result;
}

const threeBrokers = [registerBroker(1, 0n), registerBroker(2, 1n), registerBroker(3, 2n)];
const ordersTopic = [
  topic('orders'),
  partition('id-orders', 0, [1, 2, 3]),
  partition('id-orders', 1, [2, 3, 1]),
  partition('id-orders', 2, [3, 1, 2]),
];

function expectIllegal(apply: () => unknown, message: RegExp): void {
  try {
    apply();
  } catch (error) {
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).code).toBe(ErrorCode.ILLEGAL_STATE);
    expect((error as WeirError).message).toMatch(message);
    return;
  }
  expect.fail('expected an ILLEGAL_STATE assertion');
}

describe('MetadataImage: brokers', () => {
  it('registers brokers with their endpoints, rack and epoch', () => {
    const { image, delta } = replay([registerBroker(1, 0n, { rack: 'a', fenced: true })]);
    expect(image.offset).toBe(0n);
    expect(image.broker(1)).toEqual({
      brokerId: 1,
      incarnationId: 'incarnation-1-0',
      brokerEpoch: 0n,
      endpoints: [{ name: 'BROKER', host: '127.0.0.1', port: 9102 }],
      rack: 'a',
      fenced: true,
      inControlledShutdown: false,
    });
    expect(delta.registeredBrokers.map((b) => b.brokerId)).toEqual([1]);
    expect(delta.fencedBrokers).toEqual([]);
    expect(delta.unfencedBrokers).toEqual([]);
  });

  it('fences, unfences and marks controlled shutdown, reporting each in the delta', () => {
    const registered = replay([registerBroker(1, 0n, { fenced: true })]).image;
    const unfenced = registered.apply([changeBroker(1, 0n, { fenced: false })], 5n);
    expect(unfenced.image.broker(1)?.fenced).toBe(false);
    expect(unfenced.delta.unfencedBrokers).toEqual([1]);
    expect(unfenced.delta.registeredBrokers).toEqual([]);

    const shutdown = unfenced.image.apply(
      [changeBroker(1, 0n, { inControlledShutdown: true })],
      6n,
    );
    expect(shutdown.image.broker(1)).toMatchObject({ fenced: false, inControlledShutdown: true });
    expect(shutdown.delta.brokerChanges).toHaveLength(1);
    expect(shutdown.delta.fencedBrokers).toEqual([]);

    const fenced = shutdown.image.apply([changeBroker(1, 0n, { fenced: true })], 7n);
    expect(fenced.delta.fencedBrokers).toEqual([1]);
  });

  it('takes a new registration of the same broker with a higher epoch', () => {
    const first = replay([registerBroker(1, 0n)]).image;
    const { image, delta } = first.apply([registerBroker(1, 9n, { incarnationId: 'new' })], 9n);
    expect(image.broker(1)).toMatchObject({ brokerEpoch: 9n, incarnationId: 'new' });
    expect(delta.registeredBrokers.map((b) => b.brokerEpoch)).toEqual([9n]);
  });

  it('refuses a stale broker epoch and a change for an unknown broker', () => {
    const image = MetadataImage.EMPTY.apply(
      [registerBroker(1, 4n), registerBroker(2, 5n)],
      5n,
    ).image;
    expectIllegal(() => image.apply([registerBroker(1, 3n)], 10n), /does not follow 4/);
    expectIllegal(
      () => image.apply([changeBroker(1, 3n, { fenced: true })], 10n),
      /broker epoch 3 is not the registered 4/,
    );
    expectIllegal(
      () => image.apply([changeBroker(7, 0n, { fenced: true })], 10n),
      /broker 7 is not registered/,
    );
    expectIllegal(() => image.apply([registerBroker(3, 11n)], 10n), /past offset 10/);
  });
});

describe('MetadataImage: topics and partitions', () => {
  it('creates a topic with partitions, found by name and by id', () => {
    const { image, delta } = replay(threeBrokers, ordersTopic);
    expect(image.topic('orders')).toBe(image.topicById('id-orders'));
    expect(image.partition('id-orders', 1)).toEqual({
      topicId: 'id-orders',
      partitionId: 1,
      replicas: [2, 3, 1],
      isr: [2, 3, 1],
      leader: 2,
      leaderEpoch: 0,
      partitionEpoch: 0,
    });
    expect(delta.topicsCreated.map((t) => t.name)).toEqual(['orders']);
    expect(delta.partitionChanges.map((c) => [c.partitionId, c.before, c.leaderChanged])).toEqual([
      [0, undefined, true],
      [1, undefined, true],
      [2, undefined, true],
    ]);
  });

  it('a leader change bumps the leader and partition epochs', () => {
    const base = replay(threeBrokers, ordersTopic).image;
    const { image, delta } = base.apply(
      [changePartition('id-orders', 0, { leader: 2, isr: [2, 3] })],
      base.offset + 1n,
    );
    expect(image.partition('id-orders', 0)).toMatchObject({
      leader: 2,
      isr: [2, 3],
      leaderEpoch: 1,
      partitionEpoch: 1,
    });
    expect(delta.partitionChanges).toHaveLength(1);
    expect(delta.partitionChanges[0]).toMatchObject({
      topicName: 'orders',
      leaderChanged: true,
      isrChanged: true,
      replicasChanged: false,
    });
  });

  it('an ISR change bumps only the partition epoch', () => {
    const base = replay(threeBrokers, ordersTopic).image;
    const { image, delta } = base.apply(
      [changePartition('id-orders', 0, { isr: [1, 2] })],
      base.offset + 1n,
    );
    expect(image.partition('id-orders', 0)).toMatchObject({ leaderEpoch: 0, partitionEpoch: 1 });
    expect(delta.partitionChanges[0]).toMatchObject({ leaderChanged: false, isrChanged: true });
  });

  it('a reassignment changes the replicas', () => {
    const base = replay(threeBrokers, [registerBroker(4, 3n)], ordersTopic).image;
    const { image, delta } = base.apply(
      [changePartition('id-orders', 2, { replicas: [4, 1, 2], isr: [1, 2], leader: 1 })],
      base.offset + 1n,
    );
    expect(image.partition('id-orders', 2)).toMatchObject({ replicas: [4, 1, 2], leader: 1 });
    expect(delta.partitionChanges[0]).toMatchObject({ replicasChanged: true, leaderChanged: true });
  });

  it('removes a topic with its partitions and its configuration', () => {
    const base = replay(threeBrokers, ordersTopic, [
      topicConfig('orders', 'retention.ms', '60000'),
    ]).image;
    const { image, delta } = base.apply([removeTopic('id-orders')], base.offset + 1n);
    expect(image.topic('orders')).toBeUndefined();
    expect(image.topicById('id-orders')).toBeUndefined();
    expect(image.configsFor(ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, 'orders').size).toBe(0);
    expect(delta.topicsDeleted.map((t) => t.partitions.size)).toEqual([3]);
    expect(delta.partitionChanges.every((c) => c.after === undefined)).toBe(true);
    expect(delta.configChanges).toEqual([
      expect.objectContaining({ name: 'retention.ms', before: '60000', after: undefined }),
    ]);
    // The name is free again, for a topic with a new id.
    const again = image.apply([topic('orders', 'id-orders-2')], image.offset + 1n).image;
    expect(again.topic('orders')?.topicId).toBe('id-orders-2');
  });

  it('shares untouched topics and partitions with the previous image', () => {
    const base = replay(threeBrokers, ordersTopic, [
      topic('payments'),
      partition('id-payments', 0, [1]),
    ]).image;
    const { image } = base.apply(
      [changePartition('id-orders', 0, { isr: [1, 2] })],
      base.offset + 1n,
    );
    expect(image.topic('payments')).toBe(base.topic('payments'));
    expect(image.partition('id-orders', 1)).toBe(base.partition('id-orders', 1));
    expect(image.brokers).toBe(base.brokers);
    expect(image.configs).toBe(base.configs);
    expect(Object.isFrozen(image.partition('id-orders', 0))).toBe(true);
  });
});

describe('MetadataImage: configs and producer ids', () => {
  it('sets and deletes config entries per resource', () => {
    const cluster = ConfigResourceType.CONFIG_RESOURCE_TYPE_CLUSTER;
    const broker = ConfigResourceType.CONFIG_RESOURCE_TYPE_BROKER;
    const { image } = replay(
      [config(cluster, '', 'min.insync.replicas', '2'), config(broker, '1', 'a', '1')],
      [config(broker, '1', 'a', undefined), config(cluster, '', 'min.insync.replicas', '3')],
    );
    expect([...image.configsFor(cluster, '')]).toEqual([['min.insync.replicas', '3']]);
    expect(image.configsFor(broker, '1').size).toBe(0);
    expect(image.configs.size).toBe(1);
  });

  it('hands out producer id blocks that never overlap', () => {
    const { image, delta } = replay([producerIds(1, 0n, 1000)], [producerIds(2, 1000n, 1000)]);
    expect(image.producerIds).toEqual({
      nextProducerId: 2000n,
      lastBlock: { brokerId: 2, firstProducerId: 1000n, size: 1000 },
    });
    expect(delta.producerIds?.nextProducerId).toBe(2000n);
    expectIllegal(() => image.apply([producerIds(3, 1999n, 10)], 99n), /overlaps/);
  });
});

describe('MetadataImage: invariants', () => {
  const base = replay(threeBrokers, ordersTopic).image;
  const next = base.offset + 1n;

  it('refuses an ISR outside the replicas and a leader outside the ISR', () => {
    expectIllegal(
      () => base.apply([changePartition('id-orders', 0, { isr: [1, 4] })], next),
      /ISR \[1,4\] is not within the replicas \[1,2,3\]/,
    );
    expectIllegal(
      () => base.apply([changePartition('id-orders', 0, { isr: [2, 3] })], next),
      /leader 1 is not in the ISR/,
    );
    expectIllegal(
      () => base.apply([partition('id-orders', 5, [1, 1])], next),
      /not distinct broker ids/,
    );
  });

  it('refuses changes to unknown partitions and topics', () => {
    expectIllegal(
      () => base.apply([changePartition('id-orders', 9, { leader: -1 })], next),
      /unknown partition/,
    );
    expectIllegal(() => base.apply([partition('nope', 0, [1])], next), /unknown topic id nope/);
    expectIllegal(() => base.apply([removeTopic('nope')], next), /unknown topic id nope/);
    expectIllegal(() => base.apply([topic('orders', 'other')], next), /already exists/);
  });

  it('refuses epochs that go back', () => {
    const moved = base.apply([changePartition('id-orders', 0, { leader: 2 })], next).image;
    expectIllegal(
      () => moved.apply([partition('id-orders', 0, [1, 2, 3], { partitionEpoch: 2 })], next + 1n),
      /epochs went back/,
    );
    expectIllegal(() => base.apply([], base.offset), /does not follow/);
  });

  it('applies a batch entirely or not at all', () => {
    const batch = [changePartition('id-orders', 0, { leader: 2 }), removeTopic('nope')];
    expect(() => base.apply(batch, next)).toThrow(WeirError);
    expect(base.partition('id-orders', 0)?.leader).toBe(1);
    expect(base.offset).toBe(next - 1n);
  });
});

describe('MetadataDelta.leadershipChangesFor', () => {
  const base = replay(threeBrokers, ordersTopic).image;

  it('tells each broker of new partitions what it leads and follows', () => {
    const delta = replay(threeBrokers, ordersTopic).delta;
    const changes = delta.leadershipChangesFor(2);
    expect(changes.leader.map((p) => p.partitionId)).toEqual([1]);
    expect(changes.follower.map((p) => p.partitionId)).toEqual([0, 2]);
    expect(changes.stopped).toEqual([]);
    expect(delta.leadershipChangesFor(9)).toEqual({ leader: [], follower: [], stopped: [] });
  });

  it('after broker 1 is fenced: the new leader, the followers and broker 1', () => {
    const { delta } = base.apply(
      [
        changeBroker(1, 0n, { fenced: true }),
        changePartition('id-orders', 0, { leader: 2, isr: [2, 3] }),
        changePartition('id-orders', 1, { isr: [2, 3] }),
        changePartition('id-orders', 2, { isr: [3, 2] }),
      ],
      base.offset + 4n,
    );
    expect(delta.fencedBrokers).toEqual([1]);
    // Broker 2 leads partition 0 now; its own partition 1 only lost an ISR member.
    expect(delta.leadershipChangesFor(2).leader.map((p) => p.partitionId)).toEqual([0]);
    expect(delta.leadershipChangesFor(2).follower).toEqual([]);
    // Broker 3 follows a new leader of partition 0 only.
    expect(delta.leadershipChangesFor(3)).toMatchObject({ leader: [], stopped: [] });
    expect(delta.leadershipChangesFor(3).follower.map((p) => p.partitionId)).toEqual([0]);
    // Broker 1 is still a replica of partition 0, now a follower of broker 2.
    expect(delta.leadershipChangesFor(1).follower.map((p) => p.partitionId)).toEqual([0]);
  });

  it('reports replicas moved away and deleted topics as stopped', () => {
    const withFour = base.apply([registerBroker(4, base.offset + 1n)], base.offset + 1n).image;
    const { delta } = withFour.apply(
      [changePartition('id-orders', 1, { replicas: [2, 3, 4], isr: [2, 3] })],
      withFour.offset + 1n,
    );
    expect(delta.leadershipChangesFor(1).stopped).toEqual([
      { partition: withFour.partition('id-orders', 1), deleted: false },
    ]);
    expect(delta.leadershipChangesFor(4).follower.map((p) => p.partitionId)).toEqual([1]);

    const removed = base.apply([removeTopic('id-orders')], base.offset + 1n).delta;
    const stopped = removed.leadershipChangesFor(3).stopped;
    expect(stopped.map((s) => [s.partition.partitionId, s.deleted])).toEqual([
      [0, true],
      [1, true],
      [2, true],
    ]);
  });

  it('an empty batch is an empty delta', () => {
    const { image, delta } = base.apply([], base.offset + 1n);
    expect(delta.isEmpty).toBe(true);
    expect(image.offset).toBe(base.offset + 1n);
    expect(image.topicsById).toBe(base.topicsById);
  });
});
