// OTel metrics → Prometheus series, per the OTel spec's Prometheus compatibility section:
// - names: invalid characters → '_', repeated '_' collapsed, a leading digit prefixed with '_';
//   the UCUM unit appended as words (s → seconds, By → bytes, {…} dropped, a/b → a_per_b), '1' on
//   gauges → _ratio; monotonic cumulative sums get _total;
// - labels: same sanitising (a leading digit gets key_), colliding names joined with ';';
//   otel_scope_name / otel_scope_version from the scope; job = service.namespace/service.name,
//   instance = service.instance.id; the other resource attributes go to a target_info gauge;
// - histograms → _bucket{le} (cumulative, with +Inf), _sum, _count; exponential histograms are
//   converted to the same classic buckets (le = each bucket's upper boundary); summaries →
//   {quantile} + _sum + _count. Delta sums and histograms must be made cumulative first
//   (TemporalityConverter); the exporters do that.
import { AggregationTemporality, type AnyValue, type KeyValue, type MetricsData, KeyValueList } from '../../../../proto/src/model.ts';
import { lowerBoundary } from '../../processors/histogram_to_exponential/expo.ts';

export interface PromSample {
  value: number;
  /** Milliseconds since the epoch. */
  timestampMs: number;
}

export interface PromSeries {
  /** Sorted by name; includes __name__. */
  labels: Array<[string, string]>;
  samples: PromSample[];
}

export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'unknown';

export interface PromFamily {
  name: string;
  type: PromType;
  help: string;
  series: PromSeries[];
}

const UNIT_WORDS: Record<string, string> = {
  d: 'days', h: 'hours', min: 'minutes', s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds',
  By: 'bytes', KiBy: 'kibibytes', MiBy: 'mebibytes', GiBy: 'gibibytes', TiBy: 'tibibytes', KBy: 'kilobytes', MBy: 'megabytes', GBy: 'gigabytes', TBy: 'terabytes',
  m: 'meters', V: 'volts', A: 'amperes', J: 'joules', W: 'watts', g: 'grams', Cel: 'celsius', Hz: 'hertz', '%': 'percent',
};
const PER_UNIT_WORDS: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

export function sanitizeName(s: string): string {
  let out = s.replace(/[^a-zA-Z0-9_:]/g, '_').replace(/__+/g, '_');
  if (/^[0-9]/.test(out)) out = `_${out}`;
  return out;
}

export function sanitizeLabel(s: string): string {
  let out = s.replace(/[^a-zA-Z0-9_]/g, '_').replace(/__+/g, '_');
  if (/^[0-9]/.test(out)) out = `key_${out}`;
  if (out === '' ) out = 'key_';
  return out;
}

function unitSuffix(unit: string, isGauge: boolean): string {
  const u = unit.replace(/\{[^}]*\}/g, '').trim();
  if (!u) return '';
  if (u === '1') return isGauge ? 'ratio' : '';
  const slash = u.indexOf('/');
  if (slash >= 0) {
    const a = u.slice(0, slash);
    const b = u.slice(slash + 1);
    const aw = a ? (UNIT_WORDS[a] ?? sanitizeName(a)) : '';
    const bw = PER_UNIT_WORDS[b] ?? UNIT_WORDS[b] ?? sanitizeName(b);
    return aw ? `${aw}_per_${bw}` : `per_${bw}`;
  }
  return UNIT_WORDS[u] ?? sanitizeName(u);
}

/** The Prometheus metric name for an OTel metric. */
export function promName(name: string, unit: string, kind: 'counter' | 'gauge' | 'other'): string {
  let n = sanitizeName(name);
  const suffix = unitSuffix(unit, kind === 'gauge');
  if (suffix && n !== suffix && !n.endsWith(`_${suffix}`)) n = `${n}_${suffix}`;
  if (kind === 'counter' && !n.endsWith('_total')) n = `${n}_total`;
  return n.replace(/__+/g, '_');
}

