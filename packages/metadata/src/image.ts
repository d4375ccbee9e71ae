// The metadata image: the cluster's state as of one offset of the metadata log, built by
// replaying records (Kafka's `MetadataImage`/`MetadataDelta`, KIP-631). Images are immutable:
// `apply` returns a new image that shares every untouched broker, topic and partition with the
// old one, and a delta saying exactly what changed between the two.
import { assert } from '@weir/protocol';
import { MetadataDelta } from './delta.js';
import {
  type BrokerEndpoint,
  type BrokerRegistrationChangeRecord,
  type ConfigRecord,
  ConfigResourceType,
  type MetadataRecord,
  NO_LEADER,
  type PartitionChangeRecord,
  type PartitionRecord,
  type ProducerIdsBlockRecord,
  type RegisterBrokerRecord,
  type RemoveTopicRecord,
  type TopicRecord,
  checkRecordEnvelope,
} from './records.js';

/** A registered broker, as the last RegisterBroker and BrokerRegistrationChange left it. */
export interface BrokerRegistration {
  readonly brokerId: number;
  readonly incarnationId: string;
  /** The offset of the broker's RegisterBroker record (KIP-631's broker epoch). */
  readonly brokerEpoch: bigint;
  readonly endpoints: readonly BrokerEndpoint[];
  readonly rack: string | undefined;
  readonly fenced: boolean;
  readonly inControlledShutdown: boolean;
}

/** One partition's replicas, ISR, leader and epochs. */
export interface PartitionImage {
  readonly topicId: string;
  readonly partitionId: number;
  /** In preference order: the first is the preferred leader. */
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
  /** A member of `isr`, or NO_LEADER (-1). */
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
}

export interface TopicImage {
  readonly name: string;
  readonly topicId: string;
  readonly partitions: ReadonlyMap<number, PartitionImage>;
}

/** The configuration entries set on one resource (a topic, a broker or the cluster). */
export interface ConfigResourceImage {
  readonly resourceType: ConfigResourceType;
  readonly resourceName: string;
  readonly entries: ReadonlyMap<string, string>;
}

export interface ProducerIdsBlock {
  readonly brokerId: number;
  readonly firstProducerId: bigint;
  readonly size: number;
}

export interface ProducerIdsImage {
  /** The first producer id not yet handed out: where the next block starts at the earliest. */
  readonly nextProducerId: bigint;
  /** The last block handed out, if any. */
  readonly lastBlock: ProducerIdsBlock | undefined;
}

/** The key of a configuration resource in `MetadataImage.configs`. */
export function configResourceKey(resourceType: ConfigResourceType, resourceName: string): string {
  return `${resourceType}:${resourceName}`;
}

const NO_PRODUCER_IDS: ProducerIdsImage = Object.freeze({
  nextProducerId: 0n,
  lastBlock: undefined,
});
const EMPTY_ENTRIES: ReadonlyMap<string, string> = new Map();

interface ImageState {
  readonly offset: bigint;
  readonly brokers: ReadonlyMap<number, BrokerRegistration>;
  readonly topicsById: ReadonlyMap<string, TopicImage>;
  readonly topicsByName: ReadonlyMap<string, TopicImage>;
  readonly configs: ReadonlyMap<string, ConfigResourceImage>;
  readonly producerIds: ProducerIdsImage;
}

export class MetadataImage implements ImageState {
  /** The image before the first record: offset -1, nothing registered. */
  static readonly EMPTY = new MetadataImage({
    offset: -1n,
    brokers: new Map(),
    topicsById: new Map(),
    topicsByName: new Map(),
    configs: new Map(),
    producerIds: NO_PRODUCER_IDS,
  });

  /** The offset (metadata log index) of the last record applied; -1 for the empty image. */
  readonly offset: bigint;
  readonly brokers: ReadonlyMap<number, BrokerRegistration>;
  readonly topicsById: ReadonlyMap<string, TopicImage>;
  readonly topicsByName: ReadonlyMap<string, TopicImage>;
  /** By `configResourceKey(resourceType, resourceName)`; resources without entries are absent. */
  readonly configs: ReadonlyMap<string, ConfigResourceImage>;
  readonly producerIds: ProducerIdsImage;

