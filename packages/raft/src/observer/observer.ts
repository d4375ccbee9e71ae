// An observer follows the committed metadata log without voting (KRaft's brokers): it
// long-polls FetchLog on the leader, applies what comes back in order, fetches a snapshot when
// it is behind the leader's log start, and starts again from a snapshot if its log diverged.

import { Metadata, credentials, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, WeirError, crc32c, fromServiceError, proto } from '@weir/protocol';
import type { Entry, NodeId, Snapshot } from '../core/types.js';
import { RAFT_GRPC_CHANNEL_OPTIONS } from '../transport/grpc-transport.js';
import { entryFromProto, snapshotMetadataFromProto, u64In } from '../transport/wire.js';

/** What an observer applies the log to. reset() empties it, before a fresh start. */
export interface ObserverStateMachine {
  apply(entries: readonly Entry[]): void | Promise<void>;
  restore(snapshot: Snapshot): void | Promise<void>;
  reset(): void | Promise<void>;
}

export interface RaftObserverOptions {
  /** The observer's own node id (a broker's id); it is not a voter. */
  readonly nodeId: NodeId;
  readonly clusterId: string;
  /** host:port of each voter's controller listener. */
  readonly voters: ReadonlyMap<NodeId, string>;
  readonly stateMachine: ObserverStateMachine;
  /** How long the leader may hold a fetch when nothing new has committed. */
  readonly maxWaitMs?: number;
  readonly maxBytes?: number;
  /** Told about fetch failures (for logs); the observer keeps trying other voters. */
  readonly onError?: (voter: NodeId, error: unknown) => void;
}

const DEFAULT_MAX_WAIT_MS = 500;
const RETRY_BACKOFF_MS = 100;

export class RaftObserver {
  private readonly clients = new Map<NodeId, proto.weir.raft.RaftServiceClient>();
  private readonly committedHandlers: ((entries: readonly Entry[]) => void)[] = [];
  private lastIndex = 0;
  private lastTerm = 0;
  private leader: NodeId | undefined;
  private nextVoter = 0;
  private running = true;
  private readonly loop: Promise<void>;
  private fatal: WeirError | undefined;

  private constructor(private readonly options: RaftObserverOptions) {
    for (const [id, address] of options.voters) {
      this.clients.set(
        id,
        new proto.weir.raft.RaftServiceClient(
          address,
          credentials.createInsecure(),
          RAFT_GRPC_CHANNEL_OPTIONS,
        ),
      );
    }
    this.loop = this.run();
  }

  static start(options: RaftObserverOptions): RaftObserver {
    if (options.voters.size === 0)
      throw new WeirError(ErrorCode.INVALID_CONFIG, 'an observer needs the voters to fetch from');
    return new RaftObserver(options);
  }

  /** The last applied index (KRaft brokers report it as their metadata offset). */
  get appliedIndex(): number {
    return this.lastIndex;
  }
  get leaderId(): NodeId | undefined {
    return this.leader;
  }
  /** Set when the observer stopped for good (for example: it belongs to another cluster). */
  get failure(): WeirError | undefined {
    return this.fatal;
  }

