// The OTel JS SDK's own serializers (@opentelemetry/otlp-transformer, protobuf and JSON) → our
// decoders, property-tested on generated SDK objects: every field equals what the SDK was given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  JsonLogsSerializer,
  JsonMetricsSerializer,
  JsonTraceSerializer,
  ProtobufLogsSerializer,
  ProtobufMetricsSerializer,
  ProtobufTraceSerializer,
} from '@opentelemetry/otlp-transformer';
import { decodeJson, decodeLogs, decodeMetrics, decodeTraces } from '../../proto/src/otlp/index.ts';
import { EMPTY_BYTES, KeyValueList, type AnyValue, type KeyValue, type LogsData, type Metric, type MetricsData, type TracesData } from '../../proto/src/model.ts';

const RUNS = { numRuns: 100, seed: 7 };

// The SDK serializes a JS number as int_value when it is an integer, else double_value; its JSON
// path writes NaN/±Infinity as null (a loss in the SDK), so generated doubles stay finite.
const num = fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.double({ noNaN: true, noDefaultInfinity: true }).filter((v) => !Number.isInteger(v)));
const prim = fc.oneof(fc.string({ maxLength: 10 }), fc.boolean(), num);
const attrValue = fc.oneof(prim, fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), fc.array(num, { maxLength: 3 }));
const attrs = fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }), attrValue, { maxKeys: 4, noNullPrototype: true });
const hex = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('hex'));
const hrTime = fc.tuple(fc.integer({ min: 0, max: 4_000_000_000 }), fc.integer({ min: 0, max: 999_999_999 }));

function toModel(v: unknown): AnyValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(toModel);
  return new KeyValueList(attrsModel(v as Record<string, unknown>));
}

function attrsModel(a: Record<string, unknown> | undefined): KeyValue[] {
  return a ? Object.keys(a).map((key) => ({ key, value: toModel(a[key]) })) : [];
}

const nanos = (t: [number, number]) => BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]);
const bytes = (h: string) => (h ? new Uint8Array(Buffer.from(h, 'hex')) : EMPTY_BYTES);

const resourceArb = fc.record({ attributes: attrs, schemaUrl: fc.string({ maxLength: 8 }) }, { noNullPrototype: true });
const scopeArb = fc.record({ name: fc.string({ maxLength: 8 }), version: fc.string({ maxLength: 5 }), schemaUrl: fc.string({ maxLength: 8 }) }, { noNullPrototype: true });

// ------------------------------------------------------------------ traces

const spanArb = fc.record(
  {
    traceId: hex(16),
    spanId: hex(8),
    traceFlags: fc.integer({ min: 0, max: 255 }),
    traceState: fc.constantFrom('', 'vendor=a', 'x=1,y=2'),
    parent: fc.option(fc.record({ spanId: hex(8), isRemote: fc.boolean() }), { nil: undefined }),
    name: fc.string({ maxLength: 12 }),
    kind: fc.integer({ min: 0, max: 4 }),
    startTime: hrTime,
    endTime: hrTime,
    attributes: attrs,
    droppedAttributesCount: fc.integer({ min: 0, max: 1000 }),
    events: fc.array(fc.record({ name: fc.string({ maxLength: 8 }), time: hrTime, attributes: attrs, droppedAttributesCount: fc.integer({ min: 0, max: 9 }) }), { maxLength: 2 }),
    links: fc.array(
      fc.record({ traceId: hex(16), spanId: hex(8), traceFlags: fc.integer({ min: 0, max: 255 }), isRemote: fc.boolean(), attributes: attrs, droppedAttributesCount: fc.integer({ min: 0, max: 9 }) }),
      { maxLength: 2 },
    ),
    droppedEventsCount: fc.integer({ min: 0, max: 9 }),
    droppedLinksCount: fc.integer({ min: 0, max: 9 }),
    status: fc.record({ code: fc.integer({ min: 0, max: 2 }), message: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }) }),
  },
  { noNullPrototype: true },
);
type SpanIn = typeof spanArb extends fc.Arbitrary<infer T> ? T : never;

