// Raft benchmarks (issue M2): three voters as OS processes on loopback, each with its own
// `level` store (every persist is a synced write batch) and the gRPC transport.
//  - committed proposals per second and commit latency (propose → committed and applied on
//    the leader) for 100-byte proposals at concurrency 1, 16 and 256; the load runs inside the
//    leader process, so IPC to this parent is not in the figures;
//  - election time after kill -9 of the leader: from the kill until a survivor reports role
//    `leader`, over 20 kills; the killed node is restarted and caught up between kills.
//   pnpm bench raft       (WEIR_BENCH_DIR picks the disk; WEIR_BENCH_SCALE=0.25 for a quick run)

import { mkdtemp, rm } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type RaftProcess,
  RaftProcessCluster,
  waitFor,
} from '../test/fixtures/raft-process-cluster.js';
import type {
  BenchRequest,
  BenchResult,
  RaftProcessSettings,
} from '../test/fixtures/raft-process-protocol.js';

const scale = Number(process.env.WEIR_BENCH_SCALE ?? '1');
const VOTERS = [1, 2, 3];
const SETTINGS: RaftProcessSettings = {
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  proposeTimeoutMs: 10_000,
};
const VALUE_BYTES = 100;
/** Each load stops at its count or its time limit, whichever comes first. */
const LOADS: readonly BenchRequest[] = [
  { concurrency: 1, count: 2_000, maxSeconds: 20, valueBytes: VALUE_BYTES },
  { concurrency: 16, count: 20_000, maxSeconds: 20, valueBytes: VALUE_BYTES },
  { concurrency: 256, count: 50_000, maxSeconds: 20, valueBytes: VALUE_BYTES },
].map((load) => ({ ...load, count: Math.max(1, Math.round(load.count * scale)) }));
const WARMUP: BenchRequest = {
  concurrency: 16,
  count: 2_000,
  maxSeconds: 5,
  valueBytes: VALUE_BYTES,
};
const ELECTION_ROUNDS = Math.max(3, Math.round(20 * scale));
const CATCH_UP_TIMEOUT_MS = 30_000;
const BASELINE_WRITES = 200;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * The floor under commit latency at concurrency 1: one synced `level` batch of about one entry,
 * written one at a time (the leader and a follower each make one before an entry commits).
 */
async function syncedWriteBaselineMs(path: string): Promise<number> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(path, {
    keyEncoding: 'view',
    valueEncoding: 'view',
  });
  await db.open();
  const value = new Uint8Array(VALUE_BYTES + 32);
  const encoder = new TextEncoder();
  const start = process.hrtime.bigint();
  for (let i = 0; i < BASELINE_WRITES; i++) {
    await db.batch([{ type: 'put', key: encoder.encode(`k${i}`), value }], {
      sync: true,
    });
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6 / BASELINE_WRITES;
  await db.close();
  return ms;
}

function printLoadRow(load: BenchRequest, result: BenchResult): void {
  console.log(
    `| ${String(load.concurrency).padStart(11)} | ${String(result.committed).padStart(9)} | ` +
      `${result.seconds.toFixed(2).padStart(7)} | ${result.proposalsPerSecond.toFixed(0).padStart(11)} | ` +
      `${result.latencyP50Ms.toFixed(2).padStart(7)} | ${result.latencyP99Ms.toFixed(2).padStart(7)} | ` +
      `${result.latencyMaxMs.toFixed(1).padStart(7)} | ${String(result.failed).padStart(6)} |`,
  );
}

async function runLoads(cluster: RaftProcessCluster): Promise<void> {
  const leader = await cluster.waitForLeader();
  await leader.bench(WARMUP);
  console.log(
    `\nthroughput and commit latency, ${VALUE_BYTES}-byte proposals (leader: node ${leader.id})\n`,
  );
  console.log(
    '| concurrency | committed | seconds | proposals/s | p50 ms  | p99 ms  | max ms  | failed |',
  );
  console.log(
    '| ----------: | --------: | ------: | ----------: | ------: | ------: | ------: | -----: |',
  );
  for (const load of LOADS) printLoadRow(load, await leader.bench(load));
}

