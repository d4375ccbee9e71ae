// Log.offsetForTimestamp, Kafka's ListOffsets by timestamp: the first record at or after a time,
// across batches and segments, on a real log.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordBatchBuilder } from '@weir/protocol';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Log } from './log.js';

let dir: string;
let log: Log;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-log-timestamp-'));
  // Small segments, so that the records spread over several.
  log = await Log.open(join(dir, 't-0'), { config: { segmentBytes: 300 } });
});
afterEach(async () => {
  await log.close();
  await rm(dir, { recursive: true, force: true });
});

async function append(timestamps: readonly number[]): Promise<void> {
  const builder = new RecordBatchBuilder();
  for (const timestamp of timestamps) builder.append({ value: `at ${timestamp}`, timestamp });
  await log.append(builder.build(), { leaderEpoch: 0 });
}

it('finds the first record at or after a timestamp, across batches and segments', async () => {
  // Offsets 0..8; timestamps rise, but not strictly inside the second batch (CreateTime).
  await append([1000, 1100, 1200]);
  await append([2000, 1900, 2100]);
  await append([3000, 3100, 3200]);
  expect(log.segmentCount).toBeGreaterThan(1);
  expect(await log.offsetForTimestamp(0n)).toEqual({ offset: 0n, timestamp: 1000n });
  expect(await log.offsetForTimestamp(1100n)).toEqual({ offset: 1n, timestamp: 1100n });
  expect(await log.offsetForTimestamp(1150n)).toEqual({ offset: 2n, timestamp: 1200n });
  expect(await log.offsetForTimestamp(1950n)).toEqual({ offset: 3n, timestamp: 2000n });
  expect(await log.offsetForTimestamp(2050n)).toEqual({ offset: 5n, timestamp: 2100n });
  expect(await log.offsetForTimestamp(3200n)).toEqual({ offset: 8n, timestamp: 3200n });
  expect(await log.offsetForTimestamp(3201n)).toBeUndefined();
});

it('finds nothing in an empty log, and the same after a reopen', async () => {
  expect(await log.offsetForTimestamp(0n)).toBeUndefined();
  await append([500, 600]);
  await log.close();
  log = await Log.open(join(dir, 't-0'), { config: { segmentBytes: 300 } });
  expect(await log.offsetForTimestamp(550n)).toEqual({ offset: 1n, timestamp: 600n });
});
