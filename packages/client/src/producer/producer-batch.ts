// One partition's batch of records on the producer (Kafka's `ProducerBatch`): records are
// encoded into a RecordBatchBuilder as they are appended, so the batch knows its size while it
// fills; it is built (compressed, checksummed, stamped with the producer id, epoch and base
// sequence) when it is first drained for sending, and a retry sends the same bytes.

import {
  type Bytes,
  type CompressionType,
  ErrorCode,
  RECORD_BATCH_OVERHEAD,
  RecordBatchBuilder,
  type RecordInput,
  WeirError,
  assert,
} from '@weir/protocol';

/** A record on its way to a partition: what `RecordAccumulator.append` takes. */
export interface ProducerRecord {
  readonly topic: string;
  readonly partition: number;
  readonly key?: Bytes | null;
  readonly value: Bytes | null;
  readonly headers?: RecordInput['headers'];
  /** Milliseconds since the epoch; the accumulator's clock at append when absent. */
  readonly timestamp?: bigint | number;
}

/** Where a record was written. `offset` is -1n when the broker did not say (acks 0). */
export interface RecordMetadata {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

/** The idempotent producer's identity (from InitProducerId), stamped on the batches it sends. */
export interface ProducerIdentity {
  readonly producerId: bigint;
  readonly producerEpoch: number;
}

/** A record with its fields as bytes and its timestamp fixed: what a batch appends. */
export interface PreparedRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: readonly { readonly key: string; readonly value: Buffer | null }[];
  readonly timestamp: bigint;
  /** The record's encoded size without its length prefix and its two delta varints. */
  readonly fieldsBytes: number;
}

const NO_PRODUCER_ID = -1n;
const NO_PRODUCER_EPOCH = -1;
const NO_SEQUENCE = -1;
/** Kafka's RecordMetadata.UNKNOWN_OFFSET: the broker did not report an offset. */
export const UNKNOWN_OFFSET = -1n;
const MAX_INT32 = 0x7fffffff;
const MAX_INT64 = (1n << 63n) - 1n;
const MIN_INT64 = -(1n << 63n);

/** Checks a record's fields and turns them into bytes; `nowMs` stamps a record without a time. */
export function prepareRecord(record: ProducerRecord, nowMs: number): PreparedRecord {
  const key = toBytes(record.key, 'key');
  const value = toBytes(record.value, 'value');
  const headers = headerList(record.headers);
  const timestamp = toTimestamp(record.timestamp, nowMs);
  let fieldsBytes = 1 + bytesFieldSize(key) + bytesFieldSize(value) + varintSize(headers.length);
  for (const header of headers) {
    const keyBytes = Buffer.byteLength(header.key, 'utf8');
    fieldsBytes += varintSize(keyBytes) + keyBytes + bytesFieldSize(header.value);
  }
  return { key, value, headers, timestamp, fieldsBytes };
}

/** The record's encoded size at `offsetDelta` and `timestampDelta` in a batch (Kafka's
 * `DefaultRecord.sizeInBytes`). */
export function recordSizeInBytes(
  record: PreparedRecord,
  offsetDelta: number,
  timestampDelta: bigint,
): number {
  const bodyBytes = record.fieldsBytes + varintSize(offsetDelta) + varlongSize(timestampDelta);
  return varintSize(bodyBytes) + bodyBytes;
}

/** The most the record can take in any batch: its size at the widest deltas. */
export function recordSizeUpperBound(record: PreparedRecord): number {
  return recordSizeInBytes(record, MAX_INT32, MIN_INT64);
}

interface RecordSlot {
  readonly resolve: (metadata: RecordMetadata) => void;
  readonly reject: (error: Error) => void;
}

/** The batch header fields the builder reads when it builds. */
interface BatchHeader {
  compression: CompressionType;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
}

export class ProducerBatch {
  readonly topic: string;
  readonly partition: number;
  /** When the first record was appended, by the accumulator's clock: linger and delivery
   * timeouts count from here. */
  readonly createdMs: number;
  /** Settles (never rejects) when the batch completes or fails; what flush() waits for. */
  readonly done: Promise<void>;

  private builder: RecordBatchBuilder | undefined;
  // The builder reads its header options in build(), so filling in the producer fields here
  // before building stamps them, as Kafka's MemoryRecordsBuilder.setProducerState does.
  private readonly header: BatchHeader;
  private readonly slots: RecordSlot[] = [];
  private baseTimestamp = 0n;
  private built: Buffer | undefined;
  private uncompressedBytes = RECORD_BATCH_OVERHEAD;
  private settled = false;
  private readonly settle: () => void;
  private drains = 0;
  private retryNotBeforeMs = 0;
  private firstDrainOrder: number | undefined;

