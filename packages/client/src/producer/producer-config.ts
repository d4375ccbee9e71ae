// The producer's options (`weir.producer(options)`): KafkaJS's and Kafka's names where the
// meaning is the same, Kafka's defaults, and the checks that run at construction so that a
// conflict is reported with what to change rather than as a broker error later.

import { invalidConfig, wholeNumber } from '../config-values.js';
import type { ResolvedConfig } from '../config.js';
import { BROKER_MAX_SEND_MESSAGE_BYTES } from '../metadata/broker-clients.js';
import { DEFAULT_METADATA_MAX_AGE_MS } from '../metadata/metadata-cache.js';
import {
  type AccumulatorCompression,
  type ResolvedAccumulatorConfig,
  resolveAccumulatorConfig,
} from './record-accumulator.js';

/** `'all'` (or -1): every in-sync replica has the records; 1: the leader has them; 0: no answer. */
export type Acks = 'all' | -1 | 0 | 1;

export interface ProducerOptions {
  /** Default `'all'`. */
  readonly acks?: Acks;
  /**
   * Retries never duplicate or reorder records (KIP-98): the broker drops a resent batch it
   * already has. Default true, unless `acks` other than 'all' or `maxInFlightRequests` above 5
   * are given, which idempotence does not allow (Kafka's rule since 3.0).
   */
  readonly idempotent?: boolean;
  /** How long a batch that is not full waits for more records. Default 5. */
  readonly lingerMs?: number;
  /** A batch takes no more records once it holds this many bytes. Default 16384. */
  readonly batchBytes?: number;
  /** Default 'none'. */
  readonly compression?: AccumulatorCompression;
  /** Produce requests a broker may have outstanding from this producer. Default 5 (at most 5
   * with idempotence: the broker remembers 5 batches per producer for deduplication). */
  readonly maxInFlightRequests?: number;
  /** How many times a batch is resent after a retriable error, within `deliveryTimeoutMs`.
   * Default 2147483647: the delivery timeout is the bound, as in Kafka. */
  readonly retries?: number;
  /** The first back-off between retries; it doubles per retry up to `retryBackoffMaxMs`.
   * Default 100. */
  readonly retryBackoffMs?: number;
  /** Default 1000. */
  readonly retryBackoffMaxMs?: number;
  /** How long a record may take from send() to its acknowledgement, retries and waiting for
   * buffer memory included, before send() rejects. Default 120000. */
  readonly deliveryTimeoutMs?: number;
  /** How long one Produce may take (the broker's wait for the in-sync replicas with acks 'all'),
   * and how long send() waits for a topic's metadata. Default: the client's requestTimeoutMs
   * (30000). */
  readonly requestTimeoutMs?: number;
  /** Memory for records not yet acknowledged; send() waits while it is used up. Default 32 MiB. */
  readonly bufferMemoryBytes?: number;
  /** The most batch bytes in one Produce request. Default 1 MiB. */
  readonly maxRequestBytes?: number;
  /** Metadata older than this is refreshed even without errors. Default 300000. */
  readonly metadataMaxAgeMs?: number;
}

export interface ResolvedProducerConfig extends ResolvedAccumulatorConfig {
  /** -1 (all), 0 or 1, as Produce carries it. */
  readonly acks: -1 | 0 | 1;
  readonly idempotent: boolean;
  readonly maxInFlightRequests: number;
  readonly retries: number;
  readonly retryBackoffMs: number;
  readonly retryBackoffMaxMs: number;
  readonly deliveryTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly metadataMaxAgeMs: number;
}

/** Kafka's `delivery.timeout.ms`. */
export const DEFAULT_DELIVERY_TIMEOUT_MS = 120_000;
/** Kafka's `max.in.flight.requests.per.connection`. */
export const DEFAULT_MAX_IN_FLIGHT_REQUESTS = 5;
/** What the broker's duplicate detection covers (its last 5 batches per producer). */
export const MAX_IN_FLIGHT_REQUESTS_IDEMPOTENT = 5;
export const DEFAULT_RETRIES = 2_147_483_647;
/** Kafka's `retry.backoff.ms` and `retry.backoff.max.ms` (KIP-580). */
export const DEFAULT_RETRY_BACKOFF_MS = 100;
export const DEFAULT_RETRY_BACKOFF_MAX_MS = 1_000;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const MAX_INT32 = 2 ** 31 - 1;
/** Room for a Produce request's fields around its batches. */
const MAX_REQUEST_BYTES = BROKER_MAX_SEND_MESSAGE_BYTES - 64 * 1024;

