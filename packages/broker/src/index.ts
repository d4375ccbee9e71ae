export {
  type AcksAllStatus,
  type AlterPartitionProposal,
  type CommittedPartitionState,
  type FollowerState,
  LeaderState,
  type LeaderStateOptions,
  type PartitionStateChange,
  UNKNOWN_OFFSET,
} from './replica/leader-state.js';
export {
  BATCHES_RETAINED_PER_PRODUCER,
  type BatchMetadata,
  DEFAULT_MAX_PRODUCER_IDS,
  type LoggedProducerBatch,
  NO_PRODUCER_ID,
  type ProducerAppendDecision,
  type ProducerBatch,
  type ProducerStateEntry,
  ProducerStateManager,
  type ProducerStateManagerOptions,
  lastSequenceOf,
  producerBatchOf,
} from './replica/producer-state.js';
export {
  type DelayedOperation,
  NODE_TIMER_SCHEDULER,
  Purgatory,
  type PurgatoryOptions,
  type TimerScheduler,
} from './purgatory.js';
export {
  type DivergingEpoch,
  type LeaderAppendResult,
  Partition,
  type PartitionOptions,
  partitionKey,
} from './replica/partition.js';
export {
  type CommittedState,
  DEFAULT_REPLICA_LAG_TIME_MAX_MS,
  type FollowerChanges,
  ReplicaManager,
  type ReplicaManagerOptions,
  type ReplicaTransition,
} from './replica/replica-manager.js';
export {
  type ReplicationServiceOptions,
  replicationServiceHandlers,
} from './replication/replication-service.js';
export {
  ReplicaFetcherManager,
  type ReplicaFetcherOptions,
} from './replication/replica-fetcher.js';
export { type BrokerServiceOptions, brokerServiceHandlers } from './service/broker-service.js';
export { metadataResponse } from './service/metadata-response.js';
