// The BrokerService handlers: Produce, Fetch, ListOffsets, Metadata and InitProducerId over the
// ReplicaManager. Errors concern one partition each and carry the current leader (KIP-951).

import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { MetadataImage } from '@weir/metadata';
import { ErrorCode, WeirError, isWeirError, type proto, unary } from '@weir/protocol';
import { type DelayedOperation, waitInPurgatory } from '../purgatory.js';
import type { Partition } from '../replica/partition.js';
import type { ReplicaManager } from '../replica/replica-manager.js';
import { InFlightBytes } from './in-flight-bytes.js';
import { metadataResponse, topicConfig } from './metadata-response.js';

type ProduceResponsePartition = proto.weir.broker.ProduceResponse_Partition;
type FetchResponsePartition = proto.weir.broker.FetchResponse_Partition;
type ProduceStreamRequest = proto.weir.broker.ProduceStreamRequest;
type ProduceStreamResponse = proto.weir.broker.ProduceStreamResponse;

export interface BrokerServiceOptions {
  readonly clusterId: string;
  readonly replicas: ReplicaManager;
  /** The metadata image this broker has applied. */
  readonly image: () => MetadataImage;
  /** The active controller as this broker knows it; -1 when unknown. */
  readonly controllerId: () => number;
  /** A new producer id (from a block the controller handed this broker) and its epoch. */
  readonly initProducerId: () => Promise<{ producerId: bigint; producerEpoch: number }>;
  /** Caps of what a client may ask for. */
  readonly fetchMaxWaitCapMs?: number;
  readonly fetchResponseMaxBytes?: number;
  /**
   * Whether this broker has applied the metadata log as far as the controller's image since it
   * started. Until then its image may name it the leader of partitions it led before a restart
   * (it replays old leaderships on the way), so Produce, Fetch and ListOffsets are refused, as
   * Kafka keeps its listeners closed until the broker has caught up. Default: always.
   */
  readonly isCaughtUp?: () => boolean;
  /** Produce bytes a client connection may have in progress (see InFlightBytes). */
  readonly maxInFlightBytesPerConnection?: number;
}

const DEFAULT_FETCH_MAX_WAIT_CAP_MS = 30_000;
/** Below the 64 MiB the broker's gRPC listener may send in one message. */
const DEFAULT_FETCH_RESPONSE_MAX_BYTES = 48 * 1024 * 1024;
export const DEFAULT_MAX_IN_FLIGHT_BYTES_PER_CONNECTION = 64 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const DEFAULT_MIN_INSYNC_REPLICAS = 1;
const NONE = { code: ErrorCode.NONE, message: '' };
const LATEST_TIMESTAMP = -1n;
const EARLIEST_TIMESTAMP = -2n;

