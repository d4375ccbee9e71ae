import {
  ErrorCode,
  RECORD_BATCH_OVERHEAD,
  type Record as BatchRecord,
  RecordBatch,
  WeirError,
} from '@weir/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ProducerBatch,
  type ProducerRecord,
  type RecordMetadata,
  prepareRecord,
  recordSizeInBytes,
} from './producer-batch.js';
import {
  DEFAULT_BATCH_BYTES,
  DEFAULT_BUFFER_MEMORY_BYTES,
  DEFAULT_LINGER_MS,
  DEFAULT_MAX_REQUEST_BYTES,
  type DrainOptions,
  RecordAccumulator,
  type RecordAccumulatorConfig,
  type RecordHandle,
  resolveAccumulatorConfig,
} from './record-accumulator.js';

const T0 = 1_700_000_000_000;
/** A record `r(i)` with a one-digit i: 11 bytes in a batch (see `recordBytes`). */
const RECORD_BYTES = 11;
/** A batch that holds exactly three `r(i)` records. */
const THREE_RECORDS = RECORD_BATCH_OVERHEAD + 3 * RECORD_BYTES;

function r(i: number, overrides: Partial<ProducerRecord> = {}): ProducerRecord {
  return {
    topic: 'orders',
    partition: 0,
    key: `k${i}`,
    value: `v${i}`,
    timestamp: T0,
    ...overrides,
  };
}

function setup(config: RecordAccumulatorConfig = {}) {
  const clock = { now: T0 };
  const accumulator = new RecordAccumulator({ lingerMs: 10, clock: () => clock.now, ...config });
  return { clock, accumulator };
}

function drainAll(
  accumulator: RecordAccumulator,
  options: Partial<DrainOptions> = {},
): ProducerBatch[] {
  return [...accumulator.drain({ leaderFor: () => 1, ...options }).values()].flat();
}

function decode(batch: ProducerBatch): { batch: RecordBatch; records: BatchRecord[] } {
  const view = RecordBatch.validated(batch.buffer);
  return { batch: view, records: [...view.records()] };
}

function values(batch: ProducerBatch): string[] {
  return decode(batch).records.map((record) => record.value!.toString());
}

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

/** Buffer memory holds exactly the incomplete batches' bytes. */
function expectMemoryMatchesBatches(accumulator: RecordAccumulator): void {
  const batchBytes = accumulator.incompleteBatches.reduce(
    (sum, b) => sum + b.estimatedSizeInBytes,
    0,
  );
  expect(accumulator.bufferedBytes).toBe(batchBytes);
}

async function rejection(promise: Promise<unknown>): Promise<WeirError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WeirError);
  return error as WeirError;
}

describe('record sizes', () => {
  it('counts r(i) as 11 bytes, as the tests assume', () => {
    expect(recordSizeInBytes(prepareRecord(r(1), T0), 0, 0n)).toBe(RECORD_BYTES);
  });
});

