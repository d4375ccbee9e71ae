// A fixed-size, log-linear latency histogram in the manner of HdrHistogram: values (in
// microseconds) below 2^SUB_BITS each have their own bucket; above, every power of two is split
// into 2^SUB_BITS equal buckets, so a percentile is off by less than 2^-SUB_BITS (0.8 %) of its
// value. Memory is fixed (about 35 KiB) however many values are recorded; count, mean, min and
// max are exact.

const SUB_BITS = 7;
const SUB_COUNT = 1 << SUB_BITS;
/** Values up to 2^MAX_BITS µs (about 12.7 days); larger ones are clamped. */
const MAX_BITS = 40;
const MAX_VALUE = 2 ** MAX_BITS - 1;
const BUCKETS = SUB_COUNT + (MAX_BITS - SUB_BITS) * SUB_COUNT;

export interface LatencySummary {
  readonly count: number;
  readonly avgMs: number;
  readonly minMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;
  private sumUs = 0;
  private minUs = Infinity;
  private maxUs = 0;

  get count(): number {
    return this.total;
  }

  /** Records one latency in milliseconds (fractions kept to the microsecond). */
  record(ms: number): void {
    const us = Math.min(MAX_VALUE, Math.max(0, Math.round(ms * 1000)));
    this.counts[bucketOf(us)]!++;
    this.total++;
    this.sumUs += us;
    if (us < this.minUs) this.minUs = us;
    if (us > this.maxUs) this.maxUs = us;
  }

  /**
   * The value (ms) at or below which `percentile` % of the recorded values lie: the highest
   * value of the bucket where that rank falls, capped at the exact maximum. 0 when empty.
   */
  percentile(percentile: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil((percentile / 100) * this.total));
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.counts[bucket]!;
      if (seen >= rank) {
        return Math.max(this.minUs, Math.min(this.maxUs, highestIn(bucket))) / 1000;
      }
    }
    return this.maxUs / 1000;
  }

  summary(): LatencySummary {
    const empty = this.total === 0;
    return {
      count: this.total,
      avgMs: empty ? 0 : this.sumUs / this.total / 1000,
      minMs: empty ? 0 : this.minUs / 1000,
      p50Ms: this.percentile(50),
      p95Ms: this.percentile(95),
      p99Ms: this.percentile(99),
      p999Ms: this.percentile(99.9),
      maxMs: this.maxUs / 1000,
    };
  }
}

function bucketOf(us: number): number {
  if (us < SUB_COUNT) return us;
  const shift = Math.floor(Math.log2(us)) - SUB_BITS;
  // Math.log2 of a value just below a power of two can round up; the division corrects it.
  const exact = Math.floor(us / 2 ** shift) < SUB_COUNT ? shift - 1 : shift;
  const sub = Math.floor(us / 2 ** exact); // in [SUB_COUNT, 2 * SUB_COUNT)
  return SUB_COUNT + exact * SUB_COUNT + (sub - SUB_COUNT);
}

/** The highest value a bucket holds. */
function highestIn(bucket: number): number {
  if (bucket < SUB_COUNT) return bucket;
  const exact = Math.floor((bucket - SUB_COUNT) / SUB_COUNT);
  const sub = SUB_COUNT + ((bucket - SUB_COUNT) % SUB_COUNT);
  return (sub + 1) * 2 ** exact - 1;
}
