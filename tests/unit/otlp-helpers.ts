// Shared by the OTLP codec tests and the codec benchmark: fast-check arbitraries for the model, and
// a protobufjs reflection view of our own .proto files as an independent protobuf implementation.
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { join } from 'node:path';
import {
  EMPTY_BYTES,
  KeyValueList,
  type AnyValue,
  type Exemplar,
  type ExponentialHistogramDataPoint,
  type HistogramDataPoint,
  type KeyValue,
  type LogRecord,
  type LogsData,
  type Metric,
  type MetricsData,
  type NumberDataPoint,
  type Span,
  type SummaryDataPoint,
  type TracesData,
} from '../../proto/src/model.ts';

// ------------------------------------------------------------------ arbitraries

// Plain-prototype records (fast-check v4 defaults to null-prototype objects, which deepStrictEqual
// tells apart from the decoder's object literals).
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;
}

export interface ArbOptions {
  /** JSON cannot carry −0; map it to +0 for JSON round trips. */
  noNegativeZero?: boolean;
}

const str = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 8 }), fc.constant(''));
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 1000n }), fc.constant(0n));
const i64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: -1000n, max: 1000n }));
const ts = fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 1_700_000_000_000_000_000n, max: 1_800_000_000_000_000_000n }));
const id16 = fc.oneof(fc.constant(EMPTY_BYTES), fc.uint8Array({ minLength: 16, maxLength: 16 }));
const id8 = fc.oneof(fc.constant(EMPTY_BYTES), fc.uint8Array({ minLength: 8, maxLength: 8 }));

