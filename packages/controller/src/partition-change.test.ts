import {
  ConfigResourceType,
  MetadataImage,
  type MetadataRecord,
  NO_LEADER,
  type PartitionChangeRecord,
  type PartitionImage,
  metadataRecord,
} from '@weir/metadata';
import { ErrorCode, WeirError } from '@weir/protocol';
import { describe, expect, it } from 'vitest';
import {
  STALE_PARTITION_EPOCH_ERROR,
  alterPartition,
  controlledShutdown,
  electLeader,
  electOfflineLeaders,
  fenceBroker,
  partitionChangeRecords,
  preferredLeaderElection,
} from './partition-change.js';

const TOPIC = 'id-orders';

function registerBroker(brokerId: number, brokerEpoch: bigint): MetadataRecord {
  return metadataRecord({
    $case: 'registerBroker',
    value: {
      brokerId,
      incarnationId: `incarnation-${brokerId}`,
      brokerEpoch,
      endpoints: [],
      rack: undefined,
      fenced: false,
      inControlledShutdown: false,
    },
  });
}

function partitionRecord(
  partitionId: number,
  replicas: number[],
  isr: number[] = replicas,
  leader: number = isr[0] ?? NO_LEADER,
): MetadataRecord {
  return metadataRecord({
    $case: 'partition',
    value: {
      topicId: TOPIC,
      partitionId,
      replicas,
      isr,
      leader,
      leaderEpoch: 0,
      partitionEpoch: 0,
    },
  });
}

/** An image with brokers 1..brokers and topic "orders" with the given partitions. */
function imageWith(
  brokers: number,
  partitions: { replicas: number[]; isr?: number[]; leader?: number }[],
  extra: MetadataRecord[] = [],
): MetadataImage {
  const records: MetadataRecord[] = [];
  for (let id = 1; id <= brokers; id++) records.push(registerBroker(id, 0n));
  records.push(metadataRecord({ $case: 'topic', value: { name: 'orders', topicId: TOPIC } }));
  partitions.forEach((p, i) => records.push(partitionRecord(i, p.replicas, p.isr, p.leader)));
  return MetadataImage.EMPTY.apply([...records, ...extra], 0n).image;
}

function applyChanges(image: MetadataImage, records: PartitionChangeRecord[]): MetadataImage {
  return image.apply(partitionChangeRecords(records), image.offset + 1n).image;
}

function part(image: MetadataImage, partitionId: number): PartitionImage {
  const partition = image.partition(TOPIC, partitionId);
  if (partition === undefined) throw new Error(`no partition ${partitionId}`);
  return partition;
}

function liveExcept(...down: number[]): (id: number) => boolean {
  return (id) => !down.includes(id);
}

function expectWeirError(run: () => unknown, code: ErrorCode, message: RegExp): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(WeirError);
  expect((thrown as WeirError).code).toBe(code);
  expect((thrown as WeirError).message).toMatch(message);
}

describe('electLeader', () => {
  const partition = (isr: number[], leader: number): PartitionImage =>
    part(imageWith(3, [{ replicas: [1, 2, 3], isr, leader }]), 0);

  it('changes nothing while the leader is live and in the ISR', () => {
    expect(
      electLeader(partition([1, 2, 3], 2), { isLive: () => true, uncleanElectionEnabled: false }),
    ).toBeUndefined();
  });

  it('picks the first live ISR member in replica order', () => {
    const record = electLeader(partition([3, 2, 1], 1), {
      isLive: liveExcept(1),
      uncleanElectionEnabled: false,
    });
    expect(record).toEqual({ topicId: TOPIC, partitionId: 0, leader: 2 });
  });

  it('goes offline without unclean election, keeping the ISR', () => {
    const record = electLeader(partition([1], 1), {
      isLive: liveExcept(1),
      uncleanElectionEnabled: false,
    });
    expect(record).toEqual({ topicId: TOPIC, partitionId: 0, leader: NO_LEADER });
  });

  it('elects the first live replica, alone in the ISR, with unclean election', () => {
    const record = electLeader(partition([1], 1), {
      isLive: liveExcept(1),
      uncleanElectionEnabled: true,
    });
    expect(record).toEqual({ topicId: TOPIC, partitionId: 0, leader: 2, isr: { brokerIds: [2] } });
  });

  it('does not rewrite an offline partition that is still offline', () => {
    expect(
      electLeader(partition([1], NO_LEADER), {
        isLive: liveExcept(1),
        uncleanElectionEnabled: false,
      }),
    ).toBeUndefined();
  });
});

