// Metrics ↔ OTAP tables: UNIVARIATE_METRICS (root), NUMBER/SUMMARY/HISTOGRAM/EXP_HISTOGRAM data
// points, their *_DP_ATTRS, the number/histogram/exp-histogram exemplars and exemplar attributes,
// METRIC_ATTRS (metric metadata), RESOURCE_ATTRS and SCOPE_ATTRS (go/pkg/otel/metrics/arrow).
// Data-point parent_id is delta-encoded (metric ids ascend); exemplar parent_id is quasi-delta
// keyed on the exemplar value, as the Go decoder reads it.
import type {
  Exemplar,
  ExponentialHistogramDataPoint,
  HistogramDataPoint,
  KeyValue,
  Metric,
  MetricData,
  MetricsData,
  NumberDataPoint,
  ResourceMetrics,
  ScopeMetrics,
  SummaryDataPoint,
} from '../model.ts';
import { BoolBuilder, DictBuilder, FsbBuilder, ListBuilder, PrimBuilder, StructBuilder, type ColumnBuilder } from './columns.ts';
import { AttrsEncoder } from './attrs.ts';
import { ResourceScopeColumns, attrsOrEmpty, resourceScopeReader } from './common.ts';
import type { AttrLists } from './attrs.ts';
import { ArrowPayloadType as P, type ArrowPayload } from './messages.ts';
import { TableEncoder, type EncodeOptions, SchemaIdSource } from './table.ts';
import { Column, OtapDecodeError, type DecodedBatch } from './ipc.ts';
import { DeltaIds, colBig, colBool, colF64, colStr, colU64, colUint, optId, reqColumn } from './read.ts';


const enum MetricType {
  Empty = 0,
  Gauge = 1,
  Sum = 2,
  Histogram = 3,
  ExpHistogram = 4,
  Summary = 5,
}

/** Exemplars table + its attributes, shared by number, histogram and exp-histogram points. */
class ExemplarTable {
  readonly id = new PrimBuilder('id', 'u32');
  readonly parent = new PrimBuilder('parent_id', 'u32', true);
  readonly time = new PrimBuilder('time_unix_nano', 'ts', true);
  readonly intValue = new PrimBuilder('int_value', 'i64');
  readonly doubleValue = new PrimBuilder('double_value', 'f64');
  readonly spanId = new FsbBuilder('span_id', 8);
  readonly traceId = new FsbBuilder('trace_id', 16);
  readonly table: TableEncoder;
  readonly attrs: AttrsEncoder;
  private prevParent = 0;
  private prevValue: number | bigint | null = null;
  private rows = 0;
  constructor(type: number, attrsType: number, ids: SchemaIdSource, opts: EncodeOptions) {
    this.table = new TableEncoder(
      type,
      [this.id, this.parent, this.time, this.intValue, this.doubleValue, this.spanId, this.traceId],
      ids,
      opts,
    );
    this.attrs = new AttrsEncoder(attrsType, 32, ids, opts);
  }
  /** Exemplars of one data point; points must come in ascending id order. */
  add(dpId: number, exemplars: Exemplar[]): void {
    for (const e of exemplars) {
      const row = this.rows++;
      this.id.append(row === 0 ? 0 : 1);
      const v = e.value;
      const same = this.prevValue !== null && typeof v === typeof this.prevValue && v === this.prevValue;
      this.parent.append(same ? dpId - this.prevParent : dpId);
      this.prevParent = dpId;
      this.prevValue = v;
      this.time.appendBig(e.timeUnixNano);
      if (typeof v === 'bigint') {
        this.intValue.appendBig(v);
        this.doubleValue.appendNull();
      } else {
        this.intValue.appendNull();
        this.doubleValue.append(v);
      }
      if (e.spanId.length) this.spanId.append(e.spanId);
      else this.spanId.appendNull();
      if (e.traceId.length) this.traceId.append(e.traceId);
      else this.traceId.appendNull();
      if (e.filteredAttributes.length) this.attrs.add(row, e.filteredAttributes);
    }
  }
  discard(): void {
    this.table.reset();
    this.attrs.discard();
    this.prevParent = 0;
    this.prevValue = null;
    this.rows = 0;
  }
  finish(out: ArrowPayload[]): void {
    const a = this.table.finish();
    if (a) out.push(a);
    const b = this.attrs.finish();
    if (b) out.push(b);
    this.table.reset();
    this.prevParent = 0;
    this.prevValue = null;
    this.rows = 0;
  }
}

