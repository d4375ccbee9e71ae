// The weir command, run in-process against a fake AdminService through the real admin client:
// what it prints (tables and --json), its exit codes, and the flag checks it makes before
// sending anything.

import { ErrorCode, WeirError } from '@weir/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../src/program.js';
import { type FakeCluster, deadAddress, startFakeCluster } from './fake-cluster.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let cluster: FakeCluster;

beforeEach(async () => {
  cluster = await startFakeCluster();
});

afterEach(() => {
  cluster.stop();
});

/** Runs `weir ...args` against the fake cluster unless the args give --bootstrap. */
async function weir(args: string[], env: Record<string, string> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: { WEIR_BOOTSTRAP: cluster.address, ...env },
  };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

function json(run: Run): unknown {
  return JSON.parse(run.stdout);
}

describe('weir topics', () => {
  it('creates a topic with partitions, replication factor and configs', async () => {
    const run = await weir([
      'topics',
      'create',
      'orders',
      '--partitions',
      '3',
      '--replication-factor',
      '2',
      '--config',
      'retention.ms=86400000',
      '--config',
      'cleanup.policy=compact',
    ]);
    expect(run).toEqual({
      code: 0,
      stdout: 'Created topic orders (3 partitions, replication factor 2).\n',
      stderr: '',
    });
    const topic = cluster.topics.get('orders')!;
    expect([topic.partitions, topic.replicationFactor]).toEqual([3, 2]);
    expect(Object.fromEntries(topic.configs)).toEqual({
      'retention.ms': '86400000',
      'cleanup.policy': 'compact',
    });
  });

  it('creates nothing with --validate-only, and says so', async () => {
    const run = await weir(['topics', 'create', 'orders', '--partitions', '2', '--validate-only']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('nothing was changed (--validate-only)');
    expect(cluster.topics.has('orders')).toBe(false);
  });

  it('reports a topic that exists with exit code 1 and the error name', async () => {
    cluster.addTopic('orders', 1, 1);
    const run = await weir(['topics', 'create', 'orders']);
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr:
        "error: TOPIC_ALREADY_EXISTS: could not create topic 'orders': topic 'orders' already exists\n",
    });
  });

  it('reports errors as JSON on stdout too with --json', async () => {
    cluster.addTopic('orders', 1, 1);
    const run = await weir(['topics', 'create', 'orders', '--json']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: TOPIC_ALREADY_EXISTS: /);
    expect(json(run)).toEqual({
      error: {
        code: ErrorCode.TOPIC_ALREADY_EXISTS,
        name: 'TOPIC_ALREADY_EXISTS',
        message: "could not create topic 'orders': topic 'orders' already exists",
        topics: [
          {
            name: 'orders',
            topicId: '',
            partitions: 0,
            replicationFactor: 0,
            error: {
              code: ErrorCode.TOPIC_ALREADY_EXISTS,
              name: 'TOPIC_ALREADY_EXISTS',
              message: "topic 'orders' already exists",
            },
          },
        ],
      },
    });
  });

  it('passes on the broker refusing a replication factor', async () => {
    const run = await weir(['topics', 'create', 'orders', '--replication-factor', '5']);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      "error: INVALID_REPLICATION_FACTOR: could not create topic 'orders': replication factor 5 is above the 3 live brokers\n",
    );
  });

  it('lists topics one a line, sorted, or as JSON', async () => {
    cluster.addTopic('payments', 1, 1);
    cluster.addTopic('audit', 1, 1);
    const run = await weir(['topics', 'list']);
    expect(run).toEqual({ code: 0, stdout: 'audit\npayments\n', stderr: '' });
    expect(json(await weir(['topics', 'list', '--json']))).toEqual({
      topics: ['audit', 'payments'],
    });
  });

  it('describes a topic as aligned tables', async () => {
    const topic = cluster.addTopic('orders', 3, 2);
    topic.configs.set('retention.ms', '86400000');
    topic.configs.set('cleanup.policy', 'compact');
    const run = await weir(['topics', 'describe', 'orders']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      [
        'Topic:               orders',
        'Topic ID:            topic-id-1',
        'Partitions:          3',
        'Replication factor:  2',
        '',
        'PARTITION  LEADER  REPLICAS  ISR  LEADER EPOCH',
        '0          1       1,2       1,2  2',
        '1          none    2,3       -    3',
        '2          3       3,1       3,1  4',
        '',
        'CONFIG          VALUE',
        'cleanup.policy  compact',
        'retention.ms    86400000',
        '',
      ].join('\n'),
    );
  });

  it('describes a topic as JSON, an offline leader as null', async () => {
    cluster.addTopic('orders', 2, 1);
    const run = await weir(['topics', 'describe', 'orders', '--json']);
    expect(run.code).toBe(0);
    expect(json(run)).toEqual({
      name: 'orders',
      topicId: 'topic-id-1',
      partitionCount: 2,
      replicationFactor: 1,
      partitions: [
        { partition: 0, leader: 1, leaderEpoch: 2, partitionEpoch: 5, replicas: [1], isr: [1] },
        { partition: 1, leader: null, leaderEpoch: 3, partitionEpoch: 5, replicas: [2], isr: [] },
      ],
      configs: {},
    });
  });

  it('reports an unknown topic with exit code 1', async () => {
    const run = await weir(['topics', 'describe', 'nope']);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      "error: UNKNOWN_TOPIC_OR_PARTITION: could not describe topic 'nope': no topic 'nope'\n",
    );
  });

  it('deletes a topic', async () => {
    cluster.addTopic('orders', 1, 1);
    const run = await weir(['topics', 'delete', 'orders', '--json']);
    expect(run.code).toBe(0);
    expect(json(run)).toEqual({ name: 'orders', topicId: 'topic-id-1' });
    expect(cluster.topics.has('orders')).toBe(false);
    expect((await weir(['topics', 'delete', 'orders'])).code).toBe(1);
  });

  it('raises the partition count', async () => {
    cluster.addTopic('orders', 3, 1);
    const run = await weir(['topics', 'alter', 'orders', '--partitions', '6']);
    expect(run).toEqual({ code: 0, stdout: 'Topic orders now has 6 partitions.\n', stderr: '' });
    expect(cluster.topics.get('orders')!.partitions).toBe(6);
    const lower = await weir(['topics', 'alter', 'orders', '--partitions', '2']);
    expect(lower.code).toBe(1);
    expect(lower.stderr).toMatch(/^error: INVALID_PARTITIONS: could not add partitions to topic/);
  });

  it('sets and deletes configs, keeping the others', async () => {
    const topic = cluster.addTopic('orders', 1, 1);
    topic.configs.set('cleanup.policy', 'compact');
    topic.configs.set('max.message.bytes', '1000');
    const run = await weir([
      'topics',
      'alter',
      'orders',
      '--config',
      'retention.ms=1000',
      '--delete-config',
      'cleanup.policy',
    ]);
    expect(run).toEqual({
      code: 0,
      stdout: 'Updated configs of topic orders: set retention.ms=1000, deleted cleanup.policy.\n',
      stderr: '',
    });
    expect(Object.fromEntries(topic.configs)).toEqual({
      'max.message.bytes': '1000',
      'retention.ms': '1000',
    });
  });
});

