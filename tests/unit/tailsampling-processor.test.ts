// Tail sampling processor behaviour: buffering until decision_wait, late spans, eviction,
// oversize traces, tiers/tenants, shutdown flush vs drop, the real ticker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { tailSamplingProcessorFactory, TailSamplingProcessor, validateConfig } from '../../collector/src/processors/tail_sampling/index.ts';
import { collectSpans, hex, span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import type { TracesData } from '../../proto/src/model.ts';
import type { Consumer, RequestContext } from '../../collector/src/component/index.ts';
import { ShutdownError } from '../../collector/src/component/errors.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';

class Sink implements Consumer<'traces'> {
  batches: TracesData[] = [];
  ctxs: RequestContext[] = [];
  async consume(b: TracesData, ctx: RequestContext): Promise<void> {
    this.batches.push(b);
    this.ctxs.push(ctx);
  }
  spans() { return collectSpans(this.batches); }
  traceIds() { return new Set(this.spans().map((s) => hex(s.traceId))); }
}

function make(raw: Record<string, unknown>, sink = new Sink()) {
  let t = 0;
  const clock = { set: (v: number) => { t = v; } };
  const cfg = validateConfig({ decision_wait: '1s', ...raw }, 'tail_sampling');
  const p = new TailSamplingProcessor(cfg, sink, undefined, { now: () => t, autoTick: false });
  return { p, sink, clock };
}

const errorsOnly = [{ name: 'errors', type: 'status_code', status_code: { status_codes: ['ERROR'] } }];

test('spans are held until decision_wait, then the whole trace is released once', async () => {
  const { p, sink, clock } = make({ policies: errorsOnly });
  await p.start();
  const a = tid(1), b = tid(2);
  await p.consume(traces([span(a), span(b)]), {});
  clock.set(400);
  await p.consume(traces([span(a, { status: 2 }), span(b)]), {});
  assert.equal(p.tick(999), 0, 'nothing due before decision_wait');
  assert.equal(sink.spans().length, 0);
  assert.equal(p.tick(1000), 2);
  const spans = sink.spans();
  assert.equal(spans.length, 2);
  assert.ok(spans.every((s) => hex(s.traceId) === hex(a)));
  const m = p.metrics();
  assert.equal(m.tracesSampled, 1);
  assert.equal(m.tracesNotSampled, 1);
  assert.equal(m.liveTraces, 0);
  assert.equal(m.bufferedSpans, 0);
  assert.equal(m.bufferedHeapBytes, 0);
  assert.deepEqual(m.policies.default.errors, { sampled: 1, notSampled: 1, dropped: 0 });
  await p.shutdown();
});

test('a span arriving after its trace was decided follows that decision', async () => {
  const { p, sink, clock } = make({ policies: errorsOnly });
  const kept = tid(10), dropped = tid(11);
  await p.consume(traces([span(kept, { status: 2 }), span(dropped)]), {});
  clock.set(1000);
  p.tick();
  assert.equal(sink.spans().length, 1);
  // Late spans: the kept trace's late span is forwarded at once even though it is not an error;
  // the dropped trace's late span is dropped even though it is an error.
  clock.set(5000);
  await p.consume(traces([span(kept, { status: 0 }), span(dropped, { status: 2 })]), {});
  const spans = sink.spans();
  assert.equal(spans.length, 2);
  assert.equal(hex(spans[1].traceId), hex(kept));
  assert.deepEqual(p.metrics().lateSpans, { sampled: 1, notSampled: 1 });
  assert.equal(p.metrics().liveTraces, 0, 'late spans do not open a new trace');
  clock.set(10_000);
  assert.equal(p.tick(), 0);
});

test('without decision caches a late span starts a new trace', async () => {
  const { p, sink, clock } = make({ policies: errorsOnly, decision_cache: { sampled_cache_size: 0, non_sampled_cache_size: 0 } });
  const id = tid(20);
  await p.consume(traces([span(id, { status: 2 })]), {});
  clock.set(1000);
  p.tick();
  await p.consume(traces([span(id)]), {});
  assert.equal(p.metrics().liveTraces, 1);
  clock.set(2000);
  p.tick();
  assert.equal(sink.spans().length, 1, 'the late non-error span was judged alone and dropped');
});

test('the decision cache is a bounded LRU', async () => {
  const { p, clock } = make({ policies: [{ name: 'all', type: 'always_sample' }], decision_cache: { sampled_cache_size: 3 } });
  for (let i = 0; i < 5; i++) await p.consume(traces([span(tid(100 + i))]), {});
  clock.set(1000);
  p.tick();
  assert.equal(p.metrics().decisionCache.sampled, 3);
  // The two oldest decisions are forgotten; their late spans open new traces.
  await p.consume(traces([span(tid(100)), span(tid(104))]), {});
  assert.equal(p.metrics().liveTraces, 1);
  assert.equal(p.metrics().lateSpans.sampled, 1);
});

test('num_traces: the oldest live trace is evicted and counted', async () => {
  const { p, sink, clock } = make({ policies: [{ name: 'all', type: 'always_sample' }], num_traces: 3 });
  for (let i = 0; i < 5; i++) {
    clock.set(i);
    await p.consume(traces([span(tid(200 + i)), span(tid(200 + i))]), {});
  }
  const m = p.metrics();
  assert.equal(m.liveTraces, 3);
  assert.deepEqual(m.droppedTooEarly, { traces: 2, spans: 4 });
  clock.set(5000);
  p.tick();
  const ids = sink.traceIds();
  assert.deepEqual([...ids].sort(), [tid(202), tid(203), tid(204)].map(hex).sort());
});

test('max_buffered_bytes bounds accounted memory by evicting the oldest traces', async () => {
  const { p } = make({ policies: [{ name: 'all', type: 'always_sample' }], max_buffered_bytes: 20_000 });
  for (let i = 0; i < 200; i++) await p.consume(traces([span(tid(300 + i))]), {});
  const m = p.metrics();
  assert.ok(m.bufferedHeapBytes <= 20_000, `${m.bufferedHeapBytes}`);
  assert.ok(m.droppedTooEarly.traces > 0);
  assert.equal(m.liveTraces + m.droppedTooEarly.traces, 200);
});

test('oversize trace, drop_excess: spans beyond max_spans_per_trace are dropped and counted', async () => {
  const { p, sink, clock } = make({ policies: [{ name: 'all', type: 'always_sample' }], max_spans_per_trace: 3, on_oversize: 'drop_excess' });
  const id = tid(400);
  await p.consume(traces([span(id), span(id), span(id), span(id), span(id)]), {});
  assert.equal(p.metrics().oversize.spansDropped, 2);
  clock.set(1000);
  p.tick();
  assert.equal(sink.spans().length, 3);
});

test('oversize trace, decide_early: decided at the cap, later spans follow the decision', async () => {
  const { p, sink } = make({ policies: errorsOnly, max_spans_per_trace: 3, on_oversize: 'decide_early' });
  const big = tid(401);
  await p.consume(traces([span(big, { status: 2 }), span(big), span(big), span(big)]), {});
  // Decided without waiting: 4 spans (3 + the one that crossed the cap) are out.
  assert.equal(sink.spans().length, 4);
  assert.equal(p.metrics().oversize.earlyDecisions, 1);
  await p.consume(traces([span(big)]), {});
  assert.equal(sink.spans().length, 5);
  assert.equal(p.metrics().lateSpans.sampled, 1);
});

test('maximum_trace_size_bytes triggers the same early decision', async () => {
  const { p, sink } = make({ policies: [{ name: 'all', type: 'always_sample' }], maximum_trace_size_bytes: 300 });
  const id = tid(402);
  const spans = Array.from({ length: 10 }, () => span(id));
  await p.consume(traces(spans), {});
  const m = p.metrics();
  assert.equal(m.oversize.earlyDecisions, 1);
  // Decided when the accounted size crossed 300 bytes; the rest of the same batch followed the
  // cached decision as late spans.
  assert.ok(m.lateSpans.sampled >= 1 && m.lateSpans.sampled <= 8, `${m.lateSpans.sampled}`);
  assert.equal(sink.spans().length, 10);
  assert.equal(m.liveTraces, 0);
});

test('shutdown flushes pending traces by deciding them now', async () => {
  const { p, sink } = make({ policies: errorsOnly });
  await p.consume(traces([span(tid(500), { status: 2 }), span(tid(501))]), {});
  await p.shutdown();
  assert.equal(sink.spans().length, 1);
  assert.equal(p.metrics().shutdown.tracesFlushed, 2);
  await p.shutdown(); // idempotent
  await assert.rejects(p.consume(traces([span(tid(502))]), {}), ShutdownError);
});

test('shutdown with drop_pending_traces_on_shutdown drops and counts', async () => {
  const { p, sink } = make({ policies: errorsOnly, drop_pending_traces_on_shutdown: true });
  await p.consume(traces([span(tid(510), { status: 2 }), span(tid(510)), span(tid(511))]), {});
  await p.shutdown();
  assert.equal(sink.spans().length, 0);
  assert.deepEqual(p.metrics().shutdown, { tracesDropped: 2, spansDropped: 3, tracesFlushed: 0 });
});

test('QoS tiers and tenant overrides pick the policy set of the first span\'s request', async () => {
  const { p, sink, clock } = make({
    policies: [{ name: 'none', type: 'probabilistic', probabilistic: { sampling_percentage: 0 } }],
    policy_sets: {
      keep_all: [{ name: 'all', type: 'always_sample' }],
      frugal: [
        { name: 'one-percent', type: 'probabilistic', probabilistic: { sampling_percentage: 1 } },
        { name: 'errors', type: 'status_code', status_code: { status_codes: ['ERROR'] } },
        { name: 'slow', type: 'latency', latency: { threshold_ms: 500 } },
      ],
    },
    tiers: { high: 'keep_all', low: 'frugal' },
    tenants: { 'vip-on-low': 'keep_all' },
  });
  const N = 400;
  for (let i = 0; i < N; i++) await p.consume(traces([span(tid(i, 1))]), { tenant: 'a', tier: 'high' });
  for (let i = 0; i < N; i++) await p.consume(traces([span(tid(i, 2))]), { tenant: 'b', tier: 'low' });
  await p.consume(traces([span(tid(1, 3), { status: 2 })]), { tenant: 'b', tier: 'low' });
  await p.consume(traces([span(tid(2, 3), { durMs: 900 })]), { tenant: 'b', tier: 'low' });
  await p.consume(traces([span(tid(3, 3))]), { tenant: 'vip-on-low', tier: 'low' });
  await p.consume(traces([span(tid(4, 3))]), {}); // no tier: default set keeps nothing
  // The tier of a trace is the one of its first span: a later span with another tier changes nothing.
  await p.consume(traces([span(tid(5, 4), { status: 2 })]), { tenant: 'b', tier: 'low' });
  await p.consume(traces([span(tid(5, 4))]), { tenant: 'a', tier: 'high' });
  clock.set(1000);
  p.tick();
  const m = p.metrics();
  assert.equal(m.policySets.keep_all.sampled, N + 1);
  const frugal = m.policySets.frugal;
  assert.equal(frugal.sampled + frugal.notSampled, N + 3);
  // 1% of 400 plus the error, the slow trace and the error trace tid(5,4): 3 + ~4.
  assert.ok(frugal.sampled >= 3 && frugal.sampled <= 3 + 16, `${frugal.sampled}`);
  assert.equal(m.policySets.default.sampled, 0);
  assert.equal(m.policySets.default.notSampled, 1);
  // Released batches carry the tenant/tier of their traces.
  const ids = sink.traceIds();
  assert.ok(ids.has(hex(tid(1, 3))) && ids.has(hex(tid(2, 3))) && ids.has(hex(tid(3, 3))) && ids.has(hex(tid(5, 4))));
  assert.ok(!ids.has(hex(tid(4, 3))));
  const tenants = new Set(sink.ctxs.map((c) => c.tenant));
  assert.deepEqual([...tenants].sort(), ['a', 'b', 'vip-on-low']);
  const vip = sink.batches[sink.ctxs.findIndex((c) => c.tenant === 'vip-on-low')];
  assert.equal(collectSpans([vip]).length, 1);
});

test('spans without a 16-byte trace id are counted, not buffered', async () => {
  const { p } = make({ policies: errorsOnly });
  const s = span(tid(1));
  s.traceId = new Uint8Array(0);
  await p.consume(traces([s]), {});
  assert.equal(p.metrics().invalidSpans, 1);
  assert.equal(p.metrics().liveTraces, 0);
});

test('the factory builds a processor whose single ticker decides traces', async () => {
  const raw = { decision_wait: '50ms', tick_interval: '10ms', policies: [{ name: 'all', type: 'always_sample' }] };
  const cfg = tailSamplingProcessorFactory.validate(raw, 'processors.tail_sampling');
  const sink = new Sink();
  const noop = () => {};
  const logger = { info: noop, warn: noop, error: noop, debug: noop, child: () => logger };
  const p = tailSamplingProcessorFactory.create({ id: 'tail_sampling', logger }, cfg, 'traces', sink);
  await p.start({ reportFatal: noop });
  await p.consume(traces([span(tid(600)), span(tid(601))]), {});
  const deadline = Date.now() + 2000;
  while (sink.spans().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sink.spans().length, 2);
  await p.shutdown();
  assert.throws(() => tailSamplingProcessorFactory.create({ id: 'ts', logger }, cfg, 'metrics', sink as never));
});

test('the example config in testdata validates', () => {
  const doc = parse(readFileSync(new URL('../../collector/src/processors/tail_sampling/testdata/config.yaml', import.meta.url), 'utf8'));
  const cfg = tailSamplingProcessorFactory.validate(doc.processors.tail_sampling, 'processors.tail_sampling');
  assert.equal(cfg.decisionWaitMs, 10_000);
  assert.equal(cfg.tiers.low, 'low_tier');
  assert.ok(cfg.policySets.low_tier.length >= 3);
});

test('metrics are exported to the self-telemetry registry on scrape', async () => {
  const reg = new MetricsRegistry();
  let t = 0;
  const cfg = validateConfig({ decision_wait: '1s', policies: errorsOnly }, 'tail_sampling');
  const p = new TailSamplingProcessor(cfg, new Sink(), undefined, { now: () => t, autoTick: false, telemetry: new SelfTelemetry(reg), id: 'tail_sampling/x' });
  await p.start();
  await p.consume(traces([span(tid(700), { status: 2 }), span(tid(701)), span(tid(702))]), {});
  assert.match(reg.render(), /kscope_tailsampling_live_traces\{processor="tail_sampling\/x"\} 3/);
  t = 1000;
  p.tick();
  await p.consume(traces([span(tid(701))]), {});
  const text = reg.render();
  assert.match(text, /kscope_tailsampling_traces_total\{processor="tail_sampling\/x",policy_set="default",decision="sampled"\} 1/);
  assert.match(text, /kscope_tailsampling_traces_total\{processor="tail_sampling\/x",policy_set="default",decision="not_sampled"\} 2/);
  assert.match(text, /kscope_tailsampling_policy_decisions_total\{processor="tail_sampling\/x",policy_set="default",policy="errors",decision="sampled"\} 1/);
  assert.match(text, /kscope_tailsampling_late_spans_total\{processor="tail_sampling\/x",decision="not_sampled"\} 1/);
  await p.shutdown();
});
