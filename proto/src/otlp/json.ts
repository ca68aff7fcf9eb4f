// OTLP/JSON (the OTLP specification's JSON mapping of the protobuf messages), used by OTLP/HTTP
// with Content-Type application/json and by file exporters:
// - lowerCamelCase keys; traceId/spanId/parentSpanId as lowercase hex (not base64); other bytes
//   base64; 64-bit integers as decimal strings; enums as integers; NaN/±Infinity as strings.
// - The decoder accepts what the spec allows: integers as JSON numbers or strings, enums as integers
//   or their names, doubles as numbers or strings, missing fields as defaults, unknown keys ignored.
// Malformed input throws ProtoDecodeError (code INVALID_PROTO) naming the JSON path.
import {
  EMPTY_BYTES,
  KeyValueList,
  type AnyValue,
  type Exemplar,
  type ExponentialHistogramBuckets,
  type ExponentialHistogramDataPoint,
  type HistogramDataPoint,
  type InstrumentationScope,
  type KeyValue,
  type LogRecord,
  type LogsData,
  type Metric,
  type MetricsData,
  type NumberDataPoint,
  type Resource,
  type SignalData,
  type SignalType,
  type Span,
  type SummaryDataPoint,
  type TracesData,
} from '../model.ts';
import { ProtoDecodeError } from './errors.ts';
import { MAX_ANY_DEPTH } from './decode.ts';

type J = Record<string, unknown>;

// ------------------------------------------------------------------ encode (model → JSON value)

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i]];
  return s;
}

function base64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

function dbl(v: number): number | string {
  if (Number.isFinite(v)) return v;
  return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
}

function anyToJson(v: AnyValue): J {
  switch (typeof v) {
    case 'string':
      return { stringValue: v };
    case 'boolean':
      return { boolValue: v };
    case 'number':
      return { doubleValue: dbl(v) };
    case 'bigint':
      return { intValue: v.toString() };
  }
  if (v === null) return {};
  if (v instanceof Uint8Array) return { bytesValue: base64(v) };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(anyToJson) } };
  return { kvlistValue: { values: attrsToJson((v as KeyValueList).values) } };
}

function attrsToJson(list: KeyValue[]): J[] {
  return list.map((kv) => (kv.value === null ? { key: kv.key } : { key: kv.key, value: anyToJson(kv.value) }));
}

/** Sets o[k] = v unless v is the proto3 default (so output stays compact, as protobuf JSON printers do). */
function put(o: J, k: string, v: unknown): void {
  if (v === '' || v === 0 || v === 0n || v === false || v === undefined) return;
  if (Array.isArray(v) && v.length === 0) return;
  if (v instanceof Uint8Array) {
    if (v.length) o[k] = hex(v);
    return;
  }
  o[k] = typeof v === 'bigint' ? v.toString() : v;
}

function resourceToJson(r: Resource): J {
  const o: J = {};
  put(o, 'attributes', attrsToJson(r.attributes));
  put(o, 'droppedAttributesCount', r.droppedAttributesCount);
  return o;
}

function scopeToJson(s: InstrumentationScope): J {
  const o: J = {};
  put(o, 'name', s.name);
  put(o, 'version', s.version);
  put(o, 'attributes', attrsToJson(s.attributes));
  put(o, 'droppedAttributesCount', s.droppedAttributesCount);
  return o;
}

