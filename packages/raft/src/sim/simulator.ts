// The deterministic simulator: N voters running the real RaftCore in virtual time, driven the
// way the real driver drives it (persist → send → apply → advance), on a simulated network
// with loss, duplication, delay, reordering and partitions, with crashes that lose exactly
// what was not yet synced. A client workload runs against a replicated register; the safety
// checker runs after every event and the history is checked for linearizability at the end.
// After the fault phase the network heals and every node restarts: then a leader must be
// elected and commit a proposal within a bounded number of ticks (liveness).
//
// Everything random comes from one seed, so a seed replays exactly (see docs/raft-simulation.md).

import { DEFAULT_RAFT_CONFIG, RaftCore } from '../core/raft.js';
import type { Message, NodeId, RaftConfig, Ready } from '../core/types.js';
import { SafetyChecker, SafetyViolation } from './checker.js';
import { EventQueue } from './event-queue.js';
import {
  type CrashPoint,
  FAULT_PROFILES,
  FaultInjector,
  type FaultProfileName,
  type FaultTarget,
} from './faults.js';
import { type Command, type Output, KvStateMachine, encodeCommand } from './kv.js';
import { checkLinearizability } from './linearizability.js';
import { CALM_WEATHER, Network, type Partition, randomWeather } from './network.js';
import { Prng } from './prng.js';
import { SimNode } from './sim-node.js';
import { TICK_MS, Trace, TraceCode, describeMessage, messageCode } from './trace.js';
import {
  type ClientReply,
  type ClientRequest,
  DEFAULT_WORKLOAD,
  Workload,
  type WorkloadOptions,
} from './workload.js';

/**
 * Deliberately broken drivers, to show that the checks bite:
 * - forgetVote: the storage model loses the vote when a node restarts;
 * - sendBeforePersist: the driver sends a Ready's messages before syncing it;
 * - staleReads: a node answers gets from its own state, leader or not.
 */
export type Variant = 'none' | 'forgetVote' | 'sendBeforePersist' | 'staleReads';

export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  /** Ticks of the fault phase; then the network heals and every node restarts. */
  readonly ticks: number;
  readonly faults: FaultProfileName;
  readonly variant: Variant;
  /** Node-local rules (one vote per term, persist before sending) on top of the end-to-end ones. */
  readonly localRules: boolean;
  /** After the heal, a leader must commit a proposal within this many ticks. */
  readonly livenessTicks: number;
  /** After liveness, ticks for the clients to finish what they started. */
  readonly drainTicks: number;
  readonly workload: WorkloadOptions;
  /** Receives the readable trace; without it only the fingerprint is kept. */
  readonly trace?: (line: string) => void;
}

export const DEFAULT_SIM_OPTIONS: Omit<SimOptions, 'seed'> = {
  nodes: 3,
  ticks: 300,
  faults: 'default',
  variant: 'none',
  localRules: true,
  livenessTicks: 200,
  drainTicks: 50,
  workload: DEFAULT_WORKLOAD,
};

export interface SimStats {
  messagesSent: number;
  messagesDropped: number;
  crashes: number;
  partitions: number;
  leaderTerms: number;
  committedIndex: number;
  snapshotsInstalled: number;
  opsCompleted: number;
  opsAmbiguous: number;
  /** Ticks from the heal until a leader committed a proposal. */
  livenessTicks: number;
  events: number;
}

export interface SimResult {
  readonly options: SimOptions;
  readonly fingerprint: string;
  readonly stats: SimStats;
}

/** A failed run: what broke, when, and the command that replays it. */
export class SimulationFailure extends Error {
  constructor(
    readonly options: SimOptions,
    readonly invariant: string,
    readonly detail: string,
    readonly timeMs: number,
  ) {
    super(
      `simulation failed (${invariant}) at ${timeMs}ms (tick ${Math.floor(timeMs / TICK_MS)}), ` +
        `seed ${options.seed}, ${options.nodes} nodes:\n  ${detail}\n` +
        `replay: ${replayCommand(options)}`,
    );
    this.name = 'SimulationFailure';
  }

