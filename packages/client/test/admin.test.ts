// The admin client against scripted AdminService servers: configuration checks, broker
// failover, retries within the deadline, error mapping and the plain result types.

import { ErrorCode, WeirError, proto } from '@weir/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { type Admin, Weir, WeirAdminError } from '../src/index.js';
import {
  type FakeAdminServer,
  type FakeHandlers,
  deadAddress,
  startFakeAdminServer,
} from './fake-admin-server.js';

const { controller } = proto.weir;

const servers: FakeAdminServer[] = [];
const admins: Admin[] = [];

afterEach(async () => {
  await Promise.all(admins.splice(0).map((admin) => admin.close()));
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

async function serve(handlers: FakeHandlers): Promise<FakeAdminServer> {
  const server = await startFakeAdminServer(handlers);
  servers.push(server);
  return server;
}

function adminFor(bootstrap: string | string[], requestTimeoutMs = 5_000): Admin {
  const admin = new Weir({ bootstrap, clientId: 'admin-test', requestTimeoutMs }).admin();
  admins.push(admin);
  return admin;
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

const cluster = controller.DescribeClusterResponse.fromPartial({
  clusterId: 'c-1',
  controllerId: 2,
  metadataOffset: 2n ** 60n + 7n,
  brokers: [
    {
      brokerId: 3,
      endpoints: [{ name: 'BROKER', host: 'h3', port: 9092 }],
      fenced: true,
      brokerEpoch: 30n,
      incarnationId: 'i3',
    },
    {
      brokerId: 1,
      endpoints: [{ name: 'BROKER', host: 'h1', port: 9092 }],
      rack: 'r1',
      fenced: false,
      brokerEpoch: 2n ** 53n + 1n,
      incarnationId: 'i1',
    },
    {
      brokerId: 2,
      endpoints: [{ name: 'BROKER', host: 'h2', port: 9092 }],
      fenced: false,
      inControlledShutdown: true,
      brokerEpoch: 20n,
      incarnationId: 'i2',
    },
  ],
});

describe('new Weir(config)', () => {
  it.each([
    ['', /bootstrap is empty/],
    [' , ', /bootstrap is empty/],
    [[], /bootstrap is empty/],
    ['localhost', /'localhost' is not host:port: write it like 'localhost:9092'/],
    ['localhost:0', /port must be a whole number from 1 to 65535/],
    ['localhost:70000', /port must be a whole number from 1 to 65535/],
    ['localhost:90a', /port '90a'/],
    ['http://localhost:9092', /has a URL scheme: write just host:port/],
    ['::1:9092', /IPv6 hosts in brackets/],
  ])('refuses bootstrap %j, saying what to change', (bootstrap, message) => {
    const make = () => new Weir({ bootstrap });
    expect(make).toThrow(WeirError);
    expect(make).toThrow(message);
  });

  it('refuses a timeout that is not a positive whole number, and an empty clientId', () => {
    expect(() => new Weir({ bootstrap: 'a:1', requestTimeoutMs: 0 })).toThrow(
      /requestTimeoutMs must be a whole number of milliseconds/,
    );
    expect(() => new Weir({ bootstrap: 'a:1', requestTimeoutMs: 1.5 })).toThrow(/requestTimeoutMs/);
    expect(() => new Weir({ bootstrap: 'a:1', clientId: ' ' })).toThrow(/clientId/);
  });

  it('accepts lists with commas, arrays, IPv6 in brackets, and drops duplicates', () => {
    const weir = new Weir({ bootstrap: [' a:1, b:2', '[::1]:9092', 'a:1'] });
    expect(weir.config.brokers).toEqual(['a:1', 'b:2', '[::1]:9092']);
    expect(weir.config.requestTimeoutMs).toBe(30_000);
    expect(weir.config.clientId).toBe('weir');
  });

  it('reports an invalid option as INVALID_CONFIG', () => {
    try {
      new Weir({ bootstrap: '' });
      expect.unreachable();
    } catch (error) {
      expect((error as WeirError).code).toBe(ErrorCode.INVALID_CONFIG);
      expect((error as WeirError).retriable).toBe(false);
    }
  });
});

describe('Admin: cluster and quorum', () => {
  it('maps the cluster to plain types, with bigint epochs and offsets kept exact', async () => {
    const server = await serve({ describeCluster: () => cluster });
    const described = await adminFor(server.address).describeCluster();
    expect(described.clusterId).toBe('c-1');
    expect(described.controllerId).toBe(2);
    expect(described.metadataOffset).toBe(2n ** 60n + 7n);
    expect(described.brokers.map((b) => [b.brokerId, b.state, b.rack])).toEqual([
      [1, 'unfenced', 'r1'],
      [2, 'shutting-down', undefined],
      [3, 'fenced', undefined],
    ]);
    expect(described.brokers[0]!.brokerEpoch).toBe(2n ** 53n + 1n);
    expect(described.brokers[0]!.endpoints).toEqual([{ name: 'BROKER', host: 'h1', port: 9092 }]);
  });

  it('reports no known controller or quorum leader as null', async () => {
    const server = await serve({
      describeCluster: () => ({ ...cluster, controllerId: -1 }),
      describeQuorum: () =>
        controller.DescribeQuorumResponse.fromPartial({ leaderId: -1, leaderEpoch: 4n }),
    });
    const admin = adminFor(server.address);
    expect((await admin.describeCluster()).controllerId).toBeNull();
    expect((await admin.describeQuorum()).leaderId).toBeNull();
  });

  it('maps the quorum with bigint offsets and lag, voters sorted', async () => {
    const server = await serve({
      describeQuorum: () =>
        controller.DescribeQuorumResponse.fromPartial({
          leaderId: 1,
          leaderEpoch: 9n,
          highWatermark: 2n ** 63n,
          voters: [
            { nodeId: 2, logEndOffset: 2n ** 63n - 5n, lag: 5n },
            { nodeId: 1, logEndOffset: 2n ** 63n, lag: 0n },
          ],
        }),
    });
    expect(await adminFor(server.address).describeQuorum()).toEqual({
      leaderId: 1,
      leaderEpoch: 9n,
      highWatermark: 2n ** 63n,
      voters: [
        { nodeId: 1, logEndOffset: 2n ** 63n, lag: 0n },
        { nodeId: 2, logEndOffset: 2n ** 63n - 5n, lag: 5n },
      ],
    });
  });
});

describe('Admin: brokers, retries and deadlines', () => {
  it('moves on to the next bootstrap broker when the first cannot be reached', async () => {
    const dead = await deadAddress();
    const server = await serve({ describeCluster: () => cluster });
    const admin = adminFor(`${dead},${server.address}`);
    expect((await admin.describeCluster()).clusterId).toBe('c-1');
    // And the next request finds it too.
    await admin.describeCluster();
    expect(server.requests.describeCluster).toHaveLength(2);
  });

  it('fails with NETWORK_EXCEPTION naming the brokers when none answers within the timeout', async () => {
    const first = await deadAddress();
    const second = await deadAddress();
    const startedAt = Date.now();
    const error = await rejection(adminFor([first, second], 400).describeCluster());
    const elapsedMs = Date.now() - startedAt;
    expect(error.code).toBe(ErrorCode.NETWORK_EXCEPTION);
    expect(error.retriable).toBe(true);
    expect(error.message).toContain(first);
    expect(error.message).toContain(second);
    expect(error.message).toMatch(/gave up after \d+ attempts/);
    // It kept trying until the deadline, and not much longer.
    expect(elapsedMs).toBeGreaterThanOrEqual(350);
    expect(elapsedMs).toBeLessThan(1_500);
  });

  it('retries NOT_CONTROLLER while the quorum elects, then answers', async () => {
    let calls = 0;
    const server = await serve({
      createTopics: (request) => {
        calls++;
        if (calls <= 2) throw new WeirError(ErrorCode.NOT_CONTROLLER, 'election under way');
        return controller.CreateTopicsResponse.fromPartial({
          topics: request.topics.map((t) => ({ name: t.name, topicId: 'id-1', partitions: 1 })),
        });
      },
    });
    const results = await adminFor(server.address).createTopics({ topics: [{ name: 'orders' }] });
    expect(results).toEqual([
      { name: 'orders', topicId: 'id-1', partitions: 1, replicationFactor: 0 },
    ]);
    expect(calls).toBe(3);
  });

  it('gives up on NOT_CONTROLLER at the deadline, with the error and how long it tried', async () => {
    const server = await serve({
      describeQuorum: () => {
        throw new WeirError(ErrorCode.NOT_CONTROLLER, 'no leader yet');
      },
    });
    const startedAt = Date.now();
    const error = await rejection(adminFor(server.address, 300).describeQuorum());
    const elapsedMs = Date.now() - startedAt;
    expect(error.code).toBe(ErrorCode.NOT_CONTROLLER);
    expect(error.message).toMatch(/^NOT_CONTROLLER: no leader yet \(gave up after \d+ attempts/);
    expect(server.requests.describeQuorum.length).toBeGreaterThan(1);
    expect(elapsedMs).toBeGreaterThanOrEqual(250);
    expect(elapsedMs).toBeLessThan(1_300);
  });

  it('fails with REQUEST_TIMED_OUT when a broker does not answer within requestTimeoutMs', async () => {
    const server = await serve({ describeCluster: () => new Promise<never>(() => {}) });
    const startedAt = Date.now();
    const error = await rejection(adminFor(server.address, 250).describeCluster());
    const elapsedMs = Date.now() - startedAt;
    expect(error.code).toBe(ErrorCode.REQUEST_TIMED_OUT);
    expect(error.message).toContain(`broker ${server.address} did not answer describeCluster`);
    expect(elapsedMs).toBeGreaterThanOrEqual(200);
    expect(elapsedMs).toBeLessThan(1_300);
  });

  it('throws a non-retriable error of the whole call at once, typed', async () => {
    const server = await serve({
      deleteTopics: () => {
        throw new WeirError(ErrorCode.POLICY_VIOLATION, 'deletes are disabled');
      },
    });
    const error = await rejection(adminFor(server.address).deleteTopics(['orders']));
    expect(error).not.toBeInstanceOf(WeirAdminError);
    expect(error.code).toBe(ErrorCode.POLICY_VIOLATION);
    expect(error.retriable).toBe(false);
    expect(error.message).toBe('POLICY_VIOLATION: deletes are disabled');
    expect(server.requests.deleteTopics).toHaveLength(1);
  });

  it('does not retry other retriable errors, leaving the choice to the caller', async () => {
    const server = await serve({
      describeTopics: () => {
        throw new WeirError(ErrorCode.LEADER_NOT_AVAILABLE);
      },
    });
    const error = await rejection(adminFor(server.address).listTopics());
    expect(error.code).toBe(ErrorCode.LEADER_NOT_AVAILABLE);
    expect(error.retriable).toBe(true);
    expect(server.requests.describeTopics).toHaveLength(1);
  });

  it('says so when the address is not a broker listener', async () => {
    const server = await serve({});
    const error = await rejection(adminFor(server.address).listTopics());
    expect(error.code).toBe(ErrorCode.UNSUPPORTED_VERSION);
    expect(error.message).toContain('point bootstrap at a broker listener');
  });

  it('refuses requests after close', async () => {
    const server = await serve({ describeCluster: () => cluster });
    const admin = adminFor(server.address);
    await admin.describeCluster();
    await admin.close();
    const error = await rejection(admin.describeCluster());
    expect(error.code).toBe(ErrorCode.ILLEGAL_STATE);
    expect(server.requests.describeCluster).toHaveLength(1);
  });
});

describe('Admin: topics', () => {
  it('sends createTopics as asked: defaults left absent, configs as entries', async () => {
    const server = await serve({
      createTopics: (request) =>
        controller.CreateTopicsResponse.fromPartial({
          topics: request.topics.map((t) => ({ name: t.name, topicId: `id-${t.name}` })),
        }),
    });
    await adminFor(server.address).createTopics({
      topics: [
        { name: 'a', partitions: 3, replicationFactor: 2, configs: { 'retention.ms': '1000' } },
        { name: 'b' },
      ],
      validateOnly: true,
    });
    const [request] = server.requests.createTopics;
    expect(request!.validateOnly).toBe(true);
    expect(request!.topics[0]).toEqual({
      name: 'a',
      partitions: 3,
      replicationFactor: 2,
      configs: [{ name: 'retention.ms', value: '1000' }],
    });
    expect(request!.topics[1]!.partitions).toBeUndefined();
    expect(request!.topics[1]!.replicationFactor).toBeUndefined();
  });

  it('rejects with a WeirAdminError holding every topic result when one topic fails', async () => {
    const server = await serve({
      createTopics: () =>
        controller.CreateTopicsResponse.fromPartial({
          topics: [
            { name: 'fresh', topicId: 'id-1', partitions: 3, replicationFactor: 3 },
            {
              name: 'orders',
              error: {
                code: ErrorCode.TOPIC_ALREADY_EXISTS,
                message: "TOPIC_ALREADY_EXISTS: topic 'orders' already exists",
              },
            },
          ],
        }),
    });
    const error = await rejection(
      adminFor(server.address).createTopics({ topics: [{ name: 'fresh' }, { name: 'orders' }] }),
    );
    expect(error).toBeInstanceOf(WeirAdminError);
    const adminError = error as WeirAdminError;
    expect(adminError.code).toBe(ErrorCode.TOPIC_ALREADY_EXISTS);
    expect(adminError.retriable).toBe(false);
    expect(adminError.message).toBe(
      "TOPIC_ALREADY_EXISTS: could not create 1 of 2 topics: 'orders': TOPIC_ALREADY_EXISTS: topic 'orders' already exists",
    );
    expect(adminError.results.map((r) => [r.name, r.error?.code])).toEqual([
      ['fresh', undefined],
      ['orders', ErrorCode.TOPIC_ALREADY_EXISTS],
    ]);
    expect(adminError.failures.map((f) => f.name)).toEqual(['orders']);
  });

  it('words a single failed topic plainly, and is retriable only if every failure is', async () => {
    const server = await serve({
      describeTopics: (request) =>
        proto.weir.admin.DescribeTopicsResponse.fromPartial({
          topics: request.names.map((name) => ({
            name,
            error: { code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, message: '' },
          })),
        }),
    });
    const error = await rejection(adminFor(server.address).describeTopics(['nope']));
    expect(error).toBeInstanceOf(WeirAdminError);
    expect(error.message).toBe(
      "UNKNOWN_TOPIC_OR_PARTITION: could not describe topic 'nope': This server does not host the topic-partition; check the name or refresh metadata.",
    );
    expect(error.retriable).toBe(true);
  });

  it('checks counts locally before sending anything', async () => {
    const server = await serve({});
    const admin = adminFor(server.address);
    const partitions = await rejection(
      admin.createTopics({ topics: [{ name: 'a', partitions: 0 }] }),
    );
    expect(partitions.code).toBe(ErrorCode.INVALID_PARTITIONS);
    expect(partitions.message).toContain("partitions of topic 'a' must be a whole number");
    const factor = await rejection(
      admin.createTopics({ topics: [{ name: 'a', replicationFactor: 2 ** 31 }] }),
    );
    expect(factor.code).toBe(ErrorCode.INVALID_REPLICATION_FACTOR);
    expect((await rejection(admin.deleteTopics([]))).code).toBe(ErrorCode.INVALID_REQUEST);
    expect(
      (await rejection(admin.alterConfigs([{ topic: 'a', set: { x: '1' }, delete: ['x'] }]))).code,
    ).toBe(ErrorCode.INVALID_REQUEST);
    expect(server.requests.createTopics).toHaveLength(0);
    expect(server.requests.incrementalAlterConfigs).toHaveLength(0);
  });

  it('lists topic names sorted, asking for no partitions', async () => {
    const server = await serve({
      describeTopics: () =>
        proto.weir.admin.DescribeTopicsResponse.fromPartial({
          topics: [{ name: 'zeta' }, { name: 'alpha' }, { name: 'mid' }],
        }),
    });
    expect(await adminFor(server.address).listTopics()).toEqual(['alpha', 'mid', 'zeta']);
    expect(server.requests.describeTopics[0]).toEqual({ names: [], includePartitions: false });
  });

  it('describes topics with partitions (offline leader as null) and configs', async () => {
    const server = await serve({
      describeTopics: () =>
        proto.weir.admin.DescribeTopicsResponse.fromPartial({
          topics: [
            {
              name: 'orders',
              topicId: 'id-1',
              partitionCount: 2,
              replicationFactor: 2,
              partitions: [
                { partition: 1, leader: -1, leaderEpoch: 4, replicas: [2, 3], isr: [] },
                { partition: 0, leader: 1, leaderEpoch: 7, replicas: [1, 2], isr: [1, 2] },
              ],
              configs: [{ name: 'retention.ms', value: '60000' }],
            },
          ],
        }),
    });
    const [orders] = await adminFor(server.address).describeTopics(['orders']);
    expect(server.requests.describeTopics[0]).toEqual({
      names: ['orders'],
      includePartitions: true,
    });
    expect(orders).toEqual({
      name: 'orders',
      topicId: 'id-1',
      partitionCount: 2,
      replicationFactor: 2,
      partitions: [
        {
          partition: 0,
          leader: 1,
          leaderEpoch: 7,
          partitionEpoch: 0,
          replicas: [1, 2],
          isr: [1, 2],
        },
        {
          partition: 1,
          leader: null,
          leaderEpoch: 4,
          partitionEpoch: 0,
          replicas: [2, 3],
          isr: [],
        },
      ],
      configs: { 'retention.ms': '60000' },
    });
  });

  it('sends config changes as SET and DELETE operations on topic resources', async () => {
    const server = await serve({
      incrementalAlterConfigs: (request) =>
        controller.IncrementalAlterConfigsResponse.fromPartial({
          resources: request.resources.map((r) => ({
            resourceType: r.resourceType,
            resourceName: r.resourceName,
          })),
        }),
    });
    const results = await adminFor(server.address).alterConfigs(
      [{ topic: 'orders', set: { 'retention.ms': '1' }, delete: ['cleanup.policy'] }],
      { validateOnly: true },
    );
    expect(results).toEqual([{ name: 'orders' }]);
    const { OP_TYPE_SET, OP_TYPE_DELETE } = controller.IncrementalAlterConfigsRequest_OpType;
    expect(server.requests.incrementalAlterConfigs[0]).toEqual({
      resources: [
        {
          resourceType: proto.weir.metadata.ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC,
          resourceName: 'orders',
          ops: [
            { name: 'retention.ms', op: OP_TYPE_SET, value: '1' },
            { name: 'cleanup.policy', op: OP_TYPE_DELETE, value: '' },
          ],
        },
      ],
      validateOnly: true,
    });
  });

  it('adds partitions and deletes topics, reporting each topic', async () => {
    const server = await serve({
      createPartitions: (request) =>
        controller.CreatePartitionsResponse.fromPartial({
          topics: request.topics.map((t) => ({
            name: t.name,
            ...(t.count <= 2 && {
              error: { code: ErrorCode.INVALID_PARTITIONS, message: 'it has 2 already' },
            }),
          })),
        }),
      deleteTopics: (request) =>
        controller.DeleteTopicsResponse.fromPartial({
          topics: request.names.map((name) => ({ name, topicId: `id-${name}` })),
        }),
    });
    const admin = adminFor(server.address);
    expect(await admin.createPartitions([{ name: 'a', count: 6 }])).toEqual([{ name: 'a' }]);
    expect(server.requests.createPartitions[0]).toEqual({
      topics: [{ name: 'a', count: 6 }],
      validateOnly: false,
    });
    const error = await rejection(admin.createPartitions([{ name: 'b', count: 2 }]));
    expect(error.message).toBe(
      "INVALID_PARTITIONS: could not add partitions to topic 'b': it has 2 already",
    );
    expect(await admin.deleteTopics(['a'])).toEqual([{ name: 'a', topicId: 'id-a' }]);
  });
});
