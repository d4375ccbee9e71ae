// The stored record format: exact round trips, and decoders that cannot be fooled. Whatever
// bytes a damaged disk hands back, a decoder returns a well-formed record or throws
// CORRUPT_STORE, and never allocates more than the bytes it was given.

import { ErrorCode, crc32c, isWeirError } from '@weir/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Entry } from '../core/types.js';
import {
  HARD_STATE_KEY,
  KeyPrefix,
  META_KEY,
  SNAPSHOT_CHUNK_BYTES,
  SNAPSHOT_METADATA_KEY,
  STORE_FORMAT_VERSION,
  decodeEntryKey,
  decodeEntryValue,
  decodeHardStateValue,
  decodeMetaValue,
  decodeSnapshotChunkKey,
  decodeSnapshotChunkValue,
  decodeSnapshotMetadataValue,
  encodeEntryValue,
  encodeHardStateValue,
  encodeMetaValue,
  encodeSnapshotChunkValue,
  encodeSnapshotMetadataValue,
  entryKey,
  snapshotChunkCount,
  snapshotChunkKey,
} from './record-codec.js';

const index = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const term = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const nodeId = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const bytes = fc.uint8Array({ maxLength: 64 });

const entry: fc.Arbitrary<Entry> = fc.record({
  index,
  term,
  type: fc.constantFrom('normal' as const, 'noop' as const),
  data: bytes,
});

/** A value with a correct header and CRC around an arbitrary payload: what parsing sees. */
function sealed(key: Uint8Array, payload: Uint8Array, version = STORE_FORMAT_VERSION): Uint8Array {
  const value = new Uint8Array(5 + payload.length);
  value[0] = version;
  value.set(payload, 5);
  const crc = crc32c(payload, crc32c(value.subarray(0, 1), crc32c(key)));
  new DataView(value.buffer).setUint32(1, crc);
  return value;
}

function expectCorrupt(decode: () => unknown, message?: RegExp): void {
  let thrown: unknown;
  try {
    decode();
  } catch (error) {
    thrown = error;
  }
  expect(isWeirError(thrown, ErrorCode.CORRUPT_STORE), String(thrown)).toBe(true);
  if (message !== undefined) expect((thrown as Error).message).toMatch(message);
}

/** Runs a decoder on untrusted bytes: a result, or CORRUPT_STORE and nothing else. */
function decodeOrCorrupt<T>(decode: () => T): T | undefined {
  try {
    return decode();
  } catch (error) {
    if (isWeirError(error, ErrorCode.CORRUPT_STORE)) return undefined;
    throw error;
  }
}

describe('keys', () => {
  it('entry keys sort by index, byte for byte', () => {
    fc.assert(
      fc.property(index, index, (a, b) => {
        const order = Buffer.compare(entryKey(a), entryKey(b));
        expect(Math.sign(order)).toBe(Math.sign(a - b));
        expect(decodeEntryKey(entryKey(a))).toBe(a);
      }),
    );
  });

  it('entry keys sit after every other record and chunk keys after the snapshot metadata', () => {
    expect(KeyPrefix.meta < KeyPrefix.hardState).toBe(true);
    expect(Buffer.compare(snapshotChunkKey(2 ** 32 - 1), entryKey(1))).toBe(-1);
    expect(Buffer.compare(SNAPSHOT_METADATA_KEY, snapshotChunkKey(0))).toBe(-1);
    expect(decodeSnapshotChunkKey(snapshotChunkKey(7))).toBe(7);
  });

  it('refuses keys that are not what they claim to be', () => {
    expectCorrupt(() => decodeEntryKey(Uint8Array.of(KeyPrefix.entry, 0, 0)), /not an entry key/);
    expectCorrupt(() => decodeEntryKey(new Uint8Array(9).fill(0xff)), /not an entry key/);
    expectCorrupt(
      () => decodeEntryKey(Uint8Array.of(KeyPrefix.entry, 0, 0x20, 0, 0, 0, 0, 0, 0)),
      /above 2\^53/,
    );
    expectCorrupt(() => decodeEntryKey(Uint8Array.of(KeyPrefix.entry, 0, 0, 0, 0, 0, 0, 0, 0)));
  });
});

