// LogManager (the logs of one data directory) and the time-driven parts of a Log: retention,
// flush policies and segment.ms, all on an injected clock, never on real waiting.

import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, isWeirError } from '@weir/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Log, RECOVERY_POINT_CHECKPOINT } from '../src/log.js';
import { LogManager, type LogManagerOptions } from '../src/log-manager.js';
import { readOffsetCheckpoint } from '../src/checkpoint-file.js';
import {
  ManualClock,
  buildBatch,
  offsetsOf,
  removeDir,
  tempDir,
  valuesBatch,
  waitFor,
} from './helpers.js';

const orders0 = { topic: 'orders', partition: 0 };
const orders1 = { topic: 'orders', partition: 1 };

let dir: string;
let clock: ManualClock;
const managers: LogManager[] = [];

async function openManager(options: LogManagerOptions = {}): Promise<LogManager> {
  const manager = await LogManager.open(dir, { clock: clock.now, ...options });
  managers.push(manager);
  return manager;
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

beforeEach(async () => {
  dir = await tempDir('manager');
  clock = new ManualClock();
});
afterEach(async () => {
  for (const manager of managers.splice(0)) await manager.close();
  await removeDir(dir);
});

describe('LogManager', () => {
  it('opens the existing partition logs after a restart', async () => {
    const first = await openManager();
    await (await first.getOrCreateLog(orders0)).append(valuesBatch(['a', 'b']), { leaderEpoch: 0 });
    await (await first.getOrCreateLog(orders1)).append(valuesBatch(['c']), { leaderEpoch: 0 });
    await first.getOrCreateLog({ topic: 'my.topic_with-dashes', partition: 12 });
    await first.close();
    // Folders that are not partition logs are left alone.
    await mkdir(join(dir, 'lost+found'));
    await mkdir(join(dir, 'not-a-partition-x'));

    const second = await openManager();
    const names = second
      .allLogs()
      .map(([tp]) => `${tp.topic}/${tp.partition}`)
      .sort();
    expect(names).toEqual(['my.topic_with-dashes/12', 'orders/0', 'orders/1']);
    const log = second.getLog(orders0)!;
    expect(log.openReport.cleanShutdown).toBe(true);
    expect(offsetsOf((await log.read(0n, 1 << 20)).records)).toEqual([0n, 1n]);
    expect(second.getLog(orders1)!.logEndOffset).toBe(1n);
    expect(await second.getOrCreateLog(orders0)).toBe(log);
  });

  it('gives concurrent getOrCreateLog calls the same log', async () => {
    const manager = await openManager();
    const [a, b, c] = await Promise.all([
      manager.getOrCreateLog(orders0),
      manager.getOrCreateLog(orders0),
      manager.getOrCreateLog(orders0),
    ]);
    expect(a).toBe(b);
    expect(b).toBe(c);
    expect(manager.getLog(orders0)).toBe(a);
    expect(manager.allLogs()).toHaveLength(1);
  });

  it('refuses invalid topic-partitions with a rejection', async () => {
    const manager = await openManager();
    for (const tp of [
      { topic: '../escape', partition: 0 },
      { topic: '', partition: 0 },
      { topic: 'ok', partition: -1 },
      { topic: 'ok', partition: 1.5 },
    ]) {
      const error = await rejectionOf(manager.getOrCreateLog(tp));
      expect(isWeirError(error, ErrorCode.INVALID_TOPIC_EXCEPTION)).toBe(true);
    }
  });

  it('deletes a log and its folder', async () => {
    const manager = await openManager();
    const log = await manager.getOrCreateLog(orders0);
    await log.append(valuesBatch(['a']), { leaderEpoch: 0 });
    await manager.deleteLog(orders0);
    expect(await readdir(dir)).not.toContain('orders-0');
    expect(manager.getLog(orders0)).toBeUndefined();
    const error = await rejectionOf(log.append(valuesBatch(['b']), { leaderEpoch: 0 }));
    expect(isWeirError(error, ErrorCode.KAFKA_STORAGE_ERROR)).toBe(true);
    const missing = await rejectionOf(manager.deleteLog(orders0));
    expect(isWeirError(missing, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)).toBe(true);
    // Created again, it starts empty.
    expect((await manager.getOrCreateLog(orders0)).logEndOffset).toBe(0n);
  });

  it('refuses a second manager on the same data directory until the first closes', async () => {
    const first = await openManager();
    const error = await rejectionOf(LogManager.open(dir));
    expect(isWeirError(error, ErrorCode.LOG_DIRECTORY_LOCKED)).toBe(true);
    expect((error as Error).message).toContain(dir);
    await first.close();
    await openManager();
  });

  it('releases the lock when a log cannot be opened', async () => {
    const first = await openManager();
    await first.getOrCreateLog(orders0);
    await first.close();
    const checkpoint = join(dir, 'orders-0', RECOVERY_POINT_CHECKPOINT);
    await writeFile(checkpoint, 'garbage\n');
    const error = await rejectionOf(LogManager.open(dir));
    expect(isWeirError(error, ErrorCode.CORRUPT_STORE)).toBe(true);
    await writeFile(checkpoint, '0\n1\n0\n');
    await openManager();
  });

  it('refuses work after close', async () => {
    const manager = await openManager();
    await manager.close();
    const error = await rejectionOf(manager.getOrCreateLog(orders0));
    expect(isWeirError(error, ErrorCode.KAFKA_STORAGE_ERROR)).toBe(true);
  });

  it('creates a log again while its old folder is still being deleted', async () => {
    const manager = await openManager();
    const old = await manager.getOrCreateLog(orders0);
    for (let i = 0; i < 20; i++) await old.append(valuesBatch([`v${i}`]), { leaderEpoch: 0 });
    const deletion = manager.deleteLog(orders0);
    const fresh = await manager.getOrCreateLog(orders0);
    await deletion;
    expect(fresh).not.toBe(old);
    await fresh.append(valuesBatch(['new']), { leaderEpoch: 1 });
    await manager.close();
    const reopened = await openManager();
    const log = reopened.getLog(orders0)!;
    expect(log.logEndOffset).toBe(1n);
    expect(offsetsOf((await log.read(0n, 1_000)).records)).toEqual([0n]);
  });

  it('closes a log that was still being created when the manager closed', async () => {
    const manager = await openManager();
    const creating = manager.getOrCreateLog(orders0);
    await manager.close();
    const log = await creating;
    // Closed with the manager: it refuses appends and left a clean-shutdown marker.
    const error = await rejectionOf(log.append(valuesBatch(['a']), { leaderEpoch: 0 }));
    expect(isWeirError(error, ErrorCode.KAFKA_STORAGE_ERROR)).toBe(true);
    expect(await readdir(join(dir, 'orders-0'))).toContain('.clean-shutdown');
  });
});

describe('a closed log', () => {
  it('refuses changes and reads, and its timer tasks do nothing', async () => {
    const log = await Log.open(join(dir, 'orders-0'), { clock: clock.now });
    await log.append(valuesBatch(['a']), { leaderEpoch: 0 });
    await log.close();
    for (const change of [
      () => log.flush(),
      () => log.roll(),
      () => log.truncateTo(0n),
      () => log.truncateFullyAndStartAt(5n),
      () => log.deleteRecordsBefore(1n),
      () => log.deleteOldSegments(),
      () => log.read(0n, 100),
      () => log.append(valuesBatch(['b']), { leaderEpoch: 0 }),
    ]) {
      const error = await rejectionOf(change());
      expect(isWeirError(error, ErrorCode.KAFKA_STORAGE_ERROR), String(error)).toBe(true);
    }
    await log.flushIfDue();
    await log.checkpointRecoveryPoint();
    const reopened = await Log.open(join(dir, 'orders-0'), { clock: clock.now });
    expect(reopened.openReport.cleanShutdown).toBe(true);
    expect(reopened.logEndOffset).toBe(1n);
    await reopened.close();
  });
});

describe('log configuration', () => {
  it.each([
    ['segmentMs', 1.5],
    ['segmentMs', 0],
    ['retentionMs', Number.NaN],
    ['retentionMs', -2],
    ['retentionBytes', 0.5],
    ['maxMessageBytes', Number.POSITIVE_INFINITY],
    ['segmentBytes', 2 ** 31],
    ['indexIntervalBytes', 0],
    ['flushIntervalMs', -1],
    ['flushIntervalMessages', 0],
  ])('refuses %s = %s with INVALID_CONFIG naming the field', async (field, value) => {
    const error = await rejectionOf(Log.open(dir, { config: { [field]: value } }));
    expect(isWeirError(error, ErrorCode.INVALID_CONFIG)).toBe(true);
    expect((error as Error).message).toContain(field);
  });
});

describe('retention', () => {
  const HOUR = 60 * 60 * 1000;

  /** Appends batches stamped with the clock's time, advancing it `stepMs` after each. */
  async function appendTimed(log: Log, count: number, stepMs: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const batch = buildBatch([{ value: `v${i}-${'x'.repeat(80)}`, timestamp: clock.nowMs }]);
      await log.append(batch, { leaderEpoch: 0 });
      clock.advance(stepMs);
    }
  }

  it('deletes segments whose newest record is older than retention.ms, never the active one', async () => {
    const manager = await openManager({
      defaultConfig: { segmentBytes: 400, retentionMs: 20 * HOUR, retentionBytes: -1 },
    });
    const log = await manager.getOrCreateLog(orders0);
    await appendTimed(log, 12, HOUR);
    const bases = log.segmentBaseOffsets;
    expect(bases.length).toBeGreaterThan(3);
    expect(await manager.deleteOldSegments()).toBe(0);

    // The records span hours 0 to 11 and it is now hour 12: ten hours on, the segments whose
    // newest record is from before hour 2 are past retention.ms, the others are not.
    clock.advance(10 * HOUR);
    const deleted = await manager.deleteOldSegments();
    expect(deleted).toBeGreaterThan(0);
    expect(deleted).toBeLessThan(bases.length - 1);
    expect(log.segmentBaseOffsets).toEqual(bases.slice(deleted));
    expect(log.logStartOffset).toBe(bases[deleted]);
    const gone = bases[deleted]! - 1n;
    const error = await rejectionOf(log.read(gone, 1_000));
    expect(isWeirError(error, ErrorCode.OFFSET_OUT_OF_RANGE)).toBe(true);

    // Far in the future everything is expired, but the active segment stays.
    clock.advance(1_000 * HOUR);
    await manager.deleteOldSegments();
    expect(log.segmentBaseOffsets).toEqual([bases.at(-1)]);
    expect(log.logStartOffset).toBe(bases.at(-1));
    expect(log.logEndOffset).toBe(12n);
    expect(offsetsOf((await log.read(log.logStartOffset, 1 << 20)).records).at(-1)).toBe(11n);
    expect((await readdir(join(dir, 'orders-0'))).filter((f) => f.endsWith('.log'))).toHaveLength(
      1,
    );

    // The log start survives a restart.
    await manager.close();
    const reopened = await openManager();
    expect(reopened.getLog(orders0)!.logStartOffset).toBe(bases.at(-1));
  });

  it('keeps the log at or above retention.bytes by deleting its oldest segments', async () => {
    const manager = await openManager({
      defaultConfig: { segmentBytes: 400, retentionMs: -1, retentionBytes: 1_000 },
    });
    const log = await manager.getOrCreateLog(orders0);
    await appendTimed(log, 20, 1);
    const sizeBefore = log.sizeInBytes;
    const deleted = await log.deleteOldSegments();
    expect(deleted).toBeGreaterThan(0);
    // Deleting one more segment would take it below retention.bytes.
    expect(log.sizeInBytes).toBeGreaterThanOrEqual(1_000);
    expect(sizeBefore - log.sizeInBytes).toBeGreaterThan(0);
    expect(log.logStartOffset).toBe(log.segmentBaseOffsets[0]);

    log.updateConfig({ retentionBytes: 0 });
    await log.deleteOldSegments();
    expect(log.segmentCount).toBe(1);
    expect(log.logEndOffset).toBe(20n);
  });

  it('moves the log start with deleteRecordsBefore and drops the segments below it', async () => {
    const manager = await openManager({ defaultConfig: { segmentBytes: 400 } });
    const log = await manager.getOrCreateLog(orders0);
    await appendTimed(log, 12, 1);
    const bases = log.segmentBaseOffsets;
    const target = bases[2]! + 1n;
    await log.deleteRecordsBefore(target);
    expect(log.logStartOffset).toBe(target);
    expect(log.segmentBaseOffsets).toEqual(bases.slice(2));
    expect(offsetsOf((await log.read(target, 1)).records)).toEqual([target]);
  });
});

