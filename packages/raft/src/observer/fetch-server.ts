// The voter side of KRaft's pull model (KIP-595 Fetch, KIP-630 FetchSnapshot): observers
// (brokers) long-poll the leader for committed entries. Only the leader answers with data; the
// others name the leader. An observer never votes and never counts towards a commit.

import type { ServerUnaryCall, ServerWritableStream, sendUnaryData } from '@grpc/grpc-js';
import { ErrorCode, WeirError, crc32c, errorInfo, type proto } from '@weir/protocol';
import type { RaftNode } from '../node/raft-node.js';
import {
  checkClusterId,
  entryToProto,
  snapshotMetadataToProto,
  u64In,
} from './../transport/wire.js';

type FetchLogRequest = proto.weir.raft.FetchLogRequest;
type FetchLogResponse = proto.weir.raft.FetchLogResponse;

export interface LogFetchServerOptions {
  readonly clusterId: string;
  /** The longest an observer's request is held when nothing new has committed. */
  readonly maxWaitMsCap?: number;
  /** Entry bytes per response at most (an observer may ask for less). */
  readonly maxBytesCap?: number;
  readonly snapshotChunkBytes?: number;
}

const DEFAULT_MAX_WAIT_CAP_MS = 5_000;
const DEFAULT_MAX_BYTES_CAP = 4 * 1024 * 1024;
const DEFAULT_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/** A long poll waiting for the commit index to reach an index. */
interface Waiter {
  readonly index: number;
  readonly wake: () => void;
}

export class LogFetchServer {
  private waiters: Waiter[] = [];

  constructor(
    private readonly node: RaftNode,
    private readonly options: LogFetchServerOptions,
  ) {
    node.onCommitted(() => this.wakeWaiters());
  }

  handlers(): Pick<proto.weir.raft.RaftServiceServer, 'fetchLog' | 'fetchSnapshot'> {
    return {
      fetchLog: (call, callback) => void this.serveFetchLog(call, callback),
      fetchSnapshot: (call) => this.serveFetchSnapshot(call),
    };
  }

  private async serveFetchLog(
    call: ServerUnaryCall<FetchLogRequest, FetchLogResponse>,
    callback: sendUnaryData<FetchLogResponse>,
  ): Promise<void> {
    try {
      callback(null, await this.fetchLog(call.request, () => call.cancelled));
    } catch (error) {
      callback(null, this.errorResponse(error));
    }
  }

  /** Answers one FetchLog request, holding it up to max_wait_ms when the observer is caught up. */
  async fetchLog(
    request: FetchLogRequest,
    cancelled: () => boolean = () => false,
  ): Promise<FetchLogResponse> {
    checkClusterId(this.options.clusterId, request.clusterId, 'FetchLog request');
    const fetchOffset = u64In(request.fetchOffset, 'fetch_offset');
    const lastFetchedEpoch = u64In(request.lastFetchedEpoch, 'last_fetched_epoch');
    if (fetchOffset < 1) throw new WeirError(ErrorCode.INVALID_REQUEST, 'fetch_offset starts at 1');
    this.checkLeader();
    const early = this.positionProblem(fetchOffset, lastFetchedEpoch);
    if (early !== undefined) return early;
    if (this.node.commitIndex < fetchOffset && request.maxWaitMs > 0 && !cancelled()) {
      const waitMs = Math.min(
        request.maxWaitMs,
        this.options.maxWaitMsCap ?? DEFAULT_MAX_WAIT_CAP_MS,
      );
      await this.waitForCommit(fetchOffset, waitMs);
      this.checkLeader();
    }
    const maxBytes = Math.min(
      request.maxBytes || Number.MAX_SAFE_INTEGER,
      this.options.maxBytesCap ?? DEFAULT_MAX_BYTES_CAP,
    );
    const entries =
      this.node.commitIndex >= fetchOffset && fetchOffset >= this.node.firstIndex
        ? this.node.committedEntries(fetchOffset, this.node.commitIndex + 1, maxBytes)
        : [];
    return { ...this.baseResponse(), entries: entries.map(entryToProto) };
  }

  /** A snapshot to fetch instead, or a divergence to repair, before any entries. */
  private positionProblem(
    fetchOffset: number,
    lastFetchedEpoch: number,
  ): FetchLogResponse | undefined {
    const snapshot = this.node.latestSnapshot();
    if (fetchOffset < this.node.firstIndex) {
      if (snapshot === undefined) {
        throw new WeirError(
          ErrorCode.ILLEGAL_STATE,
          `log starts at ${this.node.firstIndex} without a snapshot`,
        );
      }
      return {
        ...this.baseResponse(),
        snapshotId: {
          endOffset: BigInt(snapshot.metadata.index + 1),
          epoch: BigInt(snapshot.metadata.term),
        },
      };
    }
    const previous = fetchOffset - 1;
    // The observer's last entry must be one we hold, committed, with the same term; otherwise
    // it truncates (KIP-595's diverging epoch, as KIP-320 for partition data).
    const ourTerm = previous <= this.node.commitIndex ? this.node.termAt(previous) : undefined;
    if (previous === 0 || ourTerm === lastFetchedEpoch) return undefined;
    return { ...this.baseResponse(), divergingEpoch: this.divergingEpoch(lastFetchedEpoch) };
  }

