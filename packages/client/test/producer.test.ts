// The producer against scripted BrokerService servers: option checks, one Produce per leader
// with a bounded number outstanding, retries that keep bytes, sequence and order, redirects
// from the leader named in an error (KIP-951) or from refreshed metadata, the delivery timeout,
// what stops an idempotent producer, buffer-memory backpressure and flush.

import { ErrorCode, RecordBatch, WeirError, type proto } from '@weir/protocol';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type Producer, type ProducerOptions, Weir } from '../src/index.js';
import {
  type FakeBroker,
  FakeLog,
  type FakeTopic,
  deferred,
  errorStatus,
  metadataAnswer,
  ok,
  startFakeBroker,
  waitUntil,
} from './fake-broker-server.js';

type ProduceRequest = proto.weir.broker.ProduceRequest;
type ProduceResponse = proto.weir.broker.ProduceResponse;
type PartitionAnswer = proto.weir.broker.ProduceResponse_Partition;

const brokersToStop: FakeBroker[] = [];
const producers: Producer[] = [];

afterEach(async () => {
  await Promise.all(producers.splice(0).map((producer) => producer.close()));
  await Promise.all(brokersToStop.splice(0).map((broker) => broker.stop()));
});

/** Fake brokers 1..n that lead partitions as `topics` says, with a log per partition. */
class FakeCluster {
  readonly brokers = new Map<number, FakeBroker>();
  readonly logs = new Map<string, FakeLog>();
  topics: FakeTopic[];
  private nextProducerId = 1000n;

  private constructor(topics: FakeTopic[]) {
    this.topics = topics;
  }

  static async start(topics: FakeTopic[], brokerCount = 2): Promise<FakeCluster> {
    const cluster = new FakeCluster(topics);
    for (let id = 1; id <= brokerCount; id++) {
      const broker = await startFakeBroker();
      brokersToStop.push(broker);
      cluster.brokers.set(id, broker);
    }
    for (const [id, broker] of cluster.brokers) {
      broker.handle({
        metadata: (request) => metadataAnswer(cluster.brokers, cluster.topics, request),
        initProducerId: () => ({ producerId: cluster.nextProducerId++, producerEpoch: 0 }),
        produce: (request) => cluster.produce(id, request),
      });
    }
    return cluster;
  }

  broker(id: number): FakeBroker {
    return this.brokers.get(id)!;
  }

  log(topic: string, partition: number): FakeLog {
    const key = `${topic}-${partition}`;
    let log = this.logs.get(key);
    if (log === undefined) {
      log = new FakeLog();
      this.logs.set(key, log);
    }
    return log;
  }

  /** What a broker answers: appends where it leads, NOT_LEADER_OR_FOLLOWER with a hint elsewhere. */
  produce(
    brokerId: number,
    request: ProduceRequest,
    answer: (
      topic: string,
      p: proto.weir.broker.ProduceRequest_Partition,
    ) => PartitionAnswer | undefined = () => undefined,
  ): ProduceResponse {
    return {
      topics: request.topics.map((topic) => ({
        topic: topic.topic,
        partitions: topic.partitions.map(
          (p) => answer(topic.topic, p) ?? this.appendAt(brokerId, topic.topic, p),
        ),
      })),
    };
  }

