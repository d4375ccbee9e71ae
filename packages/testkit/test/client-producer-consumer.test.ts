// The SDK's producer and consumer against a real three-node cluster (in-process nodes, real
// listeners, Raft, replication and gRPC): every record sent is read back exactly once, on the
// partition Kafka's partitioner gives its key, at the offset its send() reported, in send
// order; the acks levels, gzip, seeking, and the typed error for a topic that does not exist.

import {
  type Consumer,
  type ConsumerRecord,
  ErrorCode,
  type Producer,
  type RecordMetadata,
  Weir,
  WeirError,
  partitionForKey,
} from '@weir/client';
import { type RecordBatch, batchesIn, type proto } from '@weir/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InProcessCluster, call, waitFor } from '../src/index.js';

let cluster: InProcessCluster;
let weir: Weir;
const clients: (Producer | Consumer)[] = [];

beforeAll(async () => {
  cluster = await InProcessCluster.start(3);
  weir = new Weir({
    bootstrap: [...cluster.ports.values()].map((ports) => `127.0.0.1:${ports.broker}`),
    clientId: 'client-producer-consumer-test',
  });
}, 60_000);

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

afterAll(async () => {
  await cluster?.stop();
});

function producer(options: Parameters<Weir['producer']>[0] = {}): Producer {
  const created = weir.producer(options);
  clients.push(created);
  return created;
}

function consumer(options: Parameters<Weir['consumer']>[0] = {}): Consumer {
  const created = weir.consumer(options);
  clients.push(created);
  return created;
}

function partitions(topic: string, count: number): { topic: string; partition: number }[] {
  return Array.from({ length: count }, (_, partition) => ({ topic, partition }));
}

/** Polls until `count` records arrived; fails after `timeoutMs` with what did arrive. */
async function consume(
  from: Consumer,
  count: number,
  timeoutMs = 20_000,
): Promise<ConsumerRecord[]> {
  const records: ConsumerRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  while (records.length < count) {
    if (Date.now() > deadline) {
      throw new Error(`consumed ${records.length} of ${count} records in ${timeoutMs} ms`);
    }
    records.push(...(await from.poll({ maxWaitMs: 500 })));
  }
  // Nothing more than expected arrives.
  expect(await from.poll({ maxWaitMs: 200 })).toEqual([]);
  return records;
}

