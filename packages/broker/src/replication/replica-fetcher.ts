// The follower's side of replication (Kafka's ReplicaFetcherManager and ReplicaFetcherThread):
// one fetcher per leader broker, each keeping one ReplicaFetch stream open and fetching every
// partition this broker follows on that leader, from its log end offset and last fetched epoch.
// A diverging epoch in the answer truncates the follower's tail (KIP-320) before it fetches
// again; errors pause only the partition they concern, until the metadata log moves it on.

import { type ClientDuplexStream, credentials } from '@grpc/grpc-js';
import { ErrorCode, WeirError, fromServiceError, proto } from '@weir/protocol';
import type { Partition } from '../replica/partition.js';
import type { FollowerChanges, ReplicaManager } from '../replica/replica-manager.js';

type Request = proto.weir.broker.ReplicaFetchRequest;
type Response = proto.weir.broker.ReplicaFetchResponse;

export interface ReplicaFetcherOptions {
  readonly replicas: ReplicaManager;
  /** This broker's registration epoch, sent with every fetch. */
  readonly brokerEpoch: () => bigint;
  /** host:port of a broker's listener, from the metadata image; undefined when unknown. */
  readonly brokerAddress: (brokerId: number) => string | undefined;
  /** How long the leader may hold a fetch with nothing new. */
  readonly maxWaitMs?: number;
  readonly maxBytes?: number;
  /** The pause after a failed stream or a partition error before trying again. */
  readonly retryBackoffMs?: number;
  readonly onError?: (leaderId: number, error: unknown) => void;
  /** Told when a follower truncated its log after a divergence (for logs). */
  readonly onTruncated?: (partition: Partition, offset: bigint) => void;
}

const DEFAULT_MAX_WAIT_MS = 500;
const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;
const DEFAULT_RETRY_BACKOFF_MS = 100;
const MiB = 1024 * 1024;

export class ReplicaFetcherManager {
  private readonly fetchers = new Map<number, ReplicaFetcher>();
  private readonly pause = { paused: false };
  private closed = false;

  constructor(private readonly options: ReplicaFetcherOptions) {
    options.replicas.onFollowerChanges((changes) => this.update(changes));
  }

  /** The leaders being fetched from, with the partitions of each (for tests and metrics). */
  assignments(): Map<number, string[]> {
    return new Map(
      [...this.fetchers].map(([leader, fetcher]) => [leader, fetcher.partitionKeys()]),
    );
  }

  /**
   * Stops fetching until resumeFetching(); resolves once no fetch is in flight (fault injection
   * for tests: a follower that falls behind without losing its connection or its ISR place).
   */
  async pauseFetching(): Promise<void> {
    this.pause.paused = true;
    await Promise.all([...this.fetchers.values()].map((fetcher) => fetcher.idle()));
  }

  resumeFetching(): void {
    this.pause.paused = false;
    for (const fetcher of this.fetchers.values()) fetcher.wakeUp();
  }

  update(changes: FollowerChanges): void {
    if (this.closed) return;
    for (const partition of [...changes.unfollow, ...changes.follow]) {
      for (const fetcher of this.fetchers.values()) fetcher.remove(partition);
    }
    for (const partition of changes.follow) {
      if (partition.leaderId < 0 || partition.isLeader) continue;
      let fetcher = this.fetchers.get(partition.leaderId);
      if (fetcher === undefined) {
        fetcher = new ReplicaFetcher(partition.leaderId, this.options, this.pause);
        this.fetchers.set(partition.leaderId, fetcher);
      }
      fetcher.add(partition);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.fetchers.values()].map((fetcher) => fetcher.stop()));
    this.fetchers.clear();
  }
}