export function arbs(opts: ArbOptions = {}) {
  const dbl = opts.noNegativeZero ? fc.double().map((v) => (Object.is(v, -0) ? 0 : v)) : fc.double();
  const { any } = fc.letrec<{ any: AnyValue; kv: KeyValue }>((tie) => ({
    any: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      str,
      fc.boolean(),
      dbl,
      i64,
      fc.uint8Array({ maxLength: 12 }),
      fc.constant(null),
      fc.array(tie('any'), { maxLength: 3 }),
      fc.array(tie('kv') as fc.Arbitrary<KeyValue>, { maxLength: 3 }).map((v) => new KeyValueList(v)),
    ),
    kv: rec({ key: str, value: tie('any') as fc.Arbitrary<AnyValue> }),
  }));
  const kv: fc.Arbitrary<KeyValue> = rec({ key: str, value: any });
  const attrs = fc.array(kv, { maxLength: 4 });
  const resource = rec({ attributes: attrs, droppedAttributesCount: u32 });
  const scope = rec({ name: str, version: str, attributes: attrs, droppedAttributesCount: u32 });

  const span: fc.Arbitrary<Span> = rec({
    traceId: id16,
    spanId: id8,
    traceState: str,
    parentSpanId: id8,
    flags: u32,
    name: str,
    kind: fc.integer({ min: 0, max: 5 }),
    startTimeUnixNano: ts,
    endTimeUnixNano: ts,
    attributes: attrs,
    droppedAttributesCount: u32,
    events: fc.array(rec({ timeUnixNano: ts, name: str, attributes: attrs, droppedAttributesCount: u32 }), { maxLength: 2 }),
    droppedEventsCount: u32,
    links: fc.array(
      rec({ traceId: id16, spanId: id8, traceState: str, attributes: attrs, droppedAttributesCount: u32, flags: u32 }),
      { maxLength: 2 },
    ),
    droppedLinksCount: u32,
    status: rec({ code: fc.integer({ min: 0, max: 2 }), message: str }),
  });
  const traces: fc.Arbitrary<TracesData> = rec({
    resourceSpans: fc.array(
      rec({
        resource,
        scopeSpans: fc.array(rec({ scope, spans: fc.array(span, { maxLength: 3 }), schemaUrl: str }), { maxLength: 2 }),
        schemaUrl: str,
      }),
      { maxLength: 2 },
    ),
  });

  const value = fc.oneof(dbl, i64);
  const exemplar: fc.Arbitrary<Exemplar> = rec({ filteredAttributes: attrs, timeUnixNano: ts, value, spanId: id8, traceId: id16 });
  const exemplars = fc.array(exemplar, { maxLength: 2 });
  const optDbl = fc.option(dbl, { nil: undefined });
  const numberDP: fc.Arbitrary<NumberDataPoint> = rec({
    attributes: attrs,
    startTimeUnixNano: ts,
    timeUnixNano: ts,
    value,
    exemplars,
    flags: u32,
  });
  const histDP: fc.Arbitrary<HistogramDataPoint> = rec({
    attributes: attrs,
    startTimeUnixNano: ts,
    timeUnixNano: ts,
    count: u64,
    sum: optDbl,
    bucketCounts: fc.array(u64, { maxLength: 5 }),
    explicitBounds: fc.array(dbl, { maxLength: 4 }),
    exemplars,
    flags: u32,
    min: optDbl,
    max: optDbl,
  });
  const buckets = rec({ offset: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), bucketCounts: fc.array(u64, { maxLength: 5 }) });
  const expDP: fc.Arbitrary<ExponentialHistogramDataPoint> = rec({
    attributes: attrs,
    startTimeUnixNano: ts,
    timeUnixNano: ts,
    count: u64,
    sum: optDbl,
    scale: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    zeroCount: u64,
    positive: buckets,
    negative: buckets,
    flags: u32,
    exemplars,
    min: optDbl,
    max: optDbl,
    zeroThreshold: dbl,
  });
  const summaryDP: fc.Arbitrary<SummaryDataPoint> = rec({
    attributes: attrs,
    startTimeUnixNano: ts,
    timeUnixNano: ts,
    count: u64,
    sum: dbl,
    quantileValues: fc.array(rec({ quantile: dbl, value: dbl }), { maxLength: 3 }),
    flags: u32,
  });
  const temporality = fc.integer({ min: 0, max: 2 });
  const data: fc.Arbitrary<Metric['data']> = fc.oneof(
    rec({ type: fc.constant('gauge' as const), dataPoints: fc.array(numberDP, { maxLength: 3 }) }),
    rec({ type: fc.constant('sum' as const), dataPoints: fc.array(numberDP, { maxLength: 3 }), aggregationTemporality: temporality, isMonotonic: fc.boolean() }),
    rec({ type: fc.constant('histogram' as const), dataPoints: fc.array(histDP, { maxLength: 3 }), aggregationTemporality: temporality }),
    rec({ type: fc.constant('exponentialHistogram' as const), dataPoints: fc.array(expDP, { maxLength: 3 }), aggregationTemporality: temporality }),
    rec({ type: fc.constant('summary' as const), dataPoints: fc.array(summaryDP, { maxLength: 3 }) }),
    fc.constant({ type: 'empty' as const }),
  );
  const metric: fc.Arbitrary<Metric> = rec({ name: str, description: str, unit: str, data, metadata: attrs });
  const metrics: fc.Arbitrary<MetricsData> = rec({
    resourceMetrics: fc.array(
      rec({
        resource,
        scopeMetrics: fc.array(rec({ scope, metrics: fc.array(metric, { maxLength: 3 }), schemaUrl: str }), { maxLength: 2 }),
        schemaUrl: str,
      }),
      { maxLength: 2 },
    ),
  });

  const log: fc.Arbitrary<LogRecord> = rec({
    timeUnixNano: ts,
    observedTimeUnixNano: ts,
    severityNumber: fc.integer({ min: 0, max: 24 }),
    severityText: str,
    body: any,
    attributes: attrs,
    droppedAttributesCount: u32,
    flags: u32,
    traceId: id16,
    spanId: id8,
    eventName: str,
  });
  const logs: fc.Arbitrary<LogsData> = rec({
    resourceLogs: fc.array(
      rec({
        resource,
        scopeLogs: fc.array(rec({ scope, logRecords: fc.array(log, { maxLength: 3 }), schemaUrl: str }), { maxLength: 2 }),
        schemaUrl: str,
      }),
      { maxLength: 2 },
    ),
  });
  return { any, traces, metrics, logs, span, metric, log };
}