function sdkSpans(spans: SpanIn[], resource: { attributes: Record<string, unknown>; schemaUrl: string }, scope: { name: string; version: string; schemaUrl: string }) {
  return spans.map((s) => ({
    spanContext: () => ({ traceId: s.traceId, spanId: s.spanId, traceFlags: s.traceFlags, traceState: s.traceState ? { serialize: () => s.traceState } : undefined }),
    parentSpanContext: s.parent ? { traceId: s.traceId, spanId: s.parent.spanId, traceFlags: 1, isRemote: s.parent.isRemote } : undefined,
    name: s.name,
    kind: s.kind,
    startTime: s.startTime,
    endTime: s.endTime,
    attributes: s.attributes,
    droppedAttributesCount: s.droppedAttributesCount,
    events: s.events,
    links: s.links.map((l) => ({ context: { traceId: l.traceId, spanId: l.spanId, traceFlags: l.traceFlags, isRemote: l.isRemote }, attributes: l.attributes, droppedAttributesCount: l.droppedAttributesCount })),
    droppedEventsCount: s.droppedEventsCount,
    droppedLinksCount: s.droppedLinksCount,
    status: s.status,
    resource,
    instrumentationScope: scope,
    duration: [0, 0],
    ended: true,
  }));
}

function expectedTraces(spans: SpanIn[], resource: { attributes: Record<string, unknown>; schemaUrl: string }, scope: { name: string; version: string; schemaUrl: string }): TracesData {
  if (spans.length === 0) return { resourceSpans: [] };
  const flags = (tf: number, remote: boolean | undefined) => (tf & 0xff) | 0x100 | (remote ? 0x200 : 0);
  return {
    resourceSpans: [
      {
        resource: { attributes: attrsModel(resource.attributes), droppedAttributesCount: 0 },
        schemaUrl: resource.schemaUrl,
        scopeSpans: [
          {
            scope: { name: scope.name, version: scope.version, attributes: [], droppedAttributesCount: 0 },
            schemaUrl: scope.schemaUrl,
            spans: spans.map((s) => ({
              traceId: bytes(s.traceId),
              spanId: bytes(s.spanId),
              traceState: s.traceState,
              parentSpanId: s.parent ? bytes(s.parent.spanId) : EMPTY_BYTES,
              flags: flags(s.traceFlags, s.parent?.isRemote),
              name: s.name,
              kind: s.kind + 1,
              startTimeUnixNano: nanos(s.startTime),
              endTimeUnixNano: nanos(s.endTime),
              attributes: attrsModel(s.attributes),
              droppedAttributesCount: s.droppedAttributesCount,
              events: s.events.map((e) => ({ timeUnixNano: nanos(e.time), name: e.name, attributes: attrsModel(e.attributes), droppedAttributesCount: e.droppedAttributesCount })),
              droppedEventsCount: s.droppedEventsCount,
              links: s.links.map((l) => ({
                traceId: bytes(l.traceId),
                spanId: bytes(l.spanId),
                traceState: '',
                attributes: attrsModel(l.attributes),
                droppedAttributesCount: l.droppedAttributesCount,
                flags: flags(l.traceFlags, l.isRemote),
              })),
              droppedLinksCount: s.droppedLinksCount,
              status: { code: s.status.code, message: s.status.message ?? '' },
            })),
          },
        ],
      },
    ],
  };
}

test('SDK ProtobufTraceSerializer → decodeTraces = what the SDK was given (property)', () => {
  fc.assert(
    fc.property(fc.array(spanArb, { maxLength: 4 }), resourceArb, scopeArb, (spans, resource, scope) => {
      const bytes = ProtobufTraceSerializer.serializeRequest(sdkSpans(spans, resource, scope) as never)!;
      assert.deepStrictEqual(decodeTraces(bytes), expectedTraces(spans, resource, scope));
    }),
    RUNS,
  );
});

test('SDK JsonTraceSerializer → decodeJson = what the SDK was given (property)', () => {
  fc.assert(
    fc.property(fc.array(spanArb, { maxLength: 4 }), resourceArb, scopeArb, (spans, resource, scope) => {
      const text = JsonTraceSerializer.serializeRequest(sdkSpans(spans, resource, scope) as never)!;
      const got = decodeJson('traces', text);
      // span and link flags included: the JSON path writes them as the protobuf path does
      assert.deepStrictEqual(got, expectedTraces(spans, resource, scope));
    }),
    RUNS,
  );
});

