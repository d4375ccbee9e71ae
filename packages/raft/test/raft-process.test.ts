// Three Raft voters as separate OS processes on loopback, each with a real `level` store and
// the gRPC transport (fixtures/raft-process.ts, driven over IPC). While clients keep several
// proposals in flight, the leader is killed with SIGKILL at a random moment. Then:
//  - a survivor becomes leader in a later term, and new proposals commit;
//  - every proposal the parent saw resolve is applied on both survivors, in the order of its
//    log index, and the survivors' applied sequences are equal;
//  - the killed node, restarted on the same port and data directory, catches up to exactly the
//    survivors' sequence and then follows new commits.
// (The in-process version, with a graceful stop, is raft-grpc.test.ts.)

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@weir/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type RaftProcess, RaftProcessCluster, waitFor } from './fixtures/raft-process-cluster.js';
import type { RaftProcessSettings } from './fixtures/raft-process-protocol.js';

/** 50 ms ticks, election timeout 10–20 ticks: a new leader within about 0.5–1 s. */
const SETTINGS: RaftProcessSettings = {
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  proposeTimeoutMs: 3_000,
};
const VOTERS = [1, 2, 3];
/** Clients proposing at once, each one proposal at a time. */
const CLIENTS = 4;
/** Resolved proposals before the kill: at least MIN, plus a random number up to EXTRA. */
const MIN_RESOLVED_BEFORE_KILL = 20;
const EXTRA_RESOLVED_BEFORE_KILL = 100;
/** Proposals that must resolve under the new leader. */
const RESOLVED_AFTER_ELECTION = 30;
/** Pause before a client retries after a refusal (retry back-off, not a wait for a state). */
const RETRY_BACKOFF_MS = 10;

interface Resolved {
  readonly value: string;
  readonly index: number;
  readonly term: number;
}

/** Clients that send proposals to whichever process last said it leads. */
class Workload {
  readonly resolved: Resolved[] = [];
  /** Refusals that are not part of a leader change: they fail the test. */
  readonly unexpected: string[] = [];
  inFlight = 0;
  private next = 0;
  private stopping = false;
  private clients: Promise<void>[] = [];

  constructor(private readonly cluster: RaftProcessCluster) {}

  start(clients: number): void {
    this.clients = Array.from({ length: clients }, () => this.client());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.clients);
  }

  private async client(): Promise<void> {
    while (!this.stopping) {
      const leader = this.cluster.leader();
      if (leader === undefined || !(await this.proposeTo(leader))) {
        await new Promise((resolve) => setTimeout(resolve, RETRY_BACKOFF_MS));
      }
    }
  }

  /** True when the proposal resolved. */
  private async proposeTo(leader: RaftProcess): Promise<boolean> {
    const value = `v${this.next++}`;
    this.inFlight++;
    try {
      const outcome = await leader.propose(value);
      if (outcome.ok) {
        this.resolved.push({ value, index: outcome.index, term: outcome.term });
        return true;
      }
      // A leader that lost its place, or an entry that did not commit in time: the outcome is
      // unknown and the value may or may not be applied. Anything else is a bug.
      if (outcome.code !== ErrorCode.NOT_CONTROLLER && outcome.code !== ErrorCode.REQUEST_TIMED_OUT)
        this.unexpected.push(`node ${leader.id}, ${value}: ${outcome.message}`);
      return false;
    } catch {
      // The process died with the request pending (the kill): the outcome is unknown.
      return false;
    } finally {
      this.inFlight--;
    }
  }
}

let dir: string;
let cluster: RaftProcessCluster | undefined;
let workload: Workload | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-raft-process-'));
});

afterEach(async () => {
  await cluster?.killAll(); // first, so that the clients' pending requests fail at once
  await workload?.stop();
  cluster = undefined;
  workload = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Polls until every process applied the same values, and returns them. */
async function agreedValues(processes: readonly RaftProcess[]): Promise<readonly string[]> {
  return waitFor('the processes to apply the same values', async () => {
    const states = await Promise.all(processes.map((p) => p.applied(true)));
    const [first, ...rest] = states;
    return rest.every((s) => s.count === first!.count && s.hash === first!.hash) && first!.values;
  });
}

describe('three Raft voters as OS processes', () => {
  it('survives kill -9 of the leader while proposals flow, and the killed node catches up', async () => {
    cluster = await RaftProcessCluster.start(dir, VOTERS, SETTINGS);
    await cluster.waitForLeader();
    const clients = (workload = new Workload(cluster));
    clients.start(CLIENTS);

    const killAfter =
      MIN_RESOLVED_BEFORE_KILL + Math.floor(Math.random() * (EXTRA_RESOLVED_BEFORE_KILL + 1));
    await waitFor(`${killAfter} resolved proposals`, () => clients.resolved.length >= killAfter, {
      intervalMs: 1,
    });
    const victim = cluster.leader()!;
    const oldTerm = victim.lastRole!.term;
    const inFlightAtKill = clients.inFlight;
    await victim.kill();
    expect(await victim.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const resolvedAtKill = clients.resolved.length;

    const next = await cluster.waitForLeader({ newerThanTerm: oldTerm });
    expect(next.id).not.toBe(victim.id);
    await waitFor(
      `${RESOLVED_AFTER_ELECTION} proposals to resolve under node ${next.id}`,
      () =>
        clients.resolved.filter((r) => r.term >= next.lastRole!.term).length >=
        RESOLVED_AFTER_ELECTION,
    );
    await clients.stop();
    expect(clients.unexpected).toEqual([]);
    expect(inFlightAtKill, 'proposals were in flight when the leader died').toBeGreaterThan(0);
    expect(clients.resolved.length).toBeGreaterThan(resolvedAtKill);

    const survivors = [...cluster.processes.values()].filter((p) => p.alive);
    expect(survivors).toHaveLength(2);
    const applied = await agreedValues(survivors);
    expectResolvedInOrder(applied, clients.resolved);

    const restarted = await cluster.restart(victim.id);
    const caughtUp = await agreedValues([restarted, ...survivors]);
    expect(caughtUp).toEqual(applied);
    expect(restarted.isLeader).toBe(false);

    // And it follows live replication, not only the catch-up.
    const leader = cluster.leader()!;
    expect(await leader.propose('after-restart')).toMatchObject({ ok: true });
    expect(await agreedValues([restarted, ...survivors])).toEqual([...applied, 'after-restart']);
  }, 30_000);
});

/** Every resolved value is applied exactly once, in the order of the indexes it resolved at. */
function expectResolvedInOrder(applied: readonly string[], resolved: readonly Resolved[]): void {
  expect(new Set(applied).size, 'no value applied twice').toBe(applied.length);
  const position = new Map(applied.map((value, i) => [value, i]));
  const missing = resolved.filter((r) => !position.has(r.value)).map((r) => r.value);
  expect(missing, 'resolved proposals missing from the applied values').toEqual([]);
  const byIndex = [...resolved].sort((a, b) => a.index - b.index);
  expect(new Set(byIndex.map((r) => r.index)).size, 'one resolved value per index').toBe(
    byIndex.length,
  );
  const positions = byIndex.map((r) => position.get(r.value)!);
  expect(positions).toEqual([...positions].sort((a, b) => a - b));
}
