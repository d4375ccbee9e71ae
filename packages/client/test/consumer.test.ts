// The consumer against scripted BrokerService servers: option checks, positions (reset by
// autoOffsetReset, moved by seek, advanced past returned records only), records below the
// fetch offset inside a batch, leadership errors, bounded prefetch, pause/resume, and the
// async iterator.

import { ErrorCode, RecordBatchBuilder, WeirError, type proto } from '@weir/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { type Consumer, type ConsumerOptions, type ConsumerRecord, Weir } from '../src/index.js';
import {
  type FakeBroker,
  type FakeTopic,
  errorStatus,
  metadataAnswer,
  ok,
  startFakeBroker,
  waitUntil,
} from './fake-broker-server.js';

type FetchRequest = proto.weir.broker.FetchRequest;
type FetchAnswer = proto.weir.broker.FetchResponse_Partition;

const brokersToStop: FakeBroker[] = [];
const consumers: Consumer[] = [];

afterEach(async () => {
  await Promise.all(consumers.splice(0).map((consumer) => consumer.close()));
  await Promise.all(brokersToStop.splice(0).map((broker) => broker.stop()));
});

/** A partition's log: `count` records `v0`, `v1`, … in batches of `batchSize`. */
function log(count: number, batchSize: number): Buffer[] {
  const batches: Buffer[] = [];
  for (let base = 0; base < count; base += batchSize) {
    const builder = new RecordBatchBuilder({ baseOffset: BigInt(base) });
    for (let i = base; i < Math.min(count, base + batchSize); i++) {
      builder.append({
        key: `k${i}`,
        value: `v${i}`,
        headers: { n: String(i) },
        timestamp: 1_700_000_000_000 + i,
      });
    }
    batches.push(builder.build());
  }
  return batches;
}

/** Fake brokers serving `topics`, whose partitions hold `logs` (by `topic-partition`). */
class FakeCluster {
  readonly brokers = new Map<number, FakeBroker>();
  topics: FakeTopic[];

  private constructor(
    topics: FakeTopic[],
    readonly logs: Map<string, Buffer[]>,
  ) {
    this.topics = topics;
  }

  static async start(
    topics: FakeTopic[],
    logs: Record<string, Buffer[]>,
    brokerCount = 2,
  ): Promise<FakeCluster> {
    const cluster = new FakeCluster(topics, new Map(Object.entries(logs)));
    for (let id = 1; id <= brokerCount; id++) {
      const broker = await startFakeBroker();
      brokersToStop.push(broker);
      cluster.brokers.set(id, broker);
    }
    for (const [id, broker] of cluster.brokers) {
      broker.handle({
        metadata: (request) => metadataAnswer(cluster.brokers, cluster.topics, request),
        fetch: (request) => cluster.fetch(id, request),
        listOffsets: (request) => ({
          topics: request.topics.map((topic) => ({
            topic: topic.topic,
            partitions: topic.partitions.map((p) => ({
              partition: p.partition,
              error: ok(),
              offset: p.timestamp === -2n ? 0n : cluster.endOffset(topic.topic, p.partition),
              timestamp: -1n,
              leaderEpoch: 0,
              currentLeader: undefined,
            })),
          })),
        }),
      });
    }
    return cluster;
  }

  broker(id: number): FakeBroker {
    return this.brokers.get(id)!;
  }

  endOffset(topic: string, partition: number): bigint {
    const batches = this.logs.get(`${topic}-${partition}`) ?? [];
    const last = batches.at(-1);
    if (last === undefined) return 0n;
    return last.readBigInt64BE(0) + BigInt(last.readInt32BE(23)) + 1n;
  }

  /** Answers with the batch holding the fetch offset and those after it (up to 2). */
  fetch(
    brokerId: number,
    request: FetchRequest,
    answer: (
      topic: string,
      p: proto.weir.broker.FetchRequest_Partition,
    ) => FetchAnswer | undefined = () => undefined,
  ): proto.weir.broker.FetchResponse {
    return {
      topics: request.topics.map((topic) => ({
        topic: topic.topic,
        partitions: topic.partitions.map(
          (p) => answer(topic.topic, p) ?? this.read(brokerId, topic.topic, p),
        ),
      })),
    };
  }