  private constructor(state: ImageState) {
    this.offset = state.offset;
    this.brokers = state.brokers;
    this.topicsById = state.topicsById;
    this.topicsByName = state.topicsByName;
    this.configs = state.configs;
    this.producerIds = state.producerIds;
    Object.freeze(this);
  }

  broker(brokerId: number): BrokerRegistration | undefined {
    return this.brokers.get(brokerId);
  }

  topic(name: string): TopicImage | undefined {
    return this.topicsByName.get(name);
  }

  topicById(topicId: string): TopicImage | undefined {
    return this.topicsById.get(topicId);
  }

  partition(topicId: string, partitionId: number): PartitionImage | undefined {
    return this.topicsById.get(topicId)?.partitions.get(partitionId);
  }

  configsFor(resourceType: ConfigResourceType, resourceName: string): ReadonlyMap<string, string> {
    return (
      this.configs.get(configResourceKey(resourceType, resourceName))?.entries ?? EMPTY_ENTRIES
    );
  }

  /**
   * Replays `records`, in order, as the entries up to and including `offset` (the log index of
   * the last of them; an empty list just moves the offset, as a Raft no-op entry does). Returns
   * the new image and what changed. Throws WeirError and leaves this image as it was when a
   * record is invalid: INVALID_RECORD for an unknown version, ILLEGAL_STATE (an assertion) for a
   * record that breaks an invariant of the image.
   */
  apply(
    records: readonly MetadataRecord[],
    offset: bigint,
  ): { image: MetadataImage; delta: MetadataDelta } {
    assert(
      offset > this.offset,
      () => `metadata offset ${offset} does not follow the image's offset ${this.offset}`,
    );
    const builder = new ImageBuilder(this, offset);
    for (const record of records) builder.replay(record);
    const image = new MetadataImage(builder.build());
    return { image, delta: builder.delta(image) };
  }
}

/**
 * Replays records over a base image. Each map of the base is copied at most once per `apply`,
 * on its first write (copy-on-write), and a topic's partition map only when one of its
 * partitions changes: replaying a batch costs the size of what it touches plus one copy of the
 * top-level maps, never a deep copy of the image.
 */
class ImageBuilder {
  private brokers: Map<number, BrokerRegistration> | undefined;
  /** Topics created, changed or removed (undefined) in this batch, by id. */
  private readonly topicDrafts = new Map<string, TopicDraft | undefined>();
  private readonly nameToId: Map<string, string | undefined> = new Map();
  private configs: Map<string, ConfigResourceImage> | undefined;
  private producerIds: ProducerIdsImage;

  // What the batch touched, for the delta: it compares before and after for each of these.
  readonly touchedBrokers = new Set<number>();
  readonly touchedPartitions = new Map<string, Set<number>>();
  readonly touchedTopics = new Set<string>();
  readonly touchedConfigs = new Map<string, Set<string>>();
  producerIdsChanged = false;

  constructor(
    readonly base: MetadataImage,
    private readonly offset: bigint,
  ) {
    this.producerIds = base.producerIds;
  }

  replay(record: MetadataRecord): void {
    const body = checkRecordEnvelope(record);
    switch (body.$case) {
      case 'registerBroker':
        return this.registerBroker(body.value);
      case 'brokerRegistrationChange':
        return this.changeBrokerRegistration(body.value);
      case 'topic':
        return this.createTopic(body.value);
      case 'partition':
        return this.putPartition(body.value);
      case 'partitionChange':
        return this.changePartition(body.value);
      case 'removeTopic':
        return this.removeTopic(body.value);
      case 'config':
        return this.setConfig(body.value);
      case 'producerIdsBlock':
        return this.addProducerIdsBlock(body.value);
    }
  }

