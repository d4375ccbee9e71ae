// Partition leadership and ISR decisions: which PartitionChangeRecords the controller writes when
// a broker is fenced, asks for a controlled shutdown, a leader sends AlterPartition, or the
// preferred leaders are rebalanced. Pure functions over a MetadataImage (no I/O), following
// Kafka's `PartitionChangeBuilder` and `ReplicationControlManager`. A record names `leader` only
// when the leader changes, because replaying a record that names one bumps the leader epoch
// (see MetadataImage.apply); every record bumps the partition epoch.

import {
  ConfigResourceType,
  type MetadataImage,
  type MetadataRecord,
  NO_LEADER,
  type PartitionChangeRecord,
  type PartitionImage,
  type TopicImage,
  metadataRecord,
} from '@weir/metadata';
import { ErrorCode, WeirError, assert } from '@weir/protocol';
import { TOPIC_CONFIGS } from './topic-validation.js';

/** How to elect a leader for one partition. */
export interface ElectionOptions {
  /** Whether a broker may lead: registered, unfenced and not shutting down. */
  readonly isLive: (brokerId: number) => boolean;
  /** The topic's `unclean.leader.election.enable`. */
  readonly uncleanElectionEnabled: boolean;
}

/** How to elect leaders across the image: unclean election is a per-topic setting. */
export interface ClusterElectionOptions {
  readonly isLive: (brokerId: number) => boolean;
  /**
   * Whether a topic allows unclean election; by default its `unclean.leader.election.enable`
   * config in the image (false unless set).
   */
  readonly uncleanElectionEnabled?: (topic: TopicImage) => boolean;
}

/** A partition, by topic id and partition id. */
export interface PartitionRef {
  readonly topicId: string;
  readonly partitionId: number;
}

/** What a ControlledShutdown request leads to. */
export interface ControlledShutdownResult {
  readonly records: PartitionChangeRecord[];
  /**
   * Partitions the broker still leads because it is their only ISR member: moving leadership
   * would take them offline, so it keeps them until it stops (the RPC answers "not yet").
   */
  readonly remainingLeaderships: PartitionRef[];
}

/** An AlterPartition request for one partition (KIP-497), as the leader sends it. */
export interface AlterPartitionRequest {
  readonly topicId: string;
  readonly partitionId: number;
  /** The broker sending the request: it claims to be the leader. */
  readonly leaderId: number;
  readonly leaderEpoch: number;
  /** The partition epoch the new ISR was computed from. */
  readonly partitionEpoch: number;
  readonly newIsr: readonly number[];
}

/** The error of an AlterPartition based on a stale partition epoch (Kafka's answer too). */
export const STALE_PARTITION_EPOCH_ERROR = ErrorCode.INVALID_UPDATE_VERSION;

/**
 * Elects a leader for `partition` if it needs one: the current leader stays while it is live
 * and in the ISR; otherwise the first replica, in preference order, that is live and in the
 * ISR; otherwise, only when unclean election is enabled, the first live replica; otherwise no
 * leader (NO_LEADER) and the partition is offline. Returns the record, or undefined when nothing
 * changes.
 */
export function electLeader(
  partition: PartitionImage,
  options: ElectionOptions,
): PartitionChangeRecord | undefined {
  return buildChange(partition, partition.isr, options);
}

/**
 * The records that fence `brokerId`: it leaves the ISR of every partition it is in and gives up
 * every leadership (a new leader is elected per `electLeader`). The ISR never becomes empty: the
 * last member stays in it and the partition goes offline (KIP-841), so that when that broker
 * comes back it can lead again without unclean election. One record per partition that changes.
 */
export function fenceBroker(
  image: MetadataImage,
  brokerId: number,
  options: ClusterElectionOptions,
): PartitionChangeRecord[] {
  const isLive = excluding(brokerId, options.isLive);
  const records: PartitionChangeRecord[] = [];
  for (const [topic, partition] of partitionsOf(image)) {
    if (!partition.isr.includes(brokerId) && partition.leader !== brokerId) continue;
    const record = buildChange(partition, withoutBroker(partition.isr, brokerId), {
      isLive,
      uncleanElectionEnabled: uncleanElectionEnabled(image, topic, options),
    });
    if (record !== undefined) records.push(record);
  }
  return records;
}

/**
 * The records of a controlled shutdown of `brokerId`: like fencing, it gives up its
 * leaderships and leaves the ISRs, but never at the cost of availability or data: where it is
 * the only ISR member it keeps the leadership (reported in `remainingLeaderships`) and the ISR,
 * and no unclean election is made on its behalf.
 */
