import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isWeirError } from '@weir/protocol';
import { LeaderState, type LeaderStateOptions, UNKNOWN_OFFSET } from './leader-state.js';

const LAG_MS = 10_000;

/** A leader (broker 1) with followers 2 and 3, all in the ISR, and a clock the test moves. */
function setup(overrides: Partial<LeaderStateOptions> = {}): {
  state: LeaderState;
  clock: { now: number };
} {
  const clock = { now: 1_000_000 };
  const state = new LeaderState({
    topicId: 'topic-a',
    partitionId: 0,
    replicas: [1, 2, 3],
    isr: [1, 2, 3],
    leaderId: 1,
    leaderEpoch: 5,
    partitionEpoch: 7,
    logEndOffset: 0n,
    highWatermark: 0n,
    clock: () => clock.now,
    replicaLagTimeMaxMs: LAG_MS,
    ...overrides,
  });
  return { state, clock };
}

function expectWeirError(fn: () => unknown, code: ErrorCode): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(isWeirError(thrown, code), String(thrown)).toBe(true);
}

describe('LeaderState construction', () => {
  it('asserts ISR ⊆ replicas, leader ∈ ISR and HW ≤ LEO', () => {
    expectWeirError(() => setup({ isr: [1, 4] }), ErrorCode.ILLEGAL_STATE);
    expectWeirError(() => setup({ isr: [2, 3] }), ErrorCode.ILLEGAL_STATE);
    expectWeirError(() => setup({ isr: [1, 1] }), ErrorCode.ILLEGAL_STATE);
    expectWeirError(() => setup({ highWatermark: 5n, logEndOffset: 4n }), ErrorCode.ILLEGAL_STATE);
  });

  it('refuses a replicaLagTimeMaxMs that is not a positive duration', () => {
    expectWeirError(() => setup({ replicaLagTimeMaxMs: 0 }), ErrorCode.INVALID_CONFIG);
    expectWeirError(() => setup({ replicaLagTimeMaxMs: Number.NaN }), ErrorCode.INVALID_CONFIG);
  });

  it('starts followers at an unknown offset and the epoch at the log end', () => {
    const { state } = setup({ logEndOffset: 42n, highWatermark: 40n });
    expect(state.follower(2)?.logEndOffset).toBe(UNKNOWN_OFFSET);
    expect(state.leaderEpochStartOffset).toBe(42n);
    expect(state.follower(1)).toBeUndefined();
  });
});

