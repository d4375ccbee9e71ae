// The AdminService on the broker listener: reads from this broker's metadata image, writes
// forwarded unchanged to the active controller (KIP-590), so `--bootstrap` is all a client
// needs.

import { ConfigResourceType, type MetadataImage, type TopicImage } from '@weir/metadata';
import { ErrorCode, type proto } from '@weir/protocol';
import { describeCluster, errorStatus } from '../controller/controller-service.js';
import { unary } from '../grpc.js';
import { Controller, type ControllerChannel } from './controller-channel.js';

type DescribeTopicsResponse = proto.weir.admin.DescribeTopicsResponse;
type DescribedTopic = proto.weir.admin.DescribeTopicsResponse_Topic;

export interface AdminServiceOptions {
  readonly clusterId: string;
  readonly image: () => MetadataImage;
  /** The active controller as this broker last heard of it; -1 when unknown. */
  readonly controllerId: () => number;
  readonly channel: ControllerChannel;
}

export function adminServiceHandlers(
  options: AdminServiceOptions,
): proto.weir.admin.AdminServiceServer {
  const { channel } = options;
  return {
    describeCluster: unary(() =>
      describeCluster(options.clusterId, options.controllerId(), options.image()),
    ),
    describeQuorum: unary((request) => channel.call(Controller.describeQuorum, request)),
    describeTopics: unary((request) => describeTopics(options.image(), request)),
    createTopics: unary((request) => channel.call(Controller.createTopics, request)),
    deleteTopics: unary((request) => channel.call(Controller.deleteTopics, request)),
    createPartitions: unary((request) => channel.call(Controller.createPartitions, request)),
    incrementalAlterConfigs: unary((request) =>
      channel.call(Controller.incrementalAlterConfigs, request),
    ),
  };
}

function describeTopics(
  image: MetadataImage,
  request: proto.weir.admin.DescribeTopicsRequest,
): DescribeTopicsResponse {
  const names = request.names.length > 0 ? request.names : [...image.topicsByName.keys()].sort();
  return {
    metadataOffset: image.offset < 0n ? 0n : image.offset,
    topics: names.map((name) => {
      const topic = image.topic(name);
      if (topic === undefined) return unknownTopic(name);
      return describeTopic(image, topic, request.includePartitions);
    }),
  };
}

function describeTopic(
  image: MetadataImage,
  topic: TopicImage,
  includePartitions: boolean,
): DescribedTopic {
  const partitions = [...topic.partitions.values()].sort((a, b) => a.partitionId - b.partitionId);
  const configs = image.configsFor(ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, topic.name);
  return {
    name: topic.name,
    error: errorStatus(ErrorCode.NONE, undefined),
    topicId: topic.topicId,
    partitionCount: partitions.length,
    replicationFactor: partitions[0]?.replicas.length ?? 0,
    partitions: includePartitions
      ? partitions.map((partition) => ({
          partition: partition.partitionId,
          leader: partition.leader,
          leaderEpoch: partition.leaderEpoch,
          partitionEpoch: partition.partitionEpoch,
          replicas: [...partition.replicas],
          isr: [...partition.isr],
        }))
      : [],
    configs: includePartitions
      ? [...configs]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([name, value]) => ({ name, value }))
      : [],
  };
}

function unknownTopic(name: string): DescribedTopic {
  return {
    name,
    error: errorStatus(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic '${name}' does not exist`),
    topicId: '',
    partitionCount: 0,
    replicationFactor: 0,
    partitions: [],
    configs: [],
  };
}