/** Waits until `node` applied exactly what the leader applied. */
async function caughtUp(node: RaftProcess, leader: RaftProcess): Promise<void> {
  const target = await leader.applied(false);
  await waitFor(
    `node ${node.id} to catch up to index ${target.appliedIndex}`,
    async () => {
      const state = await node.applied(false);
      return state.appliedIndex >= target.appliedIndex && state.hash === target.hash;
    },
    { timeoutMs: CATCH_UP_TIMEOUT_MS },
  );
}

interface ElectionRound {
  readonly electionMs: number;
  /** From the kill until the first survivor left the follower role (its timeout fired). */
  readonly detectionMs: number;
}

async function electionRound(cluster: RaftProcessCluster, round: number): Promise<ElectionRound> {
  const victim = await cluster.waitForLeader();
  const term = victim.lastRole!.term;
  const eventsBefore = cluster.roleEvents.length;
  const killedAtMs = Date.now();
  await victim.kill();
  const next = await cluster.waitForLeader({ newerThanTerm: term });
  const electedAtMs = next.lastRole!.atMs;
  const firstMove = cluster.roleEvents
    .slice(eventsBefore)
    .find((event) => event.id !== victim.id && event.role !== 'follower');

  // The new leader commits, and the killed node comes back and catches up before the next kill.
  const outcome = await next.propose(`election-round-${round}`);
  if (!outcome.ok)
    throw new Error(`node ${next.id} could not commit after its election: ${outcome.message}`);
  const restarted = await cluster.restart(victim.id);
  await caughtUp(restarted, next);
  return {
    electionMs: electedAtMs - killedAtMs,
    detectionMs: (firstMove?.atMs ?? electedAtMs) - killedAtMs,
  };
}

async function runElections(cluster: RaftProcessCluster): Promise<void> {
  const rounds: ElectionRound[] = [];
  for (let round = 1; round <= ELECTION_ROUNDS; round++) {
    rounds.push(await electionRound(cluster, round));
  }
  const elections = rounds.map((r) => r.electionMs);
  const detections = rounds.map((r) => r.detectionMs);
  console.log(`\nelection after kill -9 of the leader, ${rounds.length} rounds\n`);
  console.log(`| ${'figure'.padEnd(44)} | median | min  | max  |`);
  console.log(`| ${'-'.repeat(44)} | -----: | ---: | ---: |`);
  const row = (what: string, values: readonly number[]) =>
    console.log(
      `| ${what.padEnd(44)} | ${median(values).toFixed(0).padStart(6)} | ` +
        `${Math.min(...values)
          .toFixed(0)
          .padStart(4)} | ${Math.max(...values)
          .toFixed(0)
          .padStart(4)} |`,
    );
  row('kill → new leader reports `leader`, ms', elections);
  row('kill → first survivor starts (pre-)vote, ms', detections);
  console.log(`\nall rounds, ms: ${elections.map((ms) => ms.toFixed(0)).join(' ')}`);
}

const dir = await mkdtemp(join(process.env.WEIR_BENCH_DIR ?? tmpdir(), 'weir-raft-bench-'));
const cpu = cpus();
console.log(
  `three voters as processes on 127.0.0.1, level stores with sync writes in ${dir}; ` +
    `Node ${process.version}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}`,
);
console.log(
  `raft settings: tickMs ${SETTINGS.tickMs}, electionTicks ${SETTINGS.electionTicks} ` +
    `(randomized election timeout ${SETTINGS.tickMs * SETTINGS.electionTicks}–` +
    `${SETTINGS.tickMs * SETTINGS.electionTicks * 2} ms), heartbeatTicks ${SETTINGS.heartbeatTicks} ` +
    `(heartbeat every ${SETTINGS.tickMs * SETTINGS.heartbeatTicks} ms), pre-vote and check-quorum on`,
);
const baselineMs = await syncedWriteBaselineMs(join(dir, 'baseline'));
console.log(
  `baseline: one synced level batch (${VALUE_BYTES + 32} bytes) at a time: ${baselineMs.toFixed(2)} ms each`,
);
const cluster = await RaftProcessCluster.start(dir, VOTERS, SETTINGS);
try {
  await runLoads(cluster);
  await runElections(cluster);
} finally {
  await cluster.killAll();
  await rm(dir, { recursive: true, force: true });
}
