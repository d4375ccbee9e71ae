import { MetadataImage, type MetadataRecord, metadataRecord } from '@weir/metadata';
import { ErrorCode, WeirError } from '@weir/protocol';
import { describe, expect, it } from 'vitest';
import type { AssignableBroker } from './replica-assignment.js';
import {
  type AlterConfigOp,
  newPartitionRecords,
  newTopicRecords,
  removeTopicRecord,
  topicConfigRecords,
} from './topic-changes.js';

const BROKERS: AssignableBroker[] = [{ id: 1 }, { id: 2 }, { id: 3 }];

function registerBroker(brokerId: number): MetadataRecord {
  return metadataRecord({
    $case: 'registerBroker',
    value: {
      brokerId,
      incarnationId: `incarnation-${brokerId}`,
      brokerEpoch: 0n,
      endpoints: [],
      rack: undefined,
      fenced: false,
      inControlledShutdown: false,
    },
  });
}

/** Three brokers and topic 'orders' (3 partitions, RF 2, retention.ms = 1000). */
function ordersImage(): MetadataImage {
  const brokers = MetadataImage.EMPTY.apply(
    BROKERS.map(({ id }) => registerBroker(id)),
    0n,
  );
  const records = newTopicRecords(
    { name: 'orders', partitions: 3, replicationFactor: 2, configs: { 'retention.ms': '1000' } },
    'id-orders',
    BROKERS,
    0,
  );
  return brokers.image.apply(records, 1n).image;
}

function errorOf(run: () => unknown): WeirError {
  try {
    run();
  } catch (error) {
    if (error instanceof WeirError) return error;
    throw error;
  }
  throw new Error('expected a WeirError');
}

describe('newTopicRecords', () => {
  it('writes the Topic, then its Partitions with every replica in the ISR, then its Configs', () => {
    const records = newTopicRecords(
      { name: 'orders', partitions: 2, replicationFactor: 2, configs: { 'retention.ms': '1' } },
      'id-orders',
      BROKERS,
      0,
    );
    expect(records.map((r) => r.record?.$case)).toEqual([
      'topic',
      'partition',
      'partition',
      'config',
    ]);
    for (const record of records) {
      if (record.record?.$case !== 'partition') continue;
      const { replicas, isr, leader } = record.record.value;
      expect(isr).toEqual(replicas);
      expect(leader).toBe(replicas[0]);
    }
  });
});

describe('newPartitionRecords', () => {
  it('numbers new partitions after the existing ones, with the same replication factor', () => {
    const records = newPartitionRecords(ordersImage(), 'orders', 5, BROKERS);
    const partitions = records.map((record) => {
      if (record.record?.$case !== 'partition') throw new Error('expected a Partition record');
      return record.record.value;
    });
    expect(partitions.map((p) => p.partitionId)).toEqual([3, 4]);
    expect(partitions.every((p) => p.replicas.length === 2 && p.leaderEpoch === 0)).toBe(true);
  });

  it('refuses a count that is not larger than the current one, or not an integer', () => {
    const image = ordersImage();
    for (const count of [3, 2, 3.5]) {
      const error = errorOf(() => newPartitionRecords(image, 'orders', count, BROKERS));
      expect(error.code).toBe(ErrorCode.INVALID_PARTITIONS);
      expect(error.message).toContain('has 3 partitions');
    }
    expect(errorOf(() => newPartitionRecords(image, 'nope', 4, BROKERS)).code).toBe(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    );
  });
});

describe('topicConfigRecords', () => {
  it('writes one Config record per value that changes; a delete has no value', () => {
    const records = topicConfigRecords(ordersImage(), 'orders', [
      { name: 'retention.ms', op: 'delete' },
      { name: 'cleanup.policy', op: 'set', value: 'compact' },
      { name: 'segment.ms', op: 'delete' },
    ]);
    expect(records.map((r) => r.record?.value)).toEqual([
      expect.objectContaining({ name: 'retention.ms', value: undefined }),
      expect.objectContaining({ name: 'cleanup.policy', value: 'compact' }),
    ]);
  });

  it('refuses an operation it does not know rather than guessing', () => {
    const append = { name: 'cleanup.policy', op: 'append', value: 'compact' };
    const error = errorOf(() =>
      topicConfigRecords(ordersImage(), 'orders', [append as unknown as AlterConfigOp]),
    );
    expect(error.code).toBe(ErrorCode.INVALID_REQUEST);
    expect(error.message).toContain("unknown config operation 'append'");
  });
});

describe('removeTopicRecord', () => {
  it('names the topic id, and refuses an unknown topic', () => {
    expect(removeTopicRecord(ordersImage(), 'orders').record).toEqual({
      $case: 'removeTopic',
      value: { topicId: 'id-orders' },
    });
    expect(errorOf(() => removeTopicRecord(ordersImage(), 'nope')).code).toBe(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    );
  });
});