  get replayCommand(): string {
    return replayCommand(this.options);
  }
}

export function replayCommand(options: SimOptions): string {
  const extra = [
    options.faults === 'default' ? '' : ` --faults ${options.faults}`,
    options.variant === 'none' ? '' : ` --variant ${options.variant}`,
    options.localRules ? '' : ' --end-to-end-only',
  ].join('');
  return `pnpm sim --seed ${options.seed} --nodes ${options.nodes} --ticks ${options.ticks}${extra} --trace`;
}

/**
 * The mix that CI and `pnpm sim --seeds N` run unless told otherwise: odd seeds run three
 * nodes and even seeds five; seeds ≡ 2, 3 (mod 4) use the election-heavy fault profile.
 */
export function sweepOptions(seed: number, overrides: Partial<SimOptions> = {}): SimOptions {
  return {
    ...DEFAULT_SIM_OPTIONS,
    nodes: seed % 2 === 0 ? 5 : 3,
    faults: seed % 4 < 2 ? 'default' : 'elections',
    ...overrides,
    seed,
  };
}

/** Runs one seed; throws SimulationFailure on a violation. */
export function runSimulation(options: Partial<SimOptions> & { readonly seed: number }): SimResult {
  return new Simulation({ ...DEFAULT_SIM_OPTIONS, ...options }).run();
}

/** The invariant named when the core (an assertion) or the driver throws. */
export const EXCEPTION = 'an exception in the core or the driver';

const PROBE_CLIENT = 0xffff;
/** Ticks of calm after the drain within which every node must have caught up. */
const CONVERGENCE_TICKS = 300;
/** A probe not applied after this many ticks is proposed again (its leader may be gone). */
const PROBE_RETRY_TICKS = 10;
/** Time a Ready takes to sync (a level batch with `sync: true`). */
const SYNC_MS = 2;

class Simulation implements FaultTarget {
  private readonly queue = new EventQueue();
  private nowMs = 0;
  private tick = 0;
  private done = false;
  private readonly trace: Trace;
  private readonly network: Network;
  private readonly nodes: SimNode[] = [];
  readonly nodeIds: NodeId[];
  private readonly checker: SafetyChecker;
  private readonly workload: Workload;
  private readonly faults: FaultInjector;
  private readonly configPrng: Prng;
  private readonly netPrng: Prng;
  private readonly diskPrng: Prng;
  private readonly raftConfig: Omit<RaftConfig, 'id' | 'random'>;
  private readonly compactEvery: number;
  private readonly partitions = new Set<Partition>();
  private nextReadId = 1;
  private healTick = -1;
  private livenessAtTick = -1;
  private convergenceFromTick = -1;
  private probe = { seq: 0, retryTick: 0 };
  private drainUntilTick = -1;
  private readonly stats: SimStats = {
    messagesSent: 0,
    messagesDropped: 0,
    crashes: 0,
    partitions: 0,
    leaderTerms: 0,
    committedIndex: 0,
    snapshotsInstalled: 0,
    opsCompleted: 0,
    opsAmbiguous: 0,
    livenessTicks: -1,
    events: 0,
  };

  constructor(private readonly options: SimOptions) {
    const root = new Prng(options.seed);
    // One stream per concern, so that e.g. an extra client never shifts the fault schedule.
    this.configPrng = root.fork();
    this.netPrng = root.fork();
    this.diskPrng = root.fork();
    const faultPrng = root.fork();
    const clientPrng = root.fork();
    this.trace = new Trace(options.trace);
    this.nodeIds = Array.from({ length: options.nodes }, (_, i) => i + 1);
    this.network = new Network(options.nodes);
    const profile = FAULT_PROFILES[options.faults];
    this.network.weather = randomWeather(this.configPrng, profile.weather);
    this.raftConfig = this.randomRaftConfig();
    this.compactEvery = this.configPrng.between(5, 40);
    for (const id of this.nodeIds) this.nodes.push(new SimNode(id));
    this.checker = new SafetyChecker(this.nodes, { localRules: options.localRules });
    this.faults = new FaultInjector(profile, faultPrng, this);
    this.workload = new Workload(
      {
        nodeIds: this.nodeIds,
        now: () => this.nowMs,
        schedule: (delayMs, run) => this.at(this.nowMs + delayMs, run),
        send: (to, request) => this.sendClientRequest(to, request),
        log: (text) => this.traceEvent(TraceCode.client, 0, 0, 0, text),
      },
      clientPrng,
      options.workload,
    );
  }

