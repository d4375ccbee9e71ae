// M3's acceptance tests on real processes: three combined-mode nodes started by `weir dev`'s
// DevCluster, each a `weir server` process on loopback with real Raft storage and gRPC, driven
// through the real admin client and the real `weir` command. Fencing uses a 3 s session timeout
// (fixtures/process-cluster.ts) so that it happens within the test's time.

import { ErrorCode, type PartitionMetadata, type TopicDescription } from '@weir/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/program.js';
import {
  ProcessCluster,
  SESSION_TIMEOUT_MS,
  runWeir,
  waitFor,
} from './fixtures/process-cluster.js';

const NODES = [1, 2, 3];

/** Every partition of every topic, as broker `brokerId` sees them. */
async function partitionsSeenBy(
  cluster: ProcessCluster,
  brokerId: number,
  topics?: readonly string[],
): Promise<Map<string, PartitionMetadata>> {
  const described = await cluster.admin(brokerId).describeTopics(topics);
  return new Map(
    described.flatMap((topic) =>
      topic.partitions.map((partition) => [`${topic.name}-${partition.partition}`, partition]),
    ),
  );
}

function leaderCounts(topic: TopicDescription): Map<number, number> {
  const counts = new Map<number, number>();
  for (const { leader } of topic.partitions) {
    if (leader !== null) counts.set(leader, (counts.get(leader) ?? 0) + 1);
  }
  return counts;
}

/** Captures what a CLI run writes, for runCli in this process. */
function cliIo(bootstrap: string): {
  io: Parameters<typeof runCli>[1];
  out: () => string;
  err: () => string;
} {
  let stdout = '';
  let stderr = '';
  return {
    io: {
      stdout: { write: (chunk: string) => (stdout += chunk) },
      stderr: { write: (chunk: string) => (stderr += chunk) },
      env: { WEIR_BOOTSTRAP: bootstrap },
    },
    out: () => stdout,
    err: () => stderr,
  };
}