describe('fenceBroker', () => {
  it('moves the 4 leaderships of a fenced broker (3 brokers, RF 3) to the first live ISR member, and removes it from every ISR', () => {
    const image = imageWith(3, [
      { replicas: [1, 2, 3] },
      { replicas: [1, 3, 2] },
      { replicas: [1, 2, 3], isr: [1, 3] },
      { replicas: [1, 3, 2], isr: [1, 2, 3] },
      { replicas: [2, 1, 3] },
      { replicas: [3, 2, 1], isr: [3, 2] },
    ]);
    const records = fenceBroker(image, 1, { isLive: () => true });
    expect(records).toHaveLength(5); // partition 5 does not have broker 1 in its ISR
    const after = applyChanges(image, records);
    const expectedLeaders = [2, 3, 3, 3, 2, 3];
    for (let p = 0; p < 6; p++) {
      const before = part(image, p);
      const now = part(after, p);
      expect(now.leader).toBe(expectedLeaders[p]);
      expect(now.isr).not.toContain(1);
      expect(now.leaderEpoch).toBe(before.leaderEpoch + (now.leader === before.leader ? 0 : 1));
      expect(now.partitionEpoch).toBe(before.partitionEpoch + (p === 5 ? 0 : 1));
    }
    expect(part(after, 0).isr).toEqual([2, 3]);
    expect(part(after, 2).isr).toEqual([3]);
  });

  it('keeps the last ISR member in the ISR and takes the partition offline (KIP-841)', () => {
    const image = imageWith(3, [{ replicas: [1, 2, 3], isr: [1] }]);
    const after = applyChanges(image, fenceBroker(image, 1, { isLive: () => true }));
    expect(part(after, 0)).toMatchObject({
      leader: NO_LEADER,
      isr: [1],
      leaderEpoch: 1,
      partitionEpoch: 1,
    });
    // When broker 1 returns, it leads again without unclean election.
    const back = applyChanges(after, electOfflineLeaders(after, { isLive: () => true }));
    expect(part(back, 0)).toMatchObject({ leader: 1, isr: [1], leaderEpoch: 2 });
  });

  it('elects an out-of-ISR replica when the topic enables unclean election', () => {
    const unclean = metadataRecord({
      $case: 'config',
      value: {
        resourceType: ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC,
        resourceName: 'orders',
        name: 'unclean.leader.election.enable',
        value: 'true',
      },
    });
    const image = imageWith(3, [{ replicas: [1, 2, 3], isr: [1] }], [unclean]);
    const after = applyChanges(image, fenceBroker(image, 1, { isLive: () => true }));
    expect(part(after, 0)).toMatchObject({ leader: 2, isr: [2], leaderEpoch: 1 });
    // The option overrides the config.
    const offline = applyChanges(
      image,
      fenceBroker(image, 1, { isLive: () => true, uncleanElectionEnabled: () => false }),
    );
    expect(part(offline, 0)).toMatchObject({ leader: NO_LEADER, isr: [1] });
  });

  it('removes a follower from the ISR without changing the leader epoch', () => {
    const image = imageWith(3, [{ replicas: [1, 2, 3] }]);
    const after = applyChanges(image, fenceBroker(image, 3, { isLive: () => true }));
    expect(part(after, 0)).toMatchObject({
      leader: 1,
      isr: [1, 2],
      leaderEpoch: 0,
      partitionEpoch: 1,
    });
  });
});

describe('controlledShutdown', () => {
  it('moves leadership away and keeps the partitions where the broker is the only ISR member', () => {
    const image = imageWith(3, [
      { replicas: [1, 2, 3] },
      { replicas: [1, 2, 3], isr: [1] },
      { replicas: [2, 1, 3] },
    ]);
    const { records, remainingLeaderships } = controlledShutdown(image, 1, {
      isLive: () => true,
      uncleanElectionEnabled: () => true, // never used: a controlled shutdown loses no data
    });
    expect(remainingLeaderships).toEqual([{ topicId: TOPIC, partitionId: 1 }]);
    const after = applyChanges(image, records);
    expect(part(after, 0)).toMatchObject({ leader: 2, isr: [2, 3], leaderEpoch: 1 });
    expect(part(after, 1)).toEqual(part(image, 1));
    expect(part(after, 2)).toMatchObject({ leader: 2, isr: [2, 3], leaderEpoch: 0 });
  });
});