  /** Election timing is fixed; pacing and the optional features vary per run. */
  private randomRaftConfig(): Omit<RaftConfig, 'id' | 'random'> {
    const prng = this.configPrng;
    return {
      ...DEFAULT_RAFT_CONFIG,
      voters: this.nodeIds,
      heartbeatTicks: prng.pick([1, 2, 3]),
      preVote: prng.chance(0.85),
      checkQuorum: prng.chance(0.85),
      maxInflightMessages: prng.pick([1, 4, 256]),
      maxBytesPerMessage: prng.pick([1, 256, 1024 * 1024]),
    };
  }

  run(): SimResult {
    try {
      this.start();
      while (!this.done) {
        const event = this.queue.pop();
        if (event === undefined) throw new Error('the event queue ran dry');
        this.nowMs = event.time;
        this.stats.events++;
        event.run();
      }
      this.checkHistory();
    } catch (error) {
      throw this.failure(error);
    }
    this.stats.leaderTerms = this.checker.leaderTerms;
    this.stats.committedIndex = this.checker.committedIndex;
    this.stats.opsCompleted = this.workload.completed;
    this.stats.opsAmbiguous = this.workload.ambiguous;
    this.trace.note(`done: ${JSON.stringify(this.stats)} fingerprint ${this.trace.fingerprint}`);
    return { options: this.options, fingerprint: this.trace.fingerprint, stats: this.stats };
  }

  private failure(error: unknown): SimulationFailure {
    if (error instanceof SimulationFailure) return error;
    if (error instanceof SafetyViolation) {
      return new SimulationFailure(this.options, error.invariant, error.detail, this.nowMs);
    }
    // An assertion of the core itself, or a bug of the simulator: a failure all the same.
    const detail = error instanceof Error ? shortStack(error) : String(error);
    return new SimulationFailure(this.options, EXCEPTION, detail, this.nowMs);
  }

  private start(): void {
    const c = this.raftConfig;
    this.trace.note(
      `seed ${this.options.seed}: ${this.options.nodes} nodes, ${this.options.ticks} fault ticks, ` +
        `faults ${this.options.faults}, variant ${this.options.variant}; heartbeat ${c.heartbeatTicks} ` +
        `election ${c.electionTicks} preVote ${c.preVote} checkQuorum ${c.checkQuorum} ` +
        `inflight ${c.maxInflightMessages} bytes ${c.maxBytesPerMessage} compact every ${this.compactEvery}; ` +
        `weather ${JSON.stringify(this.network.weather)}`,
    );
    for (const node of this.nodes) this.boot(node);
    this.at(0, () => this.globalTick());
    this.workload.start();
  }

  private at(timeMs: number, run: () => void): void {
    this.queue.push(timeMs, run);
  }

  private traceEvent(
    code: number,
    a: number,
    b: number,
    c: number,
    text: string | (() => string),
  ): void {
    const line = this.trace.enabled ? (typeof text === 'string' ? text : text()) : undefined;
    this.trace.event(this.nowMs, code, a, b, c, line);
  }

  // ---------------------------------------------------------------------------------------
  // Phases: faults, heal + liveness, drain
  // ---------------------------------------------------------------------------------------

  private globalTick(): void {
    if (this.tick < this.options.ticks) this.faults.onTick();
    else if (this.tick === this.options.ticks) this.heal();
    else if (this.livenessAtTick < 0) this.driveLiveness();
    else if (this.tick >= this.drainUntilTick || this.workload.idle) this.checkConvergence();
    this.tick++;
    this.at(this.tick * TICK_MS, () => this.globalTick());
  }