export function brokerServiceHandlers(
  options: BrokerServiceOptions,
): proto.weir.broker.BrokerServiceServer {
  const { replicas } = options;
  const inFlight = new InFlightBytes(
    options.maxInFlightBytesPerConnection ?? DEFAULT_MAX_IN_FLIGHT_BYTES_PER_CONNECTION,
  );
  const checkCaughtUp = (): void => {
    if (options.isCaughtUp?.() === false) {
      throw new WeirError(
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        `broker ${replicas.brokerId} is starting and has not caught up with the metadata log, so it does not know yet which partitions it leads; retry shortly`,
      );
    }
  };
  /**
   * Starts a Produce request's appends before it returns, so that the requests of one stream
   * reach the partitions (and their producer-state checks) in the order they arrived; resolves
   * with the answer. Throws for errors of the whole request.
   */
  const startProduce = (
    request: proto.weir.broker.ProduceRequest,
    connection: string,
  ): Promise<proto.weir.broker.ProduceResponse> => {
    if (![0, 1, -1].includes(request.acks)) {
      throw new WeirError(
        ErrorCode.INVALID_REQUIRED_ACKS,
        `acks must be 0, 1 or -1 (all), got ${request.acks}`,
      );
    }
    checkCaughtUp();
    const release = inFlight.acquire(connection, produceRequestBytes(request));
    const work = Promise.all(
      request.topics.map(async (topic) => ({
        topic: topic.topic,
        partitions: await Promise.all(
          topic.partitions.map((p) =>
            producePartition(options, topic.topic, p.partition, Buffer.from(p.records), request),
          ),
        ),
      })),
    );
    void work.finally(release).catch(() => undefined);
    // acks=0: the client does not wait; the broker answers before appending.
    if (request.acks === 0) return Promise.resolve({ topics: [] });
    return work.then((topics) => ({ topics }));
  };
  return {
    produce: unary((request, call) => startProduce(request, call.getPeer())),
    produceStream: (call) => serveProduceStream(call, startProduce),
    fetch: unary(async (request) => {
      checkCaughtUp();
      const maxWaitMs = Math.min(
        Math.max(0, request.maxWaitMs),
        options.fetchMaxWaitCapMs ?? DEFAULT_FETCH_MAX_WAIT_CAP_MS,
      );
      const read = () => fetchAll(options, request);
      const first = await read();
      if (maxWaitMs === 0 || first.bytes >= Math.max(1, request.minBytes) || first.errors) {
        return { topics: first.topics };
      }
      await waitForHighWatermarks(replicas, first.waitingOn, maxWaitMs);
      return { topics: (await read()).topics };
    }),
    listOffsets: unary(async (request) => {
      checkCaughtUp();
      return {
        topics: await Promise.all(
          request.topics.map(async (topic) => ({
            topic: topic.topic,
            partitions: await Promise.all(
              topic.partitions.map((p) => listOffset(options, topic.topic, p)),
            ),
          })),
        ),
      };
    }),
    metadata: unary((request) =>
      metadataResponse(options.image(), {
        clusterId: options.clusterId,
        controllerId: options.controllerId(),
        topics: request.topics,
      }),
    ),
    initProducerId: unary(() => options.initProducerId()),
  };
}

/**
 * One partition of ListOffsets: -2 the log start, -1 the high watermark, else the first record
 * at or after the timestamp below the high watermark (-1 when there is none), as Kafka answers.
 */
async function listOffset(
  options: BrokerServiceOptions,
  topic: string,
  p: proto.weir.broker.ListOffsetsRequest_Partition,
): Promise<proto.weir.broker.ListOffsetsResponse_Partition> {
  try {
    const partition = options.replicas.partitionByName(topic, p.partition);
    if (!partition.isLeader) throw notLeader(partition, options.replicas.brokerId);
    const answer = (offset: bigint, timestamp = -1n) => ({
      partition: p.partition,
      error: NONE,
      offset,
      timestamp,
      leaderEpoch: partition.leaderEpoch,
      currentLeader: undefined,
    });
    if (p.timestamp === EARLIEST_TIMESTAMP) return answer(partition.log.logStartOffset);
    if (p.timestamp === LATEST_TIMESTAMP) return answer(partition.highWatermark);
    if (p.timestamp < 0n) {
      throw new WeirError(
        ErrorCode.INVALID_REQUEST,
        `ListOffsets timestamp ${p.timestamp}: use -1 (latest), -2 (earliest) or a time in ms`,
      );
    }
    const found = await partition.log.offsetForTimestamp(p.timestamp);
    return found === undefined || found.offset >= partition.highWatermark
      ? answer(-1n)
      : answer(found.offset, found.timestamp);
  } catch (error) {
    return {
      partition: p.partition,
      error: errorStatus(error),
      offset: -1n,
      timestamp: -1n,
      leaderEpoch: -1,
      currentLeader: currentLeader(options.image(), topic, p.partition),
    };
  }
}

