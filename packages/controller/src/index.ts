export {
  type AssignReplicasRequest,
  type AssignableBroker,
  type BrokerLoad,
  assignReplicas,
  assignableBrokers,
  brokerLoad,
} from './replica-assignment.js';
export {
  type CreateTopicRequest,
  MAX_TOPIC_NAME_LENGTH,
  TOPIC_CONFIGS,
  type TopicConfigDef,
  type TopicConfigName,
  type TopicConfigType,
  collidesWith,
  isTopicConfigName,
  validateCreateTopic,
  validateTopicConfig,
  validateTopicConfigs,
  validateTopicName,
} from './topic-validation.js';
export {
  type AlterPartitionRequest,
  type ClusterElectionOptions,
  type ControlledShutdownResult,
  type ElectionOptions,
  type PartitionRef,
  STALE_PARTITION_EPOCH_ERROR,
  alterPartition,
  controlledShutdown,
  electLeader,
  electOfflineLeaders,
  fenceBroker,
  partitionChangeRecords,
  preferredLeaderElection,
} from './partition-change.js';
export {
  type BrokerHeartbeatRequest,
  type BrokerHeartbeatResult,
  type CreateTopicResult,
  type CreateTopicsRequestTopic,
  type MetadataLog,
  QuorumController,
  type QuorumControllerOptions,
  type RegisterBrokerRequest,
  type TickResult,
} from './quorum-controller.js';
export {
  BROKER_EPOCH_FROM_OFFSET,
  decodeMetadataEntry,
  encodeMetadataEntry,
} from './metadata-entry.js';