export function controlledShutdown(
  image: MetadataImage,
  brokerId: number,
  options: ClusterElectionOptions,
): ControlledShutdownResult {
  const isLive = excluding(brokerId, options.isLive);
  const records: PartitionChangeRecord[] = [];
  const remainingLeaderships: PartitionRef[] = [];
  for (const [, partition] of partitionsOf(image)) {
    if (!partition.isr.includes(brokerId) && partition.leader !== brokerId) continue;
    const isr = withoutBroker(partition.isr, brokerId);
    const leaderStays =
      partition.leader === brokerId && !isr.some((id) => id !== brokerId && isLive(id));
    if (leaderStays) {
      remainingLeaderships.push({ topicId: partition.topicId, partitionId: partition.partitionId });
      continue;
    }
    const record = buildChange(partition, isr, { isLive, uncleanElectionEnabled: false });
    if (record !== undefined) records.push(record);
  }
  return { records, remainingLeaderships };
}

/**
 * Validates an AlterPartition request and returns the record of the ISR change, or undefined
 * when the ISR already is `newIsr`. Throws WeirError as Kafka's ReplicationControlManager
 * answers: UNKNOWN_TOPIC_OR_PARTITION, FENCED_LEADER_EPOCH (the sender's leader epoch is not the
 * current one), NOT_LEADER_OR_FOLLOWER (the sender is not the leader),
 * STALE_PARTITION_EPOCH_ERROR (the request was based on an older partition epoch), or
 * INVALID_REQUEST (an ISR outside the replicas, without the leader, with duplicates, or adding a
 * broker that is fenced or shutting down: such a broker is never added back; Kafka's
 * INELIGIBLE_REPLICA).
 */
export function alterPartition(
  image: MetadataImage,
  request: AlterPartitionRequest,
  isUnfenced: (brokerId: number) => boolean,
): PartitionChangeRecord | undefined {
  const { topicId, partitionId, leaderId, leaderEpoch, partitionEpoch, newIsr } = request;
  const where = `AlterPartition ${topicId}/${partitionId}`;
  const partition = image.partition(topicId, partitionId);
  if (partition === undefined) {
    throw new WeirError(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      `${where}: no such partition; the leader's metadata is out of date`,
    );
  }
  if (leaderEpoch !== partition.leaderEpoch) {
    throw new WeirError(
      ErrorCode.FENCED_LEADER_EPOCH,
      `${where}: leader epoch ${leaderEpoch} is not the current ${partition.leaderEpoch}; wait for the new metadata`,
    );
  }
  if (leaderId !== partition.leader) {
    throw new WeirError(
      ErrorCode.NOT_LEADER_OR_FOLLOWER,
      `${where}: broker ${leaderId} is not the leader (the leader is ${partition.leader})`,
    );
  }
  if (partitionEpoch !== partition.partitionEpoch) {
    throw new WeirError(
      STALE_PARTITION_EPOCH_ERROR,
      `${where}: stale partition epoch ${partitionEpoch} (current ${partition.partitionEpoch}); recompute the ISR from the latest metadata`,
    );
  }
  const isr = [...newIsr];
  const invalid = (why: string): WeirError =>
    new WeirError(ErrorCode.INVALID_REQUEST, `${where}: new ISR [${isr.join(',')}] ${why}`);
  if (new Set(isr).size !== isr.length) throw invalid('has duplicates');
  const outside = isr.filter((id) => !partition.replicas.includes(id));
  if (outside.length > 0) {
    throw invalid(
      `names brokers [${outside.join(',')}] outside the replicas [${partition.replicas.join(',')}]`,
    );
  }
  if (!isr.includes(leaderId)) throw invalid(`does not include the leader ${leaderId}`);
  const ineligible = isr.filter(
    (id) =>
      !partition.isr.includes(id) &&
      (!isUnfenced(id) || image.broker(id)?.inControlledShutdown === true),
  );
  if (ineligible.length > 0) {
    throw new WeirError(
      ErrorCode.INELIGIBLE_REPLICA,
      `AlterPartition adds brokers [${ineligible.join(',')}] that are fenced or shutting down; they may rejoin the ISR only once unfenced`,
    );
  }
  if (sameMembers(isr, partition.isr)) return undefined;
  return checkedRecord(partition, { topicId, partitionId, isr: { brokerIds: isr } });
}

/**
 * Preferred-leader rebalancing: moves leadership to the preferred replica (replicas[0]) of every
 * partition where it is live, in the ISR and not the leader.
 */
export function preferredLeaderElection(
  image: MetadataImage,
  isLive: (brokerId: number) => boolean,
): PartitionChangeRecord[] {
  const records: PartitionChangeRecord[] = [];
  for (const [, partition] of partitionsOf(image)) {
    const preferred = partition.replicas[0];
    if (preferred === undefined || preferred === partition.leader) continue;
    if (!partition.isr.includes(preferred) || !isLive(preferred)) continue;
    records.push(
      checkedRecord(partition, {
        topicId: partition.topicId,
        partitionId: partition.partitionId,
        leader: preferred,
      }),
    );
  }
  return records;
}

