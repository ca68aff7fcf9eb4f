// Exponential histogram aggregator (OTel data model, base-2 exponential buckets).
// Index i covers (base^i, base^(i+1)] with base = 2^(2^-scale). Starts at MAX_SCALE and
// downscales (merging adjacent buckets) when the index range would exceed maxSize buckets.
import type { ExponentialHistogramDataPoint, KeyValue } from '../../../proto/src/model.ts';

export const MAX_SCALE = 20;
export const DEFAULT_MAX_SIZE = 160;

const LOG2E = Math.LOG2E;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/**
 * Bucket index of a positive value at a scale (bucket i covers (base^i, base^(i+1)]).
 * Exact powers of two are computed exactly; other values by logarithm, as the spec allows.
 */
export function bucketIndex(value: number, scale: number): number {
  // Unbiased binary exponent of a positive normal double, and whether it is an exact power of two.
  f64[0] = value;
  const hi = u32[1]!;
  const e = ((hi >>> 20) & 0x7ff) - 1023;
  const exact = (hi & 0xfffff) === 0 && u32[0] === 0;
  if (scale <= 0) return (exact ? e - 1 : e) >> -scale;
  const factor = scale <= MAX_SCALE ? POW2[scale]! : 2 ** scale; // a table: Math.pow per call showed in profiles
  if (exact) return e * factor - 1;
  return Math.ceil(Math.log(value) * LOG2E * factor) - 1;
}

const POW2 = Float64Array.from({ length: MAX_SCALE + 1 }, (_, i) => 2 ** i);

export class ExpHistogram {
  scale = MAX_SCALE;
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  zeroCount = 0;
  /** Index of counts[0]; counts is a ring of capacity maxSize. */
  private offset = 0;
  private counts: Float64Array;
  private used = 0; // number of buckets from offset with possibly non-zero counts (0 = empty)

  constructor(readonly maxSize = DEFAULT_MAX_SIZE) {
    this.counts = new Float64Array(maxSize);
  }

  record(value: number): void {
    this.count++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    if (value <= 0) {
      this.zeroCount++; // agent values are durations and sizes: never negative
      return;
    }
    let idx = bucketIndex(value, this.scale);
    if (this.used === 0) {
      this.offset = idx;
      this.used = 1;
      this.counts[0] = 1;
      return;
    }
    let lo = Math.min(this.offset, idx);
    let hi = Math.max(this.offset + this.used - 1, idx);
    if (hi - lo + 1 > this.maxSize) {
      let shift = 0;
      while (((hi >> shift) - (lo >> shift)) + 1 > this.maxSize) shift++;
      this.downscale(shift);
      idx = bucketIndex(value, this.scale);
      lo = Math.min(this.offset, idx);
      hi = Math.max(this.offset + this.used - 1, idx);
    }
    if (idx < this.offset) {
      // Grow to the left: move existing counts right.
      const by = this.offset - idx;
      this.counts.copyWithin(by, 0, this.used);
      this.counts.fill(0, 0, by);
      this.offset = idx;
      this.used += by;
    } else if (idx >= this.offset + this.used) {
      this.used = idx - this.offset + 1;
    }
    this.counts[idx - this.offset]++;
  }

  private downscale(shift: number): void {
    const merged = new Float64Array(this.maxSize);
    const newOffset = this.offset >> shift;
    let newUsed = 0;
    for (let i = 0; i < this.used; i++) {
      const c = this.counts[i];
      if (c === 0) continue;
      const j = ((this.offset + i) >> shift) - newOffset;
      merged[j] += c;
      if (j + 1 > newUsed) newUsed = j + 1;
    }
    this.counts = merged;
    this.offset = newOffset;
    this.used = newUsed;
    this.scale -= shift;
  }

  reset(): void {
    this.scale = MAX_SCALE;
    this.count = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = -Infinity;
    this.zeroCount = 0;
    this.offset = 0;
    this.used = 0;
    this.counts.fill(0);
  }

  /** Snapshot as an OTLP data point (positive buckets only). */
  toDataPoint(attributes: KeyValue[], startTimeUnixNano: bigint, timeUnixNano: bigint): ExponentialHistogramDataPoint {
    const bucketCounts: bigint[] = new Array(this.used);
    for (let i = 0; i < this.used; i++) bucketCounts[i] = BigInt(this.counts[i]);
    return {
      attributes,
      startTimeUnixNano,
      timeUnixNano,
      count: BigInt(this.count),
      sum: this.sum,
      scale: this.scale,
      zeroCount: BigInt(this.zeroCount),
      positive: { offset: this.used ? this.offset : 0, bucketCounts },
      negative: { offset: 0, bucketCounts: [] },
      flags: 0,
      exemplars: [],
      min: this.count ? this.min : undefined,
      max: this.count ? this.max : undefined,
      zeroThreshold: 0,
    };
  }
}
