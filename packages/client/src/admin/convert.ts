// Between the generated protobuf messages and the admin client's plain types. Nothing here
// leaves the package: the public API speaks only ./types.ts.

import { ErrorCode, WeirError, proto } from '@weir/protocol';
import { fromErrorStatus } from '../errors.js';
import type {
  AlterConfigsResult,
  BrokerDescription,
  BrokerState,
  ClusterDescription,
  CreatePartitionsResult,
  CreateTopicResult,
  DeleteTopicResult,
  NewTopic,
  PartitionIncrease,
  PartitionMetadata,
  QuorumDescription,
  TopicConfigChange,
  TopicDescription,
} from './types.js';

type CreateTopicsRequestTopic = proto.weir.controller.CreateTopicsRequest_Topic;
type ConfigResource = proto.weir.controller.IncrementalAlterConfigsRequest_Resource;

const INT32_MAX = 2 ** 31 - 1;

/** -1 on the wire means "none"; the API says null. */
function nodeOrNull(id: number): number | null {
  return id < 0 ? null : id;
}

/** Fenced wins: a broker that finished its controlled shutdown is fenced, and serves nothing. */
function brokerState(broker: proto.weir.controller.BrokerDescription): BrokerState {
  if (broker.fenced) return 'fenced';
  return broker.inControlledShutdown ? 'shutting-down' : 'unfenced';
}

function broker(message: proto.weir.controller.BrokerDescription): BrokerDescription {
  return {
    brokerId: message.brokerId,
    endpoints: message.endpoints.map(({ name, host, port }) => ({ name, host, port })),
    ...(message.rack !== undefined && { rack: message.rack }),
    state: brokerState(message),
    brokerEpoch: message.brokerEpoch,
    incarnationId: message.incarnationId,
  };
}

export function clusterFromProto(
  message: proto.weir.controller.DescribeClusterResponse,
): ClusterDescription {
  return {
    clusterId: message.clusterId,
    controllerId: nodeOrNull(message.controllerId),
    brokers: message.brokers.map(broker).sort((a, b) => a.brokerId - b.brokerId),
    metadataOffset: message.metadataOffset,
  };
}

export function quorumFromProto(
  message: proto.weir.controller.DescribeQuorumResponse,
): QuorumDescription {
  return {
    leaderId: nodeOrNull(message.leaderId),
    leaderEpoch: message.leaderEpoch,
    highWatermark: message.highWatermark,
    voters: message.voters
      .map(({ nodeId, logEndOffset, lag }) => ({ nodeId, logEndOffset, lag }))
      .sort((a, b) => a.nodeId - b.nodeId),
  };
}

function configsFromProto(
  entries: readonly proto.weir.controller.ConfigEntry[],
): Record<string, string> {
  const configs: Record<string, string> = {};
  for (const { name, value } of [...entries].sort((a, b) => a.name.localeCompare(b.name))) {
    configs[name] = value;
  }
  return configs;
}

function partition(message: proto.weir.admin.PartitionDescription): PartitionMetadata {
  return {
    partition: message.partition,
    leader: nodeOrNull(message.leader),
    leaderEpoch: message.leaderEpoch,
    partitionEpoch: message.partitionEpoch,
    replicas: [...message.replicas],
    isr: [...message.isr],
  };
}

export function topicFromProto(
  message: proto.weir.admin.DescribeTopicsResponse_Topic,
): TopicDescription {
  const error = fromErrorStatus(message.error);
  return {
    name: message.name,
    topicId: message.topicId,
    partitionCount: message.partitionCount,
    replicationFactor: message.replicationFactor,
    partitions: message.partitions.map(partition).sort((a, b) => a.partition - b.partition),
    configs: configsFromProto(message.configs),
    ...(error !== undefined && { error }),
  };
}

/** A positive int32, or INVALID_* before anything is sent (int32 on the wire would wrap). */
function checkCount(code: ErrorCode, what: string, value: number | undefined): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < 1 || value > INT32_MAX) {
    throw new WeirError(
      code,
      `${what} must be a whole number from 1 to ${INT32_MAX}, got ${value}`,
    );
  }
}

function checkTopicNames(operation: string, names: readonly string[]): void {
  if (names.length === 0) {
    throw new WeirError(ErrorCode.INVALID_REQUEST, `${operation} needs at least one topic`);
  }
  for (const name of names) {
    if (typeof name !== 'string' || name === '') {
      throw new WeirError(
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        `${operation}: topic names must be non-empty strings, got ${JSON.stringify(name)}`,
      );
    }
  }
}

