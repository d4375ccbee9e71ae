// The quorum controller: the thin shell around the controller's pure decisions. It is the Raft
// state machine of the metadata log on every voter (apply/restore keep `image` current), and on
// the Raft leader it is the active controller: write requests run one at a time from a single
// queue, compute their records against the current image, propose them as one log entry and
// answer once that entry is committed and applied here (KRaft's QuorumController, KIP-631).

import { randomUUID } from 'node:crypto';
import {
  type BrokerEndpoint,
  type BrokerRegistration,
  ConfigResourceType,
  MetadataImage,
  type MetadataRecord,
  decodeSnapshot,
  encodeSnapshot,
  metadataRecord,
} from '@weir/metadata';
import { ErrorCode, WeirError, assert, isWeirError } from '@weir/protocol';
import type { Entry, Snapshot, StateMachine } from '@weir/raft';
import {
  BROKER_EPOCH_FROM_OFFSET,
  decodeMetadataEntry,
  encodeMetadataEntry,
} from './metadata-entry.js';
import { electOfflineLeaders, fenceBroker, partitionChangeRecords } from './partition-change.js';
import { type AssignableBroker, assignReplicas, assignableBrokers } from './replica-assignment.js';
import { type CreateTopicRequest, collidesWith, validateCreateTopic } from './topic-validation.js';

/**
 * What the controller needs of the metadata log (RaftNode provides it). `readIndex` and `term`
 * let a new leader catch up with every entry of earlier terms before it decides anything (Raft
 * §6.4: a leader knows the commit index only once an entry of its own term commits).
 */
export interface MetadataLog {
  /** Resolves once the entry is committed and applied on this node. */
  propose(data: Uint8Array): Promise<{ index: number; term: number }>;
  /** Resolves once leadership is confirmed and everything committed before is applied here. */
  readIndex(): Promise<number>;
  readonly isLeader: boolean;
  readonly leaderId: number;
  readonly term: number;
}

export interface QuorumControllerOptions {
  /** This node's id, for messages. */
  readonly nodeId: number;
  /** Milliseconds now; injectable so that tests drive session expiry. Default Date.now. */
  readonly clock?: () => number;
  /** Kafka's broker.session.timeout.ms: a broker silent this long is fenced. Default 9000. */
  readonly brokerSessionTimeoutMs?: number;
  /** Kafka's num.partitions: the partition count of a CreateTopics entry that gives none. */
  readonly defaultPartitions?: number;
  /** Kafka's default.replication.factor, used likewise. */
  readonly defaultReplicationFactor?: number;
  /** Requests waiting in the event queue beyond which new ones are refused. Default 1000. */
  readonly maxQueuedRequests?: number;
}

export interface RegisterBrokerRequest {
  readonly brokerId: number;
  /** A UUID the broker process picks at start-up. */
  readonly incarnationId: string;
  readonly endpoints: readonly BrokerEndpoint[];
  readonly rack?: string | undefined;
}

export interface BrokerHeartbeatRequest {
  readonly brokerId: number;
  readonly brokerEpoch: bigint;
  /** The offset up to which the broker has applied the metadata log. */
  readonly caughtUpToOffset: bigint;
}

export interface BrokerHeartbeatResult {
  readonly isCaughtUp: boolean;
  readonly isFenced: boolean;
}

export interface CreateTopicsRequestTopic {
  readonly name: string;
  /** Absent: `defaultPartitions`. */
  readonly partitions?: number | undefined;
  /** Absent: `defaultReplicationFactor`. */
  readonly replicationFactor?: number | undefined;
  readonly configs?: Readonly<Record<string, string>> | undefined;
}

export interface CreateTopicResult {
  readonly name: string;
  readonly errorCode: ErrorCode;
  readonly errorMessage?: string | undefined;
  readonly topicId?: string | undefined;
  readonly partitions?: number | undefined;
  readonly replicationFactor?: number | undefined;
}

export interface TickResult {
  readonly fencedBrokers: readonly number[];
}

const DEFAULT_BROKER_SESSION_TIMEOUT_MS = 9000;
const DEFAULT_MAX_QUEUED_REQUESTS = 1000;

export class QuorumController implements StateMachine {
  private current: MetadataImage = MetadataImage.EMPTY;
  private log: MetadataLog | undefined;
  private readonly clock: () => number;
  private readonly brokerSessionTimeoutMs: number;
  private readonly maxQueuedRequests: number;
  /** The end of the event queue: each request starts when the one before it has finished. */
  private queueTail: Promise<void> = Promise.resolve();
  private queuedRequests = 0;
  /** The Raft term whose earlier entries this node has applied as the active controller. */
  private activeTerm: number | undefined;
  /**
   * Last contact (ms) per broker. In memory on the active controller only: a new controller
   * gives every broker a fresh session, as Kafka's BrokerHeartbeatManager does.
   */
  private sessions = new Map<number, number>();