class ReplicaFetcher {
  private readonly partitions = new Map<string, Partition>();
  /** Partitions paused after an error, until this time (ms). */
  private readonly pausedUntil = new Map<string, number>();
  private running = true;
  private wake: (() => void) | undefined;
  private readonly loop: Promise<void>;
  private client: proto.weir.broker.ReplicationServiceClient | undefined;
  private clientAddress: string | undefined;
  private stream: FetchStream | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly leaderId: number,
    private readonly options: ReplicaFetcherOptions,
    private readonly pause: { readonly paused: boolean },
  ) {
    this.loop = this.run();
  }

  wakeUp(): void {
    this.wake?.();
  }

  /** Resolves when the fetch in flight (if any) has been answered and applied. */
  idle(): Promise<void> {
    return this.inFlight ?? Promise.resolve();
  }

  partitionKeys(): string[] {
    return [...this.partitions.keys()];
  }

  add(partition: Partition): void {
    this.partitions.set(partition.key, partition);
    this.pausedUntil.delete(partition.key);
    this.wake?.();
  }

  remove(partition: Partition): void {
    this.partitions.delete(partition.key);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    this.stream?.close();
    await this.loop;
    this.client?.close();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const fetchable = this.fetchable();
      if (fetchable.length === 0) {
        await this.sleep(this.partitions.size === 0 ? 60_000 : this.retryBackoffMs);
        continue;
      }
      try {
        const stream = this.openStream();
        this.inFlight = stream
          .fetch(this.request(fetchable))
          .then((response) => this.handle(fetchable, response));
        await this.inFlight;
      } catch (error) {
        this.stream?.close();
        this.stream = undefined;
        if (!this.running) break;
        this.options.onError?.(this.leaderId, error);
        await this.sleep(this.retryBackoffMs);
      }
    }
  }

  private get retryBackoffMs(): number {
    return this.options.retryBackoffMs ?? DEFAULT_RETRY_BACKOFF_MS;
  }

  /** Partitions that still follow this leader and are not paused. */
  private fetchable(): Partition[] {
    if (this.pause.paused) return [];
    const now = Date.now();
    return [...this.partitions.values()].filter(
      (partition) =>
        !partition.isLeader &&
        partition.leaderId === this.leaderId &&
        (this.pausedUntil.get(partition.key) ?? 0) <= now,
    );
  }

  private request(partitions: readonly Partition[]): Request {
    return {
      replicaId: this.options.replicas.brokerId,
      brokerEpoch: this.options.brokerEpoch(),
      maxWaitMs: this.options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS,
      minBytes: 1,
      maxBytes: this.options.maxBytes ?? DEFAULT_MAX_BYTES,
      partitions: partitions.map((partition) => ({
        topicId: partition.topicId,
        partition: partition.partitionId,
        fetchOffset: partition.logEndOffset,
        lastFetchedEpoch: partition.log.latestEpoch ?? -1,
        currentLeaderEpoch: partition.leaderEpoch,
      })),
    };
  }

  private async handle(fetched: readonly Partition[], response: Response): Promise<void> {
    const byKey = new Map(fetched.map((partition) => [partition.key, partition]));
    for (const answer of response.partitions) {
      const partition = byKey.get(`${answer.topicId}:${answer.partition}`);
      // Moved to another leader (or away) while the fetch was out: its answer is stale.
      if (partition === undefined || partition.isLeader || partition.leaderId !== this.leaderId) {
        continue;
      }
      const code: number = answer.error?.code ?? ErrorCode.NONE;
      if (code !== (ErrorCode.NONE as number)) {
        // NOT_LEADER_OR_FOLLOWER, FENCED/UNKNOWN_LEADER_EPOCH: the metadata log will settle it.
        this.pausedUntil.set(partition.key, Date.now() + this.retryBackoffMs);
        continue;
      }
      if (answer.divergingEpoch !== undefined) {
        const offset = await partition.truncateToDivergence({
          epoch: answer.divergingEpoch.leaderEpoch,
          endOffset: answer.divergingEpoch.offset,
        });
        this.options.onTruncated?.(partition, offset);
        continue;
      }
      await partition.appendAsFollower(Buffer.from(answer.records), answer.highWatermark);
    }
  }

  private openStream(): FetchStream {
    if (this.stream !== undefined) return this.stream;
    const address = this.options.brokerAddress(this.leaderId);
    if (address === undefined) {
      throw new WeirError(
        ErrorCode.BROKER_NOT_AVAILABLE,
        `the address of leader broker ${this.leaderId} is not known yet`,
      );
    }
    if (this.client === undefined || this.clientAddress !== address) {
      this.client?.close();
      this.client = new proto.weir.broker.ReplicationServiceClient(
        address,
        credentials.createInsecure(),
        {
          'grpc.max_receive_message_length': 64 * MiB,
          'grpc.max_send_message_length': 4 * MiB,
          'grpc.keepalive_time_ms': 10_000,
          'grpc.keepalive_timeout_ms': 5_000,
          'grpc.keepalive_permit_without_calls': 1,
          'grpc.initial_reconnect_backoff_ms': 100,
          'grpc.max_reconnect_backoff_ms': 1_000,
        },
      );
      this.clientAddress = address;
    }
    this.stream = new FetchStream(this.client.replicaFetch());
    return this.stream;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

/** One ReplicaFetch stream: a request written, its response read, one at a time. */
class FetchStream {
  private pending: { resolve: (r: Response) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(private readonly call: ClientDuplexStream<Request, Response>) {
    call.on('data', (response: Response) => {
      const pending = this.pending;
      this.pending = undefined;
      pending?.resolve(response);
    });
    call.on('error', (error: Error) => this.fail(error));
    call.on('end', () =>
      this.fail(
        new WeirError(ErrorCode.NETWORK_EXCEPTION, 'the leader ended the replication stream'),
      ),
    );
  }

  fetch(request: Request): Promise<Response> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.call.write(request);
    });
  }

  close(): void {
    this.call.cancel();
  }

  private fail(error: Error): void {
    const failure =
      'code' in error && 'metadata' in error
        ? fromServiceError(error as Parameters<typeof fromServiceError>[0])
        : error;
    this.failure ??= failure;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(failure);
  }
}
