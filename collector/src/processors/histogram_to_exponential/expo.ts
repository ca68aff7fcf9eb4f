// Explicit-bucket → exponential histogram conversion (OTel data model, base = 2^(2^-scale), bucket
// `index` covers (base^index, base^(index+1)]).
//
// Placement rule: every explicit bucket's whole count is put at one representative value:
//   - the bucket's edges are first clamped to the point's [min, max] when known; the open-ended
//     first/last buckets use min/max as their outer edge, or collapse onto their finite bound;
//   - a bucket with both edges > 0 is represented by its geometric midpoint √(l·u) (< 0: mirrored);
//   - a bucket touching or straddling 0 uses its arithmetic midpoint; exactly 0 goes to zero_count.
// Scale: the largest scale ≤ max_scale at which both the positive and negative index ranges fit in
// max_size buckets (downscaling merges pairs of buckets, which loses nothing further).
//
// Error bound: count, sum, min and max are copied exactly, and bucket order is preserved, so the
// rank-r value of the result sits in the exponential bucket holding √(l·u) of the explicit bucket
// (l, u] that held the true rank-r value v. Any value x̂ chosen inside that exponential bucket
// therefore satisfies, for buckets with l > 0:
//       |ln x̂ − ln v|  ≤  ½·ln(u/l) + ln(base)
// i.e. half the explicit bucket's own log-width (information the input never had) plus one
// exponential bucket. The property tests check exactly this.
import type { ExponentialHistogramDataPoint, HistogramDataPoint } from '../../../../proto/src/model.ts';

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0; // little-endian: high word at [1]

/** Bucket index of v > 0 at `scale` per the OTel spec, with exact handling of powers of two. */
export function mapToIndex(v: number, scale: number): number {
  f64[0] = v;
  const hi = u32[HI];
  const lo = u32[1 - HI];
  const rawExp = (hi >>> 20) & 0x7ff;
  if (rawExp === 0) {
    // Subnormal: fall back to logarithms (precision there is irrelevant in practice).
    return Math.ceil(Math.log2(v) * Math.pow(2, scale)) - 1;
  }
  const exp = rawExp - 1023;
  const powerOfTwo = (hi & 0xfffff) === 0 && lo === 0;
  if (scale <= 0) {
    const e = powerOfTwo ? exp - 1 : exp;
    return Math.floor(e / Math.pow(2, -scale));
  }
  if (powerOfTwo) return exp * Math.pow(2, scale) - 1;
  return Math.ceil(Math.log2(v) * Math.pow(2, scale)) - 1;
}

/** Lower boundary of bucket `index` at `scale`: base^index. */
export function lowerBoundary(index: number, scale: number): number {
  return Math.pow(2, index * Math.pow(2, -scale));
}

export interface ConvertOptions {
  maxSize: number;
  maxScale: number;
  minScale: number;
}

export const DEFAULT_CONVERT_OPTIONS: ConvertOptions = { maxSize: 160, maxScale: 20, minScale: -10 };

/** The representative value of explicit bucket i (see the placement rule above). */
export function representative(dp: HistogramDataPoint, i: number): number {
  const b = dp.explicitBounds;
  const n = b.length;
  if (n === 0) {
    // A single (-inf, +inf) bucket: the mean is the best single point we have.
    const c = Number(dp.count);
    if (dp.sum !== undefined && c > 0) return dp.sum / c;
    return dp.min !== undefined && dp.max !== undefined ? (dp.min + dp.max) / 2 : 0;
  }
  let lo = i === 0 ? (dp.min ?? b[0]) : b[i - 1];
  let hi = i === n ? (dp.max ?? b[n - 1]) : b[i];
  if (dp.min !== undefined && lo < dp.min) lo = dp.min;
  if (dp.max !== undefined && hi > dp.max) hi = dp.max;
  if (i === 0 && dp.min === undefined) lo = hi;
  if (i === n && dp.max === undefined) hi = lo;
  if (lo > hi) lo = hi; // inconsistent min/max vs bounds: trust the bound
  if (lo === hi) return lo;
  if (lo > 0) return Math.sqrt(lo * hi);
  if (hi < 0) return -Math.sqrt(lo * hi);
  return (lo + hi) / 2;
}

