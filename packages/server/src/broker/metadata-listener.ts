// The broker's side of the metadata log: it applies what the RaftObserver fetched to its own
// MetadataImage and publishes each MetadataDelta to the broker's replica manager (Kafka's
// BrokerMetadataListener and MetadataPublisher). Until the data plane exists (M4), publishing
// means logging the partitions whose leadership changed for this broker.

import { decodeMetadataEntry } from '@weir/controller';
import type { MetadataDelta } from '@weir/metadata';
import { MetadataImage, decodeSnapshot, snapshotRecords } from '@weir/metadata';
import type { Entry, ObserverStateMachine, Snapshot } from '@weir/raft';
import type { Logger } from 'pino';

/** Told about every applied change, after the image has moved. */
export type MetadataPublisher = (delta: MetadataDelta) => void;

export class BrokerMetadataListener implements ObserverStateMachine {
  private current = MetadataImage.EMPTY;
  private readonly publishers: MetadataPublisher[] = [];

  constructor(
    private readonly brokerId: number,
    private readonly logger: Logger,
  ) {
    this.publishers.push((delta) => this.logTransitions(delta));
  }

  get image(): MetadataImage {
    return this.current;
  }

  onDelta(publisher: MetadataPublisher): void {
    this.publishers.push(publisher);
  }

  apply(entries: readonly Entry[]): void {
    for (const entry of entries) {
      const offset = BigInt(entry.index);
      const records = entry.type === 'normal' ? decodeMetadataEntry(entry.data, offset) : [];
      const { image, delta } = this.current.apply(records, offset);
      this.current = image;
      if (!delta.isEmpty) this.publish(delta);
    }
  }

  /**
   * A snapshot replaces the image. It is published as a delta from the empty image, so the
   * replica manager sees every partition of this broker as new (Kafka does the same on a
   * snapshot load).
   */
  restore(snapshot: Snapshot): void {
    const image = decodeSnapshot(snapshot.data);
    this.logger.info({ offset: image.offset }, 'loaded a metadata snapshot');
    const { image: rebuilt, delta } = MetadataImage.EMPTY.apply(
      snapshotRecords(image),
      image.offset,
    );
    this.current = rebuilt;
    this.publish(delta);
  }

  reset(): void {
    this.current = MetadataImage.EMPTY;
  }

  private publish(delta: MetadataDelta): void {
    for (const publisher of this.publishers) publisher(delta);
  }

  private logTransitions(delta: MetadataDelta): void {
    const offset = delta.image.offset;
    for (const topic of delta.topicsCreated) {
      this.logger.info(
        { topic: topic.name, partitions: topic.partitions.size, offset },
        'topic created',
      );
    }
    for (const topic of delta.topicsDeleted) {
      this.logger.info({ topic: topic.name, offset }, 'topic deleted');
    }
    for (const brokerId of delta.fencedBrokers) {
      this.logger.info({ broker: brokerId, offset }, 'broker fenced');
    }
    for (const brokerId of delta.unfencedBrokers) {
      this.logger.info({ broker: brokerId, offset }, 'broker unfenced');
    }
    const changes = delta.leadershipChangesFor(this.brokerId);
    const topicName = (topicId: string): string =>
      delta.image.topicById(topicId)?.name ?? delta.previous.topicById(topicId)?.name ?? topicId;
    for (const partition of changes.leader) {
      this.logger.info(
        {
          topic: topicName(partition.topicId),
          partition: partition.partitionId,
          leaderEpoch: partition.leaderEpoch,
          isr: partition.isr,
        },
        'became leader',
      );
    }
    for (const partition of changes.follower) {
      this.logger.info(
        {
          topic: topicName(partition.topicId),
          partition: partition.partitionId,
          leader: partition.leader,
          leaderEpoch: partition.leaderEpoch,
        },
        'became follower',
      );
    }
    for (const { partition, deleted } of changes.stopped) {
      this.logger.info(
        { topic: topicName(partition.topicId), partition: partition.partitionId, deleted },
        'stopped replica',
      );
    }
  }
}