describe('RecordAccumulator batching', () => {
  it('fills a batch up to batchBytes, then starts the next', async () => {
    const { accumulator } = setup({ batchBytes: THREE_RECORDS });
    const first = await accumulator.append(r(1));
    expect(first).toMatchObject({ newBatchCreated: true, batchIsFull: false });
    expect(await accumulator.append(r(2))).toMatchObject({
      newBatchCreated: false,
      batchIsFull: false,
    });
    expect(await accumulator.append(r(3))).toMatchObject({
      newBatchCreated: false,
      batchIsFull: true,
    });
    expect(accumulator.ready().readyPartitions).toEqual([{ topic: 'orders', partition: 0 }]);
    expect(await accumulator.append(r(4))).toMatchObject({
      newBatchCreated: true,
      batchIsFull: true,
    });

    const [batch, ...rest] = drainAll(accumulator);
    expect(rest).toEqual([]);
    expect(values(batch!)).toEqual(['v1', 'v2', 'v3']);
    expect(batch!.estimatedSizeInBytes).toBe(THREE_RECORDS);
    // The second batch is neither full nor lingered.
    expect(accumulator.ready().readyPartitions).toEqual([]);
    expect(drainAll(accumulator)).toEqual([]);
  });

  it('gives a record larger than batchBytes a batch of its own', async () => {
    const { accumulator } = setup({ batchBytes: 100 });
    await accumulator.append(r(1));
    const big = await accumulator.append(r(2, { value: Buffer.alloc(500) }));
    expect(big).toMatchObject({ newBatchCreated: true, batchIsFull: true });
    expect((await accumulator.append(r(3))).newBatchCreated).toBe(true);
    const drained = [drainAll(accumulator), drainAll(accumulator)].flat();
    expect(drained.map((b) => b.recordCount)).toEqual([1, 1]);
    expect(decode(drained[1]!).records[0]!.value!.length).toBe(500);
  });

  it("waits lingerMs from a batch's first record, then sends it", async () => {
    const { clock, accumulator } = setup({ lingerMs: 10 });
    await accumulator.append(r(1));
    expect(accumulator.ready()).toEqual({ readyPartitions: [], nextReadyCheckDelayMs: 10 });
    clock.now += 4;
    await accumulator.append(r(2)); // a later record does not restart the wait
    expect(accumulator.ready().nextReadyCheckDelayMs).toBe(6);
    expect(drainAll(accumulator)).toEqual([]);
    clock.now += 6;
    expect(accumulator.ready().readyPartitions).toHaveLength(1);
    const [batch] = drainAll(accumulator);
    expect(values(batch!)).toEqual(['v1', 'v2']);
    expect(accumulator.ready()).toEqual({
      readyPartitions: [],
      nextReadyCheckDelayMs: Number.POSITIVE_INFINITY,
    });
  });

  it('sends at once with lingerMs 0', async () => {
    const { accumulator } = setup({ lingerMs: 0 });
    await accumulator.append(r(1));
    expect(drainAll(accumulator)).toHaveLength(1);
  });

  it('reports the soonest linger among partitions', async () => {
    const { clock, accumulator } = setup({ lingerMs: 10 });
    await accumulator.append(r(1, { partition: 0 }));
    clock.now += 3;
    await accumulator.append(r(2, { partition: 1 }));
    expect(accumulator.ready(clock.now).nextReadyCheckDelayMs).toBe(7);
    expect(accumulator.ready(clock.now + 8)).toEqual({
      readyPartitions: [{ topic: 'orders', partition: 0 }],
      nextReadyCheckDelayMs: 2,
    });
  });

  it('keeps partitions apart and groups their batches by leader', async () => {
    const { accumulator } = setup({ lingerMs: 0 });
    await accumulator.append(r(1, { partition: 0 }));
    await accumulator.append(r(2, { partition: 1 }));
    await accumulator.append(r(3, { topic: 'payments', partition: 0 }));
    const leaders: Record<string, number> = { 'orders-0': 1, 'orders-1': 2, 'payments-0': 1 };
    const requests = accumulator.drain({ leaderFor: (t, p) => leaders[`${t}-${p}`] });
    expect([...requests.keys()].sort()).toEqual([1, 2]);
    expect(
      requests
        .get(1)!
        .map((b) => `${b.topic}-${b.partition}`)
        .sort(),
    ).toEqual(['orders-0', 'payments-0']);
    expect(requests.get(2)!.map((b) => values(b))).toEqual([['v2']]);
  });

  it('leaves the batches of a partition without a leader queued', async () => {
    const { accumulator } = setup({ lingerMs: 0 });
    await accumulator.append(r(1, { partition: 0 }));
    await accumulator.append(r(2, { partition: 1 }));
    const drained = drainAll(accumulator, { leaderFor: (_, p) => (p === 0 ? undefined : 3) });
    expect(drained.map((b) => b.partition)).toEqual([1]);
    expect(accumulator.ready().readyPartitions).toEqual([{ topic: 'orders', partition: 0 }]);
    expect(drainAll(accumulator).map((b) => b.partition)).toEqual([0]);
  });

  it('drains one batch per partition at a time, oldest first', async () => {
    const { accumulator } = setup({ batchBytes: THREE_RECORDS });
    for (let i = 0; i < 9; i++) await accumulator.append(r(i));
    expect(drainAll(accumulator).map(values)).toEqual([['v0', 'v1', 'v2']]);
    expect(drainAll(accumulator).map(values)).toEqual([['v3', 'v4', 'v5']]);
    expect(drainAll(accumulator).map(values)).toEqual([['v6', 'v7', 'v8']]);
  });

  it('puts no more than maxRequestBytes of batches in one request', async () => {
    const { accumulator } = setup({
      batchBytes: THREE_RECORDS,
      maxRequestBytes: 2 * THREE_RECORDS + 10,
    });
    for (const partition of [0, 1, 2]) {
      for (let i = 0; i < 3; i++) await accumulator.append(r(i, { partition }));
    }
    const first = drainAll(accumulator);
    expect(first).toHaveLength(2);
    expect(first.reduce((sum, b) => sum + b.sizeInBytes, 0)).toBeLessThanOrEqual(
      2 * THREE_RECORDS + 10,
    );
    expect(drainAll(accumulator)).toHaveLength(1);
  });

  it('starts draining at a different partition each time, so that none starves', async () => {
    const { accumulator } = setup({ batchBytes: THREE_RECORDS, maxRequestBytes: THREE_RECORDS });
    for (const partition of [0, 1, 2]) {
      for (let i = 0; i < 6; i++) await accumulator.append(r(i, { partition }));
    }
    const served = [0, 1, 2].map(() => drainAll(accumulator).map((b) => b.partition));
    expect(served.map((p) => p.length)).toEqual([1, 1, 1]);
    expect(new Set(served.flat()).size).toBe(3);
  });
});

