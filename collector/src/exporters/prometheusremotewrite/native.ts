// OTel exponential histogram point → Prometheus native histogram (remote write 1.0, prompb
// types.proto: TimeSeries.histograms = 4; Histogram count_int=1, sum=3, schema=4 (sint32),
// zero_threshold=5, zero_count_int=6, negative_spans=8, negative_deltas=9 (packed sint64),
// positive_spans=11, positive_deltas=12 (packed sint64), reset_hint=14, timestamp=15 (int64 ms);
// BucketSpan offset=1 (sint32), length=2 (uint32)). The mapping follows contrib's
// pkg/translator/prometheusremotewrite (exponentialToNativeHistogram):
// - schema = scale; a scale above 8 is merged down to 8 (2^(scale-8) adjacent buckets become one:
//   index i → floor(i / 2^(scale-8))); a scale below -4 cannot be represented: the point is refused;
// - OTel bucket i covers (base^i, base^(i+1)], Prometheus bucket j covers (base^(j-1), base^j]: j = i + 1,
//   on both sides (negative buckets are indexed by magnitude in both models);
// - spans: a run of at most 2 empty buckets between two non-empty ones is sent as zero-count buckets
//   inside the span, a longer one starts a new span (contrib, after client_golang's makeBuckets).
//   Empty buckets before the first and after the last non-empty one are left out: a cumulative
//   point's buckets then never disappear from one point to the next (which Prometheus would read
//   as a counter reset);
// - deltas: the first bucket's count, then each count minus the previous one;
// - zero_threshold: the point's when set, else 1e-128 as contrib (which always sends 1e-128);
// - sum: 0 when the point has none (contrib); reset_hint UNKNOWN (contrib, for cumulative points:
//   Prometheus detects resets itself);
// - a point without a recorded value: sum and count_int both carry the stale NaN's bits
//   0x7ff0000000000002 (contrib); Prometheus checks the sum.
// A point whose count is not zero_count plus its bucket counts is refused as well: Prometheus 3
// rejects such a histogram with a 400, and with it every other series of the request.
import type { ExponentialHistogramBuckets, ExponentialHistogramDataPoint } from '../../../../proto/src/model.ts';
import { PbWriter } from '../../util/pb.ts';
import { STALE_NAN_BITS } from '../prometheus_common/translate.ts';

/** Native histogram schemas Prometheus accepts for exponential buckets. */
export const MIN_SCHEMA = -4;
export const MAX_SCHEMA = 8;
/** contrib's zero_threshold when the OTel point has none. */
export const DEFAULT_ZERO_THRESHOLD = 1e-128;

export interface BucketSpan {
  /** Gap to the previous span's end, or the first bucket's index for the first span. */
  offset: number;
  length: number;
}

export interface NativeHistogram {
  /** count_int; STALE_NAN_BITS for a stale marker. */
  count: bigint;
  sum: number;
  stale: boolean;
  schema: number;
  zeroThreshold: number;
  zeroCount: bigint;
  negativeSpans: BucketSpan[];
  negativeDeltas: bigint[];
  positiveSpans: BucketSpan[];
  positiveDeltas: bigint[];
  /** Milliseconds since the epoch. */
  timestampMs: number;
}

