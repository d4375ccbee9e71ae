// The code generated from proto/ (scripts/gen-proto.mjs), used the way the broker and the
// client will use it: int64 offsets as exact bigints on the wire, and a generated grpc-js
// service served by a real server on loopback and called through the generated client.
import {
  Metadata,
  Server,
  ServerCredentials,
  credentials,
  status as grpcStatus,
  type ServiceError,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, errorInfo, proto } from '../src/index.js';

const { OffsetAndEpoch, ErrorStatus, TopicPartition } = proto.weir.common;
const health = proto.grpc.health.v1;
const { SERVING, NOT_SERVING } = health.HealthCheckResponse_ServingStatus;
type ServingStatus = proto.grpc.health.v1.HealthCheckResponse_ServingStatus;

const callTimeoutMs = 5_000;

describe('generated messages', () => {
  it.each([
    ['just above 2^53, not representable as a double', 2n ** 53n + 1n],
    ['the largest int64', 2n ** 63n - 1n],
    ['-1, Kafka’s "no offset"', -1n],
  ])('round-trips an int64 offset as an exact bigint: %s', (_name, offset) => {
    const bytes = OffsetAndEpoch.encode({ offset, leaderEpoch: 7 }).finish();
    const decoded = OffsetAndEpoch.decode(bytes);

    expect(typeof decoded.offset).toBe('bigint');
    expect(decoded).toEqual({ offset, leaderEpoch: 7 });
  });

  it('refuses an offset outside int64 instead of truncating it', () => {
    expect(() => OffsetAndEpoch.encode({ offset: 2n ** 63n, leaderEpoch: 0 })).toThrow(/int64/);
  });

  it('carries error codes from the error registry with their message', () => {
    const sent = {
      code: ErrorCode.NOT_ENOUGH_REPLICAS,
      message: errorInfo(ErrorCode.NOT_ENOUGH_REPLICAS).message,
    };
    expect(ErrorStatus.decode(ErrorStatus.encode(sent).finish())).toEqual(sent);
    expect(sent.code).toBe(19); // Kafka's number for NOT_ENOUGH_REPLICAS.
  });

  it('decodes absent fields as proto3 defaults', () => {
    expect(TopicPartition.decode(new Uint8Array())).toEqual({ topic: '', partition: 0 });
  });
});

describe('generated grpc-js Health service over a real server', () => {
  // Overall health under "" as the gRPC health-checking protocol specifies, plus one named
  // service that is not serving.
  const statuses = new Map<string, ServingStatus>([
    ['', SERVING],
    ['weir.test.Draining', NOT_SERVING],
  ]);
  const server = new Server();
  let client: proto.grpc.health.v1.HealthClient;

  beforeAll(async () => {
    const implementation: proto.grpc.health.v1.HealthServer = {
      check(call, callback) {
        const status = statuses.get(call.request.service);
        if (status === undefined) {
          callback({
            code: grpcStatus.NOT_FOUND,
            details: `unknown service ${call.request.service}`,
          });
        } else {
          callback(null, { status });
        }
      },
      watch(call) {
        call.write({ status: statuses.get(call.request.service) ?? NOT_SERVING });
      },
    };
    server.addService(health.HealthService, implementation);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, boundPort) =>
        error ? reject(error) : resolve(boundPort),
      );
    });
    expect(port).toBeGreaterThan(0);
    client = new health.HealthClient(`127.0.0.1:${port}`, credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  function check(service: string): Promise<proto.grpc.health.v1.HealthCheckResponse> {
    return new Promise((resolve, reject) => {
      const options = { deadline: Date.now() + callTimeoutMs };
      client.check({ service }, new Metadata(), options, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  it('answers Check with SERVING through the generated client', async () => {
    await expect(check('')).resolves.toEqual({ status: SERVING });
  });

  it('answers Check for a service that is not serving', async () => {
    await expect(check('weir.test.Draining')).resolves.toEqual({ status: NOT_SERVING });
  });

  it('fails Check for an unknown service with NOT_FOUND, as the protocol requires', async () => {
    const error = await check('no.such.Service').then(
      () => undefined,
      (rejection: ServiceError) => rejection,
    );
    expect(error?.code).toBe(grpcStatus.NOT_FOUND);
  });

  it('streams the current status first on Watch', async () => {
    const call = client.watch({ service: '' }, { deadline: Date.now() + callTimeoutMs });
    const first = await new Promise<proto.grpc.health.v1.HealthCheckResponse>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
    });
    call.on('error', () => {}); // The cancellation below ends the call with CANCELLED.
    call.cancel();
    expect(first).toEqual({ status: SERVING });
  });
});