  read(brokerId: number, topic: string, p: proto.weir.broker.FetchRequest_Partition): FetchAnswer {
    const leader = this.topics.find((t) => t.name === topic)?.partitions[p.partition];
    if (leader?.leader !== brokerId) {
      return fetchFailed(p.partition, ErrorCode.NOT_LEADER_OR_FOLLOWER);
    }
    const endOffset = this.endOffset(topic, p.partition);
    if (p.fetchOffset > endOffset) return fetchFailed(p.partition, ErrorCode.OFFSET_OUT_OF_RANGE);
    const batches = (this.logs.get(`${topic}-${p.partition}`) ?? []).filter((b) => {
      const next = b.readBigInt64BE(0) + BigInt(b.readInt32BE(23)) + 1n;
      return next > p.fetchOffset;
    });
    return {
      partition: p.partition,
      error: ok(),
      highWatermark: endOffset,
      logStartOffset: 0n,
      records: Buffer.concat(batches.slice(0, 2)),
      currentLeader: undefined,
    };
  }

  consumer(options: ConsumerOptions = {}): Consumer {
    const consumer = new Weir({
      bootstrap: [...this.brokers.values()].map((b) => b.address),
      clientId: 'consumer-test',
      requestTimeoutMs: 5_000,
    }).consumer({ maxWaitMs: 50, retryBackoffMs: 10, ...options });
    consumers.push(consumer);
    return consumer;
  }

  fetchRequests(): FetchRequest[] {
    return [...this.brokers.values()].flatMap((b) => b.requests.fetch);
  }

  metadataCalls(): number {
    return [...this.brokers.values()].reduce((sum, b) => sum + b.requests.metadata.length, 0);
  }
}

function fetchFailed(partition: number, code: ErrorCode): FetchAnswer {
  return {
    partition,
    error: errorStatus(code),
    highWatermark: -1n,
    logStartOffset: -1n,
    records: Buffer.alloc(0),
    currentLeader: undefined,
  };
}

/** Polls until `count` records arrived. */
async function consume(consumer: Consumer, count: number): Promise<ConsumerRecord[]> {
  const records: ConsumerRecord[] = [];
  const deadline = Date.now() + 5_000;
  while (records.length < count) {
    if (Date.now() > deadline) throw new Error(`got ${records.length} of ${count} records`);
    records.push(...(await consumer.poll({ maxWaitMs: 200 })));
  }
  return records;
}

async function rejection(promise: Promise<unknown>): Promise<WeirError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(WeirError);
    return error as WeirError;
  }
  throw new Error('expected the promise to reject');
}

const events: FakeTopic = { name: 'events', partitions: [{ leader: 1 }, { leader: 2 }] };

describe('consumer options', () => {
  const weir = new Weir({ bootstrap: '127.0.0.1:9092' });

  it("uses Kafka's defaults", () => {
    expect(weir.consumer().config).toMatchObject({
      autoOffsetReset: 'latest',
      maxWaitMs: 500,
      minBytes: 1,
      maxPartitionBytes: 1024 * 1024,
      maxPollRecords: 500,
    });
  });

  it.each<[ConsumerOptions, RegExp]>([
    [{ autoOffsetReset: 'none' as never }, /autoOffsetReset must be 'earliest' or 'latest'/],
    [{ maxWaitMs: -1 }, /maxWaitMs must be a whole number from 0/],
    [{ maxPrefetchBytes: 0 }, /maxPrefetchBytes must be a whole number from 1/],
    [
      { retryBackoffMs: 500, retryBackoffMaxMs: 100 },
      /retryBackoffMaxMs \(100\) must not be below/,
    ],
  ])('refuses %o, saying what to change', (options, message) => {
    expect(() => weir.consumer(options)).toThrow(message);
  });

  it('checks assignments and seeks', () => {
    const consumer = weir.consumer();
    consumers.push(consumer);
    expect(() => consumer.assign([{ topic: '', partition: 0 }])).toThrow(/non-empty string/);
    expect(() => consumer.assign([{ topic: 't', partition: -1 }])).toThrow(/whole number from 0/);
    expect(() => consumer.seek({ topic: 't', partition: 0, offset: 1n })).toThrow(
      /not assigned to this consumer; assign\(\) it first/,
    );
    consumer.assign([{ topic: 't', partition: 0 }]);
    expect(() => consumer.seek({ topic: 't', partition: 0, offset: 3 as never })).toThrow(
      /offset as a bigint from 0n/,
    );
  });
});

