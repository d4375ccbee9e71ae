import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isWeirError } from '@weir/protocol';
import { type DelayedOperation, Purgatory, type TimerScheduler } from './purgatory.js';

/** Timers and a clock that move only when the test says so. */
class FakeTimers implements TimerScheduler {
  now = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();
  /** Ignores clearTimeout when set, like a timer whose callback was already queued. */
  leaky = false;

  setTimeout(callback: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + delayMs, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    if (!this.leaky) this.timers.delete(handle as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward, firing due timers in deadline order. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.timers]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at);
      const first = due[0];
      if (first === undefined) break;
      const [id, timer] = first;
      this.timers.delete(id);
      this.now = Math.max(this.now, timer.at);
      timer.callback();
    }
    this.now = until;
  }

  /** Fires every timer now, whatever its deadline (a scheduler that fires early). */
  fireAll(): void {
    const all = [...this.timers];
    this.timers.clear();
    for (const [, timer] of all) timer.callback();
  }
}

/** An operation that completes when `ready` is set, counting its callbacks. */
class TestOperation implements DelayedOperation {
  ready = false;
  completed = 0;
  expired = 0;
  checks = 0;
  constructor(private readonly hooks: { onComplete?: () => void; onExpire?: () => void } = {}) {}

  tryComplete(): boolean {
    this.checks++;
    return this.ready;
  }
  onComplete(): void {
    this.completed++;
    this.hooks.onComplete?.();
  }
  onExpire(): void {
    this.expired++;
    this.hooks.onExpire?.();
  }
  get finishes(): number {
    return this.completed + this.expired;
  }
}