async function producePartition(
  options: BrokerServiceOptions,
  topic: string,
  partitionId: number,
  records: Buffer,
  request: proto.weir.broker.ProduceRequest,
): Promise<ProduceResponsePartition> {
  const { replicas } = options;
  try {
    const partition = replicas.partitionByName(topic, partitionId);
    const minInsyncReplicas = Number(
      topicConfig(options.image(), topic, 'min.insync.replicas') ?? DEFAULT_MIN_INSYNC_REPLICAS,
    );
    const appended = await partition.appendAsLeader(records, {
      requiredAcks: request.acks,
      minInsyncReplicas,
    });
    replicas.progressed(partition);
    if (request.acks === -1) {
      const code = await waitForReplication(
        replicas,
        partition,
        appended.lastOffset + 1n,
        minInsyncReplicas,
        request.timeoutMs,
      );
      if (code !== ErrorCode.NONE) {
        throw new WeirError(
          code,
          code === ErrorCode.REQUEST_TIMED_OUT
            ? `the in-sync replicas of ${topic}-${partitionId} did not all have offset ${appended.lastOffset} within ${request.timeoutMs} ms; the batch is in the leader's log and may still commit`
            : `${topic}-${partitionId}'s ISR shrank below min.insync.replicas=${minInsyncReplicas} after the append; the batch is in the leader's log`,
        );
      }
    }
    return {
      partition: partitionId,
      error: NONE,
      baseOffset: appended.baseOffset,
      logStartOffset: partition.log.logStartOffset,
      currentLeader: undefined,
    };
  } catch (error) {
    return {
      partition: partitionId,
      error: errorStatus(error),
      baseOffset: -1n,
      logStartOffset: -1n,
      currentLeader: currentLeader(options.image(), topic, partitionId),
    };
  }
}

/** acks=all: waits in the produce purgatory until the high watermark passes the batch. */
function waitForReplication(
  replicas: ReplicaManager,
  partition: Partition,
  requiredOffset: bigint,
  minInsyncReplicas: number,
  timeoutMs: number,
): Promise<ErrorCode> {
  return new Promise((resolve) => {
    let code: ErrorCode = ErrorCode.REQUEST_TIMED_OUT;
    const operation: DelayedOperation = {
      tryComplete: () => {
        const leader = partition.leader;
        if (leader === undefined) {
          code = ErrorCode.NOT_LEADER_OR_FOLLOWER;
          return true;
        }
        const status = leader.checkEnoughReplicasReachOffset(requiredOffset, minInsyncReplicas);
        if (!status.done) return false;
        code = status.error;
        return true;
      },
      onComplete: () => resolve(code),
      onExpire: () => resolve(ErrorCode.REQUEST_TIMED_OUT),
    };
    try {
      replicas.producePurgatory.tryCompleteElseWatch(
        operation,
        [partition.key],
        Math.max(1, timeoutMs),
      );
    } catch (error) {
      resolve(isWeirError(error) ? error.code : ErrorCode.UNKNOWN_SERVER_ERROR);
    }
  });
}

interface FetchRound {
  readonly topics: proto.weir.broker.FetchResponse_Topic[];
  readonly bytes: number;
  readonly errors: boolean;
  readonly waitingOn: { partition: Partition; fetchOffset: bigint }[];
}

async function fetchAll(
  options: BrokerServiceOptions,
  request: proto.weir.broker.FetchRequest,
): Promise<FetchRound> {
  let budget = Math.min(
    request.maxBytes > 0 ? request.maxBytes : Number.MAX_SAFE_INTEGER,
    options.fetchResponseMaxBytes ?? DEFAULT_FETCH_RESPONSE_MAX_BYTES,
  );
  let bytes = 0;
  let errors = false;
  const waitingOn: FetchRound['waitingOn'] = [];
  const topics = [];
  for (const topic of request.topics) {
    const partitions: FetchResponsePartition[] = [];
    for (const p of topic.partitions) {
      try {
        const partition = options.replicas.partitionByName(topic.topic, p.partition);
        const maxBytes = Math.max(
          1,
          Math.min(p.partitionMaxBytes > 0 ? p.partitionMaxBytes : budget, budget),
        );
        const read = await partition.readAsConsumer(p.fetchOffset, maxBytes, p.currentLeaderEpoch);
        // Only the first partition with data may exceed the budget with a whole batch, so
        // that a consumer always progresses (KIP-74); later ones wait for the next fetch.
        const records = bytes > 0 && read.records.length > budget ? EMPTY : read.records;
        const result = { ...read, records };
        budget = Math.max(0, budget - records.length);
        bytes += records.length;
        waitingOn.push({ partition, fetchOffset: p.fetchOffset });
        partitions.push({
          partition: p.partition,
          error: NONE,
          highWatermark: result.highWatermark,
          logStartOffset: result.logStartOffset,
          records: result.records,
          currentLeader: undefined,
        });
      } catch (error) {
        errors = true;
        partitions.push({
          partition: p.partition,
          error: errorStatus(error),
          highWatermark: -1n,
          logStartOffset: -1n,
          records: Buffer.alloc(0),
          currentLeader: currentLeader(options.image(), topic.topic, p.partition),
        });
      }
    }
    topics.push({ topic: topic.topic, partitions });
  }
  return { topics, bytes, errors, waitingOn };
}

