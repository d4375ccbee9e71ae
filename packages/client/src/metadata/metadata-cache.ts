// The client's view of where partitions live (Kafka's `Metadata`): for the topics it uses,
// each partition's leader and leader epoch, and every broker's address, from BrokerService
// Metadata answers. The producer and the consumer route requests with it.
//
// It is refreshed
// - on demand: `refresh()` coalesces callers, so any number of failing requests cost one call
//   (plus one after it, for callers that came while it was under way and must see newer state);
// - on errors: `requestRefresh()` after NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH,
//   LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION and network errors, no more often than
//   once per `refreshBackoffMs` (Kafka's `retry.backoff.ms` for metadata);
// - periodically: when the last refresh is `metadataMaxAgeMs` old (Kafka's `metadata.max.age.ms`),
//   so that leadership moves are seen even without errors;
// - without a round trip when an error answer names the current leader (KIP-951):
//   `applyLeaderHint` takes it if its leader epoch is newer than the cached one.
//
// A partition's entry never goes back to an older leader epoch: a broker whose metadata image
// lags may answer with an older leadership than a hint already gave (Kafka's
// `Metadata.updateLatestMetadata` keeps the newer epoch the same way).

import { ErrorCode, WeirError, assert, type proto } from '@weir/protocol';
import { backoffMs, sleep } from '../backoff.js';
import { errorDetail, fromErrorStatus } from '../errors.js';
import type { BrokerClients } from './broker-clients.js';

/** Kafka's `metadata.max.age.ms`. */
export const DEFAULT_METADATA_MAX_AGE_MS = 300_000;
/** -1: no leader (Kafka's convention), as in the Metadata answer. */
export const NO_LEADER = -1;

export interface PartitionMetadata {
  readonly partition: number;
  /** The leader's broker id, or NO_LEADER (-1) while the partition has none. */
  readonly leaderId: number;
  readonly leaderEpoch: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
}

export interface TopicMetadata {
  readonly name: string;
  readonly topicId: string;
  /** Indexed by partition id. */
  readonly partitions: readonly PartitionMetadata[];
}

export interface MissingTopic {
  readonly error: WeirError;
  /** When answers began to say so (Date.now() ms). */
  readonly sinceMs: number;
}

export interface MetadataCacheOptions {
  /** `host:port` of the bootstrap brokers, tried when no broker from an answer is reachable. */
  readonly bootstrap: readonly string[];
  readonly clients: BrokerClients;
  /** How long one refresh may take in all, moving between brokers included. */
  readonly requestTimeoutMs: number;
  readonly metadataMaxAgeMs?: number;
  /** The least time between two refreshes asked for by errors; doubles while refreshes fail. */
  readonly refreshBackoffMs: number;
  readonly refreshBackoffMaxMs?: number;
}

export class MetadataCache {
  private readonly options: Required<MetadataCacheOptions>;
  private readonly interest = new Set<string>();
  private readonly topics = new Map<string, TopicMetadata>();
  /** Topics the last answer said do not exist: the broker's error, and since when answers
   * have said so. */
  private readonly missing = new Map<string, MissingTopic>();
  private brokers = new Map<number, string>();
  private readonly listeners = new Set<() => void>();
  private lastRefreshMs = Number.NEGATIVE_INFINITY;
  private lastAttemptMs = Number.NEGATIVE_INFINITY;
  private failedRefreshes = 0;
  private inFlight: Promise<void> | undefined;
  private followUp: Promise<void> | undefined;
  private requestedTimer: NodeJS.Timeout | undefined;
  private ageTimer: NodeJS.Timeout | undefined;
  /** The broker that answered last: refreshes start there. */
  private preferred: string | undefined;
  private closed = false;

  constructor(options: MetadataCacheOptions) {
    assert(options.bootstrap.length > 0, 'a metadata cache needs at least one bootstrap broker');
    this.options = {
      metadataMaxAgeMs: DEFAULT_METADATA_MAX_AGE_MS,
      refreshBackoffMaxMs: 1_000,
      ...options,
    };
  }

  /** When the last refresh succeeded (Date.now() ms), or -Infinity. */
  get lastRefreshedMs(): number {
    return this.lastRefreshMs;
  }

