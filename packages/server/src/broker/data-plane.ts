// The broker's data plane, wired: partition logs under <data.dir>/partitions, the
// ReplicaManager fed by the metadata listener's deltas, the fetchers that follow leaders, and
// the BrokerService and ReplicationService handlers. ISR changes and producer id blocks go to
// the controller through the broker's ControllerChannel.

import { join } from 'node:path';
import type { Server } from '@grpc/grpc-js';
import {
  ReplicaFetcherManager,
  ReplicaManager,
  brokerServiceHandlers,
  replicationServiceHandlers,
} from '@weir/broker';
import type { MetadataImage } from '@weir/metadata';
import { ErrorCode, WeirError, proto } from '@weir/protocol';
import { LogManager } from '@weir/storage';
import type { Logger } from 'pino';
import { hostPort } from '../grpc.js';
import { Controller, type ControllerChannel } from './controller-channel.js';
import type { BrokerMetadataListener } from './metadata-listener.js';

export const PARTITION_LOGS_DIRECTORY = 'partitions';

export interface DataPlaneOptions {
  readonly brokerId: number;
  readonly clusterId: string;
  readonly dataDir: string;
  readonly replicaLagTimeMaxMs: number;
  readonly highWatermarkCheckpointIntervalMs: number;
  readonly maxInFlightBytesPerConnection: number;
  /** See BrokerServiceOptions.isCaughtUp. */
  readonly isCaughtUp: () => boolean;
  readonly logRetentionCheckIntervalMs: number;
  readonly listener: BrokerMetadataListener;
  readonly channel: ControllerChannel;
  readonly brokerEpoch: () => bigint | undefined;
  readonly controllerId: () => number;
  readonly logger: Logger;
}

export interface DataPlane {
  readonly replicas: ReplicaManager;
  readonly fetchers: ReplicaFetcherManager;
  /** Adds the BrokerService and ReplicationService to the broker listener. */
  addServices(server: Server): void;
  close(): Promise<void>;
}

