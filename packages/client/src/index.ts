export { Weir } from './weir.js';
export {
  DEFAULT_REQUEST_TIMEOUT_MS,
  type ResolvedConfig,
  type WeirConfig,
  parseBootstrap,
} from './config.js';
export { Admin } from './admin/admin.js';
export {
  Producer,
  type ProducerMessage,
  type ProducerSendRequest,
  type RecordMetadata,
} from './producer/producer.js';
export type { Acks, ProducerOptions, ResolvedProducerConfig } from './producer/producer-config.js';
export type { ProducerIdentity } from './producer/producer-batch.js';
export type { AccumulatorCompression as CompressionType } from './producer/record-accumulator.js';
export {
  Consumer,
  type ConsumerRecord,
  type PollOptions,
  type TopicPartitionOffset,
} from './consumer/consumer.js';
export type {
  AutoOffsetReset,
  ConsumerOptions,
  ResolvedConsumerConfig,
} from './consumer/consumer-config.js';
export type { TopicPartition } from './producer/topic-partition.js';
export { murmur2, partitionForKey } from './producer/partitioner.js';
export type * from './admin/types.js';
export { WeirAdminError, type TopicOutcome } from './errors.js';
// The errors the client throws, so that callers need not depend on @weir/protocol.
export { ErrorCode, WeirError, errorName, isWeirError } from '@weir/protocol';
