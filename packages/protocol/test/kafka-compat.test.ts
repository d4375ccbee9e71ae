// Byte compatibility of Weir's RecordBatch v2 codec with a real Kafka client's: KafkaJS 2.2.4's
// own record-batch encoder and decoder (its internal CommonJS modules, loaded with createRequire),
// not a second implementation of the format written for this test.
//
//   1. KafkaJS encodes → Weir validates (CRC range, framing) and decodes the same records.
//   2. Weir builds → KafkaJS decodes the same records; KafkaJS's CRC-32C agrees with the stored one.
//   3. Given identical inputs, both produce identical bytes (uncompressed), and for gzip the same
//      header and the same records section before compression.
//
// KafkaJS quirks the generators steer around (limits of KafkaJS, not of Weir or of the format):
//   - its encoder cannot write a null header value (Record's sizeOfHeaders calls
//     Buffer.byteLength(null), which throws), so null header values only go Weir → KafkaJS;
//   - it takes headers as an object, so it writes them grouped by key, in Object.keys order
//     (integer-like keys first, ascending), not in the order a caller listed them;
//   - its decoder folds headers into a plain object, so a header key that names an
//     Object.prototype property ("constructor", "__proto__", …) decodes wrongly;
//   - its decoder does not verify the CRC ("The library is currently not performing CRC
//     validations"), so the tests check it with KafkaJS's crc32C module over bytes [21, end).
import { gunzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  RECORD_BATCH_OVERHEAD,
  RecordBatch,
  RecordBatchBuilder,
  type TimestampType,
} from '../src/index.js';

// ---- KafkaJS internals, with the minimal types this test relies on -------------------------

type Int64 = bigint | number | string;

interface KafkaJsEncoder {
  readonly buffer: Buffer;
}

interface KafkaJsRecordInput {
  offsetDelta: number;
  timestampDelta: Int64;
  key: Buffer | string | null;
  value: Buffer | string | null;
  headers?: { [key: string]: Buffer | string | (Buffer | string)[] };
}

interface KafkaJsBatchInput {
  compression: number;
  firstOffset: Int64;
  firstTimestamp: Int64;
  maxTimestamp: Int64;
  partitionLeaderEpoch: number;
  lastOffsetDelta: number;
  transactional: boolean;
  producerId: Int64;
  producerEpoch: number;
  firstSequence: number;
  records: KafkaJsEncoder[];
}

interface KafkaJsDecoder {
  readonly buffer: Buffer;
  offset: number;
}

type KafkaJsDecodedHeaders = { [key: string]: Buffer | null | (Buffer | null)[] };

interface KafkaJsDecodedRecord {
  magicByte: number;
  attributes: number;
  timestamp: string;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: KafkaJsDecodedHeaders;
  isControlRecord: boolean;
  batchContext: unknown;
}

interface KafkaJsDecodedBatch {
  firstOffset: string;
  firstTimestamp: string;
  partitionLeaderEpoch: number;
  inTransaction: boolean;
  isControlBatch: boolean;
  lastOffsetDelta: number;
  producerId: string;
  producerEpoch: number;
  firstSequence: number;
  maxTimestamp: string;
  timestampType: number;
  records: KafkaJsDecodedRecord[];
}

const requireCjs = createRequire(import.meta.url);
const { RecordBatch: kafkaJsEncodeBatch } = requireCjs(
  'kafkajs/src/protocol/recordBatch/v0/index.js',
) as { RecordBatch: (batch: KafkaJsBatchInput) => Promise<KafkaJsEncoder> };
const kafkaJsEncodeRecord = requireCjs('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (
  record: KafkaJsRecordInput,
) => KafkaJsEncoder;
const kafkaJsDecodeBatch = requireCjs('kafkajs/src/protocol/recordBatch/v0/decoder.js') as (
  decoder: KafkaJsDecoder,
) => Promise<KafkaJsDecodedBatch>;
const KafkaJsDecoder = requireCjs('kafkajs/src/protocol/decoder.js') as new (
  buffer: Buffer,
) => KafkaJsDecoder;
const kafkaJsCrc32C = requireCjs('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (
  buffer: Buffer,
) => number;
const { Types: KafkaJsCompression } = requireCjs(
  'kafkajs/src/protocol/message/compression/index.js',
) as { Types: { None: number; GZIP: number } };
const KafkaJsTimestampTypes = requireCjs('kafkajs/src/protocol/timestampTypes.js') as {
  CREATE_TIME: number;
  LOG_APPEND_TIME: number;
};

