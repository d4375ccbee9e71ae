// The event trace of a run. Every event folds into a fingerprint (so two runs of one seed can
// be compared cheaply: determinism is tested by fingerprints); when a sink is given, events are
// also written as readable lines: virtual time, tick, node and what happened.

import type { Message } from '../core/types.js';
import { finish, mix } from './hash.js';

export const TICK_MS = 10;

export class Trace {
  private hash = 0x7ace;
  events = 0;

  constructor(private readonly sink?: (line: string) => void) {}

  /** Whether lines are wanted: callers build text only then. */
  get enabled(): boolean {
    return this.sink !== undefined;
  }

  /** Folds an event into the fingerprint and, when enabled, writes its line. */
  event(timeMs: number, code: number, a: number, b: number, c: number, text?: string): void {
    this.events++;
    this.hash = mix(mix(mix(mix(mix(this.hash, timeMs), code), a), b), c);
    if (this.sink !== undefined && text !== undefined) this.sink(`${stamp(timeMs)} ${text}`);
  }

  /** A line that is not an event (headers, summaries). */
  note(text: string): void {
    this.sink?.(text);
  }

  get fingerprint(): string {
    return finish(mix(this.hash, this.events)).toString(16).padStart(8, '0');
  }
}

/** Event codes folded into the fingerprint. */
export const TraceCode = {
  send: 1,
  drop: 2,
  deliver: 3,
  duplicate: 4,
  role: 5,
  commit: 6,
  crash: 7,
  restart: 8,
  partition: 9,
  heal: 10,
  pause: 11,
  client: 12,
  apply: 13,
  snapshot: 14,
  fault: 15,
  liveness: 16,
  sync: 17,
} as const;

function stamp(timeMs: number): string {
  const tick = Math.floor(timeMs / TICK_MS);
  return `[${String(timeMs).padStart(6)}ms tick ${String(tick).padStart(4)}]`;
}

export function describeMessage(m: Message): string {
  const head = `n${m.from}→n${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'vote':
    case 'preVote':
      return `${head} last ${m.lastLogIndex}/${m.lastLogTerm}${m.transfer ? ' transfer' : ''}`;
    case 'voteResponse':
    case 'preVoteResponse':
      return `${head} ${m.granted ? 'granted' : 'rejected'}`;
    case 'append': {
      const first = m.entries[0]?.index;
      const range = first === undefined ? 'no entries' : `[${first}..${m.entries.at(-1)!.index}]`;
      return `${head} prev ${m.prevLogIndex}/${m.prevLogTerm} ${range} commit ${m.commit}`;
    }
    case 'appendResponse':
      return m.success
        ? `${head} ok ${m.index}`
        : `${head} reject ${m.index} hint ${m.hintIndex}/${m.hintTerm}`;
    case 'heartbeat':
      return `${head} commit ${m.commit}${m.context === 0 ? '' : ` read ${m.context}`}`;
    case 'heartbeatResponse':
      return m.context === 0 ? head : `${head} read ${m.context}`;
    case 'snapshot':
      return `${head} snapshot ${m.snapshot.metadata.index}/${m.snapshot.metadata.term}`;
    case 'timeoutNow':
      return head;
  }
}

/** A number per message type, for the fingerprint. */
export function messageCode(m: Message): number {
  return MESSAGE_CODES[m.type];
}

const MESSAGE_CODES: Record<Message['type'], number> = {
  vote: 1,
  preVote: 2,
  voteResponse: 3,
  preVoteResponse: 4,
  append: 5,
  appendResponse: 6,
  heartbeat: 7,
  heartbeatResponse: 8,
  snapshot: 9,
  timeoutNow: 10,
};
