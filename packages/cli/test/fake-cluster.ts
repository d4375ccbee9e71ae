// An in-process AdminService on 127.0.0.1, port 0, over a small in-memory cluster: enough
// topic bookkeeping for the CLI's commands to be driven end to end through the real admin
// client. (Whole-cluster tests with real brokers are separate.)

import { Server, ServerCredentials } from '@grpc/grpc-js';
import { createServer } from 'node:net';
import { ErrorCode, WeirError, proto, toServiceError } from '@weir/protocol';

type Status = ReturnType<typeof toServiceError>;

const { controller } = proto.weir;

export interface FakeTopic {
  topicId: string;
  partitions: number;
  replicationFactor: number;
  configs: Map<string, string>;
}

function unary<Req, Res>(
  counter: { requests: number },
  handle: (request: Req) => Res,
): (call: { request: Req }, callback: (error: Status | null, value: Res | null) => void) => void {
  return (call, callback) => {
    counter.requests++;
    try {
      callback(null, handle(call.request));
    } catch (error) {
      callback(toServiceError(error), null);
    }
  };
}

function status(code: ErrorCode, message: string): proto.weir.common.ErrorStatus {
  return { code, message };
}

export class FakeCluster {
  readonly topics = new Map<string, FakeTopic>();
  /** Requests received, of every kind. */
  readonly counter = { requests: 0 };
  /** Thrown (whole call) by the next request, if set. */
  failNext: WeirError | undefined;
  private readonly server = new Server();
  private nextTopicId = 1;
  address = '';

