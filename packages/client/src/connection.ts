// Unary admin calls against the bootstrap brokers, with failover and retries inside one
// deadline. Every broker answers AdminService (reads from its own metadata image, writes
// forwarded to the active controller, KIP-590), so the client needs no metadata of its own:
// it sticks to the last broker that answered and moves on when one cannot be reached.
//
// What is retried, until `requestTimeoutMs` after the call began:
// - a broker that cannot be reached (NETWORK_EXCEPTION): at once on the next broker, with a
//   back-off once every broker has been tried;
// - NOT_CONTROLLER (the quorum is electing a leader, or the broker has not yet heard of the new
//   one) and REQUEST_TIMED_OUT (the controller did not commit in time): on the same broker
//   after a back-off.
// Anything else is thrown at once, other retriable errors included: they concern the request's
// content (UNKNOWN_TOPIC_OR_PARTITION, say) and the caller knows better whether to wait. As in Kafka's admin client, a write retried after a lost
// answer may find its own earlier effect (a retried CreateTopics answering
// TOPIC_ALREADY_EXISTS).

import {
  type ChannelOptions,
  type MethodDefinition,
  Metadata,
  type ServiceError,
  credentials,
  status,
} from '@grpc/grpc-js';
import {
  ERROR_CODE_METADATA_KEY,
  ErrorCode,
  WeirError,
  fromServiceError,
  proto,
} from '@weir/protocol';
import type { ResolvedConfig } from './config.js';
import { errorDetail } from './errors.js';

const MiB = 1024 * 1024;

/** Admin answers for large clusters (every topic's partitions) stay well below this. */
export const ADMIN_MAX_RECEIVE_MESSAGE_BYTES = 64 * MiB;

/** The first back-off between retries; it doubles per retry up to the maximum. */
export const RETRY_BACKOFF_INITIAL_MS = 50;
export const RETRY_BACKOFF_MAX_MS = 1_000;

/** Whole-call errors that mean "the cluster is between two states": worth another try. */
const RETRIED_ERRORS: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.NETWORK_EXCEPTION,
  ErrorCode.NOT_CONTROLLER,
  ErrorCode.REQUEST_TIMED_OUT,
]);

type Service = typeof proto.weir.admin.AdminServiceService;
export type AdminMethod = keyof Service;
export type RequestOf<M extends AdminMethod> = Parameters<Service[M]['requestSerialize']>[0];
export type ResponseOf<M extends AdminMethod> = ReturnType<Service[M]['responseDeserialize']>;

function channelOptions(clientId: string): ChannelOptions {
  return {
    'grpc.primary_user_agent': clientId,
    'grpc.max_receive_message_length': ADMIN_MAX_RECEIVE_MESSAGE_BYTES,
    // Admin requests are small; the broker's own limit applies to what it accepts.
    'grpc.max_send_message_length': 4 * MiB,
    // Notice a broker that went away during a call within seconds, not at a TCP timeout.
    // Pings only while a call is open: an idle admin client costs the broker nothing.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 0,
    // A broker that comes back is seen again quickly (the defaults wait up to 120 s).
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': RETRY_BACKOFF_MAX_MS,
    // Each call is bounded by our own deadline; grpc-js retries would hide broker failover.
    'grpc.enable_retries': 0,
  };
}

export class AdminConnection {
  private readonly clients = new Map<string, proto.weir.admin.AdminServiceClient>();
  private readonly channelOptions: ChannelOptions;
  /** The index in `brokers` of the broker that answered last; calls start there. */
  private current = 0;
  private closed = false;

  constructor(private readonly config: ResolvedConfig) {
    this.channelOptions = channelOptions(config.clientId);
  }

  async call<M extends AdminMethod>(method: M, request: RequestOf<M>): Promise<ResponseOf<M>> {
    if (this.closed) {
      throw new WeirError(
        ErrorCode.ILLEGAL_STATE,
        'this admin client is closed; get a new one with weir.admin()',
      );
    }
    const { brokers, requestTimeoutMs } = this.config;
    const startedAt = Date.now();
    const deadline = startedAt + requestTimeoutMs;
    const schedule = new RetrySchedule(this.current, brokers.length);
    let previous: WeirError | undefined;
    for (let attempts = 1; ; attempts++) {
      const address = brokers[schedule.broker]!;
      let error: WeirError;
      try {
        const response = await this.callOnce(address, method, request, deadline);
        this.current = schedule.broker;
        return response;
      } catch (caught) {
        error = toWeirError(caught, address, method);
      }
      if (this.closed || !RETRIED_ERRORS.has(error.code)) throw error;
      // When the deadline cut an attempt short, the error before it says more.
      const reported = Date.now() >= deadline ? (previous ?? error) : error;
      const waitMs = schedule.next(error);
      if (waitMs > 0) await sleep(Math.min(waitMs, deadline - Date.now()));
      if (Date.now() >= deadline) {
        throw giveUp(reported, attempts, Date.now() - startedAt, brokers);
      }
      previous = error;
    }
  }