  /** Faults stop: partitions heal, the weather calms, every node is up and running. */
  private heal(): void {
    this.healTick = this.tick;
    this.faults.stop();
    this.partitions.clear();
    this.network.healAll();
    this.network.weather = CALM_WEATHER;
    for (const node of this.nodes) {
      node.pausedUntilMs = 0;
      if (!node.up) this.restart(node);
    }
    this.traceEvent(TraceCode.heal, 0, 0, 0, 'faults stop: network healed, all nodes up');
  }

  /**
   * Liveness (§5.2, §6 of the thesis): with a healed majority, some node must become leader and
   * commit a proposal within livenessTicks. The probe is proposed to whoever leads now.
   */
  private driveLiveness(): void {
    const waited = this.tick - this.healTick;
    if (waited > this.options.livenessTicks) {
      throw new SafetyViolation(
        'liveness',
        `no proposal committed within ${this.options.livenessTicks} ticks after the heal ` +
          `(roles: ${this.nodes.map((n) => `n${n.id} ${n.core?.role ?? 'down'} t${n.core?.term ?? '-'}`).join(', ')})`,
      );
    }
    const leader = this.nodes.find((n) => n.core?.role === 'leader');
    if (leader === undefined || this.tick < this.probe.retryTick) return;
    const seq = this.probe.seq + 1;
    const command: Command = { kind: 'probe', client: PROBE_CLIENT, seq };
    this.input(leader, (core) => {
      // Refused while a leadership transfer is under way: try again next tick.
      if (core.propose(encodeCommand(command)) === undefined) return;
      this.probe = { seq, retryTick: this.tick + PROBE_RETRY_TICKS };
      this.traceEvent(
        TraceCode.liveness,
        leader.id,
        seq,
        0,
        () => `liveness probe #${seq} proposed to n${leader.id}`,
      );
    });
  }

  private onProbeApplied(node: SimNode): void {
    if (this.livenessAtTick >= 0 || this.healTick < 0) return;
    this.livenessAtTick = this.tick;
    this.stats.livenessTicks = this.tick - this.healTick;
    this.drainUntilTick = this.tick + this.options.drainTicks;
    this.workload.stopInvoking();
    this.traceEvent(
      TraceCode.liveness,
      node.id,
      0,
      0,
      () =>
        `liveness: probe applied on n${node.id}, ${this.stats.livenessTicks} ticks after the heal`,
    );
  }

  /**
   * After the drain, with the network calm and every node up, every node must catch up: the
   * same commit index everywhere, all of it applied, within CONVERGENCE_TICKS. (A majority
   * committing is not enough: a follower the leader stopped sending to would go unnoticed.)
   */
  private checkConvergence(): void {
    if (this.convergenceFromTick < 0) this.convergenceFromTick = this.tick;
    const cores = this.nodes.map((n) => n.core);
    const commit = Math.max(...cores.map((core) => core?.commitIndex ?? 0));
    if (cores.every((core) => core !== undefined && core.appliedIndex === commit)) {
      this.done = true;
      return;
    }
    if (this.tick - this.convergenceFromTick > CONVERGENCE_TICKS) {
      throw new SafetyViolation(
        'convergence',
        `nodes did not catch up with commit index ${commit} within ${CONVERGENCE_TICKS} ticks of calm ` +
          `(${this.nodes.map((n) => `n${n.id} ${n.core?.role ?? 'down'} commit ${n.core?.commitIndex ?? '-'} applied ${n.core?.appliedIndex ?? '-'}`).join(', ')})`,
      );
    }
  }

  private checkHistory(): void {
    this.workload.finish();
    const result = checkLinearizability(this.workload.history);
    if (!result.ok) throw new SafetyViolation('linearizability', result.explanation);
  }

  // ---------------------------------------------------------------------------------------
  // Nodes: boot, crash, restart, pause
  // ---------------------------------------------------------------------------------------

  private boot(node: SimNode): void {
    node.core = new RaftCore(this.nodeConfig(node.id));
    this.startTicking(node);
  }

  private nodeConfig(id: NodeId): RaftConfig {
    const prng = this.configPrng.fork();
    return { ...this.raftConfig, id, random: () => prng.next() };
  }