function setup(maxWatchedOperations = 100): { purgatory: Purgatory<string>; timers: FakeTimers } {
  const timers = new FakeTimers();
  const purgatory = new Purgatory<string>({
    name: 'produce',
    maxWatchedOperations,
    clock: () => timers.now,
    scheduler: timers,
  });
  return { purgatory, timers };
}

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (error) {
    if (isWeirError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('Purgatory', () => {
  it('completes at once an operation that can complete, without watching it', () => {
    const { purgatory, timers } = setup();
    const op = new TestOperation();
    op.ready = true;
    expect(purgatory.tryCompleteElseWatch(op, ['t:0'], 1000)).toBe(true);
    expect(op.completed).toBe(1);
    expect(purgatory.watchedCount).toBe(0);
    expect(timers.pending).toBe(0);
  });

  it('wakes operations by key, not by polling', () => {
    const { purgatory } = setup();
    const a = new TestOperation();
    const b = new TestOperation();
    purgatory.tryCompleteElseWatch(a, ['t:0'], 1000);
    purgatory.tryCompleteElseWatch(b, ['t:1'], 1000);
    expect([a.checks, b.checks]).toEqual([1, 1]);
    a.ready = true;
    b.ready = true;
    expect(purgatory.checkAndComplete('t:0')).toBe(1);
    expect([a.completed, b.completed]).toEqual([1, 0]);
    expect(b.checks).toBe(1); // not looked at: its key did not change
    expect(purgatory.checkAndComplete('t:1')).toBe(1);
    expect(purgatory.checkAndComplete('t:2')).toBe(0);
    expect(purgatory.watchedCount).toBe(0);
  });

  it('keeps an operation waiting while it cannot complete', () => {
    const { purgatory } = setup();
    const op = new TestOperation();
    purgatory.tryCompleteElseWatch(op, ['t:0'], 1000);
    expect(purgatory.checkAndComplete('t:0')).toBe(0);
    expect(purgatory.checkAndComplete('t:0')).toBe(0);
    expect(op.checks).toBe(3);
    expect(purgatory.watchedOn('t:0')).toBe(1);
  });

  it('completes an operation on several keys once, and unwatches it from all of them', () => {
    const { purgatory, timers } = setup();
    const op = new TestOperation();
    purgatory.tryCompleteElseWatch(op, ['t:0', 't:1', 't:0'], 1000);
    expect(purgatory.watchedOn('t:0')).toBe(1);
    op.ready = true;
    purgatory.checkAndComplete('t:1');
    purgatory.checkAndComplete('t:0');
    expect(op.completed).toBe(1);
    expect(purgatory.watchedOn('t:0') + purgatory.watchedOn('t:1')).toBe(0);
    expect(timers.pending).toBe(0);
    timers.advance(5000);
    expect(op.expired).toBe(0);
  });

  it('expires an operation at its deadline and not before', () => {
    const { purgatory, timers } = setup();
    const op = new TestOperation();
    purgatory.tryCompleteElseWatch(op, ['t:0'], 1000);
    timers.advance(999);
    expect(op.expired).toBe(0);
    timers.advance(1);
    expect(op.expired).toBe(1);
    expect(op.completed).toBe(0);
    expect(purgatory.watchedCount).toBe(0);
    op.ready = true;
    expect(purgatory.checkAndComplete('t:0')).toBe(0);
    expect(op.finishes).toBe(1);
  });

  it('waits out the rest when the timer fires before the deadline by the clock', () => {
    const { purgatory, timers } = setup();
    const op = new TestOperation();
    purgatory.tryCompleteElseWatch(op, ['t:0'], 1000);
    timers.now = 400;
    timers.fireAll();
    expect(op.expired).toBe(0);
    timers.advance(599);
    expect(op.expired).toBe(0);
    timers.advance(1);
    expect(op.expired).toBe(1);
  });

  it('completes instead of expiring when the operation can complete at its deadline', () => {
    const { purgatory, timers } = setup();
    const op = new TestOperation();
    purgatory.tryCompleteElseWatch(op, ['t:0'], 1000);
    op.ready = true; // no wake-up arrived
    timers.advance(1000);
    expect([op.completed, op.expired]).toEqual([1, 0]);
  });

  it('finishes exactly once when a wake-up and the expiry race (timer already queued)', () => {
    const { purgatory, timers } = setup();
    timers.leaky = true;
    const op = new TestOperation();
    purgatory.tryCompleteElseWatch(op, ['t:0'], 1000);
    op.ready = true;
    purgatory.checkAndComplete('t:0');
    timers.advance(1000); // the cleared timer fires anyway
    expect([op.completed, op.expired]).toEqual([1, 0]);

    const late = new TestOperation();
    purgatory.tryCompleteElseWatch(late, ['t:0'], 1000);
    timers.advance(1000);
    late.ready = true;
    purgatory.checkAndComplete('t:0');
    expect([late.completed, late.expired]).toEqual([0, 1]);
  });

  it('finishes exactly once when callbacks wake the same key again', () => {
    const { purgatory } = setup();
    const ops: TestOperation[] = [];
    for (let i = 0; i < 3; i++) {
      const op = new TestOperation({ onComplete: () => purgatory.checkAndComplete('t:0') });
      op.ready = true;
      ops.push(op);
    }
    for (const op of ops) {
      op.ready = false;
      purgatory.tryCompleteElseWatch(op, ['t:0'], 1000);
      op.ready = true;
    }
    expect(purgatory.checkAndComplete('t:0')).toBe(1); // the nested wake-up completed the rest
    expect(ops.map((op) => op.completed)).toEqual([1, 1, 1]);
    expect(ops.map((op) => op.checks)).toEqual([2, 2, 2]); // finished ones are not asked again
    expect(purgatory.watchedCount).toBe(0);
  });

  it('finishes exactly once under any interleaving of readiness, wake-ups, time and shutdown (property)', () => {
    type Step =
      | { kind: 'ready'; op: number }
      | { kind: 'wake'; key: number }
      | { kind: 'advance'; ms: number }
      | { kind: 'leak'; leaky: boolean }
      | { kind: 'shutdown' };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant('ready' as const), op: fc.nat({ max: 5 }) }),
      fc.record({ kind: fc.constant('wake' as const), key: fc.nat({ max: 2 }) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.nat({ max: 600 }) }),
      fc.record({ kind: fc.constant('leak' as const), leaky: fc.boolean() }),
      fc.constant({ kind: 'shutdown' as const }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 2000 }), { minLength: 6, maxLength: 6 }),
        fc.array(step, { maxLength: 40 }),
        (timeouts, steps) => {
          const { purgatory, timers } = setup();
          const ops = timeouts.map(() => new TestOperation());
          ops.forEach((op, i) => {
            purgatory.tryCompleteElseWatch(op, [`t:${i % 3}`, `t:${(i + 1) % 3}`], timeouts[i]!);
          });
          let shutDown = false;
          for (const s of steps) {
            if (s.kind === 'ready') ops[s.op]!.ready = true;
            else if (s.kind === 'wake') purgatory.checkAndComplete(`t:${s.key}`);
            else if (s.kind === 'advance') timers.advance(s.ms);
            else if (s.kind === 'leak') timers.leaky = s.leaky;
            else {
              purgatory.shutdown();
              shutDown = true;
            }
            for (const op of ops) expect(op.finishes).toBeLessThanOrEqual(1);
          }
          timers.advance(10_000);
          for (const [i, op] of ops.entries()) {
            expect(op.finishes).toBe(1);
            // Expired only once its deadline passed, unless the purgatory was shut down.
            if (op.expired === 1 && !shutDown)
              expect(timers.now).toBeGreaterThanOrEqual(timeouts[i]!);
          }
          expect(purgatory.watchedCount).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses operations beyond maxWatchedOperations with REQUEST_TIMED_OUT', () => {
    const { purgatory } = setup(2);
    const a = new TestOperation();
    purgatory.tryCompleteElseWatch(a, ['t:0'], 1000);
    purgatory.tryCompleteElseWatch(new TestOperation(), ['t:0'], 1000);
    const refused = new TestOperation();
    expect(codeOf(() => purgatory.tryCompleteElseWatch(refused, ['t:0'], 1000))).toBe(
      ErrorCode.REQUEST_TIMED_OUT,
    );
    expect(refused.finishes).toBe(0);
    expect(purgatory.watchedCount).toBe(2);
    // One that can complete at once needs no room.
    const immediate = new TestOperation();
    immediate.ready = true;
    expect(purgatory.tryCompleteElseWatch(immediate, ['t:0'], 1000)).toBe(true);
    // Room frees up as operations finish.
    a.ready = true;
    purgatory.checkAndComplete('t:0');
    expect(purgatory.tryCompleteElseWatch(new TestOperation(), ['t:0'], 1000)).toBe(false);
  });

  it('expires everything at shutdown and refuses operations after it', () => {
    const { purgatory, timers } = setup();
    const ops = [new TestOperation(), new TestOperation()];
    purgatory.tryCompleteElseWatch(ops[0]!, ['t:0'], 1000);
    purgatory.tryCompleteElseWatch(ops[1]!, ['t:1'], 1000);
    purgatory.shutdown();
    expect(ops.map((op) => op.expired)).toEqual([1, 1]);
    expect(timers.pending).toBe(0);
    expect(purgatory.watchedCount).toBe(0);
    expect(codeOf(() => purgatory.tryCompleteElseWatch(new TestOperation(), ['t:0'], 10))).toBe(
      ErrorCode.REQUEST_TIMED_OUT,
    );
    purgatory.shutdown();
    expect(ops.map((op) => op.expired)).toEqual([1, 1]);
  });

  it('visits every operation of a key even when a callback throws, then rethrows', () => {
    const { purgatory } = setup();
    const failing = new TestOperation({
      onComplete: () => {
        throw new Error('boom');
      },
    });
    const other = new TestOperation();
    purgatory.tryCompleteElseWatch(failing, ['t:0'], 1000);
    purgatory.tryCompleteElseWatch(other, ['t:0'], 1000);
    failing.ready = true;
    other.ready = true;
    expect(() => purgatory.checkAndComplete('t:0')).toThrow('boom');
    expect([failing.completed, other.completed]).toEqual([1, 1]);
    expect(purgatory.watchedCount).toBe(0);
  });

  it('asserts its arguments and validates its configuration', () => {
    const { purgatory } = setup();
    expect(codeOf(() => purgatory.tryCompleteElseWatch(new TestOperation(), [], 10))).toBe(
      ErrorCode.ILLEGAL_STATE,
    );
    expect(codeOf(() => purgatory.tryCompleteElseWatch(new TestOperation(), ['k'], -1))).toBe(
      ErrorCode.ILLEGAL_STATE,
    );
    expect(codeOf(() => new Purgatory({ name: 'fetch', maxWatchedOperations: 0 }))).toBe(
      ErrorCode.INVALID_CONFIG,
    );
  });

  it("uses Node's timers by default", async () => {
    const purgatory = new Purgatory<string>({ name: 'fetch', maxWatchedOperations: 10 });
    const expired = new Promise<void>((resolve) => {
      purgatory.tryCompleteElseWatch(
        { tryComplete: () => false, onComplete: () => undefined, onExpire: resolve },
        ['t:0'],
        5,
      );
    });
    await expired;
    expect(purgatory.watchedCount).toBe(0);
  });
});
