export {
  type BrokerEndpoint,
  type BrokerRegistrationChangeRecord,
  type ConfigRecord,
  ConfigResourceType,
  METADATA_RECORD_VERSION,
  type MetadataRecord,
  type MetadataRecordBody,
  type MetadataRecordKind,
  NO_LEADER,
  type PartitionChangeRecord,
  type PartitionRecord,
  type ProducerIdsBlockRecord,
  type RegisterBrokerRecord,
  type RemoveTopicRecord,
  type TopicRecord,
  decodeRecord,
  encodeRecord,
  metadataRecord,
} from './records.js';
export {
  type BrokerRegistration,
  type ConfigResourceImage,
  MetadataImage,
  type PartitionImage,
  type ProducerIdsBlock,
  type ProducerIdsImage,
  type TopicImage,
  configResourceKey,
} from './image.js';
export {
  type BrokerChange,
  type ConfigChange,
  type LeadershipChanges,
  MetadataDelta,
  type PartitionChange,
  type StoppedReplica,
} from './delta.js';
export {
  METADATA_SNAPSHOT_VERSION,
  decodeSnapshot,
  encodeSnapshot,
  snapshotRecords,
} from './snapshot.js';
