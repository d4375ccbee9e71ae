// The producer's and consumer's connections: one BrokerService client per broker address, and
// unary calls on them as promises with a deadline that reject with WeirErrors. Channel options
// are explicit (CONVENTIONS.md: limits on everything), matched to the broker's own server
// options (packages/server/src/grpc.ts).

import {
  type ChannelOptions,
  type ClientDuplexStream,
  type MethodDefinition,
  Metadata,
  credentials,
} from '@grpc/grpc-js';
import { ErrorCode, WeirError, proto } from '@weir/protocol';
import { RETRY_BACKOFF_MAX_MS, toWeirError } from '../connection.js';

const MiB = 1024 * 1024;

/** Fetch answers are bounded by the consumer's maxBytes, plus one batch that may exceed it. */
export const BROKER_MAX_RECEIVE_MESSAGE_BYTES = 64 * MiB;
/** What a broker accepts in one request (its `grpc.max_receive_message_length`). */
export const BROKER_MAX_SEND_MESSAGE_BYTES = 16 * MiB;

type Service = typeof proto.weir.broker.BrokerServiceService;
export type BrokerMethod = keyof Service;
export type BrokerRequest<M extends BrokerMethod> = Parameters<Service[M]['requestSerialize']>[0];
export type BrokerResponse<M extends BrokerMethod> = ReturnType<Service[M]['responseDeserialize']>;

function channelOptions(clientId: string): ChannelOptions {
  return {
    'grpc.primary_user_agent': clientId,
    'grpc.max_receive_message_length': BROKER_MAX_RECEIVE_MESSAGE_BYTES,
    'grpc.max_send_message_length': BROKER_MAX_SEND_MESSAGE_BYTES,
    // Notice a broker that died under an open produce or long-poll fetch within seconds, not
    // at a TCP timeout. Pings only while calls are open; the broker allows one per 5 s.
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 0,
    // A restarted broker is seen again quickly (the defaults wait up to 120 s).
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': RETRY_BACKOFF_MAX_MS,
    // The producer and consumer retry by their own rules (sequence numbers, leaders).
    'grpc.enable_retries': 0,
  };
}

export class BrokerClients {
  private readonly clients = new Map<string, proto.weir.broker.BrokerServiceClient>();
  private readonly channelOptions: ChannelOptions;
  private closed = false;

  constructor(clientId: string) {
    this.channelOptions = channelOptions(clientId);
  }

  /**
   * Calls `method` on the broker at `address`; rejects with a WeirError (NETWORK_EXCEPTION
   * when the broker cannot be reached, REQUEST_TIMED_OUT when `timeoutMs` passes).
   */
  call<M extends BrokerMethod>(
    address: string,
    method: M,
    request: BrokerRequest<M>,
    timeoutMs: number,
  ): Promise<BrokerResponse<M>> {
    if (this.closed) {
      return Promise.reject(
        new WeirError(ErrorCode.ILLEGAL_STATE, `the connections are closed; cannot call ${method}`),
      );
    }
    const definition = proto.weir.broker.BrokerServiceService[
      method
    ] as unknown as MethodDefinition<BrokerRequest<M>, BrokerResponse<M>>;
    const client = this.client(address);
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (error, response) => {
          if (error !== null) {
            reject(toWeirError(error, address, method, 'weir.broker.BrokerService'));
          } else {
            resolve(response!);
          }
        },
      );
    });
  }

  /** Opens a ProduceStream on the broker at `address` (see producer/produce-streams.ts). */
  openProduceStream(
    address: string,
  ): ClientDuplexStream<
    proto.weir.broker.ProduceStreamRequest,
    proto.weir.broker.ProduceStreamResponse
  > {
    if (this.closed) {
      throw new WeirError(ErrorCode.ILLEGAL_STATE, 'the connections are closed; cannot produce');
    }
    return this.client(address).produceStream();
  }

  /** Closes every connection; calls still open fail with NETWORK_EXCEPTION. */
  close(): void {
    this.closed = true;
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  private client(address: string): proto.weir.broker.BrokerServiceClient {
    let client = this.clients.get(address);
    if (client === undefined) {
      client = new proto.weir.broker.BrokerServiceClient(
        address,
        credentials.createInsecure(),
        this.channelOptions,
      );
      this.clients.set(address, client);
    }
    return client;
  }
}
