// A zero-copy view of one Kafka RecordBatch v2 (magic 2) over a Buffer.
//
// Byte layout (big-endian; Kafka's DefaultRecordBatch):
//   0  baseOffset            int64    ┐ not covered by the CRC, so a broker can assign offsets
//   8  batchLength           int32    │ and stamp its leader epoch in place without
//  12  partitionLeaderEpoch  int32    ┘ recomputing the checksum
//  16  magic                 int8     (2)
//  17  crc                   uint32   CRC-32C of bytes [21, end of batch)
//  21  attributes            int16    bits 0-2 compression, 3 timestamp type,
//                                     4 transactional, 5 control, 6 delete horizon
//  23  lastOffsetDelta       int32
//  27  baseTimestamp         int64
//  35  maxTimestamp          int64
//  43  producerId            int64
//  51  producerEpoch         int16
//  53  baseSequence          int32
//  57  recordCount           int32
//  61  records …             (compressed as a whole when the codec bits are set)
// batchLength counts the bytes after the batchLength field: total size = batchLength + 12.

import { crc32c } from '../crc32c.js';
import { type CompressionType, decompress, compressionFromAttributes } from './compression.js';
import { type Cursor, corrupt, readVarint, readVarlong } from './varint.js';

export const BASE_OFFSET_OFFSET = 0;
export const BATCH_LENGTH_OFFSET = 8;
export const PARTITION_LEADER_EPOCH_OFFSET = 12;
export const MAGIC_OFFSET = 16;
export const CRC_OFFSET = 17;
export const ATTRIBUTES_OFFSET = 21;
export const LAST_OFFSET_DELTA_OFFSET = 23;
export const BASE_TIMESTAMP_OFFSET = 27;
export const MAX_TIMESTAMP_OFFSET = 35;
export const PRODUCER_ID_OFFSET = 43;
export const PRODUCER_EPOCH_OFFSET = 51;
export const BASE_SEQUENCE_OFFSET = 53;
export const RECORD_COUNT_OFFSET = 57;
/** Size of the batch header; also the smallest possible batch (no records). */
export const RECORD_BATCH_OVERHEAD = 61;
/** baseOffset + batchLength: the bytes needed to know a batch's total size. */
export const LOG_OVERHEAD = 12;
export const CURRENT_MAGIC = 2;

export const TIMESTAMP_TYPE_MASK = 0x08;
export const TRANSACTIONAL_MASK = 0x10;
export const CONTROL_MASK = 0x20;

/** Upper bound on a decompressed records section, so a small zip bomb cannot exhaust memory. */
export const DEFAULT_MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;

export type TimestampType = 'CreateTime' | 'LogAppendTime';

export interface RecordHeader {
  readonly key: string;
  readonly value: Buffer | null;
}

export interface Record {
  readonly offset: bigint;
  readonly timestamp: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: readonly RecordHeader[];
}

/** Total size of the batch starting at `position`, read from its header, or undefined if the
 * buffer holds fewer than LOG_OVERHEAD bytes there. Does not validate. */
export function batchSizeAt(buffer: Buffer, position = 0): number | undefined {
  if (buffer.length - position < LOG_OVERHEAD) return undefined;
  return buffer.readInt32BE(position + BATCH_LENGTH_OFFSET) + LOG_OVERHEAD;
}

export class RecordBatch {
  /** The batch's bytes: exactly one batch, sharing memory with the buffer it came from. */
  readonly buffer: Buffer;

  private constructor(buffer: Buffer) {
    this.buffer = buffer;
  }

  /**
   * Views the batch at `position` and checks its framing (size, magic, record count) — but
   * not its CRC; call `validate()` or use `RecordBatch.validated` for bytes from the outside.
   */
  static view(buffer: Buffer, position = 0): RecordBatch {
    const available = buffer.length - position;
    if (available < RECORD_BATCH_OVERHEAD) {
      throw corrupt(
        `record batch truncated: ${available} bytes, a header needs ${RECORD_BATCH_OVERHEAD}`,
      );
    }
    const size = buffer.readInt32BE(position + BATCH_LENGTH_OFFSET) + LOG_OVERHEAD;
    if (size < RECORD_BATCH_OVERHEAD) {
      throw corrupt(
        `record batch length ${size} is smaller than the ${RECORD_BATCH_OVERHEAD}-byte header`,
      );
    }
    if (size > available) {
      throw corrupt(`record batch truncated: header says ${size} bytes, ${available} present`);
    }
    const batch = new RecordBatch(buffer.subarray(position, position + size));
    batch.checkFraming();
    return batch;
  }