function spanToJson(s: Span): J {
  const o: J = {};
  put(o, 'traceId', s.traceId);
  put(o, 'spanId', s.spanId);
  put(o, 'traceState', s.traceState);
  put(o, 'parentSpanId', s.parentSpanId);
  put(o, 'flags', s.flags);
  put(o, 'name', s.name);
  put(o, 'kind', s.kind);
  put(o, 'startTimeUnixNano', s.startTimeUnixNano);
  put(o, 'endTimeUnixNano', s.endTimeUnixNano);
  put(o, 'attributes', attrsToJson(s.attributes));
  put(o, 'droppedAttributesCount', s.droppedAttributesCount);
  put(
    o,
    'events',
    s.events.map((e) => {
      const eo: J = {};
      put(eo, 'timeUnixNano', e.timeUnixNano);
      put(eo, 'name', e.name);
      put(eo, 'attributes', attrsToJson(e.attributes));
      put(eo, 'droppedAttributesCount', e.droppedAttributesCount);
      return eo;
    }),
  );
  put(o, 'droppedEventsCount', s.droppedEventsCount);
  put(
    o,
    'links',
    s.links.map((l) => {
      const lo: J = {};
      put(lo, 'traceId', l.traceId);
      put(lo, 'spanId', l.spanId);
      put(lo, 'traceState', l.traceState);
      put(lo, 'attributes', attrsToJson(l.attributes));
      put(lo, 'droppedAttributesCount', l.droppedAttributesCount);
      put(lo, 'flags', l.flags);
      return lo;
    }),
  );
  put(o, 'droppedLinksCount', s.droppedLinksCount);
  if (s.status.code !== 0 || s.status.message !== '') {
    const st: J = {};
    put(st, 'message', s.status.message);
    put(st, 'code', s.status.code);
    o.status = st;
  }
  return o;
}

/** TracesData → OTLP/JSON value (an ExportTraceServiceRequest). */
export function tracesToJson(d: TracesData): J {
  return {
    resourceSpans: d.resourceSpans.map((rs) => {
      const o: J = { resource: resourceToJson(rs.resource) };
      o.scopeSpans = rs.scopeSpans.map((ss) => {
        const so: J = { scope: scopeToJson(ss.scope), spans: ss.spans.map(spanToJson) };
        put(so, 'schemaUrl', ss.schemaUrl);
        return so;
      });
      put(o, 'schemaUrl', rs.schemaUrl);
      return o;
    }),
  };
}

function exemplarsToJson(list: Exemplar[]): J[] {
  return list.map((e) => {
    const o: J = {};
    put(o, 'filteredAttributes', attrsToJson(e.filteredAttributes));
    put(o, 'timeUnixNano', e.timeUnixNano);
    if (typeof e.value === 'bigint') o.asInt = e.value.toString();
    else o.asDouble = dbl(e.value);
    put(o, 'spanId', e.spanId);
    put(o, 'traceId', e.traceId);
    return o;
  });
}

function pointBase(o: J, p: { attributes: KeyValue[]; startTimeUnixNano: bigint; timeUnixNano: bigint }): void {
  put(o, 'attributes', attrsToJson(p.attributes));
  put(o, 'startTimeUnixNano', p.startTimeUnixNano);
  put(o, 'timeUnixNano', p.timeUnixNano);
}

function numberPointToJson(p: NumberDataPoint): J {
  const o: J = {};
  pointBase(o, p);
  if (typeof p.value === 'bigint') o.asInt = p.value.toString();
  else o.asDouble = dbl(p.value);
  put(o, 'exemplars', exemplarsToJson(p.exemplars));
  put(o, 'flags', p.flags);
  return o;
}

function optDbl(o: J, k: string, v: number | undefined): void {
  if (v !== undefined) o[k] = dbl(v);
}

function nzDbl(o: J, k: string, v: number): void {
  if (!Object.is(v, 0)) o[k] = dbl(v);
}

function histPointToJson(p: HistogramDataPoint): J {
  const o: J = {};
  pointBase(o, p);
  put(o, 'count', p.count);
  optDbl(o, 'sum', p.sum);
  put(o, 'bucketCounts', p.bucketCounts.map(String));
  put(o, 'explicitBounds', p.explicitBounds.map(dbl));
  put(o, 'exemplars', exemplarsToJson(p.exemplars));
  put(o, 'flags', p.flags);
  optDbl(o, 'min', p.min);
  optDbl(o, 'max', p.max);
  return o;
}

function bucketsToJson(b: ExponentialHistogramBuckets): J {
  const o: J = {};
  put(o, 'offset', b.offset);
  put(o, 'bucketCounts', b.bucketCounts.map(String));
  return o;
}