export function resolveProducerConfig(
  client: ResolvedConfig,
  options: ProducerOptions = {},
): ResolvedProducerConfig {
  if (typeof options !== 'object' || options === null) {
    throw invalidConfig(
      'weir.producer() takes an options object, e.g. { acks: "all" }, or nothing',
    );
  }
  const acks = resolveAcks(options.acks, 'acks');
  const maxInFlightRequests = wholeNumber(
    'maxInFlightRequests',
    options.maxInFlightRequests,
    DEFAULT_MAX_IN_FLIGHT_REQUESTS,
    1,
    1_000,
  );
  const retries = wholeNumber('retries', options.retries, DEFAULT_RETRIES, 0, MAX_INT32);
  const idempotent = resolveIdempotent(options, acks, maxInFlightRequests, retries);
  const requestTimeoutMs = wholeNumber(
    'requestTimeoutMs',
    options.requestTimeoutMs,
    client.requestTimeoutMs,
    1,
    MAX_TIMEOUT_MS,
  );
  const accumulator = resolveAccumulatorConfig(options);
  if (accumulator.maxRequestBytes > MAX_REQUEST_BYTES) {
    throw invalidConfig(
      `maxRequestBytes must be at most ${MAX_REQUEST_BYTES} (the brokers take gRPC messages of up to ${BROKER_MAX_SEND_MESSAGE_BYTES} bytes, the request's own fields included), got ${accumulator.maxRequestBytes}`,
    );
  }
  const deliveryTimeoutMs = wholeNumber(
    'deliveryTimeoutMs',
    options.deliveryTimeoutMs,
    Math.max(DEFAULT_DELIVERY_TIMEOUT_MS, accumulator.lingerMs + requestTimeoutMs),
    1,
    MAX_TIMEOUT_MS,
  );
  if (deliveryTimeoutMs < accumulator.lingerMs + requestTimeoutMs) {
    // Kafka's rule: otherwise a batch could expire before its first request had a chance.
    throw invalidConfig(
      `deliveryTimeoutMs (${deliveryTimeoutMs}) must be at least lingerMs + requestTimeoutMs (${accumulator.lingerMs} + ${requestTimeoutMs}); raise deliveryTimeoutMs or lower the others`,
    );
  }
  const retryBackoffMs = wholeNumber(
    'retryBackoffMs',
    options.retryBackoffMs,
    DEFAULT_RETRY_BACKOFF_MS,
    0,
    MAX_TIMEOUT_MS,
  );
  const retryBackoffMaxMs = wholeNumber(
    'retryBackoffMaxMs',
    options.retryBackoffMaxMs,
    Math.max(DEFAULT_RETRY_BACKOFF_MAX_MS, retryBackoffMs),
    0,
    MAX_TIMEOUT_MS,
  );
  if (retryBackoffMaxMs < retryBackoffMs) {
    throw invalidConfig(
      `retryBackoffMaxMs (${retryBackoffMaxMs}) must not be below retryBackoffMs (${retryBackoffMs})`,
    );
  }
  return {
    ...accumulator,
    acks,
    idempotent,
    maxInFlightRequests,
    retries,
    retryBackoffMs,
    retryBackoffMaxMs,
    deliveryTimeoutMs,
    requestTimeoutMs,
    metadataMaxAgeMs: wholeNumber(
      'metadataMaxAgeMs',
      options.metadataMaxAgeMs,
      DEFAULT_METADATA_MAX_AGE_MS,
      1,
      MAX_TIMEOUT_MS,
    ),
  };
}

/** `'all'`, -1, 0 or 1 as Produce's number; `name` says where the value came from. */
export function resolveAcks(acks: unknown, name: string): -1 | 0 | 1 {
  if (acks === undefined || acks === 'all' || acks === -1) return -1;
  if (acks === 0 || acks === 1) return acks;
  throw invalidConfig(
    `${name} must be 'all' (or -1), 1 or 0, got ${JSON.stringify(acks) ?? typeof acks}`,
  );
}

function resolveIdempotent(
  options: ProducerOptions,
  acks: -1 | 0 | 1,
  maxInFlightRequests: number,
  retries: number,
): boolean {
  const { idempotent } = options;
  if (idempotent !== undefined && typeof idempotent !== 'boolean') {
    throw invalidConfig(`idempotent must be true or false, got ${typeof idempotent}`);
  }
  if (idempotent === undefined) {
    // Kafka 3.0+: on by default, unless the options given conflict with it.
    return acks === -1 && maxInFlightRequests <= MAX_IN_FLIGHT_REQUESTS_IDEMPOTENT && retries > 0;
  }
  if (!idempotent) return false;
  if (acks !== -1) {
    throw invalidConfig(
      `idempotent: true requires acks: 'all' (every in-sync replica), got acks: ${acks}; set acks: 'all', or idempotent: false to produce with acks ${acks}`,
    );
  }
  if (maxInFlightRequests > MAX_IN_FLIGHT_REQUESTS_IDEMPOTENT) {
    throw invalidConfig(
      `maxInFlightRequests must be at most ${MAX_IN_FLIGHT_REQUESTS_IDEMPOTENT} with idempotent: true (the broker deduplicates a producer's last ${MAX_IN_FLIGHT_REQUESTS_IDEMPOTENT} batches), got ${maxInFlightRequests}; lower it, or set idempotent: false`,
    );
  }
  if (retries === 0) {
    throw invalidConfig(
      'retries must be above 0 with idempotent: true (a batch that is not retried leaves a gap in its sequence); raise retries, or set idempotent: false',
    );
  }
  return true;
}
