// The gRPC plumbing every service of the node shares: handlers that answer from a promise, and
// client calls as promises with a deadline. Errors cross as WeirErrors both ways
// (packages/protocol/src/grpc-errors.ts).

import {
  type ChannelOptions,
  type Client,
  Metadata,
  type MethodDefinition,
  type Server,
  ServerCredentials,
} from '@grpc/grpc-js';
import { ErrorCode, WeirError, fromServiceError } from '@weir/protocol';

const MiB = 1024 * 1024;

/** Options for the node's servers: explicit limits and keepalive, never grpc-js defaults. */
export const SERVER_GRPC_OPTIONS: ChannelOptions = {
  // Produce requests: a client's batches for one broker.
  'grpc.max_receive_message_length': 16 * MiB,
  // Fetch answers (the broker caps them at 48 MiB) and replication.
  'grpc.max_send_message_length': 64 * MiB,
  // Calls one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS, at the
  // 100 the HTTP/2 spec recommends as a minimum); the client queues more.
  // With the receive limit above it bounds what one connection can make the node buffer, as
  // Kafka's one-request-at-a-time per connection does. Long-polling fetches and the
  // replication streams each hold one.
  'grpc.max_concurrent_streams': 100,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
};

/** Options for the node's clients (brokers calling controllers). */
export const CLIENT_GRPC_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': 16 * MiB,
  'grpc.max_send_message_length': 16 * MiB,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Reconnect quickly after a controller restarts instead of grpc-js's growing back-off.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
};

export { unary } from '@weir/protocol';

/**
 * Calls a unary method, described by its entry in a generated service definition, on any
 * grpc-js client; rejects with the WeirError the call failed with.
 */
export function callUnary<Request, Response>(
  client: Client,
  method: MethodDefinition<Request, Response>,
  request: Request,
  timeoutMs: number,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      new Metadata(),
      { deadline: Date.now() + timeoutMs },
      (error, response) => (error ? reject(fromServiceError(error)) : resolve(response!)),
    );
  });
}

/**
 * Binds a server on host:port; resolves with the port bound (useful with port 0). A port in use
 * is an INVALID_CONFIG naming the listener, not grpc-js's "No address added".
 */
export function bindServer(
  server: Server,
  host: string,
  port: number,
  listener: string,
): Promise<number> {
  const address = hostPort(host, port);
  return new Promise((resolve, reject) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) => {
      if (error === null) return resolve(bound);
      const inUse = /EADDRINUSE/.test(error.message);
      reject(
        new WeirError(
          ErrorCode.INVALID_CONFIG,
          inUse
            ? `cannot listen on ${address} (${listener}): the port is in use; stop what holds it or choose another port`
            : `cannot listen on ${address} (${listener}): ${error.message}`,
          { cause: error },
        ),
      );
    }),
  );
}

/** Stops accepting calls and waits for running ones, forcing after `graceMs`. */
export function shutdownServer(server: Server, graceMs = 2_000): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

/** `host:port` for a gRPC target, with brackets around an IPv6 host. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
