// The producer's Produce calls, on one ProduceStream per broker (broker.proto): requests written
// on one stream reach the broker in the order they were written, and the broker starts them in
// that order, so an idempotent producer can have up to five batches of a partition in flight
// (unary calls could overtake each other on the way and arrive out of sequence). Each request
// carries a correlation id and gets its own answer and deadline; answers may come back in any
// order. A stream that fails fails every request on it with the stream's error (retriable) and
// is opened again by the next request.

import type { ClientDuplexStream } from '@grpc/grpc-js';
import { ErrorCode, WeirError, type proto } from '@weir/protocol';
import { toWeirError } from '../connection.js';
import { fromErrorStatus } from '../errors.js';
import type { BrokerClients } from '../metadata/broker-clients.js';

type Request = proto.weir.broker.ProduceStreamRequest;
type Response = proto.weir.broker.ProduceStreamResponse;
type ProduceResponse = proto.weir.broker.ProduceResponse;

interface Pending {
  readonly resolve: (response: ProduceResponse) => void;
  readonly reject: (error: WeirError) => void;
  readonly timer: NodeJS.Timeout;
}

interface Stream {
  readonly call: ClientDuplexStream<Request, Response>;
  readonly pending: Map<bigint, Pending>;
}

export class ProduceStreams {
  private readonly streams = new Map<string, Stream>();
  private nextCorrelationId = 0n;

  constructor(private readonly clients: BrokerClients) {}

  /**
   * Sends `request` on the stream to `address`, after every request sent there before it;
   * resolves with the broker's answer, or rejects with a WeirError: the whole request's error,
   * NETWORK_EXCEPTION when the stream broke, REQUEST_TIMED_OUT after `timeoutMs`.
   */
  produce(
    address: string,
    request: proto.weir.broker.ProduceRequest,
    timeoutMs: number,
  ): Promise<ProduceResponse> {
    let stream: Stream;
    try {
      stream = this.streamTo(address);
    } catch (error) {
      return Promise.reject(
        toWeirError(error, address, 'ProduceStream', 'weir.broker.BrokerService'),
      );
    }
    const correlationId = this.nextCorrelationId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // The broker may still append it; the producer's retry is deduplicated (idempotence).
        stream.pending.delete(correlationId);
        reject(
          new WeirError(
            ErrorCode.REQUEST_TIMED_OUT,
            `Produce to ${address} was not answered within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      stream.pending.set(correlationId, { resolve, reject, timer });
      stream.call.write({ correlationId, request });
    });
  }

  /** Ends every stream; requests still waiting fail with NETWORK_EXCEPTION. */
  close(): void {
    for (const [address, stream] of this.streams) {
      this.failAll(
        address,
        stream,
        new WeirError(ErrorCode.NETWORK_EXCEPTION, `the producer closed its stream to ${address}`),
      );
      stream.call.end();
    }
    this.streams.clear();
  }

  private streamTo(address: string): Stream {
    const existing = this.streams.get(address);
    if (existing !== undefined && !existing.call.destroyed && existing.call.writable) {
      return existing;
    }
    const stream: Stream = { call: this.clients.openProduceStream(address), pending: new Map() };
    this.streams.set(address, stream);
    stream.call.on('data', (response: Response) => {
      const pending = stream.pending.get(response.correlationId);
      if (pending === undefined) return; // timed out already
      stream.pending.delete(response.correlationId);
      clearTimeout(pending.timer);
      const error = fromErrorStatus(response.error);
      if (error !== undefined) pending.reject(error);
      else if (response.response === undefined) {
        pending.reject(
          new WeirError(ErrorCode.UNKNOWN_SERVER_ERROR, `${address} answered Produce with nothing`),
        );
      } else pending.resolve(response.response);
    });
    const broken = (error: unknown) => {
      if (this.streams.get(address) === stream) this.streams.delete(address);
      const weirError = toWeirError(error, address, 'ProduceStream', 'weir.broker.BrokerService');
      this.failAll(address, stream, weirError);
    };
    stream.call.on('error', broken);
    stream.call.on('end', () =>
      broken(new WeirError(ErrorCode.NETWORK_EXCEPTION, `${address} ended the Produce stream`)),
    );
    return stream;
  }

  private failAll(address: string, stream: Stream, cause: WeirError): void {
    // Whether the broker got a request is unknown: the producer may retry it (idempotence
    // deduplicates what was written).
    const error =
      cause.code === ErrorCode.NETWORK_EXCEPTION
        ? cause
        : new WeirError(
            ErrorCode.NETWORK_EXCEPTION,
            `the Produce stream to ${address} broke: ${cause.message}`,
            { cause },
          );
    for (const pending of stream.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    stream.pending.clear();
  }
}