  constructor(private readonly options: QuorumControllerOptions) {
    this.clock = options.clock ?? Date.now;
    this.brokerSessionTimeoutMs =
      options.brokerSessionTimeoutMs ?? DEFAULT_BROKER_SESSION_TIMEOUT_MS;
    this.maxQueuedRequests = options.maxQueuedRequests ?? DEFAULT_MAX_QUEUED_REQUESTS;
    if (!(this.brokerSessionTimeoutMs > 0)) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `brokerSessionTimeoutMs must be positive, got ${this.brokerSessionTimeoutMs}`,
      );
    }
  }

  /**
   * Connects the metadata log. Separate from the constructor because the log (a RaftNode) is
   * started with this controller as its state machine.
   */
  attach(log: MetadataLog): void {
    assert(this.log === undefined, 'QuorumController.attach: a metadata log is already attached');
    this.log = log;
  }

  /** The metadata image as of the last applied entry; current on every voter. */
  get image(): MetadataImage {
    return this.current;
  }

  // --- The Raft state machine --------------------------------------------------------------

  apply(entries: readonly Entry[]): void {
    for (const entry of entries) {
      const offset = BigInt(entry.index);
      const records = entry.type === 'normal' ? decodeMetadataEntry(entry.data, offset) : [];
      this.current = this.current.apply(records, offset).image;
    }
  }

  restore(snapshot: Snapshot): void {
    const image = decodeSnapshot(snapshot.data);
    assert(
      image.offset === BigInt(snapshot.metadata.index),
      () =>
        `metadata snapshot at offset ${image.offset} restored as Raft snapshot ${snapshot.metadata.index}`,
    );
    this.current = image;
  }

  /** The snapshot of the current image, for RaftNode.snapshot(image.offset, data). */
  snapshotData(): Uint8Array {
    return encodeSnapshot(this.current);
  }

  // --- Requests ----------------------------------------------------------------------------

  /**
   * Registers a broker, fenced; it is unfenced by a heartbeat once caught up. Resolves with its
   * broker epoch: the offset of the registration's entry (KIP-631). A broker that was unfenced
   * (a restarted process) is fenced by the same entry: it gives up its leaderships and ISRs.
   */
  registerBroker(request: RegisterBrokerRequest): Promise<{ brokerEpoch: bigint }> {
    return this.enqueue(async () => {
      validateRegistration(request);
      const image = this.current;
      const previous = image.broker(request.brokerId);
      const records: MetadataRecord[] = [];
      if (previous !== undefined && !previous.fenced) {
        const changes = fenceBroker(image, request.brokerId, { isLive: liveIn(image) });
        records.push(...partitionChangeRecords(changes));
      }
      records.push(
        metadataRecord({
          $case: 'registerBroker',
          value: {
            brokerId: request.brokerId,
            incarnationId: request.incarnationId,
            brokerEpoch: BROKER_EPOCH_FROM_OFFSET,
            endpoints: request.endpoints.map((endpoint) => ({ ...endpoint })),
            rack: request.rack,
            fenced: true,
            inControlledShutdown: false,
          },
        }),
      );
      const index = await this.commit(records);
      this.sessions.set(request.brokerId, this.clock());
      return { brokerEpoch: BigInt(index) };
    });
  }

  /**
   * Refreshes a broker's session, and unfences it once it has applied the metadata log up to
   * the controller's image (KIP-631: a broker serves only after catching up). Offline
   * partitions it can lead get it as leader in the same entry. STALE_BROKER_EPOCH for an epoch
   * that is not the registered one, or an unregistered broker (as Kafka answers).
   */
  brokerHeartbeat(request: BrokerHeartbeatRequest): Promise<BrokerHeartbeatResult> {
    return this.enqueue(async () => {
      const image = this.current;
      const broker = checkBrokerEpoch(image, request.brokerId, request.brokerEpoch);
      this.sessions.set(broker.brokerId, this.clock());
      const isCaughtUp = request.caughtUpToOffset >= image.offset;
      if (!broker.fenced || !isCaughtUp) return { isCaughtUp, isFenced: broker.fenced };
      const isLive = liveIn(image);
      const leaders = electOfflineLeaders(image, {
        isLive: (id) => id === broker.brokerId || isLive(id),
      });
      await this.commit([
        metadataRecord({
          $case: 'brokerRegistrationChange',
          value: { brokerId: broker.brokerId, brokerEpoch: broker.brokerEpoch, fenced: false },
        }),
        ...partitionChangeRecords(leaders),
      ]);
      return { isCaughtUp, isFenced: false };
    });
  }

  /**
   * Creates topics: each is validated against the current image and the brokers that may take
   * replicas; the valid ones are written together in one entry (Topic, Partition and Config
   * records). A bad topic gets its error code in its result and does not stop the others.
   */
  createTopics(
    topics: readonly CreateTopicsRequestTopic[],
    options: { validateOnly?: boolean } = {},
  ): Promise<CreateTopicResult[]> {
    return this.enqueue(async () => {
      const image = this.current;
      const brokers = assignableBrokers(image.brokers.values());
      const duplicates = duplicateNames(topics);
      const created: string[] = [];
      const records: MetadataRecord[] = [];
      const results = topics.map((topic): CreateTopicResult => {
        try {
          if (duplicates.has(topic.name)) {
            throw new WeirError(
              ErrorCode.INVALID_REQUEST,
              `topic '${topic.name}' appears more than once in the request`,
            );
          }
          const request = this.withDefaults(topic);
          validateCreateTopic(request, brokers.length);
          checkNameFree(image, request.name, created);
          // Rotate the first leader per topic so that small topics do not all lead on one broker.
          const startIndex = (image.topicsById.size + created.length) % brokers.length;
          const topicId = randomUUID();
          records.push(...topicRecords(request, topicId, brokers, startIndex));
          created.push(request.name);
          return {
            name: request.name,
            errorCode: ErrorCode.NONE,
            topicId,
            partitions: request.partitions,
            replicationFactor: request.replicationFactor,
          };
        } catch (error) {
          if (!isWeirError(error) || error.code === ErrorCode.ILLEGAL_STATE) throw error;
          return { name: topic.name, errorCode: error.code, errorMessage: error.message };
        }
      });
      if (records.length > 0 && options.validateOnly !== true) await this.commit(records);
      return results;
    });
  }

  /**
   * Fences every unfenced broker whose session has expired: it leaves every ISR and its
   * leaderships move (leader epoch + 1), one entry per broker so that each decision sees the
   * previous one. The server calls this on a timer; on a node that is not the active
   * controller it does nothing.
   */
  tick(): Promise<TickResult> {
    if (this.log?.isLeader !== true) return Promise.resolve({ fencedBrokers: [] });
    return this.enqueue(async () => {
      const expired = this.expiredBrokers(this.clock());
      const fencedBrokers: number[] = [];
      for (const brokerId of expired) {
        const image = this.current;
        const broker = image.broker(brokerId);
        if (broker === undefined || broker.fenced) continue;
        const isLive = liveIn(image);
        const changes = fenceBroker(image, brokerId, {
          isLive: (id) => !expired.includes(id) && isLive(id),
        });
        await this.commit([
          ...partitionChangeRecords(changes),
          metadataRecord({
            $case: 'brokerRegistrationChange',
            value: { brokerId, brokerEpoch: broker.brokerEpoch, fenced: true },
          }),
        ]);
        this.sessions.delete(brokerId);
        fencedBrokers.push(brokerId);
      }
      return { fencedBrokers };
    });
  }

  // --- The event queue ---------------------------------------------------------------------

  /**
   * Runs `operation` after every request queued before it, on the active controller only.
   * Each operation reads the image, proposes, and waits for its entry to apply, so the next
   * one sees everything the previous one wrote.
   */
  private enqueue<T>(operation: () => Promise<T>): Promise<T> {
    if (this.queuedRequests >= this.maxQueuedRequests) {
      return Promise.reject(
        new WeirError(
          ErrorCode.REQUEST_TIMED_OUT,
          `the controller's event queue holds ${this.queuedRequests} requests (maxQueuedRequests); retry later`,
        ),
      );
    }
    this.queuedRequests++;
    const result = this.queueTail.then(async () => {
      await this.becomeActive();
      return operation();
    });
    const done = (): void => {
      this.queuedRequests--;
    };
    this.queueTail = result.then(done, done);
    return result;
  }

  /**
   * Checks that this node leads, and on the first request of a term waits until it has applied
   * every entry committed by earlier leaders, then starts fresh broker sessions.
   */
  private async becomeActive(): Promise<void> {
    const log = this.checkLeader();
    const term = log.term;
    if (this.activeTerm === term) return;
    await log.readIndex();
    this.checkLeader();
    if (log.term !== term) throw this.notController(log);
    this.activeTerm = term;
    this.sessions = new Map();
  }

  private async commit(records: readonly MetadataRecord[]): Promise<number> {
    const log = this.checkLeader();
    const { index } = await log.propose(encodeMetadataEntry(records));
    assert(
      this.current.offset >= BigInt(index),
      () => `entry ${index} resolved before it was applied (image at ${this.current.offset})`,
    );
    return index;
  }

  private checkLeader(): MetadataLog {
    const log = this.log;
    if (log === undefined) {
      throw new WeirError(
        ErrorCode.NOT_CONTROLLER,
        `node ${this.options.nodeId} has not started its metadata log yet; retry shortly`,
      );
    }
    if (!log.isLeader) throw this.notController(log);
    return log;
  }

  private notController(log: MetadataLog): WeirError {
    const { nodeId } = this.options;
    return new WeirError(
      ErrorCode.NOT_CONTROLLER,
      log.leaderId < 0
        ? `node ${nodeId} is not the active controller and no leader is known yet; retry shortly`
        : `node ${nodeId} is not the active controller; the active controller is node ${log.leaderId}`,
    );
  }

  // --- Helpers -----------------------------------------------------------------------------

  /** Unfenced brokers whose session has run out; a broker with no session yet gets one now. */
  private expiredBrokers(now: number): number[] {
    const expired: number[] = [];
    for (const broker of this.current.brokers.values()) {
      if (broker.fenced) continue;
      const lastContactMs = this.sessions.get(broker.brokerId);
      if (lastContactMs === undefined) this.sessions.set(broker.brokerId, now);
      else if (now - lastContactMs >= this.brokerSessionTimeoutMs) expired.push(broker.brokerId);
    }
    return expired.sort((a, b) => a - b);
  }

  private withDefaults(topic: CreateTopicsRequestTopic): CreateTopicRequest {
    return {
      name: topic.name,
      partitions: topic.partitions ?? this.options.defaultPartitions ?? 1,
      replicationFactor: topic.replicationFactor ?? this.options.defaultReplicationFactor ?? 1,
      configs: topic.configs ?? {},
    };
  }
}