  /** Each node's clock ticks about every TICK_MS (±10%: clocks drift), at its own phase. */
  private startTicking(node: SimNode): void {
    const incarnation = node.incarnation;
    const periodMs = TICK_MS + this.configPrng.between(-1, 1);
    const tickOnce = (): void => {
      if (node.incarnation !== incarnation) return;
      if (!node.isPaused(this.nowMs)) this.input(node, (core) => core.tick());
      this.at(this.nowMs + periodMs, tickOnce);
    };
    this.at(this.nowMs + this.configPrng.between(1, TICK_MS), tickOnce);
  }

  isUp(id: NodeId): boolean {
    return this.node(id).up;
  }

  leaders(): NodeId[] {
    return this.nodes.filter((n) => n.core?.role === 'leader').map((n) => n.id);
  }

  crash(id: NodeId, reason: string): void {
    const node = this.node(id);
    if (!node.up) return;
    node.crash();
    this.stats.crashes++;
    this.traceEvent(TraceCode.crash, id, 0, 0, () => `n${id} CRASH (${reason})`);
  }

  restartAfter(id: NodeId, delayMs: number): void {
    const node = this.node(id);
    const incarnation = node.incarnation;
    this.at(this.nowMs + delayMs, () => {
      if (node.incarnation === incarnation && !node.up) this.restart(node);
    });
  }

  /** A restart: the node is rebuilt from what it had synced, and nothing else. */
  private restart(node: SimNode): void {
    node.incarnation++;
    const persisted = node.storage.persistedState(this.options.variant === 'forgetVote');
    node.core = new RaftCore(this.nodeConfig(node.id), persisted);
    node.kv = KvStateMachine.fromSnapshot(node.storage.snapshot);
    const hs = persisted.hardState;
    this.traceEvent(
      TraceCode.restart,
      node.id,
      hs.term,
      hs.commit,
      () =>
        `n${node.id} RESTART from term ${hs.term} vote ${hs.vote} commit ${hs.commit}, log ${node.storage.snapshotIndex}..${node.storage.lastIndex}`,
    );
    this.checker.onRestart(node);
    this.startTicking(node);
    this.afterInput(node);
  }

  partition(partition: Partition, durationMs: number): void {
    this.partitions.add(partition);
    this.network.cut(partition);
    this.stats.partitions++;
    this.traceEvent(
      TraceCode.partition,
      partition.links.length,
      durationMs,
      0,
      () => `PARTITION ${partition.description} for ${durationMs}ms`,
    );
    this.at(this.nowMs + durationMs, () => {
      if (!this.partitions.delete(partition)) return; // healed with everything else
      this.network.heal(partition);
      this.traceEvent(
        TraceCode.heal,
        partition.links.length,
        0,
        0,
        () => `HEAL ${partition.description}`,
      );
    });
  }

  pause(id: NodeId, durationMs: number): void {
    const node = this.node(id);
    node.pausedUntilMs = Math.max(node.pausedUntilMs, this.nowMs + durationMs);
    this.traceEvent(TraceCode.pause, id, durationMs, 0, () => `n${id} PAUSE for ${durationMs}ms`);
  }

  transferLeadership(from: NodeId, to: NodeId): void {
    const node = this.node(from);
    if (node.isPaused(this.nowMs)) return;
    this.traceEvent(
      TraceCode.fault,
      from,
      to,
      0,
      () => `n${from} asked to transfer leadership to n${to}`,
    );
    this.input(node, (core) => core.transferLeadership(to));
  }

