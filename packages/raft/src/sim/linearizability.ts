// A linearizability checker for the register history the simulated clients record, in the
// style of Wing & Gong with Lowe's memoization (as in Porcupine): depth-first search for an
// order of the operations that respects real time and the register's semantics, caching
// (linearized set, state) pairs already explored. Registers are independent, so the history is
// checked key by key, which keeps each search small.
//
// An operation whose outcome is unknown (its client timed out) completes at +Infinity with no
// output: it may take effect anywhere after its invocation, or never (linearized last).

import type { Output } from './kv.js';

export type RegisterOp =
  | { readonly kind: 'put'; readonly value: number }
  | { readonly kind: 'get' }
  | { readonly kind: 'cas'; readonly expected: number; readonly value: number };

export interface HistoryEntry {
  readonly client: number;
  readonly seq: number;
  readonly key: number;
  readonly op: RegisterOp;
  readonly invokeMs: number;
  /** +Infinity when the outcome is unknown. */
  readonly completeMs: number;
  /** undefined when the outcome is unknown. */
  readonly output: Output | undefined;
}

export type LinearizabilityResult =
  | { readonly ok: true; readonly keys: number; readonly unknownKeys: readonly number[] }
  | { readonly ok: false; readonly key: number; readonly explanation: string };

export interface CheckOptions {
  /** Search steps per key before giving up on that key (reported, not failed). */
  readonly maxStepsPerKey?: number;
}

export function checkLinearizability(
  history: readonly HistoryEntry[],
  options: CheckOptions = {},
): LinearizabilityResult {
  const byKey = new Map<number, HistoryEntry[]>();
  for (const entry of history) {
    // A read that never answered constrains nothing.
    if (entry.op.kind === 'get' && entry.output === undefined) continue;
    const list = byKey.get(entry.key) ?? [];
    list.push(entry);
    byKey.set(entry.key, list);
  }
  const unknownKeys: number[] = [];
  for (const [key, entries] of [...byKey].sort((a, b) => a[0] - b[0])) {
    const verdict = checkRegister(entries, options.maxStepsPerKey ?? 2_000_000);
    if (verdict === 'unknown') unknownKeys.push(key);
    if (verdict === 'violation') return { ok: false, key, explanation: explain(key, entries) };
  }
  return { ok: true, keys: byKey.size, unknownKeys };
}

/** One call or return event in time order, in a doubly linked list (Porcupine's entries). */
interface Node {
  readonly id: number;
  readonly entry: HistoryEntry | undefined;
  /** The return node of a call; undefined for returns and the head. */
  match: Node | undefined;
  prev: Node | undefined;
  next: Node | undefined;
}

type Verdict = 'ok' | 'violation' | 'unknown';

/** Is this single-register history linearizable? */
export function checkRegister(entries: readonly HistoryEntry[], maxSteps: number): Verdict {
  const head = buildList(entries);
  const linearized = new Uint32Array(Math.ceil(entries.length / 32) + 1);
  const cache = new Map<string, number[]>();
  const calls: { node: Node; state: number }[] = [];
  let state = 0;
  let node = head.next;
  for (let steps = 0; head.next !== undefined; steps++) {
    if (steps > maxSteps) return 'unknown';
    if (node === undefined) throw new Error('linearizability search ran off the list');
    if (node.match !== undefined) {
      const next = stepRegister(state, node.entry!);
      if (next !== undefined) {
        linearized[node.id >> 5]! ^= 1 << (node.id & 31);
        if (remember(cache, linearized, next)) {
          calls.push({ node, state });
          state = next;
          lift(node);
          node = head.next;
          continue;
        }
        linearized[node.id >> 5]! ^= 1 << (node.id & 31);
      }
      node = node.next;
    } else {
      // A return whose call cannot be linearized before it: undo the last choice.
      const top = calls.pop();
      if (top === undefined) return 'violation';
      linearized[top.node.id >> 5]! ^= 1 << (top.node.id & 31);
      state = top.state;
      unlift(top.node);
      node = top.node.next;
    }
  }
  return 'ok';
}

/** The register's next state after `entry`, or undefined if its output is impossible here. */
function stepRegister(state: number, entry: HistoryEntry): number | undefined {
  const { op, output } = entry;
  switch (op.kind) {
    case 'put':
      return op.value;
    case 'get':
      return output === undefined || output === state ? state : undefined;
    case 'cas': {
      const swaps = state === op.expected;
      if (output === undefined) return swaps ? op.value : state;
      if (output !== swaps) return undefined;
      return swaps ? op.value : state;
    }
  }
}

function buildList(entries: readonly HistoryEntry[]): Node {
  const events: { time: number; isCall: boolean; node: Node }[] = [];
  entries.forEach((entry, id) => {
    const ret: Node = { id, entry, match: undefined, prev: undefined, next: undefined };
    const call: Node = { id, entry, match: ret, prev: undefined, next: undefined };
    events.push({ time: entry.invokeMs, isCall: true, node: call });
    events.push({ time: entry.completeMs, isCall: false, node: ret });
  });
  // Calls before returns at equal times: such operations count as concurrent.
  events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || 0);
  const head: Node = {
    id: -1,
    entry: undefined,
    match: undefined,
    prev: undefined,
    next: undefined,
  };
  let last = head;
  for (const { node } of events) {
    last.next = node;
    node.prev = last;
    last = node;
  }
  return head;
}

/** Adds (linearized, state) to the cache; false when it was there already. */
function remember(cache: Map<string, number[]>, linearized: Uint32Array, state: number): boolean {
  const key = linearized.join(',');
  const states = cache.get(key);
  if (states === undefined) {
    cache.set(key, [state]);
    return true;
  }
  if (states.includes(state)) return false;
  states.push(state);
  return true;
}

function lift(call: Node): void {
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next !== undefined) ret.next.prev = ret.prev;
}

function unlift(call: Node): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== undefined) ret.next.prev = ret;
  call.prev!.next = call;
  call.next!.prev = call;
}

function explain(key: number, entries: readonly HistoryEntry[]): string {
  const lines = [...entries]
    .sort((a, b) => a.invokeMs - b.invokeMs)
    .slice(0, 60)
    .map((e) => `  ${describeEntry(e)}`);
  const more = entries.length > 60 ? `\n  … ${entries.length - 60} more` : '';
  return `no linearization of the ${entries.length} operations on key ${key}:\n${lines.join('\n')}${more}`;
}

export function describeEntry(e: HistoryEntry): string {
  const op =
    e.op.kind === 'put'
      ? `put(${e.op.value})`
      : e.op.kind === 'get'
        ? 'get()'
        : `cas(${e.op.expected}→${e.op.value})`;
  const output = e.output === undefined ? '?' : String(e.output);
  const end = Number.isFinite(e.completeMs) ? `${e.completeMs}ms` : '∞';
  return `[${e.invokeMs}ms, ${end}] client ${e.client} #${e.seq} ${op} → ${output}`;
}
