import { createRequire } from 'node:module';
import { ErrorCode, WeirError } from '@weir/protocol';
import fc from 'fast-check';
import { Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import {
  StickyPartitioner,
  type TopicPartitions,
  choosePartition,
  murmur2,
  partitionForKey,
  toPositive,
} from './partitioner.js';

// KafkaJS 2's DefaultPartitioner is its Java-compatible one (renamed from
// JavaCompatiblePartitioner in 2.0.0); its murmur2 is a port of Kafka's Utils.murmur2.
const kafkaJsMurmur2 = createRequire(import.meta.url)(
  'kafkajs/src/producer/partitioners/default/murmur2.js',
) as (key: Buffer | string) => number;

function kafkaJsPartition(key: Buffer | string, numPartitions: number): number {
  const partitionMetadata = Array.from({ length: numPartitions }, (_, partitionId) => ({
    partitionId,
    leader: 1,
    partitionErrorCode: 0,
    replicas: [1],
    isr: [1],
  }));
  return Partitioners.DefaultPartitioner()({
    topic: 'orders',
    partitionMetadata,
    message: { key, value: null },
  });
}

function all(numPartitions: number): TopicPartitions {
  return {
    numPartitions,
    availablePartitions: Array.from({ length: numPartitions }, (_, p) => p),
  };
}

/** A random source that replays `values` (each in [0, 1)) and then fails the test. */
function scripted(...values: number[]): () => number {
  return () => {
    const value = values.shift();
    if (value === undefined) throw new Error('random() called more often than scripted');
    return value;
  };
}

function expectWeirError(fn: () => unknown, code: ErrorCode, pattern?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(WeirError);
  expect((thrown as WeirError).code).toBe(code);
  if (pattern !== undefined) expect((thrown as WeirError).message).toMatch(pattern);
}

describe('murmur2', () => {
  it("matches Kafka's Java vectors (UtilsTest.testMurmur2)", () => {
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, hash] of cases) expect(murmur2(Buffer.from(key)), key).toBe(hash);
  });

  it('matches the Java vectors in KafkaJS (generated with its defaultJava/Test.java)', () => {
    const cases: [string, number][] = [
      ['0', 971027396],
      ['1', -1993445489],
      ['128', -326012175],
      ['2187', -1508407203],
      ['16384', -325739742],
      ['78125', -1654490814],
      ['279936', 1462227128],
      ['823543', -2014198330],
      ['2097152', 607668903],
      ['4782969', -1182699775],
      ['10000000', -1830336757],
      ['19487171', -1603849305],
      ['35831808', -857013643],
      ['62748517', -1167431028],
      ['105413504', -381294639],
      ['170859375', -1658323481],
      ['100:48069', 1009543857],
    ];
    for (const [key, hash] of cases) expect(murmur2(Buffer.from(key)), key).toBe(hash);
  });

  it("equals KafkaJS's murmur2 on any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(murmur2(bytes)).toBe(kafkaJsMurmur2(Buffer.from(bytes)));
      }),
      { numRuns: 2000 },
    );
  });

  it('hashes a view into a larger buffer by its own bytes only', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 100 }),
        fc.nat(),
        fc.nat(),
        (bytes, a, b) => {
          const start = a % bytes.length;
          const end = start + (b % (bytes.length - start + 1));
          const view = bytes.subarray(start, end);
          expect(murmur2(view)).toBe(murmur2(Uint8Array.from(view)));
        },
      ),
    );
  });

  it('clears only the sign bit to make a hash positive, as Utils.toPositive', () => {
    expect(toPositive(-1)).toBe(0x7fffffff);
    expect(toPositive(-(2 ** 31))).toBe(0);
    expect(toPositive(12345)).toBe(12345);
  });
});

describe('partitionForKey', () => {
  it("puts every string key where KafkaJS's DefaultPartitioner puts it", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 60 }),
        fc.integer({ min: 1, max: 1000 }),
        (key, n) => {
          expect(partitionForKey(key, n)).toBe(kafkaJsPartition(key, n));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("puts every Buffer key where KafkaJS's DefaultPartitioner puts it", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100 }),
        fc.integer({ min: 1, max: 1000 }),
        (key, n) => {
          const buffer = Buffer.from(key);
          expect(partitionForKey(buffer, n)).toBe(kafkaJsPartition(buffer, n));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('hashes a string as its UTF-8 bytes', () => {
    expect(partitionForKey('clé-☃', 97)).toBe(partitionForKey(Buffer.from('clé-☃', 'utf8'), 97));
  });

  it('hashes the empty key rather than treating it as absent', () => {
    // Kafka only treats a null key as keyless; "" is a key like any other.
    expect(partitionForKey('', 1000)).toBe(toPositive(murmur2(new Uint8Array())) % 1000);
  });

  it('refuses a partition count that is not positive', () => {
    expectWeirError(() => partitionForKey('k', 0), ErrorCode.ILLEGAL_STATE, /numPartitions/);
  });
});

