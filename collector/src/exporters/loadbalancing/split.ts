// Splits one incoming batch into one batch per ring member. Trace-id routing splits at span (or
// log record) granularity; service / resource routing moves whole ResourceX blocks.
import type {
  AnyValue, KeyValue, LogRecord, LogsData, MetricsData, Resource, ResourceLogs, ScopeLogs, SignalData, SignalType, TracesData,
} from '../../../../proto/src/model.ts';
import { KeyValueList } from '../../../../proto/src/model.ts';
import { TracesBuilder } from '../../processors/tail_sampling/traces.ts';
import { hashBytes, hashString, type HashRing } from './ring.ts';

export type RoutingKey = 'traceID' | 'service' | 'resource';

function valueString(v: AnyValue): string {
  if (v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (v instanceof KeyValueList) return `{${canonicalAttrs(v.values)}}`;
  return `[${v.map(valueString).join(',')}]`;
}

function canonicalAttrs(attrs: KeyValue[]): string {
  return attrs
    .map((kv) => `${kv.key}=${valueString(kv.value)}`)
    .sort()
    .join('\u0001');
}

/** The ring hash of a resource under a service / resource routing key. */
export function resourceHash(res: Resource, key: 'service' | 'resource'): number {
  if (key === 'service') {
    for (const kv of res.attributes) if (kv.key === 'service.name') return hashString(valueString(kv.value));
    return hashString('');
  }
  return hashString(canonicalAttrs(res.attributes));
}

/** Result: parts[i] is the batch for ring.members[i] (undefined when it gets nothing). */
export type Parts<S extends SignalType> = Array<SignalData[S] | undefined>;

function splitTraces(d: TracesData, ring: HashRing, key: RoutingKey): Parts<'traces'> {
  const n = ring.size;
  const parts: Parts<'traces'> = new Array(n);
  if (key === 'traceID') {
    const builders: Array<TracesBuilder | undefined> = new Array(n);
    for (const rs of d.resourceSpans)
      for (const ss of rs.scopeSpans)
        for (const sp of ss.spans) {
          const i = ring.ownerIndexOfHash(hashBytes(sp.traceId));
          (builders[i] ??= new TracesBuilder()).add(rs, ss, sp);
        }
    for (let i = 0; i < n; i++) if (builders[i]) parts[i] = builders[i]!.take();
    return parts;
  }
  for (const rs of d.resourceSpans) {
    const i = ring.ownerIndexOfHash(resourceHash(rs.resource, key));
    (parts[i] ??= { resourceSpans: [] }).resourceSpans.push(rs);
  }
  return parts;
}

function splitMetrics(d: MetricsData, ring: HashRing, key: RoutingKey): Parts<'metrics'> {
  const parts: Parts<'metrics'> = new Array(ring.size);
  // Metrics carry no trace id: traceID routing falls back to the service.
  const k = key === 'resource' ? 'resource' : 'service';
  for (const rm of d.resourceMetrics) {
    const i = ring.ownerIndexOfHash(resourceHash(rm.resource, k));
    (parts[i] ??= { resourceMetrics: [] }).resourceMetrics.push(rm);
  }
  return parts;
}

class LogsBuilder {
  private readonly resources = new Map<ResourceLogs, ResourceLogs>();
  private readonly scopes = new Map<ScopeLogs, ScopeLogs>();
  readonly out: LogsData = { resourceLogs: [] };
  add(rl: ResourceLogs, sl: ScopeLogs, r: LogRecord): void {
    let o = this.scopes.get(sl);
    if (o === undefined) {
      let orl = this.resources.get(rl);
      if (orl === undefined) {
        orl = { resource: rl.resource, scopeLogs: [], schemaUrl: rl.schemaUrl };
        this.resources.set(rl, orl);
        this.out.resourceLogs.push(orl);
      }
      o = { scope: sl.scope, logRecords: [], schemaUrl: sl.schemaUrl };
      this.scopes.set(sl, o);
      orl.scopeLogs.push(o);
    }
    o.logRecords.push(r);
  }
}

function splitLogs(d: LogsData, ring: HashRing, key: RoutingKey): Parts<'logs'> {
  const n = ring.size;
  const parts: Parts<'logs'> = new Array(n);
  if (key === 'traceID') {
    const builders: Array<LogsBuilder | undefined> = new Array(n);
    for (const rl of d.resourceLogs) {
      let resIdx = -1;
      for (const sl of rl.scopeLogs)
        for (const r of sl.logRecords) {
          let i: number;
          if (r.traceId.length) i = ring.ownerIndexOfHash(hashBytes(r.traceId));
          else {
            // Records outside any trace stay together by service.
            if (resIdx < 0) resIdx = ring.ownerIndexOfHash(resourceHash(rl.resource, 'service'));
            i = resIdx;
          }
          (builders[i] ??= new LogsBuilder()).add(rl, sl, r);
        }
    }
    for (let i = 0; i < n; i++) if (builders[i]) parts[i] = builders[i]!.out;
    return parts;
  }
  for (const rl of d.resourceLogs) {
    const i = ring.ownerIndexOfHash(resourceHash(rl.resource, key));
    (parts[i] ??= { resourceLogs: [] }).resourceLogs.push(rl);
  }
  return parts;
}

export function splitBatch<S extends SignalType>(signal: S, d: SignalData[S], ring: HashRing, key: RoutingKey): Parts<S> {
  if (signal === 'traces') return splitTraces(d as TracesData, ring, key) as Parts<S>;
  if (signal === 'metrics') return splitMetrics(d as MetricsData, ring, key) as Parts<S>;
  return splitLogs(d as LogsData, ring, key) as Parts<S>;
}