  constructor(topic: string, partition: number, createdMs: number, compression: CompressionType) {
    this.topic = topic;
    this.partition = partition;
    this.createdMs = createdMs;
    this.header = {
      compression,
      producerId: NO_PRODUCER_ID,
      producerEpoch: NO_PRODUCER_EPOCH,
      baseSequence: NO_SEQUENCE,
    };
    this.builder = new RecordBatchBuilder(this.header);
    let settle!: () => void;
    this.done = new Promise<void>((resolve) => (settle = resolve));
    this.settle = settle;
  }

  get recordCount(): number {
    return this.slots.length;
  }

  /** The batch's size uncompressed: what batching and buffer memory count. */
  get estimatedSizeInBytes(): number {
    return this.uncompressedBytes;
  }

  /** The bytes a request carries: the built size once closed, the estimate before. */
  get sizeInBytes(): number {
    return this.built?.length ?? this.uncompressedBytes;
  }

  /** Built: no more records can be appended. */
  get isClosed(): boolean {
    return this.built !== undefined;
  }

  get isDone(): boolean {
    return this.settled;
  }

  /** The RecordBatch v2 bytes to send. Only once closed. */
  get buffer(): Buffer {
    assert(this.built !== undefined, () => `batch for ${this.describe()} is not built yet`);
    return this.built;
  }

  get producerId(): bigint {
    return this.header.producerId;
  }

  get producerEpoch(): number {
    return this.header.producerEpoch;
  }

  /** The first record's sequence, or -1 when the batch was built without idempotence. */
  get baseSequence(): number {
    return this.header.baseSequence;
  }

  /** How many times the batch was drained to be sent; above 1 for a retry. */
  get attempts(): number {
    return this.drains;
  }

  /** A retry may not be drained before this time (its back-off). */
  get retryAtMs(): number {
    return this.retryNotBeforeMs;
  }

  /** The order in which batches were first drained: the order a retry must keep. */
  get drainOrder(): number | undefined {
    return this.firstDrainOrder;
  }

  /** The record's size if it were appended next. */
  recordSize(record: PreparedRecord): number {
    const timestampDelta = this.slots.length === 0 ? 0n : record.timestamp - this.baseTimestamp;
    return recordSizeInBytes(record, this.slots.length, timestampDelta);
  }

  /** Whether the record fits (Kafka's `hasRoomFor`): an empty batch takes any record, so a
   * record larger than `batchBytes` goes in a batch of its own. */
  hasRoomFor(record: PreparedRecord, batchBytes: number): boolean {
    if (this.builder === undefined) return false;
    if (this.slots.length === 0) return true;
    return this.uncompressedBytes + this.recordSize(record) <= batchBytes;
  }

  /** Appends the record; the promise settles with its offset when the batch does. */
  append(record: PreparedRecord): Promise<RecordMetadata> {
    const builder = this.builder;
    assert(builder !== undefined, () => `append to closed batch for ${this.describe()}`);
    const size = this.recordSize(record);
    if (this.slots.length === 0) this.baseTimestamp = record.timestamp;
    builder.append(record);
    this.uncompressedBytes += size;
    assert(
      builder.estimatedSizeInBytes === this.uncompressedBytes,
      () =>
        `batch for ${this.describe()} counted ${this.uncompressedBytes} bytes, the builder ${builder.estimatedSizeInBytes}`,
    );
    return new Promise<RecordMetadata>((resolve, reject) => this.slots.push({ resolve, reject }));
  }

  /**
   * Builds the batch for its first send. `sequence` (idempotence) stamps the producer's
   * identity and the base sequence; without it they stay -1.
   */
  close(sequence?: ProducerIdentity & { readonly baseSequence: number }): void {
    const builder = this.builder;
    assert(builder !== undefined, () => `batch for ${this.describe()} is already closed`);
    assert(this.slots.length > 0, () => `closing an empty batch for ${this.describe()}`);
    if (sequence !== undefined) {
      this.header.producerId = sequence.producerId;
      this.header.producerEpoch = sequence.producerEpoch;
      this.header.baseSequence = sequence.baseSequence;
    }
    this.built = builder.build();
    this.builder = undefined; // its encoding buffer is no longer needed
  }