export function anyToString(v: AnyValue): string {
  if (v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (v instanceof KeyValueList) return JSON.stringify(Object.fromEntries(v.values.map((kv) => [kv.key, anyToString(kv.value)])));
  return JSON.stringify(v.map(anyToString));
}

function addLabels(out: Map<string, string>, attrs: KeyValue[]): void {
  for (const a of attrs) {
    const k = sanitizeLabel(a.key);
    const v = anyToString(a.value);
    const prev = out.get(k);
    out.set(k, prev !== undefined && prev !== v ? `${prev};${v}` : v);
  }
}

function sorted(m: Map<string, string>): Array<[string, string]> {
  const arr: Array<[string, string]> = [];
  for (const [k, v] of m) if (v !== '') arr.push([k, v]);
  arr.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return arr;
}

const nsToMs = (t: bigint) => (t === 0n ? Date.now() : Number(t / 1_000_000n));
const num = (v: number | bigint) => (typeof v === 'bigint' ? Number(v) : v);

function fmtLe(v: number): string {
  if (v === Infinity) return '+Inf';
  return String(v);
}

export interface TranslateOptions {
  /** Emit target_info per resource (default true). */
  targetInfo: boolean;
  /** Copy all resource attributes onto every series (resource_to_telemetry_conversion). */
  resourceToLabels: boolean;
}

/** Translates one (cumulative) batch into families keyed by metric name. */
export function translate(d: MetricsData, opts: TranslateOptions = { targetInfo: true, resourceToLabels: false }): Map<string, PromFamily> {
  const fams = new Map<string, PromFamily>();
  const fam = (name: string, type: PromType, help: string): PromFamily => {
    let f = fams.get(name);
    if (!f) fams.set(name, (f = { name, type, help, series: [] }));
    return f;
  };
  const push = (f: PromFamily, base: Map<string, string>, extra: Array<[string, string]>, name: string, value: number, ts: number) => {
    const m = new Map(base);
    for (const [k, v] of extra) m.set(k, v);
    m.set('__name__', name);
    f.series.push({ labels: sorted(m), samples: [{ value, timestampMs: ts }] });
  };
  for (const rm of d.resourceMetrics) {
    const rattrs = rm.resource.attributes;
    const get = (k: string) => {
      for (const a of rattrs) if (a.key === k) return anyToString(a.value);
      return undefined;
    };
    const svc = get('service.name');
    const ns = get('service.namespace');
    const inst = get('service.instance.id');
    const resLabels = new Map<string, string>();
    if (opts.resourceToLabels) addLabels(resLabels, rattrs);
    if (svc !== undefined) resLabels.set('job', ns ? `${ns}/${svc}` : svc);
    if (inst !== undefined) resLabels.set('instance', inst);
    let latestTs = 0;
    for (const sm of rm.scopeMetrics) {
      const scopeLabels = new Map(resLabels);
      if (sm.scope.name) scopeLabels.set('otel_scope_name', sm.scope.name);
      if (sm.scope.version) scopeLabels.set('otel_scope_version', sm.scope.version);
      for (const m of sm.metrics) {
        const data = m.data;
        if (data.type === 'gauge' || data.type === 'sum') {
          const isCounter = data.type === 'sum' && data.isMonotonic && data.aggregationTemporality === AggregationTemporality.Cumulative;
          if (data.type === 'sum' && data.aggregationTemporality === AggregationTemporality.Delta) continue; // not representable: caller converts
          const name = promName(m.name, m.unit, isCounter ? 'counter' : 'gauge');
          const f = fam(name, isCounter ? 'counter' : 'gauge', m.description);
          for (const p of data.dataPoints) {
            const base = new Map(scopeLabels);
            addLabels(base, p.attributes);
            const ts = nsToMs(p.timeUnixNano);
            latestTs = Math.max(latestTs, ts);
            push(f, base, [], name, num(p.value), ts);
          }
        } else if (data.type === 'histogram' || data.type === 'exponentialHistogram') {
          if (data.aggregationTemporality === AggregationTemporality.Delta) continue;
          const name = promName(m.name, m.unit, 'other');
          const f = fam(name, 'histogram', m.description);
          for (const p of data.dataPoints) {
            const base = new Map(scopeLabels);
            addLabels(base, p.attributes);
            const ts = nsToMs(p.timeUnixNano);
            latestTs = Math.max(latestTs, ts);
            const buckets: Array<[number, number]> = []; // [upper bound, count]
            if (data.type === 'histogram') {
              const hp = p as import('../../../../proto/src/model.ts').HistogramDataPoint;
              for (let i = 0; i < hp.bucketCounts.length; i++) buckets.push([i < hp.explicitBounds.length ? hp.explicitBounds[i] : Infinity, Number(hp.bucketCounts[i])]);
            } else {
              const ep = p as import('../../../../proto/src/model.ts').ExponentialHistogramDataPoint;
              const nb = ep.negative.bucketCounts;
              for (let i = nb.length - 1; i >= 0; i--) buckets.push([-lowerBoundary(ep.negative.offset + i, ep.scale), Number(nb[i])]);
              if (ep.zeroCount > 0n || nb.length || ep.positive.bucketCounts.length) buckets.push([ep.zeroThreshold, Number(ep.zeroCount)]);
              const pb = ep.positive.bucketCounts;
              for (let i = 0; i < pb.length; i++) buckets.push([lowerBoundary(ep.positive.offset + i + 1, ep.scale), Number(pb[i])]);
              buckets.push([Infinity, 0]);
            }
            let cum = 0;
            for (const [le, c] of buckets) {
              cum += c;
              push(f, base, [['le', fmtLe(le)]], `${name}_bucket`, cum, ts);
            }
            if (p.sum !== undefined) push(f, base, [], `${name}_sum`, p.sum, ts);
            push(f, base, [], `${name}_count`, Number(p.count), ts);
          }
        } else if (data.type === 'summary') {
          const name = promName(m.name, m.unit, 'other');
          const f = fam(name, 'summary', m.description);
          for (const p of data.dataPoints) {
            const base = new Map(scopeLabels);
            addLabels(base, p.attributes);
            const ts = nsToMs(p.timeUnixNano);
            latestTs = Math.max(latestTs, ts);
            for (const q of p.quantileValues) push(f, base, [['quantile', String(q.quantile)]], name, q.value, ts);
            push(f, base, [], `${name}_sum`, p.sum, ts);
            push(f, base, [], `${name}_count`, Number(p.count), ts);
          }
        }
      }
    }
    if (opts.targetInfo && (svc !== undefined || inst !== undefined)) {
      const info = new Map<string, string>();
      for (const a of rattrs) {
        if (a.key === 'service.name' || a.key === 'service.namespace' || a.key === 'service.instance.id') continue;
        addLabels(info, [a]);
      }
      if (svc !== undefined) info.set('job', ns ? `${ns}/${svc}` : svc);
      if (inst !== undefined) info.set('instance', inst);
      push(fam('target_info', 'gauge', 'Target metadata'), info, [], 'target_info', 1, latestTs || Date.now());
    }
  }
  return fams;
}

export function seriesKey(labels: Array<[string, string]>): string {
  let k = '';
  for (const [n, v] of labels) k += `${n}\u0000${v}\u0001`;
  return k;
}