  private registerBroker(record: RegisterBrokerRecord): void {
    const { brokerId, brokerEpoch } = record;
    assert(brokerId >= 0, () => `RegisterBroker: broker id ${brokerId} is negative`);
    assert(record.incarnationId !== '', () => `RegisterBroker ${brokerId}: no incarnation id`);
    assert(
      brokerEpoch <= this.offset,
      () => `RegisterBroker ${brokerId}: broker epoch ${brokerEpoch} is past offset ${this.offset}`,
    );
    const previous = this.broker(brokerId);
    assert(
      previous === undefined || brokerEpoch > previous.brokerEpoch,
      () =>
        `RegisterBroker ${brokerId}: broker epoch ${brokerEpoch} does not follow ${previous?.brokerEpoch}`,
    );
    this.putBroker({
      brokerId,
      incarnationId: record.incarnationId,
      brokerEpoch,
      endpoints: Object.freeze(record.endpoints.map((e) => Object.freeze({ ...e }))),
      rack: record.rack,
      fenced: record.fenced,
      inControlledShutdown: record.inControlledShutdown,
    });
  }

  private changeBrokerRegistration(record: BrokerRegistrationChangeRecord): void {
    const { brokerId, brokerEpoch } = record;
    const previous = this.broker(brokerId);
    assert(
      previous !== undefined,
      () => `BrokerRegistrationChange: broker ${brokerId} is not registered`,
    );
    assert(
      brokerEpoch === previous.brokerEpoch,
      () =>
        `BrokerRegistrationChange ${brokerId}: broker epoch ${brokerEpoch} is not the registered ${previous.brokerEpoch}`,
    );
    this.putBroker({
      ...previous,
      fenced: record.fenced ?? previous.fenced,
      inControlledShutdown: record.inControlledShutdown ?? previous.inControlledShutdown,
    });
  }

  private createTopic(record: TopicRecord): void {
    const { name, topicId } = record;
    assert(name !== '' && topicId !== '', () => `Topic: empty name or id (${name}, ${topicId})`);
    assert(this.topicIdByName(name) === undefined, () => `Topic: name ${name} already exists`);
    assert(this.topic(topicId) === undefined, () => `Topic: id ${topicId} already exists`);
    this.topicDrafts.set(topicId, { name, topicId, partitions: new Map() });
    this.nameToId.set(name, topicId);
    this.touchedTopics.add(topicId);
  }

  private putPartition(record: PartitionRecord): void {
    const { topicId, partitionId } = record;
    const draft = this.draftTopic(topicId, `Partition ${topicId}/${partitionId}`);
    assert(partitionId >= 0, () => `Partition ${topicId}/${partitionId}: negative partition id`);
    const previous = draft.partitions.get(partitionId);
    const partition = freezePartition({
      topicId,
      partitionId,
      replicas: [...record.replicas],
      isr: [...record.isr],
      leader: record.leader,
      leaderEpoch: record.leaderEpoch,
      partitionEpoch: record.partitionEpoch,
    });
    if (previous !== undefined) {
      // A whole-partition rewrite: its epochs move forward like a change's would.
      assertEpochsAdvance(previous, partition);
      assert(
        partition.partitionEpoch > previous.partitionEpoch,
        () =>
          `Partition ${topicId}/${partitionId}: partition epoch ${partition.partitionEpoch} does not follow ${previous.partitionEpoch}`,
      );
    }
    this.putPartitionImage(draft, partition);
  }

  private changePartition(record: PartitionChangeRecord): void {
    const { topicId, partitionId } = record;
    const where = `PartitionChange ${topicId}/${partitionId}`;
    const draft = this.draftTopic(topicId, where);
    const previous = draft.partitions.get(partitionId);
    assert(previous !== undefined, () => `${where}: unknown partition`);
    const partition = freezePartition({
      topicId,
      partitionId,
      replicas: record.replicas === undefined ? previous.replicas : [...record.replicas.brokerIds],
      isr: record.isr === undefined ? previous.isr : [...record.isr.brokerIds],
      leader: record.leader ?? previous.leader,
      // Kafka's replay: any election (a record naming a leader) bumps the leader epoch, and
      // every change bumps the partition epoch (KIP-497's AlterPartition fencing).
      leaderEpoch: record.leader === undefined ? previous.leaderEpoch : previous.leaderEpoch + 1,
      partitionEpoch: previous.partitionEpoch + 1,
    });
    this.putPartitionImage(draft, partition);
  }