describe('RecordAccumulator.append', () => {
  it('adds records in call order without being awaited', async () => {
    const { accumulator } = setup({ lingerMs: 0 });
    const pending = [accumulator.append(r(1)), accumulator.append(r(2)), accumulator.append(r(3))];
    expect(accumulator.incompleteBatches[0]!.recordCount).toBe(3);
    await Promise.all(pending);
    expect(values(drainAll(accumulator)[0]!)).toEqual(['v1', 'v2', 'v3']);
  });

  it('stamps a record without a timestamp with the clock', async () => {
    const { clock, accumulator } = setup({ lingerMs: 0 });
    clock.now = T0 + 1234;
    await accumulator.append({ topic: 'orders', partition: 0, value: 'x' });
    await accumulator.append({ topic: 'orders', partition: 0, value: 'y', timestamp: 5n });
    const { batch, records } = decode(drainAll(accumulator)[0]!);
    expect(records.map((x) => x.timestamp)).toEqual([BigInt(T0 + 1234), 5n]);
    expect(batch.maxTimestamp).toBe(BigInt(T0 + 1234));
  });

  it('refuses fields that are not bytes, and bad timestamps, saying what to pass', async () => {
    const { accumulator } = setup();
    const bad = (record: unknown): Promise<RecordHandle> =>
      accumulator.append(record as ProducerRecord);
    expect(await rejection(bad({ topic: 'orders', partition: 0, value: 42 }))).toMatchObject({
      code: ErrorCode.INVALID_RECORD,
      message: "INVALID_RECORD: a record's value must be a Buffer, a string or null, got number",
    });
    expect((await rejection(bad({ ...r(1), key: { id: 1 } }))).message).toMatch(
      /key must be a Buffer/,
    );
    expect((await rejection(bad({ ...r(1), headers: [{ key: 7, value: 'x' }] }))).message).toMatch(
      /header key must be a string, got number/,
    );
    expect((await rejection(bad({ ...r(1), headers: { trace: 12 } }))).message).toMatch(
      /header 'trace' value must be a Buffer/,
    );
    for (const timestamp of [-1, 1.5, '2024-01-01', 2n ** 63n]) {
      expect((await rejection(bad({ ...r(1), timestamp }))).code).toBe(ErrorCode.INVALID_TIMESTAMP);
    }
    expect(accumulator.bufferedBytes).toBe(0);
  });

  it('accepts a Uint8Array and headers as an object or an array', async () => {
    const { accumulator } = setup({ lingerMs: 0 });
    await accumulator.append(
      r(1, { value: new Uint8Array([1, 2, 3]) as Buffer, headers: { a: 'x', b: null } }),
    );
    await accumulator.append(
      r(2, {
        headers: [
          { key: 'a', value: Buffer.from('y') },
          { key: 'a', value: 'z' },
        ],
      }),
    );
    const { records } = decode(drainAll(accumulator)[0]!);
    expect([...records[0]!.value!]).toEqual([1, 2, 3]);
    expect(records[0]!.headers).toEqual([
      { key: 'a', value: Buffer.from('x') },
      { key: 'b', value: null },
    ]);
    expect(records[1]!.headers.map((h) => h.value!.toString())).toEqual(['y', 'z']);
  });

  it('says whether a record would start a new batch (for the sticky partitioner)', async () => {
    const { accumulator } = setup({ batchBytes: THREE_RECORDS, lingerMs: 0 });
    expect(accumulator.startsNewBatch(r(1))).toBe(true);
    await accumulator.append(r(1));
    expect(accumulator.startsNewBatch(r(2))).toBe(false);
    expect(accumulator.startsNewBatch(r(2, { partition: 1 }))).toBe(true);
    expect(accumulator.startsNewBatch(r(2, { value: Buffer.alloc(100) }))).toBe(true);
    drainAll(accumulator);
    expect(accumulator.startsNewBatch(r(2))).toBe(true);
  });

  it('reports a missing topic or partition as a bug in the caller', async () => {
    const { accumulator } = setup();
    expect((await rejection(accumulator.append(r(1, { partition: -1 })))).code).toBe(
      ErrorCode.ILLEGAL_STATE,
    );
    expect((await rejection(accumulator.append(r(1, { topic: '' })))).code).toBe(
      ErrorCode.ILLEGAL_STATE,
    );
  });
});

