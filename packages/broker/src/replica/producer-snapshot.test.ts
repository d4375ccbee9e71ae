// The producer snapshot file: its codec (round trip; bad bytes only ever CORRUPT_STORE) and the
// file operations on a temporary log directory.

import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ErrorCode, crc32c, isWeirError } from '@weir/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  PRODUCER_SNAPSHOT_VERSION,
  decodeProducerSnapshot,
  deleteProducerSnapshots,
  encodeProducerSnapshot,
  listProducerSnapshotOffsets,
  loadNewestProducerSnapshot,
  producerSnapshotFileName,
  readProducerSnapshot,
  writeProducerSnapshot,
} from './producer-snapshot.js';
import {
  BATCHES_RETAINED_PER_PRODUCER,
  type BatchMetadata,
  type ProducerStateEntry,
  lastSequenceOf,
  producerEntryProblem,
} from './producer-state.js';

const INT32_MAX = 0x7fff_ffff;
const INT64_MAX = (1n << 63n) - 1n;
const PATH = '/data/orders-0/00000000000000000100.snapshot';

/** One producer's batches as `record` leaves them: offsets in order, spans matching sequences. */
const batchesArbitrary: fc.Arbitrary<BatchMetadata[]> = fc
  .array(
    fc.record({
      gap: fc.bigInt({ min: 0n, max: 1n << 40n }),
      firstSequence: fc.oneof(
        fc.integer({ min: 0, max: INT32_MAX }),
        fc.integer({ min: INT32_MAX - 3, max: INT32_MAX }),
      ),
      span: fc.integer({ min: 0, max: 10 }),
    }),
    { minLength: 1, maxLength: BATCHES_RETAINED_PER_PRODUCER },
  )
  .map((shapes) => {
    let next = 0n;
    return shapes.map(({ gap, firstSequence, span }) => {
      const firstOffset = next + gap;
      next = firstOffset + BigInt(span) + 1n;
      return {
        firstSequence,
        lastSequence: lastSequenceOf(firstSequence, span),
        firstOffset,
        lastOffset: firstOffset + BigInt(span),
      };
    });
  });

const entriesArbitrary: fc.Arbitrary<ProducerStateEntry[]> = fc.uniqueArray(
  fc.record({
    producerId: fc.oneof(fc.bigInt({ min: 0n, max: 100n }), fc.bigInt({ min: 0n, max: INT64_MAX })),
    producerEpoch: fc.integer({ min: 0, max: 0x7fff }),
    batches: batchesArbitrary,
  }),
  { selector: (entry) => entry.producerId, maxLength: 20 },
);

/** An offset above every batch of `entries`, where a snapshot of them may stand. */
function offsetAbove(entries: readonly ProducerStateEntry[]): bigint {
  return entries.reduce((max, entry) => {
    const last = entry.batches.at(-1)!.lastOffset + 1n;
    return last > max ? last : max;
  }, 0n);
}

/** Runs `decode` and answers what it did: 'ok', or the error code it threw. */
function outcomeOf(decode: () => unknown): 'ok' | ErrorCode {
  try {
    decode();
    return 'ok';
  } catch (error) {
    if (isWeirError(error)) return error.code;
    throw error;
  }
}

type Field = readonly ['int8' | 'int16' | 'int32' | 'int64', number | bigint];

/**
 * Snapshot bytes from raw field values, with a correct CRC: for content that the encoder would
 * refuse to write but a disk (or a bug) might still hold.
 */
function rawSnapshot(fields: readonly Field[]): Buffer {
  const parts = fields.map(([type, value]) => {
    const part = Buffer.alloc({ int8: 1, int16: 2, int32: 4, int64: 8 }[type]);
    if (type === 'int8') part.writeInt8(Number(value));
    if (type === 'int16') part.writeInt16BE(Number(value));
    if (type === 'int32') part.writeInt32BE(Number(value));
    if (type === 'int64') part.writeBigInt64BE(BigInt(value));
    return part;
  });
  const body = Buffer.concat(parts);
  const header = Buffer.alloc(6);
  header.writeInt16BE(PRODUCER_SNAPSHOT_VERSION, 0);
  header.writeUInt32BE(crc32c(body), 2);
  return Buffer.concat([header, body]);
}

/** The fields of one producer with one batch. */
function producerFields(
  producerId: bigint,
  producerEpoch: number,
  batch: { firstSequence: number; lastSequence: number; firstOffset: bigint; lastOffset: bigint },
): Field[] {
  return [
    ['int64', producerId],
    ['int16', producerEpoch],
    ['int8', 1],
    ['int32', batch.firstSequence],
    ['int32', batch.lastSequence],
    ['int64', batch.firstOffset],
    ['int64', batch.lastOffset],
  ];
}