export function createTopicsRequest(
  topics: readonly NewTopic[],
  validateOnly: boolean,
): proto.weir.controller.CreateTopicsRequest {
  checkTopicNames(
    'createTopics',
    topics.map((t) => t.name),
  );
  return {
    topics: topics.map((topic): CreateTopicsRequestTopic => {
      checkCount(
        ErrorCode.INVALID_PARTITIONS,
        `partitions of topic '${topic.name}'`,
        topic.partitions,
      );
      checkCount(
        ErrorCode.INVALID_REPLICATION_FACTOR,
        `replicationFactor of topic '${topic.name}'`,
        topic.replicationFactor,
      );
      return {
        name: topic.name,
        ...(topic.partitions !== undefined && { partitions: topic.partitions }),
        ...(topic.replicationFactor !== undefined && {
          replicationFactor: topic.replicationFactor,
        }),
        configs: Object.entries(topic.configs ?? {}).map(([name, value]) => ({ name, value })),
      };
    }),
    validateOnly,
  };
}

export function createTopicsResults(
  message: proto.weir.controller.CreateTopicsResponse,
): CreateTopicResult[] {
  return message.topics.map((topic) => {
    const error = fromErrorStatus(topic.error);
    return {
      name: topic.name,
      topicId: topic.topicId,
      partitions: topic.partitions,
      replicationFactor: topic.replicationFactor,
      ...(error !== undefined && { error }),
    };
  });
}

export function deleteTopicsRequest(
  names: readonly string[],
): proto.weir.controller.DeleteTopicsRequest {
  checkTopicNames('deleteTopics', names);
  return { names: [...names] };
}

export function deleteTopicsResults(
  message: proto.weir.controller.DeleteTopicsResponse,
): DeleteTopicResult[] {
  return message.topics.map((topic) => {
    const error = fromErrorStatus(topic.error);
    return { name: topic.name, topicId: topic.topicId, ...(error !== undefined && { error }) };
  });
}

export function createPartitionsRequest(
  increases: readonly PartitionIncrease[],
  validateOnly: boolean,
): proto.weir.controller.CreatePartitionsRequest {
  checkTopicNames(
    'createPartitions',
    increases.map((i) => i.name),
  );
  for (const { name, count } of increases) {
    checkCount(ErrorCode.INVALID_PARTITIONS, `count of topic '${name}'`, count);
  }
  return { topics: increases.map(({ name, count }) => ({ name, count })), validateOnly };
}

export function createPartitionsResults(
  message: proto.weir.controller.CreatePartitionsResponse,
): CreatePartitionsResult[] {
  return message.topics.map((topic) => {
    const error = fromErrorStatus(topic.error);
    return { name: topic.name, ...(error !== undefined && { error }) };
  });
}

function configResource(change: TopicConfigChange): ConfigResource {
  const { OP_TYPE_SET, OP_TYPE_DELETE } =
    proto.weir.controller.IncrementalAlterConfigsRequest_OpType;
  const set = Object.entries(change.set ?? {});
  const deleted = change.delete ?? [];
  if (set.length === 0 && deleted.length === 0) {
    throw new WeirError(
      ErrorCode.INVALID_REQUEST,
      `alterConfigs: nothing to change for topic '${change.topic}'; give set or delete`,
    );
  }
  const both = deleted.filter((name) => change.set?.[name] !== undefined);
  if (both.length > 0) {
    throw new WeirError(
      ErrorCode.INVALID_REQUEST,
      `alterConfigs: topic '${change.topic}' both sets and deletes ${both.join(', ')}; choose one`,
    );
  }
  return {
    resourceType: proto.weir.metadata.ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC,
    resourceName: change.topic,
    ops: [
      ...set.map(([name, value]) => ({ name, op: OP_TYPE_SET, value })),
      ...deleted.map((name) => ({ name, op: OP_TYPE_DELETE, value: '' })),
    ],
  };
}

export function alterConfigsRequest(
  changes: readonly TopicConfigChange[],
  validateOnly: boolean,
): proto.weir.controller.IncrementalAlterConfigsRequest {
  checkTopicNames(
    'alterConfigs',
    changes.map((c) => c.topic),
  );
  return { resources: changes.map(configResource), validateOnly };
}

export function alterConfigsResults(
  message: proto.weir.controller.IncrementalAlterConfigsResponse,
): AlterConfigsResult[] {
  return message.resources.map((resource) => {
    const error = fromErrorStatus(resource.error);
    return { name: resource.resourceName, ...(error !== undefined && { error }) };
  });
}
