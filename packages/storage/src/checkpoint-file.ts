// Small files that must never be torn: the leader-epoch checkpoint, the recovery point, the log
// start offset. Kafka's `CheckpointFile` writes `<file>.tmp`, forces it to disk and renames it
// over the old file (`Utils.atomicMoveWithFallback`), which also fsyncs the directory so that the
// rename itself survives a power loss. A crash therefore leaves either the old or the new file.

import type { FileHandle } from 'node:fs/promises';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ErrorCode, WeirError, assert } from '@weir/protocol';

/** The version line of every checkpoint file Weir writes (Kafka's checkpoint files use 0 too). */
export const CHECKPOINT_VERSION = 0;

/** Kafka's largest offset (`Long.MaxValue`): offsets are signed 64-bit on the wire. */
const MAX_OFFSET = (1n << 63n) - 1n;

/** An I/O failure, reported the way Kafka reports a failing log directory. */
export function storageError(action: string, path: string, cause: unknown): WeirError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new WeirError(ErrorCode.KAFKA_STORAGE_ERROR, `could not ${action} ${path}: ${reason}`, {
    cause,
  });
}

/** A stored file that cannot be parsed; names the file and what is wrong with it. */
export function corruptFileError(path: string, problem: string): WeirError {
  return new WeirError(ErrorCode.CORRUPT_STORE, `${path} is corrupt: ${problem}`);
}

/** The last write queued per file, so that writes to one path never share `<path>.tmp`. */
const queuedWrites = new Map<string, Promise<void>>();

/**
 * Replaces `path` with `data` so that a crash at any point leaves the old or the new content.
 * Writes to the same path from this process run one after another, in call order (two at once
 * would truncate each other's `<path>.tmp`, and one could rename the other's half-written file).
 */
export function writeFileAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const key = resolve(path);
  const write = (queuedWrites.get(key) ?? Promise.resolve()).then(() => replaceFile(path, data));
  const settled = write.catch(() => undefined);
  queuedWrites.set(key, settled);
  void settled.then(() => {
    if (queuedWrites.get(key) === settled) queuedWrites.delete(key);
  });
  return write;
}

async function replaceFile(path: string, data: string | Uint8Array): Promise<void> {
  const tmpPath = `${path}.tmp`;
  try {
    await writeAndSync(tmpPath, data);
    await rename(tmpPath, path);
    await syncDirectory(dirname(path));
  } catch (error) {
    await rm(tmpPath, { force: true }).catch(() => undefined);
    throw storageError('write', path, error);
  }
}

async function writeAndSync(path: string, data: string | Uint8Array): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a rename or a file creation in `dir` durable (POSIX needs an fsync of the directory). */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } finally {
    await handle?.close();
  }
}

export async function writeCheckpointFile(path: string, content: string): Promise<void> {
  await writeFileAtomically(path, content);
}

/** The file's content, or undefined when it does not exist (a partition that never wrote one). */
export async function readCheckpointFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw storageError('read', path, error);
  }
}

/**
 * Kafka's `CheckpointFile` layout, shared by every checkpoint: a version line, a line with the
 * number of entries, then one entry per line, each line ending in a newline.
 */
export function encodeCheckpoint(version: number, entries: readonly string[]): string {
  return [String(version), String(entries.length), ...entries].map((line) => `${line}\n`).join('');
}

/** The entry lines of a checkpoint; throws CORRUPT_STORE naming `path` when the layout is wrong. */
export function decodeCheckpoint(path: string, content: string, expectedVersion: number): string[] {
  if (content === '') throw corruptFileError(path, 'the file is empty');
  const lines = content.split('\n');
  // A complete file ends with a newline, so the last split element is empty.
  if (lines.pop() !== '') throw corruptFileError(path, 'the last line has no newline');
  const [versionLine, countLine, ...entries] = lines;
  if (versionLine !== String(expectedVersion)) {
    throw corruptFileError(
      path,
      `version line is ${JSON.stringify(versionLine)}, expected ${expectedVersion}`,
    );
  }
  const count = countLine === undefined ? undefined : parseDecimal(countLine);
  if (count === undefined) {
    throw corruptFileError(path, `entry count line ${JSON.stringify(countLine)} is not a number`);
  }
  if (count !== BigInt(entries.length)) {
    throw corruptFileError(path, `declares ${count} entries but holds ${entries.length}`);
  }
  return entries;
}

/** A non-negative decimal integer without sign, padding or leading zeros; undefined otherwise. */
export function parseDecimal(text: string): bigint | undefined {
  return /^(0|[1-9][0-9]*)$/.test(text) ? BigInt(text) : undefined;
}