// ---- One description of a batch, fed to either side ----------------------------------------

interface HeaderSpec {
  key: string;
  value: Buffer | null;
}

interface RecordSpec {
  key: Buffer | null;
  value: Buffer | null;
  headers: HeaderSpec[];
  timestamp: bigint;
}

interface BatchSpec {
  compression: 'none' | 'gzip';
  baseOffset: bigint;
  partitionLeaderEpoch: number;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
  transactional: boolean;
  timestampType: TimestampType;
  /** KafkaJS only: which timestamp is the batch's firstTimestamp. Kafka's Java producer (and
   * Weir) use the first record's; KafkaJS's producer uses the smallest. */
  firstTimestamp: 'first-record' | 'smallest';
  records: RecordSpec[];
}

const maxOf = (values: bigint[]): bigint => values.reduce((a, b) => (b > a ? b : a));
const minOf = (values: bigint[]): bigint => values.reduce((a, b) => (b < a ? b : a));

/** KafkaJS's header object for a header list: values grouped by key, on a null prototype so a
 * key such as "__proto__" is an ordinary property. */
function kafkaJsHeaders(headers: HeaderSpec[]): { [key: string]: Buffer[] } {
  const grouped = Object.create(null) as { [key: string]: Buffer[] };
  for (const { key, value } of headers) {
    if (value === null) throw new Error('KafkaJS cannot encode a null header value');
    (grouped[key] ??= []).push(value);
  }
  return grouped;
}

/** The order in which KafkaJS writes a header list: grouped by key, in Object.keys order. */
function kafkaJsHeaderOrder(headers: HeaderSpec[]): HeaderSpec[] {
  const grouped = kafkaJsHeaders(headers);
  return Object.keys(grouped).flatMap((key) => grouped[key]!.map((value) => ({ key, value })));
}

/** What KafkaJS's decoder makes of a header list: one value, or an array for repeated keys. */
function kafkaJsDecodedHeaders(headers: HeaderSpec[]): KafkaJsDecodedHeaders {
  const grouped = new Map<string, (Buffer | null)[]>();
  for (const { key, value } of headers) grouped.set(key, [...(grouped.get(key) ?? []), value]);
  const decoded: KafkaJsDecodedHeaders = {};
  for (const [key, values] of grouped) decoded[key] = values.length === 1 ? values[0]! : values;
  return decoded;
}

async function encodeWithKafkaJs(spec: BatchSpec): Promise<Buffer> {
  const timestamps = spec.records.map((r) => r.timestamp);
  const firstTimestamp = spec.firstTimestamp === 'smallest' ? minOf(timestamps) : timestamps[0]!;
  const records = spec.records.map((record, i) =>
    kafkaJsEncodeRecord({
      offsetDelta: i,
      timestampDelta: record.timestamp - firstTimestamp,
      key: record.key,
      value: record.value,
      headers: kafkaJsHeaders(record.headers),
    }),
  );
  const encoder = await kafkaJsEncodeBatch({
    compression: spec.compression === 'gzip' ? KafkaJsCompression.GZIP : KafkaJsCompression.None,
    firstOffset: spec.baseOffset,
    firstTimestamp,
    maxTimestamp: maxOf(timestamps),
    partitionLeaderEpoch: spec.partitionLeaderEpoch,
    lastOffsetDelta: records.length - 1,
    transactional: spec.transactional,
    producerId: spec.producerId,
    producerEpoch: spec.producerEpoch,
    firstSequence: spec.baseSequence,
    records,
  });
  return encoder.buffer;
}

