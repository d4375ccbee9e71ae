// How metadata records ride in Raft log entries: one entry holds the whole batch of records one
// controller operation writes, so that a topic and its partitions, or a fencing and the
// leadership moves it causes, become visible together or not at all (Kafka's atomic record
// batches, KIP-868). The entry's data is the records, each as a 4-byte big-endian length followed
// by the record's protobuf bytes (`encodeRecord`).
//
// A RegisterBroker record's epoch is the offset of its entry (KIP-631), which is known only once
// the entry is in the log. The controller writes it as 0 and replay stamps the entry's index in,
// the same on every voter because the index is.

import { type MetadataRecord, decodeRecord, encodeRecord } from '@weir/metadata';
import { ErrorCode, WeirError } from '@weir/protocol';

const LENGTH_BYTES = 4;
/** The broker epoch a RegisterBroker record carries in the log: "the offset of this entry". */
export const BROKER_EPOCH_FROM_OFFSET = 0n;

/** Encodes a batch of records as the data of one metadata log entry. */
export function encodeMetadataEntry(records: readonly MetadataRecord[]): Uint8Array {
  const encoded = records.map((record) => encodeRecord(record));
  const size = encoded.reduce((total, bytes) => total + LENGTH_BYTES + bytes.length, 0);
  const data = new Uint8Array(size);
  const view = new DataView(data.buffer);
  let position = 0;
  for (const bytes of encoded) {
    view.setUint32(position, bytes.length);
    data.set(bytes, position + LENGTH_BYTES);
    position += LENGTH_BYTES + bytes.length;
  }
  return data;
}

/**
 * Decodes the records of the entry at `offset`, with RegisterBroker epochs written as
 * BROKER_EPOCH_FROM_OFFSET replaced by `offset`. Throws WeirError CORRUPT_MESSAGE for framing
 * that does not add up, and what decodeRecord throws for a bad record.
 */
export function decodeMetadataEntry(data: Uint8Array, offset: bigint): MetadataRecord[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const records: MetadataRecord[] = [];
  let position = 0;
  while (position < data.length) {
    if (position + LENGTH_BYTES > data.length) throw corrupt(offset, position, data.length);
    const length = view.getUint32(position);
    const start = position + LENGTH_BYTES;
    if (start + length > data.length) throw corrupt(offset, position, data.length);
    records.push(stampBrokerEpoch(decodeRecord(data.subarray(start, start + length)), offset));
    position = start + length;
  }
  return records;
}

function stampBrokerEpoch(record: MetadataRecord, offset: bigint): MetadataRecord {
  const body = record.record;
  if (body?.$case !== 'registerBroker') return record;
  if (body.value.brokerEpoch !== BROKER_EPOCH_FROM_OFFSET) return record;
  return { ...record, record: { ...body, value: { ...body.value, brokerEpoch: offset } } };
}

function corrupt(offset: bigint, position: number, length: number): WeirError {
  return new WeirError(
    ErrorCode.CORRUPT_MESSAGE,
    `metadata log entry ${offset}: a record length at byte ${position} runs past the entry's ${length} bytes`,
  );
}
