// The node's Prometheus metrics: one registry per node (never prom-client's global one, so
// several nodes in one process — tests, `weir dev` — keep their metrics apart), the default
// process metrics, and gauges read from callbacks at scrape time. A gauge appears only once the
// node wiring gives it a source, so a broker-only node exports no Raft gauges rather than zeros.

import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** The gauges the node wiring feeds, with Kafka's equivalent where there is one. */
export const NODE_GAUGES = {
  controllerActive: {
    name: 'weir_controller_active',
    help: '1 while this node is the active controller, else 0 (Kafka ActiveControllerCount).',
  },
  raftTerm: {
    name: 'weir_raft_term',
    help: 'Current Raft term of the controller quorum as this node sees it.',
  },
  raftCommitIndex: {
    name: 'weir_raft_commit_index',
    help: 'Highest metadata log index this node knows is committed.',
  },
  metadataOffset: {
    name: 'weir_metadata_offset',
    help: 'Offset of the last metadata record applied to the image of this node.',
  },
  brokerFenced: {
    name: 'weir_broker_fenced',
    help: '1 while the controller has this broker fenced, else 0.',
  },
  brokersRegistered: {
    name: 'weir_brokers_registered',
    help: 'Brokers registered with the controller (Kafka ActiveBrokerCount plus fenced).',
  },
  brokersFenced: {
    name: 'weir_brokers_fenced',
    help: 'Registered brokers that are fenced (Kafka FencedBrokerCount).',
  },
  partitionsOffline: {
    name: 'weir_partitions_offline',
    help: 'Partitions without a leader (Kafka OfflinePartitionsCount).',
  },
  partitionsLeader: {
    name: 'weir_partitions_leader',
    help: 'Partitions this broker leads (Kafka LeaderCount).',
  },
  partitions: {
    name: 'weir_partitions',
    help: 'Partition replicas assigned to this broker (Kafka PartitionCount).',
  },
  partitionsUnderReplicated: {
    name: 'weir_partitions_under_replicated',
    help: 'Partitions this broker leads whose ISR is smaller than their replica set (Kafka UnderReplicatedPartitions).',
  },
  partitionsUnderMinIsr: {
    name: 'weir_partitions_under_min_isr',
    help: "Partitions this broker leads whose ISR is below the topic's min.insync.replicas: acks=all writes to them fail (Kafka UnderMinIsrPartitionCount).",
  },
  topics: {
    name: 'weir_topics',
    help: 'Topics in the metadata image (Kafka GlobalTopicCount).',
  },
} as const satisfies Record<string, { readonly name: string; readonly help: string }>;

export type NodeGauge = keyof typeof NODE_GAUGES;

/** A gauge's value, read at each scrape; booleans export as 1 and 0. */
export type GaugeSource = () => number | bigint | boolean;

export interface GaugeSpec {
  /** Prometheus name, `weir_` first and the unit last (`_seconds`, `_bytes`). */
  readonly name: string;
  readonly help: string;
  readonly collect: GaugeSource;
}

export interface ServerMetrics {
  readonly registry: Registry;
  /** Feeds one of NODE_GAUGES from `source`; a later call for the same gauge replaces it. */
  observe(gauge: NodeGauge, source: GaugeSource): void;
  /** Adds a gauge outside NODE_GAUGES, read from `spec.collect` at each scrape. */
  registerGauge(spec: GaugeSpec): void;
}

/** A fresh registry for node `nodeId`: every sample carries the label node_id. */
export function createMetrics(nodeId: number): ServerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node_id: String(nodeId) });
  collectDefaultMetrics({ register: registry, prefix: 'weir_' });
  const sources = new Map<NodeGauge, GaugeSource>();

  const registerGauge = (spec: GaugeSpec): void => {
    new Gauge({
      name: spec.name,
      help: spec.help,
      registers: [registry],
      collect() {
        this.set(toNumber(spec.collect()));
      },
    });
  };

  return {
    registry,
    observe(gauge, source) {
      const registered = sources.has(gauge);
      sources.set(gauge, source);
      if (registered) return;
      registerGauge({ ...NODE_GAUGES[gauge], collect: () => sources.get(gauge)!() });
    },
    registerGauge,
  };
}

function toNumber(value: number | bigint | boolean): number {
  if (typeof value === 'boolean') return value ? 1 : 0;
  return Number(value);
}