function buildWithWeir(spec: BatchSpec, headerOrder = (h: HeaderSpec[]) => h): Buffer {
  const builder = new RecordBatchBuilder({
    compression: spec.compression,
    baseOffset: spec.baseOffset,
    partitionLeaderEpoch: spec.partitionLeaderEpoch,
    producerId: spec.producerId,
    producerEpoch: spec.producerEpoch,
    baseSequence: spec.baseSequence,
    isTransactional: spec.transactional,
    timestampType: spec.timestampType,
    clock: () => {
      throw new Error('every record has a timestamp');
    },
  });
  for (const record of spec.records) {
    builder.append({
      key: record.key,
      value: record.value,
      headers: headerOrder(record.headers),
      timestamp: record.timestamp,
    });
  }
  return builder.build();
}

/** Decodes one batch with KafkaJS, checking it consumed exactly the batch's bytes. */
async function decodeWithKafkaJs(bytes: Buffer): Promise<KafkaJsDecodedBatch> {
  const decoder = new KafkaJsDecoder(bytes);
  const batch = await kafkaJsDecodeBatch(decoder);
  expect(decoder.offset).toBe(bytes.length);
  return batch;
}

/** The first byte at which two encodings differ, for a readable failure. */
function firstDifference(weir: Buffer, kafkaJs: Buffer) {
  if (weir.equals(kafkaJs)) return undefined;
  let offset = 0;
  while (offset < weir.length && offset < kafkaJs.length && weir[offset] === kafkaJs[offset])
    offset++;
  const around = (b: Buffer) => b.subarray(Math.max(0, offset - 4), offset + 12).toString('hex');
  return {
    offset,
    weirLength: weir.length,
    kafkaJsLength: kafkaJs.length,
    weir: around(weir),
    kafkaJs: around(kafkaJs),
  };
}

// ---- Generators ----------------------------------------------------------------------------

const bytesArb = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a));
const nullableBytesArb = fc.option(bytesArb, { nil: null, freq: 4 });
// Repeated and integer-like keys exercise KafkaJS's grouping and Object.keys ordering.
const headerKeyArb = fc
  .oneof(
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.constantFrom('trace-id', 'content-type', '0', '7', '10'),
  )
  .filter((key) => !(key in Object.prototype));

function recordArb(nullHeaderValues: boolean, baseTimestamp: bigint) {
  return fc.record({
    key: nullableBytesArb,
    value: nullableBytesArb,
    headers: fc.array(
      fc.record({ key: headerKeyArb, value: nullHeaderValues ? nullableBytesArb : bytesArb }),
      { maxLength: 4 },
    ),
    // Mostly realistic deltas (one- to three-byte varlongs), sometimes ones of up to 2^40 ms.
    timestamp: fc
      .oneof(
        { weight: 3, arbitrary: fc.bigInt({ min: -5_000n, max: 100_000n }) },
        { weight: 1, arbitrary: fc.bigInt({ min: -(1n << 40n), max: 1n << 40n }) },
      )
      .map((delta) => baseTimestamp + delta),
  });
}

function batchSpecArb(options: {
  compression: fc.Arbitrary<'none' | 'gzip'>;
  nullHeaderValues: boolean;
  timestampType: fc.Arbitrary<TimestampType>;
  firstTimestamp: fc.Arbitrary<BatchSpec['firstTimestamp']>;
}): fc.Arbitrary<BatchSpec> {
  return fc.bigInt({ min: 1n << 41n, max: 1n << 50n }).chain((baseTimestamp) =>
    fc.record({
      compression: options.compression,
      baseOffset: fc.bigInt({ min: 0n, max: (1n << 62n) - 1n }),
      partitionLeaderEpoch: fc.integer({ min: -1, max: 0x7fffffff }),
      producerId: fc.bigInt({ min: -1n, max: (1n << 63n) - 1n }),
      producerEpoch: fc.integer({ min: -1, max: 0x7fff }),
      baseSequence: fc.integer({ min: -1, max: 0x7fffffff }),
      transactional: fc.boolean(),
      timestampType: options.timestampType,
      firstTimestamp: options.firstTimestamp,
      records: fc.array(recordArb(options.nullHeaderValues, baseTimestamp), {
        minLength: 1,
        maxLength: 20,
      }),
    }),
  );
}

