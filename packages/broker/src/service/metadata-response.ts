// The Metadata answer (Kafka's MetadataResponse) from a broker's metadata image: what the
// client's metadata cache routes produce and fetch requests with.

import { ConfigResourceType, type MetadataImage, NO_LEADER } from '@weir/metadata';
import { ErrorCode, type proto } from '@weir/protocol';

type MetadataResponse = proto.weir.broker.MetadataResponse;

const NONE = { code: ErrorCode.NONE, message: '' };

export function metadataResponse(
  image: MetadataImage,
  options: { clusterId: string; controllerId: number; topics: readonly string[] },
): MetadataResponse {
  const names = options.topics.length > 0 ? options.topics : [...image.topicsByName.keys()].sort();
  return {
    clusterId: options.clusterId,
    controllerId: options.controllerId,
    brokers: [...image.brokers.values()]
      .filter((broker) => !broker.fenced)
      .sort((a, b) => a.brokerId - b.brokerId)
      .flatMap((broker) => {
        const endpoint = broker.endpoints.find(({ name }) => name === 'BROKER');
        return endpoint === undefined
          ? []
          : [
              {
                brokerId: broker.brokerId,
                host: endpoint.host,
                port: endpoint.port,
                rack: broker.rack,
              },
            ];
      }),
    topics: names.map((name) => {
      const topic = image.topic(name);
      if (topic === undefined) {
        return {
          name,
          error: {
            code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            message: `topic '${name}' does not exist`,
          },
          topicId: '',
          partitions: [],
        };
      }
      return {
        name,
        error: NONE,
        topicId: topic.topicId,
        partitions: [...topic.partitions.values()]
          .sort((a, b) => a.partitionId - b.partitionId)
          .map((partition) => ({
            partition: partition.partitionId,
            error:
              partition.leader === NO_LEADER
                ? {
                    code: ErrorCode.LEADER_NOT_AVAILABLE,
                    message: `partition ${name}-${partition.partitionId} has no leader (no live in-sync replica)`,
                  }
                : NONE,
            leaderId: partition.leader,
            leaderEpoch: partition.leaderEpoch,
            replicas: [...partition.replicas],
            isr: [...partition.isr],
          })),
      };
    }),
  };
}

/** A topic's config value, or undefined for the default. */
export function topicConfig(image: MetadataImage, topic: string, name: string): string | undefined {
  return image.configsFor(ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, topic).get(name);
}