  /** Views and fully validates (framing and CRC) the batch at `position`. */
  static validated(buffer: Buffer, position = 0): RecordBatch {
    const batch = RecordBatch.view(buffer, position);
    batch.validate();
    return batch;
  }

  get sizeInBytes(): number {
    return this.buffer.length;
  }
  get baseOffset(): bigint {
    return this.buffer.readBigInt64BE(BASE_OFFSET_OFFSET);
  }
  get lastOffsetDelta(): number {
    return this.buffer.readInt32BE(LAST_OFFSET_DELTA_OFFSET);
  }
  get lastOffset(): bigint {
    return this.baseOffset + BigInt(this.lastOffsetDelta);
  }
  /** The offset after this batch. */
  get nextOffset(): bigint {
    return this.lastOffset + 1n;
  }
  get partitionLeaderEpoch(): number {
    return this.buffer.readInt32BE(PARTITION_LEADER_EPOCH_OFFSET);
  }
  get magic(): number {
    return this.buffer.readInt8(MAGIC_OFFSET);
  }
  get crc(): number {
    return this.buffer.readUInt32BE(CRC_OFFSET);
  }
  get attributes(): number {
    return this.buffer.readInt16BE(ATTRIBUTES_OFFSET);
  }
  get compression(): CompressionType {
    return compressionFromAttributes(this.attributes);
  }
  get timestampType(): TimestampType {
    return (this.attributes & TIMESTAMP_TYPE_MASK) !== 0 ? 'LogAppendTime' : 'CreateTime';
  }
  get isTransactional(): boolean {
    return (this.attributes & TRANSACTIONAL_MASK) !== 0;
  }
  get isControlBatch(): boolean {
    return (this.attributes & CONTROL_MASK) !== 0;
  }
  get baseTimestamp(): bigint {
    return this.buffer.readBigInt64BE(BASE_TIMESTAMP_OFFSET);
  }
  get maxTimestamp(): bigint {
    return this.buffer.readBigInt64BE(MAX_TIMESTAMP_OFFSET);
  }
  get producerId(): bigint {
    return this.buffer.readBigInt64BE(PRODUCER_ID_OFFSET);
  }
  get producerEpoch(): number {
    return this.buffer.readInt16BE(PRODUCER_EPOCH_OFFSET);
  }
  get baseSequence(): number {
    return this.buffer.readInt32BE(BASE_SEQUENCE_OFFSET);
  }
  get recordCount(): number {
    return this.buffer.readInt32BE(RECORD_COUNT_OFFSET);
  }

  /** Rewrites baseOffset in place. The CRC does not cover it, so it stays valid. */
  setBaseOffset(offset: bigint): void {
    this.buffer.writeBigInt64BE(offset, BASE_OFFSET_OFFSET);
  }

  /** Rewrites partitionLeaderEpoch in place. The CRC does not cover it, so it stays valid. */
  setPartitionLeaderEpoch(epoch: number): void {
    this.buffer.writeInt32BE(epoch, PARTITION_LEADER_EPOCH_OFFSET);
  }

  computeCrc(): number {
    return crc32c(this.buffer.subarray(ATTRIBUTES_OFFSET));
  }