describe('a three-node cluster of weir server processes', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start(NODES.length);
  }, 90_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it('creates 12 partitions at RF 3 with replicas on distinct brokers and 4 leaderships each', async () => {
    const [created] = await cluster.admin().createTopics({
      topics: [{ name: 'orders', partitions: 12, replicationFactor: 3 }],
    });
    expect(created).toMatchObject({ name: 'orders', partitions: 12, replicationFactor: 3 });

    // Every broker's image (each follows the metadata log on its own) has the same topic.
    const views = await Promise.all(
      NODES.map((id) =>
        waitFor(`broker ${id} to see 'orders'`, async () => {
          const [topic] = await cluster.admin(id).describeTopics(['orders']);
          return topic?.error === undefined ? topic : undefined;
        }),
      ),
    );
    for (const topic of views) expect(topic).toEqual(views[0]);
    const topic = views[0]!;
    expect(topic.partitions).toHaveLength(12);
    for (const partition of topic.partitions) {
      expect(new Set(partition.replicas).size).toBe(3);
      expect(partition.isr).toEqual(partition.replicas);
      expect(partition.leader).toBe(partition.replicas[0]);
    }
    expect([...leaderCounts(topic)].sort()).toEqual([
      [1, 4],
      [2, 4],
      [3, 4],
    ]);
  });

  it('answers invalid requests through the CLI with their error codes, messages and exit codes', async () => {
    const bootstrap = cluster.dev.bootstrap();
    const cases: { args: string[]; code: number; error: RegExp }[] = [
      {
        args: ['topics', 'create', 'bad name!', '--partitions', '1'],
        code: 1,
        error: /INVALID_TOPIC_EXCEPTION: .*bad name!/,
      },
      {
        args: ['topics', 'create', 'too-wide', '--replication-factor', '4'],
        code: 1,
        error: /INVALID_REPLICATION_FACTOR: .*replication factor 4 .*3/,
      },
      {
        args: ['topics', 'create', 'configured', '--config', 'no.such.config=1'],
        code: 1,
        error: /INVALID_CONFIG: .*no\.such\.config/,
      },
      {
        args: ['topics', 'create', 'orders', '--partitions', '3'],
        code: 1,
        error: /TOPIC_ALREADY_EXISTS: .*'orders' already exists/,
      },
      { args: ['topics', 'describe', 'missing'], code: 1, error: /UNKNOWN_TOPIC_OR_PARTITION/ },
      {
        args: ['topics', 'alter', 'orders', '--partitions', '6'],
        code: 1,
        error: /INVALID_PARTITIONS: .*12/,
      },
      { args: ['topics', 'create', 'x', '--partitions', 'many'], code: 2, error: /--partitions/ },
    ];
    for (const { args, code, error } of cases) {
      const run = cliIo(bootstrap);
      expect({ args, exit: await runCli(args, run.io) }).toEqual({ args, exit: code });
      expect(run.err()).toMatch(error);
    }
    // Nothing of the refused requests was created.
    expect(await cluster.admin().listTopics()).toEqual(['orders']);

    // And once through the real executable, with --json.
    const result = await runWeir([
      'topics',
      'create',
      'orders',
      '--json',
      '--bootstrap',
      bootstrap,
    ]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({
      error: { code: ErrorCode.TOPIC_ALREADY_EXISTS, name: 'TOPIC_ALREADY_EXISTS' },
    });
  });

  it('fences a killed broker within the session timeout + 2 s, moves its leaderships, and unfences it on restart', async () => {
    const controller = await cluster.activeController();
    // A broker that is not the active controller, so that this measures broker liveness alone.
    const victim = NODES.find((id) => id !== controller)!;
    const survivor = NODES.find((id) => id !== controller && id !== victim) ?? controller;
    const before = await partitionsSeenBy(cluster, survivor, ['orders']);
    const led = [...before].filter(([, partition]) => partition.leader === victim);
    expect(led.length).toBeGreaterThan(0);

    await cluster.kill(victim, 'SIGKILL');
    const after = await waitFor(
      `broker ${victim}'s partitions to move`,
      async () => {
        const now = await partitionsSeenBy(cluster, survivor, ['orders']);
        const moved = [...now.values()].every(
          (partition) => partition.leader !== victim && !partition.isr.includes(victim),
        );
        return moved ? now : undefined;
      },
      SESSION_TIMEOUT_MS + 2_000,
    );
    for (const [key, old] of led) {
      const partition = after.get(key)!;
      expect(old.isr).toContain(partition.leader);
      expect(partition.leader).not.toBe(victim);
      expect(partition.leaderEpoch).toBeGreaterThan(old.leaderEpoch);
    }
    for (const partition of after.values()) expect(partition.isr).not.toContain(victim);
    const fenced = await cluster.admin(survivor).describeCluster();
    expect(fenced.brokers.find((b) => b.brokerId === victim)?.state).toBe('fenced');

    await cluster.restart(victim);
    await waitFor(`broker ${victim} to be unfenced`, async () => {
      const { brokers } = await cluster.admin(survivor).describeCluster();
      return brokers.find((b) => b.brokerId === victim)?.state === 'unfenced';
    });
    // It rejoined: a new topic at RF 3 needs all three brokers, and it leads some of it.
    const [rejoined] = await cluster.admin().createTopics({
      topics: [{ name: 'after-restart', partitions: 3, replicationFactor: 3 }],
    });
    expect(rejoined?.error).toBeUndefined();
    const [topic] = await cluster.admin(victim).describeTopics(['after-restart']);
    expect(leaderCounts(topic!).get(victim)).toBe(1);
  });

  it('elects a new controller after kill -9 of the active one; no metadata record is lost or applied twice', async () => {
    const controller = await cluster.activeController();
    const survivors = NODES.filter((id) => id !== controller);
    const admin = cluster.admin(...survivors);

    // Topic creation keeps going while the controller dies: every acknowledged topic must
    // exist afterwards, exactly once, on every broker.
    const acknowledged: string[] = [];
    let creating = true;
    const creator = (async () => {
      for (let i = 0; creating && i < 500; i++) {
        const name = `failover-${i}`;
        try {
          const [result] = await admin.createTopics({
            topics: [{ name, partitions: 2, replicationFactor: 2 }],
          });
          if (result?.error === undefined) acknowledged.push(name);
        } catch {
          // Refused or timed out during the election: not acknowledged, so not checked.
        }
      }
    })();
    await waitFor('a few topics before the kill', () => acknowledged.length >= 3);
    await cluster.kill(controller, 'SIGKILL');
    const killedAt = Date.now();
    const newController = await waitFor('a new active controller', async () => {
      const { leaderId } = await admin.describeQuorum();
      return leaderId !== null && leaderId !== controller ? leaderId : undefined;
    });
    expect(survivors).toContain(newController);
    const countAtElection = acknowledged.length;
    await waitFor('topic creation to work again', () => acknowledged.length > countAtElection + 3);
    // "Within a few seconds": the election plus a commit, with a 2-vCPU machine's slack.
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    creating = false;
    await creator;

    await cluster.restart(controller);
    await cluster.dev.waitUntilReady(30_000);
    // All three images reach the same offset and are then identical. ISR changes keep coming
    // (followers rejoin), so a view counts only if its offset did not move while it was read.
    const views = await waitFor('every broker at the same metadata offset', async () => {
      const described = await Promise.all(
        NODES.map(async (id) => {
          const before = (await cluster.admin(id).describeCluster()).metadataOffset;
          const topics = await cluster.admin(id).describeTopics();
          const after = (await cluster.admin(id).describeCluster()).metadataOffset;
          return { offset: before === after ? before : -1n, topics };
        }),
      );
      const offset = described[0]!.offset;
      return offset >= 0n && described.every((view) => view.offset === offset)
        ? described
        : undefined;
    });
    for (const view of views) expect(view.topics).toEqual(views[0]!.topics);
    const names = views[0]!.topics.map((topic) => topic.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of acknowledged) expect(names).toContain(name);
  }, 60_000);
});