export async function startDataPlane(options: DataPlaneOptions): Promise<DataPlane> {
  const { brokerId, listener, channel, logger } = options;
  const logManager = await LogManager.open(join(options.dataDir, PARTITION_LOGS_DIRECTORY));
  logManager.startBackgroundTasks(
    { retentionCheckIntervalMs: options.logRetentionCheckIntervalMs },
    (task, error) => logger.warn({ task, err: error }, 'log background task failed'),
  );
  const brokerEpoch = (): bigint => {
    const epoch = options.brokerEpoch();
    if (epoch === undefined) {
      throw new WeirError(
        ErrorCode.BROKER_NOT_AVAILABLE,
        `broker ${brokerId} is not registered yet`,
      );
    }
    return epoch;
  };
  const replicas = new ReplicaManager({
    brokerId,
    logManager,
    replicaLagTimeMaxMs: options.replicaLagTimeMaxMs,
    highWatermarkCheckpointIntervalMs: options.highWatermarkCheckpointIntervalMs,
    isEligibleReplica: (id) => isEligible(listener.image, id),
    alterPartition: async (proposal) => {
      const response = await channel.call(Controller.alterPartition, {
        brokerId,
        brokerEpoch: brokerEpoch(),
        topicId: proposal.topicId,
        partition: proposal.partitionId,
        leaderEpoch: proposal.leaderEpoch,
        partitionEpoch: proposal.partitionEpoch,
        newIsr: [...proposal.newIsr],
      });
      return response;
    },
    onTransition: (event) => {
      switch (event.kind) {
        case 'leader':
        case 'follower':
          logger.debug(
            {
              topic: event.partition.topic,
              partition: event.partition.partitionId,
              kind: event.kind,
              leo: event.partition.logEndOffset,
              hw: event.partition.highWatermark,
            },
            'replica transition applied',
          );
          break;
        case 'isr-change-failed':
          logger.warn(
            {
              topic: event.partition.topic,
              partition: event.partition.partitionId,
              err: event.error,
            },
            'ISR change refused',
          );
          break;
        case 'stray-log-deleted':
          logger.info(
            { topic: event.topic, partition: event.partitionId, reason: event.reason },
            'deleted a stray partition log',
          );
          break;
        case 'high-watermark-checkpoint-unreadable':
          logger.warn(
            { err: event.error },
            'the high-watermark checkpoint is unreadable; high watermarks start at the log start and catch up as followers fetch',
          );
          break;
        case 'open-failed':
          logger.error(
            { topic: event.topic, partition: event.partitionId, err: event.error },
            'could not open a partition replica; trying again every checkpoint interval',
          );
          break;
        case 'stopped':
          break;
      }
    },
  });
  listener.onDelta((delta) => {
    replicas
      .applyDelta(delta)
      .catch((error: unknown) =>
        logger.error(
          { err: error, offset: delta.image.offset },
          'applying a metadata delta to the replicas failed',
        ),
      );
  });
  const fetchers = new ReplicaFetcherManager({
    replicas,
    // Until this broker is registered it has no epoch to fetch with: the fetchers back off.
    brokerEpoch,
    brokerAddress: (id) => brokerAddress(listener.image, id),
    onError: (leaderId, error) => logger.debug({ leaderId, err: error }, 'replica fetch failed'),
    onTruncated: (partition, offset) =>
      logger.info(
        { topic: partition.topic, partition: partition.partitionId, offset },
        'truncated a diverging log tail (KIP-320)',
      ),
  });
  replicas.startBackgroundTasks((task, error) =>
    logger.warn({ task, err: error }, 'replica background task failed'),
  );
  const producerIds = new ProducerIdBlocks(async () => {
    const block = await channel.call(Controller.allocateProducerIds, {
      brokerId,
      brokerEpoch: brokerEpoch(),
    });
    return { first: block.firstProducerId, size: block.size };
  });
  return {
    replicas,
    fetchers,
    addServices(server) {
      server.addService(
        proto.weir.broker.BrokerServiceService,
        brokerServiceHandlers({
          clusterId: options.clusterId,
          replicas,
          image: () => listener.image,
          controllerId: options.controllerId,
          maxInFlightBytesPerConnection: options.maxInFlightBytesPerConnection,
          isCaughtUp: options.isCaughtUp,
          initProducerId: async () => ({ producerId: await producerIds.next(), producerEpoch: 0 }),
        }),
      );
      server.addService(
        proto.weir.broker.ReplicationServiceService,
        replicationServiceHandlers(replicas, { isCaughtUp: options.isCaughtUp }),
      );
    },
    async close() {
      await fetchers.close();
      await replicas.close();
      await logManager.close();
    },
  };
}

/** Registered, unfenced and not shutting down: may join an ISR. */
function isEligible(image: MetadataImage, brokerId: number): boolean {
  const broker = image.broker(brokerId);
  return broker !== undefined && !broker.fenced && !broker.inControlledShutdown;
}

function brokerAddress(image: MetadataImage, brokerId: number): string | undefined {
  const endpoint = image.broker(brokerId)?.endpoints.find(({ name }) => name === 'BROKER');
  if (endpoint === undefined) return undefined;
  return hostPort(endpoint.host, endpoint.port);
}

/** Hands out producer ids from blocks the controller allocates (KIP-730), one block at a time. */
class ProducerIdBlocks {
  private nextId = 0n;
  private end = 0n;
  private fetching: Promise<void> | undefined;

  constructor(private readonly allocate: () => Promise<{ first: bigint; size: number }>) {}

  async next(): Promise<bigint> {
    while (this.nextId >= this.end) {
      this.fetching ??= this.allocate().then(
        ({ first, size }) => {
          this.nextId = first;
          this.end = first + BigInt(size);
          this.fetching = undefined;
        },
        (error: unknown) => {
          this.fetching = undefined;
          throw error;
        },
      );
      await this.fetching;
    }
    return this.nextId++;
  }
}
