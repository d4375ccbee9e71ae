// Producer-state snapshots (Kafka's `<offset>.snapshot` files, ProducerStateManager.takeSnapshot
// and readSnapshot): the idempotent-producer state of a partition as it stood at a log offset,
// so that opening the log replays only the batches after it instead of the whole log.
//
// A snapshot at offset S describes exactly the batches below S. It lives in the partition's log
// directory as `<S, 20 digits>.snapshot`, next to the segments, and is written atomically (tmp +
// fsync + rename + directory fsync), so a crash leaves the old set of files or the new one.
//
// Layout (big-endian, as Kafka's wire format), version 1:
//   int16 version | int32 crc (CRC-32C of every byte after it) | int32 producer count |
//   per producer, least recently used first:
//     int64 producerId | int16 producerEpoch | int8 batch count (1..5) |
//     per batch, oldest first: int32 firstSequence | int32 lastSequence |
//                              int64 firstOffset | int64 lastOffset
// Kafka keeps only each producer's last batch; Weir keeps every retained one and the order of
// the entries, so that snapshot + replay of the tail gives exactly the state a full replay gives.

import { readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, WeirError, assert, crc32c, isWeirError } from '@weir/protocol';
import { storageError, syncDirectory, writeFileAtomically } from '@weir/storage';
import {
  BATCHES_RETAINED_PER_PRODUCER,
  type BatchMetadata,
  type ProducerStateEntry,
  producerEntryProblem,
} from './producer-state.js';

export const PRODUCER_SNAPSHOT_VERSION = 1;
const PRODUCER_SNAPSHOT_SUFFIX = '.snapshot';
const SNAPSHOT_FILE_NAME = /^(\d{20})\.snapshot$/;
/** version + crc + producer count. */
const HEADER_BYTES = 2 + 4 + 4;
/** Where the CRC starts and the bytes it covers start. */
const CRC_OFFSET = 2;
const CRC_COVERS_FROM = CRC_OFFSET + 4;
/** producerId + producerEpoch + batch count. */
const PRODUCER_BYTES = 8 + 2 + 1;
/** firstSequence + lastSequence + firstOffset + lastOffset. */
const BATCH_BYTES = 4 + 4 + 8 + 8;
/** A producer has at least one batch. */
const MIN_ENTRY_BYTES = PRODUCER_BYTES + BATCH_BYTES;

/** The producer state of a partition at `offset`: it describes the batches below `offset`. */
export interface ProducerSnapshot {
  readonly offset: bigint;
  readonly entries: readonly ProducerStateEntry[];
}

/** `<offset as 20 digits, zero padded>.snapshot`, as Kafka and as the segments are named. */
export function producerSnapshotFileName(offset: bigint): string {
  assert(offset >= 0n, () => `producer snapshot offset ${offset} is negative`);
  return `${offset.toString().padStart(20, '0')}${PRODUCER_SNAPSHOT_SUFFIX}`;
}

/** The entries in the file layout above; they must be valid (producerEntryProblem). */
export function encodeProducerSnapshot(entries: readonly ProducerStateEntry[]): Buffer {
  const size = entries.reduce(
    (sum, entry) => sum + PRODUCER_BYTES + entry.batches.length * BATCH_BYTES,
    HEADER_BYTES,
  );
  const bytes = Buffer.alloc(size);
  let position = bytes.writeInt16BE(PRODUCER_SNAPSHOT_VERSION, 0);
  position = bytes.writeInt32BE(entries.length, CRC_COVERS_FROM);
  for (const entry of entries) {
    const problem = producerEntryProblem(entry);
    assert(problem === undefined, () => `snapshot of producer ${entry.producerId}: ${problem}`);
    position = bytes.writeBigInt64BE(entry.producerId, position);
    position = bytes.writeInt16BE(entry.producerEpoch, position);
    position = bytes.writeInt8(entry.batches.length, position);
    for (const batch of entry.batches) {
      position = bytes.writeInt32BE(batch.firstSequence, position);
      position = bytes.writeInt32BE(batch.lastSequence, position);
      position = bytes.writeBigInt64BE(batch.firstOffset, position);
      position = bytes.writeBigInt64BE(batch.lastOffset, position);
    }
  }
  assert(position === size, () => `producer snapshot of ${size} bytes filled to ${position}`);
  bytes.writeUInt32BE(crc32c(bytes.subarray(CRC_COVERS_FROM)), CRC_OFFSET);
  return bytes;
}

