// The deterministic simulator itself: its PRNG, its linearizability checker, determinism,
// liveness, failure reports, and that its checks catch deliberately broken drivers.

import { describe, expect, it } from 'vitest';
import {
  EXCEPTION,
  type HistoryEntry,
  Prng,
  type SimOptions,
  SimulationFailure,
  checkLinearizability,
  runSimulation,
  sweepOptions,
} from '../src/sim/index.js';

describe('Prng', () => {
  it('replays a seed and gives neighbouring seeds unrelated streams', () => {
    const a = new Prng(7);
    const b = new Prng(7);
    const c = new Prng(8);
    const first = Array.from({ length: 100 }, () => a.nextUint32());
    expect(Array.from({ length: 100 }, () => b.nextUint32())).toEqual(first);
    expect(Array.from({ length: 100 }, () => c.nextUint32())).not.toEqual(first);
  });

  it('draws within its bounds', () => {
    const prng = new Prng(1);
    for (let i = 0; i < 10_000; i++) {
      const x = prng.next();
      expect(x >= 0 && x < 1).toBe(true);
      const n = prng.between(3, 5);
      expect(n >= 3 && n <= 5).toBe(true);
    }
  });
});

/** One register operation in a hand-written history. */
function op(
  client: number,
  invokeMs: number,
  completeMs: number,
  kind: HistoryEntry['op'],
  output: HistoryEntry['output'],
): HistoryEntry {
  return { client, seq: invokeMs, key: 0, op: kind, invokeMs, completeMs, output };
}

describe('linearizability checker', () => {
  it('accepts overlapping operations that can be ordered', () => {
    const history = [
      op(1, 0, 10, { kind: 'put', value: 1 }, null),
      op(2, 5, 15, { kind: 'get' }, 1),
      op(3, 5, 15, { kind: 'get' }, 0), // overlaps the put: may read before it
      op(1, 20, 30, { kind: 'cas', expected: 1, value: 2 }, true),
      op(2, 31, 40, { kind: 'get' }, 2),
    ];
    expect(checkLinearizability(history).ok).toBe(true);
  });

  it('rejects a read of a value overwritten before the read began', () => {
    const history = [
      op(1, 0, 10, { kind: 'put', value: 1 }, null),
      op(1, 11, 20, { kind: 'put', value: 2 }, null),
      op(2, 21, 30, { kind: 'get' }, 1),
    ];
    const result = checkLinearizability(history);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.explanation).toContain('key 0');
  });

  it('rejects a compare-and-set that failed although the value matched', () => {
    const history = [
      op(1, 0, 10, { kind: 'put', value: 1 }, null),
      op(2, 20, 30, { kind: 'cas', expected: 1, value: 5 }, false),
    ];
    expect(checkLinearizability(history).ok).toBe(false);
  });

  it('lets an operation with an unknown outcome take effect, or not', () => {
    const unknownPut = op(1, 0, Number.POSITIVE_INFINITY, { kind: 'put', value: 9 }, undefined);
    const tookEffect = [unknownPut, op(2, 50, 60, { kind: 'get' }, 9)];
    const didNot = [unknownPut, op(2, 50, 60, { kind: 'get' }, 0)];
    const both = [...tookEffect, op(2, 70, 80, { kind: 'get' }, 0)];
    expect(checkLinearizability(tookEffect).ok).toBe(true);
    expect(checkLinearizability(didNot).ok).toBe(true);
    expect(checkLinearizability(both).ok).toBe(false); // once seen, it cannot be undone
  });
});

