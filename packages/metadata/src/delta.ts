// What one `MetadataImage.apply` changed (Kafka's MetadataDelta): computed by comparing the
// image before and after for exactly the brokers, topics, partitions and configs the records
// touched, so its size is the size of the change, never of the image.
import type {
  BrokerRegistration,
  MetadataImage,
  PartitionImage,
  ProducerIdsImage,
  TopicImage,
} from './image.js';
import type { ConfigResourceType } from './records.js';

export interface BrokerChange {
  readonly brokerId: number;
  readonly before: BrokerRegistration | undefined;
  readonly after: BrokerRegistration;
}

export interface PartitionChange {
  readonly topicId: string;
  /** The topic's name (as it was before, for a deleted topic). */
  readonly topicName: string;
  readonly partitionId: number;
  /** Undefined for a partition created in this delta. */
  readonly before: PartitionImage | undefined;
  /** Undefined for a partition deleted (with its topic) in this delta. */
  readonly after: PartitionImage | undefined;
  /** The leader or the leader epoch changed (an election happened). */
  readonly leaderChanged: boolean;
  readonly isrChanged: boolean;
  readonly replicasChanged: boolean;
}

export interface ConfigChange {
  readonly resourceType: ConfigResourceType;
  readonly resourceName: string;
  readonly name: string;
  /** Undefined when the entry was not set before. */
  readonly before: string | undefined;
  /** Undefined when the entry was deleted. */
  readonly after: string | undefined;
}

/** A partition a broker no longer replicates, and why. */
export interface StoppedReplica {
  readonly partition: PartitionImage;
  /** True when the topic was deleted (the replica's data goes too), false when reassigned. */
  readonly deleted: boolean;
}

/** What a broker's replica manager must do after a delta (Kafka's `TopicsDelta.localChanges`). */
export interface LeadershipChanges {
  /** Partitions the broker leads now under a new leader epoch: become (or stay) leader. */
  readonly leader: readonly PartitionImage[];
  /**
   * Partitions the broker replicates without leading whose leader or leader epoch changed, or
   * that it was newly assigned: (re)start following the new leader.
   */
  readonly follower: readonly PartitionImage[];
  /** Partitions the broker replicated before and does not any more. */
  readonly stopped: readonly StoppedReplica[];
}

/** What the replayed records touched; the delta compares exactly these. */
export interface Touched {
  readonly brokers: ReadonlySet<number>;
  readonly topics: ReadonlySet<string>;
  readonly partitions: ReadonlyMap<string, ReadonlySet<number>>;
  readonly configs: ReadonlyMap<string, ReadonlySet<string>>;
  readonly producerIds: boolean;
}

export class MetadataDelta {
  /** Brokers registered (for the first time or again, with a new broker epoch). */
  readonly registeredBrokers: readonly BrokerRegistration[];
  /** Brokers that were registered and unfenced before, and are fenced now. */
  readonly fencedBrokers: readonly number[];
  /** Brokers that are unfenced now and were fenced or unregistered before. */
  readonly unfencedBrokers: readonly number[];
  /** Every broker whose registration changed in any way. */
  readonly brokerChanges: readonly BrokerChange[];
  readonly topicsCreated: readonly TopicImage[];
  /** The deleted topics as they were before, partitions included. */
  readonly topicsDeleted: readonly TopicImage[];
  /** Every partition created, changed or deleted. */
  readonly partitionChanges: readonly PartitionChange[];
  readonly configChanges: readonly ConfigChange[];
  /** The new producer id state, when a block was handed out. */
  readonly producerIds: ProducerIdsImage | undefined;

  private constructor(
    readonly previous: MetadataImage,
    readonly image: MetadataImage,
    touched: Touched,
  ) {
    this.brokerChanges = brokerChanges(previous, image, touched.brokers);
    this.registeredBrokers = this.brokerChanges
      .filter(({ before, after }) => before?.brokerEpoch !== after.brokerEpoch)
      .map(({ after }) => after);
    this.fencedBrokers = this.brokerChanges
      .filter(({ before, after }) => before !== undefined && !before.fenced && after.fenced)
      .map(({ brokerId }) => brokerId);
    this.unfencedBrokers = this.brokerChanges
      .filter(({ before, after }) => (before === undefined || before.fenced) && !after.fenced)
      .map(({ brokerId }) => brokerId);
    const topics = [...touched.topics];
    this.topicsCreated = topics.flatMap((id) => {
      const after = image.topicById(id);
      return after !== undefined && previous.topicById(id) === undefined ? [after] : [];
    });
    this.topicsDeleted = topics.flatMap((id) => {
      const before = previous.topicById(id);
      return before !== undefined && image.topicById(id) === undefined ? [before] : [];
    });
    this.partitionChanges = partitionChanges(previous, image, touched.partitions);
    this.configChanges = configChanges(previous, image, touched.configs);
    this.producerIds = touched.producerIds ? image.producerIds : undefined;
    Object.freeze(this);
  }

