// M4's durability test on real processes: a continuous acks=all idempotent producer with
// unique values, while the partition's leader is killed with SIGKILL five times, each time
// following the leadership to its new home (and restarting the killed node). Afterwards every
// value that was acknowledged is read back exactly once, at the offset it was acknowledged with,
// and the log's offsets are contiguous: nothing acknowledged is lost, nothing is written twice.
// And a follower stopped with SIGSTOP for longer than replica.lag.time.max.ms (but less than its
// session) leaves the ISR by the leader's lag check alone, and rejoins after SIGCONT.

import { Weir } from '@weir/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster, TEST_SERVER_ARGS, waitFor } from './fixtures/process-cluster.js';

const TOPIC = 'durable';
const KILLS = 5;
/** Acknowledged records between two kills, so that each kill lands on a producing leader. */
const ACKS_BETWEEN_KILLS = 40;
/** Sends in flight at once: enough to have records in every state at the moment of a kill. */
const CONCURRENT_SENDS = 4;

describe('acks=all durability under leader kills', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start(3);
  }, 90_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it('keeps every acknowledged record, exactly once, at its offset, through 5 SIGKILLs of the leader', async () => {
    const admin = cluster.admin();
    await admin.createTopics({
      topics: [
        {
          name: TOPIC,
          partitions: 1,
          replicationFactor: 3,
          configs: { 'min.insync.replicas': '2' },
        },
      ],
    });
    const bootstrap = cluster.dev.bootstrap();
    const weir = new Weir({ bootstrap, clientId: 'durability-test', requestTimeoutMs: 5_000 });
    const producer = weir.producer({
      acks: 'all',
      idempotent: true,
      lingerMs: 0,
      deliveryTimeoutMs: 60_000,
      retryBackoffMs: 50,
    });
    await producer.connect();

    const acknowledged = new Map<string, bigint>();
    const failed: string[] = [];
    let producing = true;
    let next = 0;
    const sender = async (): Promise<void> => {
      while (producing) {
        const value = `value-${next++}`;
        try {
          const [metadata] = await producer.send({ topic: TOPIC, messages: [{ value }] });
          acknowledged.set(value, metadata!.offset);
        } catch {
          failed.push(value); // not acknowledged: it may or may not be in the log, but only once
        }
      }
    };
    const senders = Array.from({ length: CONCURRENT_SENDS }, () => sender());

    const leaderOf = async (): Promise<number | undefined> => {
      const [topic] = await cluster.admin().describeTopics([TOPIC]);
      return topic?.partitions[0]?.leader ?? undefined;
    };
    const isrSize = async (): Promise<number> => {
      const [topic] = await cluster.admin().describeTopics([TOPIC]);
      return topic?.partitions[0]?.isr.length ?? 0;
    };

    for (let kill = 0; kill < KILLS; kill++) {
      const target = acknowledged.size + ACKS_BETWEEN_KILLS;
      await waitFor(`${target} acknowledged records`, () => acknowledged.size >= target, 30_000);
      const leader = await waitFor('a leader', leaderOf);
      await cluster.kill(leader, 'SIGKILL');
      await waitFor(
        `a new leader after killing ${leader}`,
        async () => {
          const now = await leaderOf();
          return now !== undefined && now !== leader ? now : undefined;
        },
        20_000,
      );
      await cluster.restart(leader);
      await cluster.dev.waitUntilReady(30_000);
      // Back in the ISR before the next kill, so that each kill leaves two in-sync replicas.
      await waitFor(
        'the restarted node back in the ISR',
        async () => (await isrSize()) === 3,
        30_000,
      );
    }
    const target = acknowledged.size + ACKS_BETWEEN_KILLS;
    await waitFor(`${target} acknowledged records`, () => acknowledged.size >= target, 30_000);
    producing = false;
    await Promise.all(senders);
    await producer.close();

    // Read the whole partition back.
    const consumer = weir.consumer({ autoOffsetReset: 'earliest', maxWaitMs: 200 });
    consumer.assign([{ topic: TOPIC, partition: 0 }]);
    consumer.seek({ topic: TOPIC, partition: 0, offset: 0n });
    const maxAcknowledged = [...acknowledged.values()].reduce((a, b) => (b > a ? b : a), -1n);
    const log: { offset: bigint; value: string }[] = [];
    let emptyPollsAfterAcknowledged = 0;
    await waitFor(
      'the whole partition read back',
      async () => {
        const records = await consumer.poll();
        for (const record of records)
          log.push({ offset: record.offset, value: record.value!.toString() });
        const pastAcknowledged = (log.at(-1)?.offset ?? -1n) >= maxAcknowledged;
        emptyPollsAfterAcknowledged =
          records.length === 0 && pastAcknowledged ? emptyPollsAfterAcknowledged + 1 : 0;
        return emptyPollsAfterAcknowledged >= 3;
      },
      60_000,
    );
    await consumer.close();
    await admin.close();

    // Contiguous offsets from 0, and no value twice (idempotence across retries and failovers).
    expect(log.map((entry) => entry.offset)).toEqual(log.map((_, i) => BigInt(i)));
    const values = log.map((entry) => entry.value);
    expect(new Set(values).size).toBe(values.length);
    // Every acknowledged value is there, at the offset it was acknowledged with.
    const offsetOf = new Map(log.map((entry) => [entry.value, entry.offset]));
    const lost = [...acknowledged].filter(([value, offset]) => offsetOf.get(value) !== offset);
    expect(lost).toEqual([]);
    expect(acknowledged.size).toBeGreaterThanOrEqual((KILLS + 1) * ACKS_BETWEEN_KILLS);
  }, 300_000);
});

