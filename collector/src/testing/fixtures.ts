// Builders for test and benchmark batches (also used by the bench script), plus a capturing sink.
import { countItems, emptyScope, type KeyValue, type LogsData, type MetricsData, type SignalData, type SignalType, type Span, type TracesData } from '../../../proto/src/model.ts';
import type { Component, Consumer, RequestContext } from '../component/index.ts';
import type { Logger } from '../component/index.ts';
import { silentLogger } from '../../../lib/log.ts';

export function testLogger(): Logger {
  return silentLogger() as unknown as Logger;
}

let idCounter = 1;

export function makeSpan(name = 'op', attrs: KeyValue[] = []): Span {
  const n = idCounter++;
  const traceId = new Uint8Array(16);
  new DataView(traceId.buffer).setUint32(12, n);
  const spanId = new Uint8Array(8);
  new DataView(spanId.buffer).setUint32(4, n);
  return {
    traceId,
    spanId,
    traceState: '',
    parentSpanId: new Uint8Array(0),
    flags: 1,
    name,
    kind: 2,
    startTimeUnixNano: 1_700_000_000_000_000_000n,
    endTimeUnixNano: 1_700_000_000_001_000_000n,
    attributes: attrs,
    droppedAttributesCount: 0,
    events: [],
    droppedEventsCount: 0,
    links: [],
    droppedLinksCount: 0,
    status: { code: 0, message: '' },
  };
}

export function makeTraces(spans: number, resourceAttrs: KeyValue[] = [{ key: 'service.name', value: 'svc' }]): TracesData {
  const list: Span[] = [];
  for (let i = 0; i < spans; i++) list.push(makeSpan(`op-${i}`, [{ key: 'http.route', value: '/x' }]));
  return {
    resourceSpans: [{ resource: { attributes: resourceAttrs, droppedAttributesCount: 0 }, schemaUrl: '', scopeSpans: [{ scope: emptyScope(), schemaUrl: '', spans: list }] }],
  };
}

export function makeGaugeMetrics(points: number, name = 'g', resourceAttrs: KeyValue[] = [{ key: 'service.name', value: 'svc' }]): MetricsData {
  const dps = [];
  for (let i = 0; i < points; i++)
    dps.push({ attributes: [{ key: 'i', value: String(i) }], startTimeUnixNano: 0n, timeUnixNano: BigInt(Date.now()) * 1_000_000n, value: i, exemplars: [], flags: 0 });
  return {
    resourceMetrics: [{ resource: { attributes: resourceAttrs, droppedAttributesCount: 0 }, schemaUrl: '', scopeMetrics: [{ scope: emptyScope(), schemaUrl: '', metrics: [{ name, description: '', unit: '', metadata: [], data: { type: 'gauge', dataPoints: dps } }] }] }],
  };
}

export function makeLogs(records: number): LogsData {
  const lr = [];
  for (let i = 0; i < records; i++)
    lr.push({ timeUnixNano: 1n, observedTimeUnixNano: 1n, severityNumber: 9, severityText: 'INFO', body: `line ${i}`, attributes: [], droppedAttributesCount: 0, flags: 0, traceId: new Uint8Array(0), spanId: new Uint8Array(0), eventName: '' });
  return { resourceLogs: [{ resource: { attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', scopeLogs: [{ scope: emptyScope(), schemaUrl: '', logRecords: lr }] }] };
}

/** A consumer that records what it got; optionally fails with a scripted sequence of errors. */
export class CaptureSink<S extends SignalType = SignalType> implements Consumer<S>, Component {
  readonly batches: Array<{ batch: SignalData[S]; ctx: RequestContext }> = [];
  items = 0;
  failures: unknown[] = [];
  started = false;
  stopped = false;

  constructor(readonly signal: S = 'traces' as S) {}

  async start(): Promise<void> {
    this.started = true;
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
  }

  async consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    const f = this.failures.shift();
    if (f) throw f;
    this.batches.push({ batch, ctx });
    this.items += countItems(this.signal, batch);
  }
}