// A cluster of its own: a broker's controlled shutdown can move every leadership only when
// every ISR is whole, which the kills above do not leave behind (ISRs grow back with M4).
describe('SIGTERM to a weir server process', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start(NODES.length);
  }, 90_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it('controlled shutdown moves leadership away, then the process exits 0', async () => {
    const [created] = await cluster.admin().createTopics({
      topics: [{ name: 'shutdown', partitions: 6, replicationFactor: 3 }],
    });
    expect(created?.error).toBeUndefined();
    const controller = await cluster.activeController();
    const victim = NODES.find((id) => id !== controller)!;
    const survivor = NODES.find((id) => id !== victim)!;
    const before = await waitFor('the survivor to see the topic', async () => {
      const seen = await partitionsSeenBy(cluster, survivor, ['shutdown']);
      return seen.size === 6 ? seen : undefined;
    });
    expect([...before.values()].filter((p) => p.leader === victim)).toHaveLength(2);

    const exit = await cluster.kill(victim, 'SIGTERM');
    expect(exit).toMatchObject({ code: 0, signal: null });
    // What the controller had committed when the process was gone, as the survivor sees it
    // once it has applied that much: the survivor's image lags the commit by a fetch.
    const { highWatermark } = await cluster.admin(survivor).describeQuorum();
    const { brokers } = await waitFor('the survivor to apply the commit', async () => {
      const view = await cluster.admin(survivor).describeCluster();
      return view.metadataOffset >= highWatermark ? view : undefined;
    });
    const after = await partitionsSeenBy(cluster, survivor, ['shutdown']);
    expect([...after.values()].filter((partition) => partition.leader === victim)).toEqual([]);
    // Leading nothing any more, it was fenced before it exited, so that its next start need not
    // wait out a session; and the restart is not refused as a duplicate registration.
    expect(brokers.find((b) => b.brokerId === victim)?.state).toBe('fenced');

    await cluster.restart(victim);
    await cluster.dev.waitUntilReady(30_000);
  }, 60_000);
});