/** Columns every data-point table starts with: id, parent_id (metric id, delta), times. */
class DataPointTable {
  readonly id = new PrimBuilder('id', 'u32');
  readonly parent = new PrimBuilder('parent_id', 'u16', true);
  readonly start = new PrimBuilder('start_time_unix_nano', 'ts');
  readonly time = new PrimBuilder('time_unix_nano', 'ts', true);
  readonly table: TableEncoder;
  readonly attrs: AttrsEncoder;
  readonly exemplars: ExemplarTable | null;
  private prevMetric = 0;
  rows = 0;
  constructor(
    type: number,
    attrsType: number,
    exemplarTypes: [number, number] | null,
    rest: ColumnBuilder[],
    ids: SchemaIdSource,
    opts: EncodeOptions,
  ) {
    this.table = new TableEncoder(type, [this.id, this.parent, this.start, this.time, ...rest], ids, opts);
    this.attrs = new AttrsEncoder(attrsType, 32, ids, opts);
    this.exemplars = exemplarTypes ? new ExemplarTable(exemplarTypes[0], exemplarTypes[1], ids, opts) : null;
  }
  /** Appends the common columns of one point and returns its id. */
  begin(metricId: number, attrs: KeyValue[], start: bigint, time: bigint, exemplars: Exemplar[] | null): number {
    const row = this.rows++;
    this.id.append(row === 0 ? 0 : 1);
    this.parent.append(metricId - this.prevMetric);
    this.prevMetric = metricId;
    if (start) this.start.appendBig(start);
    else this.start.appendNull();
    this.time.appendBig(time);
    if (attrs.length) this.attrs.add(row, attrs);
    if (exemplars && exemplars.length && this.exemplars) this.exemplars.add(row, exemplars);
    return row;
  }
  finish(out: ArrowPayload[]): void {
    const p = this.table.finish();
    if (p) out.push(p);
    const a = this.attrs.finish();
    if (a) out.push(a);
    this.exemplars?.finish(out);
    this.table.reset();
    this.prevMetric = 0;
    this.rows = 0;
  }
  discard(): void {
    this.table.reset();
    this.attrs.discard();
    this.exemplars?.discard();
    this.prevMetric = 0;
    this.rows = 0;
  }
  resets(): number {
    return this.table.resets + this.attrs.table.resets;
  }
}

function optF64(b: PrimBuilder, v: number | undefined): void {
  if (v === undefined) b.appendNull();
  else b.append(v);
}

export class MetricsEncoder {
  private readonly rs: ResourceScopeColumns;
  private readonly id = new PrimBuilder('id', 'u16', true);
  private readonly type = new PrimBuilder('metric_type', 'u8', true);
  private readonly name = new DictBuilder<string>('name', 'utf8', true);
  private readonly description = new DictBuilder<string>('description', 'utf8');
  private readonly unit = new DictBuilder<string>('unit', 'utf8');
  private readonly temporality = new PrimBuilder('aggregation_temporality', 'i32');
  private readonly monotonic = new BoolBuilder('is_monotonic');
  private readonly metrics: TableEncoder;
  private readonly metricAttrs: AttrsEncoder;