describe('RecordAccumulator results', () => {
  it("resolves each record with the batch's baseOffset plus its index", async () => {
    const { accumulator } = setup({ lingerMs: 0 });
    const handles = [
      await accumulator.append(r(1)),
      await accumulator.append(r(2)),
      await accumulator.append(r(3)),
    ];
    const [batch] = drainAll(accumulator);
    accumulator.complete(batch!, { baseOffset: 1000n });
    const results: RecordMetadata[] = await Promise.all(handles.map((h) => h.result));
    expect(results).toEqual([
      { topic: 'orders', partition: 0, offset: 1000n },
      { topic: 'orders', partition: 0, offset: 1001n },
      { topic: 'orders', partition: 0, offset: 1002n },
    ]);
    expect(accumulator.bufferedBytes).toBe(0);
    expect(accumulator.incompleteBatches).toEqual([]);
  });

  it('resolves offsets as -1 when the broker gives none (acks 0)', async () => {
    const { accumulator } = setup({ lingerMs: 0 });
    const handle = await accumulator.append(r(1));
    accumulator.complete(drainAll(accumulator)[0]!);
    expect((await handle.result).offset).toBe(-1n);
  });

  it('rejects every record of a failed batch and frees its memory', async () => {
    const { accumulator } = setup({ lingerMs: 0 });
    const handles = [await accumulator.append(r(1)), await accumulator.append(r(2))];
    const error = new WeirError(ErrorCode.MESSAGE_TOO_LARGE);
    accumulator.fail(drainAll(accumulator)[0]!, error);
    for (const handle of handles) await expect(handle.result).rejects.toBe(error);
    expect(accumulator.bufferedBytes).toBe(0);
  });

  it('finds batches past their delivery timeout, and fails them while still queued', async () => {
    const { clock, accumulator } = setup({ lingerMs: 0, batchBytes: THREE_RECORDS });
    const old = [await accumulator.append(r(1))];
    clock.now += 50;
    for (let i = 2; i <= 4; i++) old.push(await accumulator.append(r(i)));
    const young = old.pop()!;
    clock.now += 60;
    const expired = accumulator.expiredBatches(clock.now, 100);
    expect(expired.map((b) => b.recordCount)).toEqual([3]);
    const timeout = new WeirError(ErrorCode.REQUEST_TIMED_OUT, 'delivery timeout');
    for (const batch of expired) accumulator.fail(batch, timeout);
    for (const handle of old) await expect(handle.result).rejects.toBe(timeout);
    expect(accumulator.incompleteBatches.map((b) => b.recordCount)).toEqual([1]);
    expectMemoryMatchesBatches(accumulator);
    expect(accumulator.expiredBatches(clock.now + 1000, 100)).toHaveLength(1);
    accumulator.complete(drainAll(accumulator)[0]!, { baseOffset: 3n });
    expect((await young.result).offset).toBe(3n);
  });

  it('reports completing a batch twice as a bug', async () => {
    const { accumulator } = setup({ lingerMs: 0 });
    await accumulator.append(r(1));
    const [batch] = drainAll(accumulator);
    accumulator.complete(batch!, { baseOffset: 0n });
    expect(() => accumulator.complete(batch!, { baseOffset: 0n })).toThrow(
      /already completed or failed/,
    );
  });
});

describe('RecordAccumulator.flush', () => {
  it('sends batches before their linger and resolves once they complete', async () => {
    const { accumulator } = setup({ lingerMs: 60_000 });
    await accumulator.append(r(1));
    expect(drainAll(accumulator)).toEqual([]);
    const flushed = accumulator.flush();
    expect(accumulator.ready().readyPartitions).toHaveLength(1);
    const [batch] = drainAll(accumulator);
    expect(await settled(flushed)).toBe(false);
    accumulator.complete(batch!, { baseOffset: 0n });
    await flushed;
    // Over: batches linger again.
    await accumulator.append(r(2));
    expect(drainAll(accumulator)).toEqual([]);
  });

  it('does not wait for records appended after it began', async () => {
    const { accumulator } = setup({ lingerMs: 60_000 });
    await accumulator.append(r(1, { partition: 0 }));
    const flushed = accumulator.flush();
    const [batch] = drainAll(accumulator);
    await accumulator.append(r(2, { partition: 1 }));
    accumulator.complete(batch!, { baseOffset: 0n });
    await flushed;
    expect(accumulator.incompleteBatches).toHaveLength(1);
  });

  it('resolves when batches fail, and at once with nothing buffered', async () => {
    const { accumulator } = setup();
    await accumulator.flush();
    const handle = await accumulator.append(r(1));
    const flushed = accumulator.flush();
    accumulator.fail(drainAll(accumulator)[0]!, new Error('broken'));
    await flushed;
    await expect(handle.result).rejects.toThrow('broken');
  });
});

