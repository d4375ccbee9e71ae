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