  private callOnce<M extends AdminMethod>(
    address: string,
    method: M,
    request: RequestOf<M>,
    deadline: number,
  ): Promise<ResponseOf<M>> {
    const definition = proto.weir.admin.AdminServiceService[method] as unknown as MethodDefinition<
      RequestOf<M>,
      ResponseOf<M>
    >;
    const client = this.client(address);
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        new Metadata(),
        { deadline },
        (error, response) => {
          if (error !== null) reject(error);
          else resolve(response!);
        },
      );
    });
  }

  private client(address: string): proto.weir.admin.AdminServiceClient {
    let client = this.clients.get(address);
    if (client === undefined) {
      client = new proto.weir.admin.AdminServiceClient(
        address,
        credentials.createInsecure(),
        this.channelOptions,
      );
      this.clients.set(address, client);
    }
    return client;
  }

  close(): void {
    this.closed = true;
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}

/** Which broker the next attempt goes to, and how long to wait before it. */
class RetrySchedule {
  /** Brokers found unreachable since the last back-off. */
  private unreachable = 0;
  private backoffMs = RETRY_BACKOFF_INITIAL_MS;

  constructor(
    private index: number,
    private readonly brokerCount: number,
  ) {}

  get broker(): number {
    return this.index;
  }

  /** After a failed attempt: the milliseconds to wait before the next one. */
  next(error: WeirError): number {
    if (error.code === ErrorCode.NETWORK_EXCEPTION) {
      // Straight on to the next broker; back off only once every broker failed.
      this.index = (this.index + 1) % this.brokerCount;
      this.unreachable++;
      if (this.unreachable < this.brokerCount) return 0;
      this.unreachable = 0;
    }
    const waitMs = jitter(this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, RETRY_BACKOFF_MAX_MS);
    return waitMs;
  }
}

function isServiceError(error: unknown): error is ServiceError {
  return (
    error instanceof Error &&
    typeof (error as Partial<ServiceError>).code === 'number' &&
    (error as Partial<ServiceError>).metadata !== undefined
  );
}

/** The WeirError a failed call to `address` stands for, with messages that name the broker. */
export function toWeirError(
  error: unknown,
  address: string,
  method: string,
  service = 'weir.admin.AdminService',
): WeirError {
  if (error instanceof WeirError) return error;
  if (!isServiceError(error)) {
    return new WeirError(
      ErrorCode.UNKNOWN_SERVER_ERROR,
      error instanceof Error ? error.message : String(error),
      { cause: error },
    );
  }
  if (error.code === status.UNIMPLEMENTED) {
    return new WeirError(
      ErrorCode.UNSUPPORTED_VERSION,
      `${address} does not serve ${service}/${method}: point bootstrap at a broker listener (port 9092 by default), not a controller`,
      { cause: error },
    );
  }
  const weirError = fromServiceError(error);
  if (
    error.code === status.DEADLINE_EXCEEDED &&
    error.metadata.get(ERROR_CODE_METADATA_KEY).length === 0
  ) {
    // Our own deadline, not a broker's REQUEST_TIMED_OUT.
    return new WeirError(
      ErrorCode.REQUEST_TIMED_OUT,
      `broker ${address} did not answer ${method} in time`,
      { cause: error },
    );
  }
  if (weirError.code === ErrorCode.NETWORK_EXCEPTION) {
    // grpc-js ends connection failures with an empty "Resolution note: ".
    const reason = errorDetail(weirError).replace(/[.\s]*Resolution note:\s*$/, '');
    return new WeirError(
      ErrorCode.NETWORK_EXCEPTION,
      `broker ${address} cannot be reached: ${reason}`,
      { cause: error },
    );
  }
  return weirError;
}

/** The last error once the deadline has passed, saying how long and where the client tried. */
function giveUp(
  last: WeirError,
  attempts: number,
  elapsedMs: number,
  brokers: readonly string[],
): WeirError {
  const tries = attempts === 1 ? '1 attempt' : `${attempts} attempts`;
  const where = brokers.length === 1 ? `broker ${brokers[0]!}` : `brokers ${brokers.join(', ')}`;
  return new WeirError(
    last.code,
    `${errorDetail(last)} (gave up after ${tries} in ${elapsedMs} ms with ${where})`,
    { cause: last },
  );
}

/** ±20% so that clients failing together do not retry together. */
function jitter(ms: number): number {
  return Math.round(ms * (0.8 + 0.4 * Math.random()));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
