// Snapshots of the metadata image (KIP-630): the records that rebuild the image from an empty
// one, in a `MetadataSnapshot` protobuf message. Writing records rather than a dump of the
// image's maps means replay is the only code that builds an image, so a snapshot is held to
// every invariant a log record is.
import { ErrorCode, WeirError, isWeirError, proto } from '@weir/protocol';
import { MetadataImage } from './image.js';
import {
  type MetadataRecord,
  checkRecordEnvelope,
  decodeMessage,
  metadataRecord,
} from './records.js';

/** The snapshot layout this code writes and the only one it reads. */
export const METADATA_SNAPSHOT_VERSION = 1;

/**
 * The records that rebuild `image` from `MetadataImage.EMPTY`, in a deterministic order:
 * brokers by id, topics by name each followed by its partitions by id, configs by resource and
 * name, then the last producer id block. Equal images give equal record lists.
 */
export function snapshotRecords(image: MetadataImage): MetadataRecord[] {
  const records: MetadataRecord[] = [];
  for (const broker of sortedValues(image.brokers, (a, b) => a.brokerId - b.brokerId)) {
    records.push(
      metadataRecord({
        $case: 'registerBroker',
        value: {
          brokerId: broker.brokerId,
          incarnationId: broker.incarnationId,
          brokerEpoch: broker.brokerEpoch,
          endpoints: broker.endpoints.map((endpoint) => ({ ...endpoint })),
          rack: broker.rack,
          fenced: broker.fenced,
          inControlledShutdown: broker.inControlledShutdown,
        },
      }),
    );
  }
  for (const topic of sortedValues(image.topicsByName, (a, b) => compare(a.name, b.name))) {
    records.push(
      metadataRecord({ $case: 'topic', value: { name: topic.name, topicId: topic.topicId } }),
    );
    for (const partition of sortedValues(
      topic.partitions,
      (a, b) => a.partitionId - b.partitionId,
    )) {
      records.push(
        metadataRecord({
          $case: 'partition',
          value: { ...partition, replicas: [...partition.replicas], isr: [...partition.isr] },
        }),
      );
    }
  }
  const resources = sortedValues(
    image.configs,
    (a, b) => a.resourceType - b.resourceType || compare(a.resourceName, b.resourceName),
  );
  for (const { resourceType, resourceName, entries } of resources) {
    for (const name of [...entries.keys()].sort(compare)) {
      records.push(
        metadataRecord({
          $case: 'config',
          value: { resourceType, resourceName, name, value: entries.get(name) },
        }),
      );
    }
  }
  const block = image.producerIds.lastBlock;
  if (block !== undefined)
    records.push(metadataRecord({ $case: 'producerIdsBlock', value: { ...block } }));
  return records;
}

/** Encodes the image as a snapshot: its offset and the records that rebuild it. */
export function encodeSnapshot(image: MetadataImage): Uint8Array {
  return proto.weir.metadata.MetadataSnapshot.encode({
    version: METADATA_SNAPSHOT_VERSION,
    offset: image.offset,
    records: snapshotRecords(image),
  }).finish();
}

/**
 * Rebuilds an image from snapshot bytes. Throws WeirError only: CORRUPT_MESSAGE for bytes that
 * are not a snapshot, INVALID_RECORD for an unknown version, a bad record, or records that
 * break an invariant of the image.
 */
export function decodeSnapshot(bytes: Uint8Array): MetadataImage {
  const snapshot = decodeMessage(proto.weir.metadata.MetadataSnapshot, bytes, 'metadata snapshot');
  if (snapshot.version !== METADATA_SNAPSHOT_VERSION) {
    throw new WeirError(
      ErrorCode.INVALID_RECORD,
      `metadata snapshot version ${snapshot.version} is not supported (this node reads version ${METADATA_SNAPSHOT_VERSION})`,
    );
  }
  for (const record of snapshot.records) checkRecordEnvelope(record);
  if (snapshot.offset === -1n) {
    if (snapshot.records.length > 0) {
      throw new WeirError(ErrorCode.INVALID_RECORD, 'metadata snapshot at offset -1 holds records');
    }
    return MetadataImage.EMPTY;
  }
  if (snapshot.offset < 0n) {
    throw new WeirError(
      ErrorCode.INVALID_RECORD,
      `metadata snapshot offset ${snapshot.offset} is negative`,
    );
  }
  try {
    return MetadataImage.EMPTY.apply(snapshot.records, snapshot.offset).image;
  } catch (error) {
    // In a snapshot, a record that breaks an invariant is bad data, not a bug of this node.
    if (!isWeirError(error, ErrorCode.ILLEGAL_STATE)) throw error;
    throw new WeirError(ErrorCode.INVALID_RECORD, `metadata snapshot: ${error.message}`, {
      cause: error,
    });
  }
}

function sortedValues<T>(map: ReadonlyMap<unknown, T>, order: (a: T, b: T) => number): T[] {
  return [...map.values()].sort(order);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
