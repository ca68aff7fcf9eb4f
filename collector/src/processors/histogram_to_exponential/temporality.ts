// Cumulative ↔ delta conversion for sums and explicit-bucket histograms, per stream (resource +
// scope + metric name + point attributes). State is bounded by `maxStreams` (least recently used
// evicted); a stream seen for the first time after cumulative→delta has no previous value, so its
// first point is dropped (the delta is unknown), as otelcol's cumulativetodelta does by default.
// A counter reset (value going down, or a new start time) restarts the stream.
import { AggregationTemporality, type HistogramDataPoint, type KeyValue, type Metric, type NumberDataPoint, type ResourceMetrics, type ScopeMetrics } from '../../../../proto/src/model.ts';

function attrsKey(attrs: KeyValue[]): string {
  if (attrs.length === 0) return '';
  const parts = attrs.map((a) => `${a.key}=${typeof a.value === 'object' && a.value !== null ? JSON.stringify(a.value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)) : String(a.value)}`);
  parts.sort();
  return parts.join('\u0001');
}

interface SumState {
  start: bigint;
  value: number | bigint;
  time: bigint;
}

interface HistState {
  start: bigint;
  count: bigint;
  sum: number;
  buckets: bigint[];
}

export class TemporalityConverter {
  private readonly streams = new Map<string, SumState | HistState>();
  evictions = 0;

  constructor(readonly target: 'delta' | 'cumulative', private readonly maxStreams = 10_000) {}

  get size(): number {
    return this.streams.size;
  }

  private get(key: string): SumState | HistState | undefined {
    const s = this.streams.get(key);
    if (s) {
      this.streams.delete(key);
      this.streams.set(key, s);
    }
    return s;
  }

  private put(key: string, s: SumState | HistState): void {
    if (!this.streams.has(key) && this.streams.size >= this.maxStreams) {
      this.streams.delete(this.streams.keys().next().value as string);
      this.evictions++;
    }
    this.streams.set(key, s);
  }

  /** Converts every sum and histogram in place; returns the number of points dropped. */
  convert(rms: ResourceMetrics[]): number {
    let dropped = 0;
    for (const rm of rms) {
      const rk = attrsKey(rm.resource.attributes);
      for (const sm of rm.scopeMetrics) {
        const sk = `${rk}\u0002${sm.scope.name}\u0002${sm.scope.version}`;
        for (const m of sm.metrics) dropped += this.convertMetric(`${sk}\u0002${m.name}`, m);
      }
    }
    return dropped;
  }

  private convertMetric(prefix: string, m: Metric): number {
    const d = m.data;
    const want = this.target === 'delta' ? AggregationTemporality.Delta : AggregationTemporality.Cumulative;
    if ((d.type !== 'sum' && d.type !== 'histogram') || d.aggregationTemporality === want || d.aggregationTemporality === AggregationTemporality.Unspecified) return 0;
    const before = d.dataPoints.length;
    if (d.type === 'sum') {
      d.dataPoints = (d.dataPoints as NumberDataPoint[]).filter((p) => this.sumPoint(`${prefix}\u0003${attrsKey(p.attributes)}`, p));
    } else {
      d.dataPoints = (d.dataPoints as HistogramDataPoint[]).filter((p) => this.histPoint(`${prefix}\u0003h${attrsKey(p.attributes)}`, p));
    }
    d.aggregationTemporality = want;
    return before - d.dataPoints.length;
  }

  private sumPoint(key: string, p: NumberDataPoint): boolean {
    const prev = this.get(key) as SumState | undefined;
    if (this.target === 'delta') {
      this.put(key, { start: p.startTimeUnixNano, value: p.value, time: p.timeUnixNano });
      if (!prev) return false; // no history: the delta is unknown
      if (prev.start !== p.startTimeUnixNano || p.value < prev.value) return true; // reset: the value is the delta since the new start
      p.value = typeof p.value === 'bigint' ? p.value - BigInt(prev.value) : p.value - Number(prev.value);
      p.startTimeUnixNano = prev.time;
      return true;
    }
    // delta → cumulative
    if (!prev) {
      this.put(key, { start: p.startTimeUnixNano, value: p.value, time: p.timeUnixNano });
      return true;
    }
    const v = typeof p.value === 'bigint' && typeof prev.value === 'bigint' ? prev.value + p.value : Number(prev.value) + Number(p.value);
    prev.value = v;
    p.value = v;
    p.startTimeUnixNano = prev.start;
    return true;
  }

  private histPoint(key: string, p: HistogramDataPoint): boolean {
    const prev = this.get(key) as HistState | undefined;
    const sameLayout = prev && prev.buckets.length === p.bucketCounts.length;
    if (this.target === 'delta') {
      this.put(key, { start: p.startTimeUnixNano, count: p.count, sum: p.sum ?? 0, buckets: p.bucketCounts.slice() });
      if (!prev) return false;
      if (!sameLayout || prev.start !== p.startTimeUnixNano || p.count < prev.count) return true; // reset
      p.count -= prev.count;
      if (p.sum !== undefined) p.sum -= prev.sum;
      p.bucketCounts = p.bucketCounts.map((c, i) => c - prev.buckets[i]);
      delete p.min; // min/max of a cumulative point do not describe the interval
      delete p.max;
      return true;
    }
    if (!prev || !sameLayout) {
      this.put(key, { start: p.startTimeUnixNano, count: p.count, sum: p.sum ?? 0, buckets: p.bucketCounts.slice() });
      return true;
    }
    prev.count += p.count;
    prev.sum += p.sum ?? 0;
    for (let i = 0; i < prev.buckets.length; i++) prev.buckets[i] += p.bucketCounts[i];
    p.count = prev.count;
    if (p.sum !== undefined) p.sum = prev.sum;
    p.bucketCounts = prev.buckets.slice();
    p.startTimeUnixNano = prev.start;
    delete p.min;
    delete p.max;
    return true;
  }
}

export type { ScopeMetrics };