// ------------------------------------------------------------------ logs

const bodyArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(undefined),
  prim,
  fc.array(prim, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), prim, { maxKeys: 3, noNullPrototype: true }),
  fc.uint8Array({ maxLength: 6 }),
);
const logArb = fc.record(
  {
    hrTime,
    hrTimeObserved: hrTime,
    ctx: fc.option(fc.record({ traceId: hex(16), spanId: hex(8), traceFlags: fc.integer({ min: 0, max: 255 }) }), { nil: undefined }),
    severityNumber: fc.integer({ min: 0, max: 24 }),
    severityText: fc.option(fc.string({ maxLength: 6 }), { nil: undefined }),
    body: bodyArb,
    attributes: attrs,
    droppedAttributesCount: fc.integer({ min: 0, max: 9 }),
    eventName: fc.option(fc.string({ maxLength: 6 }), { nil: undefined }),
  },
  { noNullPrototype: true },
);
type LogIn = typeof logArb extends fc.Arbitrary<infer T> ? T : never;

function sdkLogs(logs: LogIn[], resource: { attributes: Record<string, unknown>; schemaUrl: string }, scope: { name: string; version: string; schemaUrl: string }) {
  return logs.map((l) => ({
    hrTime: l.hrTime,
    hrTimeObserved: l.hrTimeObserved,
    spanContext: l.ctx,
    severityNumber: l.severityNumber,
    severityText: l.severityText,
    body: l.body,
    attributes: l.attributes,
    droppedAttributesCount: l.droppedAttributesCount,
    eventName: l.eventName,
    resource,
    instrumentationScope: scope,
  }));
}

function expectedLogs(logs: LogIn[], resource: { attributes: Record<string, unknown>; schemaUrl: string }, scope: { name: string; version: string; schemaUrl: string }): LogsData {
  if (logs.length === 0) return { resourceLogs: [] };
  return {
    resourceLogs: [
      {
        resource: { attributes: attrsModel(resource.attributes), droppedAttributesCount: 0 },
        schemaUrl: resource.schemaUrl,
        scopeLogs: [
          {
            scope: { name: scope.name, version: scope.version, attributes: [], droppedAttributesCount: 0 },
            schemaUrl: scope.schemaUrl,
            logRecords: logs.map((l) => ({
              timeUnixNano: nanos(l.hrTime),
              observedTimeUnixNano: nanos(l.hrTimeObserved),
              severityNumber: l.severityNumber,
              severityText: l.severityText ?? '',
              body: toModel(l.body),
              attributes: attrsModel(l.attributes),
              droppedAttributesCount: l.droppedAttributesCount,
              flags: l.ctx?.traceFlags ?? 0,
              traceId: l.ctx ? bytes(l.ctx.traceId) : EMPTY_BYTES,
              spanId: l.ctx ? bytes(l.ctx.spanId) : EMPTY_BYTES,
              eventName: l.eventName ?? '',
            })),
          },
        ],
      },
    ],
  };
}

test('SDK ProtobufLogsSerializer → decodeLogs = what the SDK was given (property)', () => {
  fc.assert(
    fc.property(fc.array(logArb, { maxLength: 4 }), resourceArb, scopeArb, (logs, resource, scope) => {
      const bytes = ProtobufLogsSerializer.serializeRequest(sdkLogs(logs, resource, scope) as never)!;
      assert.deepStrictEqual(decodeLogs(bytes), expectedLogs(logs, resource, scope));
    }),
    RUNS,
  );
});

test('SDK JsonLogsSerializer → decodeJson = what the SDK was given (property)', () => {
  fc.assert(
    fc.property(fc.array(logArb, { maxLength: 4 }), resourceArb, scopeArb, (logs, resource, scope) => {
      const text = JsonLogsSerializer.serializeRequest(sdkLogs(logs, resource, scope) as never)!;
      assert.deepStrictEqual(decodeJson('logs', text), expectedLogs(logs, resource, scope));
    }),
    RUNS,
  );
});