/** Elects a leader for every offline partition that can have one again (e.g. after unfencing). */
export function electOfflineLeaders(
  image: MetadataImage,
  options: ClusterElectionOptions,
): PartitionChangeRecord[] {
  const records: PartitionChangeRecord[] = [];
  for (const [topic, partition] of partitionsOf(image)) {
    if (partition.leader !== NO_LEADER) continue;
    const record = electLeader(partition, {
      isLive: options.isLive,
      uncleanElectionEnabled: uncleanElectionEnabled(image, topic, options),
    });
    if (record !== undefined) records.push(record);
  }
  return records;
}

/** Wraps PartitionChangeRecords in the envelopes the metadata log stores. */
export function partitionChangeRecords(
  records: readonly PartitionChangeRecord[],
): MetadataRecord[] {
  return records.map((value) => metadataRecord({ $case: 'partitionChange', value }));
}

/**
 * Kafka's PartitionChangeBuilder: the record that takes `partition` to ISR `targetIsr` with a
 * leader elected from it, or undefined when neither the leader nor the ISR changes.
 */
function buildChange(
  partition: PartitionImage,
  targetIsr: readonly number[],
  options: ElectionOptions,
): PartitionChangeRecord | undefined {
  let isr = [...targetIsr];
  let leader: number;
  if (
    partition.leader !== NO_LEADER &&
    isr.includes(partition.leader) &&
    options.isLive(partition.leader)
  ) {
    leader = partition.leader;
  } else {
    const clean = partition.replicas.find((id) => isr.includes(id) && options.isLive(id));
    const unclean = options.uncleanElectionEnabled
      ? partition.replicas.find((id) => options.isLive(id))
      : undefined;
    if (clean !== undefined) {
      leader = clean;
    } else if (unclean !== undefined) {
      // Unclean election (Kafka's `unclean.leader.election.enable`): no ISR member is live, so
      // a replica that may have missed committed records becomes leader and the ISR restarts
      // from it alone. Records acknowledged by the old ISR but not copied to it are lost.
      leader = unclean;
      isr = [unclean];
    } else {
      // Offline: no eligible leader. The ISR is kept, so whichever member returns first can
      // lead again without data loss.
      leader = NO_LEADER;
    }
  }
  const isrChanged = !sameMembers(isr, partition.isr);
  const leaderChanged = leader !== partition.leader;
  if (!isrChanged && !leaderChanged) return undefined;
  return checkedRecord(partition, {
    topicId: partition.topicId,
    partitionId: partition.partitionId,
    ...(leaderChanged ? { leader } : {}),
    ...(isrChanged ? { isr: { brokerIds: isr } } : {}),
  });
}

/** Asserts the partition state a record leads to keeps the image's invariants. */
function checkedRecord(
  partition: PartitionImage,
  record: PartitionChangeRecord,
): PartitionChangeRecord {
  const isr = record.isr?.brokerIds ?? partition.isr;
  const leader = record.leader ?? partition.leader;
  const where = `partition ${partition.topicId}/${partition.partitionId}`;
  assert(isr.length > 0, () => `${where}: a change would leave the ISR empty`);
  assert(
    isr.every((id) => partition.replicas.includes(id)),
    () =>
      `${where}: ISR [${isr.join(',')}] is not within the replicas [${partition.replicas.join(',')}]`,
  );
  assert(
    leader === NO_LEADER || isr.includes(leader),
    () => `${where}: leader ${leader} is not in the ISR [${isr.join(',')}]`,
  );
  assert(
    record.isr !== undefined || record.leader !== undefined,
    () => `${where}: an empty change`,
  );
  return record;
}

/** The ISR without `brokerId`, unless it is the last member (KIP-841 keeps it). */
function withoutBroker(isr: readonly number[], brokerId: number): readonly number[] {
  const rest = isr.filter((id) => id !== brokerId);
  return rest.length === 0 ? isr : rest;
}

function excluding(
  brokerId: number,
  isLive: (brokerId: number) => boolean,
): (brokerId: number) => boolean {
  return (id) => id !== brokerId && isLive(id);
}

function sameMembers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}

/** Every partition of the image with its topic, by topic name then partition id. */
function* partitionsOf(image: MetadataImage): Generator<[TopicImage, PartitionImage]> {
  const topics = [...image.topicsById.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const topic of topics) {
    const partitions = [...topic.partitions.values()].sort((a, b) => a.partitionId - b.partitionId);
    for (const partition of partitions) yield [topic, partition];
  }
}

function uncleanElectionEnabled(
  image: MetadataImage,
  topic: TopicImage,
  options: ClusterElectionOptions,
): boolean {
  if (options.uncleanElectionEnabled !== undefined) return options.uncleanElectionEnabled(topic);
  const value =
    image
      .configsFor(ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, topic.name)
      .get('unclean.leader.election.enable') ??
    TOPIC_CONFIGS['unclean.leader.election.enable'].default;
  return value === 'true';
}
