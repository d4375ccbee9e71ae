import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, WeirError } from '../errors.js';
import { crc32c } from '../crc32c.js';
import { RecordBatchBuilder, type RecordInput } from './record-batch-builder.js';
import { LOG_OVERHEAD, RECORD_BATCH_OVERHEAD, RecordBatch, batchesIn } from './record-batch.js';

const fixedClock = () => 1_700_000_000_000n;

function build(
  records: RecordInput[],
  options: ConstructorParameters<typeof RecordBatchBuilder>[0] = {},
) {
  const builder = new RecordBatchBuilder({ clock: fixedClock, ...options });
  for (const record of records) builder.append(record);
  return builder.build();
}

function expectCorrupt(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).code).toBe(ErrorCode.CORRUPT_MESSAGE);
    return;
  }
  throw new Error('expected CORRUPT_MESSAGE');
}

const bytes = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
const nullableBytes = fc.option(bytes, { nil: null });
const timestamp = fc.bigInt({ min: 0n, max: 1n << 50n });
const recordArb = fc.record({
  key: nullableBytes,
  value: nullableBytes,
  headers: fc.array(fc.record({ key: fc.string({ maxLength: 16 }), value: nullableBytes }), {
    maxLength: 4,
  }),
  timestamp,
});
const compressionArb = fc.constantFrom('none' as const, 'gzip' as const);