describe('high watermark', () => {
  it('is the smallest LEO over the ISR, leader included', () => {
    const { state } = setup();
    state.updateLeaderLogEndOffset(10n);
    expect(state.maybeAdvanceHighWatermark()).toBeUndefined(); // followers not heard from yet
    state.updateFollowerFetch(2, 10n);
    expect(state.maybeAdvanceHighWatermark()).toBeUndefined();
    state.updateFollowerFetch(3, 4n);
    expect(state.maybeAdvanceHighWatermark()).toBe(4n);
    state.updateFollowerFetch(3, 10n);
    expect(state.maybeAdvanceHighWatermark()).toBe(10n);
    expect(state.highWatermark).toBe(10n);
  });

  it('follows the leader alone when the ISR is only the leader', () => {
    const { state } = setup({ isr: [1] });
    state.updateLeaderLogEndOffset(3n);
    expect(state.maybeAdvanceHighWatermark()).toBe(3n);
  });

  it('does not wait for replicas outside the ISR', () => {
    const { state } = setup({ isr: [1, 2] });
    state.updateLeaderLogEndOffset(8n);
    state.updateFollowerFetch(2, 8n);
    expect(state.maybeAdvanceHighWatermark()).toBe(8n);
  });

  it('never goes backwards, even when a follower fetches from lower down', () => {
    const { state } = setup({ isr: [1, 2] });
    state.updateLeaderLogEndOffset(8n);
    state.updateFollowerFetch(2, 8n);
    state.maybeAdvanceHighWatermark();
    state.updateFollowerFetch(2, 3n);
    expect(state.maybeAdvanceHighWatermark()).toBeUndefined();
    expect(state.highWatermark).toBe(8n);
  });

  it('asserts that the leader LEO only grows', () => {
    const { state } = setup();
    state.updateLeaderLogEndOffset(5n);
    expectWeirError(() => state.updateLeaderLogEndOffset(4n), ErrorCode.ILLEGAL_STATE);
  });

  it('advances under any order of follower fetches and ISR changes, never backwards (property)', () => {
    type Command =
      | { kind: 'append'; records: number }
      | { kind: 'fetch'; follower: number; fraction: number }
      | { kind: 'tick'; ms: number }
      | { kind: 'shrink' }
      | { kind: 'expand' }
      | { kind: 'commit' }
      | { kind: 'abort' };
    const command: fc.Arbitrary<Command> = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), records: fc.integer({ min: 0, max: 5 }) }),
      fc.record({
        kind: fc.constant('fetch' as const),
        follower: fc.constantFrom(2, 3, 4),
        fraction: fc.double({ min: 0, max: 1, noNaN: true }),
      }),
      fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: LAG_MS }) }),
      fc.constant({ kind: 'shrink' as const }),
      fc.constant({ kind: 'expand' as const }),
      fc.constant({ kind: 'commit' as const }),
      fc.constant({ kind: 'abort' as const }),
    );

    const run = (commands: Command[], monotonicFollowers: boolean): void => {
      const { state, clock } = setup({ replicas: [1, 2, 3, 4], isr: [1, 2, 3] });
      const initialHighWatermark = state.highWatermark;
      for (const cmd of commands) {
        switch (cmd.kind) {
          case 'append':
            state.updateLeaderLogEndOffset(state.logEndOffset + BigInt(cmd.records));
            break;
          case 'fetch': {
            const known = state.follower(cmd.follower)!.logEndOffset;
            const low = monotonicFollowers && known > 0n ? known : 0n;
            const span = Number(state.logEndOffset - low);
            state.updateFollowerFetch(cmd.follower, low + BigInt(Math.round(span * cmd.fraction)));
            break;
          }
          case 'tick':
            clock.now += cmd.ms;
            break;
          case 'shrink':
            state.maybeShrinkIsr();
            break;
          case 'expand':
            state.maybeExpandIsr();
            break;
          case 'commit': {
            const pending = state.pendingIsr;
            if (pending === undefined) break;
            const change = state.applyPartitionState({
              isr: pending,
              leaderEpoch: state.leaderEpoch,
              partitionEpoch: state.partitionEpoch + 1,
            });
            expect(change).toBe('applied');
            break;
          }
          case 'abort':
            state.abortIsrChange();
            break;
        }

        const before = state.highWatermark;
        const expected = state.maximalIsr
          .map((id) => (id === 1 ? state.logEndOffset : state.follower(id)!.logEndOffset))
          .reduce((a, b) => (b < a ? b : a));
        const advanced = state.maybeAdvanceHighWatermark();
        if (expected > before) expect(advanced).toBe(expected);
        else expect(advanced).toBeUndefined();
        expect(state.highWatermark >= before).toBe(true);
        expect(state.highWatermark <= state.logEndOffset).toBe(true);
        expect(state.isr).toContain(1);
        expect(state.maximalIsr).toEqual(expect.arrayContaining([...state.isr]));
        if (monotonicFollowers && state.highWatermark !== initialHighWatermark) {
          // acks=all safety: what is below the HW is on every committed ISR member.
          for (const id of state.isr) {
            if (id === 1) continue;
            expect(state.follower(id)!.logEndOffset >= state.highWatermark).toBe(true);
          }
        }
      }
      // Once every maximal-ISR follower has caught up, the HW reaches the leader's LEO.
      for (const id of state.maximalIsr)
        if (id !== 1) state.updateFollowerFetch(id, state.logEndOffset);
      state.maybeAdvanceHighWatermark();
      expect(state.highWatermark).toBe(state.logEndOffset);
    };

    fc.assert(
      fc.property(fc.array(command, { maxLength: 80 }), fc.boolean(), (commands, monotonic) =>
        run(commands, monotonic),
      ),
      { numRuns: 300 },
    );
  });
});