describe('round trips', () => {
  it('entries', () => {
    fc.assert(
      fc.property(entry, (e) => {
        const key = entryKey(e.index);
        // fast-check's records have a null prototype; the decoder's are plain objects.
        expect(decodeEntryValue(key, encodeEntryValue(key, e))).toStrictEqual({ ...e });
      }),
    );
  });

  it('hard states, NO_NODE votes included', () => {
    fc.assert(
      fc.property(term, fc.integer({ min: -1, max: 2 ** 31 - 1 }), term, (t, vote, commit) => {
        const hardState = { term: t, vote, commit };
        const value = encodeHardStateValue(hardState);
        expect(decodeHardStateValue(HARD_STATE_KEY, value)).toStrictEqual(hardState);
      }),
    );
  });

  it('snapshot metadata', () => {
    fc.assert(
      fc.property(
        index,
        term,
        fc.array(nodeId, { maxLength: 9 }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        (i, t, voters, dataBytes, dataCrc32c) => {
          const stored = {
            metadata: { index: i, term: t, voters },
            dataBytes,
            chunkCount: snapshotChunkCount(dataBytes),
            dataCrc32c,
          };
          const value = encodeSnapshotMetadataValue(stored);
          expect(decodeSnapshotMetadataValue(SNAPSHOT_METADATA_KEY, value)).toStrictEqual(stored);
        },
      ),
    );
  });

  it('snapshot chunks and the meta record', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 1000 }),
        bytes,
        nodeId,
        fc.string({ maxLength: 40 }),
        (n, d, id, c) => {
          const key = snapshotChunkKey(n);
          expect(decodeSnapshotChunkValue(key, encodeSnapshotChunkValue(key, d))).toStrictEqual(d);
          const meta = { nodeId: id, clusterId: c };
          expect(decodeMetaValue(META_KEY, encodeMetaValue(meta))).toStrictEqual(meta);
        },
      ),
    );
  });

  it('small values stay small: a 100-byte record costs 7 bytes of framing', () => {
    const key = entryKey(123_456);
    const value = encodeEntryValue(key, {
      index: 123_456,
      term: 7,
      type: 'normal',
      data: new Uint8Array(100),
    });
    expect(value.length).toBe(100 + 5 + 1 + 1); // data + version and CRC + type + term
  });
});

