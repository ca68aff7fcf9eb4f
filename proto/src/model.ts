// The in-memory telemetry model shared by decoders, encoders, the agent and the collector.
// It mirrors OTLP v1 (resource → scope → items) with camelCase names as in OTLP/JSON, so a
// decoder produces it once and no component re-parses bytes.
//
// Value conventions (chosen for wire fidelity):
// - int64 values (AnyValue int, NumberDataPoint asInt, counts that may exceed 2^53) are bigint;
//   doubles are number. So `1n` (int) and `1` (double) stay distinct through every codec.
// - Timestamps are bigint nanoseconds since the Unix epoch; 0n means unset.
// - Ids are Uint8Array: traceId 16 bytes, spanId 8 bytes; an empty array means unset.
// - Counts that fit in 32 bits (dropped*Count, flags) are number.

export type AnyValue =
  | string
  | boolean
  | number // double
  | bigint // int64
  | Uint8Array // bytes
  | AnyValue[] // array_value
  | KeyValueList // kvlist_value
  | null; // empty AnyValue

/** Wrapper class so a kvlist is distinguishable from an array at runtime. */
export class KeyValueList {
  constructor(public values: KeyValue[]) {}
}

/**
 * Decoders hand out one object for equal attributes with a scalar value (within a batch, and for
 * OTLP across batches): replace a KeyValue in its list, never assign to its fields.
 */
export interface KeyValue {
  key: string;
  value: AnyValue;
}

export interface Resource {
  attributes: KeyValue[];
  droppedAttributesCount: number;
}

export interface InstrumentationScope {
  name: string;
  version: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
}

// ---------------------------------------------------------------- traces

export const enum SpanKind {
  Unspecified = 0,
  Internal = 1,
  Server = 2,
  Client = 3,
  Producer = 4,
  Consumer = 5,
}

export const enum StatusCode {
  Unset = 0,
  Ok = 1,
  Error = 2,
}

export interface Status {
  code: StatusCode;
  message: string;
}

export interface SpanEvent {
  timeUnixNano: bigint;
  name: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
}

export interface SpanLink {
  traceId: Uint8Array;
  spanId: Uint8Array;
  traceState: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  flags: number;
}

export interface Span {
  traceId: Uint8Array;
  spanId: Uint8Array;
  traceState: string;
  parentSpanId: Uint8Array;
  flags: number;
  name: string;
  kind: SpanKind;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  events: SpanEvent[];
  droppedEventsCount: number;
  links: SpanLink[];
  droppedLinksCount: number;
  status: Status;
}

export interface ScopeSpans {
  scope: InstrumentationScope;
  spans: Span[];
  schemaUrl: string;
}

export interface ResourceSpans {
  resource: Resource;
  scopeSpans: ScopeSpans[];
  schemaUrl: string;
}

export interface TracesData {
  resourceSpans: ResourceSpans[];
}

// ---------------------------------------------------------------- metrics

export const enum AggregationTemporality {
  Unspecified = 0,
  Delta = 1,
  Cumulative = 2,
}

export interface Exemplar {
  filteredAttributes: KeyValue[];
  timeUnixNano: bigint;
  value: number | bigint; // double or int64
  spanId: Uint8Array;
  traceId: Uint8Array;
}

export interface NumberDataPoint {
  attributes: KeyValue[];
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  value: number | bigint; // asDouble (number) or asInt (bigint)
  exemplars: Exemplar[];
  flags: number;
}

export interface HistogramDataPoint {
  attributes: KeyValue[];
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  count: bigint;
  sum?: number;
  bucketCounts: bigint[];
  explicitBounds: number[];
  exemplars: Exemplar[];
  flags: number;
  min?: number;
  max?: number;
}

export interface ExponentialHistogramBuckets {
  offset: number;
  bucketCounts: bigint[];
}

export interface ExponentialHistogramDataPoint {
  attributes: KeyValue[];
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  count: bigint;
  sum?: number;
  scale: number;
  zeroCount: bigint;
  positive: ExponentialHistogramBuckets;
  negative: ExponentialHistogramBuckets;
  flags: number;
  exemplars: Exemplar[];
  min?: number;
  max?: number;
  zeroThreshold: number;
}

export interface ValueAtQuantile {
  quantile: number;
  value: number;
}

