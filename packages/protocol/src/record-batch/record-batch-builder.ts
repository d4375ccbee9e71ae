// Builds a RecordBatch v2 from records, as a producer does: records are encoded as they are
// appended (so the size is known while batching), compressed as one section, and checksummed
// once in build().

import { crc32c } from '../crc32c.js';
import { ErrorCode, WeirError } from '../errors.js';
import { type CompressionType, compress, compressionCodecId } from './compression.js';
import {
  ATTRIBUTES_OFFSET,
  BASE_OFFSET_OFFSET,
  BASE_SEQUENCE_OFFSET,
  BASE_TIMESTAMP_OFFSET,
  BATCH_LENGTH_OFFSET,
  CRC_OFFSET,
  CURRENT_MAGIC,
  LAST_OFFSET_DELTA_OFFSET,
  LOG_OVERHEAD,
  MAGIC_OFFSET,
  MAX_TIMESTAMP_OFFSET,
  PARTITION_LEADER_EPOCH_OFFSET,
  PRODUCER_EPOCH_OFFSET,
  PRODUCER_ID_OFFSET,
  RECORD_BATCH_OVERHEAD,
  RECORD_COUNT_OFFSET,
  TIMESTAMP_TYPE_MASK,
  TRANSACTIONAL_MASK,
  type TimestampType,
} from './record-batch.js';
import { varintSize, varlongSize, writeVarint, writeVarlong } from './varint.js';

export type Bytes = Buffer | string;

export interface RecordInput {
  readonly key?: Bytes | null;
  readonly value: Bytes | null;
  readonly headers?:
    Readonly<{ [key: string]: Bytes | null }> | readonly { key: string; value: Bytes | null }[];
  /** Milliseconds since the epoch; defaults to the builder's clock. */
  readonly timestamp?: bigint | number;
}

export interface RecordBatchBuilderOptions {
  readonly compression?: CompressionType;
  readonly baseOffset?: bigint;
  readonly partitionLeaderEpoch?: number;
  readonly producerId?: bigint;
  readonly producerEpoch?: number;
  readonly baseSequence?: number;
  readonly isTransactional?: boolean;
  readonly timestampType?: TimestampType;
  /** Milliseconds since the epoch, for records without a timestamp. */
  readonly clock?: () => bigint;
}

const INITIAL_CAPACITY_BYTES = 1024;
const NO_PRODUCER_ID = -1n;
const NO_PRODUCER_EPOCH = -1;
const NO_SEQUENCE = -1;
const NO_PARTITION_LEADER_EPOCH = -1;

const systemClock = (): bigint => BigInt(Date.now());

function toBuffer(bytes: Bytes | null | undefined): Buffer | null {
  if (bytes === null || bytes === undefined) return null;
  return typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
}

function bytesFieldSize(bytes: Buffer | null): number {
  return bytes === null ? 1 : varintSize(bytes.length) + bytes.length;
}

function writeBytesField(target: Buffer, position: number, bytes: Buffer | null): number {
  if (bytes === null) return writeVarint(target, position, -1);
  position = writeVarint(target, position, bytes.length);
  return position + bytes.copy(target, position);
}

type HeaderInput = { key: string; value: Bytes | null };

function isHeaderArray(
  headers: NonNullable<RecordInput['headers']>,
): headers is readonly HeaderInput[] {
  return Array.isArray(headers);
}

function headerList(headers: RecordInput['headers']): { key: Buffer; value: Buffer | null }[] {
  if (headers === undefined) return [];
  const entries = isHeaderArray(headers)
    ? headers.map((h): [string, Bytes | null] => [h.key, h.value])
    : Object.entries(headers);
  return entries.map(([key, value]) => ({ key: Buffer.from(key, 'utf8'), value: toBuffer(value) }));
}

export class RecordBatchBuilder {
  private readonly options: RecordBatchBuilderOptions;
  private readonly clock: () => bigint;
  private records = Buffer.allocUnsafe(INITIAL_CAPACITY_BYTES);
  private recordsBytes = 0;
  private count = 0;
  private baseTimestamp = 0n;
  private maxTimestamp = -1n;

