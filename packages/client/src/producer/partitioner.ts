// Kafka's default partitioning, so that a key lands on the same partition whether a Weir client
// or a Java/KafkaJS client produced it:
//   1. an explicit partition wins;
//   2. a keyed record goes to toPositive(murmur2(key)) % numPartitions (Kafka's
//      `BuiltInPartitioner.partitionForKey`, KafkaJS's `Partitioners.DefaultPartitioner`);
//   3. a keyless record goes to the topic's sticky partition (KIP-480): the same partition
//      until a new batch has to be started there, then another one picked at random among the
//      partitions that have a leader. Sticking fills batches instead of spreading one record
//      per partition, which is what makes keyless batching pay off.

import { ErrorCode, WeirError, assert } from '@weir/protocol';

/** The partitions of one topic as the metadata cache knows them. */
export interface TopicPartitions {
  /** All partitions of the topic, available or not: keys hash over all of them. */
  readonly numPartitions: number;
  /** The partition ids that have a leader now; keyless records go only to these. */
  readonly availablePartitions: readonly number[];
}

/** What the partitioner looks at in a record. */
export interface PartitionerInput {
  readonly topic: string;
  readonly key?: Uint8Array | string | null;
  readonly partition?: number;
}

// Kafka's `Utils.murmur2` constants: the seed, and the mixing constants `m` and `r`.
const MURMUR2_SEED = 0x9747b28c;
const MURMUR2_M = 0x5bd1e995;
const MURMUR2_R = 24;

/**
 * Kafka's `Utils.murmur2`: the 32-bit MurmurHash2 of `bytes` with Kafka's seed, as a signed
 * int32 (what the Java method returns). Math.imul gives Java's wrapping int multiplication.
 */
export function murmur2(bytes: Uint8Array): number {
  const length = bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let h = MURMUR2_SEED ^ length;
  const tail = length & ~3;
  for (let i = 0; i < tail; i += 4) {
    let k = view.getInt32(i, true);
    k = Math.imul(k, MURMUR2_M);
    k ^= k >>> MURMUR2_R;
    k = Math.imul(k, MURMUR2_M);
    h = Math.imul(h, MURMUR2_M);
    h ^= k;
  }
  const remaining = length & 3;
  if (remaining === 3) h ^= view.getUint8(tail + 2) << 16;
  if (remaining >= 2) h ^= view.getUint8(tail + 1) << 8;
  if (remaining >= 1) {
    h ^= view.getUint8(tail);
    h = Math.imul(h, MURMUR2_M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, MURMUR2_M);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's `Utils.toPositive`: clears the sign bit (not Math.abs, which overflows at -2^31). */
export function toPositive(value: number): number {
  return value & 0x7fffffff;
}

/** The partition Kafka's default partitioner gives `key` (a string is hashed as UTF-8). */
export function partitionForKey(key: Uint8Array | string, numPartitions: number): number {
  checkPartitionCount(numPartitions);
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  return toPositive(murmur2(bytes)) % numPartitions;
}

export interface StickyPartitionerOptions {
  /** A uniform random number in [0, 1), as Math.random (the default) gives. */
  readonly random?: () => number;
}

/**
 * KIP-480's sticky partition cache (Kafka's `StickyPartitionCache`): one partition per topic
 * for keyless records, changed only by `onNewBatch` for the partition that is current, so
 * that several records racing to start a batch switch the partition once, not once each.
 */
export class StickyPartitioner {
  private readonly random: () => number;
  private readonly current = new Map<string, number>();

  constructor(options: StickyPartitionerOptions = {}) {
    this.random = options.random ?? Math.random;
  }

  /** The topic's sticky partition, picked now if the topic has none yet. */
  partition(topic: string, partitions: TopicPartitions): number {
    return this.current.get(topic) ?? this.pick(topic, partitions, undefined);
  }

  /**
   * Called when a keyless record would start a new batch on `previousPartition`: its batch is
   * full or was sent. Moves the topic to another partition if `previousPartition` is still the
   * sticky one, and returns the sticky partition either way.
   */
  onNewBatch(topic: string, partitions: TopicPartitions, previousPartition: number): number {
    const current = this.current.get(topic);
    if (current !== undefined && current !== previousPartition) return current;
    return this.pick(topic, partitions, current);
  }

  private pick(topic: string, partitions: TopicPartitions, previous: number | undefined): number {
    checkPartitionCount(partitions.numPartitions);
    const available = partitions.availablePartitions;
    // Unlike Kafka's retry loop, choosing among the others directly cannot spin on a poor
    // random source, and gives the same uniform choice.
    const others = available.length > 1 ? available.filter((p) => p !== previous) : available;
    const next =
      others.length === 0
        ? this.randomBelow(partitions.numPartitions) // no leader anywhere: any partition waits
        : others[this.randomBelow(others.length)]!;
    this.current.set(topic, next);
    return next;
  }

  private randomBelow(bound: number): number {
    const r = this.random();
    assert(r >= 0 && r < 1, () => `random() returned ${r}; it must be in [0, 1)`);
    return Math.floor(r * bound);
  }
}

/**
 * The default partitioner's choice for one record: explicit partition, then key hash, then
 * sticky. `startsNewBatch(p)` says whether appending the record to partition `p` would start
 * a new batch (the accumulator's `startsNewBatch`); for a keyless record that moves the
 * sticky partition on, as Kafka's producer does with `abortOnNewBatch`.
 */
export function choosePartition(
  record: PartitionerInput,
  partitions: TopicPartitions,
  sticky: StickyPartitioner,
  startsNewBatch: (partition: number) => boolean,
): number {
  checkPartitionCount(partitions.numPartitions);
  if (record.partition !== undefined) return checkExplicitPartition(record, partitions);
  if (record.key !== undefined && record.key !== null) {
    return partitionForKey(record.key, partitions.numPartitions);
  }
  const partition = sticky.partition(record.topic, partitions);
  if (!startsNewBatch(partition)) return partition;
  return sticky.onNewBatch(record.topic, partitions, partition);
}

function checkExplicitPartition(record: PartitionerInput, partitions: TopicPartitions): number {
  const partition = record.partition!;
  if (!Number.isInteger(partition) || partition < 0) {
    throw new WeirError(
      ErrorCode.INVALID_RECORD,
      `partition must be a whole number from 0, got ${partition} for topic '${record.topic}'`,
    );
  }
  if (partition >= partitions.numPartitions) {
    // Retriable: metadata may be older than an increase of the partition count.
    throw new WeirError(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      `topic '${record.topic}' has partitions 0 to ${partitions.numPartitions - 1}; partition ${partition} does not exist`,
    );
  }
  return partition;
}

function checkPartitionCount(numPartitions: number): void {
  assert(
    Number.isInteger(numPartitions) && numPartitions > 0,
    () => `numPartitions must be a positive whole number, got ${numPartitions}`,
  );
}