/**
 * The entries of the snapshot at `offset` read from `path`. Anything that is not a snapshot
 * Weir wrote (short, another version, a bad CRC, counts that do not fit the bytes, trailing
 * bytes, values `record` could not have produced, a batch at or after `offset`) throws a
 * WeirError CORRUPT_STORE naming `path`, and nothing else.
 */
export function decodeProducerSnapshot(
  path: string,
  offset: bigint,
  bytes: Uint8Array,
): ProducerStateEntry[] {
  const reader = new SnapshotReader(path, bytes);
  const version = reader.int16();
  if (version !== PRODUCER_SNAPSHOT_VERSION) {
    throw corruptSnapshot(path, `version ${version}, expected ${PRODUCER_SNAPSHOT_VERSION}`);
  }
  const storedCrc = reader.uint32();
  const computedCrc = crc32c(bytes.subarray(CRC_COVERS_FROM));
  if (storedCrc !== computedCrc) {
    throw corruptSnapshot(path, `CRC ${storedCrc} does not match its content's ${computedCrc}`);
  }
  const count = reader.int32();
  // Checked before reading any producer, so a wild count fails at once.
  if (count < 0 || count > reader.remaining / MIN_ENTRY_BYTES) {
    throw corruptSnapshot(path, `${count} producers cannot fit in ${reader.remaining} bytes`);
  }
  const entries: ProducerStateEntry[] = [];
  const seen = new Set<bigint>();
  for (let i = 0; i < count; i++) {
    const entry = readEntry(reader);
    const problem = producerEntryProblem(entry) ?? entryOffsetProblem(entry, offset);
    if (problem !== undefined) {
      throw corruptSnapshot(path, `producer ${entry.producerId}: ${problem}`);
    }
    if (seen.has(entry.producerId)) {
      throw corruptSnapshot(path, `producer ${entry.producerId} appears twice`);
    }
    seen.add(entry.producerId);
    entries.push(entry);
  }
  if (reader.remaining > 0) {
    throw corruptSnapshot(path, `${reader.remaining} bytes after the last producer`);
  }
  return entries;
}

function readEntry(reader: SnapshotReader): ProducerStateEntry {
  const producerId = reader.int64();
  const producerEpoch = reader.int16();
  const count = reader.int8();
  if (count < 1 || count > BATCHES_RETAINED_PER_PRODUCER) {
    throw reader.corrupt(
      `producer ${producerId} has ${count} batches, expected 1 to ${BATCHES_RETAINED_PER_PRODUCER}`,
    );
  }
  const batches: BatchMetadata[] = [];
  for (let i = 0; i < count; i++) {
    batches.push({
      firstSequence: reader.int32(),
      lastSequence: reader.int32(),
      firstOffset: reader.int64(),
      lastOffset: reader.int64(),
    });
  }
  return { producerId, producerEpoch, batches };
}

/** A snapshot at `offset` describes the log below it: no batch of it may end at or after it. */
function entryOffsetProblem(entry: ProducerStateEntry, offset: bigint): string | undefined {
  const last = entry.batches.at(-1);
  if (last === undefined || last.lastOffset < offset) return undefined;
  return `its batch ends at offset ${last.lastOffset}, not below the snapshot's offset ${offset}`;
}

/** Reads big-endian fields, throwing CORRUPT_STORE instead of reading past the end. */
class SnapshotReader {
  private readonly view: DataView;
  private position = 0;

  constructor(
    private readonly path: string,
    bytes: Uint8Array,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.view.byteLength - this.position;
  }

