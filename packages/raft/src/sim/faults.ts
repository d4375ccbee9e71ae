// The fault schedule of a run, drawn from the run's PRNG: crashes (at random moments, around
// Readies, or right after a node grants a vote), restarts, symmetric and asymmetric partitions,
// stop-the-world pauses, leadership transfers and network weather. Profiles set the rates.

import { NO_NODE, type NodeId, type Ready } from '../core/types.js';
import { type Partition, type Weather, randomPartition } from './network.js';
import type { Prng } from './prng.js';
import { TICK_MS } from './trace.js';

/** Where a crash lands relative to the Ready being processed. */
export type CrashPoint = 'none' | 'beforePersist' | 'afterPersist' | 'afterSend';

export type FaultProfileName = 'none' | 'default' | 'elections';

export interface FaultProfile {
  readonly name: FaultProfileName;
  /** Per tick, the chance that some live node crashes. */
  readonly crashPerTick: number;
  /** The chance that such a crash picks a leader. */
  readonly leaderCrashBias: number;
  readonly downtimeTicks: readonly [number, number];
  readonly partitionPerTick: number;
  readonly partitionTicks: readonly [number, number];
  readonly pausePerTick: number;
  readonly pauseTicks: readonly [number, number];
  readonly transferPerTick: number;
  /** The chance to crash a node around a Ready in which it grants its vote to another node. */
  readonly crashOnVoteRate: number;
  /** The chance to crash a node around any Ready (a torn Ready: before/after persist/send). */
  readonly tornReadyRate: number;
  /** Downtime after a crash around a Ready: short, so the node is back within the election. */
  readonly quickRestartMs: readonly [number, number];
  /** The worst weather a run may draw. */
  readonly weather: Weather;
}

export const FAULT_PROFILES: Record<FaultProfileName, FaultProfile> = {
  none: {
    name: 'none',
    crashPerTick: 0,
    leaderCrashBias: 0,
    downtimeTicks: [1, 1],
    partitionPerTick: 0,
    partitionTicks: [1, 1],
    pausePerTick: 0,
    pauseTicks: [1, 1],
    transferPerTick: 0,
    crashOnVoteRate: 0,
    tornReadyRate: 0,
    quickRestartMs: [1, 1],
    weather: {
      dropRate: 0,
      duplicateRate: 0,
      longDelayRate: 0,
      minLatencyMs: 1,
      maxLatencyMs: 5,
      longDelayMaxMs: 5,
    },
  },
  default: {
    name: 'default',
    crashPerTick: 0.015,
    leaderCrashBias: 0.5,
    downtimeTicks: [1, 40],
    partitionPerTick: 0.02,
    partitionTicks: [5, 60],
    pausePerTick: 0.005,
    pauseTicks: [2, 25],
    transferPerTick: 0.005,
    crashOnVoteRate: 0.02,
    tornReadyRate: 0.0005,
    quickRestartMs: [1, 30],
    weather: {
      dropRate: 0.08,
      duplicateRate: 0.04,
      longDelayRate: 0.04,
      minLatencyMs: 1,
      maxLatencyMs: 12,
      longDelayMaxMs: 80,
    },
  },
  // Frequent elections and crashes in the middle of them: what a node that loses its vote on
  // restart, or acknowledges before it persists, needs to be caught.
  elections: {
    name: 'elections',
    crashPerTick: 0.06,
    leaderCrashBias: 0.8,
    downtimeTicks: [1, 15],
    partitionPerTick: 0.03,
    partitionTicks: [3, 30],
    pausePerTick: 0.01,
    pauseTicks: [2, 15],
    transferPerTick: 0.01,
    crashOnVoteRate: 0.5,
    tornReadyRate: 0.002,
    quickRestartMs: [1, 8],
    weather: {
      dropRate: 0.05,
      duplicateRate: 0.05,
      longDelayRate: 0.15,
      minLatencyMs: 1,
      maxLatencyMs: 15,
      longDelayMaxMs: 60,
    },
  },
};

/** What the fault injector may do to the cluster. */
export interface FaultTarget {
  readonly nodeIds: readonly NodeId[];
  isUp(id: NodeId): boolean;
  leaders(): NodeId[];
  crash(id: NodeId, reason: string): void;
  restartAfter(id: NodeId, delayMs: number): void;
  partition(partition: Partition, durationMs: number): void;
  pause(id: NodeId, durationMs: number): void;
  transferLeadership(from: NodeId, to: NodeId): void;
}

export class FaultInjector {
  private stopped = false;

  constructor(
    readonly profile: FaultProfile,
    private readonly prng: Prng,
    private readonly target: FaultTarget,
  ) {}

  /** Faults stop (the liveness phase). */
  stop(): void {
    this.stopped = true;
  }

  /** Once per tick of the fault phase. */
  onTick(): void {
    if (this.stopped) return;
    const p = this.profile;
    if (this.prng.chance(p.crashPerTick)) this.crashSomeNode();
    if (this.prng.chance(p.partitionPerTick)) this.partition();
    if (this.prng.chance(p.pausePerTick)) this.pauseSomeNode();
    if (this.prng.chance(p.transferPerTick)) this.transfer();
  }

  private crashSomeNode(): void {
    const leaders = this.target.leaders();
    const up = this.target.nodeIds.filter((id) => this.target.isUp(id));
    if (up.length === 0) return;
    const id =
      leaders.length > 0 && this.prng.chance(this.profile.leaderCrashBias)
        ? this.prng.pick(leaders)
        : this.prng.pick(up);
    this.target.crash(id, 'crash');
    this.target.restartAfter(id, this.prng.between(...this.profile.downtimeTicks) * TICK_MS);
  }

  private partition(): void {
    const partition = randomPartition(this.prng, this.target.nodeIds);
    this.target.partition(partition, this.prng.between(...this.profile.partitionTicks) * TICK_MS);
  }

  private pauseSomeNode(): void {
    const id = this.prng.pick(this.target.nodeIds);
    if (this.target.isUp(id)) {
      this.target.pause(id, this.prng.between(...this.profile.pauseTicks) * TICK_MS);
    }
  }

  private transfer(): void {
    const leaders = this.target.leaders();
    if (leaders.length === 0) return;
    const from = this.prng.pick(leaders);
    this.target.transferLeadership(
      from,
      this.prng.pick(this.target.nodeIds.filter((id) => id !== from)),
    );
  }

  /**
   * Decides whether node `id` crashes around this Ready, and where. A Ready that grants a vote
   * to another node is the interesting one: the vote must survive the crash (§5.2).
   */
  crashPoint(id: NodeId, ready: Ready): CrashPoint {
    if (this.stopped) return 'none';
    if (grantsVote(id, ready)) {
      if (!this.prng.chance(this.profile.crashOnVoteRate)) return 'none';
      // Mostly once the vote is out: the node must still remember it when it is back.
      return this.prng.chance(0.6) ? 'afterSend' : this.anyCrashPoint();
    }
    return this.prng.chance(this.profile.tornReadyRate) ? this.anyCrashPoint() : 'none';
  }

  private anyCrashPoint(): CrashPoint {
    return this.prng.pick(['beforePersist', 'afterPersist', 'afterSend'] as const);
  }

  /** The downtime after a crash around a Ready. */
  quickRestartMs(): number {
    return this.prng.between(...this.profile.quickRestartMs);
  }
}

function grantsVote(id: NodeId, ready: Ready): boolean {
  const vote = ready.hardState?.vote ?? NO_NODE;
  return (
    vote !== NO_NODE &&
    vote !== id &&
    ready.messages.some((m) => m.type === 'voteResponse' && m.granted)
  );
}
