// The byte layout of RaftStorage's LevelDB records: fixed-width keys that sort by log index, and
// compact binary values, each checked by a CRC-32C that also covers its key (so a value that
// ends up under the wrong key is caught too). docs/raft-storage.md describes the format.
//
// Every decoder here takes bytes from disk and trusts none of them: whatever the input, it
// returns a well-formed record or throws WeirError(CORRUPT_STORE) naming the key, and it never
// allocates more than the input's length (counts and lengths are checked against the bytes
// that are actually there before anything is allocated).

import { ErrorCode, WeirError, assert, crc32c } from '@weir/protocol';
import type { Entry, EntryType, HardState, NodeId, SnapshotMetadata } from '../core/types.js';
import { NO_NODE } from '../core/types.js';

/** The value format this code writes and reads. A store written with another one is refused. */
export const STORE_FORMAT_VERSION = 1;

/** Key prefixes, in key order. One byte each; the records they prefix are described below. */
export const KeyPrefix = {
  /** The store's identity: node id and cluster id. One record. */
  meta: 0x01,
  /** Term, vote and commit (Raft Figure 2's persistent state). One record. */
  hardState: 0x02,
  /** The latest snapshot's metadata, size, chunk count and data CRC. At most one record. */
  snapshotMetadata: 0x03,
  /** The latest snapshot's data in chunks: prefix + uint32 BE chunk number. */
  snapshotChunk: 0x04,
  /** Log entries: prefix + uint64 BE index. */
  entry: 0x05,
} as const;

/** Snapshot data is stored in chunks of this size, so no LevelDB value grows past it. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** A cluster id is a short token (Kafka's is a 22-character base64 UUID). */
export const MAX_CLUSTER_ID_BYTES = 255;

const ENTRY_KEY_BYTES = 9;
const CHUNK_KEY_BYTES = 5;
/** version (1) + CRC-32C (4). */
const VALUE_HEADER_BYTES = 5;
/** 2^53 needs 8 groups of 7 bits; a ninth varint byte can only be corruption. */
const MAX_VARINT_BYTES = 8;
const TWO_POW_32 = 2 ** 32;

const ENTRY_TYPE_CODES: Record<EntryType, number> = { normal: 0, noop: 1 };
const ENTRY_TYPES: readonly EntryType[] = ['normal', 'noop'];

export interface StoreMeta {
  readonly nodeId: NodeId;
  /** Empty when the store was created without one. */
  readonly clusterId: string;
}

/** What the snapshot metadata record holds besides the core's SnapshotMetadata. */
export interface StoredSnapshotMetadata {
  readonly metadata: SnapshotMetadata;
  readonly dataBytes: number;
  readonly chunkCount: number;
  readonly dataCrc32c: number;
}

// ---------------------------------------------------------------------------------------------
// Keys

export const META_KEY: Uint8Array = Uint8Array.of(KeyPrefix.meta);
export const HARD_STATE_KEY: Uint8Array = Uint8Array.of(KeyPrefix.hardState);
export const SNAPSHOT_METADATA_KEY: Uint8Array = Uint8Array.of(KeyPrefix.snapshotMetadata);

export function entryKey(index: number): Uint8Array {
  assertIndex(index, 'entry index');
  const key = new Uint8Array(ENTRY_KEY_BYTES);
  const view = new DataView(key.buffer);
  key[0] = KeyPrefix.entry;
  view.setUint32(1, Math.floor(index / TWO_POW_32));
  view.setUint32(5, index >>> 0);
  return key;
}

/** The first key after every entry key: the exclusive upper bound of the entry range. */
export const ENTRY_KEYS_END: Uint8Array = Uint8Array.of(KeyPrefix.entry + 1);

export function snapshotChunkKey(chunk: number): Uint8Array {
  assert(Number.isInteger(chunk) && chunk >= 0 && chunk < TWO_POW_32, () => `chunk ${chunk}`);
  const key = new Uint8Array(CHUNK_KEY_BYTES);
  key[0] = KeyPrefix.snapshotChunk;
  new DataView(key.buffer).setUint32(1, chunk);
  return key;
}