  // number points
  private readonly nInt = new PrimBuilder('int_value', 'i64');
  private readonly nDouble = new PrimBuilder('double_value', 'f64');
  private readonly nFlags = new PrimBuilder('flags', 'u32');
  private readonly number: DataPointTable;
  // summary points
  private readonly sCount = new PrimBuilder('count', 'u64');
  private readonly sSum = new PrimBuilder('sum', 'f64');
  private readonly sQ = new PrimBuilder('quantile', 'f64');
  private readonly sV = new PrimBuilder('value', 'f64');
  private readonly sQStruct = new StructBuilder('item', [this.sQ, this.sV]);
  private readonly sQuantiles = new ListBuilder('quantile', this.sQStruct);
  private readonly sFlags = new PrimBuilder('flags', 'u32');
  private readonly summary: DataPointTable;
  // histogram points
  private readonly hCount = new PrimBuilder('count', 'u64');
  private readonly hSum = new PrimBuilder('sum', 'f64');
  private readonly hBuckets = new ListBuilder('bucket_counts', new PrimBuilder('item', 'u64'));
  private readonly hBounds = new ListBuilder('explicit_bounds', new PrimBuilder('item', 'f64'));
  private readonly hFlags = new PrimBuilder('flags', 'u32');
  private readonly hMin = new PrimBuilder('min', 'f64');
  private readonly hMax = new PrimBuilder('max', 'f64');
  private readonly histogram: DataPointTable;
  // exponential histogram points
  private readonly eCount = new PrimBuilder('count', 'u64');
  private readonly eSum = new PrimBuilder('sum', 'f64');
  private readonly eScale = new PrimBuilder('scale', 'i32');
  private readonly eZeroCount = new PrimBuilder('zero_count', 'u64');
  private readonly ePosOffset = new PrimBuilder('offset', 'i32');
  private readonly ePosBuckets = new ListBuilder('bucket_counts', new PrimBuilder('item', 'u64'));
  private readonly ePos = new StructBuilder('positive', [this.ePosOffset, this.ePosBuckets]);
  private readonly eNegOffset = new PrimBuilder('offset', 'i32');
  private readonly eNegBuckets = new ListBuilder('bucket_counts', new PrimBuilder('item', 'u64'));
  private readonly eNeg = new StructBuilder('negative', [this.eNegOffset, this.eNegBuckets]);
  private readonly eFlags = new PrimBuilder('flags', 'u32');
  private readonly eMin = new PrimBuilder('min', 'f64');
  private readonly eMax = new PrimBuilder('max', 'f64');
  private readonly eZeroThreshold = new PrimBuilder('zero_threshold', 'f64');
  private readonly expHistogram: DataPointTable;

  constructor(ids: SchemaIdSource, opts: EncodeOptions) {
    this.rs = new ResourceScopeColumns(ids, opts);
    this.metrics = new TableEncoder(
      P.UNIVARIATE_METRICS,
      [
        this.id, this.rs.resource, this.rs.scope, this.rs.schemaUrl, this.type, this.name, this.description, this.unit,
        this.temporality, this.monotonic,
      ],
      ids,
      opts,
    );
    this.metricAttrs = new AttrsEncoder(P.METRIC_ATTRS, 16, ids, opts);
    this.number = new DataPointTable(
      P.NUMBER_DATA_POINTS, P.NUMBER_DP_ATTRS, [P.NUMBER_DP_EXEMPLARS, P.NUMBER_DP_EXEMPLAR_ATTRS],
      [this.nInt, this.nDouble, this.nFlags], ids, opts,
    );
    this.summary = new DataPointTable(
      P.SUMMARY_DATA_POINTS, P.SUMMARY_DP_ATTRS, null, [this.sCount, this.sSum, this.sQuantiles, this.sFlags], ids, opts,
    );
    this.histogram = new DataPointTable(
      P.HISTOGRAM_DATA_POINTS, P.HISTOGRAM_DP_ATTRS, [P.HISTOGRAM_DP_EXEMPLARS, P.HISTOGRAM_DP_EXEMPLAR_ATTRS],
      [this.hCount, this.hSum, this.hBuckets, this.hBounds, this.hFlags, this.hMin, this.hMax], ids, opts,
    );
    this.expHistogram = new DataPointTable(
      P.EXP_HISTOGRAM_DATA_POINTS, P.EXP_HISTOGRAM_DP_ATTRS, [P.EXP_HISTOGRAM_DP_EXEMPLARS, P.EXP_HISTOGRAM_DP_EXEMPLAR_ATTRS],
      [this.eCount, this.eSum, this.eScale, this.eZeroCount, this.ePos, this.eNeg, this.eFlags, this.eMin, this.eMax, this.eZeroThreshold],
      ids, opts,
    );
  }