describe('ISR shrink (replicaLagTimeMaxMs)', () => {
  it('removes a follower one millisecond after replicaLagTimeMaxMs without catching up', () => {
    const { state, clock } = setup();
    state.updateLeaderLogEndOffset(10n);
    state.updateFollowerFetch(2, 10n);
    state.updateFollowerFetch(3, 10n);
    const caughtUpAt = clock.now;
    state.updateLeaderLogEndOffset(20n);
    // Follower 3 keeps fetching but never reaches the LEO of the time of its fetch.
    clock.now += 1;
    state.updateFollowerFetch(2, 20n);
    for (let t = 1; t <= LAG_MS; t += 1000) {
      clock.now = caughtUpAt + t;
      state.updateFollowerFetch(2, 20n);
      expect(state.outOfSyncReplicas()).toEqual([]);
    }
    clock.now = caughtUpAt + LAG_MS;
    expect(state.outOfSyncReplicas()).toEqual([]);
    clock.now = caughtUpAt + LAG_MS + 1;
    expect(state.outOfSyncReplicas()).toEqual([3]);
    expect(state.outOfSyncReplicas(caughtUpAt + LAG_MS)).toEqual([]);
  });

  it('keeps a follower that is at the leader LEO however long the partition is idle', () => {
    const { state, clock } = setup();
    state.updateLeaderLogEndOffset(10n);
    state.updateFollowerFetch(2, 10n);
    state.updateFollowerFetch(3, 10n);
    clock.now += 10 * LAG_MS;
    expect(state.outOfSyncReplicas()).toEqual([]);
  });

  it("counts a follower as caught up at its previous fetch once it reaches that fetch's leader LEO", () => {
    const { state, clock } = setup({ isr: [1, 2] });
    state.updateLeaderLogEndOffset(10n);
    const start = clock.now;
    clock.now = start + 5_000;
    state.updateFollowerFetch(2, 5n); // leader LEO 10 at this fetch
    state.updateLeaderLogEndOffset(20n);
    clock.now = start + 9_000;
    state.updateFollowerFetch(2, 10n); // reached 10, not 20: caught up as of the previous fetch
    expect(state.follower(2)?.lastCaughtUpTimeMs).toBe(start + 5_000);
    clock.now = start + 5_000 + LAG_MS + 1;
    expect(state.outOfSyncReplicas()).toEqual([2]);
  });

  it('gives ISR followers of a new leader one lag window to fetch', () => {
    const { state, clock } = setup({ logEndOffset: 10n, highWatermark: 10n });
    clock.now += LAG_MS;
    expect(state.outOfSyncReplicas()).toEqual([]);
    clock.now += 1;
    expect(state.outOfSyncReplicas()).toEqual([2, 3]);
  });

  it('never names the leader', () => {
    const { state, clock } = setup({ isr: [1], logEndOffset: 5n, highWatermark: 0n });
    clock.now += 100 * LAG_MS;
    expect(state.outOfSyncReplicas()).toEqual([]);
  });

  it('proposes the shrink through maybeShrinkIsr, once while it is in flight', () => {
    const { state, clock } = setup({ logEndOffset: 10n, highWatermark: 0n });
    state.updateFollowerFetch(2, 10n);
    clock.now += LAG_MS + 1;
    expect(state.maybeShrinkIsr()).toEqual({
      topicId: 'topic-a',
      partitionId: 0,
      leaderId: 1,
      leaderEpoch: 5,
      partitionEpoch: 7,
      newIsr: [1, 2],
    });
    expect(state.maybeShrinkIsr()).toBeUndefined();
    expect(state.isr).toEqual([1, 2, 3]); // only a commit changes it
    state.abortIsrChange();
    expect(state.maybeShrinkIsr()?.newIsr).toEqual([1, 2]);
  });
});