describe('weir cluster status', () => {
  it('prints the brokers, the controller and the quorum as tables', async () => {
    const run = await weir(['cluster', 'status']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      [
        'Cluster:          fake-cluster',
        'Controller:       1',
        'Metadata offset:  1152921504606846977',
        '',
        'BROKER  ENDPOINT             RACK    STATE     EPOCH',
        '1       10.0.0.1:9092        rack-a  unfenced  1152921504606846976',
        '2       broker-2.local:9092  -       fenced    120',
        '',
        'Quorum leader:   1',
        'Leader epoch:    3',
        'High watermark:  1500',
        '',
        'VOTER  ROLE      LOG END OFFSET  LAG',
        '1      leader    1500            0',
        '2      follower  1496            4',
        '',
      ].join('\n'),
    );
  });

  it('prints one JSON document with bigints as exact strings', async () => {
    const run = await weir(['cluster', 'status', '--json']);
    expect(run.code).toBe(0);
    const status = json(run) as {
      metadataOffset: unknown;
      controllerId: unknown;
      brokers: { brokerId: number; brokerEpoch: unknown; state: string; rack?: string }[];
      quorum: { highWatermark: unknown; voters: { nodeId: number; lag: unknown }[] };
    };
    expect(status.metadataOffset).toBe('1152921504606846977');
    expect(status.controllerId).toBe(1);
    expect(status.brokers.map((b) => [b.brokerId, b.brokerEpoch, b.state, b.rack])).toEqual([
      [1, '1152921504606846976', 'unfenced', 'rack-a'],
      [2, '120', 'fenced', undefined],
    ]);
    expect(status.quorum.highWatermark).toBe('1500');
    expect(status.quorum.voters[1]).toEqual({ nodeId: 2, logEndOffset: '1496', lag: '4' });
  });
});