function expPointToJson(p: ExponentialHistogramDataPoint): J {
  const o: J = {};
  pointBase(o, p);
  put(o, 'count', p.count);
  optDbl(o, 'sum', p.sum);
  put(o, 'scale', p.scale);
  put(o, 'zeroCount', p.zeroCount);
  if (p.positive.offset !== 0 || p.positive.bucketCounts.length) o.positive = bucketsToJson(p.positive);
  if (p.negative.offset !== 0 || p.negative.bucketCounts.length) o.negative = bucketsToJson(p.negative);
  put(o, 'flags', p.flags);
  put(o, 'exemplars', exemplarsToJson(p.exemplars));
  optDbl(o, 'min', p.min);
  optDbl(o, 'max', p.max);
  nzDbl(o, 'zeroThreshold', p.zeroThreshold);
  return o;
}

function summaryPointToJson(p: SummaryDataPoint): J {
  const o: J = {};
  pointBase(o, p);
  put(o, 'count', p.count);
  nzDbl(o, 'sum', p.sum);
  put(
    o,
    'quantileValues',
    p.quantileValues.map((q) => {
      const qo: J = {};
      nzDbl(qo, 'quantile', q.quantile);
      nzDbl(qo, 'value', q.value);
      return qo;
    }),
  );
  put(o, 'flags', p.flags);
  return o;
}

function metricToJson(m: Metric): J {
  const o: J = {};
  put(o, 'name', m.name);
  put(o, 'description', m.description);
  put(o, 'unit', m.unit);
  const d = m.data;
  switch (d.type) {
    case 'gauge':
      o.gauge = { dataPoints: d.dataPoints.map(numberPointToJson) };
      break;
    case 'sum': {
      const s: J = { dataPoints: d.dataPoints.map(numberPointToJson) };
      put(s, 'aggregationTemporality', d.aggregationTemporality);
      put(s, 'isMonotonic', d.isMonotonic);
      o.sum = s;
      break;
    }
    case 'histogram': {
      const h: J = { dataPoints: d.dataPoints.map(histPointToJson) };
      put(h, 'aggregationTemporality', d.aggregationTemporality);
      o.histogram = h;
      break;
    }
    case 'exponentialHistogram': {
      const h: J = { dataPoints: d.dataPoints.map(expPointToJson) };
      put(h, 'aggregationTemporality', d.aggregationTemporality);
      o.exponentialHistogram = h;
      break;
    }
    case 'summary':
      o.summary = { dataPoints: d.dataPoints.map(summaryPointToJson) };
      break;
  }
  put(o, 'metadata', attrsToJson(m.metadata));
  return o;
}

/** MetricsData → OTLP/JSON value (an ExportMetricsServiceRequest). */
export function metricsToJson(d: MetricsData): J {
  return {
    resourceMetrics: d.resourceMetrics.map((rm) => {
      const o: J = { resource: resourceToJson(rm.resource) };
      o.scopeMetrics = rm.scopeMetrics.map((sm) => {
        const so: J = { scope: scopeToJson(sm.scope), metrics: sm.metrics.map(metricToJson) };
        put(so, 'schemaUrl', sm.schemaUrl);
        return so;
      });
      put(o, 'schemaUrl', rm.schemaUrl);
      return o;
    }),
  };
}

function logToJson(r: LogRecord): J {
  const o: J = {};
  put(o, 'timeUnixNano', r.timeUnixNano);
  put(o, 'observedTimeUnixNano', r.observedTimeUnixNano);
  put(o, 'severityNumber', r.severityNumber);
  put(o, 'severityText', r.severityText);
  if (r.body !== null) o.body = anyToJson(r.body);
  put(o, 'attributes', attrsToJson(r.attributes));
  put(o, 'droppedAttributesCount', r.droppedAttributesCount);
  put(o, 'flags', r.flags);
  put(o, 'traceId', r.traceId);
  put(o, 'spanId', r.spanId);
  put(o, 'eventName', r.eventName);
  return o;
}

/** LogsData → OTLP/JSON value (an ExportLogsServiceRequest). */
export function logsToJson(d: LogsData): J {
  return {
    resourceLogs: d.resourceLogs.map((rl) => {
      const o: J = { resource: resourceToJson(rl.resource) };
      o.scopeLogs = rl.scopeLogs.map((sl) => {
        const so: J = { scope: scopeToJson(sl.scope), logRecords: sl.logRecords.map(logToJson) };
        put(so, 'schemaUrl', sl.schemaUrl);
        return so;
      });
      put(o, 'schemaUrl', rl.schemaUrl);
      return o;
    }),
  };
}

