// M4's replicated data path on real nodes (in-process, real listeners, Raft storage, partition
// logs and gRPC): acks=all puts a batch on every in-sync replica, byte for byte; bad input is
// refused with its error code and leaves the log as it was; idempotent retries are answered
// with their original offsets; and with too few replicas acks=all fails fast while acks=1 works.

import { type ServiceError, credentials } from '@grpc/grpc-js';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RecordBatchBuilder, fromServiceError, proto } from '@weir/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessCluster, call, waitFor } from '../src/index.js';

type ProduceResponse = proto.weir.broker.ProduceResponse;
type MetadataResponse = proto.weir.broker.MetadataResponse;

let cluster: InProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

function batch(
  values: readonly string[],
  producer?: { id: bigint; epoch: number; sequence: number },
): Buffer {
  const builder = new RecordBatchBuilder(
    producer === undefined
      ? {}
      : { producerId: producer.id, producerEpoch: producer.epoch, baseSequence: producer.sequence },
  );
  for (const value of values) builder.append({ key: null, value });
  return builder.build();
}

async function leaderOf(c: InProcessCluster, topic: string, partition = 0): Promise<number> {
  return waitFor(`a leader for ${topic}-${partition}`, async () => {
    const metadata = await call<MetadataResponse>((callback) =>
      c.broker([...c.servers.keys()][0]!).metadata({ topics: [topic] }, callback),
    );
    const leader = metadata.topics[0]?.partitions.find((p) => p.partition === partition)?.leaderId;
    return leader !== undefined && leader >= 0 ? leader : undefined;
  });
}

async function produce(
  c: InProcessCluster,
  via: number,
  request: { acks: number; topic: string; partition?: number; records: Buffer; timeoutMs?: number },
): Promise<proto.weir.broker.ProduceResponse_Partition> {
  const response = await call<ProduceResponse>((callback) =>
    c.broker(via).produce(
      {
        acks: request.acks,
        timeoutMs: request.timeoutMs ?? 10_000,
        topics: [
          {
            topic: request.topic,
            partitions: [{ partition: request.partition ?? 0, records: request.records }],
          },
        ],
      },
      callback,
    ),
  );
  return response.topics[0]!.partitions[0]!;
}

/** The bytes of a replica's log segments for a partition, concatenated. */
async function segmentBytes(
  c: InProcessCluster,
  node: number,
  topic: string,
  partition = 0,
): Promise<Buffer> {
  const dir = join(c.dir, `node-${node}`, 'partitions', `${topic}-${partition}`);
  const files = (await readdir(dir)).filter((name) => name.endsWith('.log')).sort();
  return Buffer.concat(await Promise.all(files.map((name) => readFile(join(dir, name)))));
}

function replicaOf(c: InProcessCluster, node: number, topic: string) {
  const replicas = c.servers.get(node)!.node.brokerRole!.dataPlane.replicas;
  const topicId = replicas.metadataImage!.topic(topic)!.topicId;
  return replicas.partition(topicId, 0)!;
}