  encode(data: MetricsData): ArrowPayload[] {
    let row = 0;
    try {
      for (const rm of data.resourceMetrics) {
        this.rs.beginResource(rm.resource, rm.schemaUrl);
        for (const sm of rm.scopeMetrics) {
          this.rs.beginScope(sm.scope, sm.schemaUrl);
          for (const m of sm.metrics) {
            if (row > 0xffff) throw new RangeError('OTAP batch holds more than 65536 metrics; split it');
            this.append(m, row++);
          }
        }
      }
      const out: ArrowPayload[] = [];
      const m = this.metrics.finish();
      if (m) out.push(m);
      for (const p of [this.rs.resourceAttrs.finish(), this.rs.scopeAttrs.finish(), this.metricAttrs.finish()]) if (p) out.push(p);
      this.number.finish(out);
      this.summary.finish(out);
      this.histogram.finish(out);
      this.expHistogram.finish(out);
      return out;
    } finally {
      this.metrics.reset();
      this.metricAttrs.discard();
      for (const t of [this.number, this.summary, this.histogram, this.expHistogram]) t.discard();
      this.rs.resetBatch();
    }
  }

  private append(m: Metric, id: number): void {
    this.id.append(id === 0 ? 0 : 1);
    this.rs.appendRow();
    this.name.appendString(m.name);
    if (m.description) this.description.appendString(m.description);
    else this.description.appendNull();
    if (m.unit) this.unit.appendString(m.unit);
    else this.unit.appendNull();
    if (m.metadata.length) this.metricAttrs.add(id, m.metadata);
    const d = m.data;
    switch (d.type) {
      case 'gauge':
        this.type.append(MetricType.Gauge);
        this.temporality.appendNull();
        this.monotonic.appendNull();
        for (const p of d.dataPoints) this.numberPoint(id, p);
        break;
      case 'sum':
        this.type.append(MetricType.Sum);
        this.temporality.append(d.aggregationTemporality);
        this.monotonic.append(d.isMonotonic);
        for (const p of d.dataPoints) this.numberPoint(id, p);
        break;
      case 'histogram':
        this.type.append(MetricType.Histogram);
        this.temporality.append(d.aggregationTemporality);
        this.monotonic.appendNull();
        for (const p of d.dataPoints) this.histogramPoint(id, p);
        break;
      case 'exponentialHistogram':
        this.type.append(MetricType.ExpHistogram);
        this.temporality.append(d.aggregationTemporality);
        this.monotonic.appendNull();
        for (const p of d.dataPoints) this.expHistogramPoint(id, p);
        break;
      case 'summary':
        this.type.append(MetricType.Summary);
        this.temporality.appendNull();
        this.monotonic.appendNull();
        for (const p of d.dataPoints) this.summaryPoint(id, p);
        break;
      default:
        this.type.append(MetricType.Empty);
        this.temporality.appendNull();
        this.monotonic.appendNull();
    }
  }

  private numberPoint(metric: number, p: NumberDataPoint): void {
    this.number.begin(metric, p.attributes, p.startTimeUnixNano, p.timeUnixNano, p.exemplars);
    if (typeof p.value === 'bigint') {
      this.nInt.appendBig(p.value);
      this.nDouble.appendNull();
    } else {
      this.nInt.appendNull();
      this.nDouble.append(p.value);
    }
    if (p.flags) this.nFlags.append(p.flags);
    else this.nFlags.appendNull();
  }