describe('connecting', () => {
  it('takes the bootstrap list from WEIR_BOOTSTRAP, and --bootstrap over it', async () => {
    const dead = await deadAddress();
    // The env points at nothing; the flag at the cluster.
    const run = await weir(['topics', 'list', '--bootstrap', cluster.address], {
      WEIR_BOOTSTRAP: dead,
    });
    expect(run.code).toBe(0);
    expect(cluster.counter.requests).toBe(1);
  });

  it('moves past a bootstrap broker that is down', async () => {
    cluster.addTopic('orders', 1, 1);
    const dead = await deadAddress();
    const run = await weir([
      'topics',
      'list',
      '--bootstrap',
      `${dead},${cluster.address}`,
      '--timeout-ms',
      '5000',
    ]);
    expect(run).toEqual({ code: 0, stdout: 'orders\n', stderr: '' });
  });

  it('retries while the controller is being elected', async () => {
    cluster.failNext = new WeirError(ErrorCode.NOT_CONTROLLER, 'election under way');
    const run = await weir(['topics', 'create', 'orders']);
    expect(run.code).toBe(0);
    expect(cluster.topics.has('orders')).toBe(true);
    expect(cluster.counter.requests).toBe(2);
  });

  it('fails with exit code 1 when no broker answers within --timeout-ms', async () => {
    const dead = await deadAddress();
    const startedAt = Date.now();
    const run = await weir([
      'cluster',
      'status',
      '--bootstrap',
      dead,
      '--timeout-ms',
      '300',
      '--json',
    ]);
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(`^error: NETWORK_EXCEPTION: broker ${dead} cannot be reached`),
    );
    expect(json(run)).toMatchObject({ error: { code: 13, name: 'NETWORK_EXCEPTION' } });
  });

  it('passes a non-retriable error of the whole call on at once', async () => {
    cluster.failNext = new WeirError(ErrorCode.POLICY_VIOLATION, 'topic creation is disabled');
    const run = await weir(['topics', 'create', 'orders']);
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: POLICY_VIOLATION: topic creation is disabled\n',
    });
    expect(cluster.counter.requests).toBe(1);
  });
});

describe('usage errors', () => {
  it.each([
    [
      ['topics', 'create', 'orders', '--partitions', 'abc'],
      /--partitions must be a positive integer/,
    ],
    [
      ['topics', 'create', 'orders', '--partitions', '0'],
      /--partitions must be a positive integer/,
    ],
    [
      ['topics', 'create', 'orders', '--partitions', '1.5'],
      /--partitions must be a positive integer/,
    ],
    [['topics', 'create', 'orders', '--replication-factor', '-1'], /--replication-factor/],
    [['topics', 'create', 'orders', '--config', 'retention.ms'], /--config must be key=value/],
    [['topics', 'create', 'orders', '--config', '=1'], /--config must be key=value/],
    [
      ['topics', 'create', 'orders', '--config', 'a=1', '--config', 'a=2'],
      /--config a is given twice/,
    ],
    [['topics', 'create'], /missing required argument 'name'/],
    [['topics', 'describe', 'a', 'b'], /too many arguments/],
    [['topics', 'alter', 'orders'], /nothing to alter/],
    [
      ['topics', 'alter', 'orders', '--partitions', '3', '--config', 'a=1'],
      /'--partitions <count>' cannot be used with option '--config/,
    ],
    [
      ['topics', 'alter', 'orders', '--config', 'a=1', '--delete-config', 'a'],
      /a is both set \(--config\) and deleted/,
    ],
    [
      ['topics', 'list', '--bootstrap', 'localhost'],
      /--bootstrap localhost: bootstrap entry 'localhost' is not host:port/,
    ],
    [['topics', 'list', '--bootstrap', ''], /bootstrap is empty/],
    [['topics', 'list', '--timeout-ms', 'soon'], /--timeout-ms must be a positive integer/],
    [['topics', 'frobnicate'], /unknown command 'frobnicate'/],
    [['topics', 'list', '--partitions', '3'], /unknown option '--partitions'/],
    [['topics'], /Usage: weir topics/],
  ])('weir %j exits with code 2, sending nothing', async (args, message) => {
    const run = await weir(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe('');
    expect(cluster.counter.requests).toBe(0);
  });

  it('names WEIR_BOOTSTRAP when the bad list came from there', async () => {
    const run = await weir(['cluster', 'status'], { WEIR_BOOTSTRAP: 'broker-1' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      "error: WEIR_BOOTSTRAP=broker-1: bootstrap entry 'broker-1' is not host:port: write it like 'broker-1:9092'",
    );
  });

  it('prints help with an example for every command, with exit code 0', async () => {
    for (const command of [
      [],
      ['cluster'],
      ['cluster', 'status'],
      ['topics'],
      ['topics', 'create'],
      ['topics', 'list'],
      ['topics', 'describe'],
      ['topics', 'delete'],
      ['topics', 'alter'],
      ['server'],
      ['dev'],
    ]) {
      const run = await weir([...command, '--help']);
      expect(run.code, command.join(' ')).toBe(0);
      expect(run.stdout, command.join(' ')).toMatch(/Examples?:\n {2}\$ weir /);
    }
  });
});
