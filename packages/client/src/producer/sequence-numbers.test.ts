import { ErrorCode, WeirError } from '@weir/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_SEQUENCE, SequenceNumbers, incrementSequence } from './sequence-numbers.js';

describe('incrementSequence', () => {
  it('wraps past 2^31 - 1 to 0, as DefaultRecordBatch.incrementSequence', () => {
    expect(incrementSequence(MAX_SEQUENCE, 1)).toBe(0);
    expect(incrementSequence(MAX_SEQUENCE - 1, 3)).toBe(1);
    expect(incrementSequence(MAX_SEQUENCE - 5, 5)).toBe(MAX_SEQUENCE);
    expect(incrementSequence(7, 0)).toBe(7);
  });

  it('is addition modulo 2^31', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MAX_SEQUENCE }),
        fc.integer({ min: 0, max: MAX_SEQUENCE }),
        (sequence, increment) => {
          expect(incrementSequence(sequence, increment)).toBe((sequence + increment) % 2 ** 31);
        },
      ),
    );
  });

  it('reports a sequence outside int32 as a bug', () => {
    expect(() => incrementSequence(-1, 1)).toThrow(WeirError);
    expect(() => incrementSequence(2 ** 31, 1)).toThrow(/sequence 2147483648/);
    expect(() => incrementSequence(0, -1)).toThrow(/increment -1/);
  });
});

describe('SequenceNumbers', () => {
  it('hands each partition consecutive sequences from 0', () => {
    const sequences = new SequenceNumbers();
    expect(sequences.next('t', 0)).toBe(0);
    expect(sequences.take('t', 0, 3)).toBe(0);
    expect(sequences.take('t', 0, 2)).toBe(3);
    expect(sequences.next('t', 0)).toBe(5);
    expect(sequences.take('t', 1, 4)).toBe(0);
    expect(sequences.take('u', 0, 1)).toBe(0);
    expect(sequences.next('t', 0)).toBe(5);
  });

  it('wraps a partition past 2^31 - 1', () => {
    const sequences = new SequenceNumbers();
    expect(sequences.take('t', 0, 2 ** 30)).toBe(0);
    expect(sequences.take('t', 0, 2 ** 30 - 1)).toBe(2 ** 30);
    expect(sequences.next('t', 0)).toBe(MAX_SEQUENCE);
    expect(sequences.take('t', 0, 3)).toBe(MAX_SEQUENCE); // records get MAX, 0, 1
    expect(sequences.next('t', 0)).toBe(2);
  });

  it('starts partitions over at 0 after a reset', () => {
    const sequences = new SequenceNumbers();
    sequences.take('t', 0, 5);
    sequences.take('t', 1, 5);
    sequences.resetPartition('t', 0);
    expect(sequences.next('t', 0)).toBe(0);
    expect(sequences.next('t', 1)).toBe(5);
    sequences.reset();
    expect(sequences.next('t', 1)).toBe(0);
  });

  it('refuses a batch without records', () => {
    const sequences = new SequenceNumbers();
    let thrown: unknown;
    try {
      sequences.take('t', 0, 0);
    } catch (error) {
      thrown = error;
    }
    expect((thrown as WeirError).code).toBe(ErrorCode.ILLEGAL_STATE);
    expect(sequences.next('t', 0)).toBe(0);
  });
});
