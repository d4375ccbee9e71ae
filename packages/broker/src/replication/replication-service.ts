// The leader's side of replication: the ReplicationService.ReplicaFetch stream. Each request a
// follower writes is answered in order; one with nothing new to return waits (in the fetch
// purgatory, woken by the leader's appends) up to its max_wait_ms before it is answered empty.

import type { ServerDuplexStream } from '@grpc/grpc-js';
import { ErrorCode, isWeirError, type proto, toServiceError } from '@weir/protocol';
import { waitInPurgatory } from '../purgatory.js';
import type { Partition } from '../replica/partition.js';
import type { ReplicaManager } from '../replica/replica-manager.js';

type Request = proto.weir.broker.ReplicaFetchRequest;
type Response = proto.weir.broker.ReplicaFetchResponse;
type PartitionResponse = proto.weir.broker.ReplicaFetchResponse_Partition;

export interface ReplicationServiceOptions {
  /** The longest a follower's fetch is held when there is nothing new. */
  readonly maxWaitCapMs?: number;
  /** The most record bytes of one partition in one response. */
  readonly partitionMaxBytes?: number;
  /** The most record bytes of one response. */
  readonly responseMaxBytes?: number;
  /** See BrokerServiceOptions.isCaughtUp: a broker that has not caught up serves no follower. */
  readonly isCaughtUp?: () => boolean;
}

const DEFAULT_MAX_WAIT_CAP_MS = 500;
const DEFAULT_PARTITION_MAX_BYTES = 1024 * 1024;
const DEFAULT_RESPONSE_MAX_BYTES = 8 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

export function replicationServiceHandlers(
  replicas: ReplicaManager,
  options: ReplicationServiceOptions = {},
): proto.weir.broker.ReplicationServiceServer {
  return {
    replicaFetch: (call: ServerDuplexStream<Request, Response>) => {
      let answered: Promise<void> = Promise.resolve();
      call.on('data', (request: Request) => {
        answered = answered
          .then(() => serveFetch(replicas, request, options))
          .then((response) => {
            if (!call.destroyed) call.write(response);
          })
          .catch((error: unknown) => {
            call.destroy(toServiceError(error) as Error);
          });
      });
      call.on('end', () => {
        void answered.then(() => call.end());
      });
      call.on('error', () => undefined);
    },
  };
}

async function serveFetch(
  replicas: ReplicaManager,
  request: Request,
  options: ReplicationServiceOptions,
): Promise<Response> {
  const first = await readAll(replicas, request, options);
  const maxWaitMs = Math.min(request.maxWaitMs, options.maxWaitCapMs ?? DEFAULT_MAX_WAIT_CAP_MS);
  if (maxWaitMs <= 0 || responseBytes(first) >= Math.max(1, request.minBytes)) return first;
  const partitions = request.partitions.flatMap((p) => {
    const partition = replicas.partition(p.topicId, p.partition);
    return partition === undefined ? [] : [{ partition, fetchOffset: p.fetchOffset }];
  });
  if (partitions.length === 0) return first;
  await waitForAppends(replicas, partitions, maxWaitMs);
  return readAll(replicas, request, options);
}

/** Resolves when one of the partitions' logs grows past the follower's fetch offset, or at the timeout. */
function waitForAppends(
  replicas: ReplicaManager,
  partitions: readonly { partition: Partition; fetchOffset: bigint }[],
  timeoutMs: number,
): Promise<void> {
  return waitInPurgatory(
    replicas.fetchPurgatory,
    partitions.map(({ partition }) => partition.key),
    () =>
      partitions.some(
        ({ partition, fetchOffset }) => !partition.isLeader || partition.logEndOffset > fetchOffset,
      ),
    timeoutMs,
  );
}

