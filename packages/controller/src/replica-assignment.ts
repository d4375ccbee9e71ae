// Replica assignment for CreateTopics and CreatePartitions: pure, deterministic, no I/O.
//
// The algorithm is Kafka's `AdminUtils.assignReplicasToBrokersRackAware` (KIP-36): brokers are
// arranged in a rack-alternating list, partition p's first replica (its preferred leader) is
// broker `(startIndex + p) mod n` of that list, and each follower is found by shifting from the
// leader by `1 + (replicaShift + j) mod (n - 1)`, skipping brokers whose rack (or the broker
// itself) already holds a replica while unused racks remain. The shift grows by one after every
// n partitions so that later partitions do not repeat the (leader, follower) pairs of earlier
// ones. Brokers without a rack share one unnamed rack, so with no racks at all this is exactly
// Kafka's rack-unaware assignment.

import type { BrokerRegistration } from '@weir/metadata';
import { assert } from '@weir/protocol';
import { validatePartitionCount, validateReplicationFactor } from './topic-validation.js';

/** A live, unfenced broker that may receive replicas. */
export interface AssignableBroker {
  readonly id: number;
  readonly rack?: string | undefined;
}

/** How many replicas (and preferred leaderships) a broker already holds. */
export interface BrokerLoad {
  readonly replicas: number;
  readonly leaders: number;
}

export interface AssignReplicasRequest {
  /** Live, unfenced brokers; order does not matter (they are sorted by rack and id). */
  readonly brokers: readonly AssignableBroker[];
  readonly partitions: number;
  readonly replicationFactor: number;
  /**
   * The id of the first partition being assigned (Kafka's `startPartitionId`): 0 for a new
   * topic, the current partition count for CreatePartitions.
   */
  readonly startPartition?: number;
  /**
   * The load the topic already puts on each broker (CreatePartitions). Brokers are then
   * ordered least-loaded first so that the new partitions restore the balance. Brokers absent
   * from the map have no load; ids that are not in `brokers` are ignored.
   */
  readonly existing?: ReadonlyMap<number, BrokerLoad>;
  /**
   * Kafka's `startIndex`: the position in the arranged broker list of the first partition's
   * leader. Default 0, or, with `existing`, the least-loaded broker. Pass a random value to
   * spread several topics' leaders the way Kafka does.
   */
  readonly startIndex?: number;
  /** Kafka's `nextReplicaShift`: where the follower shift starts. Default 0. */
  readonly replicaShift?: number;
}

/**
 * Returns, per partition (in partition order from `startPartition`), the replica broker ids in
 * preference order; the first is the preferred leader.
 */
export function assignReplicas(request: AssignReplicasRequest): number[][] {
  const { brokers, partitions, replicationFactor } = request;
  validateAssignmentRequest(brokers, partitions, replicationFactor);
  const startPartition = request.startPartition ?? 0;
  const arranged = arrangeBrokers(brokers, request.existing);
  const n = arranged.length;
  const startIndex =
    request.startIndex ?? (request.existing === undefined ? 0 : mod(-startPartition, n));
  const replicaShift = request.replicaShift ?? 0;
  const racks = new Set(arranged.map((broker) => broker.rack)).size;

  const assignment: number[][] = [];
  for (let partition = startPartition; partition < startPartition + partitions; partition++) {
    const leaderIndex = mod(startIndex + partition, n);
    // Kafka bumps the shift after every n partitions; the rack multiplier keeps followers off
    // the leader's rack in the rack-alternating list.
    const shift = (replicaShift + Math.floor(partition / n)) * racks;
    assignment.push(assignPartition(arranged, leaderIndex, shift, replicationFactor, racks));
  }
  return assignment;
}

/**
 * The brokers that may receive new replicas: registered, unfenced and not shutting down
 * (a broker in controlled shutdown is about to leave; KIP-631).
 */
export function assignableBrokers(registrations: Iterable<BrokerRegistration>): AssignableBroker[] {
  const brokers: AssignableBroker[] = [];
  for (const registration of registrations) {
    if (registration.fenced || registration.inControlledShutdown) continue;
    brokers.push({ id: registration.brokerId, rack: registration.rack });
  }
  return brokers;
}