  onCommitted(handler: (entries: readonly Entry[]) => void): void {
    this.committedHandlers.push(handler);
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const client of this.clients.values()) client.close();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      const voter = this.pickVoter();
      try {
        await this.fetchOnce(voter);
      } catch (error) {
        if (!this.running) return;
        const weirError =
          error instanceof WeirError
            ? error
            : new WeirError(ErrorCode.NETWORK_EXCEPTION, String(error));
        if (weirError.code === ErrorCode.INCONSISTENT_CLUSTER_ID) {
          this.fatal = weirError;
          this.options.onError?.(voter, weirError);
          return;
        }
        this.options.onError?.(voter, weirError);
        this.leader = undefined; // try the next voter
        await new Promise((resolve) => setTimeout(resolve, RETRY_BACKOFF_MS));
      }
    }
  }

  private pickVoter(): NodeId {
    if (this.leader !== undefined && this.clients.has(this.leader)) return this.leader;
    const ids = [...this.clients.keys()];
    return ids[this.nextVoter++ % ids.length]!;
  }

  private async fetchOnce(voter: NodeId): Promise<void> {
    const response = await this.call(voter);
    const code = (response.error?.code ?? ErrorCode.NONE) as ErrorCode;
    if (code !== ErrorCode.NONE) {
      if (response.leaderId >= 0 && response.leaderId !== voter) {
        this.leader = response.leaderId; // redirected: no back-off needed
        return;
      }
      throw new WeirError(code, response.error?.message ?? '');
    }
    this.leader = voter;
    if (response.snapshotId !== undefined) {
      await this.installSnapshot(voter, response.snapshotId);
      return;
    }
    if (response.divergingEpoch !== undefined) {
      // Applied state cannot be rolled back: start over from the leader's log start.
      await this.options.stateMachine.reset();
      this.lastIndex = 0;
      this.lastTerm = 0;
      return;
    }
    const entries = response.entries.map((entry, i) => entryFromProto(entry, `entries[${i}]`));
    if (entries.length === 0) return;
    if (entries[0]!.index !== this.lastIndex + 1) {
      throw new WeirError(
        ErrorCode.INVALID_REQUEST,
        `fetched entries start at ${entries[0]!.index}, expected ${this.lastIndex + 1}`,
      );
    }
    await this.options.stateMachine.apply(entries);
    const last = entries.at(-1)!;
    this.lastIndex = last.index;
    this.lastTerm = last.term;
    for (const handler of this.committedHandlers) handler(entries);
  }

  private call(voter: NodeId): Promise<proto.weir.raft.FetchLogResponse> {
    const maxWaitMs = this.options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    const request: proto.weir.raft.FetchLogRequest = {
      clusterId: this.options.clusterId,
      replicaId: this.options.nodeId,
      fetchOffset: BigInt(this.lastIndex + 1),
      lastFetchedEpoch: BigInt(this.lastTerm),
      maxWaitMs,
      maxBytes: this.options.maxBytes ?? 1024 * 1024,
    };
    return new Promise((resolve, reject) => {
      this.clients
        .get(voter)!
        .fetchLog(
          request,
          new Metadata(),
          { deadline: Date.now() + maxWaitMs + 5_000 },
          (error: ServiceError | null, response) => {
            if (error !== null) reject(fromServiceError(error));
            else resolve(response);
          },
        );
    });
  }

  private async installSnapshot(voter: NodeId, id: proto.weir.raft.SnapshotId): Promise<void> {
    const snapshot = await this.fetchSnapshot(voter, id);
    await this.options.stateMachine.restore(snapshot);
    this.lastIndex = snapshot.metadata.index;
    this.lastTerm = snapshot.metadata.term;
  }

  private fetchSnapshot(voter: NodeId, id: proto.weir.raft.SnapshotId): Promise<Snapshot> {
    return new Promise((resolve, reject) => {
      const stream = this.clients.get(voter)!.fetchSnapshot({
        clusterId: this.options.clusterId,
        replicaId: this.options.nodeId,
        snapshotId: id,
      });
      let header: proto.weir.raft.FetchSnapshotHeader | undefined;
      const chunks: Buffer[] = [];
      stream.on('data', (part: proto.weir.raft.FetchSnapshotResponse) => {
        if (part.part?.$case === 'header') header = part.part.value;
        else if (part.part?.$case === 'chunk') chunks.push(Buffer.from(part.part.value));
      });
      stream.on('error', (error: ServiceError) => reject(fromServiceError(error)));
      stream.on('end', () => {
        try {
          resolve(assembleSnapshot(header, chunks));
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
  }
}

function assembleSnapshot(
  header: proto.weir.raft.FetchSnapshotHeader | undefined,
  chunks: Buffer[],
): Snapshot {
  if (header === undefined)
    throw new WeirError(ErrorCode.CORRUPT_MESSAGE, 'snapshot stream without a header');
  const code = (header.error?.code ?? ErrorCode.NONE) as ErrorCode;
  if (code !== ErrorCode.NONE) throw new WeirError(code, header.error?.message ?? '');
  const data = Buffer.concat(chunks);
  if (data.length !== u64In(header.dataBytes, 'data_bytes') || crc32c(data) !== header.dataCrc32c) {
    throw new WeirError(
      ErrorCode.CORRUPT_MESSAGE,
      `snapshot data of ${data.length} bytes does not match its header`,
    );
  }
  return { metadata: snapshotMetadataFromProto(header.metadata), data };
}