describe('RecordAccumulator built batches', () => {
  it('decode with the protocol view: CRC, count, offsets deltas, records, no producer fields', async () => {
    const { accumulator } = setup({ lingerMs: 0 });
    await accumulator.append(r(1, { headers: { trace: 'abc' } }));
    await accumulator.append({
      topic: 'orders',
      partition: 0,
      key: null,
      value: null,
      timestamp: T0 + 7,
    });
    const [built] = drainAll(accumulator);
    expect(built!.isClosed).toBe(true);
    const { batch, records } = decode(built!);
    expect(batch.computeCrc()).toBe(batch.crc);
    expect(batch.recordCount).toBe(2);
    expect(batch.lastOffsetDelta).toBe(1);
    expect(batch.compression).toBe('none');
    expect(batch.baseTimestamp).toBe(BigInt(T0));
    expect(batch.maxTimestamp).toBe(BigInt(T0 + 7));
    expect([batch.producerId, batch.producerEpoch, batch.baseSequence]).toEqual([-1n, -1, -1]);
    expect([built!.producerId, built!.producerEpoch, built!.baseSequence]).toEqual([-1n, -1, -1]);
    expect(records[0]).toMatchObject({
      offset: 0n,
      key: Buffer.from('k1'),
      value: Buffer.from('v1'),
      headers: [{ key: 'trace', value: Buffer.from('abc') }],
    });
    expect(records[1]).toMatchObject({
      offset: 1n,
      key: null,
      value: null,
      timestamp: BigInt(T0 + 7),
    });
    expect(built!.sizeInBytes).toBe(built!.estimatedSizeInBytes);
  });

  it('compresses with gzip when configured', async () => {
    const { accumulator } = setup({ lingerMs: 0, compression: 'gzip' });
    const value = 'a fairly repetitive value '.repeat(20);
    for (let i = 0; i < 5; i++) await accumulator.append(r(i, { value }));
    const [built] = drainAll(accumulator);
    const { batch, records } = decode(built!);
    expect(batch.compression).toBe('gzip');
    expect(records.map((x) => x.value!.toString())).toEqual(Array(5).fill(value));
    expect(built!.sizeInBytes).toBeLessThan(built!.estimatedSizeInBytes);
    expect(built!.sizeInBytes).toBe(built!.buffer.length);
  });

  it('stamps producer id, epoch and consecutive base sequences per partition', async () => {
    const { accumulator } = setup({ batchBytes: THREE_RECORDS });
    for (let i = 0; i < 7; i++) await accumulator.append(r(i, { partition: 0 }));
    for (let i = 0; i < 2; i++) await accumulator.append(r(i, { partition: 1 }));
    const producer = { producerId: 4242n, producerEpoch: 3 };
    const seen: [number, number, number][] = [];
    const flushed = accumulator.flush();
    for (let round = 0; round < 3; round++) {
      for (const built of drainAll(accumulator, { producer })) {
        const { batch } = decode(built);
        expect([batch.producerId, batch.producerEpoch]).toEqual([4242n, 3]);
        expect(batch.baseSequence).toBe(built.baseSequence);
        seen.push([built.partition, batch.baseSequence, batch.recordCount]);
        accumulator.complete(built, { baseOffset: 0n });
      }
    }
    await flushed;
    expect(seen.filter(([p]) => p === 0)).toEqual([
      [0, 0, 3],
      [0, 3, 3],
      [0, 6, 1],
    ]);
    expect(seen.filter(([p]) => p === 1)).toEqual([[1, 0, 2]]);
    expect(accumulator.sequences.next('orders', 0)).toBe(7);
  });

  it('round-trips any records, compressed or not, and counts their memory exactly', async () => {
    const bytes = fc.oneof(
      fc.constant(null),
      fc.string({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    );
    const recordArb = fc.record({
      partition: fc.integer({ min: 0, max: 2 }),
      key: bytes,
      value: bytes,
      headers: fc.array(fc.record({ key: fc.string({ maxLength: 10 }), value: bytes }), {
        maxLength: 3,
      }),
      timestamp: fc.option(fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }), { nil: undefined }),
    });
    const asBuffer = (b: string | Buffer | null): Buffer | null =>
      typeof b === 'string' ? Buffer.from(b) : b;
    await fc.assert(
      fc.asyncProperty(
        fc.array(recordArb, { minLength: 1, maxLength: 40 }),
        fc.constantFrom('none' as const, 'gzip' as const),
        fc.integer({ min: 62, max: 2000 }),
        async (records, compression, batchBytes) => {
          const { accumulator } = setup({ compression, batchBytes, lingerMs: 0 });
          for (const record of records) {
            await accumulator.append({ topic: 'orders', ...record });
            expectMemoryMatchesBatches(accumulator);
          }
          const received = new Map<number, BatchRecord[]>();
          while (accumulator.incompleteBatches.length > 0) {
            for (const built of drainAll(accumulator)) {
              const decoded = decode(built);
              expect(decoded.batch.compression).toBe(compression);
              received.set(built.partition, [
                ...(received.get(built.partition) ?? []),
                ...decoded.records,
              ]);
              accumulator.complete(built, { baseOffset: 0n });
              expectMemoryMatchesBatches(accumulator);
            }
          }
          for (const partition of [0, 1, 2]) {
            const sent = records.filter((x) => x.partition === partition);
            const got = received.get(partition) ?? [];
            expect(got.map((x) => x.value)).toEqual(sent.map((x) => asBuffer(x.value)));
            expect(got.map((x) => x.key)).toEqual(sent.map((x) => asBuffer(x.key)));
            expect(got.map((x) => x.headers)).toEqual(
              sent.map((x) => x.headers.map((h) => ({ key: h.key, value: asBuffer(h.value) }))),
            );
            expect(got.map((x) => x.timestamp)).toEqual(sent.map((x) => x.timestamp ?? BigInt(T0)));
          }
          expect(accumulator.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('RecordAccumulator retries', () => {
  const producer = { producerId: 9n, producerEpoch: 0 };

  async function threeBatches(accumulator: RecordAccumulator): Promise<ProducerBatch[]> {
    for (let i = 0; i < 9; i++) await accumulator.append(r(i));
    return [0, 1, 2].flatMap(() => drainAll(accumulator, { producer }));
  }

  it('resends the same bytes with the same sequence, ahead of newer batches', async () => {
    const { clock, accumulator } = setup({ batchBytes: THREE_RECORDS });
    for (let i = 0; i < 6; i++) await accumulator.append(r(i));
    const [first] = drainAll(accumulator, { producer });
    const bytes = first!.buffer;
    accumulator.reenqueue(first!, { now: clock.now, backoffMs: 0 });
    const [again] = drainAll(accumulator, { producer });
    expect(again).toBe(first);
    expect(again!.buffer).toBe(bytes);
    expect(again!.attempts).toBe(2);
    expect(decode(again!).batch.baseSequence).toBe(0);
    const [next] = drainAll(accumulator, { producer });
    expect(values(next!)).toEqual(['v3', 'v4', 'v5']);
    expect(next!.baseSequence).toBe(3);
  });

  it('waits out the back-off before resending', async () => {
    const { clock, accumulator } = setup({ lingerMs: 0 });
    await accumulator.append(r(1));
    const [batch] = drainAll(accumulator, { producer });
    accumulator.reenqueue(batch!, { now: clock.now, backoffMs: 100 });
    await accumulator.append(r(2));
    clock.now += 40;
    expect(accumulator.ready()).toEqual({ readyPartitions: [], nextReadyCheckDelayMs: 60 });
    expect(drainAll(accumulator, { producer })).toEqual([]); // the new batch may not overtake
    clock.now += 60;
    expect(drainAll(accumulator, { producer })).toEqual([batch]);
  });

  it('puts retries back in the order they were first sent, whatever order they fail in', async () => {
    const { clock, accumulator } = setup({ batchBytes: THREE_RECORDS });
    const [a, b, c] = await threeBatches(accumulator);
    await accumulator.append(r(9));
    const now = clock.now;
    accumulator.reenqueue(c!, { now, backoffMs: 0 });
    accumulator.reenqueue(a!, { now, backoffMs: 0 });
    accumulator.reenqueue(b!, { now, backoffMs: 0 });
    const order: ProducerBatch[] = [];
    accumulator.flush().catch(() => undefined);
    for (let i = 0; i < 4; i++) {
      const [batch] = drainAll(accumulator, { producer });
      order.push(batch!);
      accumulator.complete(batch!, { baseOffset: 0n });
    }
    expect(order.slice(0, 3)).toEqual([a, b, c]);
    expect(order.map((x) => x.baseSequence)).toEqual([0, 3, 6, 9]);
  });

  it('holds a retry while an earlier batch of its partition is still in flight', async () => {
    const { clock, accumulator } = setup({ batchBytes: THREE_RECORDS });
    const [a, b] = await threeBatches(accumulator);
    // b is refused (out of order: the broker has not seen a yet) before a is answered.
    accumulator.reenqueue(b!, { now: clock.now, backoffMs: 0 });
    expect(accumulator.ready()).toEqual({
      readyPartitions: [],
      nextReadyCheckDelayMs: Number.POSITIVE_INFINITY,
    });
    expect(drainAll(accumulator, { producer })).toEqual([]);
    accumulator.complete(a!, { baseOffset: 0n });
    expect(drainAll(accumulator, { producer })).toEqual([b]);
  });

  it('sends a retry while later batches of its partition are in flight', async () => {
    const { clock, accumulator } = setup({ batchBytes: THREE_RECORDS });
    const [a, b] = await threeBatches(accumulator);
    accumulator.reenqueue(a!, { now: clock.now, backoffMs: 0 });
    expect(drainAll(accumulator, { producer })).toEqual([a]);
    // b is refused in turn and goes behind a, which is in flight again.
    accumulator.reenqueue(b!, { now: clock.now, backoffMs: 0 });
    expect(drainAll(accumulator, { producer })).toEqual([]);
  });

  it('delivers every record exactly once, in order, through lost requests, lost responses and retries', async () => {
    type Step =
      | { op: 'append'; partition: number }
      | { op: 'tick'; ms: number }
      | { op: 'drain' }
      | { op: 'answer'; outcome: 'ok' | 'request lost' | 'response lost' };
    const step: fc.Arbitrary<Step> = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          op: fc.constant('append' as const),
          partition: fc.integer({ min: 0, max: 2 }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          op: fc.constant('tick' as const),
          ms: fc.integer({ min: 0, max: 20 }),
        }),
      },
      { weight: 2, arbitrary: fc.constant({ op: 'drain' as const }) },
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant('answer' as const),
          outcome: fc.constantFrom(
            'ok' as const,
            'ok' as const,
            'request lost' as const,
            'response lost' as const,
          ),
        }),
      },
    );

    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 20, maxLength: 150, size: 'max' }),
        fc.constantFrom('none' as const, 'gzip' as const),
        async (steps, compression) => {
          const { clock, accumulator } = setup({
            batchBytes: THREE_RECORDS,
            lingerMs: 5,
            compression,
          });
          const broker = new IdempotentBroker();
          const inFlight: ProducerBatch[] = []; // one connection: the broker takes requests in order
          const sent = new Map<number, string[]>();
          const results: Promise<{ value: string; metadata: RecordMetadata }>[] = [];
          let counter = 0;

          const drain = (): void => {
            inFlight.push(...drainAll(accumulator, { now: clock.now, producer }));
          };
          const answer = (outcome: 'ok' | 'request lost' | 'response lost'): void => {
            const batch = inFlight.shift();
            if (batch === undefined) return;
            const baseOffset = outcome === 'request lost' ? undefined : broker.produce(batch);
            if (outcome === 'ok' && baseOffset !== undefined)
              accumulator.complete(batch, { baseOffset });
            else accumulator.reenqueue(batch, { now: clock.now, backoffMs: 3 });
          };

          for (const s of steps) {
            if (s.op === 'append') {
              const value = `v${counter++}`;
              const handle = await accumulator.append({
                topic: 'orders',
                partition: s.partition,
                value,
              });
              sent.set(s.partition, [...(sent.get(s.partition) ?? []), value]);
              results.push(handle.result.then((metadata) => ({ value, metadata })));
            } else if (s.op === 'tick') clock.now += s.ms;
            else if (s.op === 'drain') drain();
            else answer(s.outcome);
            expectMemoryMatchesBatches(accumulator);
          }

          const flushed = accumulator.flush();
          for (let round = 0; accumulator.incompleteBatches.length > 0; round++) {
            expect(round).toBeLessThan(1000);
            clock.now += 10;
            drain();
            while (inFlight.length > 0) answer('ok');
          }
          await flushed;

          for (const partition of [0, 1, 2]) {
            expect(broker.log(partition)).toEqual(sent.get(partition) ?? []);
          }
          for (const { value, metadata } of await Promise.all(results)) {
            expect(broker.log(metadata.partition)[Number(metadata.offset)]).toBe(value);
          }
          expect(accumulator.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

/** A partition leader's idempotent producer state (KIP-98), simplified: writes a batch whose
 * base sequence is the next expected, answers a duplicate with its original offset, and
 * refuses a gap (OUT_OF_ORDER_SEQUENCE_NUMBER: returns undefined). */
class IdempotentBroker {
  private readonly partitions = new Map<
    number,
    { log: string[]; next: number; written: Map<number, bigint> }
  >();

  log(partition: number): string[] {
    return this.partitions.get(partition)?.log ?? [];
  }

  produce(batch: ProducerBatch): bigint | undefined {
    const view = RecordBatch.validated(batch.buffer);
    let state = this.partitions.get(batch.partition);
    if (state === undefined) {
      state = { log: [], next: 0, written: new Map() };
      this.partitions.set(batch.partition, state);
    }
    const duplicate = state.written.get(view.baseSequence);
    if (duplicate !== undefined) return duplicate;
    if (view.baseSequence !== state.next) return undefined;
    const baseOffset = BigInt(state.log.length);
    for (const record of view.records()) state.log.push(record.value!.toString());
    state.written.set(view.baseSequence, baseOffset);
    state.next += view.recordCount;
    return baseOffset;
  }
}

describe('RecordAccumulator buffer memory', () => {
  it('makes an append wait while memory is used up, until a batch completes', async () => {
    const { accumulator } = setup({ bufferMemoryBytes: 270, batchBytes: THREE_RECORDS });
    const handles: RecordHandle[] = [];
    for (let i = 0; i < 6; i++) handles.push(await accumulator.append(r(i)));
    expectMemoryMatchesBatches(accumulator);
    expect(accumulator.bufferedBytes).toBe(2 * THREE_RECORDS);
    const blocked = accumulator.append(r(6));
    expect(await settled(blocked)).toBe(false);
    expect(accumulator.waitingAppends).toBe(1);
    // Appends waiting for memory make every batch ready (Kafka's "exhausted").
    expect(accumulator.ready().readyPartitions).toHaveLength(1);
    const [batch] = drainAll(accumulator);
    expect(await settled(blocked)).toBe(false);
    accumulator.complete(batch!, { baseOffset: 0n });
    const handle = await blocked;
    expect(handle.newBatchCreated).toBe(true);
    expectMemoryMatchesBatches(accumulator);
  });

  it('lets waiting appends in first come, first served, keeping their order', async () => {
    // 110 bytes held; each waiting append reserves 85 until it knows its exact size (72 or 11).
    const { accumulator } = setup({ bufferMemoryBytes: 180, lingerMs: 0 });
    await accumulator.append(r(0, { partition: 1, value: Buffer.alloc(40) }));
    const waiting = [1, 2, 3].map((i) => accumulator.append(r(i)));
    expect(accumulator.waitingAppends).toBeGreaterThan(0);
    accumulator.complete(drainAll(accumulator)[0]!, { baseOffset: 0n });
    await Promise.all(waiting);
    expect(values(drainAll(accumulator)[0]!)).toEqual(['v1', 'v2', 'v3']);
  });

  it('gives up waiting when the signal aborts, appending nothing', async () => {
    const { accumulator } = setup({ bufferMemoryBytes: 100 });
    await accumulator.append(r(1, { value: Buffer.alloc(10) }));
    const used = accumulator.bufferedBytes;
    const controller = new AbortController();
    const blocked = accumulator.append(r(2), { signal: controller.signal });
    expect(await settled(blocked)).toBe(false);
    controller.abort();
    const error = await rejection(blocked);
    expect(error.code).toBe(ErrorCode.REQUEST_TIMED_OUT);
    expect(error.message).toMatch(/raise bufferMemoryBytes/);
    expect(accumulator.bufferedBytes).toBe(used);
    expect(accumulator.incompleteBatches.map((b) => b.recordCount)).toEqual([1]);
    expect(accumulator.waitingAppends).toBe(0);
  });

  it('refuses an append at once with an aborted signal', async () => {
    const { accumulator } = setup();
    expect((await rejection(accumulator.append(r(1), { signal: AbortSignal.abort() }))).code).toBe(
      ErrorCode.REQUEST_TIMED_OUT,
    );
    expect(accumulator.bufferedBytes).toBe(0);
  });

  it('takes a record that needs the whole budget once everything else is acknowledged', async () => {
    // r(i) takes 72 bytes as a batch of its own, but up to 85 at the widest deltas.
    const { accumulator } = setup({ bufferMemoryBytes: 80, lingerMs: 0 });
    const first = await accumulator.append(r(1));
    const second = accumulator.append(r(2));
    expect(await settled(second)).toBe(false);
    accumulator.complete(drainAll(accumulator)[0]!, { baseOffset: 5n });
    await second;
    expect((await first.result).offset).toBe(5n);
    expect(accumulator.bufferedBytes).toBe(RECORD_BATCH_OVERHEAD + RECORD_BYTES);
  });

  it('refuses a record that could never be sent, saying which limit to raise', async () => {
    const { accumulator } = setup({ maxRequestBytes: 1000, batchBytes: 1000 });
    const tooBig = await rejection(accumulator.append(r(1, { value: Buffer.alloc(1000) })));
    expect(tooBig.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(tooBig.message).toMatch(
      /orders-0 takes 1072 bytes .* more than maxRequestBytes 1000; .* raise maxRequestBytes/,
    );
    const small = setup({ bufferMemoryBytes: 500 }).accumulator;
    expect((await rejection(small.append(r(1, { value: Buffer.alloc(600) })))).message).toMatch(
      /more than bufferMemoryBytes 500/,
    );
  });
});

describe('RecordAccumulator.abortAll', () => {
  it('fails queued and in-flight batches and waiting appends, and refuses more', async () => {
    const { accumulator } = setup({ bufferMemoryBytes: 270, batchBytes: THREE_RECORDS });
    const handles: RecordHandle[] = [];
    for (let i = 0; i < 6; i++) handles.push(await accumulator.append(r(i)));
    const [inFlight] = drainAll(accumulator);
    const waiting = accumulator.append(r(7));
    const closed = new WeirError(ErrorCode.ILLEGAL_STATE, 'the producer is closed');
    accumulator.abortAll(closed);
    await expect(waiting).rejects.toBe(closed);
    for (const handle of handles) await expect(handle.result).rejects.toBe(closed);
    await expect(accumulator.append(r(8))).rejects.toBe(closed);
    expect(accumulator.bufferedBytes).toBe(0);
    expect(accumulator.incompleteBatches).toEqual([]);
    // A response that arrives afterwards is ignored.
    accumulator.complete(inFlight!, { baseOffset: 0n });
  });
});

describe('RecordAccumulator.abortAll, racing a grant of memory', () => {
  it('refuses an append whose memory was granted just before the abort', async () => {
    const { accumulator } = setup({ bufferMemoryBytes: 100, lingerMs: 0 });
    const first = await accumulator.append(r(1));
    const granted = accumulator.append(r(2));
    const closed = new Error('closed');
    accumulator.complete(drainAll(accumulator)[0]!, { baseOffset: 0n }); // grants r(2)'s memory
    accumulator.abortAll(closed); // before r(2)'s append continues
    await expect(granted).rejects.toBe(closed);
    expect((await first.result).offset).toBe(0n);
    expect(accumulator.bufferedBytes).toBe(0);
  });
});

describe('resolveAccumulatorConfig', () => {
  it("uses Kafka's defaults", () => {
    expect(resolveAccumulatorConfig({})).toEqual({
      batchBytes: DEFAULT_BATCH_BYTES,
      lingerMs: DEFAULT_LINGER_MS,
      bufferMemoryBytes: DEFAULT_BUFFER_MEMORY_BYTES,
      maxRequestBytes: DEFAULT_MAX_REQUEST_BYTES,
      compression: 'none',
    });
    expect([DEFAULT_BATCH_BYTES, DEFAULT_BUFFER_MEMORY_BYTES, DEFAULT_MAX_REQUEST_BYTES]).toEqual([
      16384, 33554432, 1048576,
    ]);
  });

  it('says what to change', () => {
    const message = (config: unknown): string => {
      try {
        resolveAccumulatorConfig(config as RecordAccumulatorConfig);
      } catch (error) {
        expect((error as WeirError).code).toBe(ErrorCode.INVALID_CONFIG);
        return (error as WeirError).message;
      }
      throw new Error('expected INVALID_CONFIG');
    };
    expect(message({ lingerMs: -1 })).toBe(
      'INVALID_CONFIG: lingerMs must be a whole number from 0 to 2147483647, got -1; the default is 5',
    );
    expect(message({ batchBytes: '16k' })).toMatch(
      /batchBytes must be a whole number .* got string/,
    );
    expect(message({ bufferMemoryBytes: 1.5 })).toMatch(/bufferMemoryBytes must be a whole number/);
    expect(message({ batchBytes: 2_000_000 })).toMatch(
      /batchBytes \(2000000\) must not exceed maxRequestBytes \(1048576\)/,
    );
    expect(message({ compression: 'snappy' })).toMatch(
      /compression must be 'none' or 'gzip', got "snappy"; snappy, lz4 and zstd are not supported yet/,
    );
    expect(() => new RecordAccumulator({ maxRequestBytes: 10 })).toThrow(/maxRequestBytes must be/);
  });
});