  private summaryPoint(metric: number, p: SummaryDataPoint): void {
    this.summary.begin(metric, p.attributes, p.startTimeUnixNano, p.timeUnixNano, null);
    this.sCount.appendBig(p.count);
    this.sSum.append(p.sum);
    for (const q of p.quantileValues) {
      this.sQStruct.appendValid();
      this.sQ.append(q.quantile);
      this.sV.append(q.value);
    }
    this.sQuantiles.closeRow();
    if (p.flags) this.sFlags.append(p.flags);
    else this.sFlags.appendNull();
  }

  private histogramPoint(metric: number, p: HistogramDataPoint): void {
    this.histogram.begin(metric, p.attributes, p.startTimeUnixNano, p.timeUnixNano, p.exemplars);
    this.hCount.appendBig(p.count);
    optF64(this.hSum, p.sum);
    const bc = this.hBuckets.item as PrimBuilder;
    for (const c of p.bucketCounts) bc.appendBig(c);
    this.hBuckets.closeRow();
    const eb = this.hBounds.item as PrimBuilder;
    for (const b of p.explicitBounds) eb.append(b);
    this.hBounds.closeRow();
    if (p.flags) this.hFlags.append(p.flags);
    else this.hFlags.appendNull();
    optF64(this.hMin, p.min);
    optF64(this.hMax, p.max);
  }

  private expHistogramPoint(metric: number, p: ExponentialHistogramDataPoint): void {
    this.expHistogram.begin(metric, p.attributes, p.startTimeUnixNano, p.timeUnixNano, p.exemplars);
    this.eCount.appendBig(p.count);
    optF64(this.eSum, p.sum);
    this.eScale.append(p.scale);
    this.eZeroCount.appendBig(p.zeroCount);
    for (const [s, off, list, b] of [
      [this.ePos, this.ePosOffset, this.ePosBuckets, p.positive],
      [this.eNeg, this.eNegOffset, this.eNegBuckets, p.negative],
    ] as const) {
      s.appendValid();
      off.append(b.offset);
      const item = list.item as PrimBuilder;
      for (const c of b.bucketCounts) item.appendBig(c);
      list.closeRow();
    }
    if (p.flags) this.eFlags.append(p.flags);
    else this.eFlags.appendNull();
    optF64(this.eMin, p.min);
    optF64(this.eMax, p.max);
    this.eZeroThreshold.append(p.zeroThreshold);
  }

  resets(): number {
    return this.metrics.resets + this.number.resets() + this.histogram.resets() + this.expHistogram.resets() + this.summary.resets();
  }
}

// ------------------------------------------------------------------ decoding

interface PointCommon {
  metric: number;
  id: number;
  attributes: KeyValue[];
  start: bigint;
  time: bigint;
}

/** Iterates a data-point table's common columns, grouping rows by metric id. */
function eachPoint(b: DecodedBatch, what: string, attrs: AttrLists, fn: (i: number, c: PointCommon) => void): void {
  const c = b.columns;
  const idCol = c.get('id');
  const parent = reqColumn(c, 'parent_id', what);
  const start = c.get('start_time_unix_nano');
  const time = c.get('time_unix_nano');
  const ids = new DeltaIds();
  let metric = 0;
  for (let i = 0; i < b.length; i++) {
    const id = ids.next(idCol, i);
    metric = (metric + colUint(parent, i)) & 0xffff;
    fn(i, {
      metric,
      id,
      attributes: (id >= 0 && attrs.get(id)) || [],
      start: start && start.isValid(i) ? colBig(start, i) : 0n,
      time: time && time.isValid(i) ? colBig(time, i) : 0n,
    });
  }
}

function group<T>(m: Map<number, T[]>, k: number, v: T): void {
  let l = m.get(k);
  if (!l) m.set(k, (l = []));
  l.push(v);
}