// ------------------------------------------------------------------ metrics

// sdk-metrics enums (DataPointType, AggregationTemporality) and api ValueType, by value.
const DPT = { HISTOGRAM: 0, EXPONENTIAL_HISTOGRAM: 1, GAUGE: 2, SUM: 3 } as const;
const sdkTemporality = fc.integer({ min: 0, max: 1 }); // DELTA 0, CUMULATIVE 1 → OTLP 1, 2
const count = fc.integer({ min: 0, max: 2 ** 40 });
const pointBase = { startTime: hrTime, endTime: hrTime, attributes: attrs };
const metricArb = fc.oneof(
  fc.record({
    kind: fc.constantFrom(DPT.GAUGE, DPT.SUM),
    name: fc.string({ maxLength: 8 }),
    description: fc.string({ maxLength: 8 }),
    unit: fc.string({ maxLength: 4 }),
    valueType: fc.integer({ min: 0, max: 1 }), // INT 0, DOUBLE 1
    temporality: sdkTemporality,
    isMonotonic: fc.boolean(),
    points: fc.array(fc.record({ ...pointBase, value: fc.integer({ min: -(2 ** 31), max: 2 ** 31 }) }), { maxLength: 3 }),
  }),
  fc.record({
    kind: fc.constant(DPT.HISTOGRAM),
    name: fc.string({ maxLength: 8 }),
    description: fc.constant(''),
    unit: fc.constant(''),
    valueType: fc.constant(1),
    temporality: sdkTemporality,
    isMonotonic: fc.constant(false),
    points: fc.array(
      fc.record({
        ...pointBase,
        value: fc.record({
          count,
          sum: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: undefined }),
          min: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: undefined }),
          max: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: undefined }),
          buckets: fc.record({ boundaries: fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 3 }), counts: fc.array(count, { maxLength: 4 }) }),
        }),
      }),
      { maxLength: 3 },
    ),
  }),
  fc.record({
    kind: fc.constant(DPT.EXPONENTIAL_HISTOGRAM),
    name: fc.string({ maxLength: 8 }),
    description: fc.constant(''),
    unit: fc.constant(''),
    valueType: fc.constant(1),
    temporality: sdkTemporality,
    isMonotonic: fc.constant(false),
    points: fc.array(
      fc.record({
        ...pointBase,
        value: fc.record({
          count,
          sum: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: undefined }),
          min: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: undefined }),
          max: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: undefined }),
          scale: fc.integer({ min: -10, max: 20 }),
          zeroCount: count,
          positive: fc.record({ offset: fc.integer({ min: -1000, max: 1000 }), bucketCounts: fc.array(count, { maxLength: 4 }) }),
          negative: fc.record({ offset: fc.integer({ min: -1000, max: 1000 }), bucketCounts: fc.array(count, { maxLength: 4 }) }),
        }),
      }),
      { maxLength: 3 },
    ),
  }),
);
type MetricIn = typeof metricArb extends fc.Arbitrary<infer T> ? T : never;

function sdkMetrics(ms: MetricIn[], resource: { attributes: Record<string, unknown>; schemaUrl: string }, scope: { name: string; version: string; schemaUrl: string }) {
  return {
    resource,
    scopeMetrics: [
      {
        scope,
        metrics: ms.map((m) => ({
          descriptor: { name: m.name, description: m.description, unit: m.unit, valueType: m.valueType, type: 'COUNTER' },
          dataPointType: m.kind,
          aggregationTemporality: m.temporality,
          isMonotonic: m.isMonotonic,
          dataPoints: m.points,
        })),
      },
    ],
  };
}