describe('flush policies', () => {
  it('interval: flushes once flushIntervalMs has passed on the clock', async () => {
    const manager = await openManager({
      defaultConfig: {
        flushPolicy: 'interval',
        flushIntervalMs: 1_000,
        flushIntervalMessages: 1e9,
      },
    });
    const log = await manager.getOrCreateLog(orders0);
    await log.append(valuesBatch(['a', 'b']), { leaderEpoch: 0 });
    await manager.flushDueLogs();
    expect(log.recoveryPoint).toBe(0n);
    clock.advance(999);
    await manager.flushDueLogs();
    expect(log.recoveryPoint).toBe(0n);
    clock.advance(1);
    await manager.flushDueLogs();
    expect(log.recoveryPoint).toBe(2n);
    // The next interval counts from that flush.
    await log.append(valuesBatch(['c']), { leaderEpoch: 0 });
    clock.advance(500);
    await manager.flushDueLogs();
    expect(log.recoveryPoint).toBe(2n);
  });

  it('interval: flushes on the append that reaches flushIntervalMessages', async () => {
    const manager = await openManager({
      defaultConfig: { flushPolicy: 'interval', flushIntervalMs: 1e9, flushIntervalMessages: 5 },
    });
    const log = await manager.getOrCreateLog(orders0);
    await log.append(valuesBatch(['a', 'b', 'c']), { leaderEpoch: 0 });
    expect(log.recoveryPoint).toBe(0n);
    await log.append(valuesBatch(['d']), { leaderEpoch: 0 });
    expect(log.recoveryPoint).toBe(0n);
    await log.append(valuesBatch(['e']), { leaderEpoch: 0 });
    expect(log.recoveryPoint).toBe(5n);
  });

  it('interval: the background task flushes when the clock says so', async () => {
    const manager = await openManager({
      defaultConfig: {
        flushPolicy: 'interval',
        flushIntervalMs: 1_000,
        flushIntervalMessages: 1e9,
      },
    });
    const errors: unknown[] = [];
    manager.startBackgroundTasks({ flushCheckIntervalMs: 5 }, (_task, error) => errors.push(error));
    const log = await manager.getOrCreateLog(orders0);
    await log.append(valuesBatch(['a']), { leaderEpoch: 0 });
    clock.advance(1_000);
    await waitFor('the flush task', () => log.recoveryPoint === 1n);
    expect(errors).toEqual([]);
  });

  it('never: leaves the recovery point behind until flush()', async () => {
    const manager = await openManager({ defaultConfig: { flushPolicy: 'never' } });
    const log = await manager.getOrCreateLog(orders0);
    for (let i = 0; i < 20; i++) await log.append(valuesBatch([`v${i}`]), { leaderEpoch: 0 });
    clock.advance(24 * 60 * 60 * 1000);
    await manager.flushDueLogs();
    expect(log.recoveryPoint).toBe(0n);
    await log.flush();
    expect(log.recoveryPoint).toBe(20n);
    await manager.checkpointRecoveryPoints();
    expect(await readOffsetCheckpoint(join(log.dir, RECOVERY_POINT_CHECKPOINT))).toBe(20n);
  });

  it('always: every append resolves flushed, concurrent ones sharing turns', async () => {
    const manager = await openManager({ defaultConfig: { flushPolicy: 'always' } });
    const log = await manager.getOrCreateLog(orders0);
    const appends = Array.from({ length: 30 }, (_, i) =>
      log.append(valuesBatch([`v${i}`]), { leaderEpoch: 0 }).then((info) => {
        // Resolved only once fsynced, so the recovery point already covers it.
        expect(log.recoveryPoint).toBeGreaterThan(info.lastOffset);
        return info;
      }),
    );
    await Promise.all(appends);
    expect(log.recoveryPoint).toBe(30n);
  });
});