describe('consumer positions', () => {
  it('starts at the earliest or latest offset by autoOffsetReset', async () => {
    const cluster = await FakeCluster.start([events], { 'events-0': log(10, 4) });
    const earliest = cluster.consumer({ autoOffsetReset: 'earliest' });
    earliest.assign([{ topic: 'events', partition: 0 }]);
    const records = await consume(earliest, 10);
    expect(records.map((r) => r.offset)).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(i)));
    expect(records[3]).toMatchObject({
      topic: 'events',
      partition: 0,
      key: Buffer.from('k3'),
      value: Buffer.from('v3'),
      timestamp: 1_700_000_000_003n,
    });
    expect(records[3]!.headers.n).toEqual(Buffer.from('3'));

    const latest = cluster.consumer();
    latest.assign([{ topic: 'events', partition: 0 }]);
    await waitUntil(
      'a position',
      () => latest.position({ topic: 'events', partition: 0 }) !== undefined,
    );
    expect(latest.position({ topic: 'events', partition: 0 })).toBe(10n);
    const timestamps = cluster
      .broker(1)
      .requests.listOffsets.flatMap((r) =>
        r.topics.flatMap((t) => t.partitions.map((p) => p.timestamp)),
      );
    expect(timestamps).toEqual([-2n, -1n]);
  });

  it('skips records below the fetch offset in a batch that starts before it', async () => {
    const cluster = await FakeCluster.start([events], { 'events-0': log(10, 10) });
    const consumer = cluster.consumer({ maxPollRecords: 2 });
    consumer.assign([{ topic: 'events', partition: 0 }]);
    consumer.seek({ topic: 'events', partition: 0, offset: 6n });
    const first = await consumer.poll({ maxWaitMs: 2_000 });
    expect(first.map((r) => r.offset)).toEqual([6n, 7n]);
    // The position moves past what was returned only, not past what was fetched.
    expect(consumer.position({ topic: 'events', partition: 0 })).toBe(8n);
    expect((await consumer.poll()).map((r) => r.offset)).toEqual([8n, 9n]);
    expect(consumer.position({ topic: 'events', partition: 0 })).toBe(10n);
    expect(cluster.fetchRequests()[0]!.topics[0]!.partitions[0]!.fetchOffset).toBe(6n);
  });

  it('drops what was buffered when seeking', async () => {
    const cluster = await FakeCluster.start([events], { 'events-0': log(10, 5) });
    const consumer = cluster.consumer({ maxPollRecords: 1, autoOffsetReset: 'earliest' });
    consumer.assign([{ topic: 'events', partition: 0 }]);
    expect((await consumer.poll({ maxWaitMs: 2_000 }))[0]!.offset).toBe(0n);
    consumer.seek({ topic: 'events', partition: 0, offset: 8n });
    expect((await consumer.poll({ maxWaitMs: 2_000 }))[0]!.offset).toBe(8n);
  });

  it('resets by autoOffsetReset on OFFSET_OUT_OF_RANGE', async () => {
    const cluster = await FakeCluster.start([events], { 'events-0': log(5, 5) });
    const consumer = cluster.consumer({ autoOffsetReset: 'earliest' });
    consumer.assign([{ topic: 'events', partition: 0 }]);
    consumer.seek({ topic: 'events', partition: 0, offset: 50n });
    const records = await consume(consumer, 5);
    expect(records.map((r) => r.offset)).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(cluster.broker(1).requests.listOffsets).toHaveLength(1);
  });
});