function decodeExemplars(b: DecodedBatch | undefined, attrs: AttrLists): Map<number, Exemplar[]> {
  const out = new Map<number, Exemplar[]>();
  if (!b) return out;
  const c = b.columns;
  const idCol = c.get('id');
  const parent = reqColumn(c, 'parent_id', 'exemplars');
  const time = c.get('time_unix_nano');
  const iv = c.get('int_value'), dv = c.get('double_value');
  const sid = c.get('span_id'), tid = c.get('trace_id');
  const ids = new DeltaIds();
  let prevParent = 0;
  let prev: number | bigint | null = null;
  for (let i = 0; i < b.length; i++) {
    const id = ids.next(idCol, i);
    const raw = colUint(parent, i);
    let value: number | bigint | null = null;
    if (iv && iv.isValid(i)) value = colBig(iv, i);
    else if (dv && dv.isValid(i)) value = colF64(dv, i);
    let p: number;
    if (value === null) p = (prevParent + raw) >>> 0;
    else if (prev !== null && typeof prev === typeof value && prev === value) p = (prevParent + raw) >>> 0;
    else {
      p = raw;
      prev = value;
    }
    prevParent = p;
    group(out, p, {
      filteredAttributes: (id >= 0 && attrs.get(id)) || [],
      timeUnixNano: time && time.isValid(i) ? colBig(time, i) : 0n,
      value: value ?? 0,
      spanId: optId(sid, i),
      traceId: optId(tid, i),
    });
  }
  return out;
}

function listU64(col: Column | undefined, i: number): bigint[] {
  if (!col || !col.isValid(i)) return [];
  const o = col.offsets!, item = col.children[0];
  const out: bigint[] = [];
  for (let j = o[i]; j < o[i + 1]; j++) out.push(colU64(item, j));
  return out;
}

function listF64(col: Column | undefined, i: number): number[] {
  if (!col || !col.isValid(i)) return [];
  const o = col.offsets!, item = col.children[0];
  const out: number[] = [];
  for (let j = o[i]; j < o[i + 1]; j++) out.push(colF64(item, j));
  return out;
}

const optNum = (c: Column | undefined, i: number): number | undefined => (c && c.isValid(i) ? colF64(c, i) : undefined);
const u32 = (c: Column | undefined, i: number): number => (c && c.isValid(i) ? colUint(c, i) : 0);
const u64 = (c: Column | undefined, i: number): bigint => (c && c.isValid(i) ? colU64(c, i) : 0n);
const f64 = (c: Column | undefined, i: number): number => (c && c.isValid(i) ? colF64(c, i) : 0);