  private removeTopic(record: RemoveTopicRecord): void {
    const { topicId } = record;
    const topic = this.topic(topicId);
    assert(topic !== undefined, () => `RemoveTopic: unknown topic id ${topicId}`);
    this.topicDrafts.set(topicId, undefined);
    this.nameToId.set(topic.name, undefined);
    this.touchedTopics.add(topicId);
    for (const partitionId of topic.partitions.keys()) this.touchPartition(topicId, partitionId);
    // A deleted topic's configuration goes with it (Kafka's ConfigurationsDelta does the same),
    // so a new topic of the same name starts from the defaults.
    const key = configResourceKey(ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC, topic.name);
    const resource = this.config(key);
    if (resource !== undefined) {
      for (const name of resource.entries.keys()) this.touchConfig(key, name);
      this.mutableConfigs().delete(key);
    }
  }

  private setConfig(record: ConfigRecord): void {
    const { resourceType, resourceName, name } = record;
    const where = `Config ${resourceType}:${resourceName} ${name}`;
    assert(
      resourceType === ConfigResourceType.CONFIG_RESOURCE_TYPE_TOPIC ||
        resourceType === ConfigResourceType.CONFIG_RESOURCE_TYPE_BROKER ||
        resourceType === ConfigResourceType.CONFIG_RESOURCE_TYPE_CLUSTER,
      () => `${where}: unknown resource type`,
    );
    assert(
      (resourceType === ConfigResourceType.CONFIG_RESOURCE_TYPE_CLUSTER) === (resourceName === ''),
      () => `${where}: the cluster, and only the cluster, has an empty resource name`,
    );
    assert(name !== '', () => `${where}: empty config name`);
    const key = configResourceKey(resourceType, resourceName);
    const entries = new Map(this.config(key)?.entries);
    if (record.value === undefined) entries.delete(name);
    else entries.set(name, record.value);
    // A resource with no entries left is dropped, so that an image rebuilt from a snapshot
    // (which writes entries, not resources) equals this one.
    if (entries.size === 0) this.mutableConfigs().delete(key);
    else this.mutableConfigs().set(key, Object.freeze({ resourceType, resourceName, entries }));
    this.touchConfig(key, name);
  }

  private addProducerIdsBlock(record: ProducerIdsBlockRecord): void {
    const { brokerId, firstProducerId, size } = record;
    assert(size > 0, () => `ProducerIdsBlock for broker ${brokerId}: size ${size} is not positive`);
    assert(
      firstProducerId >= this.producerIds.nextProducerId,
      () =>
        `ProducerIdsBlock for broker ${brokerId}: block at ${firstProducerId} overlaps ids handed out up to ${this.producerIds.nextProducerId}`,
    );
    this.producerIds = Object.freeze({
      nextProducerId: firstProducerId + BigInt(size),
      lastBlock: Object.freeze({ brokerId, firstProducerId, size }),
    });
    this.producerIdsChanged = true;
  }

  build(): ImageState {
    return {
      offset: this.offset,
      brokers: this.brokers ?? this.base.brokers,
      ...this.buildTopics(),
      configs: this.configs ?? this.base.configs,
      producerIds: this.producerIds,
    };
  }

  delta(image: MetadataImage): MetadataDelta {
    return MetadataDelta.between(this.base, image, {
      brokers: this.touchedBrokers,
      topics: this.touchedTopics,
      partitions: this.touchedPartitions,
      configs: this.touchedConfigs,
      producerIds: this.producerIdsChanged,
    });
  }

  private buildTopics(): Pick<ImageState, 'topicsById' | 'topicsByName'> {
    if (this.topicDrafts.size === 0) {
      return { topicsById: this.base.topicsById, topicsByName: this.base.topicsByName };
    }
    const topicsById = new Map(this.base.topicsById);
    const topicsByName = new Map(this.base.topicsByName);
    for (const [topicId, draft] of this.topicDrafts) {
      const before = this.base.topicsById.get(topicId);
      if (before !== undefined) topicsByName.delete(before.name);
      if (draft === undefined) {
        topicsById.delete(topicId);
        continue;
      }
      const topic: TopicImage = Object.freeze({ ...draft });
      topicsById.set(topicId, topic);
      topicsByName.set(topic.name, topic);
    }
    return { topicsById, topicsByName };
  }

  private broker(brokerId: number): BrokerRegistration | undefined {
    return (this.brokers ?? this.base.brokers).get(brokerId);
  }

