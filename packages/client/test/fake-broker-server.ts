// In-process BrokerService servers on 127.0.0.1, port 0, whose answers each test scripts: the
// producer's and consumer's collaborators, standing in for brokers so that retries, redirects
// and ordering can be driven exactly. (Whole-cluster tests use real brokers:
// packages/testkit/test/client-producer-consumer.test.ts.)

import {
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { ErrorCode, RecordBatch, WeirError, proto, toServiceError } from '@weir/protocol';
import type {
  BrokerMethod,
  BrokerRequest,
  BrokerResponse,
} from '../src/metadata/broker-clients.js';

export type BrokerHandler<M extends BrokerMethod> = (
  request: BrokerRequest<M>,
) => BrokerResponse<M> | Promise<BrokerResponse<M>>;
export type BrokerHandlers = { [M in BrokerMethod]?: BrokerHandler<M> };

export interface FakeBroker {
  readonly address: string;
  readonly port: number;
  /** Requests received, per method, in order. */
  readonly requests: { [M in BrokerMethod]: BrokerRequest<M>[] };
  /** Calls being answered now, per method. */
  readonly open: { [M in BrokerMethod]: number };
  /** The most calls of each method open at once. */
  readonly maxOpen: { [M in BrokerMethod]: number };
  /** Replaces or adds handlers. */
  handle(handlers: BrokerHandlers): void;
  stop(): Promise<void>;
}

const METHODS = Object.keys(proto.weir.broker.BrokerServiceService) as BrokerMethod[];

/** Starts a server; a method without a handler answers UNIMPLEMENTED, a throw its WeirError. */
export async function startFakeBroker(handlers: BrokerHandlers = {}): Promise<FakeBroker> {
  const requests = Object.fromEntries(
    METHODS.map((m) => [m, []]),
  ) as unknown as FakeBroker['requests'];
  const open = Object.fromEntries(METHODS.map((m) => [m, 0])) as FakeBroker['open'];
  const maxOpen = Object.fromEntries(METHODS.map((m) => [m, 0])) as FakeBroker['maxOpen'];
  const current: BrokerHandlers = { ...handlers };
  const implementation: UntypedServiceImplementation = {};
  /** Answers one call of `method` with its scripted handler, counting it as open meanwhile. */
  const answer = (method: BrokerMethod, request: unknown): Promise<unknown> => {
    (requests[method] as unknown[]).push(request);
    const handler = current[method] as (request: unknown) => unknown;
    open[method]++;
    maxOpen[method] = Math.max(maxOpen[method], open[method]);
    return Promise.resolve()
      .then(() => handler(request))
      .finally(() => open[method]--);
  };
  for (const method of METHODS) {
    if (method === 'produceStream') continue;
    implementation[method] = (
      call: ServerUnaryCall<unknown, unknown>,
      callback: sendUnaryData<unknown>,
    ) => {
      if (current[method] === undefined) {
        (requests[method] as unknown[]).push(call.request);
        callback({ code: status.UNIMPLEMENTED, details: `${method} is not scripted` }, null);
        return;
      }
      answer(method, call.request).then(
        (response) => callback(null, response),
        (error: unknown) => callback(toServiceError(error), null),
      );
    };
  }
  // The producer's ordered stream: each request is scripted as a `produce` call, recorded under
  // `produce`, and answered on the stream with its correlation id, in the order answers come.
  implementation.produceStream = (
    call: ServerDuplexStream<
      proto.weir.broker.ProduceStreamRequest,
      proto.weir.broker.ProduceStreamResponse
    >,
  ) => {
    call.on('data', (message: proto.weir.broker.ProduceStreamRequest) => {
      const { correlationId } = message;
      const answered =
        current.produce === undefined
          ? Promise.reject(new WeirError(ErrorCode.UNKNOWN_SERVER_ERROR, 'produce is not scripted'))
          : answer('produce', message.request);
      answered.then(
        (response) => {
          if (!call.cancelled && call.writable) {
            call.write({
              correlationId,
              error: undefined,
              response: response as proto.weir.broker.ProduceResponse,
            });
          }
        },
        (error: unknown) => {
          if (!call.cancelled && call.writable) {
            const weirError =
              error instanceof WeirError
                ? error
                : new WeirError(ErrorCode.UNKNOWN_SERVER_ERROR, String(error));
            call.write({
              correlationId,
              error: { code: weirError.code, message: weirError.message },
              response: undefined,
            });
          }
        },
      );
    });
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  };
  const server = new Server();
  server.addService(proto.weir.broker.BrokerServiceService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    port,
    requests,
    open,
    maxOpen,
    handle: (more) => Object.assign(current, more),
    stop: () => {
      server.forceShutdown();
      return Promise.resolve();
    },
  };
}

export interface FakeTopic {
  readonly name: string;
  /** Per partition: its leader's broker id and leader epoch. */
  readonly partitions: readonly { readonly leader: number; readonly epoch?: number }[];
}

/** A Metadata answer naming `brokers` (id → fake) and `topics`; other asked topics unknown. */
export function metadataAnswer(
  brokers: ReadonlyMap<number, FakeBroker>,
  topics: readonly FakeTopic[],
  request: proto.weir.broker.MetadataRequest,
): proto.weir.broker.MetadataResponse {
  const names = request.topics.length === 0 ? topics.map((t) => t.name) : request.topics;
  return {
    clusterId: 'fake',
    controllerId: 1,
    brokers: [...brokers].map(([brokerId, broker]) => ({
      brokerId,
      host: '127.0.0.1',
      port: broker.port,
    })),
    topics: names.map((name) => {
      const topic = topics.find((t) => t.name === name);
      if (topic === undefined) {
        return {
          name,
          error: {
            code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            message: `topic '${name}' does not exist`,
          },
          topicId: '',
          partitions: [],
        };
      }
      return {
        name,
        error: { code: ErrorCode.NONE, message: '' },
        topicId: `${name}-id`,
        partitions: topic.partitions.map(({ leader, epoch = 0 }, partition) => ({
          partition,
          error: { code: ErrorCode.NONE, message: '' },
          leaderId: leader,
          leaderEpoch: epoch,
          replicas: [leader],
          isr: [leader],
        })),
      };
    }),
  };
}

/** One partition's log as a fake leader keeps it: offsets, and idempotent deduplication. */
export class FakeLog {
  readonly batches: Buffer[] = [];
  private nextOffset = 0n;
  private readonly bySequence = new Map<string, bigint>();

  /** Appends a produced batch; a retried one (same producer id and sequence) gets its offset. */
  append(records: Buffer): bigint {
    const batch = RecordBatch.validated(records);
    const key = `${batch.producerId}:${batch.producerEpoch}:${batch.baseSequence}`;
    if (batch.producerId >= 0n) {
      const original = this.bySequence.get(key);
      if (original !== undefined) return original;
    }
    const baseOffset = this.nextOffset;
    const stored = Buffer.from(records);
    RecordBatch.view(stored).setBaseOffset(baseOffset);
    this.batches.push(stored);
    this.nextOffset += BigInt(batch.lastOffsetDelta + 1);
    if (batch.producerId >= 0n) this.bySequence.set(key, baseOffset);
    return baseOffset;
  }

  get logEndOffset(): bigint {
    return this.nextOffset;
  }

  /** The values of every record, in offset order. */
  values(): string[] {
    return this.batches.flatMap((b) =>
      [...RecordBatch.view(b).records()].map((r) => r.value!.toString()),
    );
  }
}

export function ok(): proto.weir.common.ErrorStatus {
  return { code: ErrorCode.NONE, message: '' };
}

export function errorStatus(code: ErrorCode, message = ''): proto.weir.common.ErrorStatus {
  return { code, message: new WeirError(code, message === '' ? undefined : message).message };
}

/** A promise with its resolve function outside, for holding answers until a test says so. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Waits until `check` holds, polling; fails with `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => boolean,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