describe('segment.ms', () => {
  const MINUTE = 60_000;

  it('rolls once segment.ms has passed on the broker clock since the segment was created', async () => {
    const log = await Log.open(dir, { clock: clock.now, config: { segmentMs: 10 * MINUTE } });
    try {
      // Old record timestamps do not matter: age counts from the segment's creation.
      const old = (value: string) => buildBatch([{ value, timestamp: 1_000 }]);
      await log.append(old('a'), { leaderEpoch: 0 });
      clock.advance(9 * MINUTE);
      await log.append(old('b'), { leaderEpoch: 0 });
      expect(log.segmentBaseOffsets).toEqual([0n]);
      clock.advance(MINUTE);
      await log.append(old('c'), { leaderEpoch: 0 });
      expect(log.segmentBaseOffsets).toEqual([0n, 2n]);
      // The new segment's age starts at its creation, not at its records' timestamps.
      clock.advance(9 * MINUTE);
      await log.append(old('d'), { leaderEpoch: 0 });
      expect(log.segmentBaseOffsets).toEqual([0n, 2n]);
    } finally {
      await log.close();
    }
  });

  it('keeps the creation time across a truncation', async () => {
    const log = await Log.open(dir, { clock: clock.now, config: { segmentMs: 10 * MINUTE } });
    try {
      await log.append(buildBatch([{ value: 'a', timestamp: 1_000 }]), { leaderEpoch: 0 });
      await log.append(buildBatch([{ value: 'b', timestamp: 1_000 }]), { leaderEpoch: 0 });
      await log.truncateTo(1n);
      clock.advance(MINUTE);
      await log.append(buildBatch([{ value: 'c', timestamp: 1_000 }]), { leaderEpoch: 0 });
      expect(log.segmentBaseOffsets).toEqual([0n]);
    } finally {
      await log.close();
    }
  });

  it('after a restart counts from the first batch timestamp, unless it lies in the future', async () => {
    const open = () => Log.open(dir, { clock: clock.now, config: { segmentMs: 10 * MINUTE } });
    const first = await open();
    await first.append(buildBatch([{ value: 'a', timestamp: clock.nowMs - 5 * MINUTE }]), {
      leaderEpoch: 0,
    });
    await first.close();
    const second = await open();
    // 5 minutes old by its first batch: 5 more minutes and it rolls.
    clock.advance(4 * MINUTE);
    await second.append(valuesBatch(['b'], clock.nowMs), { leaderEpoch: 0 });
    expect(second.segmentBaseOffsets).toEqual([0n]);
    clock.advance(MINUTE);
    await second.append(buildBatch([{ value: 'c', timestamp: clock.nowMs + 60 * MINUTE }]), {
      leaderEpoch: 0,
    });
    expect(second.segmentBaseOffsets).toEqual([0n, 2n]);
    await second.close();

    // A first batch stamped in the future counts as created now.
    const third = await open();
    clock.advance(9 * MINUTE);
    await third.append(valuesBatch(['d'], clock.nowMs), { leaderEpoch: 0 });
    expect(third.segmentBaseOffsets).toEqual([0n, 2n]);
    clock.advance(MINUTE);
    await third.append(valuesBatch(['e'], clock.nowMs), { leaderEpoch: 0 });
    expect(third.segmentBaseOffsets).toEqual([0n, 2n, 4n]);
    await third.close();
  });
});
