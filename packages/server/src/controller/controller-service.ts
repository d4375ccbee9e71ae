// The ControllerService handlers: proto requests in, QuorumController calls, proto responses
// out. No decisions here; the controller makes them, and refuses with NOT_CONTROLLER when this
// node is not the active controller.

import type { QuorumController } from '@weir/controller';
import { ConfigResourceType, type MetadataImage } from '@weir/metadata';
import { ErrorCode, WeirError, proto } from '@weir/protocol';
import type { RaftNode } from '@weir/raft';
import { unary } from '../grpc.js';

type ErrorStatus = proto.weir.common.ErrorStatus;
const OpType = proto.weir.controller.IncrementalAlterConfigsRequest_OpType;

export interface ControllerServiceOptions {
  readonly clusterId: string;
  readonly controller: QuorumController;
  readonly raft: RaftNode;
}

export function controllerServiceHandlers(
  options: ControllerServiceOptions,
): proto.weir.controller.ControllerServiceServer {
  const { clusterId, controller, raft } = options;
  return {
    registerBroker: unary(async (request) => {
      if (request.clusterId !== clusterId) {
        throw new WeirError(
          ErrorCode.INCONSISTENT_CLUSTER_ID,
          `broker ${request.brokerId} belongs to cluster '${request.clusterId}', this quorum to '${clusterId}'; check its data directory and --cluster-id`,
        );
      }
      const { brokerEpoch } = await controller.registerBroker({
        brokerId: request.brokerId,
        incarnationId: request.incarnationId,
        endpoints: request.endpoints,
        rack: request.rack,
      });
      return { brokerEpoch };
    }),
    brokerHeartbeat: unary(async (request) =>
      controller.brokerHeartbeat({
        brokerId: request.brokerId,
        brokerEpoch: request.brokerEpoch,
        caughtUpToOffset: request.metadataOffset,
      }),
    ),
    alterPartition: unary(async (request) => {
      const partition = await controller.alterPartition({
        brokerId: request.brokerId,
        brokerEpoch: request.brokerEpoch,
        topicId: request.topicId,
        partitionId: request.partition,
        leaderEpoch: request.leaderEpoch,
        partitionEpoch: request.partitionEpoch,
        newIsr: request.newIsr,
      });
      return {
        leader: partition.leader,
        leaderEpoch: partition.leaderEpoch,
        partitionEpoch: partition.partitionEpoch,
        isr: [...partition.isr],
      };
    }),
    controlledShutdown: unary(async (request) =>
      controller.controlledShutdown({
        brokerId: request.brokerId,
        brokerEpoch: request.brokerEpoch,
      }),
    ),
    allocateProducerIds: unary(async (request) =>
      controller.allocateProducerIds({
        brokerId: request.brokerId,
        brokerEpoch: request.brokerEpoch,
      }),
    ),
    createTopics: unary(async (request) => {
      const results = await controller.createTopics(
        request.topics.map((topic) => ({
          name: topic.name,
          partitions: topic.partitions,
          replicationFactor: topic.replicationFactor,
          configs: Object.fromEntries(topic.configs.map(({ name, value }) => [name, value])),
        })),
        { validateOnly: request.validateOnly },
      );
      return {
        topics: results.map((result) => ({
          name: result.name,
          error: errorStatus(result.errorCode, result.errorMessage),
          topicId: result.topicId ?? '',
          partitions: result.partitions ?? 0,
          replicationFactor: result.replicationFactor ?? 0,
        })),
      };
    }),
    deleteTopics: unary(async (request) => {
      const results = await controller.deleteTopics(request.names);
      return {
        topics: results.map((result) => ({
          name: result.name,
          error: errorStatus(result.errorCode, result.errorMessage),
          topicId: result.topicId ?? '',
        })),
      };
    }),
    createPartitions: unary(async (request) => {
      const results = await controller.createPartitions(
        request.topics.map(({ name, count }) => ({ name, count })),
        { validateOnly: request.validateOnly },
      );
      return {
        topics: results.map((result) => ({
          name: result.name,
          error: errorStatus(result.errorCode, result.errorMessage),
        })),
      };
    }),
    incrementalAlterConfigs: unary(async (request) => {
      const resources = request.resources.map((resource) => {
        if (resource.resourceType !== ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC) {
          throw new WeirError(
            ErrorCode.INVALID_REQUEST,
            `only topic configs can be altered, not resource type ${resource.resourceType}`,
          );
        }
        return {
          resourceType: 'topic' as const,
          resourceName: resource.resourceName,
          ops: resource.ops.map((op) => ({
            name: op.name,
            op: op.op === OpType.OP_TYPE_DELETE ? ('delete' as const) : ('set' as const),
            value: op.value,
          })),
        };
      });
      const results = await controller.incrementalAlterConfigs(resources, {
        validateOnly: request.validateOnly,
      });
      return {
        resources: results.map((result) => ({
          resourceType: ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC,
          resourceName: result.resourceName,
          error: errorStatus(result.errorCode, result.errorMessage),
        })),
      };
    }),
    describeCluster: unary(() =>
      describeCluster(clusterId, raft.isLeader ? raft.id : raft.leaderId, controller.image),
    ),
    describeQuorum: unary(() => describeQuorum(raft)),
  };
}

/** The cluster as `image` has it; shared by the controller and the broker's admin service. */
export function describeCluster(
  clusterId: string,
  controllerId: number,
  image: MetadataImage,
): proto.weir.controller.DescribeClusterResponse {
  return {
    clusterId,
    controllerId,
    metadataOffset: image.offset < 0n ? 0n : image.offset,
    brokers: [...image.brokers.values()]
      .sort((a, b) => a.brokerId - b.brokerId)
      .map((broker) => ({
        brokerId: broker.brokerId,
        endpoints: broker.endpoints.map((endpoint) => ({ ...endpoint })),
        rack: broker.rack,
        fenced: broker.fenced,
        inControlledShutdown: broker.inControlledShutdown,
        brokerEpoch: broker.brokerEpoch,
        incarnationId: broker.incarnationId,
      })),
  };
}

/** KIP-595's DescribeQuorum, answered by the leader, the only node that knows every voter's lag. */
function describeQuorum(raft: RaftNode): proto.weir.controller.DescribeQuorumResponse {
  if (!raft.isLeader) {
    throw new WeirError(
      ErrorCode.NOT_CONTROLLER,
      raft.leaderId < 0
        ? `node ${raft.id} is not the quorum leader and no leader is known yet; retry shortly`
        : `node ${raft.id} is not the quorum leader; the leader is node ${raft.leaderId}`,
    );
  }
  const lastIndex = raft.lastIndex;
  const voters = [{ nodeId: raft.id, logEndOffset: BigInt(lastIndex), lag: 0n }];
  for (const [nodeId, matchIndex] of raft.followerMatchIndexes()) {
    if (nodeId === raft.id) continue;
    voters.push({
      nodeId,
      logEndOffset: BigInt(matchIndex),
      lag: BigInt(Math.max(0, lastIndex - matchIndex)),
    });
  }
  voters.sort((a, b) => a.nodeId - b.nodeId);
  return {
    leaderId: raft.id,
    leaderEpoch: BigInt(raft.term),
    highWatermark: BigInt(raft.commitIndex),
    voters,
  };
}

export function errorStatus(code: ErrorCode, message: string | undefined): ErrorStatus {
  return { code, message: message ?? '' };
}
