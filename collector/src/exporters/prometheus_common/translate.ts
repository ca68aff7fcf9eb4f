// OTel metrics → Prometheus series, per the OTel spec's Prometheus compatibility section and
// contrib's pkg/translator/prometheus{,remotewrite}:
// - names: split into tokens at every character other than [a-zA-Z0-9]; the UCUM unit as a word
//   (s → seconds, By → bytes, a/b → a_per_b; a unit part with {…} is ignored) appended only if the
//   name does not already have that token; monotonic cumulative sums: every `total` token removed,
//   then `_total` appended; gauges with unit '1': `_ratio`; a leading digit gets '_';
// - labels: point attributes (plus all resource attributes, which win on the same key, with
//   resource_to_telemetry_conversion) sanitised, names colliding after sanitising joined with ';'
//   in key order; then job = service.namespace/service.name, instance = service.instance.id and
//   otel_scope_name / otel_scope_version override any attribute of that name; the other resource
//   attributes go to a target_info gauge;
// - histograms → _bucket{le} (cumulative, always ending with le="+Inf" = count), _sum, _count;
//   exponential histograms are converted to the same classic buckets (le = each bucket's upper
//   boundary); summaries → {quantile} + _sum + _count; le and quantile are written without an
//   exponent, as Go's FormatFloat(v, 'f', -1, 64) does;
// - a point flagged "no recorded value" gives stale samples (remote write sends the stale NaN);
// - with `nativeExponential` (remote write's native histograms), an exponential histogram point is
//   not expanded: it gives one series named like the family, without _bucket/_sum/_count, carrying
//   the point itself in `exponential` (and no samples); the exporter encodes it.
// Delta sums and histograms must be made cumulative first (TemporalityConverter); the exporters do
// that.
import { AggregationTemporality, type AnyValue, type KeyValue, type MetricsData, KeyValueList } from '../../../../proto/src/model.ts';
import type { ExponentialHistogramDataPoint, HistogramDataPoint } from '../../../../proto/src/model.ts';
import { lowerBoundary } from '../../processors/histogram_to_exponential/expo.ts';

/** Prometheus' staleness marker, a NaN with this exact bit pattern. */
export const STALE_NAN_BITS = 0x7ff0000000000002n;
/** DataPointFlags.FLAG_NO_RECORDED_VALUE. */
const NO_RECORDED_VALUE = 1;

export interface PromSample {
  value: number;
  /** Milliseconds since the epoch. */
  timestampMs: number;
  /** A staleness marker (value NaN; sent as STALE_NAN_BITS): the point had no recorded value. */
  stale?: boolean;
}

export interface PromSeries {
  /** Sorted by name; includes __name__. */
  labels: Array<[string, string]>;
  samples: PromSample[];
  /**
   * Histograms and summaries: the point the series belongs to (family + labels without le /
   * quantile). The buckets of a point can change (another scale), so its series are replaced as a set.
   */
  group?: string;
  /** With TranslateOptions.nativeExponential: the exponential histogram points of this series. */
  exponential?: ExponentialSample[];
}