  private node(id: NodeId): SimNode {
    const node = this.nodes[id - 1];
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  // ---------------------------------------------------------------------------------------
  // The driver: input → Ready → persist → send → apply → advance
  // ---------------------------------------------------------------------------------------

  /** Feeds a live node one input, then checks it and schedules its Ready. */
  private input(node: SimNode, feed: (core: RaftCore) => void): void {
    const core = node.core;
    if (core === undefined) return;
    feed(core);
    this.afterInput(node);
  }

  private afterInput(node: SimNode): void {
    this.checker.observe(node);
    this.showChanges(node);
    this.scheduleReady(node);
  }

  /** The driver loop picks the Ready up right after the current event. */
  private scheduleReady(node: SimNode): void {
    if (node.readyScheduled || node.core?.hasReady() !== true) return;
    node.readyScheduled = true;
    const incarnation = node.incarnation;
    this.at(this.nowMs, () => this.takeReady(node, incarnation));
  }

  /**
   * Takes a Ready and starts its synced write, which completes up to SYNC_MS later; the node
   * keeps stepping messages and ticks meanwhile, as with an asynchronous level batch. A crash
   * before the write completes loses the whole Ready (and nothing of it was sent).
   */
  private takeReady(node: SimNode, incarnation: number): void {
    if (node.incarnation !== incarnation) return;
    if (node.isPaused(this.nowMs)) {
      this.at(node.pausedUntilMs, () => this.takeReady(node, incarnation));
      return;
    }
    const core = node.core!;
    if (!core.hasReady()) {
      node.readyScheduled = false;
      return;
    }
    const ready = core.ready();
    const crashAt = this.faults.crashPoint(node.id, ready);
    // As RaftNode does: a leader's messages (appends, heartbeats) promise nothing about its own
    // disk, so they go out while its write is under way (thesis §10.2.1).
    const sentEarly = ready.role === 'leader' && this.options.variant !== 'sendBeforePersist';
    if (this.options.variant === 'sendBeforePersist') {
      // The broken order: messages leave before the write is synced.
      this.send(node, ready.messages);
      if (crashAt !== 'none' && this.crashedAt(node, crashAt, crashAt)) return;
    } else {
      if (sentEarly) this.send(node, ready.messages);
      if (this.crashedAt(node, crashAt, 'beforePersist')) return;
    }
    this.at(this.nowMs + this.diskPrng.between(0, SYNC_MS), () =>
      this.synced(node, incarnation, ready, crashAt, sentEarly),
    );
  }

  /** The write is on disk: then send (Figure 2: nothing leaves before it is durable), apply, advance. */
  private synced(
    node: SimNode,
    incarnation: number,
    ready: Ready,
    crashAt: CrashPoint,
    sentEarly: boolean,
  ): void {
    if (node.incarnation !== incarnation) return; // crashed first: the write never made it
    if (node.isPaused(this.nowMs)) {
      this.at(node.pausedUntilMs, () => this.synced(node, incarnation, ready, crashAt, sentEarly));
      return;
    }
    this.persist(node, ready);
    if (this.crashedAt(node, crashAt, 'afterPersist')) return;
    if (this.options.variant !== 'sendBeforePersist' && !sentEarly) this.send(node, ready.messages);
    if (this.crashedAt(node, crashAt, 'afterSend')) return;
    this.completeReady(node, ready);
  }

  private crashedAt(node: SimNode, crashAt: CrashPoint, point: CrashPoint): boolean {
    if (crashAt !== point) return false;
    this.crash(node.id, `${point} of a Ready`);
    this.restartAfter(node.id, this.faults.quickRestartMs());
    return true;
  }

  private completeReady(node: SimNode, ready: Ready): void {
    const core = node.core!;
    this.apply(node, ready);
    core.advance(ready);
    this.maybeCompact(node, core);
    node.readyScheduled = false;
    this.afterInput(node);
  }

  private persist(node: SimNode, ready: Ready): void {
    const from = node.storage.persist(ready, (index, term) => this.checker.chainOf(index, term));
    if (ready.hardState !== undefined || ready.entries.length > 0 || ready.snapshot !== undefined) {
      this.traceEvent(
        TraceCode.sync,
        node.id,
        node.storage.lastIndex,
        node.storage.hardState.term,
        () => describeSync(node, ready),
      );
    }
    this.checker.onPersisted(node, from);
  }

  private apply(node: SimNode, ready: Ready): void {
    if (ready.snapshot !== undefined) {
      node.kv = KvStateMachine.fromSnapshot(ready.snapshot);
      this.stats.snapshotsInstalled++;
      this.checker.onSnapshotRestored(node);
    }
    for (const entry of ready.committedEntries) {
      const applied = node.kv.apply(entry);
      this.checker.onApplied(node, entry);
      if (applied === undefined) continue;
      if (applied.client === PROBE_CLIENT) this.onProbeApplied(node);
      else if (node.waitingWrites.get(applied.client) === applied.seq) {
        node.waitingWrites.delete(applied.client);
        this.replyOk(applied.client, applied.seq, applied.output);
      }
    }
    if (ready.readStates.length > 0) node.readStates.push(...ready.readStates);
    this.serveReads(node);
  }

  /** ReadIndex (thesis §6.4): a read is served once the state machine reaches its index. */
  private serveReads(node: SimNode): void {
    if (node.readStates.length === 0) return;
    const later = [];
    for (const state of node.readStates) {
      if (state.index > node.kv.appliedIndex) {
        later.push(state);
        continue;
      }
      const waiter = node.waitingReads.get(state.requestId);
      if (waiter === undefined) continue;
      node.waitingReads.delete(state.requestId);
      this.replyOk(waiter.client, waiter.seq, node.kv.read(waiter.key));
    }
    node.readStates = later;
  }

  /** The application snapshots its state now and then; the log before it goes (§7). */
  private maybeCompact(node: SimNode, core: RaftCore): void {
    const index = node.kv.appliedIndex;
    if (index - node.storage.snapshotIndex < this.compactEvery) return;
    const data = node.kv.snapshotData();
    node.storage.compact({
      metadata: { index, term: node.kv.appliedTerm, voters: this.nodeIds },
      data,
    });
    core.compact(index, data);
    this.checker.onPersisted(node, undefined);
  }

  // ---------------------------------------------------------------------------------------
  // The network
  // ---------------------------------------------------------------------------------------

  private send(node: SimNode, messages: readonly Message[]): void {
    for (const message of messages) {
      this.checker.onSend(node, message);
      this.stats.messagesSent++;
      this.transmit(message);
    }
  }

  private transmit(message: Message): void {
    const code = messageCode(message);
    if (!this.network.isConnected(message.from, message.to)) {
      this.drop(message, 'partitioned');
      return;
    }
    const delays = this.network.delays(this.netPrng);
    if (delays.length === 0) {
      this.drop(message, 'lost');
      return;
    }
    delays.forEach((delayMs, copy) => {
      this.traceEvent(
        copy === 0 ? TraceCode.send : TraceCode.duplicate,
        message.from,
        message.to,
        code,
        () =>
          `${copy === 0 ? 'send' : 'DUPLICATE'} ${describeMessage(message)} (arrives in ${delayMs}ms)`,
      );
      const onTheWire = wireCopy(message);
      this.at(this.nowMs + delayMs, () => this.deliver(onTheWire));
    });
  }

  private drop(message: Message, why: string): void {
    this.stats.messagesDropped++;
    this.traceEvent(
      TraceCode.drop,
      message.from,
      message.to,
      messageCode(message),
      () => `DROP ${describeMessage(message)} (${why})`,
    );
  }

  private deliver(message: Message): void {
    const node = this.node(message.to);
    if (!this.network.isConnected(message.from, message.to))
      return this.drop(message, 'partitioned in flight');
    if (!node.up) return this.drop(message, `n${message.to} is down`);
    if (node.isPaused(this.nowMs)) {
      this.at(node.pausedUntilMs, () => this.deliver(message));
      return;
    }
    this.traceEvent(
      TraceCode.deliver,
      message.from,
      message.to,
      messageCode(message),
      () => `recv ${describeMessage(message)}`,
    );
    this.input(node, (core) => core.step(message));
  }

  // ---------------------------------------------------------------------------------------
  // Clients
  // ---------------------------------------------------------------------------------------

  private sendClientRequest(to: NodeId, request: ClientRequest): void {
    const delays = this.network.delays(this.netPrng);
    if (delays.length === 0) return;
    this.at(this.nowMs + delays[0]!, () => this.onClientRequest(this.node(to), request));
  }

  private onClientRequest(node: SimNode, request: ClientRequest): void {
    const core = node.core;
    if (core === undefined) return; // no answer: the client times out
    if (node.isPaused(this.nowMs)) {
      this.at(node.pausedUntilMs, () => this.onClientRequest(node, request));
      return;
    }
    const { command } = request;
    if (this.options.variant === 'staleReads' && command.kind === 'get') {
      this.replyOk(request.client, request.seq, node.kv.read(command.key));
      return;
    }
    if (core.role !== 'leader') {
      this.reply({
        kind: 'notLeader',
        client: request.client,
        seq: request.seq,
        attempt: request.attempt,
        leaderHint: core.leaderId,
      });
      return;
    }
    if (request.readPath === 'readIndex' && command.kind === 'get') {
      const requestId = this.nextReadId++;
      node.waitingReads.set(requestId, {
        client: request.client,
        seq: request.seq,
        key: command.key,
      });
      this.input(node, (c) => c.readIndex(requestId));
      return;
    }
    this.input(node, (c) => {
      if (c.propose(encodeCommand(command)) !== undefined)
        node.waitingWrites.set(request.client, request.seq);
      else
        this.reply({
          kind: 'notLeader',
          client: request.client,
          seq: request.seq,
          attempt: request.attempt,
          leaderHint: c.leaderId,
        });
    });
  }

  private replyOk(client: number, seq: number, output: Output): void {
    this.reply({ kind: 'ok', client, seq, output });
  }

  private reply(reply: ClientReply): void {
    const delays = this.network.delays(this.netPrng);
    if (delays.length === 0) return;
    this.at(this.nowMs + delays[0]!, () => this.workload.onReply(reply));
  }

  // ---------------------------------------------------------------------------------------
  // Trace
  // ---------------------------------------------------------------------------------------

  /** Role, term, leader and commit changes, as they happen. */
  private showChanges(node: SimNode): void {
    const core = node.core;
    if (core === undefined) return;
    const shown = node.shown;
    if (core.role !== shown.role || core.term !== shown.term || core.leaderId !== shown.leader) {
      this.traceEvent(
        TraceCode.role,
        node.id,
        core.term,
        ROLE_CODES[core.role],
        () =>
          `n${node.id} is ${core.role.toUpperCase()} in term ${core.term}${core.leaderId >= 0 && core.role !== 'leader' ? ` (leader n${core.leaderId})` : ''}`,
      );
    }
    if (core.commitIndex !== shown.commit) {
      this.traceEvent(
        TraceCode.commit,
        node.id,
        core.commitIndex,
        core.term,
        () => `n${node.id} commit ${shown.commit} → ${core.commitIndex}`,
      );
    }
    node.shown = {
      role: core.role,
      term: core.term,
      leader: core.leaderId,
      commit: core.commitIndex,
    };
  }
}

const ROLE_CODES = { follower: 1, preCandidate: 2, candidate: 3, leader: 4 } as const;

/** The error and the first frames of its stack: where in the core or driver it was thrown. */
function shortStack(error: Error): string {
  const frames = (error.stack ?? '').split('\n').filter((line) => line.trim().startsWith('at '));
  return [`${error.name}: ${error.message}`, ...frames.slice(0, 4)].join('\n  ');
}

/** A message as the receiver gets it: a copy, as after serialization (entries are immutable). */
function wireCopy(message: Message): Message {
  return message.type === 'append' ? { ...message, entries: [...message.entries] } : { ...message };
}

function describeSync(node: SimNode, ready: Ready): string {
  const parts = [];
  if (ready.snapshot !== undefined)
    parts.push(`snapshot ${ready.snapshot.metadata.index}/${ready.snapshot.metadata.term}`);
  const first = ready.entries[0];
  if (first !== undefined) parts.push(`entries [${first.index}..${ready.entries.at(-1)!.index}]`);
  const hs = ready.hardState;
  if (hs !== undefined) parts.push(`term ${hs.term} vote ${hs.vote} commit ${hs.commit}`);
  return `n${node.id} sync ${parts.join(', ')}`;
}