const goodBatch = { firstSequence: 0, lastSequence: 1, firstOffset: 10n, lastOffset: 11n };

describe('producer snapshot codec', () => {
  it('decodes what it encodes, in the same order (property)', () => {
    fc.assert(
      fc.property(entriesArbitrary, fc.bigInt({ min: 0n, max: 1n << 20n }), (entries, extra) => {
        const offset = offsetAbove(entries) + extra;
        const bytes = encodeProducerSnapshot(entries);
        expect(decodeProducerSnapshot(PATH, offset, bytes)).toEqual(entries);
      }),
      { numRuns: 300 },
    );
  });

  it('only ever throws CORRUPT_STORE for arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, versioned) => {
        // Half the inputs start like a snapshot, so that decoding gets past the version.
        if (versioned && bytes.length >= 2) {
          Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).writeInt16BE(1, 0);
        }
        expect(['ok', ErrorCode.CORRUPT_STORE]).toContain(
          outcomeOf(() => decodeProducerSnapshot(PATH, 1000n, bytes)),
        );
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a valid snapshot with a bit flipped or cut short, as CORRUPT_STORE (property)', () => {
    fc.assert(
      fc.property(
        entriesArbitrary,
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        fc.nat(),
        (entries, byteIndex, bit, cut) => {
          const offset = offsetAbove(entries);
          const bytes = encodeProducerSnapshot(entries);
          const flipped = Buffer.from(bytes);
          flipped[byteIndex % flipped.length]! ^= 1 << bit;
          expect(outcomeOf(() => decodeProducerSnapshot(PATH, offset, flipped))).toBe(
            ErrorCode.CORRUPT_STORE,
          );
          const short = bytes.subarray(0, cut % bytes.length);
          expect(outcomeOf(() => decodeProducerSnapshot(PATH, offset, short))).toBe(
            ErrorCode.CORRUPT_STORE,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decodes CRC-valid content of arbitrary field values only into valid entries, else CORRUPT_STORE (property)', () => {
    const fieldArbitrary: fc.Arbitrary<Field> = fc.oneof(
      fc.tuple(fc.constant('int8' as const), fc.integer({ min: -3, max: 7 })),
      fc.tuple(fc.constant('int16' as const), fc.integer({ min: -3, max: 3 })),
      fc.tuple(fc.constant('int32' as const), fc.integer({ min: -3, max: 30 })),
      fc.tuple(fc.constant('int64' as const), fc.bigInt({ min: -3n, max: 30n })),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: -2, max: 3 }),
        fc.array(fieldArbitrary, { maxLength: 40 }),
        (count, fields) => {
          const bytes = rawSnapshot([['int32', count], ...fields]);
          try {
            for (const entry of decodeProducerSnapshot(PATH, 20n, bytes)) {
              expect(producerEntryProblem(entry)).toBeUndefined();
            }
          } catch (error) {
            expect(isWeirError(error, ErrorCode.CORRUPT_STORE)).toBe(true);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('names the file and what is wrong with it', () => {
    const cases: [string, Buffer][] = [
      ['in the middle of a field', Buffer.from([0, 1, 2])],
      ['version 7', Buffer.from([0, 7, 0, 0, 0, 0, 0, 0, 0, 0])],
      [
        'does not match',
        Buffer.concat([encodeProducerSnapshot([]).subarray(0, 6), Buffer.from([0, 0, 0, 1])]),
      ],
      ['cannot fit', rawSnapshot([['int32', 2], ...producerFields(1n, 0, goodBatch)])],
      ['cannot fit', rawSnapshot([['int32', -1]])],
      [
        'bytes after the last producer',
        rawSnapshot([['int32', 1], ...producerFields(1n, 0, goodBatch), ['int8', 0]]),
      ],
      [
        'appears twice',
        rawSnapshot([
          ['int32', 2],
          ...producerFields(1n, 0, goodBatch),
          ...producerFields(1n, 0, { ...goodBatch, firstOffset: 12n, lastOffset: 13n }),
        ]),
      ],
      [
        'producer id -1 is negative',
        rawSnapshot([['int32', 1], ...producerFields(-1n, 0, goodBatch)]),
      ],
      ['producer epoch -2', rawSnapshot([['int32', 1], ...producerFields(1n, -2, goodBatch)])],
      [
        'has 0 batches',
        rawSnapshot([
          ['int32', 1],
          ['int64', 1n],
          ['int16', 0],
          ['int8', 0],
          ['int64', 0n],
          ['int64', 0n],
          ['int64', 0n],
        ]),
      ],
      [
        'outside [0, 2147483647]',
        rawSnapshot([['int32', 1], ...producerFields(1n, 0, { ...goodBatch, firstSequence: -1 })]),
      ],
      [
        'does not cover as many offsets',
        rawSnapshot([['int32', 1], ...producerFields(1n, 0, { ...goodBatch, lastOffset: 12n })]),
      ],
      [
        'not below the snapshot',
        rawSnapshot([
          ['int32', 1],
          ...producerFields(1n, 0, { ...goodBatch, firstOffset: 99n, lastOffset: 100n }),
        ]),
      ],
    ];
    for (const [problem, bytes] of cases) {
      let thrown: unknown;
      try {
        decodeProducerSnapshot(PATH, 100n, bytes);
      } catch (error) {
        thrown = error;
      }
      expect(isWeirError(thrown, ErrorCode.CORRUPT_STORE), problem).toBe(true);
      expect(String(thrown)).toContain(PATH);
      expect(String(thrown)).toContain(problem);
    }
  });

  it('asserts that what it writes is valid', () => {
    const invalid: ProducerStateEntry = { producerId: 1n, producerEpoch: 0, batches: [] };
    expect(outcomeOf(() => encodeProducerSnapshot([invalid]))).toBe(ErrorCode.ILLEGAL_STATE);
  });
});

describe('producer snapshot files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weir-producer-snapshot-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const entries: ProducerStateEntry[] = [
    { producerId: 7n, producerEpoch: 2, batches: [{ ...goodBatch }] },
    {
      producerId: 3n,
      producerEpoch: 0,
      batches: [
        { firstSequence: 5, lastSequence: 5, firstOffset: 12n, lastOffset: 12n },
        { firstSequence: 6, lastSequence: 8, firstOffset: 20n, lastOffset: 22n },
      ],
    },
  ];

  it('names a snapshot by its offset in 20 digits, as Kafka', () => {
    expect(producerSnapshotFileName(0n)).toBe('00000000000000000000.snapshot');
    expect(producerSnapshotFileName(1234n)).toBe('00000000000000001234.snapshot');
    expect(producerSnapshotFileName(INT64_MAX)).toBe('09223372036854775807.snapshot');
  });

  it('writes, lists and reads snapshots, ignoring every other file', async () => {
    await writeProducerSnapshot(dir, 30n, entries);
    await writeProducerSnapshot(dir, 23n, entries);
    for (const name of [
      '00000000000000000040.snapshot.tmp',
      '00000000000000000000.log',
      '00000000000000000000.index',
      '0000000000000000050.snapshot',
      'leader-epoch-checkpoint',
    ]) {
      await writeFile(join(dir, name), '');
    }
    expect(await listProducerSnapshotOffsets(dir)).toEqual([23n, 30n]);
    expect(await readProducerSnapshot(dir, 30n)).toEqual({ offset: 30n, entries });
  });

  it('asserts that a snapshot holds no batch at or after its offset', async () => {
    await expect(writeProducerSnapshot(dir, 22n, entries)).rejects.toMatchObject({
      code: ErrorCode.ILLEGAL_STATE,
    });
    expect(await listProducerSnapshotOffsets(dir)).toEqual([]);
  });

  it('deletes the snapshots a predicate picks', async () => {
    for (const offset of [23n, 30n, 41n]) await writeProducerSnapshot(dir, offset, entries);
    expect(await deleteProducerSnapshots(dir, (offset) => offset > 25n)).toEqual([30n, 41n]);
    expect(await listProducerSnapshotOffsets(dir)).toEqual([23n]);
    expect(await deleteProducerSnapshots(dir, () => false)).toEqual([]);
  });

  it('loads the newest snapshot at or below the log end, deleting those above it and corrupt ones', async () => {
    for (const offset of [23n, 30n, 41n, 50n]) await writeProducerSnapshot(dir, offset, entries);
    const corrupt = join(dir, producerSnapshotFileName(41n));
    const bytes = await readFile(corrupt);
    bytes[bytes.length - 1]! ^= 0xff;
    await writeFile(corrupt, bytes);
    expect(await loadNewestProducerSnapshot(dir, 45n)).toEqual({ offset: 30n, entries });
    expect(await listProducerSnapshotOffsets(dir)).toEqual([23n, 30n]);
  });

  it('loads nothing when every snapshot is unusable', async () => {
    await writeFile(join(dir, producerSnapshotFileName(10n)), 'not a snapshot');
    await writeProducerSnapshot(dir, 30n, entries);
    expect(await loadNewestProducerSnapshot(dir, 29n)).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });
});
