export {
  COMPRESSION_TYPES,
  type CompressionType,
  compress,
  compressionCodecId,
  decompress,
} from './compression.js';
export {
  type Bytes,
  RecordBatchBuilder,
  type RecordBatchBuilderOptions,
  type RecordInput,
} from './record-batch-builder.js';
export {
  DEFAULT_MAX_DECOMPRESSED_BYTES,
  LOG_OVERHEAD,
  RECORD_BATCH_OVERHEAD,
  type Record,
  RecordBatch,
  type RecordHeader,
  type TimestampType,
  batchSizeAt,
  batchesIn,
} from './record-batch.js';
