// Explicit-bucket → exponential histogram conversion (OTel data model, base = 2^(2^-scale), bucket
// `index` covers (base^index, base^(index+1)]).
//
// Placement rule: every explicit bucket's whole count is put at one representative value:
//   - the bucket's edges are first clamped to the point's [min, max] when known; the open-ended
//     first/last buckets use min/max as their outer edge, or else collapse onto their finite
//     bound: b_0 for (-inf, b_0], the next double above b_N for (b_N, +inf);
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
import type { ExponentialHistogramBuckets, ExponentialHistogramDataPoint, HistogramDataPoint } from '../../../../proto/src/model.ts';

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

const nf = new Float64Array(1);
const nb = new BigInt64Array(nf.buffer);

/** The next double above x (finite, non-zero x); x itself if that would overflow. */
export function nextUp(x: number): number {
  nf[0] = x;
  // As a signed integer, a positive double's bits grow with it; a negative one's shrink toward 0.
  nb[0] += x > 0 ? 1n : -1n;
  return Number.isFinite(nf[0]) ? nf[0] : x;
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
  // Overflow bucket (b_N, +inf) without max: its values are all > b_N, so use the smallest double
  // above b_N. b_N itself would land in the bucket whose upper edge is b_N when b_N is a bucket
  // boundary, below every value counted here; nextUp gives b_N's index + 1 in that case.
  if (i === n && dp.max === undefined && lo === b[n - 1] && lo !== 0) return nextUp(lo);
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

/** Default bucket limit per range when merging exponential histograms (contrib's deltatocumulative uses 160). */
export const MERGE_MAX_SIZE = 160;

/** First and last non-zero bucket index, or undefined when every bucket is empty. */
function nonZeroRange(b: ExponentialHistogramBuckets): [number, number] | undefined {
  const c = b.bucketCounts;
  let i = 0;
  while (i < c.length && c[i] === 0n) i++;
  if (i === c.length) return undefined;
  let j = c.length - 1;
  while (c[j] === 0n) j--;
  return [b.offset + i, b.offset + j];
}

/** Buckets `by` scales coarser: index i becomes floor(i / 2^by) (perfect subsetting, nothing lost). */
export function downscaleBuckets(b: ExponentialHistogramBuckets, by: number): ExponentialHistogramBuckets {
  const r = nonZeroRange(b);
  if (!r) return { offset: 0, bucketCounts: [] };
  const div = Math.pow(2, by);
  const lo = Math.floor(r[0] / div);
  const out = new Array<bigint>(Math.floor(r[1] / div) - lo + 1).fill(0n);
  for (let i = r[0] - b.offset; i <= r[1] - b.offset; i++) out[Math.floor((b.offset + i) / div) - lo] += b.bucketCounts[i];
  return { offset: lo, bucketCounts: out };
}

/** Bucket-wise sum of two bucket ranges at the same scale. */
function addBuckets(a: ExponentialHistogramBuckets, b: ExponentialHistogramBuckets): ExponentialHistogramBuckets {
  const ra = nonZeroRange(a);
  const rb = nonZeroRange(b);
  if (!ra) return rb ? downscaleBuckets(b, 0) : { offset: 0, bucketCounts: [] };
  if (!rb) return downscaleBuckets(a, 0);
  const lo = Math.min(ra[0], rb[0]);
  const out = new Array<bigint>(Math.max(ra[1], rb[1]) - lo + 1).fill(0n);
  for (const x of [a, b]) for (let i = 0; i < x.bucketCounts.length; i++) if (x.bucketCounts[i] !== 0n) out[x.offset + i - lo] += x.bucketCounts[i];
  return { offset: lo, bucketCounts: out };
}

/** Moves buckets lying wholly inside [-t, t] into the zero bucket (their upper edge ≤ t). */
function widenZero(p: ExponentialHistogramDataPoint, t: number): void {
  if (p.zeroThreshold >= t) return;
  p.zeroThreshold = t;
  if (!(t > 0)) return;
  let idx = mapToIndex(t, p.scale); // the bucket holding t: (base^idx, base^(idx+1)]
  if (lowerBoundary(idx + 1, p.scale) <= t) idx++;
  for (const side of ['positive', 'negative'] as const) {
    const b = p[side];
    const keep: bigint[] = [];
    let offset = b.offset;
    for (let i = 0; i < b.bucketCounts.length; i++) {
      if (b.offset + i < idx) p.zeroCount += b.bucketCounts[i];
      else {
        if (keep.length === 0) offset = b.offset + i;
        keep.push(b.bucketCounts[i]);
      }
    }
    p[side] = { offset: keep.length ? offset : 0, bucketCounts: keep };
  }
}

/**
 * Adds exponential histogram `d` into `acc` (both describing disjoint intervals), as contrib's
 * deltatocumulative does: both go to the coarser scale, further down until each merged range fits
 * `maxSize`, the zero buckets to the wider threshold, then buckets, counts and sums add up and
 * min/max combine. `d` is not modified.
 */
export function mergeExponential(acc: ExponentialHistogramDataPoint, d: ExponentialHistogramDataPoint, maxSize = MERGE_MAX_SIZE): void {
  let scale = Math.min(acc.scale, d.scale);
  for (const side of ['positive', 'negative'] as const) {
    const ra = nonZeroRange(acc[side]);
    const rb = nonZeroRange(d[side]);
    if (!ra && !rb) continue;
    const at = (r: [number, number] | undefined, from: number, k: 0 | 1) => (r ? Math.floor(r[k] / Math.pow(2, from - scale)) : undefined);
    const los = [at(ra, acc.scale, 0), at(rb, d.scale, 0)].filter((x) => x !== undefined) as number[];
    const his = [at(ra, acc.scale, 1), at(rb, d.scale, 1)].filter((x) => x !== undefined) as number[];
    let lo = Math.min(...los);
    let hi = Math.max(...his);
    while (hi - lo + 1 > maxSize) {
      lo = Math.floor(lo / 2);
      hi = Math.floor(hi / 2);
      scale--;
    }
  }
  const dd: ExponentialHistogramDataPoint = { ...d, positive: downscaleBuckets(d.positive, d.scale - scale), negative: downscaleBuckets(d.negative, d.scale - scale), scale };
  acc.positive = downscaleBuckets(acc.positive, acc.scale - scale);
  acc.negative = downscaleBuckets(acc.negative, acc.scale - scale);
  acc.scale = scale;
  const zt = Math.max(acc.zeroThreshold, d.zeroThreshold);
  widenZero(acc, zt);
  widenZero(dd, zt);
  acc.positive = addBuckets(acc.positive, dd.positive);
  acc.negative = addBuckets(acc.negative, dd.negative);
  acc.zeroCount += dd.zeroCount;
  addSummary(acc, d);
}

interface Summary {
  count: bigint;
  sum?: number;
  min?: number;
  max?: number;
}

/**
 * Adds `from`'s count and sum into `into` and widens its min / max. A sum, min or max only one of
 * the two has is dropped: the combined value is not known.
 */
export function addSummary(into: Summary, from: Summary): void {
  into.count += from.count;
  if (into.sum !== undefined && from.sum !== undefined) into.sum += from.sum;
  else delete into.sum;
  if (into.min !== undefined && from.min !== undefined) into.min = Math.min(into.min, from.min);
  else delete into.min;
  if (into.max !== undefined && from.max !== undefined) into.max = Math.max(into.max, from.max);
  else delete into.max;
}