  /** Calls `listener` after each change: a refresh or an applied leader hint. */
  onUpdate(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Makes refreshes ask for `topics` from now on (they ask only for topics in use). */
  addTopics(topics: Iterable<string>): void {
    for (const topic of topics) this.interest.add(topic);
  }

  topic(name: string): TopicMetadata | undefined {
    return this.topics.get(name);
  }

  /** When the last answer said `name` does not exist: the broker's error and since when. */
  missingTopic(name: string): MissingTopic | undefined {
    return this.missing.get(name);
  }

  partition(topic: string, partition: number): PartitionMetadata | undefined {
    return this.topics.get(topic)?.partitions[partition];
  }

  /** The leader of the partition, if it has one whose address is known. */
  leaderFor(topic: string, partition: number): number | undefined {
    const leaderId = this.partition(topic, partition)?.leaderId;
    if (leaderId === undefined || leaderId === NO_LEADER) return undefined;
    return this.brokers.has(leaderId) ? leaderId : undefined;
  }

  brokerAddress(brokerId: number): string | undefined {
    return this.brokers.get(brokerId);
  }

  /**
   * Refreshes now, or joins the refresh under way, and resolves once the cache holds an answer
   * asked for after this call. Rejects with the last error when no broker answered within
   * `requestTimeoutMs`.
   */
  refresh(): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    if (this.inFlight === undefined) {
      this.inFlight = this.refreshOnce().finally(() => (this.inFlight = undefined));
      return this.inFlight;
    }
    // The call under way may have been sent before what the caller needs to see happened.
    this.followUp ??= this.inFlight
      .catch(() => undefined)
      .then(() => {
        this.followUp = undefined;
        return this.refresh();
      });
    return this.followUp;
  }

  /**
   * Asks for a refresh without waiting for it, no sooner than the back-off after the last
   * attempt (so a burst of errors costs one call); failures are retried the same way by the
   * next request.
   */
  requestRefresh(): void {
    if (this.closed || this.inFlight !== undefined || this.requestedTimer !== undefined) return;
    const backoff = backoffMs(
      this.failedRefreshes + 1,
      this.options.refreshBackoffMs,
      this.options.refreshBackoffMaxMs,
    );
    const delayMs = this.lastAttemptMs + backoff - Date.now();
    const start = (): void => {
      this.requestedTimer = undefined;
      this.refresh().catch(() => undefined);
    };
    if (delayMs <= 0) {
      start();
      return;
    }
    this.requestedTimer = setTimeout(start, delayMs);
    this.requestedTimer.unref();
  }

  /**
   * Takes the current leader an error answer named (KIP-951) when it is newer than the cached
   * one and its broker's address is known; otherwise asks for a refresh. Returns whether the
   * cached leader changed.
   */
  applyLeaderHint(
    topic: string,
    partition: number,
    hint: proto.weir.broker.CurrentLeader | undefined,
  ): boolean {
    const current = this.topics.get(topic);
    const cached = current?.partitions[partition];
    if (
      current === undefined ||
      cached === undefined ||
      hint === undefined ||
      hint.leaderId === NO_LEADER ||
      hint.leaderEpoch <= cached.leaderEpoch ||
      !this.brokers.has(hint.leaderId)
    ) {
      this.requestRefresh();
      return false;
    }
    const partitions = [...current.partitions];
    partitions[partition] = { ...cached, leaderId: hint.leaderId, leaderEpoch: hint.leaderEpoch };
    this.topics.set(topic, { ...current, partitions });
    this.notify();
    return true;
  }

