// Kafka's variable-length integers (protobuf style, zigzag encoded), as used inside RecordBatch
// v2 records: `varint` for 32-bit values and `varlong` for 64-bit ones (the timestamp delta).
// Readers never run past `end` and never accept more bytes than the type can hold, so a
// corrupt batch ends in a CorruptRecordError, not an exception of some other kind or a loop.

import { ErrorCode, WeirError } from '../errors.js';

const MAX_VARINT_BYTES = 5;
const MAX_VARLONG_BYTES = 10;

export function corrupt(detail: string): WeirError {
  return new WeirError(ErrorCode.CORRUPT_MESSAGE, detail);
}

/** A position in a buffer that readers advance. */
export interface Cursor {
  position: number;
}

export function readVarint(buffer: Buffer, cursor: Cursor, end: number): number {
  let value = 0;
  let shift = 0;
  for (let i = 0; i < MAX_VARINT_BYTES; i++) {
    if (cursor.position >= end) throw corrupt('varint runs past the end of the record');
    const byte = buffer[cursor.position++]!;
    value |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return (value >>> 1) ^ -(value & 1);
    shift += 7;
  }
  throw corrupt('varint is longer than 5 bytes');
}

export function readVarlong(buffer: Buffer, cursor: Cursor, end: number): bigint {
  // Fast path: timestamp deltas almost always fit in 4 bytes (28 bits), so avoid BigInt math.
  let small = 0;
  for (let i = 0; i < 4 && cursor.position + i < end; i++) {
    const byte = buffer[cursor.position + i]!;
    small |= (byte & 0x7f) << (7 * i);
    if ((byte & 0x80) === 0) {
      cursor.position += i + 1;
      return BigInt((small >>> 1) ^ -(small & 1));
    }
  }
  let value = 0n;
  let shift = 0n;
  for (let i = 0; i < MAX_VARLONG_BYTES; i++) {
    if (cursor.position >= end) throw corrupt('varlong runs past the end of the record');
    const byte = buffer[cursor.position++]!;
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) {
      const unsigned = BigInt.asUintN(64, value);
      return BigInt.asIntN(64, (unsigned >> 1n) ^ -(unsigned & 1n));
    }
    shift += 7n;
  }
  throw corrupt('varlong is longer than 10 bytes');
}

export function varintSize(value: number): number {
  let zigzag = ((value << 1) ^ (value >> 31)) >>> 0;
  let bytes = 1;
  while (zigzag >= 0x80) {
    zigzag >>>= 7;
    bytes++;
  }
  return bytes;
}

export function writeVarint(buffer: Buffer, position: number, value: number): number {
  let zigzag = ((value << 1) ^ (value >> 31)) >>> 0;
  while (zigzag >= 0x80) {
    buffer[position++] = (zigzag & 0x7f) | 0x80;
    zigzag >>>= 7;
  }
  buffer[position++] = zigzag;
  return position;
}

function zigzag64(value: bigint): bigint {
  return BigInt.asUintN(64, (value << 1n) ^ (value >> 63n));
}

export function varlongSize(value: bigint): number {
  let zigzag = zigzag64(value);
  let bytes = 1;
  while (zigzag >= 0x80n) {
    zigzag >>= 7n;
    bytes++;
  }
  return bytes;
}

export function writeVarlong(buffer: Buffer, position: number, value: bigint): number {
  // Most timestamp deltas are small: take the 32-bit path when the value fits.
  if (value >= -0x40000000n && value < 0x40000000n)
    return writeVarint(buffer, position, Number(value));
  let zigzag = zigzag64(value);
  while (zigzag >= 0x80n) {
    buffer[position++] = Number(zigzag & 0x7fn) | 0x80;
    zigzag >>= 7n;
  }
  buffer[position++] = Number(zigzag);
  return position;
}