export function decodeMetrics(tables: Map<number, DecodedBatch>): MetricsData {
  const metrics = tables.get(P.UNIVARIATE_METRICS);
  if (!metrics) throw new OtapDecodeError('metrics batch has no UNIVARIATE_METRICS payload');
  const resAttrs = attrsOrEmpty(tables.get(P.RESOURCE_ATTRS), 'RESOURCE_ATTRS');
  const scopeAttrs = attrsOrEmpty(tables.get(P.SCOPE_ATTRS), 'SCOPE_ATTRS');
  const metricAttrs = attrsOrEmpty(tables.get(P.METRIC_ATTRS), 'METRIC_ATTRS');

  const numbers = new Map<number, NumberDataPoint[]>();
  const nb = tables.get(P.NUMBER_DATA_POINTS);
  if (nb) {
    const ex = decodeExemplars(tables.get(P.NUMBER_DP_EXEMPLARS), attrsOrEmpty(tables.get(P.NUMBER_DP_EXEMPLAR_ATTRS), 'NUMBER_DP_EXEMPLAR_ATTRS'));
    const iv = nb.columns.get('int_value'), dv = nb.columns.get('double_value'), fl = nb.columns.get('flags');
    eachPoint(nb, 'NUMBER_DATA_POINTS', attrsOrEmpty(tables.get(P.NUMBER_DP_ATTRS), 'NUMBER_DP_ATTRS'), (i, c) => {
      group(numbers, c.metric, {
        attributes: c.attributes,
        startTimeUnixNano: c.start,
        timeUnixNano: c.time,
        value: iv && iv.isValid(i) ? colBig(iv, i) : f64(dv, i),
        exemplars: (c.id >= 0 && ex.get(c.id)) || [],
        flags: u32(fl, i),
      });
    });
  }
  const summaries = new Map<number, SummaryDataPoint[]>();
  const sb = tables.get(P.SUMMARY_DATA_POINTS);
  if (sb) {
    const k = sb.columns;
    const count = k.get('count'), sum = k.get('sum'), q = k.get('quantile'), fl = k.get('flags');
    const qItem = q?.children[0];
    const qq = qItem?.child('quantile'), qv = qItem?.child('value');
    eachPoint(sb, 'SUMMARY_DATA_POINTS', attrsOrEmpty(tables.get(P.SUMMARY_DP_ATTRS), 'SUMMARY_DP_ATTRS'), (i, c) => {
      const quantileValues = [];
      if (q && q.isValid(i)) {
        const o = q.offsets!;
        for (let j = o[i]; j < o[i + 1]; j++) quantileValues.push({ quantile: f64(qq, j), value: f64(qv, j) });
      }
      group(summaries, c.metric, {
        attributes: c.attributes,
        startTimeUnixNano: c.start,
        timeUnixNano: c.time,
        count: u64(count, i),
        sum: f64(sum, i),
        quantileValues,
        flags: u32(fl, i),
      });
    });
  }
  const histograms = new Map<number, HistogramDataPoint[]>();
  const hb = tables.get(P.HISTOGRAM_DATA_POINTS);
  if (hb) {
    const ex = decodeExemplars(tables.get(P.HISTOGRAM_DP_EXEMPLARS), attrsOrEmpty(tables.get(P.HISTOGRAM_DP_EXEMPLAR_ATTRS), 'HISTOGRAM_DP_EXEMPLAR_ATTRS'));
    const k = hb.columns;
    const count = k.get('count'), sum = k.get('sum'), bc = k.get('bucket_counts'), eb = k.get('explicit_bounds');
    const fl = k.get('flags'), mn = k.get('min'), mx = k.get('max');
    eachPoint(hb, 'HISTOGRAM_DATA_POINTS', attrsOrEmpty(tables.get(P.HISTOGRAM_DP_ATTRS), 'HISTOGRAM_DP_ATTRS'), (i, c) => {
      const p: HistogramDataPoint = {
        attributes: c.attributes,
        startTimeUnixNano: c.start,
        timeUnixNano: c.time,
        count: u64(count, i),
        bucketCounts: listU64(bc, i),
        explicitBounds: listF64(eb, i),
        exemplars: (c.id >= 0 && ex.get(c.id)) || [],
        flags: u32(fl, i),
      };
      const s = optNum(sum, i), lo = optNum(mn, i), hi = optNum(mx, i);
      if (s !== undefined) p.sum = s;
      if (lo !== undefined) p.min = lo;
      if (hi !== undefined) p.max = hi;
      group(histograms, c.metric, p);
    });
  }
  const expHistograms = new Map<number, ExponentialHistogramDataPoint[]>();
  const eb = tables.get(P.EXP_HISTOGRAM_DATA_POINTS);
  if (eb) {
    const ex = decodeExemplars(tables.get(P.EXP_HISTOGRAM_DP_EXEMPLARS), attrsOrEmpty(tables.get(P.EXP_HISTOGRAM_DP_EXEMPLAR_ATTRS), 'EXP_HISTOGRAM_DP_EXEMPLAR_ATTRS'));
    const k = eb.columns;
    const count = k.get('count'), sum = k.get('sum'), scale = k.get('scale'), zc = k.get('zero_count');
    const pos = k.get('positive'), neg = k.get('negative');
    const fl = k.get('flags'), mn = k.get('min'), mx = k.get('max'), zt = k.get('zero_threshold');
    const buckets = (s: Column | undefined, i: number) => {
      if (!s || !s.isValid(i)) return { offset: 0, bucketCounts: [] as bigint[] };
      const off = s.child('offset');
      return { offset: off && off.isValid(i) ? colUint(off, i) : 0, bucketCounts: listU64(s.child('bucket_counts'), i) };
    };
    eachPoint(eb, 'EXP_HISTOGRAM_DATA_POINTS', attrsOrEmpty(tables.get(P.EXP_HISTOGRAM_DP_ATTRS), 'EXP_HISTOGRAM_DP_ATTRS'), (i, c) => {
      const p: ExponentialHistogramDataPoint = {
        attributes: c.attributes,
        startTimeUnixNano: c.start,
        timeUnixNano: c.time,
        count: u64(count, i),
        scale: scale && scale.isValid(i) ? colUint(scale, i) : 0,
        zeroCount: u64(zc, i),
        positive: buckets(pos, i),
        negative: buckets(neg, i),
        flags: u32(fl, i),
        exemplars: (c.id >= 0 && ex.get(c.id)) || [],
        zeroThreshold: f64(zt, i),
      };
      const s = optNum(sum, i), lo = optNum(mn, i), hi = optNum(mx, i);
      if (s !== undefined) p.sum = s;
      if (lo !== undefined) p.min = lo;
      if (hi !== undefined) p.max = hi;
      group(expHistograms, c.metric, p);
    });
  }

  const c = metrics.columns;
  const what = 'UNIVARIATE_METRICS';
  const idCol = c.get('id');
  const type = reqColumn(c, 'metric_type', what);
  const name = reqColumn(c, 'name', what);
  const desc = c.get('description'), unit = c.get('unit');
  const temp = c.get('aggregation_temporality'), mono = c.get('is_monotonic');
  const rs = resourceScopeReader(metrics, resAttrs, scopeAttrs);
  const ids = new DeltaIds();
  const out: MetricsData = { resourceMetrics: [] };
  let curRes: ResourceMetrics | null = null;
  let curScope: ScopeMetrics | null = null;
  let prevRes = -1, prevScope = -1;
  for (let i = 0; i < metrics.length; i++) {
    rs.read(i);
    if (curRes === null || rs.resId !== prevRes) {
      const r = rs.resource();
      curRes = { resource: r.resource, scopeMetrics: [], schemaUrl: r.schemaUrl };
      out.resourceMetrics.push(curRes);
      prevRes = rs.resId;
      curScope = null;
    }
    if (curScope === null || rs.scopeId !== prevScope) {
      curScope = { scope: rs.scope(), metrics: [], schemaUrl: rs.schemaUrl(i) };
      curRes.scopeMetrics.push(curScope);
      prevScope = rs.scopeId;
    }
    const id = ids.next(idCol, i);
    const t = colUint(type, i);
    const temporality = temp && temp.isValid(i) ? colUint(temp, i) : 0;
    let data: MetricData;
    switch (t) {
      case MetricType.Gauge:
        data = { type: 'gauge', dataPoints: numbers.get(id) ?? [] };
        break;
      case MetricType.Sum:
        data = {
          type: 'sum',
          dataPoints: numbers.get(id) ?? [],
          aggregationTemporality: temporality,
          isMonotonic: mono && mono.isValid(i) ? colBool(mono, i) : false,
        };
        break;
      case MetricType.Histogram:
        data = { type: 'histogram', dataPoints: histograms.get(id) ?? [], aggregationTemporality: temporality };
        break;
      case MetricType.ExpHistogram:
        data = { type: 'exponentialHistogram', dataPoints: expHistograms.get(id) ?? [], aggregationTemporality: temporality };
        break;
      case MetricType.Summary:
        data = { type: 'summary', dataPoints: summaries.get(id) ?? [] };
        break;
      case MetricType.Empty:
        data = { type: 'empty' };
        break;
      default:
        throw new OtapDecodeError(`UNIVARIATE_METRICS row ${i}: unknown metric_type ${t}`);
    }
    curScope.metrics.push({
      name: colStr(name, i),
      description: desc && desc.isValid(i) ? colStr(desc, i) : '',
      unit: unit && unit.isValid(i) ? colStr(unit, i) : '',
      data,
      metadata: (id >= 0 && metricAttrs.get(id)) || [],
    });
  }
  return out;
}