  /**
   * The topic's metadata, refreshing until a broker knows it or `timeoutMs` passes; then
   * rejects with UNKNOWN_TOPIC_OR_PARTITION (or the error that kept the brokers from
   * answering). A newly created topic may take a moment to reach the broker asked.
   */
  async waitForTopic(name: string, timeoutMs: number): Promise<TopicMetadata> {
    this.addTopics([name]);
    const startedMs = Date.now();
    const deadline = startedMs + timeoutMs;
    let lastError: WeirError | undefined;
    for (let attempt = 1; ; attempt++) {
      const known = this.topics.get(name);
      if (known !== undefined) return known;
      try {
        await this.refresh();
        lastError = undefined;
      } catch (error) {
        lastError = error as WeirError;
      }
      const refreshed = this.topics.get(name);
      if (refreshed !== undefined) return refreshed;
      const waitMs = backoffMs(attempt, this.options.refreshBackoffMs, 1_000);
      const untilDeadlineMs = deadline - Date.now();
      if (untilDeadlineMs <= 0) break;
      await sleep(Math.min(waitMs, untilDeadlineMs));
      if (this.closed) throw closedError();
    }
    const elapsedMs = Date.now() - startedMs;
    if (lastError !== undefined) {
      throw new WeirError(
        lastError.code,
        `could not get metadata for topic '${name}' within ${elapsedMs} ms: ${errorDetail(lastError)}`,
        { cause: lastError },
      );
    }
    const missing = this.missing.get(name);
    throw new WeirError(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      `topic '${name}' does not exist (the brokers said so for ${elapsedMs} ms): create it first, or check the name`,
      { cause: missing?.error },
    );
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.requestedTimer);
    clearTimeout(this.ageTimer);
    this.requestedTimer = undefined;
    this.ageTimer = undefined;
    this.listeners.clear();
  }

  private async refreshOnce(): Promise<void> {
    const topics = [...this.interest].sort();
    const startedMs = Date.now();
    this.lastAttemptMs = startedMs;
    const deadline = startedMs + this.options.requestTimeoutMs;
    let lastError: WeirError | undefined;
    for (let round = 1; ; round++) {
      for (const address of this.brokerAddresses()) {
        const remainingMs = deadline - Date.now();
        if (remainingMs <= 0) break;
        try {
          const response = await this.options.clients.call(
            address,
            'metadata',
            { topics },
            remainingMs,
          );
          if (this.closed) return;
          this.preferred = address;
          this.apply(response, topics);
          return;
        } catch (error) {
          lastError = error as WeirError;
          if (this.closed) throw closedError();
        }
      }
      const waitMs = backoffMs(round, this.options.refreshBackoffMs, 1_000);
      const untilDeadlineMs = deadline - Date.now();
      if (untilDeadlineMs <= 0) break;
      await sleep(Math.min(waitMs, untilDeadlineMs));
    }
    this.failedRefreshes++;
    throw (
      lastError ??
      new WeirError(ErrorCode.REQUEST_TIMED_OUT, 'no broker answered a metadata request in time')
    );
  }

  /** Where to send a request any broker answers: the broker that answered last, the other
   * known brokers, then the bootstrap brokers. */
  brokerAddresses(): string[] {
    const known = [...this.brokers.values()];
    const ordered = [
      ...(this.preferred === undefined ? [] : [this.preferred]),
      ...known,
      ...this.options.bootstrap,
    ];
    return [...new Set(ordered)];
  }

  private apply(response: proto.weir.broker.MetadataResponse, asked: readonly string[]): void {
    this.brokers = new Map(
      response.brokers.map((broker) => [broker.brokerId, hostPort(broker.host, broker.port)]),
    );
    for (const topic of response.topics) {
      const error = fromErrorStatus(topic.error);
      if (error === undefined) {
        this.topics.set(topic.name, this.merge(topic));
        this.missing.delete(topic.name);
      } else if (error.code === ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) {
        this.markMissing(topic.name, error);
      }
      // Other topic errors leave what the cache had.
    }
    // A topic asked for and left out of the answer is as unknown as one reported missing.
    const answered = new Set(response.topics.map((t) => t.name));
    for (const name of asked) {
      if (!answered.has(name)) {
        this.markMissing(
          name,
          new WeirError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic '${name}' does not exist`),
        );
      }
    }
    this.lastRefreshMs = Date.now();
    this.failedRefreshes = 0;
    this.armAgeTimer();
    this.notify();
  }

  private markMissing(name: string, error: WeirError): void {
    this.topics.delete(name);
    const sinceMs = this.missing.get(name)?.sinceMs ?? Date.now();
    this.missing.set(name, { error, sinceMs });
  }

  /** The answer's partitions, keeping a cached entry whose leader epoch is newer. */
  private merge(topic: proto.weir.broker.MetadataResponse_Topic): TopicMetadata {
    const cached = this.topics.get(topic.name);
    const sameTopic = cached !== undefined && cached.topicId === topic.topicId;
    const partitions: PartitionMetadata[] = [];
    for (const p of [...topic.partitions].sort((a, b) => a.partition - b.partition)) {
      const previous = sameTopic ? cached.partitions[p.partition] : undefined;
      if (previous !== undefined && previous.leaderEpoch > p.leaderEpoch) {
        partitions[p.partition] = previous;
        continue;
      }
      partitions[p.partition] = {
        partition: p.partition,
        leaderId: p.leaderId,
        leaderEpoch: p.leaderEpoch,
        replicas: p.replicas,
        isr: p.isr,
      };
    }
    return { name: topic.name, topicId: topic.topicId, partitions };
  }

  /** Refreshes when the data is `metadataMaxAgeMs` old; the timer does not hold the process. */
  private armAgeTimer(): void {
    clearTimeout(this.ageTimer);
    this.ageTimer = setTimeout(() => {
      this.ageTimer = undefined;
      this.refresh().catch(() => {
        // Retried on the next request for a refresh, or when the timer is armed again.
        this.requestRefresh();
      });
    }, this.options.metadataMaxAgeMs);
    this.ageTimer.unref();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

function closedError(): WeirError {
  return new WeirError(ErrorCode.ILLEGAL_STATE, 'the client is closed');
}

/** `host:port`, with an IPv6 host in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}