/** The per-broker load of an existing assignment, for `existing` when adding partitions. */
export function brokerLoad(assignment: readonly (readonly number[])[]): Map<number, BrokerLoad> {
  const load = new Map<number, BrokerLoad>();
  for (const replicas of assignment) {
    replicas.forEach((brokerId, position) => {
      const current = load.get(brokerId) ?? { replicas: 0, leaders: 0 };
      load.set(brokerId, {
        replicas: current.replicas + 1,
        leaders: current.leaders + (position === 0 ? 1 : 0),
      });
    });
  }
  return load;
}

function validateAssignmentRequest(
  brokers: readonly AssignableBroker[],
  partitions: number,
  replicationFactor: number,
): void {
  validatePartitionCount(partitions);
  validateReplicationFactor(replicationFactor, brokers.length);
  assert(
    new Set(brokers.map((broker) => broker.id)).size === brokers.length,
    () => `assignReplicas: duplicate broker ids in ${brokers.map((broker) => broker.id).join(',')}`,
  );
}

/** Leader first, then followers found by Kafka's shifted walk over the arranged list. */
function assignPartition(
  arranged: readonly AssignableBroker[],
  leaderIndex: number,
  shift: number,
  replicationFactor: number,
  racks: number,
): number[] {
  const n = arranged.length;
  const leader = arranged[leaderIndex]!;
  const replicas = [leader.id];
  const usedBrokers = new Set([leader.id]);
  const usedRacks = new Set([leader.rack]);
  // Every n - 1 consecutive steps visit each non-leader broker once, and the first such round
  // takes a broker from every rack still missing, so 2n steps bound the search.
  for (let step = 0; replicas.length < replicationFactor; step++) {
    assert(step < 2 * n, () => `assignReplicas: no follower found after ${step} steps`);
    const candidate = arranged[followerIndex(leaderIndex, shift, step, n)]!;
    const rackAllowed = !usedRacks.has(candidate.rack) || usedRacks.size === racks;
    if (rackAllowed && !usedBrokers.has(candidate.id)) {
      replicas.push(candidate.id);
      usedBrokers.add(candidate.id);
      usedRacks.add(candidate.rack);
    }
  }
  return replicas;
}

/** Kafka's `AdminUtils.replicaIndex`: never the leader's own index. */
function followerIndex(leaderIndex: number, shift: number, step: number, n: number): number {
  if (n === 1) return leaderIndex;
  return mod(leaderIndex + 1 + mod(shift + step, n - 1), n);
}

/**
 * Kafka's rack-alternating broker list (`getRackAlternatedBrokerList`): racks sorted, brokers
 * within a rack sorted, then one broker from each rack in turn. With `existing`, brokers sort
 * least-loaded first, and racks by their least-loaded broker.
 */
function arrangeBrokers(
  brokers: readonly AssignableBroker[],
  existing: ReadonlyMap<number, BrokerLoad> | undefined,
): AssignableBroker[] {
  const byLoad = (a: AssignableBroker, b: AssignableBroker): number => {
    const loadA = existing?.get(a.id) ?? { replicas: 0, leaders: 0 };
    const loadB = existing?.get(b.id) ?? { replicas: 0, leaders: 0 };
    return loadA.leaders - loadB.leaders || loadA.replicas - loadB.replicas || a.id - b.id;
  };
  const byRack = new Map<string | undefined, AssignableBroker[]>();
  for (const broker of [...brokers].sort(byLoad)) {
    const rack = byRack.get(broker.rack) ?? [];
    rack.push(broker);
    byRack.set(broker.rack, rack);
  }
  const racks = [...byRack.values()];
  if (existing === undefined) {
    racks.sort((a, b) => compareRacks(a[0]!.rack, b[0]!.rack));
  } else {
    racks.sort((a, b) => byLoad(a[0]!, b[0]!));
  }
  const arranged: AssignableBroker[] = [];
  for (let round = 0; arranged.length < brokers.length; round++) {
    for (const rack of racks) {
      if (round < rack.length) arranged.push(rack[round]!);
    }
  }
  return arranged;
}

function compareRacks(a: string | undefined, b: string | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return -1;
  if (b === undefined) return 1;
  return a < b ? -1 : 1;
}

function mod(value: number, divisor: number): number {
  return ((value % divisor) + divisor) % divisor;
}
