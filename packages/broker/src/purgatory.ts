// Where delayed requests wait: an acks=all produce for the high watermark to pass its batch, a
// fetch for `minBytes` to arrive. Kafka's DelayedOperationPurgatory, simply: an operation waits on
// keys (one per partition it concerns, e.g. `topicId:partition`) until a change on one of them
// lets it complete — the replica manager calls checkAndComplete(key) when a partition's high
// watermark or log end offset moves, so nothing polls — or until its timeout expires it.

import { ErrorCode, WeirError, assert } from '@weir/protocol';

/** A request waiting in a purgatory. Exactly one of onComplete and onExpire is called, once. */
export interface DelayedOperation {
  /** Whether the operation can complete now. Called at entry and on each wake-up of its keys. */
  tryComplete(): boolean;
  /** Called once tryComplete returned true: answer the request. */
  onComplete(): void;
  /** Called when the timeout passed (or the purgatory shut down) before it could complete. */
  onExpire(): void;
}

/** The timers a purgatory uses; Node's by default, a fake one in tests. */
export interface TimerScheduler {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const NODE_TIMER_SCHEDULER: TimerScheduler = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface PurgatoryOptions {
  /** For error messages and metrics, e.g. `produce` or `fetch`. */
  readonly name: string;
  /** The most operations waiting at once; more are refused with REQUEST_TIMED_OUT. */
  readonly maxWatchedOperations: number;
  /** Milliseconds; gives each operation its deadline. Date.now by default. */
  readonly clock?: () => number;
  readonly scheduler?: TimerScheduler;
}

/** An operation's place in the purgatory. `state` makes completion and expiry exclusive. */
interface Watched<K> {
  readonly operation: DelayedOperation;
  readonly keys: readonly K[];
  readonly deadlineMs: number;
  state: 'waiting' | 'completed' | 'expired';
  timer: unknown;
}

/**
 * Keys are compared as Map keys (SameValueZero): use strings or numbers, not objects built
 * per call.
 */
export class Purgatory<K> {
  readonly name: string;
  readonly maxWatchedOperations: number;
  private readonly clock: () => number;
  private readonly scheduler: TimerScheduler;
  private readonly watchersByKey = new Map<K, Set<Watched<K>>>();
  private readonly waiting = new Set<Watched<K>>();
  private isShutDown = false;

  constructor(options: PurgatoryOptions) {
    if (!Number.isSafeInteger(options.maxWatchedOperations) || options.maxWatchedOperations < 1) {
      throw new WeirError(
        ErrorCode.INVALID_CONFIG,
        `maxWatchedOperations of purgatory ${options.name} must be a positive integer, got ${options.maxWatchedOperations}`,
      );
    }
    this.name = options.name;
    this.maxWatchedOperations = options.maxWatchedOperations;
    this.clock = options.clock ?? Date.now;
    this.scheduler = options.scheduler ?? NODE_TIMER_SCHEDULER;
  }

  /** How many operations are waiting. */
  get watchedCount(): number {
    return this.waiting.size;
  }

  /** How many operations wait on `key`. */
  watchedOn(key: K): number {
    return this.watchersByKey.get(key)?.size ?? 0;
  }

  /**
   * Completes the operation now if it can (returns true: onComplete has run), else makes it wait
   * on `keys` for at most `timeoutMs` (returns false). Kafka's tryCompleteElseWatch. Throws
   * WeirError REQUEST_TIMED_OUT, calling neither callback, when `maxWatchedOperations` wait
   * already or the purgatory is shut down: the caller answers the request with that error.
   */
  tryCompleteElseWatch(
    operation: DelayedOperation,
    keys: readonly K[],
    timeoutMs: number,
  ): boolean {
    assert(keys.length > 0, () => `purgatory ${this.name}: an operation must wait on a key`);
    assert(
      Number.isFinite(timeoutMs) && timeoutMs >= 0,
      () => `purgatory ${this.name}: timeout ${timeoutMs} ms is not a duration`,
    );
    if (operation.tryComplete()) {
      operation.onComplete();
      return true;
    }
    this.refuseIfUnable();
    const watched: Watched<K> = {
      operation,
      keys: [...new Set(keys)],
      deadlineMs: this.clock() + timeoutMs,
      state: 'waiting',
      timer: undefined,
    };
    this.waiting.add(watched);
    for (const key of watched.keys) this.watchersOf(key).add(watched);
    watched.timer = this.scheduler.setTimeout(() => this.expire(watched), timeoutMs);
    return false;
  }