/** An exponential histogram point left whole for a native histogram (see nativeExponential). */
export interface ExponentialSample {
  point: ExponentialHistogramDataPoint;
  /** Milliseconds since the epoch. */
  timestampMs: number;
  /** The point had no recorded value: a stale marker. */
  stale: boolean;
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
  m: 'meters', V: 'volts', A: 'amperes', J: 'joules', W: 'watts', g: 'grams', Cel: 'celsius', Hz: 'hertz', '1': '', '%': 'percent',
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

const tokens = (s: string): string[] => s.split(/[^a-zA-Z0-9]+/).filter((t) => t !== '');

/** The unit's word, cleaned to [a-zA-Z0-9_]; '' when there is none or it has a {…} annotation. */
function unitWord(u: string | undefined, table: Record<string, string>): string {
  const t = u?.trim();
  if (!t || /[{}]/.test(t)) return '';
  return tokens(table[t] ?? t).join('_');
}

/** The Prometheus metric name for an OTel metric (contrib's normalizeName). */
export function promName(name: string, unit: string, kind: 'counter' | 'gauge' | 'other'): string {
  let out = tokens(name);
  const slash = unit.indexOf('/');
  const main = unitWord(slash < 0 ? unit : unit.slice(0, slash), UNIT_WORDS);
  const per = slash < 0 ? '' : unitWord(unit.slice(slash + 1), PER_UNIT_WORDS);
  if (main && !out.includes(main)) out.push(main);
  if (per && !out.includes(per)) out.push('per', per);
  if (kind === 'counter') out = [...out.filter((t) => t !== 'total'), 'total'];
  if (kind === 'gauge' && unit === '1') out = [...out.filter((t) => t !== 'ratio'), 'ratio'];
  const n = out.join('_');
  return /^[0-9]/.test(n) ? `_${n}` : n;
}

export function anyToString(v: AnyValue): string {
  if (v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (v instanceof KeyValueList) return JSON.stringify(Object.fromEntries(v.values.map((kv) => [kv.key, anyToString(kv.value)])));
  return JSON.stringify(v.map(anyToString));
}

/**
 * Labels from attributes: sanitised names, values of names that collide after sanitising joined
 * with ';' in order of the original keys (contrib's createAttributes). `resource` attributes, when
 * given, replace point attributes of the same key (contrib's resource_to_telemetry_conversion).
 */
function attrLabels(attrs: KeyValue[], resource?: KeyValue[]): Map<string, string> {
  let list = attrs;
  if (resource && resource.length) {
    const byKey = new Map<string, KeyValue>();
    for (const a of attrs) byKey.set(a.key, a);
    for (const a of resource) byKey.set(a.key, a);
    list = [...byKey.values()];
  }
  if (list.length > 1) list = list.slice().sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const out = new Map<string, string>();
  for (const a of list) {
    const k = sanitizeLabel(a.key);
    const v = anyToString(a.value);
    const prev = out.get(k);
    out.set(k, prev !== undefined ? `${prev};${v}` : v);
  }
  return out;
}

function sorted(m: Map<string, string>): Array<[string, string]> {
  const arr: Array<[string, string]> = [];
  for (const [k, v] of m) if (v !== '') arr.push([k, v]);
  arr.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return arr;
}

const nsToMs = (t: bigint) => (t === 0n ? Date.now() : Number(t / 1_000_000n));
const num = (v: number | bigint) => (typeof v === 'bigint' ? Number(v) : v);

/** A float as Go's strconv.FormatFloat(v, 'f', -1, 64) writes it: shortest digits, no exponent. */
export function formatFloat(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  const s = String(v);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const [, sign, d0, frac = '', e] = m;
  const exp = Number(e);
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${d0}${frac}`;
  return `${sign}${d0}${frac}${'0'.repeat(Math.max(0, exp - frac.length))}`;
}

export interface TranslateOptions {
  /** Emit target_info per resource (default true). */
  targetInfo: boolean;
  /** Copy all resource attributes onto every series (resource_to_telemetry_conversion). */
  resourceToLabels: boolean;
  /**
   * Exponential histograms as one series per point named like the family, with the point in
   * `exponential` (remote write's native histograms), instead of classic buckets. Default false.
   */
  nativeExponential?: boolean;
}

/** Translates one (cumulative) batch into families keyed by metric name. */
export function translate(d: MetricsData, opts: TranslateOptions = { targetInfo: true, resourceToLabels: false }): Map<string, PromFamily> {
  const fams = new Map<string, PromFamily>();
  const fam = (name: string, type: PromType, help: string): PromFamily => {
    let f = fams.get(name);
    if (!f) fams.set(name, (f = { name, type, help, series: [] }));
    return f;
  };
  const push = (f: PromFamily, base: Map<string, string>, extra: Array<[string, string]>, name: string, value: number, ts: number, stale: boolean, group?: string) => {
    const m = new Map(base);
    for (const [k, v] of extra) m.set(k, v);
    m.set('__name__', name);
    const sample: PromSample = stale ? { value: NaN, timestampMs: ts, stale: true } : { value, timestampMs: ts };
    const s: PromSeries = { labels: sorted(m), samples: [sample] };
    if (group !== undefined) s.group = group;
    f.series.push(s);
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
    const job = svc !== undefined ? (ns ? `${ns}/${svc}` : svc) : undefined;
    const resAttrs = opts.resourceToLabels ? rattrs : undefined;
    let latestTs = 0;
    for (const sm of rm.scopeMetrics) {
      // Applied after the point attributes: resource- and scope-derived labels win, as in contrib.
      const fixed: Array<[string, string]> = [];
      if (job !== undefined) fixed.push(['job', job]);
      if (inst !== undefined) fixed.push(['instance', inst]);
      if (sm.scope.name) fixed.push(['otel_scope_name', sm.scope.name]);
      if (sm.scope.version) fixed.push(['otel_scope_version', sm.scope.version]);
      const labelsOf = (attrs: KeyValue[]) => {
        const m = attrLabels(attrs, resAttrs);
        for (const [k, v] of fixed) m.set(k, v);
        return m;
      };
      for (const m of sm.metrics) {
        const data = m.data;
        if (data.type === 'gauge' || data.type === 'sum') {
          if (data.type === 'sum' && data.aggregationTemporality === AggregationTemporality.Delta) continue; // not representable: caller converts
          const isCounter = data.type === 'sum' && data.isMonotonic && data.aggregationTemporality === AggregationTemporality.Cumulative;
          const name = promName(m.name, m.unit, isCounter ? 'counter' : data.type === 'gauge' ? 'gauge' : 'other');
          const f = fam(name, isCounter ? 'counter' : 'gauge', m.description);
          for (const p of data.dataPoints) {
            const ts = nsToMs(p.timeUnixNano);
            latestTs = Math.max(latestTs, ts);
            push(f, labelsOf(p.attributes), [], name, num(p.value), ts, (p.flags & NO_RECORDED_VALUE) !== 0);
          }
        } else if (data.type === 'histogram' || data.type === 'exponentialHistogram') {
          if (data.aggregationTemporality === AggregationTemporality.Delta) continue; // not representable: caller converts
          const name = promName(m.name, m.unit, 'other');
          const f = fam(name, 'histogram', m.description);
          if (data.type === 'exponentialHistogram' && opts.nativeExponential) {
            for (const p of data.dataPoints) {
              const lbl = labelsOf(p.attributes);
              lbl.set('__name__', name);
              const ts = nsToMs(p.timeUnixNano);
              latestTs = Math.max(latestTs, ts);
              f.series.push({ labels: sorted(lbl), samples: [], exponential: [{ point: p, timestampMs: ts, stale: (p.flags & NO_RECORDED_VALUE) !== 0 }] });
            }
            continue;
          }
          for (const p of data.dataPoints) {
            const base = labelsOf(p.attributes);
            const group = `${name}\u0000${seriesKey(sorted(base))}`;
            const stale = (p.flags & NO_RECORDED_VALUE) !== 0;
            const ts = nsToMs(p.timeUnixNano);
            latestTs = Math.max(latestTs, ts);
            const buckets: Array<[number, number]> = []; // [upper bound, count], +Inf excluded
            if (data.type === 'histogram') {
              const hp = p as HistogramDataPoint;
              const n = Math.min(hp.explicitBounds.length, hp.bucketCounts.length);
              for (let i = 0; i < n; i++) buckets.push([hp.explicitBounds[i], Number(hp.bucketCounts[i])]);
            } else {
              const ep = p as ExponentialHistogramDataPoint;
              const nb = ep.negative.bucketCounts;
              for (let i = nb.length - 1; i >= 0; i--) buckets.push([-lowerBoundary(ep.negative.offset + i, ep.scale), Number(nb[i])]);
              if (ep.zeroCount > 0n || nb.length || ep.positive.bucketCounts.length) buckets.push([ep.zeroThreshold, Number(ep.zeroCount)]);
              const pb = ep.positive.bucketCounts;
              for (let i = 0; i < pb.length; i++) buckets.push([lowerBoundary(ep.positive.offset + i + 1, ep.scale), Number(pb[i])]);
            }
            let cum = 0;
            for (const [le, c] of buckets) {
              cum += c;
              push(f, base, [['le', formatFloat(le)]], `${name}_bucket`, cum, ts, stale, group);
            }
            // Always present, and equal to the count, even with no (or inconsistent) buckets.
            push(f, base, [['le', '+Inf']], `${name}_bucket`, Number(p.count), ts, stale, group);
            if (p.sum !== undefined) push(f, base, [], `${name}_sum`, p.sum, ts, stale, group);
            push(f, base, [], `${name}_count`, Number(p.count), ts, stale, group);
          }
        } else if (data.type === 'summary') {
          const name = promName(m.name, m.unit, 'other');
          const f = fam(name, 'summary', m.description);
          for (const p of data.dataPoints) {
            const base = labelsOf(p.attributes);
            const group = `${name}\u0000${seriesKey(sorted(base))}`;
            const stale = (p.flags & NO_RECORDED_VALUE) !== 0;
            const ts = nsToMs(p.timeUnixNano);
            latestTs = Math.max(latestTs, ts);
            for (const q of p.quantileValues) push(f, base, [['quantile', formatFloat(q.quantile)]], name, q.value, ts, stale, group);
            push(f, base, [], `${name}_sum`, p.sum, ts, stale, group);
            push(f, base, [], `${name}_count`, Number(p.count), ts, stale, group);
          }
        }
      }
    }
    if (opts.targetInfo && (svc !== undefined || inst !== undefined)) {
      const info = attrLabels(rattrs.filter((a) => a.key !== 'service.name' && a.key !== 'service.namespace' && a.key !== 'service.instance.id'));
      if (job !== undefined) info.set('job', job);
      if (inst !== undefined) info.set('instance', inst);
      push(fam('target_info', 'gauge', 'Target metadata'), info, [], 'target_info', 1, latestTs || Date.now(), false);
    }
  }
  return fams;
}

export function seriesKey(labels: Array<[string, string]>): string {
  let k = '';
  for (const [n, v] of labels) k += `${n}\u0000${v}\u0001`;
  return k;
}

/** Both exporters count the delta points their cumulative conversion drops (duplicate, out of order, older than the stream). */
export const DROPPED_POINTS_METRIC = 'kscope_exporter_temporality_dropped_points_total';
export const DROPPED_POINTS_HELP = 'Delta points dropped while accumulating to cumulative: not after the stream\'s last point, or starting before it.';
