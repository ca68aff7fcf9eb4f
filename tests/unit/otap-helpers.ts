// Shared by the otap-*.test.ts files: fast-check arbitraries for the telemetry model, a
// canonical form for comparing what went in with what came out of an OTAP round trip, and a raw
// OTAP logs stream for driving a receiver batch by batch.
import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { HpackEncoder } from '../../proto/src/otap/hpack.ts';
import { decodeBatchStatus, encodeBatchArrowRecords, type BatchArrowRecords, type BatchStatus } from '../../proto/src/otap/messages.ts';
import { OTAP_METHODS } from '../../proto/src/grpc/otap-server.ts';
import {
  KeyValueList,
  type AnyValue,
  type KeyValue,
  type LogsData,
  type MetricData,
  type MetricsData,
  type Span,
  type TracesData,
} from '../../proto/src/model.ts';

const str = fc.oneof(
  { weight: 5, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom('', 'ünïcødé', '日本語', 'emoji 🚀', 'a'.repeat(300)) },
);
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const i64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const ts = fc.bigInt({ min: 0n, max: 2n ** 62n });
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const optBytes = (n: number) => fc.oneof(fc.constant(new Uint8Array(0)), bytes(n));

const anyValue: fc.Arbitrary<AnyValue> = fc.letrec<{ v: AnyValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    str,
    fc.boolean(),
    fc.double(),
    i64,
    fc.uint8Array({ maxLength: 8 }),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 3 }),
    fc
      .uniqueArray(fc.record({ key: str, value: tie('v') }), { maxLength: 3, selector: (kv) => kv.key })
      .map((kvs) => new KeyValueList(kvs)),
  ),
})).v;

/** Attribute lists with unique keys (OTAP, like pdata maps, keys attributes by name). */
export const attrs: fc.Arbitrary<KeyValue[]> = fc.uniqueArray(fc.record({ key: str, value: anyValue }), {
  maxLength: 5,
  selector: (kv) => kv.key,
});

const resource = fc.record({ attributes: attrs, droppedAttributesCount: u32 });
const scope = fc.record({ name: str, version: str, attributes: attrs, droppedAttributesCount: u32 });

const span = fc.record({
  traceId: bytes(16),
  spanId: bytes(8),
  traceState: str,
  parentSpanId: optBytes(8),
  flags: u32,
  name: str,
  kind: fc.integer({ min: 0, max: 5 }),
  startTimeUnixNano: ts,
  endTimeUnixNano: ts,
  attributes: attrs,
  droppedAttributesCount: u32,
  events: fc.array(fc.record({ timeUnixNano: ts, name: str, attributes: attrs, droppedAttributesCount: u32 }), { maxLength: 3 }),
  droppedEventsCount: u32,
  links: fc.array(
    fc.record({ traceId: bytes(16), spanId: bytes(8), traceState: str, attributes: attrs, droppedAttributesCount: u32, flags: u32 }),
    { maxLength: 2 },
  ),
  droppedLinksCount: u32,
  status: fc.record({ code: fc.integer({ min: 0, max: 2 }), message: str }),
});

export const traces: fc.Arbitrary<TracesData> = fc.record({
  resourceSpans: fc.array(
    fc.record({
      resource,
      scopeSpans: fc.array(fc.record({ scope, spans: fc.array(span, { minLength: 1, maxLength: 4 }), schemaUrl: str }), {
        minLength: 1,
        maxLength: 2,
      }),
      schemaUrl: str,
    }),
    { maxLength: 3 },
  ),
}) as fc.Arbitrary<TracesData>;

const logRecord = fc.record({
  timeUnixNano: ts,
  observedTimeUnixNano: ts,
  severityNumber: fc.integer({ min: 0, max: 24 }),
  severityText: str,
  body: anyValue,
  attributes: attrs,
  droppedAttributesCount: u32,
  flags: u32,
  traceId: optBytes(16),
  spanId: optBytes(8),
  eventName: str,
});

export const logs: fc.Arbitrary<LogsData> = fc.record({
  resourceLogs: fc.array(
    fc.record({
      resource,
      scopeLogs: fc.array(fc.record({ scope, logRecords: fc.array(logRecord, { minLength: 1, maxLength: 4 }), schemaUrl: str }), {
        minLength: 1,
        maxLength: 2,
      }),
      schemaUrl: str,
    }),
    { maxLength: 3 },
  ),
});