/** The session outlasts the pause, so only the leader's lag check can shrink the ISR. */
const LAG_SESSION_TIMEOUT_MS = 15_000;
const REPLICA_LAG_TIME_MAX_MS = 1_500;

describe('ISR shrink by replica lag', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start(3, [
      ...TEST_SERVER_ARGS,
      '--broker-session-timeout-ms',
      String(LAG_SESSION_TIMEOUT_MS),
      '--replica-lag-time-max-ms',
      String(REPLICA_LAG_TIME_MAX_MS),
    ]);
  }, 90_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it('a follower stopped with SIGSTOP for longer than replica.lag.time.max.ms leaves the ISR; writes go on with min.insync.replicas=2; after SIGCONT it catches up and rejoins', async () => {
    const topic = 'paused';
    const admin = cluster.admin();
    await admin.createTopics({
      topics: [
        {
          name: topic,
          partitions: 1,
          replicationFactor: 3,
          configs: { 'min.insync.replicas': '2' },
        },
      ],
    });
    const describe = async () => (await cluster.admin().describeTopics([topic]))[0]!.partitions[0]!;
    const { leader, replicas } = await waitFor('a leader', async () => {
      const partition = await describe();
      return partition.leader !== null ? partition : undefined;
    });
    const paused = replicas.find((id) => id !== leader)!;
    const weir = new Weir({
      bootstrap: cluster.dev.bootstrap(),
      clientId: 'pause-test',
      requestTimeoutMs: 5_000,
    });
    const producer = weir.producer({ acks: 'all', lingerMs: 0, deliveryTimeoutMs: 60_000 });
    await producer.connect();
    const send = async (value: string) =>
      (await producer.send({ topic, messages: [{ value }] }))[0]!.offset;
    for (let i = 0; i < 20; i++) await send(`before-${i}`);

    cluster.dev.process(paused)!.kill('SIGSTOP');
    try {
      // A write it cannot fetch (an idle follower that has everything stays in sync, as in
      // Kafka) waits for it; the leader sees it behind for replica.lag.time.max.ms and shrinks
      // the ISR through AlterPartition, while its session still runs: the controller has not
      // fenced it. Then the write is answered.
      const waiting = send('while-shrinking');
      await waitFor(
        'the paused follower out of the ISR',
        async () => !(await describe()).isr.includes(paused),
        LAG_SESSION_TIMEOUT_MS - 2_000,
      );
      expect((await describe()).isr).toHaveLength(2);
      const { brokers } = await cluster.admin().describeCluster();
      expect(brokers.find((broker) => broker.brokerId === paused)?.state).toBe('unfenced');
      expect(await waiting).toBe(20n);
      for (let i = 0; i < 50; i++) await send(`while-paused-${i}`);
    } finally {
      cluster.dev.process(paused)!.kill('SIGCONT');
    }
    await waitFor(
      'the follower back in the ISR',
      async () => (await describe()).isr.includes(paused),
      30_000,
    );
    const last = await send('after');
    expect(last).toBe(71n);
    await producer.close();
    await admin.close();
  }, 120_000);
});
