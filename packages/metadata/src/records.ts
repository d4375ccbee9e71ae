// The metadata records: the generated protobuf types (proto/weir/metadata/metadata.proto) used
// as they are, plus the envelope's version check and a codec that only ever throws WeirError.
import { ErrorCode, WeirError, proto } from '@weir/protocol';

const generated = proto.weir.metadata;

export type MetadataRecord = proto.weir.metadata.MetadataRecord;
export type RegisterBrokerRecord = proto.weir.metadata.RegisterBrokerRecord;
export type BrokerRegistrationChangeRecord = proto.weir.metadata.BrokerRegistrationChangeRecord;
export type TopicRecord = proto.weir.metadata.TopicRecord;
export type PartitionRecord = proto.weir.metadata.PartitionRecord;
export type PartitionChangeRecord = proto.weir.metadata.PartitionChangeRecord;
export type RemoveTopicRecord = proto.weir.metadata.RemoveTopicRecord;
export type ConfigRecord = proto.weir.metadata.ConfigRecord;
export type ProducerIdsBlockRecord = proto.weir.metadata.ProducerIdsBlockRecord;
export type BrokerEndpoint = proto.weir.metadata.BrokerEndpoint;
export const ConfigResourceType = generated.ConfigResourceType;
export type ConfigResourceType = proto.weir.metadata.ConfigResourceType;

/** The `oneof record` of the envelope: `{ $case: 'topic', value: TopicRecord }` and so on. */
export type MetadataRecordBody = NonNullable<MetadataRecord['record']>;
/** The kinds of record: `'registerBroker' | 'topic' | ...`. */
export type MetadataRecordKind = MetadataRecordBody['$case'];

/**
 * The record version this code writes and the only one it replays. Version 0 is never written,
 * so an empty payload (which protobuf decodes as all defaults) is refused, not replayed.
 */
export const METADATA_RECORD_VERSION = 1;

/** No broker: the leader of a partition that has none (Kafka's -1). */
export const NO_LEADER = -1;

/** Wraps a record body in the versioned envelope the log stores. */
export function metadataRecord(body: MetadataRecordBody): MetadataRecord {
  return { version: METADATA_RECORD_VERSION, record: body };
}

/**
 * Checks the envelope: a known version and exactly one record. Replay calls it on every record,
 * so a record built in memory is held to the same rule as one read from the log.
 */
export function checkRecordEnvelope(record: MetadataRecord): MetadataRecordBody {
  if (record.version !== METADATA_RECORD_VERSION) {
    throw new WeirError(
      ErrorCode.INVALID_RECORD,
      `metadata record version ${record.version} is not supported (this node replays version ${METADATA_RECORD_VERSION}); upgrade the node`,
    );
  }
  if (record.record === undefined) {
    throw new WeirError(ErrorCode.INVALID_RECORD, 'metadata record holds no record');
  }
  return record.record;
}

/** Encodes one record as the bytes of one metadata log entry. */
export function encodeRecord(record: MetadataRecord): Uint8Array {
  checkRecordEnvelope(record);
  return generated.MetadataRecord.encode(record).finish();
}

/**
 * Decodes one metadata log entry. Throws WeirError only: CORRUPT_MESSAGE for bytes that are not
 * a protobuf message, INVALID_RECORD for an unknown version or an empty envelope.
 */
export function decodeRecord(bytes: Uint8Array): MetadataRecord {
  const record = decodeMessage(generated.MetadataRecord, bytes, 'metadata record');
  checkRecordEnvelope(record);
  return record;
}

/** Runs a generated decoder, turning whatever it throws on bad bytes into CORRUPT_MESSAGE. */
export function decodeMessage<T>(
  codec: { decode(input: Uint8Array): T },
  bytes: Uint8Array,
  what: string,
): T {
  try {
    return codec.decode(bytes);
  } catch (error) {
    throw new WeirError(
      ErrorCode.CORRUPT_MESSAGE,
      `${what} of ${bytes.length} bytes is not valid protobuf: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}
