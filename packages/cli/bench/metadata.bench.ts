// Metadata benchmarks (issue M3): a 3-node `weir dev` cluster (combined broker+controller nodes
// as OS processes on loopback, started from the TypeScript sources with tsx), driven by the
// real admin client over gRPC.
//  - create 1,000 topics × 10 partitions, RF 3 (10,000 partitions, 30,000 replicas) in
//    CreateTopics requests of 50 topics, 4 in flight; time, topics/s and partitions/s;
//  - the time from the last CreateTopics answer until every broker's metadata image holds
//    every topic (each node's /metrics `weir_topics`);
//  - each node's RSS and V8 heap before and after (/metrics), the active controller marked;
//  - controller failover with that metadata loaded, over 10 rounds: SIGKILL the active
//    controller, then time until a survivor reports `weir_controller_active 1` and until a
//    CreateTopics of a new 1-partition topic succeeds through the surviving brokers; the killed
//    node is restarted and the cluster is ready and caught up again before the next round.
//   pnpm bench metadata                               (the figures in docs/benchmarks.md)
//   pnpm bench metadata --topics 100 --rounds 3       (a quick run)
// WEIR_BENCH_DIR picks the disk; WEIR_BENCH_SCALE scales --topics and --rounds when they are
// not given. Every wait is bounded in time, every loop in count; the cluster is stopped (and
// its directory removed) whatever happens.

import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Admin, ErrorCode, type NewTopic, Weir, WeirAdminError } from '@weir/client';
import { DevCluster, type DevNodeLayout } from '../src/dev/dev-cluster.js';

const { values: flags } = parseArgs({
  options: {
    topics: { type: 'string' },
    rounds: { type: 'string' },
  },
  strict: true,
});
const scale = Number(process.env.WEIR_BENCH_SCALE ?? '1');

function positiveInteger(flag: string, given: string | undefined, fallback: number): number {
  if (given === undefined) return Math.max(1, Math.round(fallback * scale));
  if (!/^\d+$/.test(given) || Number(given) < 1) {
    throw new Error(`--${flag} must be a whole number of at least 1, got '${given}'`);
  }
  return Number(given);
}

const NODES = 3;
const TOPICS = positiveInteger('topics', flags.topics, 1_000);
const ROUNDS = positiveInteger('rounds', flags.rounds, 10);
const PARTITIONS_PER_TOPIC = 10;
const REPLICATION_FACTOR = 3;
const TOPICS_PER_REQUEST = 50;
const REQUESTS_IN_FLIGHT = 4;
const SERVER_ARGS = ['--log-level', 'warn'];

const READY_TIMEOUT_MS = 120_000;
/** The whole creation phase; beyond it the bench fails rather than report a figure. */
const CREATE_LIMIT_MS = 600_000;
const CATCH_UP_TIMEOUT_MS = 120_000;
const FAILOVER_TIMEOUT_MS = 60_000;
const POLL_MS = 20;
const SCRAPE_TIMEOUT_MS = 2_000;
const LOG_TAIL_LINES = 40;

const WEIR_BIN = fileURLToPath(new URL('../bin/weir.ts', import.meta.url));
const WEIR_COMMAND = [process.execPath, '--import', 'tsx', WEIR_BIN];

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