export function toExponential(dp: HistogramDataPoint, opts: ConvertOptions = DEFAULT_CONVERT_OPTIONS): ExponentialHistogramDataPoint {
  const nb = dp.bucketCounts.length;
  const reps: number[] = [];
  const counts: bigint[] = [];
  let zero = 0n;
  for (let i = 0; i < nb; i++) {
    const c = dp.bucketCounts[i];
    if (c === 0n) continue;
    const r = representative(dp, i);
    if (r === 0 || !Number.isFinite(r)) {
      zero += c;
      continue;
    }
    reps.push(r);
    counts.push(c);
  }
  // Indices at the finest scale, then halve until both ranges fit.
  let scale = opts.maxScale;
  const idx = reps.map((r) => mapToIndex(Math.abs(r), scale));
  const range = (sign: number) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (let k = 0; k < reps.length; k++) {
      if (Math.sign(reps[k]) !== sign) continue;
      if (idx[k] < lo) lo = idx[k];
      if (idx[k] > hi) hi = idx[k];
    }
    return { lo, hi };
  };
  for (;;) {
    const p = range(1);
    const n = range(-1);
    const fits = (r: { lo: number; hi: number }) => r.lo === Infinity || r.hi - r.lo + 1 <= opts.maxSize;
    if ((fits(p) && fits(n)) || scale <= opts.minScale) break;
    scale--;
    for (let k = 0; k < idx.length; k++) idx[k] = Math.floor(idx[k] / 2);
  }
  const build = (sign: number) => {
    const r = range(sign);
    if (r.lo === Infinity) return { offset: 0, bucketCounts: [] as bigint[] };
    const out = new Array<bigint>(r.hi - r.lo + 1).fill(0n);
    for (let k = 0; k < reps.length; k++) if (Math.sign(reps[k]) === sign) out[idx[k] - r.lo] += counts[k];
    return { offset: r.lo, bucketCounts: out };
  };
  const result: ExponentialHistogramDataPoint = {
    attributes: dp.attributes,
    startTimeUnixNano: dp.startTimeUnixNano,
    timeUnixNano: dp.timeUnixNano,
    count: dp.count,
    scale,
    zeroCount: zero,
    positive: build(1),
    negative: build(-1),
    flags: dp.flags,
    exemplars: dp.exemplars,
    zeroThreshold: 0,
  };
  if (dp.sum !== undefined) result.sum = dp.sum;
  if (dp.min !== undefined) result.min = dp.min;
  if (dp.max !== undefined) result.max = dp.max;
  return result;
}

/**
 * q-quantile estimate of an exponential histogram: the geometric midpoint of the bucket holding
 * rank ceil(q·count), clamped to [min, max]. Used by tests and by the bound above.
 */
export function expQuantile(e: ExponentialHistogramDataPoint, q: number): number {
  const total = Number(e.zeroCount) + e.positive.bucketCounts.reduce((a, c) => a + Number(c), 0) + e.negative.bucketCounts.reduce((a, c) => a + Number(c), 0);
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  const clamp = (x: number) => Math.min(e.max ?? Infinity, Math.max(e.min ?? -Infinity, x));
  const nb = e.negative.bucketCounts;
  for (let i = nb.length - 1; i >= 0; i--) {
    seen += Number(nb[i]);
    if (seen >= rank) {
      const idx = e.negative.offset + i;
      return clamp(-Math.sqrt(lowerBoundary(idx, e.scale) * lowerBoundary(idx + 1, e.scale)));
    }
  }
  seen += Number(e.zeroCount);
  if (seen >= rank) return 0;
  const pb = e.positive.bucketCounts;
  for (let i = 0; i < pb.length; i++) {
    seen += Number(pb[i]);
    if (seen >= rank) {
      const idx = e.positive.offset + i;
      return clamp(Math.sqrt(lowerBoundary(idx, e.scale) * lowerBoundary(idx + 1, e.scale)));
    }
  }
  return e.max ?? NaN;
}