// ------------------------------------------------------------------ protobufjs reflection of our .proto files

const PROTO_ROOT = join(import.meta.dirname, '../../proto/otlp');

let root: protobuf.Root | undefined;
export function otlpRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => join(PROTO_ROOT, target);
  r.loadSync(
    ['trace', 'metrics', 'logs'].map((s) => `opentelemetry/proto/collector/${s}/v1/${s}_service.proto`),
    { keepCase: false },
  );
  r.resolveAll();
  root = r;
  return r;
}

export function requestType(signal: 'traces' | 'metrics' | 'logs'): protobuf.Type {
  const name = { traces: 'trace.v1.ExportTraceServiceRequest', metrics: 'metrics.v1.ExportMetricsServiceRequest', logs: 'logs.v1.ExportLogsServiceRequest' }[signal];
  return otlpRoot().lookupType(`opentelemetry.proto.collector.${name}`);
}

/** toObject options that make protobufjs output comparable plain objects. */
export const PBJS_OBJECT = { longs: String, enums: Number, bytes: Array, defaults: false, arrays: false, oneofs: false } as const;

// model → protobufjs plain object (camelCase), what Type.fromObject accepts.
type O = Record<string, unknown>;

function anyToPb(v: AnyValue): O {
  switch (typeof v) {
    case 'string':
      return { stringValue: v };
    case 'boolean':
      return { boolValue: v };
    case 'number':
      return { doubleValue: v };
    case 'bigint':
      return { intValue: v.toString() };
  }
  if (v === null) return {};
  if (v instanceof Uint8Array) return { bytesValue: v };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(anyToPb) } };
  return { kvlistValue: { values: attrsToPb((v as KeyValueList).values) } };
}

function attrsToPb(a: KeyValue[]): O[] {
  return a.map((kv) => (kv.value === null ? { key: kv.key } : { key: kv.key, value: anyToPb(kv.value) }));
}

const res = (r: { attributes: KeyValue[]; droppedAttributesCount: number }) => ({ attributes: attrsToPb(r.attributes), droppedAttributesCount: r.droppedAttributesCount });
const scp = (s: { name: string; version: string; attributes: KeyValue[]; droppedAttributesCount: number }) => ({ ...s, attributes: attrsToPb(s.attributes) });
const n = (v: bigint) => v.toString();

export function tracesToPb(d: TracesData): O {
  return {
    resourceSpans: d.resourceSpans.map((rs) => ({
      resource: res(rs.resource),
      schemaUrl: rs.schemaUrl,
      scopeSpans: rs.scopeSpans.map((ss) => ({
        scope: scp(ss.scope),
        schemaUrl: ss.schemaUrl,
        spans: ss.spans.map((s) => ({
          ...s,
          startTimeUnixNano: n(s.startTimeUnixNano),
          endTimeUnixNano: n(s.endTimeUnixNano),
          attributes: attrsToPb(s.attributes),
          events: s.events.map((e) => ({ ...e, timeUnixNano: n(e.timeUnixNano), attributes: attrsToPb(e.attributes) })),
          links: s.links.map((l) => ({ ...l, attributes: attrsToPb(l.attributes) })),
          // An all-default Status is omitted on the wire (absent and empty are the same message).
          status: s.status.code === 0 && s.status.message === '' ? undefined : s.status,
        })),
      })),
    })),
  };
}

function exToPb(e: Exemplar): O {
  return {
    filteredAttributes: attrsToPb(e.filteredAttributes),
    timeUnixNano: n(e.timeUnixNano),
    ...(typeof e.value === 'bigint' ? { asInt: n(e.value) } : { asDouble: e.value }),
    spanId: e.spanId,
    traceId: e.traceId,
  };
}