const compressionArb = fc.constantFrom<'none' | 'gzip'>('none', 'gzip');
const numRuns = 100;

// ---- Checks --------------------------------------------------------------------------------

/** Checks Weir's view of a KafkaJS-encoded batch against the spec it was encoded from. */
function expectWeirReads(bytes: Buffer, spec: BatchSpec): void {
  const batch = RecordBatch.validated(bytes);
  const timestamps = spec.records.map((r) => r.timestamp);
  const firstTimestamp = spec.firstTimestamp === 'smallest' ? minOf(timestamps) : timestamps[0]!;
  expect(batch.sizeInBytes).toBe(bytes.length);
  expect(batch.crc).toBe(kafkaJsCrc32C(bytes.subarray(21)));
  expect(batch.computeCrc()).toBe(batch.crc);
  expect({
    baseOffset: batch.baseOffset,
    partitionLeaderEpoch: batch.partitionLeaderEpoch,
    magic: batch.magic,
    compression: batch.compression,
    timestampType: batch.timestampType,
    isTransactional: batch.isTransactional,
    isControlBatch: batch.isControlBatch,
    lastOffsetDelta: batch.lastOffsetDelta,
    baseTimestamp: batch.baseTimestamp,
    maxTimestamp: batch.maxTimestamp,
    producerId: batch.producerId,
    producerEpoch: batch.producerEpoch,
    baseSequence: batch.baseSequence,
    recordCount: batch.recordCount,
  }).toEqual({
    baseOffset: spec.baseOffset,
    partitionLeaderEpoch: spec.partitionLeaderEpoch,
    magic: 2,
    compression: spec.compression,
    timestampType: 'CreateTime', // KafkaJS always writes CreateTime
    isTransactional: spec.transactional,
    isControlBatch: false,
    lastOffsetDelta: spec.records.length - 1,
    baseTimestamp: firstTimestamp,
    maxTimestamp: maxOf(timestamps),
    producerId: spec.producerId,
    producerEpoch: spec.producerEpoch,
    baseSequence: spec.baseSequence,
    recordCount: spec.records.length,
  });
  expect([...batch.records()]).toEqual(
    spec.records.map((record, i) => ({
      offset: spec.baseOffset + BigInt(i),
      timestamp: record.timestamp,
      key: record.key,
      value: record.value,
      headers: kafkaJsHeaderOrder(record.headers),
    })),
  );
}

/** Checks KafkaJS's view of a Weir-built batch against the spec it was built from. */
async function expectKafkaJsReads(bytes: Buffer, spec: BatchSpec): Promise<void> {
  // KafkaJS's decoder ignores the CRC; check it with KafkaJS's CRC-32C over Kafka's range.
  expect(kafkaJsCrc32C(bytes.subarray(21))).toBe(bytes.readUInt32BE(17));
  const decoded = await decodeWithKafkaJs(bytes);
  const timestamps = spec.records.map((r) => r.timestamp);
  const maxTimestamp = maxOf(timestamps);
  const { records, ...header } = decoded;
  expect(header).toEqual({
    firstOffset: spec.baseOffset.toString(),
    firstTimestamp: timestamps[0]!.toString(),
    partitionLeaderEpoch: spec.partitionLeaderEpoch,
    inTransaction: spec.transactional,
    isControlBatch: false,
    lastOffsetDelta: spec.records.length - 1,
    producerId: spec.producerId.toString(),
    producerEpoch: spec.producerEpoch,
    firstSequence: spec.baseSequence,
    maxTimestamp: maxTimestamp.toString(),
    timestampType:
      spec.timestampType === 'LogAppendTime'
        ? KafkaJsTimestampTypes.LOG_APPEND_TIME
        : KafkaJsTimestampTypes.CREATE_TIME,
  });
  expect(records.map(({ batchContext: _, ...record }) => record)).toEqual(
    spec.records.map((record, i) => ({
      magicByte: 2,
      attributes: 0,
      // With LogAppendTime every record's timestamp is the batch's maxTimestamp.
      timestamp: (spec.timestampType === 'LogAppendTime'
        ? maxTimestamp
        : record.timestamp
      ).toString(),
      offset: (spec.baseOffset + BigInt(i)).toString(),
      key: record.key,
      value: record.value,
      headers: kafkaJsDecodedHeaders(record.headers),
      isControlRecord: false,
    })),
  );
}