describe('the replicated data path', () => {
  it('acks=all: the batches are on all three replicas, byte for byte, up to the high watermark', async () => {
    cluster = await InProcessCluster.start(3);
    await cluster.createTopic('orders', 1, 3);
    const leader = await leaderOf(cluster, 'orders');
    const offsets: bigint[] = [];
    for (let i = 0; i < 30; i++) {
      const answer = await produce(cluster, leader, {
        acks: -1,
        topic: 'orders',
        records: batch([`a-${i}`, `b-${i}`]),
      });
      expect(answer.error?.code).toBe(ErrorCode.NONE);
      offsets.push(answer.baseOffset);
    }
    expect(offsets).toEqual(Array.from({ length: 30 }, (_, i) => BigInt(2 * i)));
    // Acknowledged with acks=all means below the high watermark on the leader, and on the
    // followers' disks: compare the segment bytes.
    expect(replicaOf(cluster, leader, 'orders').highWatermark).toBe(60n);
    const leaderBytes = await segmentBytes(cluster, leader, 'orders');
    for (const node of [1, 2, 3]) {
      expect(replicaOf(cluster, node, 'orders').logEndOffset).toBe(60n);
      expect((await segmentBytes(cluster, node, 'orders')).equals(leaderBytes)).toBe(true);
    }
  });

  it('refuses bad input with its error code and leaves the log unchanged', async () => {
    cluster = await InProcessCluster.start(3, {}, {});
    await cluster.createTopic('small', 1, 3, { 'max.message.bytes': '1024' });
    const leader = await leaderOf(cluster, 'small');
    expect(
      (await produce(cluster, leader, { acks: -1, topic: 'small', records: batch(['ok']) })).error
        ?.code,
    ).toBe(ErrorCode.NONE);
    const before = await segmentBytes(cluster, leader, 'small');

    const corrupt = batch(['will be corrupted']);
    const last = corrupt.length - 1; // a record byte: covered by the CRC
    corrupt.writeUInt8(corrupt.readUInt8(last) ^ 0xff, last);
    const cases: { records: Buffer; topic?: string; partition?: number; code: ErrorCode }[] = [
      { records: corrupt, code: ErrorCode.CORRUPT_MESSAGE },
      { records: batch(['x'.repeat(2_000)]), code: ErrorCode.MESSAGE_TOO_LARGE },
      {
        records: batch(['to nowhere']),
        topic: 'no-such-topic',
        code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      },
      { records: batch(['negative']), partition: -1, code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION },
      { records: Buffer.from('not a record batch'), code: ErrorCode.CORRUPT_MESSAGE },
    ];
    for (const { records, topic, partition, code } of cases) {
      const answer = await produce(cluster, leader, {
        acks: -1,
        topic: topic ?? 'small',
        partition,
        records,
      });
      expect({ topic, partition, code: answer.error?.code }).toEqual({ topic, partition, code });
      expect(answer.error?.message).not.toBe('');
    }
    const badAcks = await produce(cluster, leader, {
      acks: 5,
      topic: 'small',
      records: batch(['acks']),
    }).catch((error: { details?: string }) => error.details);
    expect(badAcks).toMatch(/^INVALID_REQUIRED_ACKS: acks must be 0, 1 or -1/);

    expect(replicaOf(cluster, leader, 'small').logEndOffset).toBe(1n);
    expect((await segmentBytes(cluster, leader, 'small')).equals(before)).toBe(true);
  });

  it('answers a retried idempotent batch with its original offset and refuses a sequence gap', async () => {
    cluster = await InProcessCluster.start(3);
    await cluster.createTopic('idempotent', 1, 3);
    const leader = await leaderOf(cluster, 'idempotent');
    const { producerId, producerEpoch } = await call<proto.weir.broker.InitProducerIdResponse>(
      (callback) => cluster!.broker(leader).initProducerId({}, callback),
    );
    const producer = (sequence: number) => ({ id: producerId, epoch: producerEpoch, sequence });
    await produce(cluster, leader, { acks: -1, topic: 'idempotent', records: batch(['other']) });
    const first = await produce(cluster, leader, {
      acks: -1,
      topic: 'idempotent',
      records: batch(['one', 'two'], producer(0)),
    });
    const retry = await produce(cluster, leader, {
      acks: -1,
      topic: 'idempotent',
      records: batch(['one', 'two'], producer(0)),
    });
    expect(first).toMatchObject({ error: { code: ErrorCode.NONE }, baseOffset: 1n });
    expect(retry).toMatchObject({ error: { code: ErrorCode.NONE }, baseOffset: 1n });
    const gap = await produce(cluster, leader, {
      acks: -1,
      topic: 'idempotent',
      records: batch(['three'], producer(5)),
    });
    expect(gap.error?.code).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    expect(replicaOf(cluster, leader, 'idempotent').logEndOffset).toBe(3n);
  });

  it('with two of three brokers down, acks=all fails fast with NOT_ENOUGH_REPLICAS and acks=1 succeeds', async () => {
    // One controller and three brokers, so that two brokers can die without losing the quorum.
    cluster = await InProcessCluster.start(
      4,
      { 'broker.session.timeout.ms': '1500', 'broker.heartbeat.interval.ms': '300' },
      { controllers: [4], brokers: [1, 2, 3] },
    );
    await cluster.createTopic('durable', 1, 3, { 'min.insync.replicas': '2' }, 1);
    const leader = await leaderOf(cluster, 'durable');
    const followers = [1, 2, 3].filter((id) => id !== leader);
    expect(
      (await produce(cluster, leader, { acks: -1, topic: 'durable', records: batch(['before']) }))
        .error?.code,
    ).toBe(ErrorCode.NONE);
    for (const id of followers) await cluster.stopNode(id);
    // The controller fences them and takes them out of the ISR.
    await waitFor('the ISR to shrink to the leader', () =>
      replicaOf(cluster!, leader, 'durable').isr.length === 1 ? true : undefined,
    );
    const startedAt = Date.now();
    const all = await produce(cluster, leader, {
      acks: -1,
      topic: 'durable',
      records: batch(['needs two']),
      timeoutMs: 30_000,
    });
    expect(all.error?.code).toBe(ErrorCode.NOT_ENOUGH_REPLICAS);
    expect(all.error?.message).toContain('min.insync.replicas=2');
    // Fast: refused before appending, not after the 30 s request timeout.
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    const one = await produce(cluster, leader, {
      acks: 1,
      topic: 'durable',
      records: batch(['acks one']),
    });
    expect(one).toMatchObject({ error: { code: ErrorCode.NONE }, baseOffset: 1n });
  });
});