  async start(): Promise<this> {
    this.server.addService(proto.weir.admin.AdminServiceService, this.service());
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
        error === null ? resolve(bound) : reject(error),
      ),
    );
    this.address = `127.0.0.1:${port}`;
    return this;
  }

  stop(): void {
    this.server.forceShutdown();
  }

  /** Adds a topic directly, as if created earlier. */
  addTopic(name: string, partitions: number, replicationFactor: number): FakeTopic {
    const topic: FakeTopic = {
      topicId: `topic-id-${this.nextTopicId++}`,
      partitions,
      replicationFactor,
      configs: new Map(),
    };
    this.topics.set(name, topic);
    return topic;
  }

  private checkFailure(): void {
    const failure = this.failNext;
    this.failNext = undefined;
    if (failure !== undefined) throw failure;
  }

  private service(): proto.weir.admin.AdminServiceServer {
    const c = this.counter;
    return {
      describeCluster: unary(c, () => {
        this.checkFailure();
        return controller.DescribeClusterResponse.fromPartial({
          clusterId: 'fake-cluster',
          controllerId: 1,
          metadataOffset: 2n ** 60n + 1n,
          brokers: [
            {
              brokerId: 2,
              endpoints: [{ name: 'BROKER', host: 'broker-2.local', port: 9092 }],
              fenced: true,
              brokerEpoch: 120n,
            },
            {
              brokerId: 1,
              endpoints: [{ name: 'BROKER', host: '10.0.0.1', port: 9092 }],
              rack: 'rack-a',
              brokerEpoch: 2n ** 60n,
            },
          ],
        });
      }),
      describeQuorum: unary(c, () => {
        this.checkFailure();
        return controller.DescribeQuorumResponse.fromPartial({
          leaderId: 1,
          leaderEpoch: 3n,
          highWatermark: 1500n,
          voters: [
            { nodeId: 1, logEndOffset: 1500n, lag: 0n },
            { nodeId: 2, logEndOffset: 1496n, lag: 4n },
          ],
        });
      }),
      describeTopics: unary(c, (request: proto.weir.admin.DescribeTopicsRequest) => {
        this.checkFailure();
        const names = request.names.length === 0 ? [...this.topics.keys()] : request.names;
        return proto.weir.admin.DescribeTopicsResponse.fromPartial({
          topics: names.map((name) => this.describeTopic(name, request.includePartitions)),
          metadataOffset: 10n,
        });
      }),
      createTopics: unary(c, (request: proto.weir.controller.CreateTopicsRequest) => {
        this.checkFailure();
        return controller.CreateTopicsResponse.fromPartial({
          topics: request.topics.map((topic) => this.createTopic(topic, request.validateOnly)),
        });
      }),
      deleteTopics: unary(c, (request: proto.weir.controller.DeleteTopicsRequest) => {
        this.checkFailure();
        return controller.DeleteTopicsResponse.fromPartial({
          topics: request.names.map((name) => {
            const topic = this.topics.get(name);
            if (topic === undefined) {
              return {
                name,
                error: status(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `no topic '${name}'`),
              };
            }
            this.topics.delete(name);
            return { name, topicId: topic.topicId };
          }),
        });
      }),
      createPartitions: unary(c, (request: proto.weir.controller.CreatePartitionsRequest) => {
        this.checkFailure();
        return controller.CreatePartitionsResponse.fromPartial({
          topics: request.topics.map(({ name, count }) => {
            const topic = this.topics.get(name);
            if (topic === undefined) {
              return {
                name,
                error: status(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `no topic '${name}'`),
              };
            }
            if (count <= topic.partitions) {
              return {
                name,
                error: status(
                  ErrorCode.INVALID_PARTITIONS,
                  `topic '${name}' has ${topic.partitions} partitions; the new count must be higher`,
                ),
              };
            }
            if (!request.validateOnly) topic.partitions = count;
            return { name };
          }),
        });
      }),
      incrementalAlterConfigs: unary(
        c,
        (request: proto.weir.controller.IncrementalAlterConfigsRequest) => {
          this.checkFailure();
          return controller.IncrementalAlterConfigsResponse.fromPartial({
            resources: request.resources.map((resource) => {
              const name = resource.resourceName;
              const topic = this.topics.get(name);
              if (topic === undefined) {
                return {
                  resourceType: resource.resourceType,
                  resourceName: name,
                  error: status(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `no topic '${name}'`),
                };
              }
              if (!request.validateOnly) {
                for (const op of resource.ops) {
                  if (op.op === controller.IncrementalAlterConfigsRequest_OpType.OP_TYPE_SET) {
                    topic.configs.set(op.name, op.value);
                  } else topic.configs.delete(op.name);
                }
              }
              return { resourceType: resource.resourceType, resourceName: name };
            }),
          });
        },
      ),
    };
  }

  private describeTopic(
    name: string,
    includePartitions: boolean,
  ): proto.weir.admin.DescribeTopicsResponse_Topic {
    const topic = this.topics.get(name);
    if (topic === undefined) {
      return proto.weir.admin.DescribeTopicsResponse_Topic.fromPartial({
        name,
        error: status(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `no topic '${name}'`),
      });
    }
    const partitions = Array.from({ length: topic.partitions }, (_, partition) => {
      const replicas = Array.from(
        { length: topic.replicationFactor },
        (_, i) => ((partition + i) % 3) + 1,
      );
      // Partition 1 is offline, to show how that prints.
      const offline = partition === 1;
      return {
        partition,
        leader: offline ? -1 : replicas[0]!,
        leaderEpoch: partition + 2,
        partitionEpoch: 5,
        replicas,
        isr: offline ? [] : replicas,
      };
    });
    return proto.weir.admin.DescribeTopicsResponse_Topic.fromPartial({
      name,
      topicId: topic.topicId,
      partitionCount: topic.partitions,
      replicationFactor: topic.replicationFactor,
      ...(includePartitions && {
        partitions,
        configs: [...topic.configs].map(([key, value]) => ({ name: key, value })),
      }),
    });
  }

  private createTopic(
    request: proto.weir.controller.CreateTopicsRequest_Topic,
    validateOnly: boolean,
  ): proto.weir.controller.CreateTopicsResponse_Topic {
    const { name } = request;
    if (this.topics.has(name)) {
      return controller.CreateTopicsResponse_Topic.fromPartial({
        name,
        error: status(ErrorCode.TOPIC_ALREADY_EXISTS, `topic '${name}' already exists`),
      });
    }
    const partitions = request.partitions ?? 1;
    const replicationFactor = request.replicationFactor ?? 1;
    if (replicationFactor > 3) {
      return controller.CreateTopicsResponse_Topic.fromPartial({
        name,
        error: status(
          ErrorCode.INVALID_REPLICATION_FACTOR,
          `replication factor ${replicationFactor} is above the 3 live brokers`,
        ),
      });
    }
    const topicId = `topic-id-${this.nextTopicId}`;
    if (!validateOnly) {
      const topic = this.addTopic(name, partitions, replicationFactor);
      for (const entry of request.configs) topic.configs.set(entry.name, entry.value);
    }
    return { name, topicId, partitions, replicationFactor };
  }
}

export async function startFakeCluster(): Promise<FakeCluster> {
  return new FakeCluster().start();
}

/** A loopback address where nothing listens. */
export async function deadAddress(): Promise<string> {
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const address = listener.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  await new Promise<void>((resolve, reject) =>
    listener.close((error) => (error ? reject(error) : resolve())),
  );
  return `127.0.0.1:${address.port}`;
}

export { WeirError };