describe('ISR expansion candidates', () => {
  it('are replicas outside the ISR whose LEO reached the HW and the leader epoch start', () => {
    const { state } = setup({ isr: [1, 2], logEndOffset: 10n, highWatermark: 10n });
    expect(state.leaderEpochStartOffset).toBe(10n);
    state.updateLeaderLogEndOffset(30n);
    state.updateFollowerFetch(2, 25n);
    state.maybeAdvanceHighWatermark();
    expect(state.highWatermark).toBe(25n);
    state.updateFollowerFetch(3, 24n);
    expect(state.catchingUpReplicas()).toEqual([]);
    state.updateFollowerFetch(3, 25n);
    expect(state.catchingUpReplicas()).toEqual([3]);
    expect(state.catchingUpReplicas((id) => id !== 3)).toEqual([]);
  });

  it('require the follower to have reached the leader epoch start offset', () => {
    const { state } = setup({
      isr: [1, 2],
      logEndOffset: 50n,
      highWatermark: 10n,
      leaderEpochStartOffset: 50n,
    });
    state.updateFollowerFetch(3, 20n);
    expect(state.catchingUpReplicas()).toEqual([]);
    state.updateFollowerFetch(3, 50n);
    expect(state.catchingUpReplicas()).toEqual([3]);
  });

  it('are proposed through maybeExpandIsr, never twice and never when ineligible', () => {
    const { state } = setup({ isr: [1], logEndOffset: 10n, highWatermark: 10n });
    state.updateFollowerFetch(2, 10n);
    state.updateFollowerFetch(3, 10n);
    expect(state.maybeExpandIsr((id) => id !== 3)?.newIsr).toEqual([1, 2]);
    expect(state.catchingUpReplicas()).toEqual([3]); // 2 is in the maximal ISR now
    expect(state.maybeExpandIsr()).toBeUndefined();
  });
});

describe('maximal ISR while an AlterPartition is in flight (KIP-497)', () => {
  it('makes the HW wait for a replica being added', () => {
    const { state } = setup({ isr: [1, 2], logEndOffset: 10n, highWatermark: 10n });
    state.updateFollowerFetch(2, 10n);
    state.updateFollowerFetch(3, 10n);
    state.proposeIsr([1, 2, 3]);
    expect(state.maximalIsr).toEqual([1, 2, 3]);
    expect(state.isrSatisfies(3)).toBe(false); // min.insync counts the committed ISR
    state.updateLeaderLogEndOffset(20n);
    state.updateFollowerFetch(2, 20n);
    expect(state.maybeAdvanceHighWatermark()).toBeUndefined();
    state.updateFollowerFetch(3, 15n);
    expect(state.maybeAdvanceHighWatermark()).toBe(15n);
  });

  it('makes the HW wait for a replica being removed until the removal is committed', () => {
    const { state, clock } = setup({ logEndOffset: 10n, highWatermark: 10n });
    state.updateLeaderLogEndOffset(20n);
    state.updateFollowerFetch(2, 20n);
    clock.now += LAG_MS + 1;
    expect(state.maybeShrinkIsr()?.newIsr).toEqual([1, 2]);
    expect(state.maximalIsr).toEqual([1, 2, 3]);
    expect(state.maybeAdvanceHighWatermark()).toBeUndefined();
    expect(state.applyPartitionState({ isr: [1, 2], leaderEpoch: 5, partitionEpoch: 8 })).toBe(
      'applied',
    );
    expect(state.hasPendingIsrChange).toBe(false);
    expect(state.maybeAdvanceHighWatermark()).toBe(20n);
  });

  it('asserts a proposal keeps the leader and stays within the replicas, one at a time', () => {
    const { state } = setup();
    expectWeirError(() => state.proposeIsr([2, 3]), ErrorCode.ILLEGAL_STATE);
    expectWeirError(() => state.proposeIsr([1, 5]), ErrorCode.ILLEGAL_STATE);
    state.proposeIsr([1, 2]);
    expectWeirError(() => state.proposeIsr([1]), ErrorCode.ILLEGAL_STATE);
  });
});

