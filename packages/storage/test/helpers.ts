// Shared by the storage integration tests: temporary log folders, a clock the test moves by
// hand, record batches, and a polling wait (tests never sleep for a fixed time).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type RecordBatch,
  RecordBatchBuilder,
  type RecordBatchBuilderOptions,
  type RecordInput,
  batchesIn,
} from '@weir/protocol';

export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `weir-${prefix}-`));
}

export function removeDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true });
}

/** The injectable `clock` of LogOptions: time moves only when the test says so. */
export class ManualClock {
  constructor(public nowMs = 1_700_000_000_000) {}
  readonly now = (): number => this.nowMs;
  advance(ms: number): void {
    this.nowMs += ms;
  }
}

export function buildBatch(
  records: readonly RecordInput[],
  options: RecordBatchBuilderOptions = {},
): Buffer {
  const builder = new RecordBatchBuilder(options);
  for (const record of records) builder.append(record);
  return builder.build();
}

/** One batch of string values, all with the same timestamp. */
export function valuesBatch(values: readonly string[], timestamp = 1_000): Buffer {
  return buildBatch(values.map((value) => ({ value, timestamp })));
}

/** The batches of a read, CRC-checked: a read must only ever return intact batches. */
export function batchesOf(records: Buffer): RecordBatch[] {
  return [...batchesIn(records, { validateCrc: true })];
}

export function offsetsOf(records: Buffer): bigint[] {
  return batchesOf(records).flatMap((batch) => [...batch.records()].map((r) => r.offset));
}

/** Test iterations: the default keeps `pnpm test` fast; WEIR_PROPERTY_RUNS raises it. */
export function propertyRuns(defaultRuns: number): number {
  const configured = Number(process.env.WEIR_PROPERTY_RUNS);
  return Number.isInteger(configured) && configured > 0 ? configured : defaultRuns;
}

/** A vitest timeout for a property of `runs` runs taking up to `msPerRun` each. */
export function propertyTimeoutMs(runs: number, msPerRun: number): number {
  return Math.max(30_000, runs * msPerRun);
}

/** Runs `body` with a fresh temporary folder that is removed afterwards, whatever happens. */
export async function withTempDir<T>(
  prefix: string,
  body: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await tempDir(prefix);
  try {
    return await body(dir);
  } finally {
    await removeDir(dir);
  }
}

/** Polls `condition` until it holds; fails naming `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 20_000, intervalMs = 10 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
