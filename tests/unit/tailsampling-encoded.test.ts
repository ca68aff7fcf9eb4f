// span_storage: encoded — spans are held as OTLP bytes and decoded at the decision; what comes out
// must equal what went in, with the same decisions as object storage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TailSamplingProcessor, validateConfig } from '../../collector/src/processors/tail_sampling/index.ts';
import { collectSpans, hex, realisticSpan, span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import type { Span, TracesData } from '../../proto/src/model.ts';
import type { RequestContext } from '../../collector/src/component/index.ts';

class Sink {
  batches: TracesData[] = [];
  ctxs: RequestContext[] = [];
  async consume(b: TracesData, ctx: RequestContext) { this.batches.push(b); this.ctxs.push(ctx); }
}

function make(storage: 'objects' | 'encoded', raw: Record<string, unknown>) {
  let t = 0;
  const sink = new Sink();
  const cfg = validateConfig({ decision_wait: '1s', span_storage: storage, ...raw }, 'tail_sampling');
  const p = new TailSamplingProcessor(cfg, sink, undefined, { now: () => t, autoTick: false });
  return { p, sink, at: (v: number) => { t = v; } };
}

function comparable(s: Span) {
  return { ...s, traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId) };
}

const policies = [
  { name: 'errors', type: 'status_code', status_code: { status_codes: ['ERROR'] } },
  { name: 'slow', type: 'latency', latency: { threshold_ms: 40 } },
  { name: 'vip', type: 'string_attribute', string_attribute: { key: 'service.name', values: ['vip'] } },
];

test('encoded storage releases spans identical to the input, grouped under their own resource', async () => {
  const { p, sink, at } = make('encoded', { policies: [{ name: 'all', type: 'always_sample' }] });
  const inputs: Span[] = [];
  for (let t = 0; t < 50; t++) for (let s = 0; s < 3; s++) inputs.push(realisticSpan(tid(t, 8), t * 3 + s));
  const originals = inputs.map((s) => comparable(structuredClone(s)));
  const data = traces(inputs, { 'service.name': 'orders' });
  await p.consume(data, { tenant: 't1' });
  at(1000);
  p.tick();
  const out = collectSpans(sink.batches);
  assert.equal(out.length, inputs.length);
  const byId = new Map(out.map((s) => [hex(s.spanId), comparable(s)]));
  for (const o of originals) assert.deepEqual(byId.get(o.spanId), o);
  // Resource and scope objects are the original ones (held by reference, not re-encoded).
  assert.equal(sink.batches[0].resourceSpans[0].resource, data.resourceSpans[0].resource);
  assert.equal(sink.ctxs[0].tenant, 't1');
});

test('encoded and object storage make the same decisions', async () => {
  const a = make('objects', { policies }), b = make('encoded', { policies });
  for (let t = 0; t < 300; t++) {
    const spans = [span(tid(t, 9), { status: t % 7 === 0 ? 2 : 0, durMs: t % 11 === 0 ? 60 : 5 })];
    const res = { 'service.name': t % 13 === 0 ? 'vip' : 'web' };
    await a.p.consume(traces(spans, res), {});
    await b.p.consume(traces([structuredClone(spans[0])], res), {});
  }
  a.at(1000); b.at(1000);
  a.p.tick(); b.p.tick();
  const ids = (s: Sink) => collectSpans(s.batches).map((x) => hex(x.traceId)).sort();
  assert.ok(ids(a.sink).length > 50);
  assert.deepEqual(ids(b.sink), ids(a.sink));
  assert.deepEqual(b.p.metrics().policies, a.p.metrics().policies);
});

test('encoded storage: late spans, early decisions and shutdown flush', async () => {
  const { p, sink, at } = make('encoded', { policies, max_spans_per_trace: 3 });
  const big = tid(1, 10), small = tid(2, 10);
  await p.consume(traces([span(big, { status: 2 }), span(big), span(big), span(big), span(small, { status: 2 })]), {});
  assert.equal(collectSpans(sink.batches).length, 4, 'the oversize trace was decided early');
  at(1000);
  p.tick();
  await p.consume(traces([span(small)]), {});
  assert.equal(collectSpans(sink.batches).length, 6);
  await p.consume(traces([span(tid(3, 10), { status: 2 })]), {});
  await p.shutdown();
  assert.equal(collectSpans(sink.batches).length, 7);
  assert.equal(p.metrics().decodeErrors, 0);
});

test('encoded storage accounts the real encoded size plus fixed per-span and per-trace overheads', async () => {
  const o = make('objects', { policies }), e = make('encoded', { policies });
  // 40 traces × 5 spans.
  const mk = () => Array.from({ length: 200 }, (_, i) => realisticSpan(tid(i % 40, 11), i));
  await o.p.consume(traces(mk()), {});
  await e.p.consume(traces(mk()), {});
  const mo = o.p.metrics(), me = e.p.metrics();
  assert.equal(me.bufferedSpans, 200);
  assert.equal(me.liveTraces, 40);
  assert.equal(me.bufferedHeapBytes, me.bufferedWireBytes + 200 * 50 + 40 * 900);
  assert.ok(me.bufferedHeapBytes < mo.bufferedHeapBytes * 0.6, `${me.bufferedHeapBytes} vs ${mo.bufferedHeapBytes}`);
  e.at(1000);
  e.p.tick();
  assert.equal(e.p.metrics().bufferedHeapBytes, 0);
});

test('span_storage is validated', () => {
  assert.throws(() => validateConfig({ policies, span_storage: 'disk' }, 'ts'), /ts\.span_storage/);
});

test('encoded storage: several resources and scopes per request, spans mixed with invalid ones', async () => {
  const { p, sink, at } = make('encoded', { policies: [{ name: 'all', type: 'always_sample' }] });
  const bad = span(tid(1, 12));
  bad.traceId = new Uint8Array(3);
  const mk = (svc: string, t: number) => ({
    resource: { attributes: [{ key: 'service.name', value: svc }], droppedAttributesCount: 0 },
    schemaUrl: 'r',
    scopeSpans: [
      { scope: { name: `${svc}-a`, version: '1', attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', spans: [span(tid(t, 12), { name: `${svc}-a1` }), bad, span(tid(t + 1, 12), { name: `${svc}-a2` })] },
      { scope: { name: `${svc}-b`, version: '1', attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', spans: [span(tid(t, 12), { name: `${svc}-b1` })] },
    ],
  });
  await p.consume({ resourceSpans: [mk('web', 100), mk('db', 200)] }, {});
  at(1000);
  p.tick();
  assert.equal(p.metrics().invalidSpans, 2);
  const out = sink.batches[0];
  const names = new Map<string, string>(); // span name → "service/scope"
  for (const rs of out.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans)
    names.set(s.name, `${rs.resource.attributes[0].value}/${ss.scope.name}`);
  assert.deepEqual(Object.fromEntries([...names].sort()), {
    'db-a1': 'db/db-a', 'db-a2': 'db/db-a', 'db-b1': 'db/db-b', 'web-a1': 'web/web-a', 'web-a2': 'web/web-a', 'web-b1': 'web/web-b',
  });
});
