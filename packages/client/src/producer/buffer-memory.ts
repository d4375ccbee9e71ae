// The producer's memory budget (Kafka's `BufferPool`, counting bytes rather than pooling
// buffers): records take their encoded size from it when they are appended and give it back
// when their batch completes or fails. When it is used up, appends wait in FIFO order, so a
// large record is not starved by small ones and records of one partition keep their order.

import { ErrorCode, WeirError, assert, isWeirError } from '@weir/protocol';

interface Waiter {
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly detach: () => void;
}

export class BufferMemory {
  readonly totalBytes: number;
  private used = 0;
  private readonly waiters: Waiter[] = [];

  constructor(totalBytes: number) {
    assert(
      Number.isSafeInteger(totalBytes) && totalBytes > 0,
      () => `buffer memory must be a positive whole number of bytes, got ${totalBytes}`,
    );
    this.totalBytes = totalBytes;
  }

  get usedBytes(): number {
    return this.used;
  }

  get availableBytes(): number {
    return this.totalBytes - this.used;
  }

  /** How many reservations are waiting for memory (Kafka's `BufferPool.queued()`). */
  get waitingCount(): number {
    return this.waiters.length;
  }

  /** Takes `bytes` now if nobody is waiting and they fit; never waits. */
  tryReserve(bytes: number): boolean {
    this.checkRequest(bytes);
    if (this.waiters.length > 0 || bytes > this.availableBytes) return false;
    this.used += bytes;
    return true;
  }

  /**
   * Takes `bytes`, waiting behind earlier reservations until they fit. When `signal` aborts
   * first, rejects with its reason if that is a WeirError, else with REQUEST_TIMED_OUT.
   */
  reserve(bytes: number, signal?: AbortSignal): Promise<void> {
    this.checkRequest(bytes);
    if (signal?.aborted) return Promise.reject(this.abortError(bytes, signal));
    if (this.tryReserve(bytes)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.waiters.indexOf(waiter);
        if (index < 0) return;
        this.waiters.splice(index, 1);
        reject(this.abortError(bytes, signal!));
        this.grantWaiters(); // the head may have changed
      };
      const detach = (): void => signal?.removeEventListener('abort', onAbort);
      const waiter: Waiter = { bytes, resolve, reject, detach };
      this.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  release(bytes: number): void {
    assert(
      Number.isSafeInteger(bytes) && bytes >= 0 && bytes <= this.used,
      () => `releasing ${bytes} bytes of buffer memory with ${this.used} in use`,
    );
    this.used -= bytes;
    this.grantWaiters();
  }

  /** Rejects every waiting reservation, as when the producer closes. */
  rejectWaiters(error: Error): void {
    for (const waiter of this.waiters.splice(0)) {
      waiter.detach();
      waiter.reject(error);
    }
  }

  private grantWaiters(): void {
    for (let head = this.waiters[0]; head !== undefined; head = this.waiters[0]) {
      if (head.bytes > this.availableBytes) return;
      this.waiters.shift();
      this.used += head.bytes;
      head.detach();
      head.resolve();
    }
  }

  private checkRequest(bytes: number): void {
    assert(
      Number.isSafeInteger(bytes) && bytes > 0 && bytes <= this.totalBytes,
      () => `cannot reserve ${bytes} bytes of buffer memory out of ${this.totalBytes}`,
    );
  }

  private abortError(bytes: number, signal: AbortSignal): WeirError {
    const reason: unknown = signal.reason;
    if (isWeirError(reason)) return reason;
    return new WeirError(
      ErrorCode.REQUEST_TIMED_OUT,
      `gave up waiting for ${bytes} bytes of buffer memory: ${this.used} of bufferMemoryBytes ${this.totalBytes} hold records not yet acknowledged; raise bufferMemoryBytes or the delivery timeout, or produce more slowly`,
      { cause: reason },
    );
  }
}