  /** @internal Built by `MetadataImage.apply`. */
  static between(previous: MetadataImage, image: MetadataImage, touched: Touched): MetadataDelta {
    return new MetadataDelta(previous, image, touched);
  }

  /** True when the records changed nothing but the offset. */
  get isEmpty(): boolean {
    return (
      this.brokerChanges.length === 0 &&
      this.topicsCreated.length === 0 &&
      this.topicsDeleted.length === 0 &&
      this.partitionChanges.length === 0 &&
      this.configChanges.length === 0 &&
      this.producerIds === undefined
    );
  }

  /**
   * The partitions whose leadership changed from `brokerId`'s point of view: what its replica
   * manager must act on, and nothing else (an ISR change of a partition it follows, say, is
   * not in here; `partitionChanges` has every change).
   */
  leadershipChangesFor(brokerId: number): LeadershipChanges {
    const leader: PartitionImage[] = [];
    const follower: PartitionImage[] = [];
    const stopped: StoppedReplica[] = [];
    for (const { before, after } of this.partitionChanges) {
      const wasReplica = before?.replicas.includes(brokerId) ?? false;
      const isReplica = after?.replicas.includes(brokerId) ?? false;
      if (before !== undefined && wasReplica && !isReplica) {
        stopped.push({ partition: before, deleted: after === undefined });
        continue;
      }
      if (after === undefined || !isReplica) continue;
      const elected =
        before === undefined ||
        before.leader !== after.leader ||
        before.leaderEpoch !== after.leaderEpoch;
      if (after.leader === brokerId) {
        if (elected) leader.push(after);
      } else if (elected || !wasReplica) {
        follower.push(after);
      }
    }
    return { leader, follower, stopped };
  }
}

function brokerChanges(
  previous: MetadataImage,
  image: MetadataImage,
  brokerIds: ReadonlySet<number>,
): BrokerChange[] {
  const changes: BrokerChange[] = [];
  for (const brokerId of [...brokerIds].sort((a, b) => a - b)) {
    const before = previous.broker(brokerId);
    const after = image.broker(brokerId);
    // A broker is never unregistered; touched means it is in the new image.
    if (after !== undefined && before !== after) changes.push({ brokerId, before, after });
  }
  return changes;
}

function partitionChanges(
  previous: MetadataImage,
  image: MetadataImage,
  touched: ReadonlyMap<string, ReadonlySet<number>>,
): PartitionChange[] {
  const changes: PartitionChange[] = [];
  for (const [topicId, partitionIds] of touched) {
    const topicName = (image.topicById(topicId) ?? previous.topicById(topicId))?.name;
    // A topic created and deleted within one batch has left no trace to report.
    if (topicName === undefined) continue;
    for (const partitionId of [...partitionIds].sort((a, b) => a - b)) {
      const before = previous.partition(topicId, partitionId);
      const after = image.partition(topicId, partitionId);
      if (before === after) continue;
      changes.push({
        topicId,
        topicName,
        partitionId,
        before,
        after,
        leaderChanged:
          before?.leader !== after?.leader || before?.leaderEpoch !== after?.leaderEpoch,
        isrChanged: !sameIds(before?.isr, after?.isr),
        replicasChanged: !sameIds(before?.replicas, after?.replicas),
      });
    }
  }
  return changes;
}

function configChanges(
  previous: MetadataImage,
  image: MetadataImage,
  touched: ReadonlyMap<string, ReadonlySet<string>>,
): ConfigChange[] {
  const changes: ConfigChange[] = [];
  for (const [key, names] of touched) {
    const resource = image.configs.get(key) ?? previous.configs.get(key);
    // Touched keys always come from a record, so one of the two images has the resource
    // unless the batch created and removed it; then nothing changed.
    if (resource === undefined) continue;
    const { resourceType, resourceName } = resource;
    for (const name of names) {
      const before = previous.configs.get(key)?.entries.get(name);
      const after = image.configs.get(key)?.entries.get(name);
      if (before !== after) changes.push({ resourceType, resourceName, name, before, after });
    }
  }
  return changes;
}

function sameIds(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
