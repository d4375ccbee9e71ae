import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, RecordBatch, RecordBatchBuilder, isWeirError } from '@weir/protocol';
import {
  BATCHES_RETAINED_PER_PRODUCER,
  type BatchMetadata,
  type LoggedProducerBatch,
  NO_PRODUCER_ID,
  type ProducerAppendDecision,
  type ProducerBatch,
  type ProducerStateEntry,
  ProducerStateManager,
  lastSequenceOf,
  producerBatchOf,
  producerEntryProblem,
} from './producer-state.js';

const INT32_MAX = 0x7fff_ffff;

function batch(
  producerId: bigint,
  producerEpoch: number,
  baseSequence: number,
  count = 1,
): ProducerBatch {
  return {
    producerId,
    producerEpoch,
    baseSequence,
    lastSequence: lastSequenceOf(baseSequence, count - 1),
  };
}

/** A partition log in miniature: checks, appends at the log end, records. */
class Partition {
  readonly state: ProducerStateManager;
  readonly log: LoggedProducerBatch[] = [];
  logEndOffset = 0n;

  constructor(maxProducerIds?: number) {
    this.state = new ProducerStateManager({ partition: 'topic-a:0', maxProducerIds });
  }

  /** Appends if the state allows it; returns the decision, with the offsets the batch got. */
  produce(b: ProducerBatch): ProducerAppendDecision & { offsets?: [bigint, bigint] } {
    const decision = this.state.checkAppend(b);
    if (decision.kind === 'duplicate') return decision;
    const offsets = this.append(b);
    this.state.record(b, offsets[0], offsets[1]);
    return { ...decision, offsets };
  }

  append(b: ProducerBatch): [bigint, bigint] {
    const count = b.producerId === NO_PRODUCER_ID ? 1 : spanOf(b) + 1;
    const first = this.logEndOffset;
    const last = first + BigInt(count) - 1n;
    this.logEndOffset = last + 1n;
    this.log.push({ ...b, baseOffset: first, lastOffset: last });
    return [first, last];
  }
}

function spanOf(b: ProducerBatch): number {
  const span = b.lastSequence - b.baseSequence;
  return span >= 0 ? span : span + INT32_MAX + 1;
}

function errorCodeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (error) {
    if (isWeirError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('ProducerStateManager', () => {
  it('lets batches without a producer id through without tracking them', () => {
    const p = new Partition();
    expect(p.produce(batch(NO_PRODUCER_ID, -1, -1)).kind).toBe('append');
    expect(p.produce(batch(NO_PRODUCER_ID, -1, -1)).kind).toBe('append');
    expect(p.state.size).toBe(0);
    expect(p.state.inFlightCount).toBe(0);
  });

  it('accepts a producer it has no state for at any sequence (KIP-360)', () => {
    const p = new Partition();
    expect(p.produce(batch(7n, 0, 1234, 3)).kind).toBe('append');
    expect(p.state.entry(7n)).toEqual({
      producerId: 7n,
      producerEpoch: 0,
      batches: [{ firstSequence: 1234, lastSequence: 1236, firstOffset: 0n, lastOffset: 2n }],
    });
  });

  it('answers a retry of each of the last 5 batches with its original offsets', () => {
    const p = new Partition();
    const sent: { b: ProducerBatch; offsets: [bigint, bigint] }[] = [];
    let sequence = 0;
    for (let i = 0; i < 8; i++) {
      const b = batch(1n, 0, sequence, 2);
      sequence += 2;
      p.produce(batch(NO_PRODUCER_ID, -1, -1)); // interleaved non-idempotent writes
      sent.push({ b, offsets: p.produce(b).offsets! });
    }
    const logged = p.log.length;
    for (const { b, offsets } of sent.slice(-BATCHES_RETAINED_PER_PRODUCER)) {
      expect(p.state.checkAppend(b)).toEqual({
        kind: 'duplicate',
        firstOffset: offsets[0],
        lastOffset: offsets[1],
      });
    }
    // The sixth-newest is forgotten: its sequence is out of order now, as in Kafka.
    const forgotten = sent.at(-BATCHES_RETAINED_PER_PRODUCER - 1)!.b;
    expect(errorCodeOf(() => p.state.checkAppend(forgotten))).toBe(
      ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    expect(p.log.length).toBe(logged);
    expect(p.state.entry(1n)?.batches).toHaveLength(BATCHES_RETAINED_PER_PRODUCER);
  });

  it('only answers exact retries: an overlapping batch is out of order', () => {
    const p = new Partition();
    p.produce(batch(1n, 0, 0, 5));
    expect(errorCodeOf(() => p.state.checkAppend(batch(1n, 0, 0, 3)))).toBe(
      ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
  });

  it('refuses a gap with OUT_OF_ORDER_SEQUENCE_NUMBER and records nothing', () => {
    const p = new Partition();
    p.produce(batch(1n, 0, 0, 3));
    expect(errorCodeOf(() => p.state.checkAppend(batch(1n, 0, 4)))).toBe(
      ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    expect(p.state.inFlightCount).toBe(0);
    expect(p.produce(batch(1n, 0, 3)).kind).toBe('append');
  });

  it('refuses a stale epoch with INVALID_PRODUCER_EPOCH', () => {
    const p = new Partition();
    p.produce(batch(1n, 3, 0));
    const error = (() => {
      try {
        p.state.checkAppend(batch(1n, 2, 1));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(isWeirError(error, ErrorCode.INVALID_PRODUCER_EPOCH)).toBe(true);
    expect(String(error)).toContain('epoch 2 is older than');
  });

  it('requires a new epoch to start at sequence 0, and forgets the old epoch', () => {
    const p = new Partition();
    const old = batch(1n, 0, 0, 2);
    p.produce(old);
    expect(errorCodeOf(() => p.state.checkAppend(batch(1n, 1, 2)))).toBe(
      ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    expect(p.produce(batch(1n, 1, 0)).kind).toBe('append');
    expect(p.state.entry(1n)?.batches).toHaveLength(1);
    expect(errorCodeOf(() => p.state.checkAppend(old))).toBe(ErrorCode.INVALID_PRODUCER_EPOCH);
  });

  it('wraps sequences from 2^31 - 1 to 0 as Kafka does', () => {
    expect(lastSequenceOf(INT32_MAX, 0)).toBe(INT32_MAX);
    expect(lastSequenceOf(INT32_MAX, 1)).toBe(0);
    expect(lastSequenceOf(INT32_MAX - 1, 4)).toBe(2);
    const p = new Partition();
    const straddling = batch(1n, 0, INT32_MAX - 1, 4);
    expect(straddling.lastSequence).toBe(1);
    expect(p.produce(straddling).offsets).toEqual([0n, 3n]);
    expect(errorCodeOf(() => p.state.checkAppend(batch(1n, 0, 3)))).toBe(
      ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    expect(p.produce(batch(1n, 0, 2)).kind).toBe('append');
    expect(p.state.checkAppend(straddling).kind).toBe('duplicate');
    const q = new Partition();
    q.produce(batch(2n, 0, INT32_MAX));
    expect(q.produce(batch(2n, 0, 0)).kind).toBe('append');
  });

  it('refuses idempotent batches with a negative epoch or sequence as INVALID_RECORD', () => {
    const state = new ProducerStateManager({ partition: 'topic-a:0' });
    expect(errorCodeOf(() => state.checkAppend(batch(1n, -1, 0)))).toBe(ErrorCode.INVALID_RECORD);
    expect(errorCodeOf(() => state.checkAppend(batch(1n, 0, -1)))).toBe(ErrorCode.INVALID_RECORD);
    expect(errorCodeOf(() => state.checkAppend(batch(-2n, 0, 0)))).toBe(ErrorCode.INVALID_RECORD);
  });

  it('records nothing for a failed append (abort)', () => {
    const state = new ProducerStateManager({ partition: 'topic-a:0' });
    state.record(batch(1n, 0, 0), 0n, 0n);
    const b = batch(1n, 0, 1);
    expect(state.checkAppend(b).kind).toBe('append');
    state.abort(b);
    expect(state.entry(1n)?.batches).toHaveLength(1);
    expect(state.inFlightCount).toBe(0);
    expect(state.checkAppend(b).kind).toBe('append');
  });

  it('checks pipelined batches against the ones in flight', () => {
    const state = new ProducerStateManager({ partition: 'topic-a:0' });
    const first = batch(1n, 0, 0, 2);
    const second = batch(1n, 0, 2, 2);
    expect(state.checkAppend(first).kind).toBe('append');
    expect(state.checkAppend(second).kind).toBe('append');
    expect(errorCodeOf(() => state.checkAppend(batch(1n, 0, 2)))).toBe(
      ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    // A retry that overtakes its original is told to retry (retriable), not appended twice.
    let retry: unknown;
    try {
      state.checkAppend(first);
    } catch (error) {
      retry = error;
    }
    expect(isWeirError(retry, ErrorCode.REQUEST_TIMED_OUT)).toBe(true);
    expect((retry as { retriable: boolean }).retriable).toBe(true);
    expect(state.inFlightCount).toBe(2);
    state.record(first, 0n, 1n);
    state.record(second, 2n, 3n);
    expect(state.inFlightCount).toBe(0);
    expect(state.checkAppend(first)).toEqual({
      kind: 'duplicate',
      firstOffset: 0n,
      lastOffset: 1n,
    });
  });

  it('asserts that a producer records its batches in log order with offsets matching sequences', () => {
    const state = new ProducerStateManager({ partition: 'topic-a:0' });
    state.record(batch(1n, 0, 0), 5n, 5n);
    expect(errorCodeOf(() => state.record(batch(1n, 0, 1), 5n, 5n))).toBe(ErrorCode.ILLEGAL_STATE);
    expect(errorCodeOf(() => state.record(batch(1n, 0, 1, 2), 6n, 6n))).toBe(
      ErrorCode.ILLEGAL_STATE,
    );
  });

  it('reads the producer fields of a RecordBatch', () => {
    const bytes = new RecordBatchBuilder({
      producerId: 42n,
      producerEpoch: 3,
      baseSequence: 10,
      baseOffset: 100n,
    })
      .append({ value: 'a' })
      .append({ value: 'b' })
      .append({ value: 'c' })
      .build();
    expect(producerBatchOf(RecordBatch.view(bytes))).toEqual({
      producerId: 42n,
      producerEpoch: 3,
      baseSequence: 10,
      lastSequence: 12,
      baseOffset: 100n,
      lastOffset: 102n,
    });
  });

  it('refuses a maxProducerIds that is not a positive integer', () => {
    for (const maxProducerIds of [0, -1, 1.5]) {
      expect(
        errorCodeOf(() => new ProducerStateManager({ partition: 'topic-a:0', maxProducerIds })),
      ).toBe(ErrorCode.INVALID_CONFIG);
    }
  });
});

describe('truncation', () => {
  it('truncateTo forgets batches at or after the offset and drops producers left empty', () => {
    const p = new Partition();
    p.produce(batch(1n, 0, 0)); // offset 0
    p.produce(batch(2n, 0, 0)); // offset 1
    p.produce(batch(1n, 0, 1)); // offset 2
    p.produce(batch(2n, 0, 1, 3)); // offsets 3..5
    expect(p.state.truncateTo(4n)).toEqual([]);
    expect(p.state.entry(2n)?.batches.map((b) => b.firstOffset)).toEqual([1n]);
    // The truncated batch is no longer a duplicate: it is appended again.
    expect(p.state.checkAppend(batch(2n, 0, 1, 3)).kind).toBe('append');
    expect(p.state.truncateTo(1n)).toEqual([2n]);
    expect(p.state.entry(2n)).toBeUndefined();
    expect(p.state.inFlightCount).toBe(0);
    expect(p.state.entry(1n)?.batches.map((b) => b.firstOffset)).toEqual([0n]);
    // A dropped producer is accepted at any sequence.
    expect(p.state.checkAppend(batch(2n, 0, 17)).kind).toBe('append');
  });

  it('truncateHead drops producers whose last batch is before the log start offset', () => {
    const p = new Partition();
    p.produce(batch(1n, 0, 0)); // offset 0
    p.produce(batch(2n, 0, 0)); // offset 1
    p.produce(batch(1n, 0, 1)); // offset 2
    expect(p.state.truncateHead(2n)).toEqual([2n]);
    expect(p.state.entry(1n)?.batches).toHaveLength(2);
  });
});

describe('the bound on producers', () => {
  it('evicts the least recently written producer beyond maxProducerIds', () => {
    const p = new Partition(3);
    p.produce(batch(1n, 0, 0));
    p.produce(batch(2n, 0, 0));
    p.produce(batch(3n, 0, 0));
    p.produce(batch(1n, 0, 1)); // 1 is now the most recent
    p.state.checkAppend(batch(2n, 0, 0)); // a check (here a duplicate) is not a use
    p.produce(batch(4n, 0, 0));
    expect(p.state.size).toBe(3);
    expect(p.state.entries().map((e) => e.producerId)).toEqual([3n, 1n, 4n]);
    // The evicted producer goes on at whatever sequence it is at.
    expect(p.produce(batch(2n, 0, 1)).kind).toBe('append');
    expect(p.state.size).toBe(3);
    expect(p.state.entry(3n)).toBeUndefined();
  });
});

/** A client that keeps its producers' epochs and sequences and what each batch got. */
interface ClientProducer {
  epoch: number;
  nextSequence: number;
  sent: { b: ProducerBatch; offsets: [bigint, bigint] }[];
}

type Action = {
  producer: number;
  kind: 'next' | 'retry' | 'gap' | 'bump' | 'stale' | 'plain';
  count: number;
  pick: number;
};

const actionArbitrary: fc.Arbitrary<Action> = fc.record({
  producer: fc.integer({ min: 1, max: 4 }),
  kind: fc.constantFrom('next', 'next', 'next', 'retry', 'gap', 'bump', 'stale', 'plain'),
  count: fc.integer({ min: 1, max: 3 }),
  pick: fc.nat({ max: 20 }),
});

/**
 * Runs the actions against a partition, asserting each decision against what the client model
 * expects (when nothing was evicted), and returns the partition.
 */
function drive(
  actions: readonly Action[],
  startSequences: readonly number[],
  maxProducerIds: number,
): Partition {
  const p = new Partition(maxProducerIds);
  const clients = new Map<number, ClientProducer>();
  const exact = maxProducerIds >= 4;
  for (const action of actions) {
    const id = BigInt(action.producer);
    const client = clients.get(action.producer) ?? {
      epoch: 0,
      nextSequence: startSequences[action.producer - 1] ?? 0,
      sent: [],
    };
    clients.set(action.producer, client);
    const current = client.sent.filter((s) => s.b.producerEpoch === client.epoch);
    const sendNext = (b: ProducerBatch): void => {
      const result = p.produce(b);
      expect(result.kind).toBe('append');
      client.sent.push({ b, offsets: result.offsets! });
      client.nextSequence = (b.lastSequence + 1) % (INT32_MAX + 1);
    };
    switch (action.kind) {
      case 'plain':
        expect(p.produce(batch(NO_PRODUCER_ID, -1, -1)).kind).toBe('append');
        break;
      case 'next':
        sendNext(batch(id, client.epoch, client.nextSequence, action.count));
        break;
      case 'bump':
        client.epoch += 1;
        sendNext(batch(id, client.epoch, 0, action.count));
        break;
      case 'retry': {
        const chosen = current[current.length - 1 - (action.pick % Math.max(current.length, 1))];
        if (chosen === undefined) break;
        const age = current.length - current.indexOf(chosen);
        const outcome = (() => {
          try {
            return p.state.checkAppend(chosen.b);
          } catch (error) {
            return error;
          }
        })();
        if (!exact) {
          // An evicted producer's retry is appended again: the documented cost of the bound.
          if (isAppend(outcome)) p.state.abort(chosen.b);
          break;
        }
        if (age <= BATCHES_RETAINED_PER_PRODUCER) {
          expect(outcome).toEqual({
            kind: 'duplicate',
            firstOffset: chosen.offsets[0],
            lastOffset: chosen.offsets[1],
          });
        } else {
          expect(isWeirError(outcome, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER)).toBe(true);
        }
        break;
      }
      case 'gap': {
        if (current.length === 0) break;
        const gapped = batch(id, client.epoch, (client.nextSequence + 1 + action.pick) % INT32_MAX);
        const code = errorCodeOf(() => p.state.checkAppend(gapped));
        if (exact) expect(code).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
        if (code === undefined) p.state.abort(gapped);
        break;
      }
      case 'stale': {
        if (client.epoch === 0 || current.length === 0) break;
        const code = errorCodeOf(() => p.state.checkAppend(batch(id, client.epoch - 1, 0)));
        if (exact) expect(code).toBe(ErrorCode.INVALID_PRODUCER_EPOCH);
        if (code === undefined) p.state.abort(batch(id, client.epoch - 1, 0));
        break;
      }
    }
    expect(p.state.size).toBeLessThanOrEqual(maxProducerIds);
    expect(p.state.inFlightCount).toBe(0);
  }
  return p;
}

function isAppend(outcome: unknown): boolean {
  return (outcome as ProducerAppendDecision | undefined)?.kind === 'append';
}

/** What checkAppend answers, as data: the decision or the error code. */
function outcomeOf(state: ProducerStateManager, b: ProducerBatch): unknown {
  try {
    const decision = state.checkAppend(b);
    if (decision.kind === 'append') state.abort(b);
    return decision;
  } catch (error) {
    if (isWeirError(error)) return error.code;
    throw error;
  }
}

describe('rebuild', () => {
  const startSequences = fc.array(fc.constantFrom(0, 0, INT32_MAX - 2), {
    minLength: 4,
    maxLength: 4,
  });

  it('from the log equals recording the batches one by one (property)', () => {
    fc.assert(
      fc.property(
        fc.array(actionArbitrary, { maxLength: 60 }),
        startSequences,
        fc.constantFrom(2, 3, 100),
        (actions, starts, maxProducerIds) => {
          const live = drive(actions, starts, maxProducerIds);
          const rebuilt = new ProducerStateManager({ partition: 'topic-a:0', maxProducerIds });
          rebuilt.rebuild(live.log);
          expect(rebuilt.entries()).toEqual(live.state.entries());
          // And they decide alike about whatever comes next.
          for (const entry of live.state.entries()) {
            const last = entry.batches.at(-1)!;
            const { producerId, producerEpoch } = entry;
            const probes: ProducerBatch[] = [
              batch(producerId, producerEpoch, (last.lastSequence + 1) % (INT32_MAX + 1)),
              batch(producerId, producerEpoch, last.firstSequence),
              {
                producerId,
                producerEpoch,
                baseSequence: last.firstSequence,
                lastSequence: last.lastSequence,
              },
              batch(entry.producerId, entry.producerEpoch + 1, 0),
              batch(entry.producerId, entry.producerEpoch + 1, 5),
              batch(entry.producerId, Math.max(entry.producerEpoch - 1, 0), 0),
            ];
            for (const probe of probes) {
              expect(outcomeOf(rebuilt, probe)).toEqual(outcomeOf(live.state, probe));
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('replaces the state and forgets batches in flight', () => {
    const state = new ProducerStateManager({ partition: 'topic-a:0' });
    state.record(batch(9n, 0, 0), 0n, 0n);
    state.checkAppend(batch(9n, 0, 1));
    state.rebuild([{ ...batch(1n, 2, 5), baseOffset: 3n, lastOffset: 3n }]);
    expect(state.inFlightCount).toBe(0);
    expect(state.entries()).toEqual([
      {
        producerId: 1n,
        producerEpoch: 2,
        batches: [{ firstSequence: 5, lastSequence: 5, firstOffset: 3n, lastOffset: 3n }],
      },
    ]);
  });
});

describe('load (from a producer snapshot)', () => {
  it('then recording the rest of the log equals rebuilding from the whole log (property)', () => {
    fc.assert(
      fc.property(
        fc.array(actionArbitrary, { maxLength: 60 }),
        fc.nat(),
        fc.constantFrom(2, 3, 100),
        (actions, cut, maxProducerIds) => {
          const live = drive(actions, [0, 0, 0, 0], maxProducerIds);
          const split = live.log.length === 0 ? 0 : cut % (live.log.length + 1);
          const atSnapshot = new ProducerStateManager({ partition: 'topic-a:0', maxProducerIds });
          atSnapshot.rebuild(live.log.slice(0, split));
          const loaded = new ProducerStateManager({ partition: 'topic-a:0', maxProducerIds });
          loaded.load(atSnapshot.entries());
          for (const b of live.log.slice(split)) loaded.record(b, b.baseOffset, b.lastOffset);
          expect(loaded.entries()).toEqual(live.state.entries());
        },
      ),
      { numRuns: 300 },
    );
  });

  it('replaces the state, keeping the order, and forgets batches in flight', () => {
    const state = new ProducerStateManager({ partition: 'topic-a:0' });
    state.record(batch(9n, 0, 0), 0n, 0n);
    state.checkAppend(batch(9n, 0, 1));
    const entries = [
      {
        producerId: 5n,
        producerEpoch: 1,
        batches: [{ firstSequence: 0, lastSequence: 0, firstOffset: 7n, lastOffset: 7n }],
      },
      {
        producerId: 2n,
        producerEpoch: 0,
        batches: [{ firstSequence: 3, lastSequence: 4, firstOffset: 8n, lastOffset: 9n }],
      },
    ];
    state.load(entries);
    expect(state.inFlightCount).toBe(0);
    expect(state.entries()).toEqual(entries);
    // A retry of a loaded batch gets its original offsets.
    expect(state.checkAppend(batch(2n, 0, 3, 2))).toEqual({
      kind: 'duplicate',
      firstOffset: 8n,
      lastOffset: 9n,
    });
  });

  it('keeps the most recently used entries beyond maxProducerIds', () => {
    const state = new ProducerStateManager({ partition: 'topic-a:0', maxProducerIds: 2 });
    state.load(
      [1n, 2n, 3n].map((producerId) => ({
        producerId,
        producerEpoch: 0,
        batches: [
          { firstSequence: 0, lastSequence: 0, firstOffset: producerId, lastOffset: producerId },
        ],
      })),
    );
    expect(state.entries().map((entry) => entry.producerId)).toEqual([2n, 3n]);
  });

  it('asserts that the entries are ones record could have produced', () => {
    const state = new ProducerStateManager({ partition: 'topic-a:0' });
    const valid = { firstSequence: 0, lastSequence: 1, firstOffset: 4n, lastOffset: 5n };
    const invalid: ProducerStateEntry[][] = [
      [{ producerId: -1n, producerEpoch: 0, batches: [valid] }],
      [{ producerId: 1n, producerEpoch: -1, batches: [valid] }],
      [{ producerId: 1n, producerEpoch: 0, batches: [] }],
      [{ producerId: 1n, producerEpoch: 0, batches: Array(6).fill(valid) as BatchMetadata[] }],
      [{ producerId: 1n, producerEpoch: 0, batches: [{ ...valid, lastOffset: 4n }] }],
      [{ producerId: 1n, producerEpoch: 0, batches: [valid, valid] }],
      [
        {
          producerId: 1n,
          producerEpoch: 0,
          batches: [{ ...valid, firstOffset: -1n, lastOffset: 0n }],
        },
      ],
      [
        { producerId: 1n, producerEpoch: 0, batches: [valid] },
        { producerId: 1n, producerEpoch: 0, batches: [valid] },
      ],
    ];
    for (const entries of invalid) {
      expect(errorCodeOf(() => state.load(entries))).toBe(ErrorCode.ILLEGAL_STATE);
      expect(producerEntryProblem(entries[0]!) === undefined).toBe(entries.length === 2);
    }
  });
});
