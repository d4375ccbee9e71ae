import { ErrorCode, WeirError } from '@weir/protocol';
import { describe, expect, it } from 'vitest';
import { BufferMemory } from './buffer-memory.js';

/** Whether `promise` has settled once pending callbacks have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('BufferMemory', () => {
  it('takes what fits at once and refuses what does not, without waiting', () => {
    const memory = new BufferMemory(100);
    expect(memory.tryReserve(60)).toBe(true);
    expect(memory.tryReserve(50)).toBe(false);
    expect(memory.tryReserve(40)).toBe(true);
    expect(memory.usedBytes).toBe(100);
    expect(memory.availableBytes).toBe(0);
  });

  it('makes a reservation wait until enough is released', async () => {
    const memory = new BufferMemory(100);
    expect(memory.tryReserve(90)).toBe(true);
    const waiting = memory.reserve(30);
    expect(await settled(waiting)).toBe(false);
    expect(memory.waitingCount).toBe(1);
    memory.release(10);
    expect(await settled(waiting)).toBe(false);
    memory.release(10);
    await waiting;
    expect(memory.usedBytes).toBe(100);
    expect(memory.waitingCount).toBe(0);
  });

  it('serves waiters first come, first served, even when a later one would fit', async () => {
    const memory = new BufferMemory(100);
    memory.tryReserve(100);
    const order: string[] = [];
    const big = memory.reserve(80).then(() => order.push('big'));
    const small = memory.reserve(10).then(() => order.push('small'));
    expect(memory.tryReserve(1)).toBe(false); // no overtaking the queue either
    memory.release(50);
    expect(await settled(small)).toBe(false);
    memory.release(40);
    await Promise.all([big, small]);
    expect(order).toEqual(['big', 'small']);
    expect(memory.usedBytes).toBe(100);
  });

  it('gives up when the signal aborts, and lets the next waiter through', async () => {
    const memory = new BufferMemory(100);
    memory.tryReserve(95);
    const controller = new AbortController();
    const first = memory.reserve(50, controller.signal);
    const second = memory.reserve(5);
    expect(await settled(second)).toBe(false);
    controller.abort();
    const error = await first.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WeirError);
    expect((error as WeirError).code).toBe(ErrorCode.REQUEST_TIMED_OUT);
    expect((error as WeirError).message).toMatch(
      /50 bytes of buffer memory.*bufferMemoryBytes 100/,
    );
    expect((error as WeirError).cause).toBe(controller.signal.reason);
    await second;
    expect(memory.usedBytes).toBe(100);
  });

  it("rejects with the signal's reason when it is a WeirError", async () => {
    const memory = new BufferMemory(10);
    memory.tryReserve(10);
    const reason = new WeirError(ErrorCode.REQUEST_TIMED_OUT, 'delivery timeout of 120000 ms');
    await expect(memory.reserve(5, AbortSignal.abort(reason))).rejects.toBe(reason);
  });

  it('refuses at once with an aborted signal, even when memory is free', async () => {
    const memory = new BufferMemory(10);
    await expect(memory.reserve(5, AbortSignal.abort())).rejects.toMatchObject({
      code: ErrorCode.REQUEST_TIMED_OUT,
    });
    expect(memory.usedBytes).toBe(0);
  });

  it('rejects every waiter on close', async () => {
    const memory = new BufferMemory(10);
    memory.tryReserve(10);
    const closed = new Error('producer closed');
    const waiters = [memory.reserve(1), memory.reserve(2)];
    memory.rejectWaiters(closed);
    for (const waiter of waiters) await expect(waiter).rejects.toBe(closed);
    expect(memory.waitingCount).toBe(0);
  });

  it('reports bad accounting as a bug', () => {
    const memory = new BufferMemory(10);
    memory.tryReserve(4);
    expect(() => memory.release(5)).toThrow(/releasing 5 bytes of buffer memory with 4 in use/);
    expect(() => memory.tryReserve(11)).toThrow(/cannot reserve 11 bytes/);
    expect(() => memory.tryReserve(0)).toThrow(/cannot reserve 0 bytes/);
    expect(() => new BufferMemory(0)).toThrow(/positive whole number/);
  });
});