describe('consumer fetching', () => {
  it('sends one Fetch per leader broker, with the leader epoch it knows', async () => {
    const cluster = await FakeCluster.start(
      [{ name: 'events', partitions: [{ leader: 1, epoch: 3 }, { leader: 2 }, { leader: 1 }] }],
      { 'events-0': log(3, 3), 'events-1': log(3, 3), 'events-2': log(3, 3) },
    );
    const consumer = cluster.consumer({ autoOffsetReset: 'earliest' });
    consumer.assign([0, 1, 2].map((partition) => ({ topic: 'events', partition })));
    await consume(consumer, 9);
    const first = cluster.broker(1).requests.fetch[0]!;
    expect(first.topics[0]!.partitions.map((p) => [p.partition, p.currentLeaderEpoch])).toEqual([
      [0, 3],
      [2, 0],
    ]);
    for (const broker of cluster.brokers.values()) expect(broker.maxOpen.fetch).toBe(1);
  });

  it('finds the new leader after NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH', async () => {
    const cluster = await FakeCluster.start([events], { 'events-0': log(4, 2) });
    const consumer = cluster.consumer({ autoOffsetReset: 'earliest' });
    consumer.assign([{ topic: 'events', partition: 0 }]);
    expect((await consume(consumer, 4)).map((r) => r.value!.toString())).toEqual([
      'v0',
      'v1',
      'v2',
      'v3',
    ]);
    const metadataCalls = cluster.metadataCalls();
    // Leadership moves to broker 2; broker 1 now fences the old epoch.
    cluster.topics = [{ name: 'events', partitions: [{ leader: 2, epoch: 1 }, { leader: 2 }] }];
    cluster.broker(1).handle({
      fetch: (request) =>
        cluster.fetch(1, request, (_, p) =>
          fetchFailed(p.partition, ErrorCode.FENCED_LEADER_EPOCH),
        ),
    });
    cluster.logs.set('events-0', log(6, 2));
    expect((await consume(consumer, 2)).map((r) => r.value!.toString())).toEqual(['v4', 'v5']);
    expect(cluster.metadataCalls()).toBeGreaterThan(metadataCalls);
    const last = cluster.broker(2).requests.fetch.at(-1)!;
    expect(last.topics[0]!.partitions[0]!.currentLeaderEpoch).toBe(1);
  });

  it('holds no more than maxPrefetchRecords before poll() takes them', async () => {
    const cluster = await FakeCluster.start(
      [{ name: 'events', partitions: [{ leader: 1 }, { leader: 1 }] }],
      { 'events-0': log(40, 5), 'events-1': log(40, 5) },
    );
    const consumer = cluster.consumer({ autoOffsetReset: 'earliest', maxPrefetchRecords: 10 });
    consumer.assign([0, 1].map((partition) => ({ topic: 'events', partition })));
    await waitUntil('a first fetch', () => cluster.fetchRequests().length >= 1);
    // Two batches of 5 per partition: the first answer fills the buffer, so it is the only one
    // until poll() takes records. (A window, since this checks that nothing happens.)
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(cluster.fetchRequests()).toHaveLength(1);
    const records = await consume(consumer, 80);
    expect(records).toHaveLength(80);
    expect(cluster.fetchRequests().length).toBeGreaterThan(1);
  });

  it('pauses and resumes partitions', async () => {
    const cluster = await FakeCluster.start(
      [{ name: 'events', partitions: [{ leader: 1 }, { leader: 2 }] }],
      { 'events-0': log(3, 3), 'events-1': log(3, 3) },
    );
    const consumer = cluster.consumer({ autoOffsetReset: 'earliest' });
    consumer.assign([0, 1].map((partition) => ({ topic: 'events', partition })));
    consumer.pause([{ topic: 'events', partition: 1 }]);
    expect(consumer.paused()).toEqual([{ topic: 'events', partition: 1 }]);
    const first = await consume(consumer, 3);
    expect(new Set(first.map((r) => r.partition))).toEqual(new Set([0]));
    expect(await consumer.poll({ maxWaitMs: 100 })).toEqual([]);
    consumer.resume([{ topic: 'events', partition: 1 }]);
    const rest = await consume(consumer, 3);
    expect(new Set(rest.map((r) => r.partition))).toEqual(new Set([1]));
  });

  it('reports a partition that does not exist from poll()', async () => {
    const cluster = await FakeCluster.start([events], {});
    const consumer = cluster.consumer({ requestTimeoutMs: 300 });
    consumer.assign([{ topic: 'events', partition: 7 }]);
    const error = await rejection(
      (async () => {
        for (;;) await consumer.poll({ maxWaitMs: 100 });
      })(),
    );
    expect(error.code).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect(error.message).toMatch(
      /topic 'events' has partitions 0 to 1; partition 7 does not exist/,
    );
  });

  it('iterates records with for await, until closed', async () => {
    const cluster = await FakeCluster.start([events], { 'events-0': log(6, 2) });
    const consumer = cluster.consumer({ autoOffsetReset: 'earliest' });
    consumer.assign([{ topic: 'events', partition: 0 }]);
    const values: string[] = [];
    for await (const record of consumer) {
      values.push(record.value!.toString());
      if (values.length === 6) break;
    }
    expect(values).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'v5']);
    // The loop in records() ends when the consumer is closed.
    const iterating = (async () => {
      const seen: ConsumerRecord[] = [];
      for await (const record of consumer.records()) seen.push(record);
      return seen;
    })();
    await consumer.close();
    expect(await iterating).toEqual([]);
  });
});
