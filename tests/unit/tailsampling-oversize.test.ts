// Spans dropped at the per-trace caps: a first span larger than maximum_trace_size_bytes must
// leave no accounting behind (in either storage mode), evict nothing, and count as dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TailSamplingProcessor, validateConfig } from '../../collector/src/processors/tail_sampling/index.ts';
import { collectSpans, hex, span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import type { TracesData } from '../../proto/src/model.ts';

class Sink {
  batches: TracesData[] = [];
  async consume(b: TracesData) { this.batches.push(b); }
}

function make(raw: Record<string, unknown>) {
  let t = 0;
  const sink = new Sink();
  const cfg = validateConfig({ decision_wait: '1s', policies: [{ name: 'all', type: 'always_sample' }], ...raw }, 'tail_sampling');
  const p = new TailSamplingProcessor(cfg, sink, undefined, { now: () => t, autoTick: false });
  return { p, sink, at: (v: number) => { t = v; } };
}

const huge = (id: Uint8Array) => span(id, { attributes: { blob: 'x'.repeat(600) } });

for (const storage of ['encoded', 'objects'] as const) {
  test(`oversize first spans (${storage}): nothing stays charged, later traces are not evicted`, async () => {
    const { p, sink, at } = make({ span_storage: storage, maximum_trace_size_bytes: 400, max_buffered_bytes: 100_000 });
    for (let i = 0; i < 1000; i++) await p.consume(traces([huge(tid(i, 50))]), {});
    let m = p.metrics();
    assert.equal(m.liveTraces, 0);
    assert.equal(m.bufferedHeapBytes, 0, 'no per-trace overhead left for traces that never opened');
    assert.equal(m.bufferedSpans, 0);
    assert.equal(m.bufferedWireBytes, 0);
    assert.equal(m.oversize.spansDropped, 1000);
    assert.equal(p.counters.dropped, 1000, 'oversize drops are component drops');
    assert.equal(p.counters.accepted, 1000);
    // Normal traces still fit max_buffered_bytes and reach their decision.
    const ok = [tid(1, 51), tid(2, 51), tid(3, 51)];
    for (const id of ok) await p.consume(traces([span(id), span(id)]), {});
    m = p.metrics();
    assert.equal(m.droppedTooEarly.traces, 0);
    assert.equal(m.liveTraces, 3);
    at(1000);
    p.tick();
    assert.deepEqual(new Set(collectSpans(sink.batches).map((s) => hex(s.traceId))), new Set(ok.map(hex)));
    assert.equal(p.metrics().bufferedHeapBytes, 0);
    await p.shutdown();
  });
}

test('an oversize first span does not evict a live trace to make room (num_traces)', async () => {
  const { p, sink, at } = make({ span_storage: 'encoded', maximum_trace_size_bytes: 400, num_traces: 1 });
  const live = tid(1, 52);
  await p.consume(traces([span(live)]), {});
  await p.consume(traces([huge(tid(2, 52))]), {});
  const m = p.metrics();
  assert.equal(m.droppedTooEarly.traces, 0);
  assert.equal(m.liveTraces, 1);
  at(1000);
  p.tick();
  assert.deepEqual(collectSpans(sink.batches).map((s) => hex(s.traceId)), [hex(live)]);
});

test('drop_excess: spans beyond the cap count in the component dropped counter', async () => {
  const { p, sink, at } = make({ max_spans_per_trace: 3, on_oversize: 'drop_excess' });
  const id = tid(1, 53);
  await p.consume(traces([span(id), span(id), span(id), span(id), span(id)]), {});
  assert.equal(p.metrics().oversize.spansDropped, 2);
  assert.equal(p.counters.dropped, 2);
  at(1000);
  p.tick();
  assert.equal(collectSpans(sink.batches).length, 3);
  assert.equal(p.counters.accepted, 5);
});