export function signalToJson<S extends SignalType>(signal: S, d: SignalData[S]): J {
  if (signal === 'traces') return tracesToJson(d as TracesData);
  if (signal === 'metrics') return metricsToJson(d as MetricsData);
  return logsToJson(d as LogsData);
}

/** Model → OTLP/JSON text (UTF-8 string). */
export function encodeJson<S extends SignalType>(signal: S, d: SignalData[S]): string {
  return JSON.stringify(signalToJson(signal, d));
}

// ------------------------------------------------------------------ decode (JSON value → model)

function bad(path: string, what: string): never {
  throw new ProtoDecodeError(`invalid OTLP/JSON at ${path}: ${what}`);
}

function obj(v: unknown, path: string): J {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) bad(path, 'expected an object');
  return v as J;
}

function arr(v: unknown, path: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) bad(path, 'expected an array');
  return v;
}

function str(v: unknown, path: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') bad(path, 'expected a string');
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') bad(path, 'expected a boolean');
  return v;
}

const INT_RE = /^-?\d+$/;

function bigintIn(v: unknown, path: string, min: bigint, max: bigint): bigint {
  if (v === undefined || v === null) return 0n;
  let r: bigint;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) bad(path, `expected an integer, got ${v}`);
    r = BigInt(v);
  } else if (typeof v === 'string' && INT_RE.test(v.trim())) r = BigInt(v.trim());
  else if (typeof v === 'string' && v.trim() !== '' && Number.isInteger(Number(v))) r = BigInt(Number(v)); // "1e3"
  else bad(path, 'expected an integer (number or decimal string)');
  if (r < min || r > max) bad(path, `integer ${r} out of range`);
  return r;
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

function i64(v: unknown, path: string): bigint {
  return bigintIn(v, path, I64_MIN, I64_MAX);
}

function u64(v: unknown, path: string): bigint {
  return bigintIn(v, path, 0n, U64_MAX);
}

function u32(v: unknown, path: string): number {
  return Number(bigintIn(v, path, 0n, 0xffffffffn));
}

function i32(v: unknown, path: string): number {
  return Number(bigintIn(v, path, -(2n ** 31n), 2n ** 31n - 1n));
}

function enumVal(v: unknown, path: string, names: Record<string, number>): number {
  if (typeof v === 'string' && !INT_RE.test(v)) {
    const n = names[v];
    if (n === undefined) bad(path, `unknown enum name ${JSON.stringify(v)}`);
    return n;
  }
  return i32(v, path);
}

function double(v: unknown, path: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    if (v === 'NaN') return NaN;
    if (v === 'Infinity') return Infinity;
    if (v === '-Infinity') return -Infinity;
    const n = Number(v);
    if (v.trim() !== '' && !Number.isNaN(n)) return n;
  }
  bad(path, 'expected a number');
}

function optDouble(v: unknown, path: string): number | undefined {
  return v === undefined || v === null ? undefined : double(v, path);
}

function id(v: unknown, path: string, len: number): Uint8Array {
  const s = str(v, path);
  if (s === '') return EMPTY_BYTES;
  if (s.length !== len * 2 || !/^[0-9a-fA-F]*$/.test(s)) bad(path, `expected ${len * 2} hex digits`);
  return new Uint8Array(Buffer.from(s, 'hex'));
}

const B64_RE = /^[A-Za-z0-9+/_-]*={0,2}$/;