  /** The largest term ≤ `epoch` in our committed log, and the index one past its last entry. */
  private divergingEpoch(epoch: number): { epoch: bigint; endOffset: bigint } {
    let found = { epoch: 0, endOffset: this.node.firstIndex };
    const snapshotTerm = this.node.termAt(this.node.firstIndex - 1);
    if (snapshotTerm !== undefined && snapshotTerm <= epoch)
      found = { epoch: snapshotTerm, endOffset: this.node.firstIndex };
    for (let index = this.node.firstIndex; index <= this.node.commitIndex; index++) {
      const term = this.node.termAt(index)!;
      if (term > epoch) break;
      found = { epoch: term, endOffset: index + 1 };
    }
    return { epoch: BigInt(found.epoch), endOffset: BigInt(found.endOffset) };
  }

  private waitForCommit(index: number, waitMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, waitMs);
      const waiter: Waiter = { index, wake: done };
      this.waiters.push(waiter);
      const waiters = () => this.waiters;
      function done(): void {
        clearTimeout(timer);
        const list = waiters();
        const at = list.indexOf(waiter);
        if (at >= 0) list.splice(at, 1);
        resolve();
      }
    });
  }

  private wakeWaiters(): void {
    const commit = this.node.commitIndex;
    for (const waiter of [...this.waiters]) if (waiter.index <= commit) waiter.wake();
  }

  private checkLeader(): void {
    if (!this.node.isLeader) {
      throw new WeirError(
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        `node ${this.node.id} does not lead the metadata quorum; fetch from the leader`,
      );
    }
  }

  private baseResponse(): FetchLogResponse {
    return {
      error: { code: ErrorCode.NONE, message: '' },
      leaderId: this.node.leaderId,
      leaderEpoch: BigInt(this.node.term),
      highWatermark: BigInt(this.node.commitIndex),
      entries: [],
    };
  }

  private errorResponse(error: unknown): FetchLogResponse {
    const weirError =
      error instanceof WeirError
        ? error
        : new WeirError(ErrorCode.UNKNOWN_SERVER_ERROR, String(error));
    return {
      ...this.baseResponse(),
      error: {
        code: weirError.code,
        message: weirError.message || errorInfo(weirError.code).message,
      },
    };
  }

  /** Streams the snapshot named by the request: a header, then the data in chunks. */
  private serveFetchSnapshot(
    call: ServerWritableStream<
      proto.weir.raft.FetchSnapshotRequest,
      proto.weir.raft.FetchSnapshotResponse
    >,
  ): void {
    const request = call.request;
    const snapshot = this.node.latestSnapshot();
    const wanted = request.snapshotId;
    const matches =
      snapshot !== undefined &&
      wanted !== undefined &&
      BigInt(snapshot.metadata.index + 1) === wanted.endOffset &&
      BigInt(snapshot.metadata.term) === wanted.epoch;
    if (request.clusterId !== this.options.clusterId || !matches) {
      const code =
        request.clusterId !== this.options.clusterId
          ? ErrorCode.INCONSISTENT_CLUSTER_ID
          : ErrorCode.SNAPSHOT_NOT_FOUND;
      call.write({
        part: {
          $case: 'header',
          value: {
            error: { code, message: errorInfo(code).message },
            dataBytes: 0n,
            dataCrc32c: 0,
          },
        },
      });
      call.end();
      return;
    }
    call.write({
      part: {
        $case: 'header',
        value: {
          error: { code: ErrorCode.NONE, message: '' },
          metadata: snapshotMetadataToProto(snapshot.metadata),
          dataBytes: BigInt(snapshot.data.length),
          dataCrc32c: crc32c(snapshot.data),
        },
      },
    });
    const chunkBytes = this.options.snapshotChunkBytes ?? DEFAULT_SNAPSHOT_CHUNK_BYTES;
    for (let offset = 0; offset < snapshot.data.length; offset += chunkBytes) {
      call.write({
        part: {
          $case: 'chunk',
          value: Buffer.from(snapshot.data.subarray(offset, offset + chunkBytes)),
        },
      });
    }
    call.end();
  }
}