describe('damage is detected', () => {
  it('any single flipped bit in any record fails its CRC', () => {
    fc.assert(
      fc.property(entry, fc.nat(), fc.integer({ min: 0, max: 7 }), (e, at, bit) => {
        const key = entryKey(e.index);
        const value = encodeEntryValue(key, e).slice();
        const position = at % value.length;
        value[position] = (value[position] as number) ^ (1 << bit);
        expectCorrupt(() => decodeEntryValue(key, value), position === 0 ? /CRC|version/ : /CRC/);
      }),
    );
  });

  it('a value under the wrong key fails its CRC (the key is covered)', () => {
    const e: Entry = { index: 5, term: 2, type: 'normal', data: Uint8Array.of(1, 2, 3) };
    const value = encodeEntryValue(entryKey(5), e);
    expectCorrupt(() => decodeEntryValue(entryKey(6), value), /entry 6: CRC-32C mismatch/);
  });

  it('a truncated (half-written) value is refused', () => {
    const key = entryKey(9);
    const value = encodeEntryValue(key, {
      index: 9,
      term: 3,
      type: 'noop',
      data: new Uint8Array(20),
    });
    for (let length = 0; length < value.length; length++) {
      expectCorrupt(() => decodeEntryValue(key, value.subarray(0, length)));
    }
  });

  it('an unknown format version is named as such', () => {
    expectCorrupt(
      () => decodeHardStateValue(HARD_STATE_KEY, sealed(HARD_STATE_KEY, Uint8Array.of(1, 0, 1), 9)),
      /format version 9/,
    );
  });

  it('payload problems behind a valid CRC are named', () => {
    const seal = (payload: number[]) => sealed(SNAPSHOT_METADATA_KEY, Uint8Array.from(payload));
    // A voter count of 2^49 with three bytes left: refused before any array is allocated.
    expectCorrupt(
      () =>
        decodeSnapshotMetadataValue(
          SNAPSHOT_METADATA_KEY,
          seal([1, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 1, 2, 3]),
        ),
      /voter count/,
    );
    expectCorrupt(
      () => decodeSnapshotMetadataValue(SNAPSHOT_METADATA_KEY, seal([1, 1, 0, 5, 0, 0, 0, 0, 0])),
      /chunks cannot hold 5 bytes/,
    );
    expectCorrupt(
      () => decodeHardStateValue(HARD_STATE_KEY, sealed(HARD_STATE_KEY, Uint8Array.of(1, 0, 1, 0))),
      /unexpected bytes/,
    );
    expectCorrupt(
      () => decodeHardStateValue(HARD_STATE_KEY, sealed(HARD_STATE_KEY, Uint8Array.of(0x81, 0))),
      /not minimally encoded/,
    );
    expectCorrupt(
      () =>
        decodeHardStateValue(
          HARD_STATE_KEY,
          sealed(
            HARD_STATE_KEY,
            Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0),
          ),
        ),
      /above 2\^53/,
    );
    expectCorrupt(
      () => decodeMetaValue(META_KEY, sealed(META_KEY, Uint8Array.of(1, 2, 0xc3, 0x28))),
      /UTF-8/,
    );
    expectCorrupt(
      () => decodeEntryValue(entryKey(1), sealed(entryKey(1), Uint8Array.of(7, 1))),
      /unknown entry type 7/,
    );
  });

  const decoders: ReadonlyArray<[string, (key: Uint8Array, value: Uint8Array) => unknown]> = [
    ['entry', decodeEntryValue],
    ['hard state', decodeHardStateValue],
    ['snapshot metadata', decodeSnapshotMetadataValue],
    ['snapshot chunk', decodeSnapshotChunkValue],
    ['meta', decodeMetaValue],
  ];

  /** Results never hold more items or bytes than the input had bytes. */
  function sizeOf(result: unknown): number {
    if (result instanceof Uint8Array) return result.length;
    if (result === null || typeof result !== 'object') return 0;
    let total = 0;
    for (const value of Object.values(result)) {
      total += Array.isArray(value) ? value.length : sizeOf(value);
      if (typeof value === 'string') total += value.length;
    }
    return total;
  }

  const keyArbitrary = fc.oneof(
    fc.uint8Array({ maxLength: 12 }),
    index.map(entryKey),
    fc.nat({ max: 5 }).map(snapshotChunkKey),
    fc.constantFrom(META_KEY, HARD_STATE_KEY, SNAPSHOT_METADATA_KEY),
  );

  it('arbitrary bytes: a record or CORRUPT_STORE, never anything else, never oversized', () => {
    fc.assert(
      fc.property(
        keyArbitrary,
        fc.uint8Array({ maxLength: 80 }),
        fc.boolean(),
        (key, raw, seal) => {
          // Sealed values get past the CRC, so the payload parsers see arbitrary bytes too.
          const value = seal ? sealed(key, raw) : raw;
          for (const [, decode] of decoders) {
            const result = decodeOrCorrupt(() => decode(key, value));
            if (result !== undefined) expect(sizeOf(result)).toBeLessThanOrEqual(value.length);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('chunk values are limited by the chunk size they were written with', () => {
    expect(snapshotChunkCount(0)).toBe(0);
    expect(snapshotChunkCount(SNAPSHOT_CHUNK_BYTES)).toBe(1);
    expect(snapshotChunkCount(SNAPSHOT_CHUNK_BYTES + 1)).toBe(2);
  });
});