function bytes(v: unknown, path: string): Uint8Array {
  const s = str(v, path);
  if (!B64_RE.test(s)) bad(path, 'expected base64');
  return new Uint8Array(Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64'));
}

function anyFromJson(v: unknown, path: string, depth: number): AnyValue {
  if (depth > MAX_ANY_DEPTH) bad(path, `AnyValue nested deeper than ${MAX_ANY_DEPTH}`);
  const o = obj(v, path);
  if ('stringValue' in o) return str(o.stringValue, path + '.stringValue');
  if ('boolValue' in o) return bool(o.boolValue, path + '.boolValue');
  if ('intValue' in o) return i64(o.intValue, path + '.intValue');
  if ('doubleValue' in o) return double(o.doubleValue, path + '.doubleValue');
  if ('bytesValue' in o) return bytes(o.bytesValue, path + '.bytesValue');
  if ('arrayValue' in o) {
    const vals = arr(obj(o.arrayValue, path + '.arrayValue').values, path + '.arrayValue.values');
    return vals.map((x, i) => anyFromJson(x, `${path}.arrayValue.values[${i}]`, depth + 1));
  }
  if ('kvlistValue' in o) {
    const p = path + '.kvlistValue.values';
    return new KeyValueList(attrsFromJson(obj(o.kvlistValue, path + '.kvlistValue').values, p, depth + 1));
  }
  return null;
}

function attrsFromJson(v: unknown, path: string, depth = 0): KeyValue[] {
  return arr(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    return { key: str(o.key, p + '.key'), value: o.value === undefined ? null : anyFromJson(o.value, p + '.value', depth) };
  });
}

function resourceFromJson(v: unknown, path: string): Resource {
  const o = obj(v, path);
  return {
    attributes: attrsFromJson(o.attributes, path + '.attributes'),
    droppedAttributesCount: u32(o.droppedAttributesCount, path + '.droppedAttributesCount'),
  };
}

function scopeFromJson(v: unknown, path: string): InstrumentationScope {
  const o = obj(v, path);
  return {
    name: str(o.name, path + '.name'),
    version: str(o.version, path + '.version'),
    attributes: attrsFromJson(o.attributes, path + '.attributes'),
    droppedAttributesCount: u32(o.droppedAttributesCount, path + '.droppedAttributesCount'),
  };
}

const SPAN_KIND: Record<string, number> = {
  SPAN_KIND_UNSPECIFIED: 0,
  SPAN_KIND_INTERNAL: 1,
  SPAN_KIND_SERVER: 2,
  SPAN_KIND_CLIENT: 3,
  SPAN_KIND_PRODUCER: 4,
  SPAN_KIND_CONSUMER: 5,
};
const STATUS_CODE: Record<string, number> = { STATUS_CODE_UNSET: 0, STATUS_CODE_OK: 1, STATUS_CODE_ERROR: 2 };
const TEMPORALITY: Record<string, number> = {
  AGGREGATION_TEMPORALITY_UNSPECIFIED: 0,
  AGGREGATION_TEMPORALITY_DELTA: 1,
  AGGREGATION_TEMPORALITY_CUMULATIVE: 2,
};
const SEVERITY: Record<string, number> = { SEVERITY_NUMBER_UNSPECIFIED: 0 };
['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'].forEach((n, i) => {
  SEVERITY[`SEVERITY_NUMBER_${n}`] = i * 4 + 1;
  for (let k = 2; k <= 4; k++) SEVERITY[`SEVERITY_NUMBER_${n}${k}`] = i * 4 + k;
});

function spanFromJson(v: unknown, path: string): Span {
  const o = obj(v, path);
  const st = obj(o.status, path + '.status');
  return {
    traceId: id(o.traceId, path + '.traceId', 16),
    spanId: id(o.spanId, path + '.spanId', 8),
    traceState: str(o.traceState, path + '.traceState'),
    parentSpanId: id(o.parentSpanId, path + '.parentSpanId', 8),
    flags: u32(o.flags, path + '.flags'),
    name: str(o.name, path + '.name'),
    kind: enumVal(o.kind, path + '.kind', SPAN_KIND),
    startTimeUnixNano: u64(o.startTimeUnixNano, path + '.startTimeUnixNano'),
    endTimeUnixNano: u64(o.endTimeUnixNano, path + '.endTimeUnixNano'),
    attributes: attrsFromJson(o.attributes, path + '.attributes'),
    droppedAttributesCount: u32(o.droppedAttributesCount, path + '.droppedAttributesCount'),
    events: arr(o.events, path + '.events').map((x, i) => {
      const p = `${path}.events[${i}]`;
      const e = obj(x, p);
      return {
        timeUnixNano: u64(e.timeUnixNano, p + '.timeUnixNano'),
        name: str(e.name, p + '.name'),
        attributes: attrsFromJson(e.attributes, p + '.attributes'),
        droppedAttributesCount: u32(e.droppedAttributesCount, p + '.droppedAttributesCount'),
      };
    }),
    droppedEventsCount: u32(o.droppedEventsCount, path + '.droppedEventsCount'),
    links: arr(o.links, path + '.links').map((x, i) => {
      const p = `${path}.links[${i}]`;
      const l = obj(x, p);
      return {
        traceId: id(l.traceId, p + '.traceId', 16),
        spanId: id(l.spanId, p + '.spanId', 8),
        traceState: str(l.traceState, p + '.traceState'),
        attributes: attrsFromJson(l.attributes, p + '.attributes'),
        droppedAttributesCount: u32(l.droppedAttributesCount, p + '.droppedAttributesCount'),
        flags: u32(l.flags, p + '.flags'),
      };
    }),
    droppedLinksCount: u32(o.droppedLinksCount, path + '.droppedLinksCount'),
    status: { code: enumVal(st.code, path + '.status.code', STATUS_CODE), message: str(st.message, path + '.status.message') },
  };
}

