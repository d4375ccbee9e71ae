// The perf tools' latency histogram: percentiles within its stated precision of the exact ones.

import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../src/perf/latency-histogram.js';

/** The exact percentile of sorted values: the smallest value with `p` % at or below it. */
function exact(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A deterministic pseudo-random sequence (mulberry32). */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('LatencyHistogram', () => {
  it('is all zeros when empty', () => {
    expect(new LatencyHistogram().summary()).toEqual({
      count: 0,
      avgMs: 0,
      minMs: 0,
      p50Ms: 0,
      p95Ms: 0,
      p99Ms: 0,
      p999Ms: 0,
      maxMs: 0,
    });
  });

  it('keeps values below 0.128 ms exact, to the microsecond', () => {
    const histogram = new LatencyHistogram();
    for (let us = 1; us <= 100; us++) histogram.record(us / 1000);
    expect(histogram.percentile(50)).toBe(0.05);
    expect(histogram.percentile(99)).toBe(0.099);
    expect(histogram.summary()).toMatchObject({ count: 100, minMs: 0.001, maxMs: 0.1 });
    expect(histogram.summary().avgMs).toBeCloseTo(0.0505, 6);
  });

  it('gives percentiles within 1 % of the exact ones over six decades', () => {
    const next = random(42);
    const histogram = new LatencyHistogram();
    const values: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      // Log-uniform from 1 µs to 1000 s.
      const ms = 10 ** (next() * 9 - 3);
      values.push(Math.round(ms * 1000) / 1000);
      histogram.record(ms);
    }
    values.sort((a, b) => a - b);
    for (const p of [1, 10, 50, 90, 95, 99, 99.9, 99.99, 100]) {
      const want = exact(values, p);
      const got = histogram.percentile(p);
      expect(Math.abs(got - want) / want, `p${p}: ${got} vs ${want}`).toBeLessThan(0.01);
    }
    const summary = histogram.summary();
    expect(summary.minMs).toBe(values[0]);
    expect(summary.maxMs).toBe(values.at(-1));
  });

  it('reports the bucket a rank falls in, never above the largest value', () => {
    const histogram = new LatencyHistogram();
    for (let i = 0; i < 99; i++) histogram.record(10);
    histogram.record(1000);
    expect(histogram.percentile(50)).toBeGreaterThanOrEqual(10);
    expect(histogram.percentile(50)).toBeLessThan(10.1);
    expect(histogram.percentile(99)).toBeLessThan(10.1);
    expect(histogram.percentile(99.9)).toBe(1000);
    expect(histogram.percentile(100)).toBe(1000);
  });
});
