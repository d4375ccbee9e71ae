// M4's replicated data path on real processes: `weir server` processes on loopback, started by
// DevCluster (fixtures/process-cluster.ts), driven through the raw BrokerService gRPC API with
// hand-built record batches, and judged by the bytes of each replica's segment files on disk.
// The process twin of packages/testkit/test/data-path.test.ts: acks=all puts every acknowledged
// batch on all three replicas byte for byte; bad input is refused with its error code and leaves
// the log as it was; with two of three brokers down acks=all fails fast with NOT_ENOUGH_REPLICAS
// while acks=1 works; and a leader killed while it holds unreplicated records comes back as a
// follower, truncates them, and then equals the new leader.
//
// Topology: one controller-only node (4) and three broker-only nodes (1–3), every test on its
// own RF-3 topic in the one cluster. Killing two of three brokers must leave a controller quorum
// to fence them and shrink the ISR; combined nodes can do that only as five voters. Measured on
// a 2-core machine, the four processes start on ~5.5 s of CPU where five combined nodes take
// ~8.4 s, idle at half the CPU (one Raft voter instead of five), and stop as fast; and killing a
// broker never costs a controller election.

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import type { Admin, PartitionMetadata } from '@weir/client';
import { ErrorCode, RecordBatchBuilder, fromServiceError, type proto } from '@weir/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster, TEST_SERVER_ARGS, waitFor } from './fixtures/process-cluster.js';

type ProducePartition = proto.weir.broker.ProduceResponse_Partition;

const BROKERS = [1, 2, 3];
const CONTROLLER = 4;
const HEARTBEAT_INTERVAL_MS = 500;
/**
 * Longer than the fixture's 3 s: the divergence test keeps both followers stopped (no
 * heartbeats) for about 0.8 s, and they must still be unfenced, in the ISR, when the leader
 * dies. 5 s leaves that window a margin of five; it costs the two tests that wait for a
 * session to expire 2 s each.
 */
const SESSION_TIMEOUT_MS = 5_000;
/** The fixture's flags; these later ones win (commander keeps an option's last value). */
const SERVER_ARGS = [
  ...TEST_SERVER_ARGS,
  '--broker-session-timeout-ms',
  String(SESSION_TIMEOUT_MS),
  '--broker-heartbeat-interval-ms',
  String(HEARTBEAT_INTERVAL_MS),
];
/** The longest a leader holds a follower's fetch (replication-service.ts, DEFAULT_MAX_WAIT_CAP_MS). */
const FOLLOWER_FETCH_MAX_WAIT_MS = 500;
/** A bound on every RPC of these tests. */
const RPC_DEADLINE_MS = 20_000;

let cluster: ProcessCluster;
/** Nodes this test sent SIGSTOP, for afterEach to continue if the test failed first. */
const stopped = new Set<number>();