/** OTLP/JSON value → TracesData. */
export function tracesFromJson(v: unknown): TracesData {
  return {
    resourceSpans: envelopesFromJson(v, 'resourceSpans', 'scopeSpans', 'spans', spanFromJson).map((r) => ({
      resource: r.resource,
      scopeSpans: r.scopes.map((sc) => ({ scope: sc.scope, spans: sc.items, schemaUrl: sc.schemaUrl })),
      schemaUrl: r.schemaUrl,
    })),
  };
}

function pointValue(o: J, path: string): number | bigint {
  if (o.asInt !== undefined && o.asInt !== null) return i64(o.asInt, path + '.asInt');
  return double(o.asDouble, path + '.asDouble');
}

function exemplarsFromJson(v: unknown, path: string): Exemplar[] {
  return arr(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const e = obj(x, p);
    return {
      filteredAttributes: attrsFromJson(e.filteredAttributes, p + '.filteredAttributes'),
      timeUnixNano: u64(e.timeUnixNano, p + '.timeUnixNano'),
      value: pointValue(e, p),
      spanId: id(e.spanId, p + '.spanId', 8),
      traceId: id(e.traceId, p + '.traceId', 16),
    };
  });
}

function numberPointFromJson(x: unknown, p: string): NumberDataPoint {
  const o = obj(x, p);
  return {
    attributes: attrsFromJson(o.attributes, p + '.attributes'),
    startTimeUnixNano: u64(o.startTimeUnixNano, p + '.startTimeUnixNano'),
    timeUnixNano: u64(o.timeUnixNano, p + '.timeUnixNano'),
    value: pointValue(o, p),
    exemplars: exemplarsFromJson(o.exemplars, p + '.exemplars'),
    flags: u32(o.flags, p + '.flags'),
  };
}

function histPointFromJson(x: unknown, p: string): HistogramDataPoint {
  const o = obj(x, p);
  return {
    attributes: attrsFromJson(o.attributes, p + '.attributes'),
    startTimeUnixNano: u64(o.startTimeUnixNano, p + '.startTimeUnixNano'),
    timeUnixNano: u64(o.timeUnixNano, p + '.timeUnixNano'),
    count: u64(o.count, p + '.count'),
    sum: optDouble(o.sum, p + '.sum'),
    bucketCounts: arr(o.bucketCounts, p + '.bucketCounts').map((c, i) => u64(c, `${p}.bucketCounts[${i}]`)),
    explicitBounds: arr(o.explicitBounds, p + '.explicitBounds').map((c, i) => double(c, `${p}.explicitBounds[${i}]`)),
    exemplars: exemplarsFromJson(o.exemplars, p + '.exemplars'),
    flags: u32(o.flags, p + '.flags'),
    min: optDouble(o.min, p + '.min'),
    max: optDouble(o.max, p + '.max'),
  };
}

function bucketsFromJson(v: unknown, p: string): ExponentialHistogramBuckets {
  const o = obj(v, p);
  return {
    offset: i32(o.offset, p + '.offset'),
    bucketCounts: arr(o.bucketCounts, p + '.bucketCounts').map((c, i) => u64(c, `${p}.bucketCounts[${i}]`)),
  };
}