  private putBroker(broker: BrokerRegistration): void {
    this.brokers ??= new Map(this.base.brokers);
    this.brokers.set(broker.brokerId, Object.freeze(broker));
    this.touchedBrokers.add(broker.brokerId);
  }

  private topic(topicId: string): TopicImage | TopicDraft | undefined {
    return this.topicDrafts.has(topicId)
      ? this.topicDrafts.get(topicId)
      : this.base.topicsById.get(topicId);
  }

  private topicIdByName(name: string): string | undefined {
    return this.nameToId.has(name)
      ? this.nameToId.get(name)
      : this.base.topicsByName.get(name)?.topicId;
  }

  /** The topic's draft for this batch, its partition map copied on first use. */
  private draftTopic(topicId: string, where: string): TopicDraft {
    const draft = this.topicDrafts.get(topicId);
    if (draft !== undefined) return draft;
    const topic = this.topic(topicId);
    assert(topic !== undefined, () => `${where}: unknown topic id ${topicId}`);
    const copy = { name: topic.name, topicId, partitions: new Map(topic.partitions) };
    this.topicDrafts.set(topicId, copy);
    return copy;
  }

  private putPartitionImage(draft: TopicDraft, partition: PartitionImage): void {
    const previous = draft.partitions.get(partition.partitionId);
    checkPartition(partition);
    if (previous !== undefined) assertEpochsAdvance(previous, partition);
    draft.partitions.set(partition.partitionId, partition);
    this.touchPartition(partition.topicId, partition.partitionId);
  }

  private touchPartition(topicId: string, partitionId: number): void {
    let partitions = this.touchedPartitions.get(topicId);
    if (partitions === undefined) this.touchedPartitions.set(topicId, (partitions = new Set()));
    partitions.add(partitionId);
  }

  private config(key: string): ConfigResourceImage | undefined {
    return (this.configs ?? this.base.configs).get(key);
  }

  private mutableConfigs(): Map<string, ConfigResourceImage> {
    this.configs ??= new Map(this.base.configs);
    return this.configs;
  }

  private touchConfig(key: string, name: string): void {
    let names = this.touchedConfigs.get(key);
    if (names === undefined) this.touchedConfigs.set(key, (names = new Set()));
    names.add(name);
  }
}

interface TopicDraft {
  readonly name: string;
  readonly topicId: string;
  readonly partitions: Map<number, PartitionImage>;
}

function freezePartition(partition: PartitionImage): PartitionImage {
  Object.freeze(partition.replicas);
  Object.freeze(partition.isr);
  return Object.freeze(partition);
}

/** The invariants of one partition's state (TIGER_STYLE: assert where they hold). */
function checkPartition(partition: PartitionImage): void {
  const { topicId, partitionId, replicas, isr, leader, leaderEpoch, partitionEpoch } = partition;
  const where = `partition ${topicId}/${partitionId}`;
  assert(replicas.length > 0, () => `${where}: no replicas`);
  assert(
    replicas.every((id) => id >= 0) && new Set(replicas).size === replicas.length,
    () => `${where}: replicas [${replicas.join(',')}] are not distinct broker ids`,
  );
  assert(new Set(isr).size === isr.length, () => `${where}: ISR [${isr.join(',')}] has duplicates`);
  assert(
    isr.every((id) => replicas.includes(id)),
    () => `${where}: ISR [${isr.join(',')}] is not within the replicas [${replicas.join(',')}]`,
  );
  assert(
    leader === NO_LEADER || isr.includes(leader),
    () => `${where}: leader ${leader} is not in the ISR [${isr.join(',')}]`,
  );
  assert(
    leaderEpoch >= 0 && partitionEpoch >= 0,
    () => `${where}: negative epoch (leader ${leaderEpoch}, partition ${partitionEpoch})`,
  );
}

function assertEpochsAdvance(previous: PartitionImage, next: PartitionImage): void {
  assert(
    next.leaderEpoch >= previous.leaderEpoch && next.partitionEpoch >= previous.partitionEpoch,
    () =>
      `partition ${next.topicId}/${next.partitionId}: epochs went back (leader ${previous.leaderEpoch} → ${next.leaderEpoch}, partition ${previous.partitionEpoch} → ${next.partitionEpoch})`,
  );
}
