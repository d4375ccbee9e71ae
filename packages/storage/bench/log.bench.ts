// Partition log benchmarks (issue M1):
//  - append throughput, 1 KiB records in 64 KiB batches, 8 concurrent appenders, flush `never`
//    and `always`, each next to raw sequential fs writes of the same bytes in the same run;
//  - sequential read throughput from a warm segment;
//  - recovery time of a 1 GiB log after an unclean stop.
//   pnpm bench log            (WEIR_BENCH_DIR picks the disk; WEIR_BENCH_SCALE=0.25 for a quick run)
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordBatchBuilder } from '@weir/protocol';
import { Log } from '../src/index.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const scale = Number(process.env.WEIR_BENCH_SCALE ?? '1');
const RECORD_BYTES = 1 * KiB;
const RECORDS_PER_BATCH = 64;
const CONCURRENCY = 8;

function makeBatches(totalBytes: number): Buffer[] {
  const value = Buffer.alloc(RECORD_BYTES, 0x61);
  const template = (() => {
    const builder = new RecordBatchBuilder();
    for (let i = 0; i < RECORDS_PER_BATCH; i++) builder.append({ value, timestamp: Date.now() });
    return builder.build();
  })();
  // Each append gets its own buffer, as one received from the network would be: the log
  // rewrites baseOffset in place.
  return Array.from({ length: Math.ceil(totalBytes / template.length) }, () =>
    Buffer.from(template),
  );
}

function bytesOf(batches: readonly Buffer[]): number {
  return batches.reduce((sum, b) => sum + b.length, 0);
}

function mbPerSecond(bytes: number, startNs: bigint): number {
  return bytes / MiB / (Number(process.hrtime.bigint() - startNs) / 1e9);
}

/** Flushes dirty pages of earlier phases so they do not slow the next one down. */
function settle(): void {
  execFileSync('sync');
}

async function rawWrite(
  path: string,
  batches: readonly Buffer[],
  syncEach: boolean,
): Promise<number> {
  const file = await open(path, 'a');
  const start = process.hrtime.bigint();
  for (const batch of batches) {
    await file.write(batch);
    if (syncEach) await file.datasync();
  }
  const rate = mbPerSecond(bytesOf(batches), start);
  await file.close();
  return rate;
}

async function logAppend(
  dir: string,
  batches: readonly Buffer[],
  flushPolicy: 'never' | 'always',
): Promise<{ rate: number; log: Log }> {
  const log = await Log.open(dir, { config: { flushPolicy } });
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < batches.length) await log.append(batches[next++]!, { leaderEpoch: 0 });
    }),
  );
  return { rate: mbPerSecond(bytesOf(batches), start), log };
}

async function rawRead(path: string): Promise<number> {
  const file = await open(path, 'r');
  const buffer = Buffer.allocUnsafe(1 * MiB);
  let bytes = 0;
  const start = process.hrtime.bigint();
  for (;;) {
    const { bytesRead } = await file.read(buffer, 0, buffer.length, bytes);
    if (bytesRead === 0) break;
    bytes += bytesRead;
  }
  const rate = mbPerSecond(bytes, start);
  await file.close();
  return rate;
}

/** Reads the whole log with 1 MiB reads, into fresh memory or into one reused buffer. */
async function readAll(log: Log, reuse: boolean): Promise<number> {
  const buffer = reuse ? Buffer.allocUnsafe(2 * MiB) : undefined;
  let offset = log.logStartOffset;
  let bytes = 0;
  const start = process.hrtime.bigint();
  while (offset < log.logEndOffset) {
    const { records } = await log.read(offset, 1 * MiB, { buffer });
    bytes += records.length;
    // The last batch's lastOffset: baseOffset (0) + lastOffsetDelta (23).
    let position = 0;
    let lastOffset = offset;
    while (position < records.length) {
      lastOffset = records.readBigInt64BE(position) + BigInt(records.readInt32BE(position + 23));
      position += records.readInt32BE(position + 8) + 12;
    }
    offset = lastOffset + 1n;
  }
  return mbPerSecond(bytes, start);
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(process.env.WEIR_BENCH_DIR ?? tmpdir(), 'weir-bench-'));
  const lines: string[] = [];
  const report = (line: string) => {
    console.log(line);
    lines.push(line);
  };
  try {
    const neverBatches = makeBatches(256 * MiB * scale);
    settle();
    const rawNever = await rawWrite(join(root, 'raw-never'), neverBatches, false);
    settle();
    const never = await logAppend(join(root, 'log-never'), neverBatches, 'never');
    report(
      `append, flush never:  log ${never.rate.toFixed(0)} MB/s, raw fs writes ${rawNever.toFixed(0)} MB/s, ratio ${(never.rate / rawNever).toFixed(2)} (${(bytesOf(neverBatches) / MiB).toFixed(0)} MiB)`,
    );
    const readFresh = await readAll(never.log, false);
    const readReused = await readAll(never.log, true);
    const rawReadRate = await rawRead(join(root, 'raw-never'));
    report(
      `read, warm segment:   log ${readFresh.toFixed(0)} MB/s into fresh buffers, ${readReused.toFixed(0)} MB/s into a reused buffer; raw fs reads ${rawReadRate.toFixed(0)} MB/s (1 MiB reads, page cache)`,
    );
    await never.log.close();
    await rm(join(root, 'raw-never'));
    await rm(join(root, 'log-never'), { recursive: true });

    const alwaysBatches = makeBatches(64 * MiB * scale);
    settle();
    const rawAlways = await rawWrite(join(root, 'raw-always'), alwaysBatches, true);
    const rawNoSync = await rawWrite(join(root, 'raw-always-nosync'), alwaysBatches, false);
    settle();
    const always = await logAppend(join(root, 'log-always'), alwaysBatches, 'always');
    report(
      `append, flush always: log ${always.rate.toFixed(0)} MB/s, raw fs writes with fdatasync each ${rawAlways.toFixed(0)} MB/s (ratio ${(always.rate / rawAlways).toFixed(2)}), raw without fsync ${rawNoSync.toFixed(0)} MB/s (ratio ${(always.rate / rawNoSync).toFixed(2)}) (${(bytesOf(alwaysBatches) / MiB).toFixed(0)} MiB)`,
    );
    await always.log.close();
    await rm(join(root, 'log-always'), { recursive: true });

    // Recovery: a 1 GiB log whose process stopped without closing it, so nothing says it
    // was clean and its recovery point is where it was opened (0): open scans every batch.
    const recoveryDir = join(root, 'log-recovery');
    const recoveryBatches = makeBatches(1024 * MiB * scale);
    const crashed = (await logAppend(recoveryDir, recoveryBatches, 'never')).log;
    await crashed.flush(); // on disk, but the recovery-point checkpoint still says 0
    settle();
    let start = process.hrtime.bigint();
    const recovered = await Log.open(recoveryDir);
    const recoverySeconds = Number(process.hrtime.bigint() - start) / 1e9;
    report(
      `recovery after unclean stop: ${recoverySeconds.toFixed(2)} s for ${(bytesOf(recoveryBatches) / MiB).toFixed(0)} MiB (${recovered.openReport.recoveredSegments} segment(s) scanned, ${(bytesOf(recoveryBatches) / MiB / recoverySeconds).toFixed(0)} MB/s)`,
    );
    await recovered.close();
    start = process.hrtime.bigint();
    const clean = await Log.open(recoveryDir);
    report(
      `open after clean shutdown:   ${(Number(process.hrtime.bigint() - start) / 1e6).toFixed(1)} ms for the same log`,
    );
    await clean.close();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