describe('divergence', () => {
  it('an old leader with unreplicated records truncates them and then equals the new leader up to HW', async () => {
    cluster = await InProcessCluster.start(3);
    await cluster.createTopic('diverge', 1, 3);
    const oldLeader = await leaderOf(cluster, 'diverge');
    const followers = [1, 2, 3].filter((id) => id !== oldLeader);
    for (let i = 0; i < 5; i++) {
      const answer = await produce(cluster, oldLeader, {
        acks: -1,
        topic: 'diverge',
        records: batch([`r-${i}`]),
      });
      expect(answer.error?.code).toBe(ErrorCode.NONE);
    }
    // The followers stop fetching (still in the ISR): what the leader appends now stays on it.
    const fetchersOf = (id: number) =>
      cluster!.servers.get(id)!.node.brokerRole!.dataPlane.fetchers;
    for (const id of followers) await fetchersOf(id).pauseFetching();
    for (let i = 0; i < 3; i++) {
      const answer = await produce(cluster, oldLeader, {
        acks: 1,
        topic: 'diverge',
        records: batch([`lost-${i}`]),
      });
      expect(answer).toMatchObject({ error: { code: ErrorCode.NONE }, baseOffset: BigInt(5 + i) });
    }
    expect(replicaOf(cluster, oldLeader, 'diverge').logEndOffset).toBe(8n);

    // The leader goes; a follower takes over at a new leader epoch and writes over offsets 5..6.
    await cluster.stopNode(oldLeader);
    for (const id of followers) fetchersOf(id).resumeFetching();
    const newLeader = await waitFor('a new leader', async () => {
      const id = await leaderOf(cluster!, 'diverge');
      return id !== oldLeader ? id : undefined;
    });
    for (let i = 0; i < 2; i++) {
      const answer = await produce(cluster, newLeader, {
        acks: -1,
        topic: 'diverge',
        records: batch([`new-${i}`]),
      });
      expect(answer).toMatchObject({ error: { code: ErrorCode.NONE }, baseOffset: BigInt(5 + i) });
    }

    // Back as a follower, the old leader learns where its log diverged, truncates, catches up.
    await cluster.startNode(oldLeader);
    const leaderLog = replicaOf(cluster, newLeader, 'diverge');
    await waitFor('the old leader to catch up', () => {
      const replicas = cluster!.servers.get(oldLeader)!.node.brokerRole!.dataPlane.replicas;
      const topicId = replicas.metadataImage?.topic('diverge')?.topicId;
      const replica = topicId === undefined ? undefined : replicas.partition(topicId, 0);
      return replica?.logEndOffset === leaderLog.logEndOffset;
    });
    expect(leaderLog.logEndOffset).toBe(7n);
    expect(
      (await segmentBytes(cluster, oldLeader, 'diverge')).equals(
        await segmentBytes(cluster, newLeader, 'diverge'),
      ),
    ).toBe(true);
  });
});