/** Polls `check` every POLL_MS until it returns a value, for at most `timeoutMs`. */
async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = now() + timeoutMs;
  let lastError: unknown;
  for (let attempt = 0; ; attempt++) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms (${attempt + 1} polls) waiting for ${what}`,
        {
          cause: lastError,
        },
      );
    }
    await sleep(POLL_MS);
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A base port whose 3 × NODES `weir dev` ports (10 apart per node) are all free now. */
async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + 100 * Math.floor(Math.random() * 400);
    const ports = Array.from({ length: NODES }, (_, i) => [0, 1, 2].map((k) => base + 10 * i + k));
    const free = await Promise.all(ports.flat().map(portFree));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no base port with 9 free ports found in 50 tries');
}

/** Bytes under `dir`, files only (the nodes' metadata logs, snapshots and meta.properties). */
async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await diskBytes(path);
    else if (entry.isFile()) total += (await stat(path)).size;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// A node's /metrics

interface NodeMetrics {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly topics: number;
  readonly metadataOffset: number;
  readonly controllerActive: boolean;
}

/** The first sample of each metric name in a Prometheus text page. */
function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match !== null && !values.has(match[1]!)) values.set(match[1]!, Number(match[2]));
  }
  return values;
}

async function scrape(node: DevNodeLayout): Promise<NodeMetrics> {
  const response = await fetch(`http://127.0.0.1:${node.httpPort}/metrics`, {
    signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new Error(`node ${node.id} /metrics answered ${response.status}`);
  }
  const values = parseMetrics(await response.text());
  const get = (name: string): number => {
    const value = values.get(name);
    if (value === undefined) throw new Error(`node ${node.id} /metrics has no ${name}`);
    return value;
  };
  return {
    rssBytes: get('weir_process_resident_memory_bytes'),
    heapUsedBytes: get('weir_nodejs_heap_size_used_bytes'),
    heapTotalBytes: get('weir_nodejs_heap_size_total_bytes'),
    topics: get('weir_topics'),
    metadataOffset: get('weir_metadata_offset'),
    controllerActive: get('weir_controller_active') === 1,
  };
}

