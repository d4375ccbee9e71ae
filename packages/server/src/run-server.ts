// `weir server`: from a loaded configuration to a running node with its HTTP listener, and back
// down again. The CLI owns the process (signals, exit codes); this owns the order of things.

import {
  ConfigResourceType,
  type MetadataImage,
  NO_LEADER,
  type PartitionImage,
} from '@weir/metadata';
import type { ServerConfig } from './config/schema.js';
import { startHttpServer } from './http/http-server.js';
import { type Logger, createLogger } from './logger.js';
import { ensureMetaProperties } from './meta-properties.js';
import { type ServerMetrics, createMetrics } from './metrics.js';
import { WeirNode } from './node.js';

export interface RunningServer {
  readonly node: WeirNode;
  readonly logger: Logger;
  /** The bound HTTP port. */
  readonly httpPort: number;
  /** Controlled shutdown, then every listener and store closed. Safe to call again. */
  stop(): Promise<void>;
}

export async function runServer(
  config: ServerConfig,
  options: { logger?: Logger } = {},
): Promise<RunningServer> {
  const logger =
    options.logger ??
    createLogger({ nodeId: config.nodeId, level: config.logLevel, format: config.logFormat });
  const meta = await ensureMetaProperties({
    dataDir: config.dataDir,
    nodeId: config.nodeId,
    clusterId: config.clusterId,
  });
  logger.info({ clusterId: meta.clusterId, dataDir: config.dataDir }, 'starting node');
  const node = await WeirNode.start({ ...config, clusterId: meta.clusterId }, logger);
  const metrics = createMetrics(config.nodeId);
  observeNode(node, metrics.observe.bind(metrics));
  let http;
  try {
    http = await startHttpServer({
      host: config.listenHost,
      port: config.httpPort,
      registry: metrics.registry,
      isReady: () => node.readiness(),
    });
  } catch (error) {
    await node.shutdown();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  const httpServer = http;
  return {
    node,
    logger,
    httpPort: http.port,
    stop() {
      stopping ??= (async () => {
        await node.shutdown();
        await httpServer.close();
      })();
      return stopping;
    },
  };
}

type Observe = ServerMetrics['observe'];

/** Feeds the node's gauges from whichever roles it runs. */
function observeNode(node: WeirNode, observe: Observe): void {
  const controller = node.controllerRole;
  if (controller !== undefined) {
    const { raft } = controller;
    observe('controllerActive', () => raft.isLeader);
    observe('raftTerm', () => raft.term);
    observe('raftCommitIndex', () => raft.commitIndex);
    const image = () => controller.controller.image;
    observe('brokersRegistered', () => image().brokers.size);
    observe('brokersFenced', () => [...image().brokers.values()].filter((b) => b.fenced).length);
  }
  const broker = node.brokerRole;
  if (broker !== undefined) {
    const image = () => broker.listener.image;
    const brokerId = node.options.nodeId;
    observe('metadataOffset', () => image().offset);
    observe('brokerFenced', () => broker.lifecycle.state !== 'running');
    observe('topics', () => image().topicsById.size);
    observe('partitionsOffline', () => countPartitions(image(), (p) => p.leader === NO_LEADER));
    observe('partitionsLeader', () => countPartitions(image(), (p) => p.leader === brokerId));
    observe('partitions', () => countPartitions(image(), (p) => p.replicas.includes(brokerId)));
    observe('partitionsUnderReplicated', () =>
      countPartitions(image(), (p) => p.leader === brokerId && p.isr.length < p.replicas.length),
    );
    observe('partitionsUnderMinIsr', () =>
      countPartitions(
        image(),
        (p, minInsyncReplicas) => p.leader === brokerId && p.isr.length < minInsyncReplicas,
      ),
    );
  }
}

/** The broker's default when a topic sets no min.insync.replicas. */
const DEFAULT_MIN_INSYNC_REPLICAS = 1;

/** Partitions for which `predicate` holds; it also gets the topic's min.insync.replicas. */
function countPartitions(
  image: MetadataImage,
  predicate: (partition: PartitionImage, minInsyncReplicas: number) => boolean,
): number {
  let count = 0;
  for (const topic of image.topicsById.values()) {
    const configured = image
      .configsFor(ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, topic.name)
      .get('min.insync.replicas');
    const minInsyncReplicas =
      configured === undefined ? DEFAULT_MIN_INSYNC_REPLICAS : Number(configured);
    for (const partition of topic.partitions.values()) {
      if (predicate(partition, minInsyncReplicas)) count++;
    }
  }
  return count;
}
