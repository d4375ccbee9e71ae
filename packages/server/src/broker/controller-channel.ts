// How a broker reaches the active controller: a client per quorum voter, and calls that go to
// the voter that answered last, moving on to the next one when a voter is unreachable or
// answers NOT_CONTROLLER, until the call's deadline (KRaft brokers find the controller the
// same way, from controller.quorum.voters).

import { Client, type MethodDefinition, credentials } from '@grpc/grpc-js';
import { ErrorCode, WeirError, isWeirError, proto } from '@weir/protocol';
import { CLIENT_GRPC_OPTIONS, callUnary } from '../grpc.js';

/** The controller's methods, by name: `channel.call(Controller.createTopics, request)`. */
export const Controller = proto.weir.controller.ControllerServiceService;

export interface ControllerChannelOptions {
  /** host:port of each voter's controller listener, by node id. */
  readonly voters: ReadonlyMap<number, string>;
  /** The longest one call may take over all its attempts. Default 10 s. */
  readonly requestTimeoutMs?: number;
  /** The pause before trying the next voter. Default 50 ms. */
  readonly retryBackoffMs?: number;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_RETRY_BACKOFF_MS = 50;
/** One attempt's share of the deadline, so a hung voter does not eat the whole call. */
const ATTEMPT_TIMEOUT_MS = 3_000;

/** Errors after which another voter may answer. */
function worthAnotherVoter(error: unknown): boolean {
  return (
    isWeirError(error) &&
    (error.code === ErrorCode.NOT_CONTROLLER ||
      error.code === ErrorCode.NETWORK_EXCEPTION ||
      error.code === ErrorCode.REQUEST_TIMED_OUT)
  );
}

export class ControllerChannel {
  private readonly clients: { readonly id: number; readonly client: Client }[];
  private current = 0;
  private closed = false;

  constructor(private readonly options: ControllerChannelOptions) {
    if (options.voters.size === 0) {
      throw new WeirError(ErrorCode.INVALID_CONFIG, 'a broker needs controller.quorum.voters');
    }
    this.clients = [...options.voters].map(([id, address]) => ({
      id,
      client: new Client(address, credentials.createInsecure(), CLIENT_GRPC_OPTIONS),
    }));
  }

  /** The voter the next call goes to first: the one that answered last. */
  get preferredVoter(): number {
    return this.clients[this.current]!.id;
  }

  /**
   * Calls `method` on the active controller. Non-retriable errors are thrown at once; after the
   * deadline the last error is thrown.
   */
  async call<Request, Response>(
    method: MethodDefinition<Request, Response>,
    request: Request,
    timeoutMs = this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
  ): Promise<Response> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      if (this.closed)
        throw new WeirError(ErrorCode.NETWORK_EXCEPTION, 'controller channel closed');
      const { client } = this.clients[this.current]!;
      const remainingMs = deadline - Date.now();
      try {
        return await callUnary(
          client,
          method,
          request,
          Math.max(1, Math.min(ATTEMPT_TIMEOUT_MS, remainingMs)),
        );
      } catch (error) {
        if (!worthAnotherVoter(error)) throw error;
        lastError = error;
      }
      this.current = (this.current + 1) % this.clients.length;
      // A full round without an answer: give the quorum a moment (an election) before the next.
      const backoffMs =
        (attempt + 1) % this.clients.length === 0
          ? (this.options.retryBackoffMs ?? DEFAULT_RETRY_BACKOFF_MS) * 4
          : 0;
      if (Date.now() + backoffMs >= deadline) throw lastError;
      if (backoffMs > 0) await new Promise((resolve) => setTimeout(resolve, backoffMs));
    }
  }

  close(): void {
    this.closed = true;
    for (const { client } of this.clients) client.close();
  }
}
