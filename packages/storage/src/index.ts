export { type DirectoryLock, acquireDirectoryLock } from './directory-lock.js';
export {
  type TopicPartitionOffset,
  readTopicPartitionOffsets,
  storageError,
  syncDirectory,
  writeFileAtomically,
  writeTopicPartitionOffsets,
} from './checkpoint-file.js';
export { LeaderEpochCache, type EpochEndOffset, type EpochEntry } from './leader-epoch-cache.js';
export { DEFAULT_LOG_CONFIG, type FlushPolicy, type LogConfig, logConfig } from './log-config.js';
export {
  type BackgroundTaskIntervals,
  LogManager,
  type LogManagerOptions,
  type TopicPartition,
  logDirectoryName,
  parseLogDirectoryName,
} from './log-manager.js';
export {
  Log,
  type LogAppendInfo,
  type LogOpenReport,
  type LogOptions,
  type LogReadResult,
} from './log.js';
export { type SegmentFile, type SegmentFileOpener, openSegmentFile } from './segment-file.js';