  /**
   * Wakes the operations waiting on `key`: each that can complete now does. Returns how many
   * completed. Operations added while it runs (by a callback) are not visited: they checked
   * themselves when they entered. An error from a callback is rethrown once every operation was
   * visited.
   */
  checkAndComplete(key: K): number {
    const watchers = this.watchersByKey.get(key);
    if (watchers === undefined) return 0;
    let completed = 0;
    const errors: unknown[] = [];
    for (const watched of [...watchers]) {
      try {
        if (this.tryCompleteWatched(watched)) completed++;
      } catch (error) {
        errors.push(error);
      }
    }
    rethrow(errors, `purgatory ${this.name}: ${errors.length} callbacks failed on a wake-up`);
    return completed;
  }

  /**
   * Expires every waiting operation (onExpire) and refuses new ones from then on. Used when the
   * broker stops or gives up the partitions the operations wait for.
   */
  shutdown(): void {
    this.isShutDown = true;
    const errors: unknown[] = [];
    for (const watched of [...this.waiting]) {
      try {
        this.finish(watched, 'expired');
      } catch (error) {
        errors.push(error);
      }
    }
    rethrow(errors, `purgatory ${this.name}: ${errors.length} callbacks failed at shutdown`);
  }

  private refuseIfUnable(): void {
    if (this.isShutDown) {
      throw new WeirError(
        ErrorCode.REQUEST_TIMED_OUT,
        `purgatory ${this.name} is shut down (the broker is stopping); retry on the current leader`,
      );
    }
    if (this.waiting.size >= this.maxWatchedOperations) {
      throw new WeirError(
        ErrorCode.REQUEST_TIMED_OUT,
        `purgatory ${this.name} is full: ${this.waiting.size} requests wait (maxWatchedOperations); retry later`,
      );
    }
  }

  private tryCompleteWatched(watched: Watched<K>): boolean {
    if (watched.state !== 'waiting') return false;
    const ready = watched.operation.tryComplete();
    // tryComplete may itself have led to this operation finishing (through a wake-up).
    if (!ready || watched.state !== 'waiting') return false;
    this.finish(watched, 'completed');
    return true;
  }

  /**
   * The timer fired. A timer that fires before the deadline by the clock is set again for the
   * rest; then one last check, so an operation that can complete is not expired.
   */
  private expire(watched: Watched<K>): void {
    if (watched.state !== 'waiting') return;
    const remainingMs = watched.deadlineMs - this.clock();
    if (remainingMs > 0) {
      watched.timer = this.scheduler.setTimeout(() => this.expire(watched), remainingMs);
      return;
    }
    if (this.tryCompleteWatched(watched)) return;
    if (watched.state !== 'waiting') return;
    this.finish(watched, 'expired');
  }

  /** Settles the state before calling back, so no path can run a second callback. */
  private finish(watched: Watched<K>, state: 'completed' | 'expired'): void {
    assert(
      watched.state === 'waiting',
      () => `purgatory ${this.name}: an operation ${watched.state} would be ${state} again`,
    );
    watched.state = state;
    this.scheduler.clearTimeout(watched.timer);
    this.unwatch(watched);
    if (state === 'completed') watched.operation.onComplete();
    else watched.operation.onExpire();
  }

  private unwatch(watched: Watched<K>): void {
    this.waiting.delete(watched);
    for (const key of watched.keys) {
      const watchers = this.watchersByKey.get(key);
      if (watchers === undefined) continue;
      watchers.delete(watched);
      if (watchers.size === 0) this.watchersByKey.delete(key);
    }
  }

  private watchersOf(key: K): Set<Watched<K>> {
    let watchers = this.watchersByKey.get(key);
    if (watchers === undefined) {
      watchers = new Set();
      this.watchersByKey.set(key, watchers);
    }
    return watchers;
  }
}

function rethrow(errors: readonly unknown[], message: string): void {
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, message);
}

/**
 * Waits in `purgatory` on `keys` until `isDone()` holds or `timeoutMs` passes (a long poll).
 * Resolves either way; a full or shut-down purgatory resolves at once, so the caller answers
 * now rather than holding the request.
 */
export function waitInPurgatory<K>(
  purgatory: Purgatory<K>,
  keys: readonly K[],
  isDone: () => boolean,
  timeoutMs: number,
): Promise<void> {
  if (keys.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const operation: DelayedOperation = {
      tryComplete: isDone,
      onComplete: resolve,
      onExpire: resolve,
    };
    try {
      purgatory.tryCompleteElseWatch(operation, keys, timeoutMs);
    } catch {
      resolve();
    }
  });
}