function expPointFromJson(x: unknown, p: string): ExponentialHistogramDataPoint {
  const o = obj(x, p);
  return {
    attributes: attrsFromJson(o.attributes, p + '.attributes'),
    startTimeUnixNano: u64(o.startTimeUnixNano, p + '.startTimeUnixNano'),
    timeUnixNano: u64(o.timeUnixNano, p + '.timeUnixNano'),
    count: u64(o.count, p + '.count'),
    sum: optDouble(o.sum, p + '.sum'),
    scale: i32(o.scale, p + '.scale'),
    zeroCount: u64(o.zeroCount, p + '.zeroCount'),
    positive: bucketsFromJson(o.positive, p + '.positive'),
    negative: bucketsFromJson(o.negative, p + '.negative'),
    flags: u32(o.flags, p + '.flags'),
    exemplars: exemplarsFromJson(o.exemplars, p + '.exemplars'),
    min: optDouble(o.min, p + '.min'),
    max: optDouble(o.max, p + '.max'),
    zeroThreshold: double(o.zeroThreshold, p + '.zeroThreshold'),
  };
}

function summaryPointFromJson(x: unknown, p: string): SummaryDataPoint {
  const o = obj(x, p);
  return {
    attributes: attrsFromJson(o.attributes, p + '.attributes'),
    startTimeUnixNano: u64(o.startTimeUnixNano, p + '.startTimeUnixNano'),
    timeUnixNano: u64(o.timeUnixNano, p + '.timeUnixNano'),
    count: u64(o.count, p + '.count'),
    sum: double(o.sum, p + '.sum'),
    quantileValues: arr(o.quantileValues, p + '.quantileValues').map((q, i) => {
      const qo = obj(q, `${p}.quantileValues[${i}]`);
      return { quantile: double(qo.quantile, `${p}.quantileValues[${i}].quantile`), value: double(qo.value, `${p}.quantileValues[${i}].value`) };
    }),
    flags: u32(o.flags, p + '.flags'),
  };
}

function points<P>(v: unknown, path: string, f: (x: unknown, p: string) => P): P[] {
  return arr(obj(v, path).dataPoints, path + '.dataPoints').map((x, i) => f(x, `${path}.dataPoints[${i}]`));
}

function metricFromJson(v: unknown, p: string): Metric {
  const o = obj(v, p);
  let data: Metric['data'] = { type: 'empty' };
  if (o.gauge != null) data = { type: 'gauge', dataPoints: points(o.gauge, p + '.gauge', numberPointFromJson) };
  else if (o.sum != null) {
    const s = obj(o.sum, p + '.sum');
    data = {
      type: 'sum',
      dataPoints: points(s, p + '.sum', numberPointFromJson),
      aggregationTemporality: enumVal(s.aggregationTemporality, p + '.sum.aggregationTemporality', TEMPORALITY),
      isMonotonic: bool(s.isMonotonic, p + '.sum.isMonotonic'),
    };
  } else if (o.histogram != null) {
    const h = obj(o.histogram, p + '.histogram');
    data = {
      type: 'histogram',
      dataPoints: points(h, p + '.histogram', histPointFromJson),
      aggregationTemporality: enumVal(h.aggregationTemporality, p + '.histogram.aggregationTemporality', TEMPORALITY),
    };
  } else if (o.exponentialHistogram != null) {
    const h = obj(o.exponentialHistogram, p + '.exponentialHistogram');
    data = {
      type: 'exponentialHistogram',
      dataPoints: points(h, p + '.exponentialHistogram', expPointFromJson),
      aggregationTemporality: enumVal(h.aggregationTemporality, p + '.exponentialHistogram.aggregationTemporality', TEMPORALITY),
    };
  } else if (o.summary != null) data = { type: 'summary', dataPoints: points(o.summary, p + '.summary', summaryPointFromJson) };
  return {
    name: str(o.name, p + '.name'),
    description: str(o.description, p + '.description'),
    unit: str(o.unit, p + '.unit'),
    data,
    metadata: attrsFromJson(o.metadata, p + '.metadata'),
  };
}