describe('ISR maintenance', () => {
  it('a follower that stops fetching leaves the ISR, writes go on with min.insync.replicas=2, and it rejoins once caught up', async () => {
    cluster = await InProcessCluster.start(3, { 'replica.lag.time.max.ms': '1000' });
    await cluster.createTopic('isr', 1, 3, { 'min.insync.replicas': '2' });
    const leader = await leaderOf(cluster, 'isr');
    const [lagging] = [1, 2, 3].filter((id) => id !== leader);
    const isrInImage = () =>
      cluster!.servers.get(leader)!.node.brokerRole!.listener.image.topic('isr')!.partitions.get(0)!
        .isr;
    expect(
      (await produce(cluster, leader, { acks: -1, topic: 'isr', records: batch(['first']) })).error
        ?.code,
    ).toBe(ErrorCode.NONE);
    await cluster.servers.get(lagging!)!.node.brokerRole!.dataPlane.fetchers.pauseFetching();

    // Acknowledged once the ISR has shrunk (the high watermark waits for the old ISR until then).
    const during = await produce(cluster, leader, {
      acks: -1,
      topic: 'isr',
      records: batch(['while lagging']),
    });
    expect(during.error?.code).toBe(ErrorCode.NONE);
    await waitFor('the ISR change to commit', () => !isrInImage().includes(lagging!));
    expect(isrInImage()).toHaveLength(2);
    for (let i = 0; i < 5; i++) {
      const answer = await produce(cluster, leader, {
        acks: -1,
        topic: 'isr',
        records: batch([`more-${i}`]),
      });
      expect(answer.error?.code).toBe(ErrorCode.NONE);
    }

    cluster.servers.get(lagging!)!.node.brokerRole!.dataPlane.fetchers.resumeFetching();
    await waitFor('the follower to rejoin the ISR', () => isrInImage().includes(lagging!));
    const leaderReplica = replicaOf(cluster, leader, 'isr');
    await waitFor(
      'the follower to catch up',
      () => replicaOf(cluster!, lagging!, 'isr').logEndOffset === leaderReplica.logEndOffset,
    );
    expect(leaderReplica.logEndOffset).toBe(7n);
    expect(
      (await segmentBytes(cluster, lagging!, 'isr')).equals(
        await segmentBytes(cluster, leader, 'isr'),
      ),
    ).toBe(true);
  });
});

describe('fetch limits', () => {
  it('only the first partition with data may exceed maxBytes with a whole batch (KIP-74)', async () => {
    cluster = await InProcessCluster.start(1);
    await cluster.createTopic('wide', 3, 1);
    const value = 'v'.repeat(1_000);
    for (const partition of [0, 1, 2]) {
      const answer = await produce(cluster, 1, {
        acks: 1,
        topic: 'wide',
        partition,
        records: batch([value]),
      });
      expect(answer.error?.code).toBe(ErrorCode.NONE);
    }
    const fetched = await call<proto.weir.broker.FetchResponse>((callback) =>
      cluster!.broker(1).fetch(
        {
          maxWaitMs: 0,
          minBytes: 1,
          maxBytes: 100,
          topics: [
            {
              topic: 'wide',
              partitions: [0, 1, 2].map((partition) => ({
                partition,
                fetchOffset: 0n,
                partitionMaxBytes: 1 << 20,
                currentLeaderEpoch: -1,
              })),
            },
          ],
        },
        callback,
      ),
    );
    const sizes = fetched.topics[0]!.partitions.map((p) => p.records.length);
    expect(sizes[0]).toBeGreaterThan(1_000);
    expect(sizes.slice(1)).toEqual([0, 0]);
    for (const partition of fetched.topics[0]!.partitions) expect(partition.highWatermark).toBe(1n);
  });
});