function expectedMetrics(ms: MetricIn[], resource: { attributes: Record<string, unknown>; schemaUrl: string }, scope: { name: string; version: string; schemaUrl: string }): MetricsData {
  const base = (p: { startTime: [number, number]; endTime: [number, number]; attributes: Record<string, unknown> }) => ({
    attributes: attrsModel(p.attributes),
    startTimeUnixNano: nanos(p.startTime),
    timeUnixNano: nanos(p.endTime),
  });
  const metrics: Metric[] = ms.map((m) => {
    const head = { name: m.name, description: m.description, unit: m.unit, metadata: [] };
    const temporality = m.temporality + 1;
    if (m.kind === DPT.GAUGE || m.kind === DPT.SUM) {
      const dataPoints = (m.points as { startTime: [number, number]; endTime: [number, number]; attributes: Record<string, unknown>; value: number }[]).map((p) => ({
        ...base(p),
        value: m.valueType === 0 ? BigInt(p.value) : p.value,
        exemplars: [],
        flags: 0,
      }));
      return m.kind === DPT.GAUGE
        ? { ...head, data: { type: 'gauge', dataPoints } }
        : { ...head, data: { type: 'sum', dataPoints, aggregationTemporality: temporality, isMonotonic: m.isMonotonic } };
    }
    if (m.kind === DPT.HISTOGRAM) {
      type H = { count: number; sum?: number; min?: number; max?: number; buckets: { boundaries: number[]; counts: number[] } };
      return {
        ...head,
        data: {
          type: 'histogram',
          aggregationTemporality: temporality,
          dataPoints: (m.points as { startTime: [number, number]; endTime: [number, number]; attributes: Record<string, unknown>; value: H }[]).map((p) => ({
            ...base(p),
            count: BigInt(p.value.count),
            sum: p.value.sum,
            bucketCounts: p.value.buckets.counts.map(BigInt),
            explicitBounds: p.value.buckets.boundaries,
            exemplars: [],
            flags: 0,
            min: p.value.min,
            max: p.value.max,
          })),
        },
      };
    }
    type E = { count: number; sum?: number; min?: number; max?: number; scale: number; zeroCount: number; positive: { offset: number; bucketCounts: number[] }; negative: { offset: number; bucketCounts: number[] } };
    return {
      ...head,
      data: {
        type: 'exponentialHistogram',
        aggregationTemporality: temporality,
        dataPoints: (m.points as { startTime: [number, number]; endTime: [number, number]; attributes: Record<string, unknown>; value: E }[]).map((p) => ({
          ...base(p),
          count: BigInt(p.value.count),
          sum: p.value.sum,
          scale: p.value.scale,
          zeroCount: BigInt(p.value.zeroCount),
          positive: { offset: p.value.positive.offset, bucketCounts: p.value.positive.bucketCounts.map(BigInt) },
          negative: { offset: p.value.negative.offset, bucketCounts: p.value.negative.bucketCounts.map(BigInt) },
          flags: 0,
          exemplars: [],
          min: p.value.min,
          max: p.value.max,
          zeroThreshold: 0,
        })),
      },
    };
  }) as Metric[];
  return {
    resourceMetrics: [
      {
        resource: { attributes: attrsModel(resource.attributes), droppedAttributesCount: 0 },
        schemaUrl: resource.schemaUrl,
        scopeMetrics: [{ scope: { name: scope.name, version: scope.version, attributes: [], droppedAttributesCount: 0 }, schemaUrl: scope.schemaUrl, metrics }],
      },
    ],
  };
}

test('SDK ProtobufMetricsSerializer → decodeMetrics = what the SDK was given, gauge/sum/histogram/exp-histogram (property)', () => {
  fc.assert(
    fc.property(fc.array(metricArb, { maxLength: 4 }), resourceArb, scopeArb, (ms, resource, scope) => {
      const bytes = ProtobufMetricsSerializer.serializeRequest(sdkMetrics(ms, resource, scope) as never)!;
      assert.deepStrictEqual(decodeMetrics(bytes), expectedMetrics(ms, resource, scope));
    }),
    RUNS,
  );
});

test('SDK JsonMetricsSerializer → decodeJson = what the SDK was given (property)', () => {
  fc.assert(
    fc.property(fc.array(metricArb, { maxLength: 4 }), resourceArb, scopeArb, (ms, resource, scope) => {
      const text = JsonMetricsSerializer.serializeRequest(sdkMetrics(ms, resource, scope) as never)!;
      assert.deepStrictEqual(decodeJson('metrics', text), expectedMetrics(ms, resource, scope));
    }),
    RUNS,
  );
});
