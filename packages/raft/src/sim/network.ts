// The simulated network between voters: per-link cuts (partitions, symmetric or one-way) and
// "weather" (loss, duplication, latency, rare long delays that reorder messages). It decides
// the fate of each message; the simulator schedules the deliveries.

import type { NodeId } from '../core/types.js';
import type { Prng } from './prng.js';

export interface Weather {
  readonly dropRate: number;
  readonly duplicateRate: number;
  /** Probability that a message takes the long road (up to longDelayMaxMs): reordering. */
  readonly longDelayRate: number;
  readonly minLatencyMs: number;
  readonly maxLatencyMs: number;
  readonly longDelayMaxMs: number;
}

export const CALM_WEATHER: Weather = {
  dropRate: 0,
  duplicateRate: 0,
  longDelayRate: 0,
  minLatencyMs: 1,
  maxLatencyMs: 5,
  longDelayMaxMs: 5,
};

/** A directed link: messages from `from` to `to`. */
export interface Link {
  readonly from: NodeId;
  readonly to: NodeId;
}

export interface Partition {
  readonly description: string;
  readonly links: readonly Link[];
}

export class Network {
  weather: Weather = CALM_WEATHER;
  /** Reference counts per directed link, so overlapping partitions heal independently. */
  private readonly cuts: Uint16Array;

  constructor(private readonly size: number) {
    this.cuts = new Uint16Array((size + 1) * (size + 1));
  }

  isConnected(from: NodeId, to: NodeId): boolean {
    return this.cuts[from * (this.size + 1) + to] === 0;
  }

  cut(partition: Partition): void {
    for (const { from, to } of partition.links) this.cuts[from * (this.size + 1) + to]!++;
  }

  heal(partition: Partition): void {
    for (const { from, to } of partition.links) this.cuts[from * (this.size + 1) + to]!--;
  }

  healAll(): void {
    this.cuts.fill(0);
  }

  /** Delivery delays for one message: none when it is lost, two when duplicated. */
  delays(prng: Prng): number[] {
    const w = this.weather;
    if (prng.chance(w.dropRate)) return [];
    const delays = [this.latency(prng)];
    if (prng.chance(w.duplicateRate)) delays.push(this.latency(prng));
    return delays;
  }

  latency(prng: Prng): number {
    const w = this.weather;
    if (prng.chance(w.longDelayRate)) return prng.between(w.maxLatencyMs, w.longDelayMaxMs);
    return prng.between(w.minLatencyMs, w.maxLatencyMs);
  }
}

/** Random weather for a run's fault phase, within the given maxima. */
export function randomWeather(prng: Prng, max: Weather): Weather {
  return {
    dropRate: prng.next() * max.dropRate,
    duplicateRate: prng.next() * max.duplicateRate,
    longDelayRate: prng.next() * max.longDelayRate,
    minLatencyMs: max.minLatencyMs,
    maxLatencyMs: prng.between(max.minLatencyMs, max.maxLatencyMs),
    longDelayMaxMs: max.longDelayMaxMs,
  };
}

/**
 * A random partition of `nodes`: one node isolated, a symmetric split, a node that can only
 * send or only receive (asymmetric), a bridge node that sees two halves that cannot see each
 * other, or a handful of random one-way cuts.
 */
export function randomPartition(prng: Prng, nodes: readonly NodeId[]): Partition {
  switch (prng.int(5)) {
    case 0: {
      const node = prng.pick(nodes);
      return { description: `isolate n${node}`, links: between([node], without(nodes, [node])) };
    }
    case 1: {
      const shuffled = prng.shuffle(nodes);
      const side = shuffled.slice(0, prng.between(1, Math.floor(nodes.length / 2)));
      return {
        description: `split {${names(side)}} | {${names(without(nodes, side))}}`,
        links: between(side, without(nodes, side)),
      };
    }
    case 2: {
      const node = prng.pick(nodes);
      const others = without(nodes, [node]);
      return prng.chance(0.5)
        ? {
            description: `n${node} cannot receive`,
            links: others.map((from) => ({ from, to: node })),
          }
        : { description: `n${node} cannot send`, links: others.map((to) => ({ from: node, to })) };
    }
    case 3: {
      const [bridge, ...rest] = prng.shuffle(nodes);
      const left = rest.slice(0, Math.ceil(rest.length / 2));
      const right = rest.slice(left.length);
      return {
        description: `bridge n${bridge!} between {${names(left)}} and {${names(right)}}`,
        links: between(left, right),
      };
    }
    default: {
      const links: Link[] = [];
      const count = prng.between(1, nodes.length);
      for (let i = 0; i < count; i++) {
        const [from, to] = prng.shuffle(nodes);
        links.push({ from: from!, to: to! });
      }
      return {
        description: `one-way cuts ${links.map((l) => `n${l.from}→n${l.to}`).join(' ')}`,
        links,
      };
    }
  }
}

/** Both directions between every node of `a` and every node of `b`. */
function between(a: readonly NodeId[], b: readonly NodeId[]): Link[] {
  const links: Link[] = [];
  for (const x of a) {
    for (const y of b) links.push({ from: x, to: y }, { from: y, to: x });
  }
  return links;
}

function without(nodes: readonly NodeId[], removed: readonly NodeId[]): NodeId[] {
  return nodes.filter((n) => !removed.includes(n));
}

function names(nodes: readonly NodeId[]): string {
  return nodes.map((n) => `n${n}`).join(',');
}
