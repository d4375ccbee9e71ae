// Simulated clients of the replicated register: each runs one operation at a time (put, get,
// compare-and-set on a few keys), sends it to the node it believes leads, follows redirects,
// retries elsewhere on a timeout with the same request id (the state machine deduplicates), and
// gives up after a while. Every operation goes into the history with its invocation and
// completion times in virtual time; one given up on has an unknown outcome.

import { NO_NODE, type NodeId } from '../core/types.js';
import type { Command, Output } from './kv.js';
import type { HistoryEntry, RegisterOp } from './linearizability.js';
import type { Prng } from './prng.js';
import { TICK_MS } from './trace.js';

/** How a node serves a get: through the log, or by ReadIndex (thesis §6.4). */
export type ReadPath = 'log' | 'readIndex';

export interface ClientRequest {
  readonly client: number;
  readonly seq: number;
  readonly attempt: number;
  readonly command: Command;
  readonly readPath: ReadPath;
}

export type ClientReply =
  | {
      readonly kind: 'notLeader';
      readonly client: number;
      readonly seq: number;
      readonly attempt: number;
      readonly leaderHint: NodeId;
    }
  | { readonly kind: 'ok'; readonly client: number; readonly seq: number; readonly output: Output };

export interface WorkloadContext {
  readonly nodeIds: readonly NodeId[];
  now(): number;
  schedule(delayMs: number, run: () => void): void;
  send(to: NodeId, request: ClientRequest): void;
  log(text: string): void;
}

export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: number;
  /** Per attempt, before trying another node. */
  readonly attemptTimeoutMs: number;
  /** After this long without an answer the client gives up: the outcome stays unknown. */
  readonly giveUpMs: number;
  readonly thinkTimeMs: number;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = {
  clients: 3,
  keys: 3,
  attemptTimeoutMs: 6 * TICK_MS,
  giveUpMs: 40 * TICK_MS,
  thinkTimeMs: 3 * TICK_MS,
};

interface PendingOp {
  readonly seq: number;
  readonly key: number;
  readonly op: RegisterOp;
  readonly command: Command;
  readonly readPath: ReadPath;
  readonly invokeMs: number;
  attempt: number;
}

interface Client {
  readonly id: number;
  seq: number;
  leaderGuess: NodeId;
  pending: PendingOp | undefined;
  /** The last value this client saw per key: what its compare-and-sets expect. */
  readonly seen: Map<number, number>;
}

export class Workload {
  readonly history: HistoryEntry[] = [];
  private readonly clients: Client[] = [];
  private invoking = true;
  completed = 0;
  ambiguous = 0;

  constructor(
    private readonly ctx: WorkloadContext,
    private readonly prng: Prng,
    private readonly options: WorkloadOptions = DEFAULT_WORKLOAD,
  ) {
    for (let id = 1; id <= options.clients; id++) {
      this.clients.push({ id, seq: 0, leaderGuess: NO_NODE, pending: undefined, seen: new Map() });
    }
  }

  start(): void {
    for (const client of this.clients) this.thinkThenInvoke(client);
  }

  /** No new operations from now on; those under way continue. */
  stopInvoking(): void {
    this.invoking = false;
  }

  get idle(): boolean {
    return this.clients.every((c) => c.pending === undefined);
  }

  /** End of the run: whatever is still under way has an unknown outcome. */
  finish(): void {
    for (const client of this.clients) {
      if (client.pending !== undefined) this.giveUp(client, client.pending);
    }
  }

  private thinkThenInvoke(client: Client): void {
    if (!this.invoking) return;
    this.ctx.schedule(this.prng.between(0, this.options.thinkTimeMs), () => this.invoke(client));
  }

  private invoke(client: Client): void {
    if (!this.invoking) return;
    client.seq++;
    client.pending = this.newOp(client);
    this.attempt(client, client.pending);
  }

