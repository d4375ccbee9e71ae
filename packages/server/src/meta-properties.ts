// `<data.dir>/meta.properties`, as in Kafka's KRaft mode (`kafka-storage format` writes it): the
// cluster id and node id a data dir belongs to. A node refuses to start on a data dir of another
// node or another cluster, which would otherwise mix logs of unrelated partitions or clusters.
// Weir formats a data dir on the first start given --cluster-id instead of a separate command.

import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ErrorCode, WeirError } from '@weir/protocol';
import { storageError, syncDirectory, writeFileAtomically } from '@weir/storage';
import { formatProperties, parseProperties } from './config/properties.js';
import { CLUSTER_ID_PATTERN } from './config/schema.js';

export const META_PROPERTIES_FILE = 'meta.properties';
/** Kafka's meta.properties version for KRaft data dirs (version 0 was ZooKeeper mode). */
export const META_PROPERTIES_VERSION = 1;

export interface MetaProperties {
  readonly clusterId: string;
  readonly nodeId: number;
}

export interface EnsureMetaPropertiesOptions {
  readonly dataDir: string;
  readonly nodeId: number;
  /** Formats an unformatted data dir; when given for a formatted one it must match. */
  readonly clusterId?: string | undefined;
}

/**
 * Checks that `dataDir` belongs to this node (and cluster, when `clusterId` is given), formatting
 * it first when it has no meta.properties and `clusterId` is given. Returns the stored ids.
 * Throws WeirError INVALID_CONFIG (unformatted without a cluster id, or another node's data dir),
 * INCONSISTENT_CLUSTER_ID, CORRUPT_STORE (an unreadable file) or KAFKA_STORAGE_ERROR (I/O).
 */
export async function ensureMetaProperties(
  options: EnsureMetaPropertiesOptions,
): Promise<MetaProperties> {
  const { dataDir, nodeId, clusterId } = options;
  if (clusterId !== undefined && !CLUSTER_ID_PATTERN.test(clusterId)) {
    throw new WeirError(
      ErrorCode.INVALID_CONFIG,
      `cluster id ${JSON.stringify(clusterId)} must be 1-64 characters from [A-Za-z0-9._-]`,
    );
  }
  const path = join(dataDir, META_PROPERTIES_FILE);
  const stored = await readMetaProperties(dataDir);
  if (stored === undefined) {
    if (clusterId === undefined) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `data dir ${dataDir} is not formatted (it has no ${META_PROPERTIES_FILE}): pass --cluster-id to format it (weir dev picks one)`,
      );
    }
    const meta = { clusterId, nodeId };
    await createDirectory(dataDir);
    await writeFileAtomically(path, encodeMetaProperties(meta));
    return meta;
  }
  if (stored.nodeId !== nodeId) {
    throw new WeirError(
      ErrorCode.INVALID_CONFIG,
      `${path} belongs to node ${stored.nodeId}, but this is node ${nodeId}: give node ${nodeId} its own data dir (--data-dir), or start it with --node-id ${stored.nodeId}`,
    );
  }
  if (clusterId !== undefined && stored.clusterId !== clusterId) {
    throw new WeirError(
      ErrorCode.INCONSISTENT_CLUSTER_ID,
      `${path} belongs to cluster ${stored.clusterId}, but --cluster-id is ${clusterId}: use a data dir of cluster ${clusterId}, or leave out --cluster-id to join ${stored.clusterId}`,
    );
  }
  return stored;
}

/** The ids stored in `dataDir`, or undefined when it has no meta.properties. */
export async function readMetaProperties(dataDir: string): Promise<MetaProperties | undefined> {
  const path = join(dataDir, META_PROPERTIES_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw storageError('read', path, error);
  }
  return decodeMetaProperties(text, path);
}

export function encodeMetaProperties(meta: MetaProperties): string {
  return formatProperties(
    [
      ['version', String(META_PROPERTIES_VERSION)],
      ['cluster.id', meta.clusterId],
      ['node.id', String(meta.nodeId)],
    ],
    ['written by weir'],
  );
}

/** Parses a meta.properties file; throws CORRUPT_STORE naming `path` when it is not one. */
export function decodeMetaProperties(text: string, path: string): MetaProperties {
  let entries;
  try {
    entries = parseProperties(text, path);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw corrupt(path, message.replace(/^INVALID_CONFIG: /, ''), error);
  }
  // Unknown keys are kept for Kafka's sake (it adds directory.id), so only ours are checked.
  const values = new Map(entries.map(({ key, value }) => [key, value]));
  const version = values.get('version');
  if (version !== String(META_PROPERTIES_VERSION)) {
    throw corrupt(path, `version is ${describe(version)}, expected ${META_PROPERTIES_VERSION}`);
  }
  const clusterId = values.get('cluster.id');
  if (clusterId === undefined || !CLUSTER_ID_PATTERN.test(clusterId)) {
    throw corrupt(path, `cluster.id is ${describe(clusterId)}`);
  }
  const nodeIdText = values.get('node.id');
  const nodeId = Number(nodeIdText);
  if (
    nodeIdText === undefined ||
    !/^(0|[1-9][0-9]*)$/.test(nodeIdText) ||
    !Number.isSafeInteger(nodeId)
  ) {
    throw corrupt(path, `node.id is ${describe(nodeIdText)}`);
  }
  return { clusterId, nodeId };
}

function describe(value: string | undefined): string {
  return value === undefined ? 'missing' : JSON.stringify(value);
}

function corrupt(path: string, problem: string, cause?: unknown): WeirError {
  return new WeirError(
    ErrorCode.CORRUPT_STORE,
    `${path} is not a valid ${META_PROPERTIES_FILE} (${problem}): restore it, or move the data dir away to start this node empty`,
    { cause },
  );
}

/** Creates `dir` and its missing parents, making each new directory entry durable. */
async function createDirectory(dir: string): Promise<void> {
  try {
    const first = await mkdir(dir, { recursive: true });
    if (first === undefined) return;
    // mkdir created `first` and everything below it down to `dir`: sync each one's parent.
    const top = resolve(first);
    for (let created = resolve(dir); ; created = dirname(created)) {
      await syncDirectory(dirname(created));
      if (created === top) break;
    }
  } catch (error) {
    throw storageError('create', dir, error);
  }
}
