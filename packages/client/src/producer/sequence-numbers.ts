// The idempotent producer's sequence numbers (KIP-98): each partition's batches carry
// consecutive sequences, the first record of a batch in `baseSequence`, so that the broker can
// drop a retried duplicate and refuse a gap. Sequences are int32 and wrap from 2^31 - 1 to 0,
// as Kafka's `DefaultRecordBatch.incrementSequence` does; a broker compares them the same way.

import { assert } from '@weir/protocol';
import { topicPartitionKey } from './topic-partition.js';

export const MAX_SEQUENCE = 0x7fffffff;

/** Kafka's `DefaultRecordBatch.incrementSequence`: `sequence + increment`, wrapping past 2^31 - 1. */
export function incrementSequence(sequence: number, increment: number): number {
  assert(
    Number.isInteger(sequence) && sequence >= 0 && sequence <= MAX_SEQUENCE,
    () => `sequence ${sequence} is not in [0, ${MAX_SEQUENCE}]`,
  );
  assert(
    Number.isInteger(increment) && increment >= 0 && increment <= MAX_SEQUENCE,
    () => `sequence increment ${increment} is not in [0, ${MAX_SEQUENCE}]`,
  );
  if (sequence > MAX_SEQUENCE - increment) return increment - (MAX_SEQUENCE - sequence) - 1;
  return sequence + increment;
}

/** The next sequence of each partition this producer writes to; 0 for a partition not seen. */
export class SequenceNumbers {
  private readonly nextByPartition = new Map<string, number>();

  /** The sequence the partition's next batch will start at. */
  next(topic: string, partition: number): number {
    return this.nextByPartition.get(topicPartitionKey(topic, partition)) ?? 0;
  }

  /** Hands out `recordCount` consecutive sequences to a batch; returns its base sequence. */
  take(topic: string, partition: number, recordCount: number): number {
    assert(
      Number.isInteger(recordCount) && recordCount > 0,
      () => `a batch for ${topic}-${partition} needs at least one record, got ${recordCount}`,
    );
    const base = this.next(topic, partition);
    this.nextByPartition.set(
      topicPartitionKey(topic, partition),
      incrementSequence(base, recordCount),
    );
    return base;
  }

  /** Starts the partition over at 0, as after a new producer id or epoch (KIP-360). */
  resetPartition(topic: string, partition: number): void {
    this.nextByPartition.delete(topicPartitionKey(topic, partition));
  }

  /** Starts every partition over at 0. */
  reset(): void {
    this.nextByPartition.clear();
  }
}
