import { ErrorCode, WeirError } from '@weir/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BrokerRegistration } from '@weir/metadata';
import {
  type AssignableBroker,
  assignReplicas,
  assignableBrokers,
  brokerLoad,
} from './replica-assignment.js';

function brokers(count: number, racks = 0): AssignableBroker[] {
  return Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    ...(racks > 0 ? { rack: `rack-${i % racks}` } : {}),
  }));
}

function counts(ids: number[], brokerIds: number[]): number[] {
  return brokerIds.map((id) => ids.filter((x) => x === id).length);
}

function spread(values: number[]): number {
  return Math.max(...values) - Math.min(...values);
}

function expectThrowCode(run: () => unknown, code: ErrorCode, message: RegExp): void {
  expect(run).toThrow(message);
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).code).toBe(code);
  }
}

describe('assignReplicas', () => {
  it('spreads 12 partitions RF 3 over 3 brokers: each holds 12 replicas and leads exactly 4 (M3 acceptance)', () => {
    const assignment = assignReplicas({
      brokers: brokers(3),
      partitions: 12,
      replicationFactor: 3,
    });
    expect(assignment).toHaveLength(12);
    for (const replicas of assignment) expect(new Set(replicas).size).toBe(3);
    expect(counts(assignment.flat(), [1, 2, 3])).toEqual([12, 12, 12]);
    expect(
      counts(
        assignment.map((replicas) => replicas[0]!),
        [1, 2, 3],
      ),
    ).toEqual([4, 4, 4]);
  });

  it('follows Kafka for the default start: leaders round-robin, followers shift each round', () => {
    const assignment = assignReplicas({
      brokers: brokers(5),
      partitions: 10,
      replicationFactor: 3,
    });
    expect(assignment.slice(0, 6)).toEqual([
      [1, 2, 3],
      [2, 3, 4],
      [3, 4, 5],
      [4, 5, 1],
      [5, 1, 2],
      [1, 3, 4],
    ]);
  });

  it('is deterministic and independent of the order brokers are given in', () => {
    const request = { partitions: 7, replicationFactor: 2 };
    const a = assignReplicas({ ...request, brokers: brokers(4, 2) });
    const b = assignReplicas({ ...request, brokers: brokers(4, 2).reverse() });
    expect(a).toEqual(b);
  });

  it('places replicas of a partition on different racks (rack-alternating list)', () => {
    const assignment = assignReplicas({
      brokers: brokers(6, 3),
      partitions: 6,
      replicationFactor: 3,
    });
    const rackOf = (id: number) => (id - 1) % 3;
    for (const replicas of assignment) expect(new Set(replicas.map(rackOf)).size).toBe(3);
  });

  it('honours an injected startIndex and replicaShift', () => {
    const assignment = assignReplicas({
      brokers: brokers(3),
      partitions: 2,
      replicationFactor: 2,
      startIndex: 2,
      replicaShift: 1,
    });
    expect(assignment).toEqual([
      [3, 2],
      [1, 3],
    ]);
  });

  it('rejects a replication factor below 1', () => {
    expectThrowCode(
      () => assignReplicas({ brokers: brokers(3), partitions: 1, replicationFactor: 0 }),
      ErrorCode.INVALID_REPLICATION_FACTOR,
      /replication factor must be an integer of at least 1, got 0/,
    );
  });

  it('rejects a replication factor above the live brokers, naming both numbers', () => {
    expectThrowCode(
      () => assignReplicas({ brokers: brokers(3), partitions: 1, replicationFactor: 4 }),
      ErrorCode.INVALID_REPLICATION_FACTOR,
      /replication factor 4 .* 3 live brokers/,
    );
  });

  it('rejects fewer than one partition', () => {
    expectThrowCode(
      () => assignReplicas({ brokers: brokers(3), partitions: 0, replicationFactor: 1 }),
      ErrorCode.INVALID_PARTITIONS,
      /at least 1, got 0/,
    );
  });

  it('keeps the balance when partitions are added to a topic', () => {
    const all = brokers(3);
    const first = assignReplicas({ brokers: all, partitions: 4, replicationFactor: 2 });
    const added = assignReplicas({
      brokers: all,
      partitions: 2,
      replicationFactor: 2,
      startPartition: 4,
      existing: brokerLoad(first),
    });
    const total = [...first, ...added];
    expect(
      counts(
        total.map((replicas) => replicas[0]!),
        [1, 2, 3],
      ),
    ).toEqual([2, 2, 2]);
    expect(counts(total.flat(), [1, 2, 3])).toEqual([4, 4, 4]);
  });
});