/** Whether a broker may lead or join an ISR in `image`: registered, unfenced, not stopping. */
function liveIn(image: MetadataImage): (brokerId: number) => boolean {
  return (brokerId) => {
    const broker = image.broker(brokerId);
    return broker !== undefined && !broker.fenced && !broker.inControlledShutdown;
  };
}

function validateRegistration(request: RegisterBrokerRequest): void {
  if (!Number.isInteger(request.brokerId) || request.brokerId < 0) {
    throw new WeirError(
      ErrorCode.INVALID_REQUEST,
      `broker id must be a non-negative integer, got ${request.brokerId}`,
    );
  }
  if (request.incarnationId === '') {
    throw new WeirError(
      ErrorCode.INVALID_REQUEST,
      `broker ${request.brokerId} registered without an incarnation id`,
    );
  }
}

function checkBrokerEpoch(
  image: MetadataImage,
  brokerId: number,
  brokerEpoch: bigint,
): BrokerRegistration {
  const broker = image.broker(brokerId);
  if (broker === undefined) {
    throw new WeirError(
      ErrorCode.STALE_BROKER_EPOCH,
      `broker ${brokerId} is not registered; register it again`,
    );
  }
  if (broker.brokerEpoch !== brokerEpoch) {
    throw new WeirError(
      ErrorCode.STALE_BROKER_EPOCH,
      `broker ${brokerId} sent epoch ${brokerEpoch} but its registration has epoch ${broker.brokerEpoch}; register it again`,
    );
  }
  return broker;
}