  int8(): number {
    return this.view.getInt8(this.advance(1));
  }
  int16(): number {
    return this.view.getInt16(this.advance(2));
  }
  int32(): number {
    return this.view.getInt32(this.advance(4));
  }
  uint32(): number {
    return this.view.getUint32(this.advance(4));
  }
  int64(): bigint {
    return this.view.getBigInt64(this.advance(8));
  }

  corrupt(problem: string): WeirError {
    return corruptSnapshot(this.path, problem);
  }

  /** The position of the next `size` bytes, after checking they are there. */
  private advance(size: number): number {
    if (this.remaining < size) {
      throw this.corrupt(`ends at byte ${this.view.byteLength}, in the middle of a field`);
    }
    const at = this.position;
    this.position += size;
    return at;
  }
}

function corruptSnapshot(path: string, problem: string): WeirError {
  return new WeirError(ErrorCode.CORRUPT_STORE, `producer snapshot ${path} is corrupt: ${problem}`);
}

/** Writes the snapshot at `offset` into the log directory `dir`, atomically. */
export async function writeProducerSnapshot(
  dir: string,
  offset: bigint,
  entries: readonly ProducerStateEntry[],
): Promise<void> {
  for (const entry of entries) {
    const problem = entryOffsetProblem(entry, offset);
    assert(
      problem === undefined,
      () => `snapshot at ${offset}, producer ${entry.producerId}: ${problem}`,
    );
  }
  await writeFileAtomically(
    join(dir, producerSnapshotFileName(offset)),
    encodeProducerSnapshot(entries),
  );
}

/** The snapshot at `offset` in `dir`; CORRUPT_STORE if it is not valid, KAFKA_STORAGE_ERROR if unreadable. */
export async function readProducerSnapshot(dir: string, offset: bigint): Promise<ProducerSnapshot> {
  const path = join(dir, producerSnapshotFileName(offset));
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw storageError('read', path, error);
  }
  return { offset, entries: decodeProducerSnapshot(path, offset, bytes) };
}

/**
 * The offsets of the snapshots in `dir`, oldest first. Other files are not snapshots: segments,
 * checkpoints, and `<offset>.snapshot.tmp` left by a crash during a write (Log.open removes those).
 */
export async function listProducerSnapshotOffsets(dir: string): Promise<bigint[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw storageError('list', dir, error);
  }
  return names
    .map((name) => SNAPSHOT_FILE_NAME.exec(name)?.[1])
    .filter((digits) => digits !== undefined)
    .map((digits) => BigInt(digits))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Deletes the snapshots in `dir` whose offset matches, then fsyncs the directory: a deletion
 * that a power loss undid could bring back a snapshot of records the log no longer has. Returns
 * the offsets deleted, oldest first.
 */
export async function deleteProducerSnapshots(
  dir: string,
  shouldDelete: (offset: bigint) => boolean,
): Promise<bigint[]> {
  const deleted = (await listProducerSnapshotOffsets(dir)).filter(shouldDelete);
  for (const offset of deleted) {
    const path = join(dir, producerSnapshotFileName(offset));
    try {
      await unlink(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        throw storageError('delete', path, error);
    }
  }
  if (deleted.length > 0) {
    try {
      await syncDirectory(dir);
    } catch (error) {
      throw storageError('sync', dir, error);
    }
  }
  return deleted;
}

/**
 * The newest valid snapshot at or below `logEndOffset` (Kafka's loadProducerState): snapshots
 * above it describe a tail the log lost in a crash and are deleted; a corrupt one is deleted and
 * the next older one tried. Undefined when none is left: the caller replays the whole log.
 */
export async function loadNewestProducerSnapshot(
  dir: string,
  logEndOffset: bigint,
): Promise<ProducerSnapshot | undefined> {
  await deleteProducerSnapshots(dir, (offset) => offset > logEndOffset);
  const offsets = await listProducerSnapshotOffsets(dir);
  for (const offset of offsets.reverse()) {
    try {
      return await readProducerSnapshot(dir, offset);
    } catch (error) {
      if (!isWeirError(error, ErrorCode.CORRUPT_STORE)) throw error;
      await deleteProducerSnapshots(dir, (other) => other === offset);
    }
  }
  return undefined;
}