describe('assignableBrokers', () => {
  it('keeps registered brokers that are neither fenced nor shutting down', () => {
    const registration = (brokerId: number, state: Partial<BrokerRegistration>) => ({
      brokerId,
      incarnationId: `incarnation-${brokerId}`,
      brokerEpoch: BigInt(brokerId),
      endpoints: [],
      rack: `rack-${brokerId}`,
      fenced: false,
      inControlledShutdown: false,
      ...state,
    });
    expect(
      assignableBrokers([
        registration(1, {}),
        registration(2, { fenced: true }),
        registration(3, { inControlledShutdown: true }),
        registration(4, { rack: undefined }),
      ]),
    ).toEqual([
      { id: 1, rack: 'rack-1' },
      { id: 4, rack: undefined },
    ]);
  });
});

describe('assignReplicas properties', () => {
  const request = fc
    .record({
      brokerCount: fc.integer({ min: 1, max: 12 }),
      partitions: fc.integer({ min: 1, max: 60 }),
      rf: fc.integer({ min: 1, max: 12 }),
      startIndex: fc.nat({ max: 100 }),
      replicaShift: fc.nat({ max: 100 }),
    })
    .filter(({ brokerCount, rf }) => rf <= brokerCount);

  it('places the replicas of every partition on distinct live brokers', () => {
    fc.assert(
      fc.property(request, fc.nat({ max: 4 }), ({ brokerCount, partitions, rf, ...seed }, r) => {
        const live = brokers(brokerCount, r);
        const ids = new Set(live.map((broker) => broker.id));
        for (const replicas of assignReplicas({
          brokers: live,
          partitions,
          replicationFactor: rf,
          ...seed,
        })) {
          expect(replicas).toHaveLength(rf);
          expect(new Set(replicas).size).toBe(rf);
          for (const id of replicas) expect(ids.has(id)).toBe(true);
        }
      }),
    );
  });

  it('balances replicas and preferred leaders across brokers', () => {
    fc.assert(
      fc.property(request, ({ brokerCount, partitions, rf, ...seed }) => {
        const live = brokers(brokerCount);
        const ids = live.map((broker) => broker.id);
        const assignment = assignReplicas({
          brokers: live,
          partitions,
          replicationFactor: rf,
          ...seed,
        });
        const replicaSpread = spread(counts(assignment.flat(), ids));
        const leaderSpread = spread(
          counts(
            assignment.map((replicas) => replicas[0]!),
            ids,
          ),
        );
        const bound = partitions % brokerCount === 0 ? 1 : rf;
        expect(replicaSpread).toBeLessThanOrEqual(bound);
        expect(leaderSpread).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('covers min(RF, racks) racks in every partition when racks are balanced', () => {
    const racked = fc
      .record({
        racks: fc.integer({ min: 1, max: 4 }),
        perRack: fc.integer({ min: 1, max: 4 }),
        partitions: fc.integer({ min: 1, max: 40 }),
        rf: fc.integer({ min: 1, max: 16 }),
        startIndex: fc.nat({ max: 100 }),
        replicaShift: fc.nat({ max: 100 }),
      })
      .filter(({ racks, perRack, rf }) => rf <= racks * perRack);
    fc.assert(
      fc.property(racked, ({ racks, perRack, partitions, rf, ...seed }) => {
        const live = brokers(racks * perRack, racks);
        const rackOf = new Map(live.map((broker) => [broker.id, broker.rack]));
        const assignment = assignReplicas({
          brokers: live,
          partitions,
          replicationFactor: rf,
          ...seed,
        });
        for (const replicas of assignment) {
          const covered = new Set(replicas.map((id) => rackOf.get(id)));
          expect(covered.size).toBe(Math.min(rf, racks));
        }
        const leaders = counts(
          assignment.map((replicas) => replicas[0]!),
          live.map((broker) => broker.id),
        );
        expect(spread(leaders)).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('keeps preferred leaders balanced when partitions are added', () => {
    fc.assert(
      fc.property(
        request,
        fc.integer({ min: 1, max: 30 }),
        ({ brokerCount, partitions, rf, ...seed }, more) => {
          const live = brokers(brokerCount);
          const ids = live.map((broker) => broker.id);
          const first = assignReplicas({
            brokers: live,
            partitions,
            replicationFactor: rf,
            ...seed,
          });
          const added = assignReplicas({
            brokers: live,
            partitions: more,
            replicationFactor: rf,
            startPartition: partitions,
            existing: brokerLoad(first),
          });
          const total = [...first, ...added];
          expect(
            spread(
              counts(
                total.map((replicas) => replicas[0]!),
                ids,
              ),
            ),
          ).toBeLessThanOrEqual(1);
          for (const replicas of added) expect(new Set(replicas).size).toBe(rf);
        },
      ),
    );
  });
});