  isValid(): boolean {
    try {
      this.validate();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Checks the CRC and, for uncompressed batches, that the records section holds exactly
   * `recordCount` length-prefixed records. Cheap: no record is decoded. Throws CORRUPT_MESSAGE.
   */
  validate(): void {
    const stored = this.crc;
    const computed = this.computeCrc();
    if (stored !== computed) {
      throw corrupt(
        `record batch CRC mismatch: stored 0x${hex(stored)}, computed 0x${hex(computed)} (baseOffset ${this.baseOffset})`,
      );
    }
    if (this.compression === 'none') this.checkRecordFraming();
  }

  /** Decodes the records. Decompresses the records section first when the batch is compressed. */
  *records(options: { maxDecompressedBytes?: number } = {}): Generator<Record> {
    const section = this.recordsSection(
      options.maxDecompressedBytes ?? DEFAULT_MAX_DECOMPRESSED_BYTES,
    );
    const cursor: Cursor = { position: 0 };
    const baseOffset = this.baseOffset;
    const baseTimestamp = this.baseTimestamp;
    const count = this.recordCount;
    for (let i = 0; i < count; i++) {
      yield readRecord(section, cursor, baseOffset, baseTimestamp);
    }
    if (cursor.position !== section.length) {
      throw corrupt(
        `record batch has ${section.length - cursor.position} bytes after its ${count} records`,
      );
    }
  }

  private recordsSection(maxDecompressedBytes: number): Buffer {
    const raw = this.buffer.subarray(RECORD_BATCH_OVERHEAD);
    const compression = this.compression;
    return compression === 'none' ? raw : decompress(compression, raw, maxDecompressedBytes);
  }

  private checkFraming(): void {
    const magic = this.magic;
    if (magic !== CURRENT_MAGIC) {
      throw corrupt(
        `record batch magic is ${magic}; only magic ${CURRENT_MAGIC} (RecordBatch v2) is supported`,
      );
    }
    const count = this.recordCount;
    const lastOffsetDelta = this.lastOffsetDelta;
    // Compaction (later) may remove records but keeps lastOffsetDelta, so count may be smaller.
    if (count < 0 || lastOffsetDelta < 0 || lastOffsetDelta < count - 1) {
      throw corrupt(`record batch has recordCount ${count} but lastOffsetDelta ${lastOffsetDelta}`);
    }
    // Each record takes at least 7 bytes (length, attributes, three varints, header count).
    if (this.compression === 'none' && count > (this.buffer.length - RECORD_BATCH_OVERHEAD) / 7) {
      throw corrupt(`record batch claims ${count} records in ${this.buffer.length} bytes`);
    }
  }

  /** Walks the length prefixes of an uncompressed records section. */
  private checkRecordFraming(): void {
    const buffer = this.buffer;
    const end = buffer.length;
    const cursor: Cursor = { position: RECORD_BATCH_OVERHEAD };
    const count = this.recordCount;
    for (let i = 0; i < count; i++) {
      const length = readVarint(buffer, cursor, end);
      if (length <= 0 || length > end - cursor.position) {
        throw corrupt(`record ${i} has length ${length} but ${end - cursor.position} bytes remain`);
      }
      cursor.position += length;
    }
    if (cursor.position !== end) {
      throw corrupt(`record batch has ${end - cursor.position} bytes after its ${count} records`);
    }
  }
}

function hex(value: number): string {
  return value.toString(16).padStart(8, '0');
}

function readRecord(
  section: Buffer,
  cursor: Cursor,
  baseOffset: bigint,
  baseTimestamp: bigint,
): Record {
  const length = readVarint(section, cursor, section.length);
  const start = cursor.position;
  if (length <= 0 || length > section.length - start) {
    throw corrupt(`record length ${length} exceeds the ${section.length - start} bytes left`);
  }
  const end = start + length;
  cursor.position++; // attributes: unused in v2
  const timestampDelta = readVarlong(section, cursor, end);
  const offsetDelta = readVarint(section, cursor, end);
  const key = readBytes(section, cursor, end);
  const value = readBytes(section, cursor, end);
  const headerCount = readVarint(section, cursor, end);
  // A header takes at least two bytes; a larger count is corruption, not a reason to allocate.
  if (headerCount < 0 || headerCount > (end - cursor.position) / 2) {
    throw corrupt(`record has header count ${headerCount} in ${end - cursor.position} bytes`);
  }
  const headers: RecordHeader[] = [];
  for (let i = 0; i < headerCount; i++) {
    const headerKey = readBytes(section, cursor, end);
    if (headerKey === null) throw corrupt('record header has a null key');
    headers.push({ key: headerKey.toString('utf8'), value: readBytes(section, cursor, end) });
  }
  if (cursor.position !== end) {
    throw corrupt(`record has ${end - cursor.position} bytes after its last field`);
  }
  return {
    offset: baseOffset + BigInt(offsetDelta),
    timestamp: baseTimestamp + timestampDelta,
    key,
    value,
    headers,
  };
}

function readBytes(section: Buffer, cursor: Cursor, end: number): Buffer | null {
  const length = readVarint(section, cursor, end);
  if (length === -1) return null;
  if (length < -1 || length > end - cursor.position) {
    throw corrupt(`record field length ${length} exceeds the ${end - cursor.position} bytes left`);
  }
  const bytes = section.subarray(cursor.position, cursor.position + length);
  cursor.position += length;
  return bytes;
}

/**
 * Iterates the batches laid end to end in `buffer` (a fetch response, a segment read). Stops
 * at a trailing partial batch when `allowPartialTail` (fetch responses may cut the last batch);
 * otherwise a partial tail is CORRUPT_MESSAGE. Checks framing; CRC only with `validateCrc`.
 */
export function* batchesIn(
  buffer: Buffer,
  options: { allowPartialTail?: boolean; validateCrc?: boolean } = {},
): Generator<RecordBatch> {
  let position = 0;
  while (position < buffer.length) {
    const size = batchSizeAt(buffer, position);
    if (options.allowPartialTail && (size === undefined || size > buffer.length - position)) return;
    const batch = RecordBatch.view(buffer, position);
    if (options.validateCrc) batch.validate();
    yield batch;
    position += batch.sizeInBytes;
  }
}
