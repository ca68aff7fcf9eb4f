// Hand-built spans and traces for the tail sampling and load-balancing tests and benchmark.
import type { AnyValue, KeyValue, ResourceSpans, Span, TracesData } from '../../../../../proto/src/model.ts';

export function tid(n: number, salt = 0): Uint8Array {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, salt >>> 0);
  dv.setUint32(8, Math.floor(n / 2 ** 32));
  dv.setUint32(12, n >>> 0);
  // Mix so ids are not sequential in the high bytes either (spreads ring / hash positions).
  dv.setUint32(4, Math.imul(n ^ 0x9e3779b9, 0x85ebca6b) >>> 0);
  return b;
}

let spanSeq = 1;
export function sid(): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(4, spanSeq++);
  return b;
}

export function attrs(o: Record<string, AnyValue>): KeyValue[] {
  return Object.entries(o).map(([key, value]) => ({ key, value }));
}

export interface SpanOpts {
  name?: string;
  startMs?: number;
  durMs?: number;
  status?: 0 | 1 | 2;
  attributes?: Record<string, AnyValue>;
  traceState?: string;
  flags?: number;
}

export function span(traceId: Uint8Array, o: SpanOpts = {}): Span {
  const start = BigInt(Math.round((o.startMs ?? 1_700_000_000_000) * 1e6));
  return {
    traceId,
    spanId: sid(),
    traceState: o.traceState ?? '',
    parentSpanId: new Uint8Array(0),
    flags: o.flags ?? 0,
    name: o.name ?? 'GET /api/items',
    kind: 2,
    startTimeUnixNano: start,
    endTimeUnixNano: start + BigInt(Math.round((o.durMs ?? 5) * 1e6)),
    attributes: attrs(o.attributes ?? {}),
    droppedAttributesCount: 0,
    events: [],
    droppedEventsCount: 0,
    links: [],
    droppedLinksCount: 0,
    status: { code: o.status ?? 0, message: '' },
  };
}

export function resourceSpans(spans: Span[], resAttrs: Record<string, AnyValue> = { 'service.name': 'checkout' }): ResourceSpans {
  return {
    resource: { attributes: attrs(resAttrs), droppedAttributesCount: 0 },
    scopeSpans: [{ scope: { name: 'test', version: '1', attributes: [], droppedAttributesCount: 0 }, spans, schemaUrl: '' }],
    schemaUrl: '',
  };
}

export function traces(spans: Span[], resAttrs?: Record<string, AnyValue>): TracesData {
  return { resourceSpans: [resourceSpans(spans, resAttrs)] };
}

/** A realistic server span: 8 attributes like an HTTP server instrumentation emits. */
export function realisticSpan(traceId: Uint8Array, i: number): Span {
  const s = span(traceId, {
    name: 'GET /api/v1/orders/{id}',
    durMs: 3 + (i % 50),
    status: i % 97 === 0 ? 2 : 0,
    attributes: {
      'http.request.method': 'GET',
      'http.route': '/api/v1/orders/{id}',
      'http.response.status_code': BigInt(i % 97 === 0 ? 500 : 200),
      'url.path': `/api/v1/orders/${100000 + (i % 5000)}`,
      'server.address': 'orders.shop.svc.cluster.local',
      'network.peer.address': `10.0.${i & 255}.${(i >> 8) & 255}`,
      'user_agent.original': 'Mozilla/5.0 (X11; Linux x86_64)',
      'k8s.pod.name': `orders-7d9f8-${i % 10}`,
    },
  });
  s.parentSpanId = sid();
  return s;
}

export function collectSpans(batches: TracesData[]): Span[] {
  const out: Span[] = [];
  for (const b of batches) for (const rs of b.resourceSpans) for (const ss of rs.scopeSpans) out.push(...ss.spans);
  return out;
}

export function hex(id: Uint8Array): string {
  return Buffer.from(id).toString('hex');
}
