// Back-off between retries (Kafka's `retry.backoff.ms` growing to `retry.backoff.max.ms`,
// KIP-580) and the wake-up a background loop sleeps on, so that it waits for a reason or a
// time and never polls.

/** The wait before retry number `retry` (1 for the first): doubling from `initialMs` up to
 * `maxMs`, with ±20% jitter so that clients failing together do not retry together. */
export function backoffMs(retry: number, initialMs: number, maxMs: number): number {
  const exponent = Math.max(0, Math.min(retry - 1, 30));
  return jitter(Math.min(initialMs * 2 ** exponent, maxMs));
}

export function jitter(ms: number): number {
  return Math.round(ms * (0.8 + 0.4 * Math.random()));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/**
 * What a background loop sleeps on: `wait(ms)` resolves after `ms` or at the next `wake()`,
 * whichever is first. A wake that comes while the loop is busy is remembered, so the next
 * wait returns at once: no wake-up is lost between the loop's last look and its sleep.
 */
export class Wakeup {
  private pending = false;
  private resolve: (() => void) | undefined;

  wake(): void {
    this.pending = true;
    const resolve = this.resolve;
    this.resolve = undefined;
    resolve?.();
  }

  /** Forgets wakes that came before the loop looked at its state (call before looking). */
  clear(): void {
    this.pending = false;
  }

  wait(ms: number): Promise<void> {
    if (this.pending || ms <= 0) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        if (this.resolve === done) this.resolve = undefined;
        this.pending = false;
        resolve();
      };
      if (Number.isFinite(ms)) timer = setTimeout(done, Math.min(ms, MAX_TIMEOUT_MS));
      this.resolve = done;
    });
  }
}

/** setTimeout's limit; a longer timeout would fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