describe('StickyPartitioner (KIP-480)', () => {
  it('keeps a topic on one partition until a new batch is needed there', () => {
    const sticky = new StickyPartitioner({ random: scripted(0.5) });
    const first = sticky.partition('orders', all(4));
    expect(first).toBe(2);
    for (let i = 0; i < 10; i++) expect(sticky.partition('orders', all(4))).toBe(first);
  });

  it('moves to another partition, at random among the available ones, on a new batch', () => {
    // Available: 0, 2, 3 (1 has no leader). Current 2; the others are [0, 3].
    const partitions = { numPartitions: 4, availablePartitions: [0, 2, 3] };
    const sticky = new StickyPartitioner({ random: scripted(0.4, 0.9, 0.1) });
    expect(sticky.partition('orders', partitions)).toBe(2);
    expect(sticky.onNewBatch('orders', partitions, 2)).toBe(3);
    expect(sticky.partition('orders', partitions)).toBe(3);
    expect(sticky.onNewBatch('orders', partitions, 3)).toBe(0);
  });

  it('never picks the partition it leaves when another is available', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 20 }), { minLength: 2, maxLength: 21 }),
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 2 }),
        (available, randoms) => {
          const partitions = { numPartitions: 21, availablePartitions: available };
          const sticky = new StickyPartitioner({ random: scripted(...randoms) });
          let current = sticky.partition('t', partitions);
          expect(available).toContain(current);
          for (let i = 1; i < randoms.length; i++) {
            const next = sticky.onNewBatch('t', partitions, current);
            expect(next).not.toBe(current);
            expect(available).toContain(next);
            current = next;
          }
        },
      ),
    );
  });

  it('ignores a new batch on a partition that is no longer the sticky one', () => {
    // Two records raced to start a batch on partition 0: only the first moves the topic on.
    const sticky = new StickyPartitioner({ random: scripted(0.3, 0.99) });
    expect(sticky.partition('orders', all(3))).toBe(0);
    expect(sticky.onNewBatch('orders', all(3), 0)).toBe(2);
    expect(sticky.onNewBatch('orders', all(3), 0)).toBe(2);
  });

  it('stays on the only available partition', () => {
    const partitions = { numPartitions: 5, availablePartitions: [4] };
    const sticky = new StickyPartitioner({ random: scripted(0.7, 0.2) });
    expect(sticky.partition('orders', partitions)).toBe(4);
    expect(sticky.onNewBatch('orders', partitions, 4)).toBe(4);
  });

  it('picks any partition when none has a leader, so that records wait for one', () => {
    const sticky = new StickyPartitioner({ random: scripted(0.99) });
    expect(sticky.partition('orders', { numPartitions: 3, availablePartitions: [] })).toBe(2);
  });

  it('keeps one sticky partition per topic', () => {
    const sticky = new StickyPartitioner({ random: scripted(0.0, 0.99, 0.6) });
    expect(sticky.partition('a', all(4))).toBe(0);
    expect(sticky.partition('b', all(4))).toBe(3);
    expect(sticky.onNewBatch('b', all(4), 3)).toBe(1); // others of b: [0, 1, 2]
    expect(sticky.partition('a', all(4))).toBe(0);
  });

  it('spreads keyless batches over the available partitions with Math.random', () => {
    const sticky = new StickyPartitioner();
    const counts = new Map<number, number>();
    let current = sticky.partition('t', all(4));
    for (let i = 0; i < 4000; i++) {
      current = sticky.onNewBatch('t', all(4), current);
      counts.set(current, (counts.get(current) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const count of counts.values()) expect(count).toBeGreaterThan(700);
  });

  it('reports a random source outside [0, 1) as a bug', () => {
    const sticky = new StickyPartitioner({ random: () => 1 });
    expectWeirError(() => sticky.partition('t', all(3)), ErrorCode.ILLEGAL_STATE, /random/);
  });
});

describe('choosePartition', () => {
  const never = (): boolean => false;

  it('takes an explicit partition over the key', () => {
    const sticky = new StickyPartitioner({ random: scripted() });
    expect(choosePartition({ topic: 't', key: 'k', partition: 0 }, all(8), sticky, never)).toBe(0);
  });

  it("hashes a key over all partitions, available or not, as Kafka's default partitioner", () => {
    const sticky = new StickyPartitioner({ random: scripted() });
    const partitions = { numPartitions: 8, availablePartitions: [1] };
    expect(choosePartition({ topic: 't', key: 'user-42' }, partitions, sticky, never)).toBe(
      kafkaJsPartition('user-42', 8),
    );
  });

  it('sends keyless records to the sticky partition, moving on when it needs a new batch', () => {
    const sticky = new StickyPartitioner({ random: scripted(0.1, 0.99) });
    const full = new Set<number>();
    const startsNewBatch = (p: number): boolean => full.has(p);
    expect(choosePartition({ topic: 't', key: null }, all(4), sticky, startsNewBatch)).toBe(0);
    expect(choosePartition({ topic: 't' }, all(4), sticky, startsNewBatch)).toBe(0);
    full.add(0);
    expect(choosePartition({ topic: 't' }, all(4), sticky, startsNewBatch)).toBe(3);
    expect(choosePartition({ topic: 't' }, all(4), sticky, startsNewBatch)).toBe(3);
  });

  it('does not move the sticky partition for a keyed record', () => {
    const sticky = new StickyPartitioner({ random: scripted(0.1) });
    const always = (): boolean => true;
    expect(sticky.partition('t', all(4))).toBe(0);
    choosePartition({ topic: 't', key: 'k' }, all(4), sticky, always);
    expect(sticky.partition('t', all(4))).toBe(0);
  });

  it('refuses an explicit partition the topic does not have, retriably', () => {
    const sticky = new StickyPartitioner();
    expectWeirError(
      () => choosePartition({ topic: 't', partition: 6 }, all(6), sticky, never),
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      /topic 't' has partitions 0 to 5; partition 6 does not exist/,
    );
    expectWeirError(
      () => choosePartition({ topic: 't', partition: -1 }, all(6), sticky, never),
      ErrorCode.INVALID_RECORD,
      /whole number from 0, got -1/,
    );
    expectWeirError(
      () => choosePartition({ topic: 't', partition: 1.5 }, all(6), sticky, never),
      ErrorCode.INVALID_RECORD,
    );
  });
});
