import { MetadataImage, metadataRecord } from '@weir/metadata';
import { ErrorCode } from '@weir/protocol';
import { describe, expect, it } from 'vitest';
import {
  BROKER_EPOCH_FROM_OFFSET,
  decodeMetadataEntry,
  encodeMetadataEntry,
} from './metadata-entry.js';

const register = (brokerEpoch: bigint) =>
  metadataRecord({
    $case: 'registerBroker',
    value: {
      brokerId: 1,
      incarnationId: 'i',
      brokerEpoch,
      endpoints: [],
      fenced: true,
      inControlledShutdown: false,
    },
  });
const topic = metadataRecord({ $case: 'topic', value: { name: 't', topicId: 'id' } });

describe('metadata log entries', () => {
  it('round-trip a batch of records and stamp the entry offset as broker epoch', () => {
    const data = encodeMetadataEntry([register(BROKER_EPOCH_FROM_OFFSET), topic]);
    const records = decodeMetadataEntry(data, 7n);
    expect(records).toEqual([register(7n), topic]);
    const { image } = MetadataImage.EMPTY.apply(records, 7n);
    expect(image.broker(1)?.brokerEpoch).toBe(7n);
  });

  it('keeps an explicit broker epoch and decodes an empty entry as no records', () => {
    expect(decodeMetadataEntry(encodeMetadataEntry([register(3n)]), 7n)).toEqual([register(3n)]);
    expect(decodeMetadataEntry(new Uint8Array(0), 1n)).toEqual([]);
  });

  it('refuses framing that runs past the entry with CORRUPT_MESSAGE', () => {
    const data = encodeMetadataEntry([topic]);
    expect(() => decodeMetadataEntry(data.subarray(0, data.length - 1), 2n)).toThrow(
      expect.objectContaining({ code: ErrorCode.CORRUPT_MESSAGE }),
    );
    expect(() => decodeMetadataEntry(new Uint8Array([0, 0]), 2n)).toThrow(
      expect.objectContaining({ code: ErrorCode.CORRUPT_MESSAGE }),
    );
  });
});