const exemplar = fc.record({
  filteredAttributes: attrs,
  timeUnixNano: ts,
  value: fc.oneof(fc.double(), i64),
  spanId: optBytes(8),
  traceId: optBytes(16),
});
const numberPoint = fc.record({
  attributes: attrs,
  startTimeUnixNano: ts,
  timeUnixNano: ts,
  value: fc.oneof(fc.double(), i64),
  exemplars: fc.array(exemplar, { maxLength: 2 }),
  flags: u32,
});
const optDouble = fc.option(fc.double(), { nil: undefined });
const histogramPoint = fc
  .record({
    attributes: attrs,
    startTimeUnixNano: ts,
    timeUnixNano: ts,
    count: u64,
    sum: optDouble,
    bucketCounts: fc.array(u64, { maxLength: 4 }),
    explicitBounds: fc.array(fc.double(), { maxLength: 3 }),
    exemplars: fc.array(exemplar, { maxLength: 2 }),
    flags: u32,
    min: optDouble,
    max: optDouble,
  })
  .map(dropUndefined);
const buckets = fc.record({ offset: fc.integer({ min: -1000, max: 1000 }), bucketCounts: fc.array(u64, { maxLength: 4 }) });
const expPoint = fc
  .record({
    attributes: attrs,
    startTimeUnixNano: ts,
    timeUnixNano: ts,
    count: u64,
    sum: optDouble,
    scale: fc.integer({ min: -10, max: 20 }),
    zeroCount: u64,
    positive: buckets,
    negative: buckets,
    flags: u32,
    exemplars: fc.array(exemplar, { maxLength: 2 }),
    min: optDouble,
    max: optDouble,
    zeroThreshold: fc.double(),
  })
  .map(dropUndefined);
const summaryPoint = fc.record({
  attributes: attrs,
  startTimeUnixNano: ts,
  timeUnixNano: ts,
  count: u64,
  sum: fc.double(),
  quantileValues: fc.array(fc.record({ quantile: fc.double(), value: fc.double() }), { maxLength: 3 }),
  flags: u32,
});

function dropUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

const temporality = fc.integer({ min: 0, max: 2 });
const metricData: fc.Arbitrary<MetricData> = fc.oneof(
  fc.record({ type: fc.constant('gauge' as const), dataPoints: fc.array(numberPoint, { maxLength: 3 }) }),
  fc.record({
    type: fc.constant('sum' as const),
    dataPoints: fc.array(numberPoint, { maxLength: 3 }),
    aggregationTemporality: temporality,
    isMonotonic: fc.boolean(),
  }),
  fc.record({ type: fc.constant('histogram' as const), dataPoints: fc.array(histogramPoint, { maxLength: 3 }), aggregationTemporality: temporality }),
  fc.record({
    type: fc.constant('exponentialHistogram' as const),
    dataPoints: fc.array(expPoint, { maxLength: 3 }),
    aggregationTemporality: temporality,
  }),
  fc.record({ type: fc.constant('summary' as const), dataPoints: fc.array(summaryPoint, { maxLength: 3 }) }),
  fc.constant({ type: 'empty' as const }),
) as fc.Arbitrary<MetricData>;

const metric = fc.record({ name: str, description: str, unit: str, data: metricData, metadata: attrs });

export const metrics: fc.Arbitrary<MetricsData> = fc.record({
  resourceMetrics: fc.array(
    fc.record({
      resource,
      scopeMetrics: fc.array(fc.record({ scope, metrics: fc.array(metric, { minLength: 1, maxLength: 4 }), schemaUrl: str }), {
        minLength: 1,
        maxLength: 2,
      }),
      schemaUrl: str,
    }),
    { maxLength: 3 },
  ),
});

// ------------------------------------------------------------------ canonical form

function sortKey(x: unknown): string {
  return JSON.stringify(canon(x));
}

/**
 * JSON-able canonical form: bigint → "123n", bytes → hex, -0 and NaN spelled out, attribute lists
 * (and spans, events and links, which OTAP regroups by name and start time / name / trace id)
 * sorted; KeyValueList values keep order.
 */
const GROUP_KEYS = new Set([
  'resourceSpans', 'scopeSpans', 'spans', 'resourceLogs', 'scopeLogs', 'logRecords', 'resourceMetrics', 'scopeMetrics', 'metrics', 'dataPoints',
]);

