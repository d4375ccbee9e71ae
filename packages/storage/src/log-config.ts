// Per-log configuration, named after Kafka's topic configs (segment.bytes → segmentBytes, …).

import { ErrorCode, WeirError } from '@weir/protocol';

export type FlushPolicy = 'always' | 'interval' | 'never';

export interface LogConfig {
  /** segment.bytes: roll to a new segment when the active one would grow past this. */
  readonly segmentBytes: number;
  /**
   * segment.ms: roll when the active segment was created longer ago than this, on the broker's
   * clock (unlike Kafka, which counts from the first batch's timestamp; see
   * LogSegment.rollTimeBaseMs).
   */
  readonly segmentMs: number;
  /** retention.ms: delete segments whose newest record is older than this; -1 keeps forever. */
  readonly retentionMs: number;
  /** retention.bytes: delete the oldest segments while the log is larger; -1 for no limit. */
  readonly retentionBytes: number;
  /** max.message.bytes: the largest record batch an append accepts. */
  readonly maxMessageBytes: number;
  /** index.interval.bytes: bytes of log between two offset-index entries. */
  readonly indexIntervalBytes: number;
  /**
   * When appended data is fsynced: `always` before an append resolves (concurrent appends share
   * one fsync), `interval` every flushIntervalMs / flushIntervalMessages, `never` by the OS.
   */
  readonly flushPolicy: FlushPolicy;
  /** flush.ms, for flushPolicy `interval`. */
  readonly flushIntervalMs: number;
  /** flush.messages, for flushPolicy `interval`. */
  readonly flushIntervalMessages: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export const DEFAULT_LOG_CONFIG: LogConfig = {
  segmentBytes: 1024 * 1024 * 1024,
  segmentMs: 7 * DAY_MS,
  retentionMs: 7 * DAY_MS,
  retentionBytes: -1,
  maxMessageBytes: 1024 * 1024 + 12,
  indexIntervalBytes: 4096,
  flushPolicy: 'always',
  flushIntervalMs: 1000,
  flushIntervalMessages: 10_000,
};

/** Segments are addressed with 32-bit positions, and a segment holds at least one batch. */
const MAX_SEGMENT_BYTES = 2 ** 31 - 1;

export function logConfig(overrides: Partial<LogConfig> = {}): LogConfig {
  const config = { ...DEFAULT_LOG_CONFIG, ...overrides };
  // Whole numbers only: the log turns these into bigint offsets and times (BigInt(1.5) throws,
  // and NaN would pass every comparison below), so a bad value must fail here, not on append.
  requireInteger('segmentBytes', config.segmentBytes, 14, MAX_SEGMENT_BYTES);
  requireInteger('segmentMs', config.segmentMs, 1);
  requireInteger('retentionMs', config.retentionMs, -1);
  requireInteger('retentionBytes', config.retentionBytes, -1);
  requireInteger('maxMessageBytes', config.maxMessageBytes, 1);
  requireInteger('indexIntervalBytes', config.indexIntervalBytes, 1);
  requireInteger('flushIntervalMs', config.flushIntervalMs, 0);
  requireInteger('flushIntervalMessages', config.flushIntervalMessages, 1);
  if (!['always', 'interval', 'never'].includes(config.flushPolicy)) {
    throw new WeirError(
      ErrorCode.INVALID_CONFIG,
      `flushPolicy must be always, interval or never, got ${String(config.flushPolicy)}`,
    );
  }
  return config;
}

function requireInteger(
  name: keyof LogConfig,
  value: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): void {
  if (Number.isSafeInteger(value) && value >= min && value <= max) return;
  const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `between ${min} and ${max}`;
  throw new WeirError(
    ErrorCode.INVALID_CONFIG,
    `${name} must be a whole number ${range}, got ${String(value)}`,
  );
}
