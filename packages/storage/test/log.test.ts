import { mkdtemp, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, RecordBatch, RecordBatchBuilder, batchesIn } from '@weir/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Log } from '../src/log.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-log-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function batch(values: string[], timestamp = 1_000): Buffer {
  const builder = new RecordBatchBuilder();
  for (const value of values) builder.append({ value, timestamp });
  return builder.build();
}

function offsetsOf(records: Buffer): bigint[] {
  return [...batchesIn(records, { validateCrc: true })].flatMap((b) =>
    [...b.records()].map((r) => r.offset),
  );
}

describe('Log', () => {
  it('assigns offsets, reads them back and survives a clean reopen', async () => {
    const log = await Log.open(dir);
    const first = await log.append(batch(['a', 'b']), { leaderEpoch: 0 });
    const second = await log.append(batch(['c']), { leaderEpoch: 1 });
    expect([first.baseOffset, first.lastOffset, second.baseOffset]).toEqual([0n, 1n, 2n]);
    expect(log.logEndOffset).toBe(3n);
    expect(offsetsOf((await log.read(1n, 1)).records)).toEqual([0n, 1n]);
    expect(offsetsOf((await log.read(0n, 1 << 20)).records)).toEqual([0n, 1n, 2n]);
    await log.close();

    const reopened = await Log.open(dir);
    expect(reopened.openReport.cleanShutdown).toBe(true);
    expect(reopened.logEndOffset).toBe(3n);
    expect(reopened.endOffsetForEpoch(0)).toEqual({ epoch: 0, endOffset: 2n });
    const records = (await reopened.read(2n, 100)).records;
    expect(RecordBatch.view(records).partitionLeaderEpoch).toBe(1);
    await reopened.close();
  });

  it('reads into a caller-provided buffer when it is large enough', async () => {
    const log = await Log.open(dir, { config: { indexIntervalBytes: 64 } });
    for (let i = 0; i < 20; i++) await log.append(batch([`v${i}`, `w${i}`]), { leaderEpoch: 0 });
    const buffer = Buffer.alloc(4096 + 2 * 64);
    for (const offset of [0n, 7n, 38n]) {
      const fresh = (await log.read(offset, 4096)).records;
      const reused = (await log.read(offset, 4096, { buffer })).records;
      expect(reused.equals(fresh)).toBe(true);
      expect(reused.buffer).toBe(buffer.buffer);
    }
    const tooSmall = Buffer.alloc(10);
    const records = (await log.read(0n, 4096, { buffer: tooSmall })).records;
    expect(records.buffer).not.toBe(tooSmall.buffer);
    expect(offsetsOf(records)[0]).toBe(0n);
    await log.close();
  });

  it('rolls segments by size and reads across them', async () => {
    const log = await Log.open(dir, { config: { segmentBytes: 300 } });
    for (let i = 0; i < 10; i++)
      await log.append(batch([`value-${i}`.repeat(5)]), { leaderEpoch: 0 });
    expect(log.segmentCount).toBeGreaterThan(2);
    const all: bigint[] = [];
    let offset = 0n;
    while (offset < log.logEndOffset) {
      const offsets = offsetsOf((await log.read(offset, 1)).records);
      all.push(...offsets);
      offset = offsets[offsets.length - 1]! + 1n;
    }
    expect(all).toEqual([...Array(10).keys()].map(BigInt));
    expect((await readdir(dir)).filter((f) => f.endsWith('.log')).length).toBe(log.segmentCount);
    await log.close();
  });

  it('refuses corrupt and oversized batches without writing anything', async () => {
    const log = await Log.open(dir, { config: { maxMessageBytes: 200 } });
    const corrupt = batch(['x']);
    corrupt.writeUInt8(corrupt.readUInt8(corrupt.length - 1) ^ 0xff, corrupt.length - 1);
    await expect(log.append(corrupt, { leaderEpoch: 0 })).rejects.toMatchObject({
      code: ErrorCode.CORRUPT_MESSAGE,
    });
    await expect(log.append(batch(['y'.repeat(300)]), { leaderEpoch: 0 })).rejects.toMatchObject({
      code: ErrorCode.MESSAGE_TOO_LARGE,
    });
    expect(log.logEndOffset).toBe(0n);
    expect(log.sizeInBytes).toBe(0);
    await log.close();
  });

  it('concurrent appends share writer turns and get contiguous offsets', async () => {
    const log = await Log.open(dir);
    const results = await Promise.all(
      [...Array(50).keys()].map((i) => log.append(batch([`v${i}`, `w${i}`]), { leaderEpoch: 0 })),
    );
    const bases = results.map((r) => r.baseOffset).sort((a, b) => (a < b ? -1 : 1));
    expect(bases).toEqual([...Array(50).keys()].map((i) => BigInt(2 * i)));
    expect(log.recoveryPoint).toBe(100n);
    await log.close();
  });

  it('truncates to an offset and continues appending there', async () => {
    const log = await Log.open(dir, { config: { segmentBytes: 200 } });
    for (let i = 0; i < 6; i++)
      await log.append(batch([`v${i}`.repeat(20)]), { leaderEpoch: i < 3 ? 0 : 1 });
    await log.truncateTo(2n);
    expect(log.logEndOffset).toBe(2n);
    expect(log.latestEpoch).toBe(0);
    expect(log.endOffsetForEpoch(0)).toEqual({ epoch: 0, endOffset: 2n });
    expect((await log.append(batch(['again']), { leaderEpoch: 2 })).baseOffset).toBe(2n);
    await log.close();
  });
});

describe('retention by time', () => {
  it('keeps a segment whose records carry no timestamp until it is old by the broker clock', async () => {
    let nowMs = 1_000_000;
    const log = await Log.open(dir, { clock: () => nowMs, config: { retentionMs: 10_000 } });
    const noTimestamp = () =>
      new RecordBatchBuilder().append({ value: 'x', timestamp: -1 }).build();
    await log.append(noTimestamp(), { leaderEpoch: 0 });
    await log.roll();
    await log.append(noTimestamp(), { leaderEpoch: 0 });
    expect(await log.deleteOldSegments()).toBe(0);
    nowMs += 10_001;
    expect(await log.deleteOldSegments()).toBe(1);
    expect(log.logStartOffset).toBe(1n);
    await log.close();
  });
});