/** canon() that also ignores the order of resources, scopes, items (the Go encoder sorts them) and kvlist entries. */
export function canonUnordered(x: unknown): unknown {
  return canon(x, '', true);
}

export function canon(x: unknown, parentKey = '', unordered = false): unknown {
  if (typeof x === 'bigint') return `${x}n`;
  if (typeof x === 'number') return Object.is(x, -0) ? '-0' : Number.isNaN(x) ? 'NaN' : !Number.isFinite(x) ? String(x) : x;
  if (x instanceof Uint8Array) return `0x${Buffer.from(x).toString('hex')}`;
  if (x instanceof KeyValueList) {
    const kvs = x.values.map((kv) => ({ key: kv.key, value: canon(kv.value, '', unordered) }));
    // Go decodes CBOR maps into Go maps, so map order does not survive the reference collector.
    if (unordered) kvs.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));
    return { kvlist: kvs };
  }
  if (Array.isArray(x)) {
    const items = x.map((v) => canon(v, '', unordered));
    // spans: OTAP writes a scope's spans grouped by name and start time (order carries no meaning)
    if ((unordered && GROUP_KEYS.has(parentKey)) || parentKey === 'attributes' || parentKey === 'filteredAttributes' || parentKey === 'metadata' || parentKey === 'events' || parentKey === 'links' || parentKey === 'spans') {
      items.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));
    }
    return items;
  }
  if (x && typeof x === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(x).sort()) {
      const v = (x as Record<string, unknown>)[k];
      if (v === undefined) continue;
      o[k] = canon(v, k, unordered);
    }
    return o;
  }
  return x;
}

/**
 * The order OTAP writes a scope's spans in: by name, then by start time, ties as given. (The
 * encoder compares start times to 256 ns; the fixtures' spans start further apart than that.)
 */
export function byNameThenStart(a: Span, b: Span): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.startTimeUnixNano < b.startTimeUnixNano ? -1 : a.startTimeUnixNano > b.startTimeUnixNano ? 1 : 0;
}

/** A raw OTAP logs stream: opening metadata, per-batch HPACK headers, each batch's status, and how the stream ended. */
export function rawLogsStream(addr: string, metadata: Record<string, string> = {}) {
  const client = new grpc.Client(addr, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  const call = client.makeBidiStreamRequest(OTAP_METHODS.logs.path, (b: Buffer) => b, (b: Buffer) => b, md);
  const hpack = new HpackEncoder();
  const statuses: BatchStatus[] = [];
  const waiting = new Map<bigint, (s: BatchStatus) => void>();
  call.on('data', (b: Buffer) => {
    const s = decodeBatchStatus(b);
    statuses.push(s);
    waiting.get(s.batchId)?.(s);
    waiting.delete(s.batchId);
  });
  const ended = new Promise<{ code: number; details: string }>((resolve) => {
    call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
    call.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
  });
  return {
    statuses,
    ended,
    /** Writes the batch (with `headers` HPACK-encoded) and resolves with its status. */
    send(b: BatchArrowRecords, headers?: Record<string, string>): Promise<BatchStatus> {
      const batch = headers ? { ...b, headers: hpack.encode(headers) } : b;
      return new Promise<BatchStatus>((resolve) => {
        waiting.set(b.batchId, resolve);
        call.write(Buffer.from(encodeBatchArrowRecords(batch)));
      });
    },
    close() {
      call.cancel();
      client.close();
    },
  };
}

/** One log record per value, each with the single attribute `key` = that value (new values grow the stream's dictionaries). */
export function logsWithValues(key: string, values: string[]): LogsData {
  const logRecords = values.map((value, i) => ({
    timeUnixNano: BigInt(i + 1), observedTimeUnixNano: 0n, severityNumber: 9, severityText: 'INFO', body: 'msg',
    attributes: [{ key, value }],
    droppedAttributesCount: 0, flags: 0, traceId: new Uint8Array(0), spanId: new Uint8Array(0), eventName: '',
  }));
  return {
    resourceLogs: [{
      resource: { attributes: [], droppedAttributesCount: 0 },
      schemaUrl: '',
      scopeLogs: [{ scope: { name: 's', version: '', attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', logRecords }],
    }],
  };
}