  private newOp(client: Client): PendingOp {
    const key = this.prng.int(this.options.keys);
    const base = { seq: client.seq, key, invokeMs: this.ctx.now(), attempt: 0 };
    const ids = { client: client.id, seq: client.seq, key };
    const roll = this.prng.next();
    if (roll < 0.4) {
      const value = client.id * 1_000_000 + client.seq;
      return {
        ...base,
        op: { kind: 'put', value },
        command: { kind: 'put', ...ids, value },
        readPath: 'log',
      };
    }
    if (roll < 0.75) {
      const readPath: ReadPath = this.prng.chance(0.5) ? 'readIndex' : 'log';
      return { ...base, op: { kind: 'get' }, command: { kind: 'get', ...ids }, readPath };
    }
    const expected = client.seen.get(key) ?? 0;
    const value = client.id * 1_000_000 + client.seq;
    return {
      ...base,
      op: { kind: 'cas', expected, value },
      command: { kind: 'cas', ...ids, expected, value },
      readPath: 'log',
    };
  }

  private attempt(client: Client, op: PendingOp): void {
    op.attempt++;
    if (this.ctx.now() - op.invokeMs > this.options.giveUpMs) {
      this.giveUp(client, op);
      this.thinkThenInvoke(client);
      return;
    }
    if (client.leaderGuess === NO_NODE) client.leaderGuess = this.prng.pick(this.ctx.nodeIds);
    const attempt = op.attempt;
    this.ctx.send(client.leaderGuess, {
      client: client.id,
      seq: op.seq,
      attempt,
      command: op.command,
      readPath: op.readPath,
    });
    this.ctx.schedule(this.options.attemptTimeoutMs, () => {
      if (client.pending !== op || op.attempt !== attempt) return;
      client.leaderGuess = this.otherNode(client.leaderGuess);
      this.attempt(client, op);
    });
  }

  onReply(reply: ClientReply): void {
    const client = this.clients[reply.client - 1];
    const op = client?.pending;
    if (client === undefined || op === undefined || op.seq !== reply.seq) return; // stale
    if (reply.kind === 'ok') {
      this.complete(client, op, reply.output);
      return;
    }
    if (reply.attempt !== op.attempt) return;
    client.leaderGuess =
      reply.leaderHint !== NO_NODE ? reply.leaderHint : this.otherNode(client.leaderGuess);
    const backoffMs = reply.leaderHint !== NO_NODE ? this.prng.between(0, 2) : TICK_MS;
    this.ctx.schedule(backoffMs, () => {
      if (client.pending === op && op.attempt === reply.attempt) this.attempt(client, op);
    });
  }

  private complete(client: Client, op: PendingOp, output: Output): void {
    this.history.push({
      client: client.id,
      seq: op.seq,
      key: op.key,
      op: op.op,
      invokeMs: op.invokeMs,
      completeMs: this.ctx.now(),
      output,
    });
    this.completed++;
    if (op.op.kind === 'get' && typeof output === 'number') client.seen.set(op.key, output);
    if (op.op.kind !== 'get' && output !== false) client.seen.set(op.key, op.op.value);
    client.pending = undefined;
    this.ctx.log(`client ${client.id} #${op.seq} ${describeOp(op.key, op.op)} → ${String(output)}`);
    this.thinkThenInvoke(client);
  }

  private giveUp(client: Client, op: PendingOp): void {
    this.history.push({
      client: client.id,
      seq: op.seq,
      key: op.key,
      op: op.op,
      invokeMs: op.invokeMs,
      completeMs: Number.POSITIVE_INFINITY,
      output: undefined,
    });
    if (op.op.kind !== 'get') this.ambiguous++;
    client.pending = undefined;
    this.ctx.log(
      `client ${client.id} #${op.seq} ${describeOp(op.key, op.op)} gave up: outcome unknown`,
    );
  }

  private otherNode(than: NodeId): NodeId {
    const others = this.ctx.nodeIds.filter((id) => id !== than);
    return others.length === 0 ? than : this.prng.pick(others);
  }
}

function describeOp(key: number, op: RegisterOp): string {
  switch (op.kind) {
    case 'put':
      return `put(k${key}, ${op.value})`;
    case 'get':
      return `get(k${key})`;
    case 'cas':
      return `cas(k${key}, ${op.expected}→${op.value})`;
  }
}