export interface SummaryDataPoint {
  attributes: KeyValue[];
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  count: bigint;
  sum: number;
  quantileValues: ValueAtQuantile[];
  flags: number;
}

export type MetricData =
  | { type: 'gauge'; dataPoints: NumberDataPoint[] }
  | { type: 'sum'; dataPoints: NumberDataPoint[]; aggregationTemporality: AggregationTemporality; isMonotonic: boolean }
  | { type: 'histogram'; dataPoints: HistogramDataPoint[]; aggregationTemporality: AggregationTemporality }
  | {
      type: 'exponentialHistogram';
      dataPoints: ExponentialHistogramDataPoint[];
      aggregationTemporality: AggregationTemporality;
    }
  | { type: 'summary'; dataPoints: SummaryDataPoint[] }
  | { type: 'empty' }; // a Metric with no data field set

export interface Metric {
  name: string;
  description: string;
  unit: string;
  data: MetricData;
  metadata: KeyValue[];
}

export interface ScopeMetrics {
  scope: InstrumentationScope;
  metrics: Metric[];
  schemaUrl: string;
}

export interface ResourceMetrics {
  resource: Resource;
  scopeMetrics: ScopeMetrics[];
  schemaUrl: string;
}

export interface MetricsData {
  resourceMetrics: ResourceMetrics[];
}

// ---------------------------------------------------------------- logs

export interface LogRecord {
  timeUnixNano: bigint;
  observedTimeUnixNano: bigint;
  severityNumber: number;
  severityText: string;
  body: AnyValue;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  flags: number;
  traceId: Uint8Array;
  spanId: Uint8Array;
  eventName: string;
}

export interface ScopeLogs {
  scope: InstrumentationScope;
  logRecords: LogRecord[];
  schemaUrl: string;
}

export interface ResourceLogs {
  resource: Resource;
  scopeLogs: ScopeLogs[];
  schemaUrl: string;
}

export interface LogsData {
  resourceLogs: ResourceLogs[];
}

export type SignalType = 'traces' | 'metrics' | 'logs';

export interface SignalData {
  traces: TracesData;
  metrics: MetricsData;
  logs: LogsData;
}

// ---------------------------------------------------------------- helpers

export const EMPTY_BYTES = new Uint8Array(0);

// Decoding is bound by the garbage collector (a scavenge copies the half-built batch), so both
// decoders share the common span defaults instead of allocating them per span: no events, no
// links, unset status. They are frozen: a component that modified one in place would fail loudly
// rather than change every span (components replace these fields; none mutates them).
export const NO_EVENTS = Object.freeze([]) as unknown as SpanEvent[];
export const NO_LINKS = Object.freeze([]) as unknown as SpanLink[];
export const STATUS_UNSET: Status = Object.freeze({ code: 0, message: '' });

export function emptyResource(): Resource {
  return { attributes: [], droppedAttributesCount: 0 };
}

export function emptyScope(): InstrumentationScope {
  return { name: '', version: '', attributes: [], droppedAttributesCount: 0 };
}

/** Number of items (spans, data points, log records) in a payload: what rate limits and batchers count. */
export function countSpans(d: TracesData): number {
  let n = 0;
  for (const rs of d.resourceSpans) for (const ss of rs.scopeSpans) n += ss.spans.length;
  return n;
}

export function countLogRecords(d: LogsData): number {
  let n = 0;
  for (const rl of d.resourceLogs) for (const sl of rl.scopeLogs) n += sl.logRecords.length;
  return n;
}

export function countDataPoints(d: MetricsData): number {
  let n = 0;
  for (const rm of d.resourceMetrics)
    for (const sm of rm.scopeMetrics)
      for (const m of sm.metrics) if (m.data.type !== 'empty') n += m.data.dataPoints.length;
  return n;
}

export function countItems<S extends SignalType>(signal: S, d: SignalData[S]): number {
  if (signal === 'traces') return countSpans(d as TracesData);
  if (signal === 'metrics') return countDataPoints(d as MetricsData);
  return countLogRecords(d as LogsData);
}

export function getAttr(attrs: KeyValue[], key: string): AnyValue | undefined {
  for (let i = 0; i < attrs.length; i++) if (attrs[i].key === key) return attrs[i].value;
  return undefined;
}