function checkNameFree(image: MetadataImage, name: string, created: readonly string[]): void {
  if (image.topic(name) !== undefined) {
    throw new WeirError(ErrorCode.TOPIC_ALREADY_EXISTS, `topic '${name}' already exists`);
  }
  collidesWith(name, [...image.topicsByName.keys(), ...created]);
}

function duplicateNames(topics: readonly CreateTopicsRequestTopic[]): Set<string> {
  const seen = new Set<string>();
  const duplicates = new Set<string>();
  for (const { name } of topics) (seen.has(name) ? duplicates : seen).add(name);
  return duplicates;
}

/** The Topic, Partition and Config records of a new topic; every replica starts in the ISR. */
function topicRecords(
  request: CreateTopicRequest,
  topicId: string,
  brokers: readonly AssignableBroker[],
  startIndex: number,
): MetadataRecord[] {
  const assignment = assignReplicas({
    brokers,
    partitions: request.partitions,
    replicationFactor: request.replicationFactor,
    startIndex,
  });
  const records = [metadataRecord({ $case: 'topic', value: { name: request.name, topicId } })];
  assignment.forEach((replicas, partitionId) => {
    records.push(
      metadataRecord({
        $case: 'partition',
        value: {
          topicId,
          partitionId,
          replicas,
          isr: [...replicas],
          leader: replicas[0]!,
          leaderEpoch: 0,
          partitionEpoch: 0,
        },
      }),
    );
  });
  for (const [name, value] of Object.entries(request.configs)) {
    records.push(
      metadataRecord({
        $case: 'config',
        value: {
          resourceType: ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC,
          resourceName: request.name,
          name,
          value,
        },
      }),
    );
  }
  return records;
}