describe('ProduceStream', () => {
  it('starts requests in the order they arrive, answers each by correlation id, and survives a refused one', async () => {
    cluster = await InProcessCluster.start(3);
    await cluster.createTopic('ordered', 1, 3);
    const leader = await leaderOf(cluster, 'ordered');
    const stream = cluster.broker(leader).produceStream();
    const answers = new Map<bigint, proto.weir.broker.ProduceStreamResponse>();
    const allAnswered = new Promise<void>((resolve) =>
      stream.on('data', (answer: proto.weir.broker.ProduceStreamResponse) => {
        answers.set(answer.correlationId, answer);
        if (answers.size === 12) resolve();
      }),
    );
    const request = (acks: number, sequence: number) => ({
      acks,
      timeoutMs: 10_000,
      topics: [
        {
          topic: 'ordered',
          partitions: [
            { partition: 0, records: batch([`s-${sequence}`], { id: 9n, epoch: 0, sequence }) },
          ],
        },
      ],
    });
    // Eleven sequences written at once, and an acks=5 request among them: unary calls could
    // reach the broker out of order and fail with OUT_OF_ORDER_SEQUENCE_NUMBER; a stream cannot.
    for (let sequence = 0; sequence < 11; sequence++) {
      stream.write({ correlationId: BigInt(sequence), request: request(-1, sequence) });
      if (sequence === 5) stream.write({ correlationId: 100n, request: request(5, 99) });
    }
    await allAnswered;
    stream.end();
    for (let sequence = 0; sequence < 11; sequence++) {
      const answer = answers.get(BigInt(sequence))!;
      expect(answer.error).toBeUndefined();
      expect(answer.response!.topics[0]!.partitions[0]).toMatchObject({
        error: { code: ErrorCode.NONE },
        baseOffset: BigInt(sequence),
      });
    }
    expect(answers.get(100n)).toMatchObject({
      error: { code: ErrorCode.INVALID_REQUIRED_ACKS },
      response: undefined,
    });
  });
});

describe('per-connection limits', () => {
  it('refuses Produce bytes past max.in.flight.bytes.per.connection while earlier requests wait for acks=all', async () => {
    cluster = await InProcessCluster.start(3, { 'max.in.flight.bytes.per.connection': '3000' });
    await cluster.createTopic('limited', 1, 3);
    const leader = await leaderOf(cluster, 'limited');
    // The followers stop fetching (still in the ISR), so acks=all requests stay in purgatory.
    const followers = [1, 2, 3].filter((id) => id !== leader);
    const fetchersOf = (id: number) =>
      cluster!.servers.get(id)!.node.brokerRole!.dataPlane.fetchers;
    for (const id of followers) await fetchersOf(id).pauseFetching();
    const record = (tag: string) => batch([tag.padEnd(1_200, '.')]);
    const send = (tag: string) =>
      produce(cluster!, leader, { acks: -1, topic: 'limited', records: record(tag) });

    const waiting = [send('first'), send('second')];
    await waitFor('both batches appended', () =>
      replicaOf(cluster!, leader, 'limited').logEndOffset === 2n ? true : undefined,
    );
    const refused = await send('third').then(
      () => undefined,
      (error: ServiceError) => fromServiceError(error),
    );
    expect(refused).toMatchObject({ code: ErrorCode.THROTTLING_QUOTA_EXCEEDED, retriable: true });
    expect(refused?.message).toContain('max.in.flight.bytes.per.connection=3000');
    expect(replicaOf(cluster, leader, 'limited').logEndOffset).toBe(2n);

    // Once replication completes them, the connection's bytes are free again.
    for (const id of followers) fetchersOf(id).resumeFetching();
    expect((await Promise.all(waiting)).map((answer) => answer.error?.code)).toEqual([
      ErrorCode.NONE,
      ErrorCode.NONE,
    ]);
    expect(await send('third')).toMatchObject({ error: { code: ErrorCode.NONE }, baseOffset: 2n });
  });
});

describe('checkpoints', () => {
  it('a cleanly stopped broker leaves its high watermarks and a producer snapshot', async () => {
    cluster = await InProcessCluster.start(3);
    await cluster.createTopic('kept', 1, 3);
    const leader = await leaderOf(cluster, 'kept');
    for (let sequence = 0; sequence < 4; sequence++) {
      const answer = await produce(cluster, leader, {
        acks: -1,
        topic: 'kept',
        records: batch([`v${sequence}`], { id: 7n, epoch: 0, sequence }),
      });
      expect(answer.error?.code).toBe(ErrorCode.NONE);
    }
    await cluster.stopNode(leader);
    const partitions = join(cluster.dir, `node-${leader}`, 'partitions');
    expect(await readFile(join(partitions, 'replication-offset-checkpoint'), 'utf8')).toBe(
      '0\n1\nkept 0 4\n',
    );
    const dir = join(partitions, 'kept-0');
    expect((await readdir(dir)).filter((name) => name.endsWith('.snapshot'))).toEqual([
      `${'4'.padStart(20, '0')}.snapshot`,
    ]);
  });
});