/** Parses an offset field of a checkpoint entry: 0 ≤ offset ≤ Long.MaxValue. */
export function parseOffsetField(path: string, text: string, what: string): bigint {
  const offset = parseDecimal(text);
  if (offset === undefined || offset > MAX_OFFSET) {
    throw corruptFileError(path, `${what} ${JSON.stringify(text)} is not a valid offset`);
  }
  return offset;
}

/**
 * A single-offset checkpoint (`recovery-point-checkpoint`, `log-start-offset-checkpoint`) in
 * the common layout: `0\n1\n<offset>\n`. Kafka keeps one such file per log directory with a line
 * per partition; Weir keeps one per partition folder, so it holds exactly one entry.
 */
export async function writeOffsetCheckpoint(path: string, offset: bigint): Promise<void> {
  assert(
    offset >= 0n && offset <= MAX_OFFSET,
    () => `checkpoint offset ${offset} for ${path} is outside [0, ${MAX_OFFSET}]`,
  );
  await writeCheckpointFile(path, encodeCheckpoint(CHECKPOINT_VERSION, [offset.toString()]));
}

/** The stored offset, or undefined when the file does not exist. */
export async function readOffsetCheckpoint(path: string): Promise<bigint | undefined> {
  const content = await readCheckpointFile(path);
  if (content === undefined) return undefined;
  const entries = decodeCheckpoint(path, content, CHECKPOINT_VERSION);
  if (entries.length !== 1) {
    throw corruptFileError(path, `holds ${entries.length} entries, expected exactly 1 offset`);
  }
  return parseOffsetField(path, entries[0] ?? '', 'offset');
}

/** One line of a multi-partition offset checkpoint. */
export interface TopicPartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

/** Kafka's topic naming rule (log-manager.ts keeps folders to it too). */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
const INT32_MAX = 0x7fff_ffff;

/**
 * A checkpoint with one `<topic> <partition> <offset>` line per partition, as Kafka's
 * `OffsetCheckpointFile` (`replication-offset-checkpoint`): one file for many partitions, so
 * that checkpointing them costs one write and one fsync, not one per partition.
 */
export function encodeTopicPartitionOffsets(entries: readonly TopicPartitionOffset[]): string {
  for (const { topic, partition, offset } of entries) {
    assert(
      TOPIC_NAME.test(topic) && isPartition(partition) && offset >= 0n && offset <= MAX_OFFSET,
      () => `checkpoint entry ${topic} ${partition} ${offset} is not valid`,
    );
  }
  return encodeCheckpoint(
    CHECKPOINT_VERSION,
    entries.map(({ topic, partition, offset }) => `${topic} ${partition} ${offset}`),
  );
}

/** The entries of such a checkpoint; CORRUPT_STORE naming `path` when anything is wrong. */
export function decodeTopicPartitionOffsets(path: string, content: string): TopicPartitionOffset[] {
  const seen = new Set<string>();
  return decodeCheckpoint(path, content, CHECKPOINT_VERSION).map((line, index) => {
    const fields = line.split(' ');
    const [topic = '', partitionText = '', offsetText = ''] = fields;
    const partition = parseDecimal(partitionText);
    if (fields.length !== 3 || !TOPIC_NAME.test(topic)) {
      throw corruptFileError(
        path,
        `entry ${index + 1} ${JSON.stringify(line)} is not "<topic> <partition> <offset>"`,
      );
    }
    if (partition === undefined || partition > BigInt(INT32_MAX)) {
      throw corruptFileError(
        path,
        `entry ${index + 1} has partition ${JSON.stringify(partitionText)}`,
      );
    }
    const key = `${topic} ${partition}`;
    if (seen.has(key)) throw corruptFileError(path, `${topic}-${partition} appears twice`);
    seen.add(key);
    return {
      topic,
      partition: Number(partition),
      offset: parseOffsetField(path, offsetText, `entry ${index + 1} offset`),
    };
  });
}

export async function writeTopicPartitionOffsets(
  path: string,
  entries: readonly TopicPartitionOffset[],
): Promise<void> {
  await writeCheckpointFile(path, encodeTopicPartitionOffsets(entries));
}

/** The stored entries, or undefined when the file does not exist. */
export async function readTopicPartitionOffsets(
  path: string,
): Promise<TopicPartitionOffset[] | undefined> {
  const content = await readCheckpointFile(path);
  return content === undefined ? undefined : decodeTopicPartitionOffsets(path, content);
}

function isPartition(partition: number): boolean {
  return Number.isInteger(partition) && partition >= 0 && partition <= INT32_MAX;
}
