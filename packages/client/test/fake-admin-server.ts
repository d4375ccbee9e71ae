// An in-process AdminService on 127.0.0.1, port 0, whose answers each test scripts: the admin
// client's collaborator, standing in for a broker. (Whole-cluster tests use real brokers.)

import { createServer } from 'node:net';
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { proto, toServiceError } from '@weir/protocol';
import type { AdminMethod, RequestOf, ResponseOf } from '../src/connection.js';

export type FakeHandler<M extends AdminMethod> = (
  request: RequestOf<M>,
) => ResponseOf<M> | Promise<ResponseOf<M>>;
export type FakeHandlers = { [M in AdminMethod]?: FakeHandler<M> };

export interface FakeAdminServer {
  readonly address: string;
  /** Requests received, per method, in order. */
  readonly requests: { [M in AdminMethod]: RequestOf<M>[] };
  stop(): Promise<void>;
}

const METHODS = Object.keys(proto.weir.admin.AdminServiceService) as AdminMethod[];

/** Starts a server; a method without a handler answers UNIMPLEMENTED, a throw its WeirError. */
export async function startFakeAdminServer(handlers: FakeHandlers): Promise<FakeAdminServer> {
  const requests = Object.fromEntries(METHODS.map((m) => [m, []])) as unknown as {
    [M in AdminMethod]: RequestOf<M>[];
  };
  const implementation: UntypedServiceImplementation = {};
  for (const method of METHODS) {
    implementation[method] = (
      call: ServerUnaryCall<unknown, unknown>,
      callback: sendUnaryData<unknown>,
    ) => {
      (requests[method] as unknown[]).push(call.request);
      const handler = handlers[method] as ((request: unknown) => unknown) | undefined;
      if (handler === undefined) {
        callback({ code: status.UNIMPLEMENTED, details: `${method} is not scripted` }, null);
        return;
      }
      Promise.resolve()
        .then(() => handler(call.request))
        .then(
          (response) => callback(null, response),
          (error: unknown) => callback(toServiceError(error), null),
        );
    };
  }
  const server = new Server();
  server.addService(proto.weir.admin.AdminServiceService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    requests,
    stop: () => {
      // Calls a test left hanging are cut off rather than waited for.
      server.forceShutdown();
      return Promise.resolve();
    },
  };
}

/** A loopback address where nothing listens: connecting to it is refused. */
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
