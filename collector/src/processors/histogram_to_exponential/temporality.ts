// Cumulative ↔ delta conversion per stream (resource + scope + metric name + point attributes).
// State is bounded by `maxStreams` (least recently used evicted).
//
// cumulative → delta (as contrib's cumulativetodelta): monotonic sums and explicit histograms. A
// stream's first point is kept, as the delta since its own start, if that start is not before
// this converter was created (standing in for contrib's processor start) and differs from the
// point's time: contrib's `initial_value: auto`, its default. Such a counter began while we were
// watching, so nothing of it was reported before. Otherwise the point is dropped: it may hold
// counts from before we watched, e.g. already reported by this collector's previous run. A later
// point's start becomes the previous point's time. A decrease (monotonic sums, histogram count), a
// new start time or new bucket bounds is a reset: the point passes through as the delta since its
// own start. Non-monotonic sums and exponential histograms are left cumulative: a decrease of an
// up/down counter is not a reset, and contrib excludes both.
//
// delta → cumulative (as contrib's deltatocumulative, AccumulateInto): sums, explicit histograms
// (new bounds restart the stream) and exponential histograms (merged at the coarser scale, see
// mergeExponential), accumulated from the first point seen; start = that point's start. A point
// that starts before the stream (ErrOlderStart) or is not later than its last point
// (ErrOutOfOrder) is dropped: a duplicate or late point would otherwise be added twice, forever.
// A later start is normal (each delta starts where the previous one ended) and accumulates.
//
// A point flagged "no recorded value" passes through untouched and leaves the state alone.
//
// convert() can record the streams' earlier state in a journal; rollback() restores it, so a
// batch the next consumer refused (and whose sender will send it again) is not counted twice
// (delta → cumulative) nor lost (cumulative → delta: the resent point gives the same delta).
import {
  AggregationTemporality,
  type ExponentialHistogramDataPoint,
  type HistogramDataPoint,
  type KeyValue,
  type Metric,
  type NumberDataPoint,
  type ResourceMetrics,
  type ScopeMetrics,
} from '../../../../proto/src/model.ts';
import { addSummary, mergeExponential } from './expo.ts';

/** DataPointFlags.FLAG_NO_RECORDED_VALUE. */
export const NO_RECORDED_VALUE = 1;

function attrsKey(attrs: KeyValue[]): string {
  if (attrs.length === 0) return '';
  const parts = attrs.map((a) => `${a.key}=${typeof a.value === 'object' && a.value !== null ? JSON.stringify(a.value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)) : String(a.value)}`);
  parts.sort();
  return parts.join('\u0001');
}

interface Seq {
  /** Bumped on every change, so rollback() can tell whether a later batch touched the stream. */
  seq: number;
}

interface SumState extends Seq {
  kind: 'sum';
  start: bigint;
  value: number | bigint;
  time: bigint;
}

interface HistState extends Seq {
  kind: 'hist';
  start: bigint;
  time: bigint;
  count: bigint;
  sum?: number;
  min?: number;
  max?: number;
  buckets: bigint[];
  /** Never mutated: shared with the point it came from is fine. */
  bounds: number[];
}

interface ExpState extends Seq {
  kind: 'exp';
  start: bigint;
  /** The running cumulative point (own copy). */
  point: ExponentialHistogramDataPoint;
}

type State = SumState | HistState | ExpState;

/** Points convert() dropped, by reason (contrib's `reason` values). */
export interface TemporalityDrops {
  /** cumulative → delta: a first point whose delta cannot be known (initial_value: auto). */
  initial: number;
  /** delta → cumulative: start before the stream's start (contrib ErrOlderStart). */
  olderStart: number;
  /** delta → cumulative: time not after the stream's last time (contrib ErrOutOfOrder). */
  outOfOrder: number;
}

/** What a journaled convert() changed: each stream's state before it, and its seq after it. */
export class TemporalityJournal {
  readonly before = new Map<string, State | undefined>();
  readonly after = new Map<string, number>();
}