// ---- Fixed examples ------------------------------------------------------------------------

const T0 = 1_700_000_000_000n;

const producerSpec: BatchSpec = {
  compression: 'none',
  baseOffset: 0n,
  partitionLeaderEpoch: 0,
  producerId: 4_000n,
  producerEpoch: 2,
  baseSequence: 17,
  transactional: false,
  timestampType: 'CreateTime',
  firstTimestamp: 'first-record',
  records: [
    {
      key: Buffer.from('user-1'),
      value: Buffer.from('{"event":"login"}'),
      headers: [
        { key: 'trace-id', value: Buffer.from('abc123') },
        { key: 'content-type', value: Buffer.from('application/json') },
      ],
      timestamp: T0,
    },
    { key: null, value: Buffer.from('no key'), headers: [], timestamp: T0 + 5n },
    { key: Buffer.alloc(0), value: Buffer.alloc(0), headers: [], timestamp: T0 + 1n },
    {
      key: Buffer.from('user-1'),
      value: null, // a tombstone
      headers: [
        { key: 'ünïcödé', value: Buffer.from('✓') },
        { key: 'retry', value: Buffer.from('1') },
        { key: 'retry', value: Buffer.from('2') },
      ],
      timestamp: T0 - 250n,
    },
    { key: Buffer.from('k'), value: Buffer.alloc(300, 0x61), headers: [], timestamp: T0 + 70_000n },
  ],
};

// ---- Tests ---------------------------------------------------------------------------------

describe('KafkaJS encodes, Weir decodes', () => {
  it.each(['none', 'gzip'] as const)('a producer-like batch (%s)', async (compression) => {
    for (const firstTimestamp of ['first-record', 'smallest'] as const) {
      const spec = { ...producerSpec, compression, firstTimestamp };
      expectWeirReads(await encodeWithKafkaJs(spec), spec);
    }
  });

  it('arbitrary batches, uncompressed and gzip', async () => {
    await fc.assert(
      fc.asyncProperty(
        batchSpecArb({
          compression: compressionArb,
          nullHeaderValues: false,
          timestampType: fc.constant('CreateTime'),
          firstTimestamp: fc.constantFrom('first-record', 'smallest'),
        }),
        async (spec) => expectWeirReads(await encodeWithKafkaJs(spec), spec),
      ),
      { numRuns },
    );
  });
});