/** A consumer's long poll: until a partition's high watermark passes its fetch offset. */
function waitForHighWatermarks(
  replicas: ReplicaManager,
  partitions: readonly { partition: Partition; fetchOffset: bigint }[],
  timeoutMs: number,
): Promise<void> {
  return waitInPurgatory(
    replicas.fetchPurgatory,
    partitions.map(({ partition }) => partition.key),
    () =>
      partitions.some(
        ({ partition, fetchOffset }) =>
          !partition.isLeader || partition.highWatermark > fetchOffset,
      ),
    timeoutMs,
  );
}

/**
 * A producer's ordered Produce stream: each request starts as it arrives, in order, and is
 * answered (with its correlation id) when done, whatever the order of completion. The stream
 * ends once the client has ended it and every answer is written.
 */
function serveProduceStream(
  call: ServerDuplexStream<ProduceStreamRequest, ProduceStreamResponse>,
  startProduce: (
    request: proto.weir.broker.ProduceRequest,
    connection: string,
  ) => Promise<proto.weir.broker.ProduceResponse>,
): void {
  const connection = call.getPeer();
  const answering = new Set<Promise<void>>();
  let ended = false;
  const endIfDone = () => {
    if (ended && answering.size === 0 && !call.cancelled) call.end();
  };
  call.on('data', (message: ProduceStreamRequest) => {
    const { correlationId } = message;
    let answer: Promise<proto.weir.broker.ProduceResponse>;
    try {
      if (message.request === undefined) {
        throw new WeirError(ErrorCode.INVALID_REQUEST, 'a ProduceStream message without a request');
      }
      answer = startProduce(message.request, connection);
    } catch (error) {
      answer = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const answered: Promise<void> = answer
      .then(
        (response): ProduceStreamResponse => ({ correlationId, error: undefined, response }),
        (error: unknown): ProduceStreamResponse => ({
          correlationId,
          error: errorStatus(error),
          response: undefined,
        }),
      )
      .then((reply) => {
        if (!call.cancelled && call.writable) call.write(reply);
      })
      .finally(() => {
        answering.delete(answered);
        endIfDone();
      });
    answering.add(answered);
  });
  call.on('end', () => {
    ended = true;
    endIfDone();
  });
  // A client that went away: its answers are dropped (call.cancelled).
  call.on('error', () => undefined);
}

/** The record bytes of a Produce request: what it holds in memory while in progress. */
function produceRequestBytes(request: proto.weir.broker.ProduceRequest): number {
  let bytes = 0;
  for (const topic of request.topics) {
    for (const partition of topic.partitions) bytes += partition.records.length;
  }
  return bytes;
}

function errorStatus(error: unknown): { code: number; message: string } {
  if (isWeirError(error)) return { code: error.code, message: error.message };
  return {
    code: ErrorCode.UNKNOWN_SERVER_ERROR,
    message: error instanceof Error ? error.message : String(error),
  };
}

function currentLeader(
  image: MetadataImage,
  topic: string,
  partitionId: number,
): proto.weir.broker.CurrentLeader | undefined {
  const state = image.topic(topic)?.partitions.get(partitionId);
  return state === undefined
    ? undefined
    : { leaderId: state.leader, leaderEpoch: state.leaderEpoch };
}

function notLeader(partition: Partition, brokerId: number): WeirError {
  return new WeirError(
    ErrorCode.NOT_LEADER_OR_FOLLOWER,
    `broker ${brokerId} is not the leader of ${partition.topic}-${partition.partitionId}; its leader is broker ${partition.leaderId}`,
  );
}