async function readAll(
  replicas: ReplicaManager,
  request: Request,
  options: ReplicationServiceOptions,
): Promise<Response> {
  let budget = Math.min(
    request.maxBytes > 0 ? request.maxBytes : Number.MAX_SAFE_INTEGER,
    options.responseMaxBytes ?? DEFAULT_RESPONSE_MAX_BYTES,
  );
  const initialBudget = budget;
  const refuseAll = (code: ErrorCode, message: string): Response => ({
    partitions: request.partitions.map((p) =>
      errorResponse({ topicId: p.topicId, partition: p.partition }, code, message),
    ),
  });
  if (options.isCaughtUp?.() === false) {
    return refuseAll(
      ErrorCode.NOT_LEADER_OR_FOLLOWER,
      `broker ${replicas.brokerId} has not caught up with the metadata log since it started`,
    );
  }
  const stale = staleBrokerEpoch(replicas, request);
  // An old incarnation of the follower (its registration replaced): its fetches must not count
  // towards the high watermark or the ISR.
  if (stale !== undefined) return refuseAll(ErrorCode.STALE_BROKER_EPOCH, stale);
  const partitionMaxBytes = options.partitionMaxBytes ?? DEFAULT_PARTITION_MAX_BYTES;
  const responses: PartitionResponse[] = [];
  for (const p of request.partitions) {
    const base = { topicId: p.topicId, partition: p.partition };
    const partition = replicas.partition(p.topicId, p.partition);
    if (partition === undefined) {
      responses.push(
        errorResponse(
          base,
          ErrorCode.NOT_LEADER_OR_FOLLOWER,
          `broker ${replicas.brokerId} does not host ${p.topicId}:${p.partition}`,
        ),
      );
      continue;
    }
    try {
      const result = await partition.readForFollower(request.replicaId, {
        fetchOffset: p.fetchOffset,
        lastFetchedEpoch: p.lastFetchedEpoch,
        currentLeaderEpoch: p.currentLeaderEpoch,
        maxBytes: Math.max(1, Math.min(partitionMaxBytes, budget)),
      });
      // As for consumers (KIP-74): only the first partition with data may exceed the budget.
      const records =
        budget < initialBudget && result.records.length > budget ? EMPTY : result.records;
      budget -= records.length;
      replicas.followerFetched(partition);
      responses.push({
        ...base,
        error: { code: ErrorCode.NONE, message: '' },
        highWatermark: result.highWatermark,
        logStartOffset: result.logStartOffset,
        divergingEpoch:
          result.divergingEpoch === undefined
            ? undefined
            : { offset: result.divergingEpoch.endOffset, leaderEpoch: result.divergingEpoch.epoch },
        records,
      });
    } catch (error) {
      if (!isWeirError(error)) throw error;
      responses.push(errorResponse(base, error.code, error.message));
    }
  }
  return { partitions: responses };
}

/**
 * Why a follower's broker epoch is older than its registration in this broker's metadata, or
 * undefined. A newer one is fine: the follower hears of its registration before this broker's
 * metadata applies it.
 */
function staleBrokerEpoch(replicas: ReplicaManager, request: Request): string | undefined {
  const registration = replicas.metadataImage?.broker(request.replicaId);
  if (registration === undefined || request.brokerEpoch >= registration.brokerEpoch) {
    return undefined;
  }
  return `broker ${request.replicaId} fetched with broker epoch ${request.brokerEpoch}, but its registration has epoch ${registration.brokerEpoch}; an old incarnation may not replicate`;
}

function errorResponse(
  base: { topicId: string; partition: number },
  code: ErrorCode,
  message: string,
): PartitionResponse {
  return {
    ...base,
    error: { code, message },
    highWatermark: -1n,
    logStartOffset: -1n,
    divergingEpoch: undefined,
    records: Buffer.alloc(0),
  };
}

function responseBytes(response: Response): number {
  let bytes = 0;
  for (const partition of response.partitions) {
    // A divergence or an error is news too: the follower must hear it now.
    if (partition.divergingEpoch !== undefined || partition.error?.code !== ErrorCode.NONE) {
      return Number.MAX_SAFE_INTEGER;
    }
    bytes += partition.records.length;
  }
  return bytes;
}
