import { ErrorCode } from '@weir/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InFlightBytes } from './in-flight-bytes.js';

describe('InFlightBytes', () => {
  it('refuses a request that would pass the limit until earlier ones are released', () => {
    const limits = new InFlightBytes(100);
    const first = limits.acquire('a', 60);
    const second = limits.acquire('a', 40);
    expect(() => limits.acquire('a', 1)).toThrow(
      expect.objectContaining({ code: ErrorCode.THROTTLING_QUOTA_EXCEEDED, retriable: true }),
    );
    // Another connection has its own budget.
    limits.acquire('b', 100)();
    first();
    first(); // a second release changes nothing
    expect(limits.bytesOf('a')).toBe(40);
    limits.acquire('a', 60);
    second();
    expect(limits.bytesOf('a')).toBe(60);
  });

  it('admits a request larger than the limit when the connection has nothing in progress', () => {
    const limits = new InFlightBytes(100);
    const release = limits.acquire('a', 500);
    expect(() => limits.acquire('a', 1)).toThrow(/max.in.flight.bytes.per.connection=100/);
    release();
    expect(limits.bytesOf('a')).toBe(0);
  });

  it('holds at most the limit, or one larger request alone, and returns to zero (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ bytes: fc.integer({ min: 1, max: 300 }), release: fc.boolean() })),
        (steps) => {
          const limits = new InFlightBytes(256);
          const held: (() => void)[] = [];
          for (const step of steps) {
            try {
              held.push(limits.acquire('c', step.bytes));
            } catch {
              // refused: counted nothing
            }
            expect(limits.bytesOf('c')).toBeLessThanOrEqual(Math.max(256, 300));
            if (step.release) held.shift()?.();
          }
          for (const release of held) release();
          expect(limits.bytesOf('c')).toBe(0);
        },
      ),
    );
  });
});