/** Scrapes that fail (a node being killed or starting) count as "not yet". */
async function tryScrape(node: DevNodeLayout): Promise<NodeMetrics | undefined> {
  try {
    return await scrape(node);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The cluster

interface NodeLog {
  readonly tail: string[];
  warnings: number;
}

class Bench {
  readonly logs = new Map<number, NodeLog>();
  /** Node exits the bench did not cause. */
  readonly unexpectedExits: string[] = [];
  /** WARN and worse log lines of every node, by level and message: how many. */
  readonly warningMessages = new Map<string, number>();
  private readonly expectedExits = new Set<number>();
  private readonly admins: Admin[] = [];

  constructor(
    readonly cluster: DevCluster,
    readonly dir: string,
  ) {}

  static async start(): Promise<Bench> {
    const dir = await mkdtemp(join(process.env.WEIR_BENCH_DIR ?? tmpdir(), 'weir-metadata-bench-'));
    let bench: Bench | undefined = undefined;
    const cluster = new DevCluster({
      nodes: NODES,
      basePort: await freeBasePort(),
      dataDir: dir,
      weirCommand: WEIR_COMMAND,
      serverArgs: SERVER_ARGS,
      onLog: (nodeId, line) => bench?.log(nodeId, line),
      onNodeExit: (nodeId, code, signal) => bench?.exited(nodeId, code, signal),
    });
    bench = new Bench(cluster, dir);
    return bench;
  }

  get nodes(): DevNodeLayout[] {
    return this.cluster.layout();
  }

  node(id: number): DevNodeLayout {
    return this.nodes.find((node) => node.id === id)!;
  }

  admin(brokerIds: readonly number[]): Admin {
    const bootstrap = brokerIds.map((id) => `127.0.0.1:${this.node(id).brokerPort}`);
    const admin = new Weir({ bootstrap, clientId: 'weir-bench', requestTimeoutMs: 60_000 }).admin();
    this.admins.push(admin);
    return admin;
  }

  checkNoUnexpectedExit(): void {
    if (this.unexpectedExits.length > 0) {
      throw new Error(`a node exited on its own: ${this.unexpectedExits.join('; ')}`);
    }
  }

  /** SIGKILLs a node; the time of the kill. */
  kill(nodeId: number): number {
    const child = this.cluster.process(nodeId);
    if (child === undefined) throw new Error(`node ${nodeId} is not running`);
    this.expectedExits.add(nodeId);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const killedAt = now();
    child.kill('SIGKILL');
    void exited.then(() => this.expectedExits.delete(nodeId));
    return killedAt;
  }

  /** Every node's metrics, scraped together. */
  scrapeAll(): Promise<NodeMetrics[]> {
    return Promise.all(this.nodes.map(scrape));
  }

  /** Until exactly one node reports `weir_controller_active 1`; its id. */
  activeController(): Promise<number> {
    return waitFor(
      'one active controller',
      async () => {
        const metrics = await this.scrapeAll();
        const active = this.nodes.filter((_, i) => metrics[i]!.controllerActive);
        return active.length === 1 ? active[0]!.id : undefined;
      },
      30_000,
    );
  }

  /** Until every node's broker image holds `topics` topics; each node's time from `from`. */
  async waitForTopics(
    topics: number,
    from: number,
    timeoutMs: number,
  ): Promise<Map<number, number>> {
    const caughtUp = new Map<number, number>();
    await waitFor(
      `every broker's image to hold ${topics} topics`,
      async () => {
        this.checkNoUnexpectedExit();
        await Promise.all(
          this.nodes
            .filter((node) => !caughtUp.has(node.id))
            .map(async (node) => {
              const metrics = await tryScrape(node);
              if (metrics !== undefined && metrics.topics >= topics)
                caughtUp.set(node.id, now() - from);
            }),
        );
        return caughtUp.size === this.nodes.length ? true : undefined;
      },
      timeoutMs,
    );
    return caughtUp;
  }

  printLogTails(): void {
    for (const [id, log] of this.logs) {
      console.error(`--- node ${id}, last ${log.tail.length} log lines`);
      for (const line of log.tail) console.error(line);
    }
  }

  async stop(): Promise<number> {
    for (const admin of this.admins) await admin.close();
    const startedAt = now();
    await this.cluster.stop();
    const stopMs = now() - startedAt;
    await rm(this.dir, { recursive: true, force: true });
    return stopMs;
  }

  private log(nodeId: number, line: string): void {
    let log = this.logs.get(nodeId);
    if (log === undefined) {
      log = { tail: [], warnings: 0 };
      this.logs.set(nodeId, log);
    }
    log.tail.push(line);
    if (log.tail.length > LOG_TAIL_LINES) log.tail.shift();
    // `HH:MM:SS.mmm LEVEL node=N message key=value ...`: counted by level and message.
    const match = /^\S+ (WARN|ERROR|FATAL)\s+node=\d+ (.*?)(?= [\w.]+=|$)/.exec(line);
    if (match !== null) {
      log.warnings++;
      const key = `${match[1]} ${match[2]}`;
      this.warningMessages.set(key, (this.warningMessages.get(key) ?? 0) + 1);
    }
  }

  private exited(nodeId: number, code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.expectedExits.has(nodeId)) {
      this.unexpectedExits.push(`node ${nodeId} (${signal ?? `code ${code}`})`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The phases

function printMemory(
  title: string,
  metrics: readonly NodeMetrics[],
  nodes: readonly DevNodeLayout[],
): void {
  console.log(`\n${title}\n`);
  console.log(
    '| node | role                         | RSS MiB | V8 heap used / total MiB | topics | metadata offset |',
  );
  console.log(
    '| ---: | ---------------------------- | ------: | -----------------------: | -----: | --------------: |',
  );
  nodes.forEach((node, i) => {
    const m = metrics[i]!;
    const role = m.controllerActive ? 'active controller' : 'standby controller';
    console.log(
      `| ${String(node.id).padStart(4)} | ${`broker + ${role}`.padEnd(28)} | ` +
        `${mib(m.rssBytes).padStart(7)} | ${`${mib(m.heapUsedBytes)} / ${mib(m.heapTotalBytes)}`.padStart(24)} | ` +
        `${String(m.topics).padStart(6)} | ${String(m.metadataOffset).padStart(15)} |`,
    );
  });
}

interface CreateFigures {
  readonly seconds: number;
  readonly requests: number;
  readonly requestP50Ms: number;
  readonly requestMaxMs: number;
  readonly catchUpMs: Map<number, number>;
}

async function createTopics(bench: Bench, baselineTopics: number): Promise<CreateFigures> {
  const admin = bench.admin(bench.nodes.map((node) => node.id));
  await admin.describeCluster(); // connects, so the first request does not pay for it
  const batches: NewTopic[][] = [];
  for (let first = 0; first < TOPICS; first += TOPICS_PER_REQUEST) {
    const batch: NewTopic[] = [];
    for (let i = first; i < Math.min(TOPICS, first + TOPICS_PER_REQUEST); i++) {
      batch.push({
        name: `bench-${String(i).padStart(5, '0')}`,
        partitions: PARTITIONS_PER_TOPIC,
        replicationFactor: REPLICATION_FACTOR,
      });
    }
    batches.push(batch);
  }
  const latencies: number[] = [];
  let next = 0;
  const startedAt = now();
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      if (now() - startedAt > CREATE_LIMIT_MS) {
        throw new Error(`creating ${TOPICS} topics took more than ${CREATE_LIMIT_MS / 1000} s`);
      }
      const batch = batches[next++]!;
      const sentAt = now();
      await admin.createTopics({ topics: batch });
      latencies.push(now() - sentAt);
    }
  };
  await Promise.all(Array.from({ length: REQUESTS_IN_FLIGHT }, worker));
  const lastAnswerAt = now();
  const catchUpMs = await bench.waitForTopics(
    baselineTopics + TOPICS,
    lastAnswerAt,
    CATCH_UP_TIMEOUT_MS,
  );
  return {
    seconds: (lastAnswerAt - startedAt) / 1000,
    requests: batches.length,
    requestP50Ms: median(latencies),
    requestMaxMs: Math.max(...latencies),
    catchUpMs,
  };
}

interface FailoverRound {
  readonly victim: number;
  readonly newController: number;
  /** Kill → a survivor's /metrics says `weir_controller_active 1`. */
  readonly activeMs: number;
  /** Kill → CreateTopics through a surviving broker answered. */
  readonly createMs: number;
  /** The retried create found its own earlier effect (TOPIC_ALREADY_EXISTS). */
  readonly foundOwnCreate: boolean;
  /** restartNode → the restarted node's image holds every topic (its /metrics). */
  readonly caughtUpMs: number;
  /** restartNode → every node answers /readyz (the restarted broker is unfenced). */
  readonly readyMs: number;
}

async function failoverRound(bench: Bench, round: number, topics: number): Promise<FailoverRound> {
  const victim = await bench.activeController();
  const survivors = bench.nodes.filter((node) => node.id !== victim);
  const admin = bench.admin(survivors.map((node) => node.id));
  await admin.describeCluster(); // connects to a survivor before the clock starts
  const name = `failover-${String(round).padStart(2, '0')}`;

  const killedAt = bench.kill(victim);
  const active = waitFor(
    'a surviving node to report weir_controller_active 1',
    async () => {
      const metrics = await Promise.all(survivors.map(tryScrape));
      const index = metrics.findIndex((m) => m?.controllerActive === true);
      return index < 0 ? undefined : { id: survivors[index]!.id, ms: now() - killedAt };
    },
    FAILOVER_TIMEOUT_MS,
  );
  const created = (async () => {
    let foundOwnCreate = false;
    try {
      // One call, as an application would make it: the client retries NOT_CONTROLLER and
      // timeouts with back-off, and the broker tries each voter in turn, until the deadline.
      await admin.createTopics({ topics: [{ name, partitions: 1, replicationFactor: 2 }] });
    } catch (error) {
      if (!(error instanceof WeirAdminError && error.code === ErrorCode.TOPIC_ALREADY_EXISTS)) {
        throw error;
      }
      foundOwnCreate = true;
    }
    return { ms: now() - killedAt, foundOwnCreate };
  })();
  const [newController, create] = await Promise.all([active, created]);
  await admin.close();

  const restartAt = now();
  await bench.cluster.restartNode(victim);
  const caughtUp = await bench.waitForTopics(topics, restartAt, CATCH_UP_TIMEOUT_MS);
  await bench.cluster.waitUntilReady(READY_TIMEOUT_MS);
  const readyMs = now() - restartAt;
  bench.checkNoUnexpectedExit();
  return {
    victim,
    newController: newController.id,
    activeMs: newController.ms,
    createMs: create.ms,
    foundOwnCreate: create.foundOwnCreate,
    caughtUpMs: caughtUp.get(victim)!,
    readyMs,
  };
}

function printStatsRow(what: string, values: readonly number[]): void {
  console.log(
    `| ${what.padEnd(58)} | ${median(values).toFixed(0).padStart(6)} | ` +
      `${Math.min(...values)
        .toFixed(0)
        .padStart(5)} | ${Math.max(...values)
        .toFixed(0)
        .padStart(5)} |`,
  );
}

// ---------------------------------------------------------------------------------------------
// Main

const command =
  `pnpm bench metadata` +
  (flags.topics !== undefined ? ` --topics ${TOPICS}` : '') +
  (flags.rounds !== undefined ? ` --rounds ${ROUNDS}` : '') +
  (process.env.WEIR_BENCH_SCALE !== undefined ? ` (WEIR_BENCH_SCALE=${scale})` : '');
const cpu = cpus();
const bench = await Bench.start();
// Ctrl-C: exit, so that DevCluster's exit hook SIGKILLs the nodes (they run detached).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

console.log(
  `${NODES} combined broker+controller nodes (weir dev) as processes on 127.0.0.1, data in ${bench.dir}; ` +
    `Node ${process.version}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`,
);
console.log(
  `load: ${TOPICS} topics × ${PARTITIONS_PER_TOPIC} partitions, RF ${REPLICATION_FACTOR} ` +
    `(${TOPICS * PARTITIONS_PER_TOPIC} partitions), ${TOPICS_PER_REQUEST} topics per CreateTopics, ` +
    `${REQUESTS_IN_FLIGHT} requests in flight; ${ROUNDS} failover rounds; server flags: ${SERVER_ARGS.join(' ')}`,
);

let failed = false;
try {
  const startAt = now();
  await bench.cluster.start();
  await bench.cluster.waitUntilReady(READY_TIMEOUT_MS);
  console.log(
    `cluster ready in ${((now() - startAt) / 1000).toFixed(1)} s: bootstrap=${bench.cluster.bootstrap()}`,
  );

  // Let the nodes finish starting (JIT, first heartbeats) before the "before" figures.
  await sleep(2_000);
  const before = await bench.scrapeAll();
  printMemory('before: an empty cluster', before, bench.nodes);
  const baselineTopics = Math.max(...before.map((m) => m.topics));

  const created = await createTopics(bench, baselineTopics);
  const partitions = TOPICS * PARTITIONS_PER_TOPIC;
  const catchUp = [...created.catchUpMs.values()];
  const after = await bench.scrapeAll();
  printMemory(`after: ${TOPICS} topics, ${partitions} partitions`, after, bench.nodes);
  const disk = await Promise.all(bench.nodes.map((node) => diskBytes(node.dataDir)));

  console.log(`\ncreating ${TOPICS} topics (${partitions} partitions, RF ${REPLICATION_FACTOR})\n`);
  console.log(`| ${'figure'.padEnd(58)} | ${'value'.padStart(18)} |`);
  console.log(`| ${'-'.repeat(58)} | ${'-'.repeat(17)}: |`);
  const row = (what: string, value: string) =>
    console.log(`| ${what.padEnd(58)} | ${value.padStart(18)} |`);
  row('first request sent → last answer, s', created.seconds.toFixed(2));
  row('topics/s', (TOPICS / created.seconds).toFixed(0));
  row('partitions/s', (partitions / created.seconds).toFixed(0));
  row(
    `CreateTopics of ${TOPICS_PER_REQUEST} topics: p50 / max ms (${created.requests} request${created.requests === 1 ? '' : 's'})`,
    `${created.requestP50Ms.toFixed(0)} / ${created.requestMaxMs.toFixed(0)}`,
  );
  row('last answer → every broker image has every topic, ms', Math.max(...catchUp).toFixed(0));
  row(
    'last answer → each broker caught up, ms (nodes 1,2,3)',
    bench.nodes.map((node) => created.catchUpMs.get(node.id)!.toFixed(0)).join(' / '),
  );
  row(
    'metadata log offset after creation',
    String(Math.max(...after.map((m) => m.metadataOffset))),
  );
  row('data dir per node (metadata log + snapshots), MiB', disk.map(mib).join(' / '));

  const rounds: FailoverRound[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const result = await failoverRound(bench, round, baselineTopics + TOPICS + round);
    rounds.push(result);
    console.log(
      `round ${round}: killed node ${result.victim}; node ${result.newController} active after ` +
        `${result.activeMs.toFixed(0)} ms; create answered after ${result.createMs.toFixed(0)} ms` +
        `${result.foundOwnCreate ? ' (TOPIC_ALREADY_EXISTS: its own earlier attempt)' : ''}; ` +
        `restarted node caught up after ${result.caughtUpMs.toFixed(0)} ms, ready after ${result.readyMs.toFixed(0)} ms`,
    );
  }
  console.log(
    `\ncontroller failover with ${partitions} partitions loaded, SIGKILL of the active controller, ${rounds.length} rounds\n`,
  );
  console.log(`| ${'figure'.padEnd(58)} | median |   min |   max |`);
  console.log(`| ${'-'.repeat(58)} | -----: | ----: | ----: |`);
  printStatsRow(
    'kill → a survivor reports weir_controller_active 1, ms',
    rounds.map((r) => r.activeMs),
  );
  printStatsRow(
    'kill → CreateTopics (1 partition, RF 2) answered OK, ms',
    rounds.map((r) => r.createMs),
  );
  printStatsRow(
    'restart → its image holds every topic, ms',
    rounds.map((r) => r.caughtUpMs),
  );
  printStatsRow(
    'restart → /readyz 200 (broker unfenced), ms',
    rounds.map((r) => r.readyMs),
  );
  console.log(
    `\nall rounds, kill → active, ms: ${rounds.map((r) => r.activeMs.toFixed(0)).join(' ')}`,
  );
  console.log(
    `all rounds, kill → created, ms: ${rounds.map((r) => r.createMs.toFixed(0)).join(' ')}`,
  );

  const end = await bench.scrapeAll();
  printMemory(
    `at the end: after ${rounds.length} kills and restarts (restarted nodes loaded the metadata from disk)`,
    end,
    bench.nodes,
  );
  console.log(
    `\nWARN/ERROR log lines per node over the run (log level warn): ` +
      bench.nodes
        .map((node) => `node ${node.id}: ${bench.logs.get(node.id)?.warnings ?? 0}`)
        .join(', '),
  );
  for (const [message, count] of [...bench.warningMessages].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${String(count).padStart(5)} × ${message}`);
  }
  console.log(
    `restarted: ${bench.nodes.map((node) => `node ${node.id} ${rounds.filter((r) => r.victim === node.id).length}×`).join(', ')}`,
  );
  console.log(`\ncommand: ${command}`);
} catch (error) {
  failed = true;
  bench.printLogTails();
  throw error;
} finally {
  const stopMs = await bench.stop();
  if (!failed)
    console.log(
      `cluster stopped (SIGTERM, controlled shutdown) in ${(stopMs / 1000).toFixed(1)} s`,
    );
}