describe('replication', () => {
  it('refuses a follower fetch with a broker epoch older than its registration (STALE_BROKER_EPOCH)', async () => {
    cluster = await InProcessCluster.start(3);
    await cluster.createTopic('epochs', 1, 3);
    const leader = await leaderOf(cluster, 'epochs');
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    const replicas = cluster.servers.get(leader)!.node.brokerRole!.dataPlane.replicas;
    const registered = replicas.metadataImage!.broker(follower)!.brokerEpoch;
    const partition = replicaOf(cluster, leader, 'epochs');

    const client = new proto.weir.broker.ReplicationServiceClient(
      `127.0.0.1:${cluster.servers.get(leader)!.node.ports.broker}`,
      credentials.createInsecure(),
    );
    const fetchWith = (brokerEpoch: bigint) =>
      new Promise<proto.weir.broker.ReplicaFetchResponse>((resolve, reject) => {
        const stream = client.replicaFetch();
        stream.once('data', (response: proto.weir.broker.ReplicaFetchResponse) => {
          stream.cancel();
          resolve(response);
        });
        stream.once('error', reject);
        stream.write({
          replicaId: follower,
          brokerEpoch,
          maxWaitMs: 0,
          minBytes: 0,
          maxBytes: 1 << 20,
          partitions: [
            {
              topicId: partition.topicId,
              partition: 0,
              fetchOffset: 0n,
              lastFetchedEpoch: -1,
              currentLeaderEpoch: partition.leaderEpoch,
            },
          ],
        });
      });
    try {
      expect(registered).toBeGreaterThan(0n);
      const stale = await fetchWith(registered - 1n);
      expect(stale.partitions[0]!.error).toMatchObject({ code: ErrorCode.STALE_BROKER_EPOCH });
      expect(stale.partitions[0]!.error!.message).toContain(`registration has epoch ${registered}`);
      const current = await fetchWith(registered);
      expect(current.partitions[0]!.error?.code).toBe(ErrorCode.NONE);
    } finally {
      client.close();
    }
  });
});

describe('ListOffsets', () => {
  it('answers earliest, latest and by timestamp (the first record at or after it)', async () => {
    cluster = await InProcessCluster.start(1);
    await cluster.createTopic('timed', 1, 1);
    for (const timestamps of [
      [1_000, 1_100],
      [2_000, 2_100],
    ]) {
      const builder = new RecordBatchBuilder();
      for (const timestamp of timestamps) builder.append({ value: `at ${timestamp}`, timestamp });
      const answer = await produce(cluster, 1, {
        acks: 1,
        topic: 'timed',
        records: builder.build(),
      });
      expect(answer.error?.code).toBe(ErrorCode.NONE);
    }
    const list = async (timestamp: bigint) => {
      const response = await call<proto.weir.broker.ListOffsetsResponse>((callback) =>
        cluster!.broker(1).listOffsets(
          {
            topics: [
              {
                topic: 'timed',
                partitions: [{ partition: 0, timestamp, currentLeaderEpoch: -1 }],
              },
            ],
          },
          callback,
        ),
      );
      const { offset, timestamp: found, error } = response.topics[0]!.partitions[0]!;
      return { code: error?.code, offset, timestamp: found };
    };
    expect(await list(-2n)).toMatchObject({ code: ErrorCode.NONE, offset: 0n });
    expect(await list(-1n)).toMatchObject({ code: ErrorCode.NONE, offset: 4n });
    expect(await list(1_050n)).toEqual({ code: ErrorCode.NONE, offset: 1n, timestamp: 1_100n });
    expect(await list(1_500n)).toEqual({ code: ErrorCode.NONE, offset: 2n, timestamp: 2_000n });
    expect(await list(9_999n)).toEqual({ code: ErrorCode.NONE, offset: -1n, timestamp: -1n });
    expect((await list(-7n)).code).toBe(ErrorCode.INVALID_REQUEST);
  });
});
