import { ErrorCode, isWeirError, proto } from '@weir/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  changeBroker,
  changePartition,
  config,
  partition,
  producerIds,
  registerBroker,
  removeTopic,
  topic,
} from '../test/builders.js';
import { MetadataImage, type PartitionImage } from './image.js';
import { ConfigResourceType, type MetadataRecord, NO_LEADER } from './records.js';
import { decodeSnapshot, encodeSnapshot, snapshotRecords } from './snapshot.js';

/** An image as plain, order-independent data, for deep equality. */
function plain(image: MetadataImage) {
  const sorted = <K, V>(map: ReadonlyMap<K, V>) =>
    [...map].sort(([a], [b]) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0));
  return {
    offset: image.offset,
    brokers: sorted(image.brokers),
    topicsByName: sorted(image.topicsByName).map(([name, t]) => [
      name,
      { ...t, partitions: sorted(t.partitions) },
    ]),
    topicIds: sorted(image.topicsById).map(([id, t]) => [id, t.name]),
    configs: sorted(image.configs).map(([key, r]) => [key, { ...r, entries: sorted(r.entries) }]),
    producerIds: image.producerIds,
  };
}

/** One step of a random history: a seed from which `nextRecord` derives a valid record. */
interface Step {
  readonly kind: number;
  readonly a: number;
  readonly b: number;
  readonly flag: boolean;
  /** Cut the batch after this record. */
  readonly endBatch: boolean;
}

// Record kinds weighted so histories grow topics and partitions faster than they delete them.
const KINDS = [0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 5, 5, 6, 7, 7, 8];
const step: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom(...KINDS),
  a: fc.nat(1000),
  b: fc.nat(1000),
  flag: fc.boolean(),
  endBatch: fc.boolean(),
});

const BROKER_IDS = [0, 1, 2, 3, 4];

function pick<T>(items: readonly T[], seed: number): T | undefined {
  return items.length === 0 ? undefined : items[seed % items.length];
}

/** `count` distinct brokers in an order derived from `seed`. */
function brokersFrom(seed: number, count: number): number[] {
  const pool = [...BROKER_IDS];
  const chosen: number[] = [];
  for (let i = 0; i < count; i++) chosen.push(pool.splice((seed >> i) % pool.length, 1)[0]!);
  return chosen;
}

/** The ISR subset of `replicas` chosen by `seed`, and a leader from it (or none). */
function isrAndLeader(replicas: readonly number[], seed: number, flag: boolean) {
  const isr = replicas.filter((_, i) => ((seed >> i) & 1) === 1 || i === 0);
  return { isr, leader: flag ? NO_LEADER : (pick(isr, seed) ?? NO_LEADER) };
}

/** A record valid on top of `image` as the record at `offset`, or undefined when none fits. */
function nextRecord(image: MetadataImage, offset: bigint, s: Step): MetadataRecord | undefined {
  const topics = [...image.topicsById.values()];
  const partitions: PartitionImage[] = topics.flatMap((t) => [...t.partitions.values()]);
  switch (s.kind) {
    case 0:
      return registerBroker(s.a % BROKER_IDS.length, offset, {
        fenced: s.flag,
        ...(s.b % 2 === 0 ? { rack: `rack-${s.b % 3}` } : {}),
      });
    case 1: {
      const broker = pick([...image.brokers.values()], s.a);
      if (broker === undefined) return undefined;
      return changeBroker(broker.brokerId, broker.brokerEpoch, {
        ...(s.b % 3 !== 0 ? { fenced: s.flag } : {}),
        ...(s.b % 2 === 0 ? { inControlledShutdown: !s.flag } : {}),
      });
    }
    case 2: {
      const name = `topic-${s.a % 6}`;
      return image.topic(name) === undefined ? topic(name, `id-${offset}`) : undefined;
    }
    case 3: {
      const t = pick(topics, s.a);
      if (t === undefined) return undefined;
      const replicas = brokersFrom(s.b, 1 + (s.a % 3));
      const { isr, leader } = isrAndLeader(replicas, s.b >> 3, s.flag);
      return partition(t.topicId, t.partitions.size, replicas, {
        isr,
        leader,
        leaderEpoch: s.a % 4,
        partitionEpoch: s.b % 4,
      });
    }
    case 4:
    case 5: {
      const p = pick(partitions, s.a);
      if (p === undefined) return undefined;
      if (s.b % 3 === 0) {
        return changePartition(p.topicId, p.partitionId, {
          leader: s.flag ? NO_LEADER : (pick(p.isr, s.b) ?? NO_LEADER),
        });
      }
      if (s.b % 3 === 1) {
        const { isr, leader } = isrAndLeader(p.replicas, s.b >> 2, s.flag);
        return changePartition(p.topicId, p.partitionId, {
          isr,
          ...(leader !== p.leader ? { leader } : {}),
        });
      }
      const replicas = brokersFrom(s.b >> 2, 1 + (s.a % 4));
      const isr = p.isr.filter((id) => replicas.includes(id));
      const leader = isr.includes(p.leader) ? p.leader : (isr[0] ?? NO_LEADER);
      return changePartition(p.topicId, p.partitionId, {
        replicas,
        isr,
        ...(leader !== p.leader || s.flag ? { leader } : {}),
      });
    }
    case 6: {
      const t = pick(topics, s.a);
      return t === undefined ? undefined : removeTopic(t.topicId);
    }
    case 7: {
      const kinds = [
        [ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, `topic-${s.a % 6}`],
        [ConfigResourceType.CONFIG_RESOURCE_TYPE_BROKER, String(s.a % 3)],
        [ConfigResourceType.CONFIG_RESOURCE_TYPE_CLUSTER, ''],
      ] as const;
      const [type, name] = kinds[s.b % 3]!;
      const key = ['retention.ms', 'segment.bytes', 'cleanup.policy'][s.a % 3]!;
      return config(type, name, key, s.flag ? undefined : String(s.b));
    }
    default: {
      const first = image.producerIds.nextProducerId + BigInt(s.a % 3);
      return producerIds(s.a % BROKER_IDS.length, first, 1 + (s.b % 100));
    }
  }
}