beforeAll(async () => {
  cluster = await ProcessCluster.start(4, SERVER_ARGS, { controllers: [CONTROLLER] });
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

// Each test starts with every node running: one that a test killed (or left stopped after a
// failure) is brought back before the next.
afterEach(async () => {
  for (const id of stopped) cluster.dev.process(id)?.kill('SIGCONT');
  stopped.clear();
  const down = BROKERS.filter((id) => cluster.dev.process(id) === undefined);
  for (const id of down) await cluster.restart(id);
  if (down.length > 0) await cluster.dev.waitUntilReady(60_000);
}, 90_000);

function call<T>(
  invoke: (callback: (error: ServiceError | null, response: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) =>
    invoke((error, response) => (error ? reject(fromServiceError(error)) : resolve(response))),
  );
}

function deadline(ms = RPC_DEADLINE_MS): { deadline: number } {
  return { deadline: Date.now() + ms };
}

function batch(values: readonly string[]): Buffer {
  const builder = new RecordBatchBuilder();
  for (const value of values) builder.append({ key: null, value });
  return builder.build();
}

async function produce(
  via: number,
  request: { acks: number; topic: string; partition?: number; records: Buffer; timeoutMs?: number },
): Promise<ProducePartition> {
  const timeoutMs = request.timeoutMs ?? 10_000;
  const response = await call<proto.weir.broker.ProduceResponse>((callback) =>
    cluster.broker(via).produce(
      {
        acks: request.acks,
        timeoutMs,
        topics: [
          {
            topic: request.topic,
            partitions: [{ partition: request.partition ?? 0, records: request.records }],
          },
        ],
      },
      new Metadata(),
      deadline(timeoutMs + RPC_DEADLINE_MS),
      callback,
    ),
  );
  return response.topics[0]!.partitions[0]!;
}

/** ListOffsets latest (the high watermark) of partition 0 on broker `via`. */
async function listLatest(
  via: number,
  topic: string,
): Promise<{ code: ErrorCode | undefined; offset: bigint }> {
  const response = await call<proto.weir.broker.ListOffsetsResponse>((callback) =>
    cluster.broker(via).listOffsets(
      {
        topics: [{ topic, partitions: [{ partition: 0, timestamp: -1n, currentLeaderEpoch: -1 }] }],
      },
      new Metadata(),
      deadline(),
      callback,
    ),
  );
  const { error, offset } = response.topics[0]!.partitions[0]!;
  return { code: error?.code, offset };
}

async function highWatermark(via: number, topic: string): Promise<bigint> {
  const { code, offset } = await listLatest(via, topic);
  expect(code).toBe(ErrorCode.NONE);
  return offset;
}

/** Partition 0 of `topic` as broker `via` sees it in its own metadata image. */
async function partitionSeenBy(
  via: number,
  topic: string,
): Promise<proto.weir.broker.MetadataResponse_Partition | undefined> {
  const metadata = await call<proto.weir.broker.MetadataResponse>((callback) =>
    cluster.broker(via).metadata({ topics: [topic] }, new Metadata(), deadline(), callback),
  );
  return metadata.topics[0]?.partitions.find((p) => p.partition === 0);
}

async function leaderSeenBy(via: number, topic: string): Promise<number | undefined> {
  const leader = (await partitionSeenBy(via, topic))?.leaderId;
  return leader !== undefined && leader >= 0 ? leader : undefined;
}

/**
 * The one of `candidates` that leads partition 0 of `topic` and serves it: a broker's metadata
 * names it leader before its replica manager has opened the partition's log (until then it
 * answers NOT_LEADER_OR_FOLLOWER, which a client retries), so ask the partition itself.
 */
async function servingLeader(
  topic: string,
  candidates: readonly number[],
): Promise<number | undefined> {
  for (const id of candidates) {
    if ((await leaderSeenBy(id, topic)) !== id) continue;
    if ((await listLatest(id, topic)).code === ErrorCode.NONE) return id;
  }
  return undefined;
}

/** Creates an RF-3 topic of one partition; resolves with its leader once that serves it. */
async function createTopic(
  admin: Admin,
  name: string,
  configs: Record<string, string> = {},
): Promise<number> {
  await admin.createTopics({ topics: [{ name, partitions: 1, replicationFactor: 3, configs }] });
  return waitFor(`a serving leader for ${name}`, () => servingLeader(name, BROKERS));
}

async function describePartition(admin: Admin, topic: string): Promise<PartitionMetadata> {
  const [described] = await admin.describeTopics([topic]);
  return described!.partitions[0]!;
}

/** The bytes of a replica's log segments of partition 0, concatenated, read from its data dir. */
async function segmentBytes(node: number, topic: string): Promise<Buffer> {
  const dir = join(cluster.node(node).dataDir, 'partitions', `${topic}-0`);
  const files = (await readdir(dir)).filter((name) => name.endsWith('.log')).sort();
  return Buffer.concat(await Promise.all(files.map((name) => readFile(join(dir, name)))));
}

describe('the replicated data path on weir server processes', () => {
  it('acks=all: the batches are on all three replicas, byte for byte, up to the high watermark', async () => {
    const leader = await createTopic(cluster.admin(), 'orders');
    const offsets: bigint[] = [];
    for (let i = 0; i < 30; i++) {
      const answer = await produce(leader, {
        acks: -1,
        topic: 'orders',
        records: batch([`a-${i}`, `b-${i}`]),
      });
      expect(answer.error?.code).toBe(ErrorCode.NONE);
      offsets.push(answer.baseOffset);
    }
    expect(offsets).toEqual(Array.from({ length: 30 }, (_, i) => BigInt(2 * i)));
    // Acknowledged with acks=all means below the high watermark, which the leader advances only
    // once every ISR follower has fetched past it: each follower has appended the records to its
    // own segment files before the last acknowledgement, so no waiting here.
    expect(await highWatermark(leader, 'orders')).toBe(60n);
    const leaderBytes = await segmentBytes(leader, 'orders');
    expect(leaderBytes.includes('b-29')).toBe(true);
    for (const node of BROKERS.filter((id) => id !== leader)) {
      const followerBytes = await segmentBytes(node, 'orders');
      expect({ node, length: followerBytes.length }).toEqual({ node, length: leaderBytes.length });
      expect(followerBytes.equals(leaderBytes)).toBe(true);
    }
  });

  it('refuses bad input with its error code and leaves the log unchanged', async () => {
    const leader = await createTopic(cluster.admin(), 'small', { 'max.message.bytes': '1024' });
    expect(
      (await produce(leader, { acks: -1, topic: 'small', records: batch(['ok']) })).error?.code,
    ).toBe(ErrorCode.NONE);
    const before = await Promise.all(BROKERS.map((id) => segmentBytes(id, 'small')));
    expect(before[0]!.length).toBeGreaterThan(0);

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
      const answer = await produce(leader, {
        acks: -1,
        topic: topic ?? 'small',
        partition,
        records,
      });
      expect({ topic, partition, code: answer.error?.code }).toEqual({ topic, partition, code });
      expect(answer.error?.message).not.toBe('');
    }
    // acks=5 refuses the whole request, as a gRPC error carrying the code.
    const badAcks = await produce(leader, {
      acks: 5,
      topic: 'small',
      records: batch(['acks']),
    }).then(
      () => undefined,
      (error: { code?: ErrorCode; message: string }) => error,
    );
    expect(badAcks?.code).toBe(ErrorCode.INVALID_REQUIRED_ACKS);
    expect(badAcks?.message).toMatch(/acks must be 0, 1 or -1/);

    // Nothing took an offset: the high watermark is where it was, the next good batch lands at
    // offset 1, and every replica's segment bytes were the same as before it.
    expect(await highWatermark(leader, 'small')).toBe(1n);
    const after = await Promise.all(BROKERS.map((id) => segmentBytes(id, 'small')));
    BROKERS.forEach((id, i) =>
      expect({ id, same: after[i]!.equals(before[i]!) }).toEqual({ id, same: true }),
    );
    expect(
      await produce(leader, { acks: -1, topic: 'small', records: batch(['next']) }),
    ).toMatchObject({ error: { code: ErrorCode.NONE }, baseOffset: 1n });
  });

  it('with two of three brokers down, acks=all fails fast with NOT_ENOUGH_REPLICAS and acks=1 succeeds', async () => {
    const admin = cluster.admin();
    const leader = await createTopic(admin, 'durable', { 'min.insync.replicas': '2' });
    const followers = BROKERS.filter((id) => id !== leader);
    expect(
      (await produce(leader, { acks: -1, topic: 'durable', records: batch(['before']) })).error
        ?.code,
    ).toBe(ErrorCode.NONE);
    await Promise.all(followers.map((id) => cluster.kill(id, 'SIGKILL')));
    // The controller fences them when their sessions run out and takes them out of the ISR; the
    // leader learns of it from the metadata log (its own view is what it decides on).
    await waitFor(
      'the ISR to shrink to the leader, in its own view',
      async () => (await partitionSeenBy(leader, 'durable'))?.isr.join() === String(leader),
      SESSION_TIMEOUT_MS + 15_000,
    );
    const startedAt = Date.now();
    const all = await produce(leader, {
      acks: -1,
      topic: 'durable',
      records: batch(['needs two']),
      timeoutMs: 30_000,
    });
    const elapsedMs = Date.now() - startedAt;
    expect(all.error?.code).toBe(ErrorCode.NOT_ENOUGH_REPLICAS);
    expect(all.error?.message).toContain('min.insync.replicas=2');
    // Fast: refused before appending, not after the 30 s request timeout.
    expect(elapsedMs).toBeLessThan(5_000);
    const one = await produce(leader, { acks: 1, topic: 'durable', records: batch(['acks one']) });
    expect(one).toMatchObject({ error: { code: ErrorCode.NONE }, baseOffset: 1n });

    // The followers come back (afterEach would do it too), catch up and rejoin the ISR.
    for (const id of followers) await cluster.restart(id);
    await waitFor(
      'the followers back in the ISR',
      async () => (await describePartition(admin, 'durable')).isr.length === 3,
      60_000,
    );
    expect(await highWatermark(leader, 'durable')).toBe(2n);
  }, 120_000);

  it('a leader killed with unreplicated records comes back as a follower, truncates them and then equals the new leader', async () => {
    const admin = cluster.admin();
    const oldLeader = await createTopic(admin, 'diverge');
    const followers = BROKERS.filter((id) => id !== oldLeader);
    for (let i = 0; i < 5; i++) {
      const answer = await produce(oldLeader, {
        acks: -1,
        topic: 'diverge',
        records: batch([`r-${i}`]),
      });
      expect(answer.error?.code).toBe(ErrorCode.NONE);
    }
    expect((await describePartition(admin, 'diverge')).isr).toHaveLength(3);

    // The followers stop (still registered and in the ISR until their sessions run out): what
    // the leader appends now stays on it.
    const stoppedAt = Date.now();
    for (const id of followers) {
      cluster.dev.process(id)!.kill('SIGSTOP');
      stopped.add(id);
    }
    // A fetch each follower sent before it stopped may still be held by the leader (its fetch
    // purgatory, up to 500 ms); the next append would answer it with the new records, which the
    // follower would append once continued (without this step the test failed every time). A
    // consumer fetch sent now, waiting longer than the leader holds a follower's, times out on
    // the leader's clock after each such fetch has been answered, empty.
    const drained = await call<proto.weir.broker.FetchResponse>((callback) =>
      cluster.broker(oldLeader).fetch(
        {
          maxWaitMs: FOLLOWER_FETCH_MAX_WAIT_MS + 250,
          minBytes: 1,
          maxBytes: 1 << 20,
          topics: [
            {
              topic: 'diverge',
              partitions: [
                {
                  partition: 0,
                  fetchOffset: 5n,
                  partitionMaxBytes: 1 << 20,
                  currentLeaderEpoch: -1,
                },
              ],
            },
          ],
        },
        new Metadata(),
        deadline(),
        callback,
      ),
    );
    expect(drained.topics[0]!.partitions[0]!).toMatchObject({ highWatermark: 5n });
    expect(drained.topics[0]!.partitions[0]!.records.length).toBe(0);
    for (let i = 0; i < 3; i++) {
      const answer = await produce(oldLeader, {
        acks: 1,
        topic: 'diverge',
        records: batch([`lost-${i}`]),
      });
      expect(answer).toMatchObject({ error: { code: ErrorCode.NONE }, baseOffset: BigInt(5 + i) });
    }
    await cluster.kill(oldLeader, 'SIGKILL');
    for (const id of followers) cluster.dev.process(id)!.kill('SIGCONT');
    stopped.clear();
    // The precondition of what follows: the followers were stopped for less than a session, so
    // the controller never fenced them and they are still the ISR.
    const stoppedForMs = Date.now() - stoppedAt;
    expect(stoppedForMs).toBeLessThan(SESSION_TIMEOUT_MS - HEARTBEAT_INTERVAL_MS);
    // SIGKILL leaves what the old leader appended in its files: the records only it has.
    const oldLeaderBytes = await segmentBytes(oldLeader, 'diverge');
    expect(oldLeaderBytes.includes('lost-2')).toBe(true);

    // Once the old leader's session runs out, a follower takes over at a new leader epoch and
    // writes over offsets 5..6.
    const newLeader = await waitFor(
      'a new leader',
      () => servingLeader('diverge', followers),
      SESSION_TIMEOUT_MS + 15_000,
    );
    for (let i = 0; i < 2; i++) {
      const answer = await produce(newLeader, {
        acks: -1,
        topic: 'diverge',
        records: batch([`new-${i}`]),
      });
      expect(answer).toMatchObject({ error: { code: ErrorCode.NONE }, baseOffset: BigInt(5 + i) });
    }
    expect(await highWatermark(newLeader, 'diverge')).toBe(7n);
    const newLeaderBytes = await segmentBytes(newLeader, 'diverge');
    expect(newLeaderBytes.includes('lost-')).toBe(false);
    expect(oldLeaderBytes.equals(newLeaderBytes)).toBe(false);

    // Back as a follower, the old leader learns where its log diverged (KIP-320), truncates,
    // fetches new-0..1 and rejoins the ISR, which takes a log end at the high watermark.
    await cluster.restart(oldLeader);
    await waitFor(
      'the old leader back in the ISR',
      async () => (await describePartition(admin, 'diverge')).isr.includes(oldLeader),
      60_000,
    );
    const caughtUp = await segmentBytes(oldLeader, 'diverge');
    expect(caughtUp.includes('lost-')).toBe(false);
    expect(caughtUp.equals(newLeaderBytes)).toBe(true);
    const otherFollower = followers.find((id) => id !== newLeader)!;
    expect((await segmentBytes(otherFollower, 'diverge')).equals(newLeaderBytes)).toBe(true);
    expect(await leaderSeenBy(newLeader, 'diverge')).toBe(newLeader);
  }, 120_000);
});