describe('alterPartition', () => {
  const image = imageWith(3, [{ replicas: [1, 2, 3], isr: [1, 2] }]);
  const base = { topicId: TOPIC, partitionId: 0, leaderId: 1, leaderEpoch: 0, partitionEpoch: 0 };

  it('expands the ISR with an unfenced replica, bumping only the partition epoch', () => {
    const record = alterPartition(image, { ...base, newIsr: [1, 2, 3] }, () => true);
    expect(record).toEqual({ topicId: TOPIC, partitionId: 0, isr: { brokerIds: [1, 2, 3] } });
    const after = applyChanges(image, [record!]);
    expect(part(after, 0)).toMatchObject({ isr: [1, 2, 3], leaderEpoch: 0, partitionEpoch: 1 });
    // The next request must be based on the new partition epoch.
    expectWeirError(
      () => alterPartition(after, { ...base, newIsr: [1, 2] }, () => true),
      STALE_PARTITION_EPOCH_ERROR,
      /stale partition epoch 0 \(current 1\)/,
    );
    expect(alterPartition(after, { ...base, partitionEpoch: 1, newIsr: [1] }, () => true)).toEqual({
      topicId: TOPIC,
      partitionId: 0,
      isr: { brokerIds: [1] },
    });
  });

  it('returns nothing when the ISR is unchanged', () => {
    expect(alterPartition(image, { ...base, newIsr: [2, 1] }, () => true)).toBeUndefined();
  });

  it('never adds a fenced broker back', () => {
    const fenced = applyChanges(image, fenceBroker(image, 2, { isLive: () => true }));
    expect(part(fenced, 0).isr).toEqual([1]);
    expectWeirError(
      () =>
        alterPartition(fenced, { ...base, partitionEpoch: 1, newIsr: [1, 2] }, (id) => id !== 2),
      ErrorCode.INELIGIBLE_REPLICA,
      /adds brokers \[2\] that are fenced or shutting down/,
    );
  });

  it('refuses a broker in controlled shutdown', () => {
    const shuttingDown = image.apply(
      [
        metadataRecord({
          $case: 'brokerRegistrationChange',
          value: { brokerId: 3, brokerEpoch: 0n, inControlledShutdown: true },
        }),
      ],
      1n,
    ).image;
    expectWeirError(
      () => alterPartition(shuttingDown, { ...base, newIsr: [1, 2, 3] }, () => true),
      ErrorCode.INELIGIBLE_REPLICA,
      /adds brokers \[3\]/,
    );
  });

  it('refuses a stale leader epoch, a non-leader and a bad ISR', () => {
    const ok = () => true;
    expectWeirError(
      () => alterPartition(image, { ...base, leaderEpoch: 1, newIsr: [1] }, ok),
      ErrorCode.FENCED_LEADER_EPOCH,
      /leader epoch 1 is not the current 0/,
    );
    expectWeirError(
      () => alterPartition(image, { ...base, leaderId: 2, newIsr: [2] }, ok),
      ErrorCode.NOT_LEADER_OR_FOLLOWER,
      /broker 2 is not the leader/,
    );
    expectWeirError(
      () => alterPartition(image, { ...base, newIsr: [1, 4] }, ok),
      ErrorCode.INVALID_REQUEST,
      /outside the replicas/,
    );
    expectWeirError(
      () => alterPartition(image, { ...base, newIsr: [2] }, ok),
      ErrorCode.INVALID_REQUEST,
      /does not include the leader 1/,
    );
    expectWeirError(
      () => alterPartition(image, { ...base, newIsr: [1, 1] }, ok),
      ErrorCode.INVALID_REQUEST,
      /duplicates/,
    );
    expectWeirError(
      () => alterPartition(image, { ...base, topicId: 'nope', newIsr: [1] }, ok),
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      /no such partition/,
    );
  });
});

describe('preferredLeaderElection', () => {
  it('moves leadership back to a live in-sync preferred replica', () => {
    const image = imageWith(3, [
      { replicas: [1, 2, 3], leader: 2 }, // moves to 1
      { replicas: [1, 2, 3], isr: [2, 3], leader: 2 }, // 1 not in the ISR
      { replicas: [3, 1, 2], leader: 1 }, // 3 is not live
      { replicas: [2, 3, 1] }, // already led by 2
    ]);
    const records = preferredLeaderElection(image, liveExcept(3));
    expect(records).toEqual([{ topicId: TOPIC, partitionId: 0, leader: 1 }]);
    const after = applyChanges(image, records);
    expect(part(after, 0)).toMatchObject({ leader: 1, isr: [1, 2, 3], leaderEpoch: 1 });
    expect(preferredLeaderElection(after, liveExcept(3))).toEqual([]);
  });
});