  constructor(options: RecordBatchBuilderOptions = {}) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
  }

  get recordCount(): number {
    return this.count;
  }

  /** Size of the batch if built now without compression: what producers batch by. */
  get estimatedSizeInBytes(): number {
    return RECORD_BATCH_OVERHEAD + this.recordsBytes;
  }

  append(record: RecordInput): this {
    const timestamp = record.timestamp === undefined ? this.clock() : BigInt(record.timestamp);
    if (this.count === 0) this.baseTimestamp = timestamp;
    if (timestamp > this.maxTimestamp) this.maxTimestamp = timestamp;
    const key = toBuffer(record.key);
    const value = toBuffer(record.value);
    const headers = headerList(record.headers);
    const timestampDelta = timestamp - this.baseTimestamp;
    const offsetDelta = this.count;

    let bodySize = 1 + varlongSize(timestampDelta) + varintSize(offsetDelta);
    bodySize += bytesFieldSize(key) + bytesFieldSize(value) + varintSize(headers.length);
    for (const header of headers)
      bodySize += bytesFieldSize(header.key) + bytesFieldSize(header.value);

    this.ensureCapacity(varintSize(bodySize) + bodySize);
    const target = this.records;
    let position = writeVarint(target, this.recordsBytes, bodySize);
    target[position++] = 0; // record attributes: unused in v2
    position = writeVarlong(target, position, timestampDelta);
    position = writeVarint(target, position, offsetDelta);
    position = writeBytesField(target, position, key);
    position = writeBytesField(target, position, value);
    position = writeVarint(target, position, headers.length);
    for (const header of headers) {
      position = writeBytesField(target, position, header.key);
      position = writeBytesField(target, position, header.value);
    }
    this.recordsBytes = position;
    this.count++;
    return this;
  }

  build(): Buffer {
    if (this.count === 0) {
      throw new WeirError(ErrorCode.INVALID_RECORD, 'a record batch needs at least one record');
    }
    const compression = this.options.compression ?? 'none';
    const section = compress(compression, this.records.subarray(0, this.recordsBytes));
    const batch = Buffer.allocUnsafe(RECORD_BATCH_OVERHEAD + section.length);
    this.writeHeader(batch, compression);
    section.copy(batch, RECORD_BATCH_OVERHEAD);
    batch.writeUInt32BE(crc32c(batch.subarray(ATTRIBUTES_OFFSET)), CRC_OFFSET);
    return batch;
  }

  private writeHeader(batch: Buffer, compression: CompressionType): void {
    const o = this.options;
    let attributes = compressionCodecId(compression);
    if (o.timestampType === 'LogAppendTime') attributes |= TIMESTAMP_TYPE_MASK;
    if (o.isTransactional) attributes |= TRANSACTIONAL_MASK;
    batch.writeBigInt64BE(o.baseOffset ?? 0n, BASE_OFFSET_OFFSET);
    batch.writeInt32BE(batch.length - LOG_OVERHEAD, BATCH_LENGTH_OFFSET);
    batch.writeInt32BE(
      o.partitionLeaderEpoch ?? NO_PARTITION_LEADER_EPOCH,
      PARTITION_LEADER_EPOCH_OFFSET,
    );
    batch.writeInt8(CURRENT_MAGIC, MAGIC_OFFSET);
    batch.writeInt16BE(attributes, ATTRIBUTES_OFFSET);
    batch.writeInt32BE(this.count - 1, LAST_OFFSET_DELTA_OFFSET);
    batch.writeBigInt64BE(this.baseTimestamp, BASE_TIMESTAMP_OFFSET);
    batch.writeBigInt64BE(this.maxTimestamp, MAX_TIMESTAMP_OFFSET);
    batch.writeBigInt64BE(o.producerId ?? NO_PRODUCER_ID, PRODUCER_ID_OFFSET);
    batch.writeInt16BE(o.producerEpoch ?? NO_PRODUCER_EPOCH, PRODUCER_EPOCH_OFFSET);
    batch.writeInt32BE(o.baseSequence ?? NO_SEQUENCE, BASE_SEQUENCE_OFFSET);
    batch.writeInt32BE(this.count, RECORD_COUNT_OFFSET);
  }

  private ensureCapacity(extraBytes: number): void {
    const needed = this.recordsBytes + extraBytes;
    if (needed <= this.records.length) return;
    let capacity = this.records.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = Buffer.allocUnsafe(capacity);
    this.records.copy(grown, 0, 0, this.recordsBytes);
    this.records = grown;
  }
}
