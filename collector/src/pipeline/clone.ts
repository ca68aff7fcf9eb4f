// Deep copy of a batch for fan-out to a consumer that mutates data (structuredClone would lose the
// KeyValueList class, so the walk is explicit). Uint8Array ids are immutable by convention and shared.
import { KeyValueList, type AnyValue, type KeyValue, type SignalData, type SignalType, type TracesData, type MetricsData, type LogsData, type Resource, type InstrumentationScope } from '../../../proto/src/model.ts';

function cloneValue(v: AnyValue): AnyValue {
  if (Array.isArray(v)) return v.map(cloneValue);
  if (v instanceof KeyValueList) return new KeyValueList(cloneAttrs(v.values));
  return v;
}

export function cloneAttrs(a: KeyValue[]): KeyValue[] {
  const out = new Array<KeyValue>(a.length);
  for (let i = 0; i < a.length; i++) out[i] = { key: a[i].key, value: cloneValue(a[i].value) };
  return out;
}

const cloneResource = (r: Resource): Resource => ({ attributes: cloneAttrs(r.attributes), droppedAttributesCount: r.droppedAttributesCount });
const cloneScope = (s: InstrumentationScope): InstrumentationScope => ({ ...s, attributes: cloneAttrs(s.attributes) });

function cloneTraces(d: TracesData): TracesData {
  return {
    resourceSpans: d.resourceSpans.map((rs) => ({
      resource: cloneResource(rs.resource),
      schemaUrl: rs.schemaUrl,
      scopeSpans: rs.scopeSpans.map((ss) => ({
        scope: cloneScope(ss.scope),
        schemaUrl: ss.schemaUrl,
        spans: ss.spans.map((s) => ({
          ...s,
          attributes: cloneAttrs(s.attributes),
          events: s.events.map((e) => ({ ...e, attributes: cloneAttrs(e.attributes) })),
          links: s.links.map((l) => ({ ...l, attributes: cloneAttrs(l.attributes) })),
          status: { ...s.status },
        })),
      })),
    })),
  };
}

function cloneMetrics(d: MetricsData): MetricsData {
  return {
    resourceMetrics: d.resourceMetrics.map((rm) => ({
      resource: cloneResource(rm.resource),
      schemaUrl: rm.schemaUrl,
      scopeMetrics: rm.scopeMetrics.map((sm) => ({
        scope: cloneScope(sm.scope),
        schemaUrl: sm.schemaUrl,
        metrics: sm.metrics.map((m) => {
          const data = m.data;
          let nd: typeof data;
          if (data.type === 'empty') nd = data;
          else
            nd = {
              ...data,
              dataPoints: (data.dataPoints as Array<{ attributes: KeyValue[] }>).map((p) => {
                const c: Record<string, unknown> = { ...p, attributes: cloneAttrs(p.attributes) };
                if ('bucketCounts' in p) c.bucketCounts = (p as { bucketCounts: bigint[] }).bucketCounts.slice();
                if ('explicitBounds' in p) c.explicitBounds = (p as { explicitBounds: number[] }).explicitBounds.slice();
                if ('positive' in p) {
                  const e = p as unknown as { positive: { offset: number; bucketCounts: bigint[] }; negative: { offset: number; bucketCounts: bigint[] } };
                  c.positive = { offset: e.positive.offset, bucketCounts: e.positive.bucketCounts.slice() };
                  c.negative = { offset: e.negative.offset, bucketCounts: e.negative.bucketCounts.slice() };
                }
                return c;
              }),
            } as unknown as typeof data;
          return { ...m, metadata: cloneAttrs(m.metadata), data: nd };
        }),
      })),
    })),
  };
}

function cloneLogs(d: LogsData): LogsData {
  return {
    resourceLogs: d.resourceLogs.map((rl) => ({
      resource: cloneResource(rl.resource),
      schemaUrl: rl.schemaUrl,
      scopeLogs: rl.scopeLogs.map((sl) => ({
        scope: cloneScope(sl.scope),
        schemaUrl: sl.schemaUrl,
        logRecords: sl.logRecords.map((r) => ({ ...r, body: cloneValue(r.body), attributes: cloneAttrs(r.attributes) })),
      })),
    })),
  };
}

export function cloneSignal<S extends SignalType>(signal: S, d: SignalData[S]): SignalData[S] {
  if (signal === 'traces') return cloneTraces(d as TracesData) as SignalData[S];
  if (signal === 'metrics') return cloneMetrics(d as MetricsData) as SignalData[S];
  return cloneLogs(d as LogsData) as SignalData[S];
}