/** The rejection of `promise`, failing the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<WeirError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(WeirError);
    return error as WeirError;
  }
  throw new Error('expected the promise to reject');
}

describe('producer and consumer on a three-node cluster', () => {
  it('reads back 1,000 keyed acks=all idempotent records exactly once, in send order', async () => {
    await cluster.createTopic('orders', 6, 3);
    const sender = producer({ lingerMs: 2 });
    expect(sender.config).toMatchObject({ acks: -1, idempotent: true });
    await sender.connect();
    expect(sender.producerIdentity?.producerId).toBeGreaterThanOrEqual(0n);

    // 100 sends of 10 records, none awaited before the next is made.
    const sends: Promise<RecordMetadata[]>[] = [];
    for (let send = 0; send < 100; send++) {
      const messages = Array.from({ length: 10 }, (_, i) => {
        const n = send * 10 + i;
        return { key: `customer-${n % 37}`, value: `order-${n}`, headers: { n: String(n) } };
      });
      sends.push(sender.send({ topic: 'orders', messages }));
    }
    const written = (await Promise.all(sends)).flat();
    expect(written).toHaveLength(1_000);

    // Keys land where Kafka's default partitioner puts them.
    for (const [n, metadata] of written.entries()) {
      expect(metadata.topic).toBe('orders');
      expect(metadata.partition).toBe(partitionForKey(`customer-${n % 37}`, 6));
    }
    // Per partition, offsets are 0, 1, 2, … in send order.
    for (let partition = 0; partition < 6; partition++) {
      const offsets = written.filter((m) => m.partition === partition).map((m) => m.offset);
      expect(offsets).toEqual(offsets.map((_, i) => BigInt(i)));
    }

    const reader = consumer({ autoOffsetReset: 'earliest', maxPollRecords: 97 });
    reader.assign(partitions('orders', 6));
    const records = await consume(reader, 1_000);
    const seen = new Map<number, ConsumerRecord>();
    for (const record of records) {
      const n = Number(record.headers.n!.toString());
      expect(seen.has(n), `record ${n} read twice`).toBe(false);
      seen.set(n, record);
    }
    expect(seen.size).toBe(1_000);
    for (const [n, metadata] of written.entries()) {
      const record = seen.get(n)!;
      expect(record.value!.toString()).toBe(`order-${n}`);
      expect(record.key!.toString()).toBe(`customer-${n % 37}`);
      expect({ partition: record.partition, offset: record.offset }).toEqual({
        partition: metadata.partition,
        offset: metadata.offset,
      });
      expect(typeof record.timestamp).toBe('bigint');
    }
    // Each partition's records come in offset order, and positions follow them.
    for (let partition = 0; partition < 6; partition++) {
      const offsets = records.filter((r) => r.partition === partition).map((r) => r.offset);
      expect(offsets).toEqual(offsets.map((_, i) => BigInt(i)));
      expect(reader.position({ topic: 'orders', partition })).toBe(BigInt(offsets.length));
    }
  });

  it('sends with acks=1 and acks=0, and the records arrive', async () => {
    await cluster.createTopic('acks-levels', 3, 3);
    const leaderAcked = producer({ acks: 1 });
    expect(leaderAcked.config.idempotent).toBe(false);
    await leaderAcked.connect();
    const one = await leaderAcked.send({
      topic: 'acks-levels',
      messages: Array.from({ length: 30 }, (_, i) => ({ value: `one-${i}`, partition: i % 3 })),
    });
    expect(one.every((m) => m.offset >= 0n)).toBe(true);

    const fireAndForget = producer({ acks: 0 });
    await fireAndForget.connect();
    const zero = await fireAndForget.send({
      topic: 'acks-levels',
      messages: Array.from({ length: 30 }, (_, i) => ({ value: `zero-${i}`, partition: i % 3 })),
    });
    // The broker does not answer acks=0, so no offsets are known.
    expect(zero.map((m) => m.offset)).toEqual(Array.from({ length: 30 }, () => -1n));
    expect(zero.map((m) => m.partition)).toEqual(Array.from({ length: 30 }, (_, i) => i % 3));

    const reader = consumer({ autoOffsetReset: 'earliest' });
    reader.assign(partitions('acks-levels', 3));
    const values = (await consume(reader, 60)).map((r) => r.value!.toString());
    expect(values.sort()).toEqual(
      [
        ...Array.from({ length: 30 }, (_, i) => `one-${i}`),
        ...Array.from({ length: 30 }, (_, i) => `zero-${i}`),
      ].sort(),
    );
  });

  it('compresses batches with gzip and reads them back', async () => {
    await cluster.createTopic('gzipped', 1, 3);
    const sender = producer({ compression: 'gzip', lingerMs: 20 });
    await sender.connect();
    const value = 'a fairly repetitive value '.repeat(20);
    await sender.send({
      topic: 'gzipped',
      messages: Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: `${i}:${value}` })),
    });

    // What the leader stored is gzip-compressed.
    const leader = await leaderOf('gzipped');
    const fetched = await call<proto.weir.broker.FetchResponse>((callback) =>
      cluster.broker(leader).fetch(
        {
          maxWaitMs: 0,
          minBytes: 0,
          maxBytes: 1 << 20,
          topics: [
            {
              topic: 'gzipped',
              partitions: [
                {
                  partition: 0,
                  fetchOffset: 0n,
                  partitionMaxBytes: 1 << 20,
                  currentLeaderEpoch: -1,
                },
              ],
            },
          ],
        },
        callback,
      ),
    );
    const stored = [...batchesIn(fetched.topics[0]!.partitions[0]!.records)];
    expect(stored.length).toBeGreaterThan(0);
    expect(stored.every((batch: RecordBatch) => batch.compression === 'gzip')).toBe(true);

    const reader = consumer({ autoOffsetReset: 'earliest' });
    reader.assign([{ topic: 'gzipped', partition: 0 }]);
    const records = await consume(reader, 50);
    expect(records.map((r) => r.value!.toString())).toEqual(
      Array.from({ length: 50 }, (_, i) => `${i}:${value}`),
    );
  });

  it('seeks, inside a batch too, and starts at the latest offset by default', async () => {
    await cluster.createTopic('seekable', 1, 3);
    const sender = producer({ lingerMs: 50 });
    await sender.connect();
    // One send of 20 records: one batch, so seeking to 7 fetches a batch that starts at 0.
    await sender.send({
      topic: 'seekable',
      messages: Array.from({ length: 20 }, (_, i) => ({ value: `r${i}` })),
    });

    const latest = consumer();
    latest.assign([{ topic: 'seekable', partition: 0 }]);
    expect(await latest.poll({ maxWaitMs: 300 })).toEqual([]);
    await waitFor('the latest offset', () => latest.position({ topic: 'seekable', partition: 0 }));
    expect(latest.position({ topic: 'seekable', partition: 0 })).toBe(20n);

    latest.seek({ topic: 'seekable', partition: 0, offset: 7n });
    const fromSeven = await consume(latest, 13);
    expect(fromSeven.map((r) => r.offset)).toEqual(
      Array.from({ length: 13 }, (_, i) => BigInt(7 + i)),
    );

    latest.seek({ topic: 'seekable', partition: 0, offset: 0n });
    const again = await latest.poll({ maxWaitMs: 2_000 });
    expect(again[0]?.offset).toBe(0n);

    // Pausing stops the partition's records until it is resumed.
    latest.pause([{ topic: 'seekable', partition: 0 }]);
    latest.seek({ topic: 'seekable', partition: 0, offset: 10n });
    expect(await latest.poll({ maxWaitMs: 300 })).toEqual([]);
    latest.resume([{ topic: 'seekable', partition: 0 }]);
    const resumed = await latest.poll({ maxWaitMs: 2_000 });
    expect(resumed[0]?.offset).toBe(10n);

    // An offset past the end is reset by autoOffsetReset (latest).
    latest.seek({ topic: 'seekable', partition: 0, offset: 1_000n });
    await waitFor('the reset to the latest offset', async () => {
      await latest.poll({ maxWaitMs: 50 });
      return latest.position({ topic: 'seekable', partition: 0 }) === 20n;
    });
  });

  it('fails a send to a topic that does not exist with UNKNOWN_TOPIC_OR_PARTITION', async () => {
    const sender = producer({ requestTimeoutMs: 1_500 });
    await sender.connect();
    const startedMs = Date.now();
    const error = await rejection(
      sender.send({ topic: 'no-such-topic', messages: [{ value: 'lost' }] }),
    );
    const elapsedMs = Date.now() - startedMs;
    expect(error.code).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect(error.retriable).toBe(true);
    expect(error.message).toMatch(/topic 'no-such-topic' does not exist/);
    // It asked again for a while (metadata retries) and gave up near its deadline.
    expect(elapsedMs).toBeGreaterThanOrEqual(1_000);
    expect(elapsedMs).toBeLessThan(5_000);

    const reader = consumer({ requestTimeoutMs: 1_000 });
    reader.assign([{ topic: 'no-such-topic', partition: 0 }]);
    const consumeError = await waitFor('the consumer to report the unknown topic', async () => {
      try {
        await reader.poll({ maxWaitMs: 500 });
        return undefined;
      } catch (caught) {
        return caught as WeirError;
      }
    });
    expect(consumeError.code).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  });

  // Last: it stops a node (and starts it again).
  it('follows a partition leader that stops, losing and doubling nothing', async () => {
    await cluster.createTopic('moving', 1, 3);
    const leader = await leaderOf('moving');
    const sender = producer({ lingerMs: 1 });
    await sender.connect();
    const acknowledged = new Map<string, bigint>();
    let next = 0;
    let stopping = false;
    // Five sends outstanding at a time, each of one record.
    const loops = Array.from({ length: 5 }, async () => {
      while (!stopping) {
        const value = `m${next++}`;
        const [written] = await sender.send({ topic: 'moving', messages: [{ value }] });
        acknowledged.set(value, written!.offset);
      }
    });
    await waitFor('records before the move', () => acknowledged.size >= 100);
    await cluster.stopNode(leader);
    const movedAt = acknowledged.size;
    await waitFor('records after the move', () => acknowledged.size >= movedAt + 100);
    stopping = true;
    await Promise.all(loops);
    expect(await leaderOf('moving')).not.toBe(leader);

    const reader = consumer({ autoOffsetReset: 'earliest' });
    reader.assign([{ topic: 'moving', partition: 0 }]);
    const records = await consume(reader, acknowledged.size);
    expect(records.map((r) => r.offset)).toEqual(records.map((_, i) => BigInt(i)));
    const read = new Map(records.map((r) => [r.value!.toString(), r.offset]));
    expect(read.size).toBe(records.length);
    expect(read).toEqual(acknowledged);

    await cluster.startNode(leader);
    await cluster.waitUntilReady();
  });
});

async function leaderOf(topic: string, partition = 0): Promise<number> {
  return waitFor(`a leader for ${topic}-${partition}`, async () => {
    const metadata = await call<proto.weir.broker.MetadataResponse>((callback) =>
      cluster.broker(1).metadata({ topics: [topic] }, callback),
    );
    const leader = metadata.topics[0]?.partitions.find((p) => p.partition === partition)?.leaderId;
    return leader !== undefined && leader >= 0 ? leader : undefined;
  });
}
