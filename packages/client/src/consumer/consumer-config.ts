// The consumer's options (`weir.consumer(options)`): Kafka's and KafkaJS's names where the
// meaning is the same, their defaults, and checks at construction that say what to change.

import { invalidConfig, wholeNumber } from '../config-values.js';
import type { ResolvedConfig } from '../config.js';
import { DEFAULT_METADATA_MAX_AGE_MS } from '../metadata/metadata-cache.js';

export type AutoOffsetReset = 'earliest' | 'latest';

export interface ConsumerOptions {
  /** Where to start a partition without a position, and where to go when the position is out
   * of the partition's range (OFFSET_OUT_OF_RANGE). Default 'latest'. */
  readonly autoOffsetReset?: AutoOffsetReset;
  /** How long a broker holds a Fetch waiting for `minBytes`. Default 500. */
  readonly maxWaitMs?: number;
  /** The bytes a Fetch waits for. Default 1. */
  readonly minBytes?: number;
  /** The most bytes one Fetch answer carries (at least one batch is always returned).
   * Default 8 MiB, below the broker's 16 MiB message limit. */
  readonly maxBytes?: number;
  /** The most bytes of one partition in a Fetch answer. Default 1 MiB. */
  readonly maxPartitionBytes?: number;
  /** Fetched bytes held for poll(); no Fetch is sent while this many are. Default 16 MiB. */
  readonly maxPrefetchBytes?: number;
  /** Fetched records held for poll(); no Fetch is sent while this many are. Default 5000. */
  readonly maxPrefetchRecords?: number;
  /** The most records one poll() returns. Default 500. */
  readonly maxPollRecords?: number;
  /** How long one Fetch may take beyond `maxWaitMs`, and one ListOffsets or metadata call.
   * Default: the client's requestTimeoutMs (30000). */
  readonly requestTimeoutMs?: number;
  /** The first back-off after an error; it doubles up to `retryBackoffMaxMs`. Default 100. */
  readonly retryBackoffMs?: number;
  /** Default 1000. */
  readonly retryBackoffMaxMs?: number;
  /** Metadata older than this is refreshed even without errors. Default 300000. */
  readonly metadataMaxAgeMs?: number;
}

export interface ResolvedConsumerConfig {
  readonly autoOffsetReset: AutoOffsetReset;
  readonly maxWaitMs: number;
  readonly minBytes: number;
  readonly maxBytes: number;
  readonly maxPartitionBytes: number;
  readonly maxPrefetchBytes: number;
  readonly maxPrefetchRecords: number;
  readonly maxPollRecords: number;
  readonly requestTimeoutMs: number;
  readonly retryBackoffMs: number;
  readonly retryBackoffMaxMs: number;
  readonly metadataMaxAgeMs: number;
}

const MiB = 1024 * 1024;
export const DEFAULT_FETCH_MAX_WAIT_MS = 500;
export const DEFAULT_FETCH_MAX_BYTES = 8 * MiB;
/** Kafka's `max.partition.fetch.bytes`. */
export const DEFAULT_MAX_PARTITION_BYTES = MiB;
export const DEFAULT_MAX_PREFETCH_BYTES = 16 * MiB;
export const DEFAULT_MAX_PREFETCH_RECORDS = 5_000;
/** Kafka's `max.poll.records`. */
export const DEFAULT_MAX_POLL_RECORDS = 500;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const MAX_INT32 = 2 ** 31 - 1;

export function resolveConsumerConfig(
  client: ResolvedConfig,
  options: ConsumerOptions = {},
): ResolvedConsumerConfig {
  if (typeof options !== 'object' || options === null) {
    throw invalidConfig(
      "weir.consumer() takes an options object, e.g. { autoOffsetReset: 'earliest' }, or nothing",
    );
  }
  const { autoOffsetReset = 'latest' } = options;
  if (autoOffsetReset !== 'earliest' && autoOffsetReset !== 'latest') {
    throw invalidConfig(
      `autoOffsetReset must be 'earliest' or 'latest', got ${JSON.stringify(autoOffsetReset)}`,
    );
  }
  const retryBackoffMs = wholeNumber(
    'retryBackoffMs',
    options.retryBackoffMs,
    100,
    0,
    MAX_TIMEOUT_MS,
  );
  const retryBackoffMaxMs = wholeNumber(
    'retryBackoffMaxMs',
    options.retryBackoffMaxMs,
    Math.max(1_000, retryBackoffMs),
    0,
    MAX_TIMEOUT_MS,
  );
  if (retryBackoffMaxMs < retryBackoffMs) {
    throw invalidConfig(
      `retryBackoffMaxMs (${retryBackoffMaxMs}) must not be below retryBackoffMs (${retryBackoffMs})`,
    );
  }
  const maxWaitMs = wholeNumber(
    'maxWaitMs',
    options.maxWaitMs,
    DEFAULT_FETCH_MAX_WAIT_MS,
    0,
    MAX_TIMEOUT_MS,
  );
  const requestTimeoutMs = wholeNumber(
    'requestTimeoutMs',
    options.requestTimeoutMs,
    client.requestTimeoutMs,
    1,
    MAX_TIMEOUT_MS - maxWaitMs,
  );
  return {
    autoOffsetReset,
    maxWaitMs,
    minBytes: wholeNumber('minBytes', options.minBytes, 1, 0, MAX_INT32),
    maxBytes: wholeNumber('maxBytes', options.maxBytes, DEFAULT_FETCH_MAX_BYTES, 1, MAX_INT32),
    maxPartitionBytes: wholeNumber(
      'maxPartitionBytes',
      options.maxPartitionBytes,
      DEFAULT_MAX_PARTITION_BYTES,
      1,
      MAX_INT32,
    ),
    maxPrefetchBytes: wholeNumber(
      'maxPrefetchBytes',
      options.maxPrefetchBytes,
      DEFAULT_MAX_PREFETCH_BYTES,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    maxPrefetchRecords: wholeNumber(
      'maxPrefetchRecords',
      options.maxPrefetchRecords,
      DEFAULT_MAX_PREFETCH_RECORDS,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    maxPollRecords: wholeNumber(
      'maxPollRecords',
      options.maxPollRecords,
      DEFAULT_MAX_POLL_RECORDS,
      1,
      MAX_INT32,
    ),
    requestTimeoutMs,
    retryBackoffMs,
    retryBackoffMaxMs,
    metadataMaxAgeMs: wholeNumber(
      'metadataMaxAgeMs',
      options.metadataMaxAgeMs,
      DEFAULT_METADATA_MAX_AGE_MS,
      1,
      MAX_TIMEOUT_MS,
    ),
  };
}