describe('Weir encodes, KafkaJS decodes', () => {
  it.each(['none', 'gzip'] as const)('a producer-like batch (%s)', async (compression) => {
    const spec: BatchSpec = {
      ...producerSpec,
      compression,
      records: [
        ...producerSpec.records,
        {
          key: Buffer.from('k'),
          value: Buffer.from('v'),
          headers: [{ key: 'null-valued', value: null }],
          timestamp: T0 + 2n,
        },
      ],
    };
    await expectKafkaJsReads(buildWithWeir(spec), spec);
    const appendTime = { ...spec, timestampType: 'LogAppendTime' as const, transactional: true };
    await expectKafkaJsReads(buildWithWeir(appendTime), appendTime);
  });

  it('arbitrary batches, uncompressed and gzip, with null header values', async () => {
    await fc.assert(
      fc.asyncProperty(
        batchSpecArb({
          compression: compressionArb,
          nullHeaderValues: true,
          timestampType: fc.constantFrom('CreateTime', 'LogAppendTime'),
          firstTimestamp: fc.constant('first-record'),
        }),
        async (spec) => expectKafkaJsReads(buildWithWeir(spec), spec),
      ),
      { numRuns },
    );
  });

  it('consecutive batches in one buffer, as in a fetch response', async () => {
    const a = buildWithWeir({ ...producerSpec, baseOffset: 100n });
    const b = buildWithWeir({ ...producerSpec, compression: 'gzip', baseOffset: 105n });
    const decoder = new KafkaJsDecoder(Buffer.concat([a, b]));
    const first = await kafkaJsDecodeBatch(decoder);
    expect(decoder.offset).toBe(a.length);
    const second = await kafkaJsDecodeBatch(decoder);
    expect(decoder.offset).toBe(a.length + b.length);
    expect([...first.records, ...second.records].map((r) => r.offset)).toEqual(
      Array.from({ length: 10 }, (_, i) => String(100 + i)),
    );
  });
});

describe('identical inputs give identical bytes', () => {
  /** Weir and KafkaJS fed the same batch: Weir gets the headers in the order KafkaJS writes them. */
  async function encodeBoth(spec: BatchSpec): Promise<{ weir: Buffer; kafkaJs: Buffer }> {
    return {
      weir: buildWithWeir(spec, kafkaJsHeaderOrder),
      kafkaJs: await encodeWithKafkaJs(spec),
    };
  }

  it('a producer-like batch', async () => {
    const { weir, kafkaJs } = await encodeBoth(producerSpec);
    expect(firstDifference(weir, kafkaJs)).toBeUndefined();
  });

  it('200 records, so offset deltas and record lengths need multi-byte varints', async () => {
    const spec: BatchSpec = {
      ...producerSpec,
      records: Array.from({ length: 200 }, (_, i) => ({
        key: i % 3 === 0 ? null : Buffer.from(`key-${i}`),
        value: Buffer.alloc(i, i),
        headers: i % 2 === 0 ? [{ key: `h${i}`, value: Buffer.from([i]) }] : [],
        timestamp: T0 + BigInt(i * i * 37 - 500),
      })),
    };
    const { weir, kafkaJs } = await encodeBoth(spec);
    expect(firstDifference(weir, kafkaJs)).toBeUndefined();
  });

  it('arbitrary uncompressed batches', async () => {
    await fc.assert(
      fc.asyncProperty(
        batchSpecArb({
          compression: fc.constant('none'),
          nullHeaderValues: false,
          timestampType: fc.constant('CreateTime'),
          firstTimestamp: fc.constant('first-record'),
        }),
        async (spec) => {
          const { weir, kafkaJs } = await encodeBoth(spec);
          expect(firstDifference(weir, kafkaJs)).toBeUndefined();
        },
      ),
      { numRuns },
    );
  });

  it('arbitrary gzip batches: same header and same records before compression', async () => {
    await fc.assert(
      fc.asyncProperty(
        batchSpecArb({
          compression: fc.constant('gzip'),
          nullHeaderValues: false,
          timestampType: fc.constant('CreateTime'),
          firstTimestamp: fc.constant('first-record'),
        }),
        async (spec) => {
          const { weir, kafkaJs } = await encodeBoth(spec);
          // baseOffset, partitionLeaderEpoch, magic; then attributes … recordCount. The length
          // and CRC depend on the compressor's output, which the protocol leaves free.
          for (const [start, end] of [
            [0, 8],
            [12, 17],
            [21, RECORD_BATCH_OVERHEAD],
          ] as const) {
            expect(weir.subarray(start, end).toString('hex')).toBe(
              kafkaJs.subarray(start, end).toString('hex'),
            );
          }
          const section = (b: Buffer) => gunzipSync(b.subarray(RECORD_BATCH_OVERHEAD));
          expect(firstDifference(section(weir), section(kafkaJs))).toBeUndefined();
        },
      ),
      { numRuns },
    );
  });
});