/**
 * Builds an image from the steps twice: one record per apply (which the generator needs, to
 * see the state), and in the batches the steps cut. Both must agree.
 */
function history(steps: readonly Step[]): MetadataImage {
  let single = MetadataImage.EMPTY;
  let batched = MetadataImage.EMPTY;
  let batch: MetadataRecord[] = [];
  for (const s of steps) {
    const offset = single.offset + 1n;
    const record = nextRecord(single, offset, s);
    if (record === undefined) continue;
    single = single.apply([record], offset).image;
    batch.push(record);
    if (s.endBatch) {
      batched = batched.apply(batch, offset).image;
      batch = [];
    }
  }
  if (batch.length > 0) batched = batched.apply(batch, single.offset).image;
  expect(plain(batched)).toEqual(plain(single));
  return single;
}

describe('metadata snapshots', () => {
  it('image → snapshot → image is the same image (property)', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 5, maxLength: 150, size: 'max' }), (steps) => {
        const image = history(steps);
        const bytes = encodeSnapshot(image);
        const rebuilt = decodeSnapshot(bytes);
        expect(plain(rebuilt)).toEqual(plain(image));
        // Deterministic: the rebuilt image writes the same bytes.
        expect(encodeSnapshot(rebuilt)).toEqual(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips the empty image', () => {
    expect(decodeSnapshot(encodeSnapshot(MetadataImage.EMPTY))).toBe(MetadataImage.EMPTY);
    expect(snapshotRecords(MetadataImage.EMPTY)).toEqual([]);
  });

  it('writes brokers, then topics with their partitions, then configs and producer ids', () => {
    const image = MetadataImage.EMPTY.apply(
      [
        producerIds(1, 0n, 10),
        config(ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, 'b', 'retention.ms', '1'),
        topic('b'),
        topic('a'),
        partition('id-a', 1, [2]),
        partition('id-a', 0, [2]),
        registerBroker(2, 6n),
        registerBroker(1, 7n),
      ],
      7n,
    ).image;
    const kinds = snapshotRecords(image).map(({ record }) =>
      record?.$case === 'partition' ? `partition ${record.value.partitionId}` : record?.$case,
    );
    expect(kinds).toEqual([
      'registerBroker',
      'registerBroker',
      'topic',
      'partition 0',
      'partition 1',
      'topic',
      'config',
      'producerIdsBlock',
    ]);
  });

  it('refuses an unknown snapshot version and records that break invariants', () => {
    const { MetadataSnapshot } = proto.weir.metadata;
    const future = MetadataSnapshot.encode({ version: 2, offset: 3n, records: [] }).finish();
    expect(() => decodeSnapshot(future)).toThrowError(/INVALID_RECORD: .*version 2/);
    const orphan = MetadataSnapshot.encode({
      version: 1,
      offset: 3n,
      records: [partition('missing', 0, [1])],
    }).finish();
    expect(() => decodeSnapshot(orphan)).toThrowError(/INVALID_RECORD: .*unknown topic id/);
  });

  it('throws nothing but WeirError on arbitrary bytes', () => {
    const image = history(
      Array.from({ length: 40 }, (_, i) => ({
        kind: i % 9,
        a: i * 7,
        b: i * 13,
        flag: i % 5 === 0,
        endBatch: true,
      })),
    );
    const valid = encodeSnapshot(image);
    const mutated = fc
      .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      })
      .map((edits) => {
        const bytes = Uint8Array.from(valid);
        for (const [at, value] of edits) bytes[at] = value;
        return bytes;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated), (bytes) => {
        try {
          decodeSnapshot(bytes);
        } catch (error) {
          expect(isWeirError(error)).toBe(true);
          expect([ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD]).toContain(
            (error as { code: ErrorCode }).code,
          );
        }
      }),
      { numRuns: 1000 },
    );
  });
});