/** The index an entry key holds; CORRUPT_STORE when the key is not an entry key. */
export function decodeEntryKey(key: Uint8Array): number {
  if (key.length !== ENTRY_KEY_BYTES || key[0] !== KeyPrefix.entry) {
    throw corrupt(key, `not an entry key (expected ${ENTRY_KEY_BYTES} bytes, prefix 0x05)`);
  }
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  const high = view.getUint32(1);
  if (high >= 2 ** 21) throw corrupt(key, 'entry index above 2^53');
  const index = high * TWO_POW_32 + view.getUint32(5);
  if (index < 1) throw corrupt(key, 'entry index 0 (indexes start at 1)');
  return index;
}

/** The chunk number a snapshot chunk key holds; CORRUPT_STORE when it is not one. */
export function decodeSnapshotChunkKey(key: Uint8Array): number {
  if (key.length !== CHUNK_KEY_BYTES || key[0] !== KeyPrefix.snapshotChunk) {
    throw corrupt(key, `not a snapshot chunk key (expected ${CHUNK_KEY_BYTES} bytes, prefix 0x04)`);
  }
  return new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(1);
}

/** A key as people read it in an error message: `entry 42`, `hard state`, or hex. */
export function describeKey(key: Uint8Array): string {
  const prefix = key[0];
  if (key.length === 1 && prefix === KeyPrefix.meta) return 'meta record';
  if (key.length === 1 && prefix === KeyPrefix.hardState) return 'hard state record';
  if (key.length === 1 && prefix === KeyPrefix.snapshotMetadata) return 'snapshot metadata record';
  if (key.length === CHUNK_KEY_BYTES && prefix === KeyPrefix.snapshotChunk) {
    return `snapshot chunk ${new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(1)}`;
  }
  if (key.length === ENTRY_KEY_BYTES && prefix === KeyPrefix.entry) {
    const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
    return `entry ${view.getUint32(1) * TWO_POW_32 + view.getUint32(5)}`;
  }
  return `key 0x${Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Values: version (uint8) | CRC-32C (uint32 BE) of key + version + payload | payload

export function encodeEntryValue(key: Uint8Array, entry: Entry): Uint8Array {
  const writer = new ValueWriter(1 + MAX_VARINT_BYTES + entry.data.length);
  writer.uint8(ENTRY_TYPE_CODES[entry.type]);
  writer.varint(entry.term, 'entry term');
  writer.bytes(entry.data);
  return writer.finish(key);
}

/** The entry stored under `key` (its index comes from the key, which the CRC covers). */
export function decodeEntryValue(key: Uint8Array, value: Uint8Array): Entry {
  const index = decodeEntryKey(key);
  const reader = ValueReader.open(key, value);
  const code = reader.uint8('entry type');
  const type = ENTRY_TYPES[code];
  if (type === undefined) throw corrupt(key, `unknown entry type ${code}`);
  const term = reader.varint('entry term');
  const data = reader.rest();
  return { index, term, type, data };
}

export function encodeHardStateValue(hardState: HardState): Uint8Array {
  assert(
    Number.isSafeInteger(hardState.vote) && hardState.vote >= NO_NODE,
    () => `hard state vote ${hardState.vote} is neither a node id nor NO_NODE`,
  );
  const writer = new ValueWriter(3 * MAX_VARINT_BYTES);
  writer.varint(hardState.term, 'hard state term');
  // NO_NODE (-1) is stored as 0, node n as n + 1: votes need no sign bit.
  writer.varint(hardState.vote + 1, 'hard state vote');
  writer.varint(hardState.commit, 'hard state commit');
  return writer.finish(HARD_STATE_KEY);
}

export function decodeHardStateValue(key: Uint8Array, value: Uint8Array): HardState {
  const reader = ValueReader.open(key, value);
  const term = reader.varint('term');
  const vote = reader.varint('vote') - 1;
  const commit = reader.varint('commit');
  reader.end();
  return { term, vote, commit };
}

export function encodeSnapshotMetadataValue(stored: StoredSnapshotMetadata): Uint8Array {
  const { metadata } = stored;
  const writer = new ValueWriter((5 + metadata.voters.length) * MAX_VARINT_BYTES + 4);
  writer.varint(metadata.index, 'snapshot index');
  writer.varint(metadata.term, 'snapshot term');
  writer.varint(metadata.voters.length, 'voter count');
  for (const voter of metadata.voters) writer.varint(voter, 'voter id');
  writer.varint(stored.dataBytes, 'snapshot data bytes');
  writer.varint(stored.chunkCount, 'snapshot chunk count');
  writer.uint32(stored.dataCrc32c);
  return writer.finish(SNAPSHOT_METADATA_KEY);
}

export function decodeSnapshotMetadataValue(
  key: Uint8Array,
  value: Uint8Array,
): StoredSnapshotMetadata {
  const reader = ValueReader.open(key, value);
  const index = reader.varint('snapshot index');
  const term = reader.varint('snapshot term');
  const voterCount = reader.count('voter count', 1);
  const voters: NodeId[] = [];
  for (let i = 0; i < voterCount; i++) voters.push(reader.varint('voter id'));
  const dataBytes = reader.varint('snapshot data bytes');
  const chunkCount = reader.varint('snapshot chunk count');
  const dataCrc32c = reader.uint32('snapshot data CRC');
  reader.end();
  if (chunkCount !== snapshotChunkCount(dataBytes)) {
    throw corrupt(key, `${chunkCount} chunks cannot hold ${dataBytes} bytes`);
  }
  return { metadata: { index, term, voters }, dataBytes, chunkCount, dataCrc32c };
}

/** How many chunk records hold `dataBytes` bytes of snapshot data (an empty snapshot has none). */
export function snapshotChunkCount(dataBytes: number): number {
  return Math.ceil(dataBytes / SNAPSHOT_CHUNK_BYTES);
}

export function encodeSnapshotChunkValue(key: Uint8Array, data: Uint8Array): Uint8Array {
  const writer = new ValueWriter(data.length);
  writer.bytes(data);
  return writer.finish(key);
}

export function decodeSnapshotChunkValue(key: Uint8Array, value: Uint8Array): Uint8Array {
  decodeSnapshotChunkKey(key);
  return ValueReader.open(key, value).rest();
}

export function encodeMetaValue(meta: StoreMeta): Uint8Array {
  const clusterId = new TextEncoder().encode(meta.clusterId);
  assert(
    clusterId.length <= MAX_CLUSTER_ID_BYTES,
    () => `cluster id of ${clusterId.length} bytes is longer than ${MAX_CLUSTER_ID_BYTES}`,
  );
  const writer = new ValueWriter(2 * MAX_VARINT_BYTES + clusterId.length);
  writer.varint(meta.nodeId, 'node id');
  writer.varint(clusterId.length, 'cluster id length');
  writer.bytes(clusterId);
  return writer.finish(META_KEY);
}

export function decodeMetaValue(key: Uint8Array, value: Uint8Array): StoreMeta {
  const reader = ValueReader.open(key, value);
  const nodeId = reader.varint('node id');
  const length = reader.count('cluster id length', 1);
  if (length > MAX_CLUSTER_ID_BYTES) throw corrupt(key, `cluster id of ${length} bytes`);
  const bytes = reader.take(length, 'cluster id');
  reader.end();
  let clusterId: string;
  try {
    clusterId = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw corrupt(key, 'cluster id is not valid UTF-8');
  }
  return { nodeId, clusterId };
}

/** CORRUPT_STORE naming the record: what every check of stored bytes throws. */
export function corrupt(key: Uint8Array, problem: string): WeirError {
  return new WeirError(ErrorCode.CORRUPT_STORE, `${describeKey(key)}: ${problem}`);
}

function assertIndex(value: number, what: string): void {
  assert(Number.isSafeInteger(value) && value >= 1, () => `${what} ${value} is not in [1, 2^53)`);
}

// ---------------------------------------------------------------------------------------------
// The writer and reader of one value

class ValueWriter {
  private readonly buffer: Uint8Array;
  private position = VALUE_HEADER_BYTES;

  constructor(payloadCapacity: number) {
    this.buffer = new Uint8Array(VALUE_HEADER_BYTES + payloadCapacity);
  }

  uint8(value: number): void {
    this.buffer[this.position++] = value;
  }

  uint32(value: number): void {
    new DataView(this.buffer.buffer).setUint32(this.position, value);
    this.position += 4;
  }

  /** Unsigned LEB128 of a safe non-negative integer: 1 byte below 128, at most 8. */
  varint(value: number, what: string): void {
    assert(
      Number.isSafeInteger(value) && value >= 0,
      () => `${what} ${value} is not a non-negative safe integer`,
    );
    let rest = value;
    while (rest >= 0x80) {
      this.buffer[this.position++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.buffer[this.position++] = rest;
  }

  bytes(data: Uint8Array): void {
    this.buffer.set(data, this.position);
    this.position += data.length;
  }

  finish(key: Uint8Array): Uint8Array {
    const value = this.buffer.subarray(0, this.position);
    value[0] = STORE_FORMAT_VERSION;
    new DataView(value.buffer).setUint32(1, valueCrc(key, value));
    return value;
  }
}

function valueCrc(key: Uint8Array, value: Uint8Array): number {
  const crc = crc32c(value.subarray(0, 1), crc32c(key));
  return crc32c(value.subarray(VALUE_HEADER_BYTES), crc);
}

class ValueReader {
  private position = VALUE_HEADER_BYTES;

  private constructor(
    private readonly key: Uint8Array,
    private readonly value: Uint8Array,
  ) {}

  /** Checks the header (length, CRC, then version) and positions the reader on the payload. */
  static open(key: Uint8Array, value: Uint8Array): ValueReader {
    if (value.length < VALUE_HEADER_BYTES) {
      throw corrupt(key, `value of ${value.length} bytes is shorter than its 5-byte header`);
    }
    const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
    const stored = view.getUint32(1);
    const computed = valueCrc(key, value);
    if (stored !== computed) {
      throw corrupt(
        key,
        `CRC-32C mismatch (stored 0x${hex32(stored)}, computed 0x${hex32(computed)}): the value was damaged or only partly written`,
      );
    }
    if (value[0] !== STORE_FORMAT_VERSION) {
      throw corrupt(
        key,
        `format version ${value[0]} is not the one this build reads (${STORE_FORMAT_VERSION}); was the store written by another version of Weir?`,
      );
    }
    return new ValueReader(key, value);
  }

  private get remaining(): number {
    return this.value.length - this.position;
  }

  uint8(what: string): number {
    if (this.remaining < 1) throw this.truncated(what);
    return this.value[this.position++] as number;
  }

  uint32(what: string): number {
    if (this.remaining < 4) throw this.truncated(what);
    const view = new DataView(this.value.buffer, this.value.byteOffset, this.value.byteLength);
    const result = view.getUint32(this.position);
    this.position += 4;
    return result;
  }

  /** A canonical unsigned LEB128 varint that fits in a safe integer. */
  varint(what: string): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const byte = this.uint8(what);
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && i > 0) throw corrupt(this.key, `${what} is not minimally encoded`);
        if (!Number.isSafeInteger(result)) throw corrupt(this.key, `${what} is above 2^53`);
        return result;
      }
      scale *= 0x80;
    }
    throw corrupt(this.key, `${what} is a varint longer than ${MAX_VARINT_BYTES} bytes`);
  }

  /**
   * A count of items that take at least `minItemBytes` each: refused when the bytes left cannot
   * hold that many, before anything is allocated for them.
   */
  count(what: string, minItemBytes: number): number {
    const count = this.varint(what);
    if (count * minItemBytes > this.remaining) {
      throw corrupt(
        this.key,
        `${what} ${count} is more than the ${this.remaining} bytes left hold`,
      );
    }
    return count;
  }

  take(length: number, what: string): Uint8Array {
    if (this.remaining < length) throw this.truncated(what);
    const result = this.view(this.position, length);
    this.position += length;
    return result;
  }

  /** The rest of the value: a view, not a copy (LevelDB hands out a fresh buffer per value). */
  rest(): Uint8Array {
    const result = this.view(this.position, this.remaining);
    this.position = this.value.length;
    return result;
  }

  end(): void {
    if (this.remaining !== 0) {
      throw corrupt(this.key, `${this.remaining} unexpected bytes after the record`);
    }
  }

  /** A plain Uint8Array over the value's bytes (not a Buffer, whatever the input was). */
  private view(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.value.buffer, this.value.byteOffset + offset, length);
  }

  private truncated(what: string): WeirError {
    return corrupt(this.key, `value ends before its ${what}`);
  }
}

function hex32(value: number): string {
  return value.toString(16).padStart(8, '0');
}