  /** @internal The accumulator's record of a drain. */
  markDrained(drainOrder: number): void {
    this.drains++;
    this.firstDrainOrder ??= drainOrder;
  }

  /** @internal The accumulator's record of a retry: not to be sent before `retryAtMs`. */
  markRetry(retryAtMs: number): void {
    this.retryNotBeforeMs = retryAtMs;
  }

  /** Resolves record i with `baseOffset + i` (every record with -1 when unknown). */
  complete(baseOffset: bigint | undefined): void {
    this.finish();
    for (const [index, slot] of this.slots.entries()) {
      const offset = baseOffset === undefined ? UNKNOWN_OFFSET : baseOffset + BigInt(index);
      slot.resolve({ topic: this.topic, partition: this.partition, offset });
    }
  }

  /** Rejects every record with `error`. */
  fail(error: Error): void {
    this.finish();
    for (const slot of this.slots) slot.reject(error);
  }

  describe(): string {
    return `${this.topic}-${this.partition} (${this.slots.length} records, created at ${this.createdMs} ms)`;
  }

  private finish(): void {
    assert(!this.settled, () => `batch for ${this.describe()} settled twice`);
    this.settled = true;
    this.builder = undefined;
    this.settle();
  }
}

function invalidRecord(detail: string): WeirError {
  return new WeirError(ErrorCode.INVALID_RECORD, detail);
}

function toBytes(bytes: unknown, field: string): Buffer | null {
  if (bytes === null || bytes === undefined) return null;
  if (typeof bytes === 'string') return Buffer.from(bytes, 'utf8');
  if (Buffer.isBuffer(bytes)) return bytes;
  if (bytes instanceof Uint8Array) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  throw invalidRecord(
    `a record's ${field} must be a Buffer, a string or null, got ${typeOf(bytes)}`,
  );
}

function headerList(headers: unknown): PreparedRecord['headers'] {
  if (headers === undefined || headers === null) return [];
  if (Array.isArray(headers)) {
    return headers.map((header: unknown) => {
      if (typeof header !== 'object' || header === null || !('key' in header)) {
        throw invalidRecord(`a header must be { key, value }, got ${typeOf(header)}`);
      }
      const { key, value } = header as { key: unknown; value?: unknown };
      return { key: headerKey(key), value: toBytes(value, `header '${String(key)}' value`) };
    });
  }
  if (typeof headers !== 'object') {
    throw invalidRecord(
      `headers must be an object or an array of { key, value }, got ${typeOf(headers)}`,
    );
  }
  return Object.entries(headers).map(([key, value]) => ({
    key,
    value: toBytes(value, `header '${key}' value`),
  }));
}

function headerKey(key: unknown): string {
  if (typeof key !== 'string')
    throw invalidRecord(`a header key must be a string, got ${typeOf(key)}`);
  return key;
}

function toTimestamp(timestamp: unknown, nowMs: number): bigint {
  if (timestamp === undefined || timestamp === null) return BigInt(nowMs);
  const valid =
    (typeof timestamp === 'number' && Number.isSafeInteger(timestamp)) ||
    typeof timestamp === 'bigint';
  const value = valid ? BigInt(timestamp) : -1n;
  if (value < 0n || value > MAX_INT64) {
    throw new WeirError(
      ErrorCode.INVALID_TIMESTAMP,
      `a record's timestamp must be whole milliseconds since the epoch, from 0, got ${describeValue(timestamp)}; or leave it out for the current time`,
    );
  }
  return value;
}

function describeValue(value: unknown): string {
  return typeof value === 'number' || typeof value === 'bigint' ? String(value) : typeOf(value);
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

function bytesFieldSize(bytes: Buffer | null): number {
  return bytes === null ? 1 : varintSize(bytes.length) + bytes.length;
}

// Zigzag varint sizes, as RecordBatch v2 records encode lengths and deltas.
function varintSize(value: number): number {
  let zigzag = ((value << 1) ^ (value >> 31)) >>> 0;
  let bytes = 1;
  while (zigzag >= 0x80) {
    zigzag >>>= 7;
    bytes++;
  }
  return bytes;
}

function varlongSize(value: bigint): number {
  let zigzag = BigInt.asUintN(64, (value << 1n) ^ (value >> 63n));
  let bytes = 1;
  while (zigzag >= 0x80n) {
    zigzag >>= 7n;
    bytes++;
  }
  return bytes;
}