  appendAt(
    brokerId: number,
    topic: string,
    p: proto.weir.broker.ProduceRequest_Partition,
  ): PartitionAnswer {
    const state = this.topics.find((t) => t.name === topic)?.partitions[p.partition];
    if (state === undefined) {
      return failed(p.partition, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    }
    if (state.leader !== brokerId) {
      return {
        ...failed(p.partition, ErrorCode.NOT_LEADER_OR_FOLLOWER),
        currentLeader: { leaderId: state.leader, leaderEpoch: state.epoch ?? 0 },
      };
    }
    const baseOffset = this.log(topic, p.partition).append(p.records);
    return {
      partition: p.partition,
      error: ok(),
      baseOffset,
      logStartOffset: 0n,
      currentLeader: undefined,
    };
  }

  weir(requestTimeoutMs = 5_000): Weir {
    return new Weir({
      bootstrap: [...this.brokers.values()].map((b) => b.address),
      clientId: 'producer-test',
      requestTimeoutMs,
    });
  }

  async producer(options: ProducerOptions = {}): Promise<Producer> {
    const producer = this.weir().producer({ lingerMs: 0, retryBackoffMs: 10, ...options });
    producers.push(producer);
    await producer.connect();
    return producer;
  }

  /** Every batch the brokers were sent for `topic`-`partition`, in arrival order. */
  sentBatches(topic: string, partition: number): RecordBatch[] {
    return [...this.brokers.values()]
      .flatMap((b) => b.requests.produce)
      .flatMap((r) => r.topics.filter((t) => t.topic === topic))
      .flatMap((t) => t.partitions.filter((p) => p.partition === partition))
      .map((p) => RecordBatch.view(p.records));
  }

  metadataCalls(): number {
    return [...this.brokers.values()].reduce((sum, b) => sum + b.requests.metadata.length, 0);
  }
}

function failed(partition: number, code: ErrorCode): PartitionAnswer {
  return {
    partition,
    error: errorStatus(code),
    baseOffset: -1n,
    logStartOffset: -1n,
    currentLeader: undefined,
  };
}

/** The rejection of `promise`, failing the test if it resolves. */
/** The base sequence of the one batch a Produce request carries. */
function sequenceOf(request: ProduceRequest): number {
  return RecordBatch.view(Buffer.from(request.topics[0]!.partitions[0]!.records)).baseSequence;
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

const orders: FakeTopic = {
  name: 'orders',
  partitions: [{ leader: 1 }, { leader: 2 }, { leader: 1 }, { leader: 2 }],
};

describe('producer options', () => {
  const weir = new Weir({ bootstrap: '127.0.0.1:9092' });

  it("uses Kafka's defaults: acks all, idempotent, 5 in flight, 120 s delivery timeout", () => {
    expect(weir.producer().config).toMatchObject({
      acks: -1,
      idempotent: true,
      maxInFlightRequests: 5,
      deliveryTimeoutMs: 120_000,
      requestTimeoutMs: 30_000,
      lingerMs: 5,
      batchBytes: 16_384,
      compression: 'none',
      bufferMemoryBytes: 32 * 1024 * 1024,
    });
  });

  it('turns idempotence off by default when other options rule it out, as Kafka does', () => {
    expect(weir.producer({ acks: 1 }).config.idempotent).toBe(false);
    expect(weir.producer({ acks: 0 }).config.idempotent).toBe(false);
    expect(weir.producer({ maxInFlightRequests: 10 }).config.idempotent).toBe(false);
  });

  it.each<[ProducerOptions, RegExp]>([
    [
      { idempotent: true, acks: 1 },
      /idempotent: true requires acks: 'all'.*set acks: 'all', or idempotent: false/,
    ],
    [
      { idempotent: true, maxInFlightRequests: 6 },
      /maxInFlightRequests must be at most 5 with idempotent: true/,
    ],
    [{ idempotent: true, retries: 0 }, /retries must be above 0 with idempotent: true/],
    [{ acks: 2 as never }, /acks must be 'all' \(or -1\), 1 or 0, got 2/],
    [{ compression: 'zstd' as never }, /compression must be 'none' or 'gzip'/],
    [
      { deliveryTimeoutMs: 1_000, requestTimeoutMs: 5_000 },
      /deliveryTimeoutMs \(1000\) must be at least lingerMs \+ requestTimeoutMs/,
    ],
    [{ lingerMs: -1 }, /lingerMs must be a whole number from 0/],
    [{ maxInFlightRequests: 0 }, /maxInFlightRequests must be a whole number from 1/],
    [
      { maxRequestBytes: 32 * 1024 * 1024 },
      /maxRequestBytes must be at most \d+ \(the brokers take/,
    ],
  ])('refuses %o, saying what to change', (options, message) => {
    let error: unknown;
    try {
      weir.producer(options);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).code).toBe(ErrorCode.INVALID_CONFIG);
    expect((error as WeirError).message).toMatch(message);
  });
});

describe('producer lifecycle', () => {
  it('must be connected before send() and refuses sends once closed', async () => {
    const cluster = await FakeCluster.start([orders]);
    const producer = cluster.weir().producer();
    producers.push(producer);
    const early = await rejection(producer.send({ topic: 'orders', messages: [{ value: 'x' }] }));
    expect(early.code).toBe(ErrorCode.ILLEGAL_STATE);
    expect(early.message).toMatch(/await producer.connect\(\) before send\(\)/);
    await producer.connect();
    await producer.send({ topic: 'orders', messages: [{ value: 'x' }] });
    await producer.close();
    const late = await rejection(producer.send({ topic: 'orders', messages: [{ value: 'y' }] }));
    expect(late.message).toMatch(/the producer is closed/);
  });

  it('sends nothing of a call with a message that cannot be encoded', async () => {
    const cluster = await FakeCluster.start([orders]);
    const producer = await cluster.producer();
    const error = await rejection(
      producer.send({ topic: 'orders', messages: [{ value: 'fine' }, { value: 42 as never }] }),
    );
    expect(error.code).toBe(ErrorCode.INVALID_RECORD);
    const missing = await rejection(
      producer.send({
        topic: 'orders',
        messages: [
          { value: 'fine', partition: 0 },
          { value: 'lost', partition: 9 },
        ],
      }),
    );
    expect(missing.code).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect(missing.message).toMatch(/partitions 0 to 3; partition 9 does not exist/);
    await producer.flush();
    expect([...cluster.logs.values()].flatMap((log) => log.values())).toEqual([]);
  });

  it('refuses acks other than all on an idempotent producer, per send', async () => {
    const cluster = await FakeCluster.start([orders]);
    const producer = await cluster.producer();
    const error = await rejection(
      producer.send({ topic: 'orders', acks: 1, messages: [{ value: 'x' }] }),
    );
    expect(error.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(error.message).toMatch(/idempotent, so it sends with acks 'all' only/);
  });

  it('sends with acks per send on a producer without idempotence', async () => {
    const cluster = await FakeCluster.start([orders]);
    const producer = await cluster.producer({ acks: 1 });
    const [withAll] = await producer.send({
      topic: 'orders',
      acks: 'all',
      messages: [{ value: 'a', partition: 0 }],
    });
    const [withZero] = await producer.send({
      topic: 'orders',
      acks: 0,
      messages: [{ value: 'b', partition: 0 }],
    });
    expect(withAll!.offset).toBe(0n);
    expect(withZero!.offset).toBe(-1n);
    await waitUntil(
      'the acks=0 batch to land',
      () => cluster.log('orders', 0).values().length === 2,
    );
    expect(cluster.broker(1).requests.produce.map((r) => r.acks)).toEqual([-1, 0]);
  });
});

describe('the sender', () => {
  it('sends one Produce per leader, with at most maxInFlightRequests outstanding', async () => {
    const cluster = await FakeCluster.start([orders]);
    const release = deferred();
    for (const [id, broker] of cluster.brokers) {
      broker.handle({
        produce: async (request) => {
          await release.promise;
          return cluster.produce(id, request);
        },
      });
    }
    // Not idempotent: an idempotent producer keeps one batch per partition in flight (below).
    const producer = await cluster.producer({
      maxInFlightRequests: 2,
      batchBytes: 200,
      idempotent: false,
    });
    const sends = Array.from({ length: 40 }, (_, i) =>
      producer.send({
        topic: 'orders',
        messages: [{ value: `value-${i}`.padEnd(100, '.'), partition: i % 4 }],
      }),
    );
    await waitUntil('both brokers to hold two requests', () =>
      [...cluster.brokers.values()].every((b) => b.open.produce === 2),
    );
    release.resolve();
    const written = (await Promise.all(sends)).flat();
    for (const [id, broker] of cluster.brokers) {
      expect(broker.maxOpen.produce).toBe(2);
      // Each request carries only partitions this broker leads.
      for (const request of broker.requests.produce) {
        for (const p of request.topics[0]!.partitions) {
          expect(orders.partitions[p.partition]!.leader).toBe(id);
        }
      }
    }
    // Offsets per partition follow send order.
    for (let partition = 0; partition < 4; partition++) {
      const offsets = written.filter((m) => m.partition === partition).map((m) => m.offset);
      expect(offsets).toEqual(offsets.map((_, i) => BigInt(i)));
      expect(cluster.log('orders', partition).values()).toEqual(
        Array.from({ length: 10 }, (_, i) => `value-${i * 4 + partition}`.padEnd(100, '.')),
      );
    }
  });

  it('resends a batch after a retriable error with the same bytes and sequence', async () => {
    const cluster = await FakeCluster.start([orders]);
    let refusals = 0;
    cluster.broker(1).handle({
      produce: (request) =>
        cluster.produce(1, request, (_, p) =>
          refusals++ < 2 ? failed(p.partition, ErrorCode.NOT_ENOUGH_REPLICAS) : undefined,
        ),
    });
    const producer = await cluster.producer();
    const written = await producer.send({
      topic: 'orders',
      messages: [
        { value: 'a', partition: 0 },
        { value: 'b', partition: 0 },
      ],
    });
    expect(written.map((m) => m.offset)).toEqual([0n, 1n]);
    const sent = cluster.sentBatches('orders', 0);
    expect(sent).toHaveLength(3);
    expect(new Set(sent.map((b) => b.buffer.toString('hex'))).size).toBe(1);
    expect(sent[0]!.producerId).toBe(producer.producerIdentity!.producerId);
    expect(sent[0]!.baseSequence).toBe(0);
    expect(cluster.log('orders', 0).values()).toEqual(['a', 'b']);
  });

  it("answers a retry of a batch the broker already wrote with the broker's original offsets", async () => {
    const cluster = await FakeCluster.start([orders]);
    let first = true;
    cluster.broker(1).handle({
      produce: (request) => {
        const answer = cluster.produce(1, request);
        if (!first) return answer;
        first = false;
        // Written, but the answer is lost: the client sees a timeout.
        throw new WeirError(ErrorCode.REQUEST_TIMED_OUT, 'the ISR did not catch up in time');
      },
    });
    const producer = await cluster.producer();
    const written = await producer.send({
      topic: 'orders',
      messages: [{ value: 'once', partition: 0 }],
    });
    expect(written[0]!.offset).toBe(0n);
    expect(cluster.sentBatches('orders', 0)).toHaveLength(2);
    expect(cluster.log('orders', 0).values()).toEqual(['once']);
  });

  it('follows the leader named in NOT_LEADER_OR_FOLLOWER without asking for metadata (KIP-951)', async () => {
    const cluster = await FakeCluster.start([orders]);
    const producer = await cluster.producer();
    await producer.send({ topic: 'orders', messages: [{ value: 'before', partition: 0 }] });
    const metadataCalls = cluster.metadataCalls();
    // Partition 0 moves to broker 2; broker 1 says so in its answer.
    cluster.topics = [
      { name: 'orders', partitions: [{ leader: 2, epoch: 1 }, ...orders.partitions.slice(1)] },
    ];
    const [moved] = await producer.send({
      topic: 'orders',
      messages: [{ value: 'after', partition: 0 }],
    });
    expect(moved!.offset).toBe(1n);
    expect(cluster.metadataCalls()).toBe(metadataCalls);
    expect(cluster.broker(2).requests.produce).toHaveLength(1);
    expect(cluster.log('orders', 0).values()).toEqual(['before', 'after']);
  });

  it('refreshes metadata to find the new leader when the answer names none', async () => {
    const cluster = await FakeCluster.start([orders]);
    const producer = await cluster.producer();
    const metadataCalls = cluster.metadataCalls();
    cluster.topics = [
      { name: 'orders', partitions: [{ leader: 2, epoch: 1 }, ...orders.partitions.slice(1)] },
    ];
    cluster.broker(1).handle({
      produce: (request) =>
        cluster.produce(1, request, (_, p) =>
          failed(p.partition, ErrorCode.NOT_LEADER_OR_FOLLOWER),
        ),
    });
    const [written] = await producer.send({
      topic: 'orders',
      messages: [{ value: 'x', partition: 0 }],
    });
    expect(written!.offset).toBe(0n);
    expect(cluster.metadataCalls()).toBeGreaterThan(metadataCalls);
    expect(cluster.log('orders', 0).values()).toEqual(['x']);
  });

  it('fails a batch with a non-retriable error, and goes on with a new producer id', async () => {
    const cluster = await FakeCluster.start([orders]);
    let refuse = true;
    cluster.broker(1).handle({
      produce: (request) =>
        cluster.produce(1, request, (_, p) =>
          refuse ? failed(p.partition, ErrorCode.MESSAGE_TOO_LARGE) : undefined,
        ),
    });
    const producer = await cluster.producer();
    const firstId = producer.producerIdentity!.producerId;
    const error = await rejection(
      producer.send({ topic: 'orders', messages: [{ value: 'big', partition: 0 }] }),
    );
    expect(error.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(error.retriable).toBe(false);
    refuse = false;
    await producer.send({ topic: 'orders', messages: [{ value: 'small', partition: 0 }] });
    // The failed batch left a gap in sequence 0..; the next batch starts a new producer id at 0.
    const [, next] = cluster.sentBatches('orders', 0);
    expect(producer.producerIdentity!.producerId).not.toBe(firstId);
    expect(next!.producerId).toBe(producer.producerIdentity!.producerId);
    expect(next!.baseSequence).toBe(0);
  });

  it("gives up on a retriable error when deliveryTimeoutMs runs out, with the broker's code", async () => {
    const cluster = await FakeCluster.start([orders]);
    cluster.broker(1).handle({
      produce: (request) =>
        cluster.produce(1, request, (_, p) => failed(p.partition, ErrorCode.NOT_ENOUGH_REPLICAS)),
    });
    const producer = await cluster.producer({ deliveryTimeoutMs: 600, requestTimeoutMs: 300 });
    const startedMs = Date.now();
    const error = await rejection(
      producer.send({ topic: 'orders', messages: [{ value: 'x', partition: 0 }] }),
    );
    expect(error.code).toBe(ErrorCode.NOT_ENOUGH_REPLICAS);
    expect(error.retriable).toBe(true);
    expect(error.message).toMatch(
      /gave up after \d+ attempts in \d+ ms: deliveryTimeoutMs \(600 ms\) ran out/,
    );
    expect(cluster.sentBatches('orders', 0).length).toBeGreaterThan(2);
    expect(Date.now() - startedMs).toBeLessThan(600 + 2_000);
  });

  it('gives up after `retries` retries', async () => {
    const cluster = await FakeCluster.start([orders]);
    cluster.broker(1).handle({
      produce: (request) =>
        cluster.produce(1, request, (_, p) => failed(p.partition, ErrorCode.LEADER_NOT_AVAILABLE)),
    });
    const producer = await cluster.producer({ retries: 2, idempotent: false });
    const error = await rejection(
      producer.send({ topic: 'orders', messages: [{ value: 'x', partition: 0 }] }),
    );
    expect(error.code).toBe(ErrorCode.LEADER_NOT_AVAILABLE);
    expect(error.message).toMatch(/after 3 attempts .* retries \(2\) ran out/);
    expect(cluster.sentBatches('orders', 0)).toHaveLength(3);
  });

  it('an idempotent producer pipelines the batches of a partition on its ordered stream', async () => {
    // One ProduceStream per broker keeps requests in order, so sequences of one partition may be
    // in flight together (up to maxInFlightRequests) and still reach the broker in order.
    const cluster = await FakeCluster.start([orders]);
    const arrived: number[] = [];
    const allArrived = deferred();
    cluster.broker(1).handle({
      produce: async (request) => {
        arrived.push(sequenceOf(request));
        if (arrived.length === 3) allArrived.resolve();
        await allArrived.promise; // nothing is answered until three are in flight together
        return cluster.produce(1, request);
      },
    });
    const producer = await cluster.producer({ maxInFlightRequests: 5 });
    const sends = [];
    for (const value of ['a', 'b', 'c']) {
      sends.push(producer.send({ topic: 'orders', messages: [{ value, partition: 0 }] }));
      const count = sends.length;
      await waitUntil(`request ${count} to arrive`, () => arrived.length === count);
    }
    const written = await Promise.all(sends);
    expect(written.map(([metadata]) => metadata!.offset)).toEqual([0n, 1n, 2n]);
    expect(arrived).toEqual([0, 1, 2]);
    expect(cluster.broker(1).maxOpen.produce).toBe(3);
  });

  it('retries a failed batch alone, then the batches behind it, in sequence order', async () => {
    const cluster = await FakeCluster.start([orders]);
    const arrived: number[] = [];
    const bothInFlight = deferred();
    let nextSequence = 0;
    let failedFirst = false;
    cluster.broker(1).handle({
      produce: async (request) => {
        const sequence = sequenceOf(request);
        arrived.push(sequence);
        if (arrived.length === 2) bothInFlight.resolve();
        if (arrived.length <= 2) await bothInFlight.promise;
        // As a broker: the first attempt of sequence 0 fails (retriable), so sequence 1, right
        // behind it on the stream, does not follow what the log has.
        const refuse = (code: ErrorCode) =>
          cluster.produce(1, request, (_, p) => failed(p.partition, code));
        if (sequence === 0 && !failedFirst) {
          failedFirst = true;
          return refuse(ErrorCode.NOT_ENOUGH_REPLICAS);
        }
        if (sequence !== nextSequence) return refuse(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
        nextSequence++;
        return cluster.produce(1, request);
      },
    });
    const producer = await cluster.producer({ maxInFlightRequests: 5 });
    const a = producer.send({ topic: 'orders', messages: [{ value: 'a', partition: 0 }] });
    await waitUntil('the first request to arrive', () => arrived.length === 1);
    const b = producer.send({ topic: 'orders', messages: [{ value: 'b', partition: 0 }] });
    const [[writtenA], [writtenB]] = await Promise.all([a, b]);
    expect([writtenA!.offset, writtenB!.offset]).toEqual([0n, 1n]);
    // The retry of sequence 0 went alone; sequence 1 followed once it was answered.
    expect(arrived).toEqual([0, 1, 0, 1]);
    const logged = cluster.log('orders', 0).batches.map((batch) => RecordBatch.view(batch));
    expect(logged.map((batch) => [batch.baseSequence, batch.baseOffset])).toEqual([
      [0, 0n],
      [1, 1n],
    ]);
  });

  it('stops an idempotent producer on a sequence error it cannot explain', async () => {
    const cluster = await FakeCluster.start([orders]);
    cluster.broker(1).handle({
      produce: (request) =>
        cluster.produce(1, request, (_, p) =>
          failed(p.partition, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
        ),
    });
    const producer = await cluster.producer();
    const error = await rejection(
      producer.send({ topic: 'orders', messages: [{ value: 'x', partition: 0 }] }),
    );
    expect(error.code).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    expect(error.message).toMatch(
      /the producer stopped: .*create a new producer with weir.producer\(\)/,
    );
    const later = await rejection(
      producer.send({ topic: 'orders', messages: [{ value: 'y', partition: 1 }] }),
    );
    expect(later).toBe(error);
  });

  it('stops on INVALID_PRODUCER_EPOCH: a newer producer took over', async () => {
    const cluster = await FakeCluster.start([orders]);
    cluster.broker(2).handle({
      produce: (request) =>
        cluster.produce(2, request, (_, p) =>
          failed(p.partition, ErrorCode.INVALID_PRODUCER_EPOCH),
        ),
    });
    const producer = await cluster.producer();
    const pending = producer.send({ topic: 'orders', messages: [{ value: 'x', partition: 0 }] });
    const error = await rejection(
      producer.send({ topic: 'orders', messages: [{ value: 'y', partition: 1 }] }),
    );
    expect(error.code).toBe(ErrorCode.INVALID_PRODUCER_EPOCH);
    // Records of other partitions not yet acknowledged fail with it, or were written before.
    await pending.catch((caught: unknown) => expect(caught).toBe(error));
  });
});

describe('buffer memory, flush and close', () => {
  it('makes send() wait while bufferMemoryBytes is used up, until records are acknowledged', async () => {
    const cluster = await FakeCluster.start([orders]);
    const release = deferred();
    cluster.broker(1).handle({
      produce: async (request) => {
        await release.promise;
        return cluster.produce(1, request);
      },
    });
    const producer = await cluster.producer({ bufferMemoryBytes: 1_500, batchBytes: 1_000 });
    const value = 'x'.repeat(900);
    const first = producer.send({ topic: 'orders', messages: [{ value, partition: 0 }] });
    await waitUntil('the first batch to be sent', () => cluster.broker(1).open.produce === 1);
    let secondDone = false;
    const second = producer
      .send({ topic: 'orders', messages: [{ value, partition: 2 }] })
      .finally(() => (secondDone = true));
    expect(cluster.broker(1).requests.produce).toHaveLength(1);
    expect(secondDone).toBe(false);
    release.resolve();
    await Promise.all([first, second]);
    expect(cluster.log('orders', 2).values()).toEqual([value]);
  });

  it('gives up waiting for memory at deliveryTimeoutMs', async () => {
    const cluster = await FakeCluster.start([orders]);
    const release = deferred();
    cluster.broker(1).handle({
      produce: async (request) => {
        await release.promise;
        return cluster.produce(1, request);
      },
    });
    const producer = await cluster.producer({
      bufferMemoryBytes: 1_500,
      deliveryTimeoutMs: 400,
      requestTimeoutMs: 300,
    });
    const value = 'x'.repeat(900);
    const first = producer.send({ topic: 'orders', messages: [{ value, partition: 0 }] });
    first.catch(() => undefined);
    const error = await rejection(
      producer.send({ topic: 'orders', messages: [{ value, partition: 2 }] }),
    );
    expect(error.code).toBe(ErrorCode.REQUEST_TIMED_OUT);
    expect(error.message).toMatch(/buffer memory/);
    release.resolve();
  });

  it('flush() sends at once instead of waiting for lingerMs', async () => {
    const cluster = await FakeCluster.start([orders]);
    const producer = await cluster.producer({ lingerMs: 60_000 });
    let done = false;
    const sent = producer
      .send({ topic: 'orders', messages: [{ value: 'x', partition: 0 }] })
      .finally(() => (done = true));
    await producer.flush();
    expect(done).toBe(true);
    expect((await sent)[0]!.offset).toBe(0n);
  });

  it('close() delivers what was sent before it', async () => {
    const cluster = await FakeCluster.start([orders]);
    const producer = await cluster.producer({ lingerMs: 60_000 });
    const sent = producer.send({ topic: 'orders', messages: [{ value: 'x', partition: 1 }] });
    await producer.close();
    expect((await sent)[0]!.offset).toBe(0n);
  });
});

describe('an idempotent producer pipelining through failures (property)', () => {
  type Step = 'append' | 'refuse' | 'append-then-time-out' | 'answer-late';
  const steps = fc.array(
    fc.constantFrom<Step>(
      'append',
      'append',
      'append',
      'refuse',
      'append-then-time-out',
      'answer-late',
    ),
    { minLength: 5, maxLength: 30 },
  );

  it('writes every record exactly once, in send order, whatever the broker answers', async () => {
    await fc.assert(
      fc.asyncProperty(steps, async (script) => {
        const cluster = await FakeCluster.start([orders], 1);
        let nextSequence = 0;
        let step = 0;
        cluster.broker(1).handle({
          // As a broker: requests are checked and appended in arrival order; only the answers
          // may be delayed, and some fail before or after the append.
          produce: async (request) => {
            const action = script[step++ % script.length]!;
            const answer = cluster.produce(1, request, (_, p) => {
              const batch = RecordBatch.view(Buffer.from(p.records));
              if (action === 'refuse') return failed(p.partition, ErrorCode.NOT_ENOUGH_REPLICAS);
              if (batch.baseSequence > nextSequence) {
                return failed(p.partition, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
              }
              if (batch.baseSequence === nextSequence) {
                nextSequence = batch.baseSequence + batch.lastOffsetDelta + 1;
              }
              if (action !== 'append-then-time-out') return undefined; // append (or dedupe)
              cluster.appendAt(1, 'orders', p);
              return failed(p.partition, ErrorCode.REQUEST_TIMED_OUT);
            });
            if (action === 'answer-late') await new Promise((done) => setTimeout(done, 5));
            return answer;
          },
        });
        const producer = await cluster.producer({
          maxInFlightRequests: 5,
          batchBytes: 100,
          deliveryTimeoutMs: 30_000,
          retryBackoffMs: 1,
          retryBackoffMaxMs: 5,
        });
        const values = Array.from({ length: 25 }, (_, i) => `value-${String(i).padStart(2, '0')}`);
        const sent = await Promise.all(
          values.map((value) =>
            producer.send({ topic: 'orders', messages: [{ value, partition: 0 }] }),
          ),
        );
        const logged = cluster
          .log('orders', 0)
          .batches.flatMap((bytes) => [...RecordBatch.view(bytes).records()])
          .map((record) => ({ offset: record.offset, value: record.value?.toString() }));

        expect(logged.map((record) => record.value)).toEqual(values);
        expect(sent.map(([metadata]) => metadata!.offset)).toEqual(
          logged.map((record) => record.offset),
        );
      }),
      { numRuns: 15 },
    );
  }, 120_000);
});
