// The records of topic requests: CreateTopics, DeleteTopics, CreatePartitions and
// IncrementalAlterConfigs on a topic. Pure functions over a MetadataImage (no I/O): each checks
// one entry of a request and returns the records that carry it out, or throws the WeirError
// Kafka answers that entry with (Kafka's ReplicationControlManager and
// ConfigurationControlManager). The QuorumController writes a request's records as one entry.

import {
  ConfigResourceType,
  type MetadataImage,
  type MetadataRecord,
  type TopicImage,
  metadataRecord,
} from '@weir/metadata';
import { ErrorCode, WeirError, assert } from '@weir/protocol';
import { type AssignableBroker, assignReplicas, brokerLoad } from './replica-assignment.js';
import {
  type CreateTopicRequest,
  validateReplicationFactor,
  validateTopicConfig,
  validateTopicConfigName,
  validateTopicConfigs,
} from './topic-validation.js';

/** One operation of IncrementalAlterConfigs on one config (Kafka's AlterableConfig). */
export interface AlterConfigOp {
  readonly name: string;
  /** 'set' gives the config `value`; 'delete' returns it to its default. */
  readonly op: 'set' | 'delete';
  readonly value?: string | undefined;
}

/**
 * The Topic, Partition and Config records of a new topic (already validated): every replica
 * starts in the ISR and the preferred replica leads, epochs 0.
 */
export function newTopicRecords(
  request: CreateTopicRequest,
  topicId: string,
  brokers: readonly AssignableBroker[],
  startIndex: number,
): MetadataRecord[] {
  const assignment = assignReplicas({
    brokers,
    partitions: request.partitions,
    replicationFactor: request.replicationFactor,
    startIndex,
  });
  return [
    metadataRecord({ $case: 'topic', value: { name: request.name, topicId } }),
    ...assignment.map((replicas, partitionId) => partitionRecord(topicId, partitionId, replicas)),
    ...Object.entries(request.configs).map(([name, value]) =>
      topicConfigRecord(request.name, name, value),
    ),
  ];
}

/**
 * The RemoveTopic record of DeleteTopics. Replay drops the topic's partitions and configs with
 * it (as Kafka's ConfigurationsDelta does), so a topic created later under the same name starts
 * from the defaults.
 */
export function removeTopicRecord(image: MetadataImage, name: string): MetadataRecord {
  const { topicId } = existingTopic(image, name);
  return metadataRecord({ $case: 'removeTopic', value: { topicId } });
}

/**
 * The Partition records that grow topic `name` to `count` partitions (CreatePartitions). The
 * new partitions keep the topic's replication factor and are placed least-loaded first
 * (`existing`), continuing the topic's round-robin of preferred leaders so that they stay
 * within one of each other. Partitions are never removed: Kafka refuses a smaller count.
 */
export function newPartitionRecords(
  image: MetadataImage,
  name: string,
  count: number,
  brokers: readonly AssignableBroker[],
): MetadataRecord[] {
  const topic = existingTopic(image, name);
  const assignment = currentAssignment(topic);
  const current = assignment.length;
  if (!Number.isInteger(count) || count <= current) {
    throw new WeirError(
      ErrorCode.INVALID_PARTITIONS,
      `topic '${name}' has ${current} partitions and partitions can only be added; ask for more than ${current}, got ${count}`,
    );
  }
  const replicationFactor = replicationFactorOf(topic);
  validateReplicationFactor(replicationFactor, brokers.length);
  const added = assignReplicas({
    brokers,
    partitions: count - current,
    replicationFactor,
    startPartition: current,
    existing: brokerLoad(assignment),
  });
  return added.map((replicas, i) => partitionRecord(topic.topicId, current + i, replicas));
}

/**
 * The Config records of IncrementalAlterConfigs on topic `name`: one per config whose value
 * changes (Kafka writes none for a value that stays). Every op is checked, and so is the
 * resulting set of configs as a whole (min.insync.replicas at most the replication factor).
 */
