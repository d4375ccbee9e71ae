// What the admin client takes and returns: plain TypeScript, no generated protobuf types.
// 64-bit values (offsets, broker epochs, the Raft term) are bigint; ids and counts are numbers.

import type { WeirError } from '@weir/protocol';

export interface BrokerEndpoint {
  /** The listener's name, e.g. `BROKER`. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/**
 * `fenced`: registered but not yet caught up with the metadata log, or its session lapsed, or
 * its controlled shutdown finished, so it leads no partition and is in no ISR;
 * `shutting-down`: moving its leaderships away before it exits (controlled shutdown);
 * `unfenced`: serving.
 */
export type BrokerState = 'unfenced' | 'fenced' | 'shutting-down';

export interface BrokerDescription {
  readonly brokerId: number;
  readonly endpoints: readonly BrokerEndpoint[];
  /** Absent when the broker has no rack. */
  readonly rack?: string;
  readonly state: BrokerState;
  /** The offset of the broker's registration in the metadata log. */
  readonly brokerEpoch: bigint;
  /** Changes each time the broker process restarts. */
  readonly incarnationId: string;
}

export interface ClusterDescription {
  readonly clusterId: string;
  /** The active controller's node id; null when none is known (an election is under way). */
  readonly controllerId: number | null;
  /** Sorted by broker id. */
  readonly brokers: readonly BrokerDescription[];
  /** The metadata log offset the answer reflects. */
  readonly metadataOffset: bigint;
}

export interface QuorumVoter {
  readonly nodeId: number;
  /** The last metadata log offset the leader knows this voter holds. */
  readonly logEndOffset: bigint;
  /** Entries this voter is behind the leader. */
  readonly lag: bigint;
}

export interface QuorumDescription {
  /** The Raft leader, which is the active controller; null when none is known. */
  readonly leaderId: number | null;
  /** The leader's Raft term (KRaft's leader epoch). */
  readonly leaderEpoch: bigint;
  /** The metadata log's commit index. */
  readonly highWatermark: bigint;
  /** Sorted by node id. */
  readonly voters: readonly QuorumVoter[];
}

export interface PartitionMetadata {
  readonly partition: number;
  /** Null when the partition is offline (no leader). */
  readonly leader: number | null;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
}

export interface TopicDescription {
  readonly name: string;
  readonly topicId: string;
  readonly partitionCount: number;
  readonly replicationFactor: number;
  /** Sorted by partition. */
  readonly partitions: readonly PartitionMetadata[];
  /** Configs set on the topic; defaults are not listed. */
  readonly configs: Readonly<Record<string, string>>;
  /** Set when this topic could not be described (UNKNOWN_TOPIC_OR_PARTITION). */
  readonly error?: WeirError;
}

export interface NewTopic {
  readonly name: string;
  /** The cluster default (num.partitions) when absent. */
  readonly partitions?: number;
  /** The cluster default (default.replication.factor) when absent. */
  readonly replicationFactor?: number;
  /** Topic configs, e.g. `{ 'retention.ms': '86400000' }`. */
  readonly configs?: Readonly<Record<string, string>>;
}

export interface CreateTopicsOptions {
  readonly topics: readonly NewTopic[];
  /** Check the request and answer as if the topics were created, but create nothing. */
  readonly validateOnly?: boolean;
}

export interface CreateTopicResult {
  readonly name: string;
  readonly topicId: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly error?: WeirError;
}

export interface DeleteTopicResult {
  readonly name: string;
  readonly topicId: string;
  readonly error?: WeirError;
}

export interface PartitionIncrease {
  readonly name: string;
  /** The new total number of partitions; it must be above the current one. */
  readonly count: number;
}

export interface ValidateOnlyOptions {
  readonly validateOnly?: boolean;
}

export interface CreatePartitionsResult {
  readonly name: string;
  readonly error?: WeirError;
}

export interface TopicConfigChange {
  readonly topic: string;
  /** Configs to set. */
  readonly set?: Readonly<Record<string, string>>;
  /** Configs to remove, so that the default applies again. */
  readonly delete?: readonly string[];
}

export interface AlterConfigsResult {
  /** The topic. */
  readonly name: string;
  readonly error?: WeirError;
}