function base(p: { attributes: KeyValue[]; startTimeUnixNano: bigint; timeUnixNano: bigint }): O {
  return { attributes: attrsToPb(p.attributes), startTimeUnixNano: n(p.startTimeUnixNano), timeUnixNano: n(p.timeUnixNano) };
}

function metricToPb(m: Metric): O {
  const o: O = { name: m.name, description: m.description, unit: m.unit, metadata: attrsToPb(m.metadata) };
  const d = m.data;
  const num = (p: NumberDataPoint) => ({
    ...base(p),
    ...(typeof p.value === 'bigint' ? { asInt: n(p.value) } : { asDouble: p.value }),
    exemplars: p.exemplars.map(exToPb),
    flags: p.flags,
  });
  if (d.type === 'gauge') o.gauge = { dataPoints: d.dataPoints.map(num) };
  else if (d.type === 'sum') o.sum = { dataPoints: d.dataPoints.map(num), aggregationTemporality: d.aggregationTemporality, isMonotonic: d.isMonotonic };
  else if (d.type === 'histogram')
    o.histogram = {
      aggregationTemporality: d.aggregationTemporality,
      dataPoints: d.dataPoints.map((p) => ({
        ...base(p),
        count: n(p.count),
        sum: p.sum,
        bucketCounts: p.bucketCounts.map(n),
        explicitBounds: p.explicitBounds,
        exemplars: p.exemplars.map(exToPb),
        flags: p.flags,
        min: p.min,
        max: p.max,
      })),
    };
  else if (d.type === 'exponentialHistogram')
    o.exponentialHistogram = {
      aggregationTemporality: d.aggregationTemporality,
      dataPoints: d.dataPoints.map((p) => ({
        ...base(p),
        count: n(p.count),
        sum: p.sum,
        scale: p.scale,
        zeroCount: n(p.zeroCount),
        positive: { offset: p.positive.offset, bucketCounts: p.positive.bucketCounts.map(n) },
        negative: { offset: p.negative.offset, bucketCounts: p.negative.bucketCounts.map(n) },
        flags: p.flags,
        exemplars: p.exemplars.map(exToPb),
        min: p.min,
        max: p.max,
        zeroThreshold: p.zeroThreshold,
      })),
    };
  else if (d.type === 'summary')
    o.summary = {
      dataPoints: d.dataPoints.map((p) => ({ ...base(p), count: n(p.count), sum: p.sum, quantileValues: p.quantileValues, flags: p.flags })),
    };
  return o;
}

export function metricsToPb(d: MetricsData): O {
  return {
    resourceMetrics: d.resourceMetrics.map((rm) => ({
      resource: res(rm.resource),
      schemaUrl: rm.schemaUrl,
      scopeMetrics: rm.scopeMetrics.map((sm) => ({ scope: scp(sm.scope), schemaUrl: sm.schemaUrl, metrics: sm.metrics.map(metricToPb) })),
    })),
  };
}

export function logsToPb(d: LogsData): O {
  return {
    resourceLogs: d.resourceLogs.map((rl) => ({
      resource: res(rl.resource),
      schemaUrl: rl.schemaUrl,
      scopeLogs: rl.scopeLogs.map((sl) => ({
        scope: scp(sl.scope),
        schemaUrl: sl.schemaUrl,
        logRecords: sl.logRecords.map((r) => ({
          ...r,
          timeUnixNano: n(r.timeUnixNano),
          observedTimeUnixNano: n(r.observedTimeUnixNano),
          body: r.body === null ? undefined : anyToPb(r.body),
          attributes: attrsToPb(r.attributes),
        })),
      })),
    })),
  };
}

export function modelToPb(signal: 'traces' | 'metrics' | 'logs', d: unknown): O {
  if (signal === 'traces') return tracesToPb(d as TracesData);
  if (signal === 'metrics') return metricsToPb(d as MetricsData);
  return logsToPb(d as LogsData);
}