/** OTLP/JSON value → MetricsData. */
export function metricsFromJson(v: unknown): MetricsData {
  return {
    resourceMetrics: envelopesFromJson(v, 'resourceMetrics', 'scopeMetrics', 'metrics', metricFromJson).map((r) => ({
      resource: r.resource,
      scopeMetrics: r.scopes.map((sc) => ({ scope: sc.scope, metrics: sc.items, schemaUrl: sc.schemaUrl })),
      schemaUrl: r.schemaUrl,
    })),
  };
}

function logFromJson(v: unknown, p: string): LogRecord {
  const o = obj(v, p);
  return {
    timeUnixNano: u64(o.timeUnixNano, p + '.timeUnixNano'),
    observedTimeUnixNano: u64(o.observedTimeUnixNano, p + '.observedTimeUnixNano'),
    severityNumber: enumVal(o.severityNumber, p + '.severityNumber', SEVERITY),
    severityText: str(o.severityText, p + '.severityText'),
    body: o.body === undefined ? null : anyFromJson(o.body, p + '.body', 0),
    attributes: attrsFromJson(o.attributes, p + '.attributes'),
    droppedAttributesCount: u32(o.droppedAttributesCount, p + '.droppedAttributesCount'),
    flags: u32(o.flags, p + '.flags'),
    traceId: id(o.traceId, p + '.traceId', 16),
    spanId: id(o.spanId, p + '.spanId', 8),
    eventName: str(o.eventName, p + '.eventName'),
  };
}

/** OTLP/JSON value → LogsData. */
export function logsFromJson(v: unknown): LogsData {
  return {
    resourceLogs: envelopesFromJson(v, 'resourceLogs', 'scopeLogs', 'logRecords', logFromJson).map((r) => ({
      resource: r.resource,
      scopeLogs: r.scopes.map((sc) => ({ scope: sc.scope, logRecords: sc.items, schemaUrl: sc.schemaUrl })),
      schemaUrl: r.schemaUrl,
    })),
  };
}

/**
 * The resource → scope → items envelope every signal shares, with JSON paths in errors
 * (`$.resourceSpans[0].scopeSpans[1].spans[2]`); `item` decodes one span/metric/log record.
 */
function envelopesFromJson<T>(v: unknown, rKey: string, sKey: string, iKey: string, item: (x: unknown, path: string) => T) {
  const root = obj(v, '$');
  return arr(root[rKey], `$.${rKey}`).map((x, i) => {
    const p = `$.${rKey}[${i}]`;
    const r = obj(x, p);
    return {
      resource: resourceFromJson(r.resource, p + '.resource'),
      scopes: arr(r[sKey], `${p}.${sKey}`).map((y, j) => {
        const q = `${p}.${sKey}[${j}]`;
        const sc = obj(y, q);
        return {
          scope: scopeFromJson(sc.scope, q + '.scope'),
          items: arr(sc[iKey], `${q}.${iKey}`).map((z, k) => item(z, `${q}.${iKey}[${k}]`)),
          schemaUrl: str(sc.schemaUrl, q + '.schemaUrl'),
        };
      }),
      schemaUrl: str(r.schemaUrl, p + '.schemaUrl'),
    };
  });
}

export function signalFromJson<S extends SignalType>(signal: S, v: unknown): SignalData[S] {
  if (signal === 'traces') return tracesFromJson(v) as SignalData[S];
  if (signal === 'metrics') return metricsFromJson(v) as SignalData[S];
  return logsFromJson(v) as SignalData[S];
}

/** OTLP/JSON text or UTF-8 bytes → model. Throws ProtoDecodeError on bad JSON or bad shape. */
export function decodeJson<S extends SignalType>(signal: S, text: string | Uint8Array): SignalData[S] {
  let v: unknown;
  try {
    v = JSON.parse(typeof text === 'string' ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString('utf8'));
  } catch (err) {
    throw new ProtoDecodeError(`invalid OTLP/JSON: ${(err as Error).message}`);
  }
  try {
    return signalFromJson(signal, v);
  } catch (err) {
    if (err instanceof ProtoDecodeError) throw err;
    throw new ProtoDecodeError(`invalid OTLP/JSON: ${(err as Error).message}`);
  }
}
