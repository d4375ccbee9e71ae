import { ErrorCode, isWeirError, proto } from '@weir/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  changeBroker,
  changePartition,
  partition,
  producerIds,
  registerBroker,
  removeTopic,
  topic,
  topicConfig,
} from '../test/builders.js';
import { METADATA_RECORD_VERSION, decodeRecord, encodeRecord } from './records.js';

describe('metadata record codec', () => {
  it('round-trips every kind of record', () => {
    const records = [
      registerBroker(1, 2n ** 60n, { rack: 'r1' }),
      changeBroker(1, 7n, { fenced: true }),
      changeBroker(1, 7n, { inControlledShutdown: true }),
      topic('orders'),
      partition('id-orders', 3, [1, 2, 3], { isr: [1, 2], leader: 2, leaderEpoch: 4 }),
      changePartition('id-orders', 3, { leader: -1 }),
      changePartition('id-orders', 3, { isr: [], replicas: [4, 5] }),
      removeTopic('id-orders'),
      topicConfig('orders', 'retention.ms', '1000'),
      topicConfig('orders', 'retention.ms', undefined),
      producerIds(2, 2n ** 62n, 1000),
    ];
    for (const record of records) {
      expect(decodeRecord(encodeRecord(record))).toEqual(record);
    }
  });

  it('keeps "unchanged" apart from empty and zero values in change records', () => {
    const unchanged = decodeRecord(encodeRecord(changePartition('t', 0, {})));
    const emptied = decodeRecord(encodeRecord(changePartition('t', 0, { isr: [], leader: 0 })));
    expect(unchanged.record).toMatchObject({ value: { leader: undefined, isr: undefined } });
    expect(emptied.record).toMatchObject({ value: { leader: 0, isr: { brokerIds: [] } } });
  });

  it('refuses an unknown version with INVALID_RECORD', () => {
    const future = proto.weir.metadata.MetadataRecord.encode({
      version: METADATA_RECORD_VERSION + 1,
      record: { $case: 'removeTopic', value: { topicId: 'x' } },
    }).finish();
    expect(() => decodeRecord(future)).toThrowError(/INVALID_RECORD: .*version 2/);
    expect(() => encodeRecord({ ...topic('a'), version: 0 })).toThrowError(/INVALID_RECORD/);
  });

  it('refuses an empty envelope with INVALID_RECORD', () => {
    expect(() => decodeRecord(new Uint8Array())).toThrowError(/INVALID_RECORD/);
    const noRecord = proto.weir.metadata.MetadataRecord.encode({ version: 1 }).finish();
    expect(() => decodeRecord(noRecord)).toThrowError(/INVALID_RECORD: .*holds no record/);
  });

  it('refuses truncated bytes with CORRUPT_MESSAGE', () => {
    const bytes = encodeRecord(partition('id-orders', 0, [1, 2, 3]));
    expect(() => decodeRecord(bytes.subarray(0, bytes.length - 3))).toThrowError(/CORRUPT_MESSAGE/);
  });

  it('throws nothing but WeirError on arbitrary bytes', () => {
    const valid = encodeRecord(partition('id-orders', 1, [1, 2, 3], { leader: 2 }));
    const mutated = fc
      .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
        maxLength: 4,
      })
      .map((edits) => {
        const bytes = Uint8Array.from(valid);
        for (const [at, value] of edits) bytes[at] = value;
        return bytes;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated), (bytes) => {
        try {
          decodeRecord(bytes);
        } catch (error) {
          expect(isWeirError(error)).toBe(true);
          expect([ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD]).toContain(
            (error as { code: ErrorCode }).code,
          );
        }
      }),
      { numRuns: 2000 },
    );
  });
});
