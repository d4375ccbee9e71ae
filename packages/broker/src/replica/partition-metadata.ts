// The topic id a partition's log folder belongs to (Kafka's `partition.metadata`, KIP-516).
// Folders are named `<topic>-<partition>`, so a topic deleted while this broker was down and
// created again under the same name would find the old topic's folder. Its leader epochs start
// again at 0, so KIP-320's divergence check cannot tell the old records from the new ones: the
// broker must know, by id, that the folder is another topic's and start it afresh.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, WeirError } from '@weir/protocol';
import { storageError, writeFileAtomically } from '@weir/storage';

export const PARTITION_METADATA_FILE = 'partition.metadata';

const VERSION = 0;
/** Topic ids are UUIDs today; anything printable without spaces fits the format. */
const TOPIC_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** `version: 0\ntopic_id: <id>\n`, as Kafka writes it. */
export function encodePartitionMetadata(topicId: string): string {
  if (!TOPIC_ID.test(topicId)) {
    throw new WeirError(
      ErrorCode.INVALID_REQUEST,
      `topic id ${JSON.stringify(topicId)} cannot be stored`,
    );
  }
  return `version: ${VERSION}\ntopic_id: ${topicId}\n`;
}

/** The topic id of a `partition.metadata` file's content; CORRUPT_STORE naming `path` if bad. */
export function decodePartitionMetadata(path: string, content: string): string {
  const match = /^version: (\d+)\ntopic_id: ([^\n]*)\n$/.exec(content);
  const corrupt = (problem: string) =>
    new WeirError(ErrorCode.CORRUPT_STORE, `${path} is corrupt: ${problem}`);
  if (match === null) throw corrupt('expected "version: 0" and "topic_id: <id>" lines');
  if (match[1] !== String(VERSION)) throw corrupt(`version ${match[1]} is not ${VERSION}`);
  const topicId = match[2]!;
  if (!TOPIC_ID.test(topicId)) throw corrupt(`topic id ${JSON.stringify(topicId)} is not valid`);
  return topicId;
}

/** The topic id stored in a log folder, or undefined when the folder has none yet. */
export async function readPartitionMetadata(logDir: string): Promise<string | undefined> {
  const path = join(logDir, PARTITION_METADATA_FILE);
  let content: string;
  try {
    content = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw storageError('read', path, error);
  }
  return decodePartitionMetadata(path, content);
}

export function writePartitionMetadata(logDir: string, topicId: string): Promise<void> {
  return writeFileAtomically(
    join(logDir, PARTITION_METADATA_FILE),
    encodePartitionMetadata(topicId),
  );
}