describe('crc32c', () => {
  it('matches the CRC-32C check value from RFC 3720', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('continues a previous checksum', () => {
    const data = Buffer.from('hello, weir');
    expect(crc32c(data.subarray(5), crc32c(data.subarray(0, 5)))).toBe(crc32c(data));
  });
});

describe('RecordBatchBuilder and RecordBatch', () => {
  it('lays out the v2 header at Kafka offsets', () => {
    const batch = build(
      [
        { key: 'k', value: 'v', timestamp: 1000 },
        { value: 'w', timestamp: 1500 },
      ],
      {
        producerId: 7n,
        producerEpoch: 3,
        baseSequence: 42,
      },
    );
    expect(batch.readInt32BE(8)).toBe(batch.length - LOG_OVERHEAD);
    expect(batch.readInt8(16)).toBe(2);
    expect(batch.readUInt32BE(17)).toBe(crc32c(batch.subarray(21)));
    expect(batch.readInt32BE(23)).toBe(1); // lastOffsetDelta
    expect(batch.readBigInt64BE(27)).toBe(1000n);
    expect(batch.readBigInt64BE(35)).toBe(1500n);
    expect(batch.readBigInt64BE(43)).toBe(7n);
    expect(batch.readInt16BE(51)).toBe(3);
    expect(batch.readInt32BE(53)).toBe(42);
    expect(batch.readInt32BE(57)).toBe(2);
    const view = RecordBatch.validated(batch);
    expect(
      [...view.records()].map((r) => [
        r.offset,
        r.timestamp,
        r.key?.toString(),
        r.value?.toString(),
      ]),
    ).toEqual([
      [0n, 1000n, 'k', 'v'],
      [1n, 1500n, undefined, 'w'],
    ]);
  });

  it('round-trips arbitrary records, uncompressed and gzip', () => {
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 20 }),
        compressionArb,
        fc.bigInt({ min: 0n, max: (1n << 62n) - 1n }),
        (records, compression, baseOffset) => {
          const batch = RecordBatch.validated(build(records, { compression, baseOffset }));
          expect(batch.compression).toBe(compression);
          expect(batch.recordCount).toBe(records.length);
          expect(batch.lastOffset).toBe(baseOffset + BigInt(records.length - 1));
          const maxTimestamp = records.reduce(
            (max, r) => (r.timestamp > max ? r.timestamp : max),
            -1n,
          );
          expect(batch.maxTimestamp).toBe(maxTimestamp);
          const decoded = [...batch.records()];
          expect(decoded.length).toBe(records.length);
          decoded.forEach((record, i) => {
            const input = records[i]!;
            expect(record.offset).toBe(baseOffset + BigInt(i));
            expect(record.timestamp).toBe(input.timestamp);
            expect(record.key).toEqual(input.key);
            expect(record.value).toEqual(input.value);
            expect(record.headers).toEqual(input.headers);
          });
        },
      ),
    );
  });

  it('rewrites baseOffset and partitionLeaderEpoch in place without invalidating the CRC', () => {
    const bytes = build([{ value: 'a' }, { value: 'b' }]);
    const crcBefore = RecordBatch.view(bytes).crc;
    const batch = RecordBatch.view(bytes);
    batch.setBaseOffset(1234567890123n);
    batch.setPartitionLeaderEpoch(17);
    expect(batch.crc).toBe(crcBefore);
    expect(() => batch.validate()).not.toThrow();
    expect(batch.baseOffset).toBe(1234567890123n);
    expect(batch.partitionLeaderEpoch).toBe(17);
    expect([...batch.records()].map((r) => r.offset)).toEqual([1234567890123n, 1234567890124n]);
  });

  it('covers exactly bytes [21, end) with the CRC', () => {
    const original = build([{ key: 'key', value: 'value', headers: { h: 'x' } }]);
    for (let position = 0; position < original.length; position++) {
      const copy = Buffer.from(original);
      copy[position] = copy[position]! ^ 0x01;
      const coveredOrCrc = position >= 17; // the CRC field itself, then [21, end)
      const framingField = (position >= 8 && position < 12) || position === 16; // length, magic
      if (coveredOrCrc) {
        expectCorrupt(() => RecordBatch.validated(copy));
      } else if (!framingField) {
        expect(() => RecordBatch.validated(copy)).not.toThrow();
      }
    }
  });

  it('rejects every truncation of a valid batch', () => {
    const original = build([{ key: 'k', value: 'v'.repeat(100) }, { value: null }]);
    for (let length = 0; length < original.length; length++) {
      expectCorrupt(() => RecordBatch.validated(original.subarray(0, length)));
    }
  });

  it('rejects or consistently decodes any mutation, with typed errors only', () => {
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 5 }),
        compressionArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.boolean(),
        (records, compression, mutations, fixCrc) => {
          const bytes = build(records, { compression });
          for (const [position, value] of mutations) bytes[position % bytes.length] = value;
          // Also try mutations with a recomputed CRC, so the decoder itself is exercised.
          if (fixCrc && bytes.length >= RECORD_BATCH_OVERHEAD) {
            bytes.writeUInt32BE(crc32c(bytes.subarray(21)), 17);
          }
          let batch: RecordBatch;
          try {
            batch = RecordBatch.validated(bytes);
          } catch (error) {
            expect(error).toBeInstanceOf(WeirError);
            return;
          }
          try {
            const decoded = [...batch.records()];
            expect(decoded.length).toBe(batch.recordCount);
            // Decoding is a function of the bytes: a second pass gives the same records.
            expect([...batch.records()]).toEqual(decoded);
          } catch (error) {
            expect(error).toBeInstanceOf(WeirError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('refuses a records section that decompresses beyond the limit', () => {
    const batch = RecordBatch.validated(
      build([{ value: Buffer.alloc(100_000) }], { compression: 'gzip' }),
    );
    expect(batch.sizeInBytes).toBeLessThan(1000);
    expectCorrupt(() => [...batch.records({ maxDecompressedBytes: 10_000 })]);
  });

  it('refuses to build an empty batch', () => {
    expect(() => new RecordBatchBuilder().build()).toThrow(/at least one record/);
  });

  it('reports snappy as unsupported rather than corrupt', () => {
    const bytes = build([{ value: 'x' }]);
    bytes.writeInt16BE(2, 21); // snappy
    bytes.writeUInt32BE(crc32c(bytes.subarray(21)), 17);
    const batch = RecordBatch.validated(bytes);
    expect(batch.compression).toBe('snappy');
    expect(() => [...batch.records()]).toThrow(
      expect.objectContaining({ code: ErrorCode.UNSUPPORTED_COMPRESSION_TYPE }),
    );
  });
});

describe('batchesIn', () => {
  it('walks concatenated batches and stops at a partial tail when allowed', () => {
    const a = build([{ value: 'a' }], { baseOffset: 0n });
    const b = build([{ value: 'b' }, { value: 'c' }], { baseOffset: 1n });
    const all = Buffer.concat([a, b]);
    expect([...batchesIn(all, { validateCrc: true })].map((x) => x.baseOffset)).toEqual([0n, 1n]);
    const cut = all.subarray(0, all.length - 3);
    expect([...batchesIn(cut, { allowPartialTail: true })].map((x) => x.baseOffset)).toEqual([0n]);
    expectCorrupt(() => [...batchesIn(cut)]);
  });
});
