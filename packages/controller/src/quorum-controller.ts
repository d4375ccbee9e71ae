// The quorum controller: the thin shell around the controller's pure decisions. It is the Raft
// state machine of the metadata log on every voter (apply/restore keep `image` current), and on
// the Raft leader it is the active controller: write requests run one at a time from a single
// queue, compute their records against the current image, propose them as one log entry and
// answer once that entry is committed and applied here (KRaft's QuorumController, KIP-631).

import { randomUUID } from 'node:crypto';
import {
  type BrokerEndpoint,
  type BrokerRegistration,
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
import {
  alterPartition,
  controlledShutdown,
  electOfflineLeaders,
  fenceBroker,
  partitionChangeRecords,
  preferredLeaderElection,
} from './partition-change.js';
import { assignableBrokers } from './replica-assignment.js';
import {
  type AlterConfigOp,
  newPartitionRecords,
  newTopicRecords,
  removeTopicRecord,
  topicConfigRecords,
} from './topic-changes.js';
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
  /**
   * Kafka's leader.imbalance.check.interval.seconds, in ms: how often `tick` gives partitions
   * back to their preferred leaders. Default 300000 (5 minutes, Kafka's 300 s).
   */
  readonly leaderImbalanceCheckIntervalMs?: number;
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

export interface DeleteTopicResult {
  readonly name: string;
  readonly errorCode: ErrorCode;
  readonly errorMessage?: string | undefined;
  /** The id the deleted topic had. */
  readonly topicId?: string | undefined;
}

export interface CreatePartitionsTopic {
  readonly name: string;
  /** The new total partition count; more than the topic has now. */
  readonly count: number;
}

export interface CreatePartitionsTopicResult {
  readonly name: string;
  readonly errorCode: ErrorCode;
  readonly errorMessage?: string | undefined;
}

/**
 * An AlterPartition (KIP-497) for one partition, as its leader sends it: the broker's identity
 * and the ISR it wants, computed from the epochs it names.
 */
export interface BrokerAlterPartitionRequest {
  /** The sender, which claims to lead the partition. */
  readonly brokerId: number;
  readonly brokerEpoch: bigint;
  readonly topicId: string;
  readonly partitionId: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
  readonly newIsr: readonly number[];
}

/** The partition's state once the AlterPartition is applied: the leader adopts these epochs. */
export interface AlterPartitionResult {
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly isr: readonly number[];
  readonly partitionEpoch: number;
}

export interface ControlledShutdownRequest {
  readonly brokerId: number;
  readonly brokerEpoch: bigint;
}

/** Kafka's ControlledShutdownResponse: how far the broker is from being able to stop. */
export interface ControlledShutdownResponse {
  /**
   * Partitions the broker still leads because it is their only live ISR member (KIP-841): it
   * should wait (and ask again) while this is above 0, or stop and leave them offline.
   */
  readonly remainingLeaderships: number;
}

export interface AllocateProducerIdsRequest {
  readonly brokerId: number;
  readonly brokerEpoch: bigint;
}

/** A block of producer ids for the broker alone: `firstProducerId` up to, excluding, + size. */
export interface AllocateProducerIdsResult {
  readonly firstProducerId: bigint;
  readonly size: number;
}

/** The configs to change on one resource (Kafka's AlterConfigsResource); topics only so far. */
export interface AlterConfigsResource {
  readonly resourceType: 'topic';
  readonly resourceName: string;
  readonly ops: readonly AlterConfigOp[];
}

export interface AlterConfigsResourceResult {
  readonly resourceType: 'topic';
  readonly resourceName: string;
  readonly errorCode: ErrorCode;
  readonly errorMessage?: string | undefined;
}

export interface TickResult {
  readonly fencedBrokers: readonly number[];
  /** Partitions whose leadership `tick` gave back to their preferred replica. */
  readonly preferredLeaderElections: number;
}

/** Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE: the ids one AllocateProducerIds hands out. */
export const PRODUCER_ID_BLOCK_SIZE = 1000;
/** Producer ids are Kafka's int64. */
const MAX_PRODUCER_ID = 2n ** 63n - 1n;
/**
 * Kafka's maxElectionsPerImbalance: the most preferred-leader elections one entry holds, so the
 * entry stays small; the rest are made at the next tick.
 */
const MAX_PREFERRED_ELECTIONS_PER_ENTRY = 1000;

const DEFAULT_BROKER_SESSION_TIMEOUT_MS = 9000;
const DEFAULT_MAX_QUEUED_REQUESTS = 1000;
const DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL_MS = 300_000;

export class QuorumController implements StateMachine {
  private current: MetadataImage = MetadataImage.EMPTY;
  private log: MetadataLog | undefined;
  private readonly clock: () => number;
  private readonly brokerSessionTimeoutMs: number;
  private readonly maxQueuedRequests: number;
  private readonly leaderImbalanceCheckIntervalMs: number;
  /** When this term's controller last looked for partitions away from their preferred leader. */
  private lastLeaderImbalanceCheckMs = 0;
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
    this.leaderImbalanceCheckIntervalMs =
      options.leaderImbalanceCheckIntervalMs ?? DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL_MS;
    if (!(this.brokerSessionTimeoutMs > 0)) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `brokerSessionTimeoutMs must be positive, got ${this.brokerSessionTimeoutMs}`,
      );
    }
    if (!(this.leaderImbalanceCheckIntervalMs > 0)) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `leaderImbalanceCheckIntervalMs must be positive, got ${this.leaderImbalanceCheckIntervalMs}`,
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
   * DUPLICATE_BROKER_REGISTRATION while another incarnation with the same id is still alive.
   */
  registerBroker(request: RegisterBrokerRequest): Promise<{ brokerEpoch: bigint }> {
    return this.enqueue(async () => {
      validateRegistration(request);
      const image = this.current;
      const previous = image.broker(request.brokerId);
      this.checkNotRunningElsewhere(previous, request.incarnationId);
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
      // A broker in controlled shutdown stays as it is: fenced ones are going away.
      if (!broker.fenced || !isCaughtUp || broker.inControlledShutdown) {
        return { isCaughtUp, isFenced: broker.fenced };
      }
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
      const duplicates = duplicateNames(topics.map((topic) => topic.name));
      const created: string[] = [];
      const records: MetadataRecord[] = [];
      const results = topics.map((topic) =>
        entryResult(
          (): CreateTopicResult => {
            checkOnce(duplicates, 'topic', topic.name);
            const request = this.withDefaults(topic);
            validateCreateTopic(request, brokers.length);
            checkNameFree(image, request.name, created);
            // Rotate the first leader per topic so that small topics do not all lead on one broker.
            const startIndex = (image.topicsById.size + created.length) % brokers.length;
            const topicId = randomUUID();
            records.push(...newTopicRecords(request, topicId, brokers, startIndex));
            created.push(request.name);
            return {
              name: request.name,
              errorCode: ErrorCode.NONE,
              topicId,
              partitions: request.partitions,
              replicationFactor: request.replicationFactor,
            };
          },
          (error) => ({ name: topic.name, errorCode: error.code, errorMessage: error.message }),
        ),
      );
      await this.commitIfAny(records, options.validateOnly);
      return results;
    });
  }

  /**
   * Deletes topics: every named topic that exists gets a RemoveTopic record, all in one entry;
   * replay drops its partitions and configs. An unknown name is UNKNOWN_TOPIC_OR_PARTITION and
   * a name given twice INVALID_REQUEST, without stopping the others.
   */
  deleteTopics(names: readonly string[]): Promise<DeleteTopicResult[]> {
    return this.enqueue(async () => {
      const image = this.current;
      const duplicates = duplicateNames(names);
      const records: MetadataRecord[] = [];
      const results = names.map((name) =>
        entryResult(
          (): DeleteTopicResult => {
            checkOnce(duplicates, 'topic', name);
            records.push(removeTopicRecord(image, name));
            return { name, errorCode: ErrorCode.NONE, topicId: image.topic(name)?.topicId };
          },
          (error) => ({ name, errorCode: error.code, errorMessage: error.message }),
        ),
      );
      await this.commitIfAny(records);
      return results;
    });
  }

  /**
   * Adds partitions to existing topics (CreatePartitions): each topic grows to `count`
   * partitions with its replication factor, placed by `assignReplicas` so that its preferred
   * leaders stay balanced; new partitions start with every replica in the ISR. The valid
   * topics are written in one entry.
   */
  createPartitions(
    topics: readonly CreatePartitionsTopic[],
    options: { validateOnly?: boolean } = {},
  ): Promise<CreatePartitionsTopicResult[]> {
    return this.enqueue(async () => {
      const image = this.current;
      const brokers = assignableBrokers(image.brokers.values());
      const duplicates = duplicateNames(topics.map((topic) => topic.name));
      const records: MetadataRecord[] = [];
      const results = topics.map(({ name, count }) =>
        entryResult(
          (): CreatePartitionsTopicResult => {
            checkOnce(duplicates, 'topic', name);
            records.push(...newPartitionRecords(image, name, count, brokers));
            return { name, errorCode: ErrorCode.NONE };
          },
          (error) => ({ name, errorCode: error.code, errorMessage: error.message }),
        ),
      );
      await this.commitIfAny(records, options.validateOnly);
      return results;
    });
  }

  /**
   * A partition leader's ISR change (KIP-497). The broker epoch is checked first
   * (STALE_BROKER_EPOCH), then the topic id (UNKNOWN_TOPIC_ID), then the pure `alterPartition`
   * decides. Answers with the partition's state once the change is committed, or at once when
   * the ISR already is `newIsr`; throws the WeirError of a refused request.
   */
  alterPartition(request: BrokerAlterPartitionRequest): Promise<AlterPartitionResult> {
    return this.enqueue(async () => {
      const image = this.current;
      const { brokerId, topicId, partitionId } = request;
      checkBrokerEpoch(image, brokerId, request.brokerEpoch);
      if (image.topicById(topicId) === undefined) {
        throw new WeirError(
          ErrorCode.UNKNOWN_TOPIC_ID,
          `AlterPartition from broker ${brokerId}: no topic has id ${topicId} (it may have been deleted); refresh the metadata`,
        );
      }
      const change = alterPartition(
        image,
        { ...request, leaderId: brokerId },
        (id) => image.broker(id)?.fenced === false,
      );
      if (change !== undefined) await this.commit(partitionChangeRecords([change]));
      return partitionState(this.current, topicId, partitionId);
    });
  }

  /**
   * A broker asks to stop (KIP-631's controlled shutdown): it is marked in controlled shutdown,
   * so it is given no new replicas or leaderships, and its leaderships and ISR places move to
   * other live replicas in the same entry. Leaderships that cannot move without going offline
   * stay (KIP-841) and are counted in the answer, so the broker asks again until it is 0 or it
   * gives up waiting. Asking again writes only what changed since (often nothing).
   */
  controlledShutdown(request: ControlledShutdownRequest): Promise<ControlledShutdownResponse> {
    return this.enqueue(async () => {
      const image = this.current;
      const broker = checkBrokerEpoch(image, request.brokerId, request.brokerEpoch);
      // In KRaft the request rides on a heartbeat (KIP-631's wantShutDown), so it is contact too.
      this.sessions.set(broker.brokerId, this.clock());
      const decision = controlledShutdown(image, broker.brokerId, { isLive: liveIn(image) });
      const records = partitionChangeRecords(decision.records);
      // Once it leads nothing the broker may go: it is fenced at once (as KRaft does when a
      // heartbeat's wantShutDown is granted), so that its next incarnation can register without
      // waiting for this one's session to run out.
      const done = decision.remainingLeaderships.length === 0;
      if (!broker.inControlledShutdown || (done && !broker.fenced)) {
        records.unshift(
          metadataRecord({
            $case: 'brokerRegistrationChange',
            value: {
              brokerId: broker.brokerId,
              brokerEpoch: broker.brokerEpoch,
              inControlledShutdown: true,
              ...(done ? { fenced: true } : {}),
            },
          }),
        );
      }
      await this.commitIfAny(records);
      if (done) this.sessions.delete(broker.brokerId);
      return { remainingLeaderships: decision.remainingLeaderships.length };
    });
  }

  /**
   * Hands the broker the next block of PRODUCER_ID_BLOCK_SIZE producer ids for its idempotent
   * producers (KIP-730): the block starts where the image's last one ended, so no two brokers
   * ever give out the same id, across controller failovers too.
   */
  allocateProducerIds(request: AllocateProducerIdsRequest): Promise<AllocateProducerIdsResult> {
    return this.enqueue(async () => {
      const image = this.current;
      checkBrokerEpoch(image, request.brokerId, request.brokerEpoch);
      const firstProducerId = image.producerIds.nextProducerId;
      const size = PRODUCER_ID_BLOCK_SIZE;
      if (firstProducerId + BigInt(size) - 1n > MAX_PRODUCER_ID) {
        throw new WeirError(
          ErrorCode.UNKNOWN_SERVER_ERROR,
          `every producer id up to ${MAX_PRODUCER_ID} has been handed out; no block is left for broker ${request.brokerId}`,
        );
      }
      await this.commit([
        metadataRecord({
          $case: 'producerIdsBlock',
          value: { brokerId: request.brokerId, firstProducerId, size },
        }),
      ]);
      return { firstProducerId, size };
    });
  }

  /**
   * Sets and deletes topic configs (IncrementalAlterConfigs). Each resource is checked on its
   * own: UNKNOWN_TOPIC_OR_PARTITION for a missing topic, INVALID_CONFIG for an unknown config
   * or a bad value (validateTopicConfig), INVALID_REQUEST for a resource or config named
   * twice. The valid ones are written in one entry, one Config record per value that changes.
   */
  incrementalAlterConfigs(
    resources: readonly AlterConfigsResource[],
    options: { validateOnly?: boolean } = {},
  ): Promise<AlterConfigsResourceResult[]> {
    return this.enqueue(async () => {
      const image = this.current;
      const duplicates = duplicateNames(resources.map((resource) => resource.resourceName));
      const records: MetadataRecord[] = [];
      const results = resources.map(({ resourceType, resourceName, ops }) =>
        entryResult(
          (): AlterConfigsResourceResult => {
            checkOnce(duplicates, resourceType, resourceName);
            records.push(...topicConfigRecords(image, resourceName, ops));
            return { resourceType, resourceName, errorCode: ErrorCode.NONE };
          },
          (error) => ({
            resourceType,
            resourceName,
            errorCode: error.code,
            errorMessage: error.message,
          }),
        ),
      );
      await this.commitIfAny(records, options.validateOnly);
      return results;
    });
  }

  /**
   * The controller's periodic work; the server calls this on a timer. On a node that is not
   * the active controller it does nothing.
   *
   * 1. Fences every unfenced broker whose session has expired: it leaves every ISR and its
   *    leaderships move (leader epoch + 1), one entry per broker so that each decision sees the
   *    previous one.
   * 2. At most every `leaderImbalanceCheckIntervalMs`, gives every partition whose preferred
   *    replica is live and in the ISR back to it (Kafka's auto.leader.rebalance.enable), in one
   *    entry: without this, leadership piles up on the brokers that stayed up while others
   *    restarted.
   */
  tick(): Promise<TickResult> {
    if (this.log?.isLeader !== true) {
      return Promise.resolve({ fencedBrokers: [], preferredLeaderElections: 0 });
    }
    return this.enqueue(async () => {
      const now = this.clock();
      const fencedBrokers = await this.fenceExpiredBrokers(now);
      const preferredLeaderElections = await this.balancePartitionLeaders(now);
      return { fencedBrokers, preferredLeaderElections };
    });
  }

  // --- Periodic work -----------------------------------------------------------------------

  private async fenceExpiredBrokers(now: number): Promise<number[]> {
    const expired = this.expiredBrokers(now);
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
    return fencedBrokers;
  }

  /** Preferred-leader elections, once the check interval has passed; returns how many. */
  private async balancePartitionLeaders(now: number): Promise<number> {
    if (now - this.lastLeaderImbalanceCheckMs < this.leaderImbalanceCheckIntervalMs) return 0;
    const image = this.current;
    const elections = preferredLeaderElection(image, liveIn(image));
    const batch = elections.slice(0, MAX_PREFERRED_ELECTIONS_PER_ENTRY);
    // Elections left over are made at the next tick rather than after another interval.
    if (batch.length === elections.length) this.lastLeaderImbalanceCheckMs = now;
    await this.commitIfAny(partitionChangeRecords(batch));
    return batch.length;
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
    // Kafka schedules the first imbalance check one interval after a controller activates.
    this.lastLeaderImbalanceCheckMs = this.clock();
  }

  /** Commits a request's records as one entry; nothing when there are none or it only validates. */
  private async commitIfAny(
    records: readonly MetadataRecord[],
    validateOnly = false,
  ): Promise<void> {
    if (records.length > 0 && !validateOnly) await this.commit(records);
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

  /**
   * Refuses a registration with a new incarnation id while the registered one is unfenced and
   * its session is alive: two processes with one node id would both claim its partitions
   * (Kafka's DuplicateBrokerRegistrationException). The same incarnation registering again is
   * a retry and passes; so does a new one once the old is fenced or its session has expired.
   */
  private checkNotRunningElsewhere(
    previous: BrokerRegistration | undefined,
    incarnationId: string,
  ): void {
    // A broker in controlled shutdown has said it is going away: a new incarnation replaces it
    // (its registration fences the old one) rather than waiting out the old one's session.
    if (
      previous === undefined ||
      previous.fenced ||
      previous.inControlledShutdown ||
      previous.incarnationId === incarnationId
    ) {
      return;
    }
    const lastContactMs = this.sessions.get(previous.brokerId);
    // No session yet: this controller became active since the broker's last contact, and a new
    // controller gives every broker a fresh session (see expiredBrokers).
    const sinceContactMs = lastContactMs === undefined ? 0 : this.clock() - lastContactMs;
    if (sinceContactMs >= this.brokerSessionTimeoutMs) return;
    throw new WeirError(
      ErrorCode.DUPLICATE_BROKER_REGISTRATION,
      `another process with node id ${previous.brokerId} is running (incarnation ${previous.incarnationId}); stop it or give this broker another node id, or retry once its session expires in ${this.brokerSessionTimeoutMs - sinceContactMs} ms`,
    );
  }

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

/** The names that appear more than once in a request. */
function duplicateNames(names: Iterable<string>): Set<string> {
  const seen = new Set<string>();
  const duplicates = new Set<string>();
  for (const name of names) (seen.has(name) ? duplicates : seen).add(name);
  return duplicates;
}

/** INVALID_REQUEST for a name given twice: which of the two entries is meant is unclear. */
function checkOnce(duplicates: ReadonlySet<string>, what: string, name: string): void {
  if (duplicates.has(name)) {
    throw new WeirError(
      ErrorCode.INVALID_REQUEST,
      `${what} '${name}' appears more than once in the request; name it once`,
    );
  }
}

/**
 * One entry of a batch request (a topic, a resource): a WeirError becomes that entry's error
 * code and the others go on, as Kafka answers per entry. An assertion (ILLEGAL_STATE) or any
 * other error is a bug and fails the whole request.
 */
function entryResult<R>(run: () => R, failed: (error: WeirError) => R): R {
  try {
    return run();
  } catch (error) {
    if (!isWeirError(error) || error.code === ErrorCode.ILLEGAL_STATE) throw error;
    return failed(error);
  }
}

/** A partition's leadership and epochs as the image has them, for AlterPartition's answer. */
function partitionState(
  image: MetadataImage,
  topicId: string,
  partitionId: number,
): AlterPartitionResult {
  const partition = image.partition(topicId, partitionId);
  assert(partition !== undefined, () => `partition ${topicId}/${partitionId} vanished`);
  const { leader, leaderEpoch, isr, partitionEpoch } = partition;
  return { leader, leaderEpoch, isr, partitionEpoch };
}