/** Spans and deltas of one side, `down` times merged into the next coarser scale. */
export function bucketLayout(b: ExponentialHistogramBuckets, down: number): { spans: BucketSpan[]; deltas: bigint[]; total: bigint } {
  const div = 2 ** down;
  // Non-empty buckets by Prometheus index, ascending (OTel buckets are dense and in order, and
  // merging keeps the order).
  const idx: number[] = [];
  const cnt: bigint[] = [];
  let total = 0n;
  for (let k = 0; k < b.bucketCounts.length; k++) {
    const c = b.bucketCounts[k];
    if (c === 0n) continue;
    total += c;
    const j = Math.floor((b.offset + k) / div) + 1;
    if (idx.length && idx[idx.length - 1] === j) cnt[cnt.length - 1] += c;
    else {
      idx.push(j);
      cnt.push(c);
    }
  }
  const spans: BucketSpan[] = [];
  const deltas: bigint[] = [];
  let prev = 0n;
  const add = (c: bigint) => {
    deltas.push(c - prev);
    prev = c;
    spans[spans.length - 1].length++;
  };
  for (let n = 0; n < idx.length; n++) {
    const gap = n === 0 ? 0 : idx[n] - idx[n - 1] - 1;
    if (n === 0) spans.push({ offset: idx[0], length: 0 });
    else if (gap > 2) spans.push({ offset: gap, length: 0 });
    else for (let g = 0; g < gap; g++) add(0n);
    add(cnt[n]);
  }
  return { spans, deltas, total };
}

/** The native histogram of a point, or why it cannot be one. */
export function toNativeHistogram(p: ExponentialHistogramDataPoint, timestampMs: number, stale: boolean): NativeHistogram | { refused: string } {
  if (p.scale < MIN_SCHEMA) return { refused: `scale ${p.scale} is below ${MIN_SCHEMA}, the smallest native histogram schema` };
  const down = Math.max(0, p.scale - MAX_SCHEMA);
  const pos = bucketLayout(p.positive, down);
  const neg = bucketLayout(p.negative, down);
  if (!stale && p.count !== p.zeroCount + pos.total + neg.total)
    return { refused: `count ${p.count} is not zero_count + bucket counts (${p.zeroCount + pos.total + neg.total})` };
  return {
    count: stale ? STALE_NAN_BITS : p.count,
    sum: stale ? NaN : (p.sum ?? 0),
    stale,
    schema: p.scale - down,
    zeroThreshold: p.zeroThreshold > 0 ? p.zeroThreshold : DEFAULT_ZERO_THRESHOLD,
    zeroCount: p.zeroCount,
    negativeSpans: neg.spans,
    negativeDeltas: neg.deltas,
    positiveSpans: pos.spans,
    positiveDeltas: pos.deltas,
    timestampMs,
  };
}

/** ZigZag encoding of a signed 64-bit integer (protobuf sint32 / sint64). */
export function zigzag(v: bigint | number): bigint {
  const x = BigInt.asIntN(64, BigInt(v));
  return BigInt.asUintN(64, (x << 1n) ^ (x >> 63n));
}

function spans(w: PbWriter, field: number, list: BucketSpan[]): void {
  for (const s of list)
    w.message(field, (m) => {
      if (s.offset !== 0) m.uint(1, zigzag(s.offset));
      if (s.length !== 0) m.uint(2, s.length);
    });
}

function packedSint(w: PbWriter, field: number, list: bigint[]): void {
  if (list.length === 0) return;
  const p = new PbWriter(list.length * 2);
  for (const d of list) p.varint(zigzag(d));
  w.bytes(field, p.finish());
}

/** Writes one prometheus.Histogram message body. */
export function writeHistogram(w: PbWriter, h: NativeHistogram): void {
  w.uint(1, h.count);
  w.double(3, h.sum);
  // A JS NaN need not keep its payload: write the stale marker's bits themselves.
  if (h.stale) w.buf.writeBigUInt64LE(STALE_NAN_BITS, w.pos - 8);
  if (h.schema !== 0) w.uint(4, zigzag(h.schema));
  w.double(5, h.zeroThreshold);
  w.uint(6, h.zeroCount);
  spans(w, 8, h.negativeSpans);
  packedSint(w, 9, h.negativeDeltas);
  spans(w, 11, h.positiveSpans);
  packedSint(w, 12, h.positiveDeltas);
  // reset_hint (14) stays UNKNOWN, the default: not written.
  if (h.timestampMs) w.uint(15, BigInt(Math.trunc(h.timestampMs)));
}