describe('applyPartitionState', () => {
  it('ignores states older than or equal to the current one', () => {
    const { state } = setup();
    expect(state.applyPartitionState({ isr: [1], leaderEpoch: 4, partitionEpoch: 9 })).toBe(
      'stale',
    );
    expect(state.applyPartitionState({ isr: [1], leaderEpoch: 5, partitionEpoch: 7 })).toBe(
      'stale',
    );
    expect(state.isr).toEqual([1, 2, 3]);
  });

  it('keeps the pending change when the answer is stale, ends it when a newer state comes', () => {
    const { state } = setup();
    state.proposeIsr([1, 2]);
    state.applyPartitionState({ isr: [1, 2, 3], leaderEpoch: 5, partitionEpoch: 6 });
    expect(state.pendingIsr).toEqual([1, 2]);
    state.applyPartitionState({ isr: [1, 3], leaderEpoch: 5, partitionEpoch: 8 });
    expect(state.pendingIsr).toBeUndefined();
    expect(state.isr).toEqual([1, 3]);
  });

  it('starts a new leader epoch at the current LEO and keeps known follower LEOs', () => {
    const { state, clock } = setup({ logEndOffset: 10n, highWatermark: 10n });
    state.updateLeaderLogEndOffset(30n);
    state.updateFollowerFetch(2, 30n);
    clock.now += 5 * LAG_MS;
    expect(state.outOfSyncReplicas()).toEqual([3]);
    const change = state.applyPartitionState({
      isr: [1, 2, 3],
      leaderEpoch: 6,
      partitionEpoch: 9,
      leader: 1,
    });
    expect(change).toBe('new-leader-epoch');
    expect(state.leaderEpoch).toBe(6);
    expect(state.leaderEpochStartOffset).toBe(30n);
    expect(state.follower(2)?.logEndOffset).toBe(30n);
    expect(state.outOfSyncReplicas()).toEqual([]); // ISR members get a fresh lag window
  });

  it('follows a reassignment: new replicas start unknown, removed ones are forgotten', () => {
    const { state } = setup({ isr: [1, 2] });
    state.updateFollowerFetch(3, 0n);
    state.applyPartitionState({
      isr: [1, 2],
      replicas: [1, 2, 4],
      leaderEpoch: 5,
      partitionEpoch: 8,
    });
    expect(state.follower(3)).toBeUndefined();
    expect(state.follower(4)?.logEndOffset).toBe(UNKNOWN_OFFSET);
    expectWeirError(() => state.updateFollowerFetch(3, 0n), ErrorCode.NOT_LEADER_OR_FOLLOWER);
  });

  it('asserts the invariants of the committed state', () => {
    const { state } = setup();
    expectWeirError(
      () => state.applyPartitionState({ isr: [2, 3], leaderEpoch: 5, partitionEpoch: 8 }),
      ErrorCode.ILLEGAL_STATE,
    );
    expectWeirError(
      () =>
        state.applyPartitionState({ isr: [1, 2], leaderEpoch: 5, partitionEpoch: 8, leader: 2 }),
      ErrorCode.ILLEGAL_STATE,
    );
    expectWeirError(
      () => state.applyPartitionState({ isr: [1, 2], leaderEpoch: 6, partitionEpoch: 7 }),
      ErrorCode.ILLEGAL_STATE,
    );
  });
});

describe('follower fetch validation', () => {
  it('refuses brokers that are not followers and offsets past the leader LEO', () => {
    const { state } = setup({ logEndOffset: 10n, highWatermark: 0n });
    expectWeirError(() => state.updateFollowerFetch(9, 0n), ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expectWeirError(() => state.updateFollowerFetch(1, 0n), ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expectWeirError(() => state.updateFollowerFetch(2, 11n), ErrorCode.OFFSET_OUT_OF_RANGE);
    expectWeirError(() => state.updateFollowerFetch(2, -1n), ErrorCode.OFFSET_OUT_OF_RANGE);
    expectWeirError(() => state.updateFollowerFetch(2, 5n, 11n), ErrorCode.ILLEGAL_STATE);
  });
});

describe('acks=all', () => {
  it('isrSatisfies compares the committed ISR with min.insync.replicas', () => {
    const { state } = setup({ isr: [1, 2] });
    expect(state.isrSatisfies(2)).toBe(true);
    expect(state.isrSatisfies(3)).toBe(false);
  });

  it('completes once the HW passes the batch, with an error if the ISR shrank meanwhile', () => {
    const { state } = setup({ isr: [1, 2] });
    state.updateLeaderLogEndOffset(5n);
    expect(state.checkEnoughReplicasReachOffset(5n, 2)).toEqual({ done: false });
    state.updateFollowerFetch(2, 5n);
    state.maybeAdvanceHighWatermark();
    expect(state.checkEnoughReplicasReachOffset(5n, 2)).toEqual({
      done: true,
      error: ErrorCode.NONE,
    });
    state.applyPartitionState({ isr: [1], leaderEpoch: 5, partitionEpoch: 8 });
    expect(state.checkEnoughReplicasReachOffset(5n, 2)).toEqual({
      done: true,
      error: ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    });
  });
});