describe('simulator', () => {
  it('replays a seed exactly: the same trace fingerprint twice, traced or not', () => {
    const options = sweepOptions(42);
    const lines: string[] = [];
    const first = runSimulation(options);
    const second = runSimulation({ ...options, trace: (line) => lines.push(line) });
    expect(second.fingerprint).toBe(first.fingerprint);
    expect(second.stats).toEqual(first.stats);
    expect(lines.length).toBeGreaterThan(1000);
    expect(runSimulation(sweepOptions(43)).fingerprint).not.toBe(first.fingerprint);
  });

  it('traces ticks, sends, drops, partitions, crashes, role changes and commits', () => {
    const lines: string[] = [];
    runSimulation({ ...sweepOptions(3), trace: (line) => lines.push(line) });
    const text = lines.join('\n');
    for (const expected of [
      /\[ *\d+ms tick +\d+\] send n\d→n\d/,
      /DROP /,
      /PARTITION /,
      /CRASH/,
      /RESTART/,
      /is LEADER in term \d+/,
      /commit \d+ → \d+/,
    ]) {
      expect(text).toMatch(expected);
    }
  });

  it('liveness: once faults stop, a leader commits a proposal within the bound', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const { stats, options } = runSimulation(sweepOptions(seed));
      expect(stats.livenessTicks).toBeGreaterThanOrEqual(0);
      expect(stats.livenessTicks).toBeLessThanOrEqual(options.livenessTicks);
    }
  });

  it('without faults, every client operation completes and the cluster commits them', () => {
    for (const nodes of [3, 5]) {
      const { stats } = runSimulation({ seed: 5, nodes, faults: 'none' });
      expect(stats.opsAmbiguous).toBe(0);
      expect(stats.opsCompleted).toBeGreaterThan(100);
      expect(stats.committedIndex).toBeGreaterThanOrEqual(stats.opsCompleted / 2);
      expect(stats.livenessTicks).toBeLessThan(5);
    }
  });
});

/**
 * Runs seeds 1..maxSeeds of a (broken) configuration until one fails on a Raft invariant.
 * Exceptions are skipped: this is about which invariant notices, and the seed sweep covers them.
 */
function firstViolation(
  options: Partial<SimOptions>,
  maxSeeds = 200,
): SimulationFailure | undefined {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    try {
      runSimulation(sweepOptions(seed, options));
    } catch (error) {
      if (!(error instanceof SimulationFailure)) throw error;
      if (error.invariant !== EXCEPTION) return error;
    }
  }
  return undefined;
}

const END_TO_END = [
  'Election Safety (§5.2)',
  'Log Matching (§5.3)',
  'committed entries are final (§5.4)',
  'Leader Completeness (§5.4)',
  'State Machine Safety (§5.4.3)',
  'linearizability',
];

describe('the checks bite: deliberately broken drivers are caught', () => {
  it('a node that forgets its vote on restart', () => {
    const failure = firstViolation({ variant: 'forgetVote', faults: 'elections' });
    expect(failure?.invariant).toBe('one vote per term (§5.2)');
    expect(failure?.message).toMatch(/n\d voted for n\d and then for n\d in term \d+/);
  });

  it('a node that forgets its vote, with only the end-to-end invariants', () => {
    const failure = firstViolation({
      variant: 'forgetVote',
      faults: 'elections',
      localRules: false,
    });
    expect(END_TO_END).toContain(failure?.invariant);
  });

  it('a driver that sends before it persists', () => {
    const failure = firstViolation({ variant: 'sendBeforePersist', faults: 'elections' });
    expect(failure?.invariant).toMatch(/persist before (answering|acknowledging)/);
  });

  it('a driver that sends before it persists, with only the end-to-end invariants', () => {
    const failure = firstViolation({
      variant: 'sendBeforePersist',
      faults: 'elections',
      localRules: false,
    });
    expect(END_TO_END).toContain(failure?.invariant);
  });

  it('nodes that answer reads from their own state (stale reads)', () => {
    const failure = firstViolation({ variant: 'staleReads' });
    expect(failure?.invariant).toBe('linearizability');
  });

  it('a failure names the seed and the exact command that replays it', () => {
    const failure = firstViolation({ variant: 'forgetVote', faults: 'elections' })!;
    const { seed, nodes, ticks } = failure.options;
    expect(failure.message).toContain(`seed ${seed}, ${nodes} nodes`);
    expect(failure.replayCommand).toBe(
      `pnpm sim --seed ${seed} --nodes ${nodes} --ticks ${ticks} --faults elections --variant forgetVote --trace`,
    );
    // Replaying gives the same failure at the same moment.
    expect(() => runSimulation(failure.options)).toThrow(failure.message);
  });
});