export function topicConfigRecords(
  image: MetadataImage,
  name: string,
  ops: readonly AlterConfigOp[],
): MetadataRecord[] {
  const topic = existingTopic(image, name);
  const current = image.configsFor(ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, name);
  const next = new Map(current);
  checkDistinctConfigNames(name, ops);
  for (const op of ops) applyConfigOp(next, name, op);
  validateTopicConfigs(Object.fromEntries(next), replicationFactorOf(topic));
  return ops
    .filter((op) => next.get(op.name) !== current.get(op.name))
    .map((op) => topicConfigRecord(name, op.name, next.get(op.name)));
}

/** The topic named `name`, or UNKNOWN_TOPIC_OR_PARTITION. */
function existingTopic(image: MetadataImage, name: string): TopicImage {
  const topic = image.topic(name);
  if (topic === undefined) {
    throw new WeirError(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      `topic '${name}' does not exist; check the name (names are case-sensitive)`,
    );
  }
  return topic;
}

/** The topic's replicas per partition, by partition id; ids run from 0 without gaps. */
function currentAssignment(topic: TopicImage): (readonly number[])[] {
  const assignment: (readonly number[])[] = [];
  for (let partitionId = 0; partitionId < topic.partitions.size; partitionId++) {
    const partition = topic.partitions.get(partitionId);
    assert(
      partition !== undefined,
      () =>
        `topic ${topic.name} has ${topic.partitions.size} partitions but no partition ${partitionId}`,
    );
    assignment.push(partition.replicas);
  }
  return assignment;
}

/** A topic's replication factor: that of its first partition, as Kafka takes it. */
function replicationFactorOf(topic: TopicImage): number {
  const first = topic.partitions.get(0);
  assert(first !== undefined, () => `topic ${topic.name} has no partition 0`);
  return first.replicas.length;
}

function checkDistinctConfigNames(topic: string, ops: readonly AlterConfigOp[]): void {
  const seen = new Set<string>();
  for (const { name } of ops) {
    if (seen.has(name)) {
      throw new WeirError(
        ErrorCode.INVALID_REQUEST,
        `config '${name}' of topic '${topic}' appears more than once; send one operation per config`,
      );
    }
    seen.add(name);
  }
}

function applyConfigOp(configs: Map<string, string>, topic: string, op: AlterConfigOp): void {
  switch (op.op) {
    case 'set':
      if (op.value === undefined) {
        throw new WeirError(
          ErrorCode.INVALID_REQUEST,
          `setting config '${op.name}' of topic '${topic}' needs a value; use 'delete' to return it to its default`,
        );
      }
      validateTopicConfig(op.name, op.value);
      configs.set(op.name, op.value);
      return;
    case 'delete':
      validateTopicConfigName(op.name);
      configs.delete(op.name);
      return;
    default:
      // Requests arrive from the wire: an operation this version does not know (Kafka's APPEND,
      // SUBTRACT) is refused rather than guessed at.
      throw new WeirError(
        ErrorCode.INVALID_REQUEST,
        `unknown config operation '${String(op.op)}' for '${op.name}' of topic '${topic}'; use 'set' or 'delete'`,
      );
  }
}

function partitionRecord(
  topicId: string,
  partitionId: number,
  replicas: readonly number[],
): MetadataRecord {
  return metadataRecord({
    $case: 'partition',
    value: {
      topicId,
      partitionId,
      replicas: [...replicas],
      isr: [...replicas],
      leader: replicas[0]!,
      leaderEpoch: 0,
      partitionEpoch: 0,
    },
  });
}

/** A Config record of a topic; an absent value deletes the entry. */
function topicConfigRecord(topic: string, name: string, value: string | undefined): MetadataRecord {
  return metadataRecord({
    $case: 'config',
    value: {
      resourceType: ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC,
      resourceName: topic,
      name,
      value,
    },
  });
}