function cloneExp(p: ExponentialHistogramDataPoint): ExponentialHistogramDataPoint {
  return {
    ...p,
    positive: { offset: p.positive.offset, bucketCounts: p.positive.bucketCounts.slice() },
    negative: { offset: p.negative.offset, bucketCounts: p.negative.bucketCounts.slice() },
  };
}

function cloneState(s: State): State {
  if (s.kind === 'sum') return { ...s };
  if (s.kind === 'hist') return { ...s, buckets: s.buckets.slice() };
  return { ...s, point: cloneExp(s.point) };
}

function sameBounds(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class TemporalityConverter {
  private readonly streams = new Map<string, State>();
  private journal?: TemporalityJournal;
  private seq = 0;
  evictions = 0;
  /** Cumulative over all convert() calls (a rolled-back batch sent again counts again). */
  readonly drops: TemporalityDrops = { initial: 0, olderStart: 0, outOfOrder: 0 };
  /** Stands in for contrib's processor start time in the `initial_value: auto` rule. */
  readonly startTimeUnixNano: bigint;

  constructor(readonly target: 'delta' | 'cumulative', private readonly maxStreams = 10_000, startTimeUnixNano?: bigint) {
    this.startTimeUnixNano = startTimeUnixNano ?? BigInt(Date.now()) * 1_000_000n;
  }

  get size(): number {
    return this.streams.size;
  }

  private get<K extends State['kind']>(key: string, kind: K): Extract<State, { kind: K }> | undefined {
    const s = this.streams.get(key);
    if (!s) return undefined;
    this.streams.delete(key);
    this.streams.set(key, s);
    return s.kind === kind ? (s as Extract<State, { kind: K }>) : undefined;
  }

  /**
   * Call before changing a stream's state in place: remembers it as it was before this batch. Not
   * for a dropped point, so that it does not stop rollback() of an earlier batch on that stream.
   */
  private touch(key: string, s: State): void {
    if (this.journal && !this.journal.before.has(key)) this.journal.before.set(key, cloneState(s));
    s.seq = ++this.seq;
  }

  /** contrib's AccumulateInto checks: whether a delta point may be added to the stream's state. */
  private inOrder(start: bigint, time: bigint, p: { startTimeUnixNano: bigint; timeUnixNano: bigint }): boolean {
    if (p.startTimeUnixNano < start) {
      this.drops.olderStart++;
      return false;
    }
    if (p.timeUnixNano <= time) {
      this.drops.outOfOrder++;
      return false;
    }
    return true;
  }

  /** contrib's `initial_value: auto`: keep a stream's first cumulative point (as its own delta)? */
  private keepInitial(p: { startTimeUnixNano: bigint; timeUnixNano: bigint }): boolean {
    if (p.startTimeUnixNano >= this.startTimeUnixNano && p.timeUnixNano !== p.startTimeUnixNano) return true;
    this.drops.initial++;
    return false;
  }

  private put(key: string, s: State): void {
    if (this.journal && !this.journal.before.has(key)) this.journal.before.set(key, this.streams.has(key) ? cloneState(this.streams.get(key)!) : undefined);
    s.seq = ++this.seq;
    if (!this.streams.has(key) && this.streams.size >= this.maxStreams) {
      this.streams.delete(this.streams.keys().next().value as string);
      this.evictions++;
    }
    this.streams.set(key, s);
  }

  /**
   * Converts every sum and histogram in place; returns the number of points dropped. With a
   * journal, the earlier state of every stream touched is recorded for rollback().
   */
  convert(rms: ResourceMetrics[], journal?: TemporalityJournal): number {
    let dropped = 0;
    this.journal = journal;
    try {
      for (const rm of rms) {
        const rk = attrsKey(rm.resource.attributes);
        for (const sm of rm.scopeMetrics) {
          const sk = `${rk}\u0002${sm.scope.name}\u0002${sm.scope.version}`;
          for (const m of sm.metrics) dropped += this.convertMetric(`${sk}\u0002${m.name}`, m);
        }
      }
      if (journal) for (const key of journal.before.keys()) journal.after.set(key, this.streams.get(key)?.seq ?? -1);
    } finally {
      this.journal = undefined;
    }
    return dropped;
  }

  /**
   * Restores the streams a journaled convert() changed, as they were before it. A stream changed
   * since by another batch keeps its state: that batch was converted against this one's counts.
   */
  rollback(journal: TemporalityJournal): void {
    for (const [key, s] of journal.before) {
      if ((this.streams.get(key)?.seq ?? -1) !== journal.after.get(key)) continue;
      if (s === undefined) this.streams.delete(key);
      else this.streams.set(key, s);
    }
    while (this.streams.size > this.maxStreams) {
      this.streams.delete(this.streams.keys().next().value as string);
      this.evictions++;
    }
  }

  private converts(m: Metric): boolean {
    const d = m.data;
    const want = this.target === 'delta' ? AggregationTemporality.Delta : AggregationTemporality.Cumulative;
    if (d.type !== 'sum' && d.type !== 'histogram' && d.type !== 'exponentialHistogram') return false;
    if (d.aggregationTemporality === want || d.aggregationTemporality === AggregationTemporality.Unspecified) return false;
    return !(this.target === 'delta' && ((d.type === 'sum' && !d.isMonotonic) || d.type === 'exponentialHistogram'));
  }

  /** Whether convert() would change anything in this batch (callers can skip copying it). */
  wouldConvert(rms: ResourceMetrics[]): boolean {
    for (const rm of rms) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) if (this.converts(m)) return true;
    return false;
  }

  private convertMetric(prefix: string, m: Metric): number {
    if (!this.converts(m)) return 0;
    const d = m.data as Extract<Metric['data'], { type: 'sum' | 'histogram' | 'exponentialHistogram' }>;
    const want = this.target === 'delta' ? AggregationTemporality.Delta : AggregationTemporality.Cumulative;
    const before = d.dataPoints.length;
    if (d.type === 'sum') {
      d.dataPoints = (d.dataPoints as NumberDataPoint[]).filter((p) => this.sumPoint(`${prefix}\u0003s${attrsKey(p.attributes)}`, p));
    } else if (d.type === 'histogram') {
      d.dataPoints = (d.dataPoints as HistogramDataPoint[]).filter((p) => this.histPoint(`${prefix}\u0003h${attrsKey(p.attributes)}`, p));
    } else {
      d.dataPoints = (d.dataPoints as ExponentialHistogramDataPoint[]).filter((p) => this.expPoint(`${prefix}\u0003e${attrsKey(p.attributes)}`, p));
    }
    d.aggregationTemporality = want;
    return before - d.dataPoints.length;
  }

  private sumPoint(key: string, p: NumberDataPoint): boolean {
    if (p.flags & NO_RECORDED_VALUE) return true;
    const prev = this.get(key, 'sum');
    if (this.target === 'delta') {
      this.put(key, { kind: 'sum', seq: 0, start: p.startTimeUnixNano, value: p.value, time: p.timeUnixNano });
      if (!prev) return this.keepInitial(p); // kept: the value is the delta since its start
      if (prev.start !== p.startTimeUnixNano || p.value < prev.value) return true; // reset: the value is the delta since the new start
      p.value = typeof p.value === 'bigint' ? p.value - BigInt(prev.value) : p.value - Number(prev.value);
      p.startTimeUnixNano = prev.time;
      return true;
    }
    // delta → cumulative
    if (!prev) {
      this.put(key, { kind: 'sum', seq: 0, start: p.startTimeUnixNano, value: p.value, time: p.timeUnixNano });
      return true;
    }
    if (!this.inOrder(prev.start, prev.time, p)) return false;
    this.touch(key, prev);
    const v = typeof p.value === 'bigint' && typeof prev.value === 'bigint' ? prev.value + p.value : Number(prev.value) + Number(p.value);
    prev.value = v;
    prev.time = p.timeUnixNano;
    p.value = v;
    p.startTimeUnixNano = prev.start;
    return true;
  }

  private histPoint(key: string, p: HistogramDataPoint): boolean {
    if (p.flags & NO_RECORDED_VALUE) return true;
    const prev = this.get(key, 'hist');
    const sameLayout = prev !== undefined && prev.buckets.length === p.bucketCounts.length && sameBounds(prev.bounds, p.explicitBounds);
    const fresh = (): HistState => {
      const s: HistState = { kind: 'hist', seq: 0, start: p.startTimeUnixNano, time: p.timeUnixNano, count: p.count, buckets: p.bucketCounts.slice(), bounds: p.explicitBounds };
      if (p.sum !== undefined) s.sum = p.sum;
      if (p.min !== undefined) s.min = p.min;
      if (p.max !== undefined) s.max = p.max;
      return s;
    };
    if (this.target === 'delta') {
      this.put(key, fresh());
      if (!prev) return this.keepInitial(p); // kept as is: min/max describe (start, time] too
      if (!sameLayout || prev.start !== p.startTimeUnixNano || p.count < prev.count) return true; // reset
      p.count -= prev.count;
      if (p.sum !== undefined) p.sum -= prev.sum ?? 0;
      p.bucketCounts = p.bucketCounts.map((c, i) => c - prev.buckets[i]);
      p.startTimeUnixNano = prev.time; // the delta covers (previous point, this point]
      delete p.min; // min/max of a cumulative point do not describe the interval
      delete p.max;
      return true;
    }
    // delta → cumulative; other bounds cannot be added up: restart the stream from this point.
    if (prev && !this.inOrder(prev.start, prev.time, p)) return false;
    if (!prev || !sameLayout) {
      this.put(key, fresh());
      return true;
    }
    this.touch(key, prev);
    addSummary(prev, p);
    for (let i = 0; i < prev.buckets.length; i++) prev.buckets[i] += p.bucketCounts[i];
    prev.time = p.timeUnixNano;
    p.count = prev.count;
    p.bucketCounts = prev.buckets.slice();
    p.startTimeUnixNano = prev.start;
    for (const f of ['sum', 'min', 'max'] as const) {
      if (prev[f] !== undefined) p[f] = prev[f];
      else delete p[f];
    }
    return true;
  }

  /** delta → cumulative only (the caller leaves cumulative exponential histograms alone). */
  private expPoint(key: string, p: ExponentialHistogramDataPoint): boolean {
    if (p.flags & NO_RECORDED_VALUE) return true;
    const prev = this.get(key, 'exp');
    if (!prev) {
      this.put(key, { kind: 'exp', seq: 0, start: p.startTimeUnixNano, point: cloneExp(p) });
      return true;
    }
    if (!this.inOrder(prev.start, prev.point.timeUnixNano, p)) return false;
    this.touch(key, prev);
    const acc = prev.point;
    mergeExponential(acc, p);
    acc.timeUnixNano = p.timeUnixNano;
    p.startTimeUnixNano = prev.start;
    p.count = acc.count;
    p.scale = acc.scale;
    p.zeroCount = acc.zeroCount;
    p.zeroThreshold = acc.zeroThreshold;
    p.positive = { offset: acc.positive.offset, bucketCounts: acc.positive.bucketCounts.slice() };
    p.negative = { offset: acc.negative.offset, bucketCounts: acc.negative.bucketCounts.slice() };
    for (const f of ['sum', 'min', 'max'] as const) {
      if (acc[f] !== undefined) p[f] = acc[f];
      else delete p[f];
    }
    return true;
  }
}

export type { ScopeMetrics };
