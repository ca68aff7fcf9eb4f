// Tail sampling with a slow downstream: kept spans handed to the next consumer count against
// max_buffered_bytes until its consume() settles; a full budget refuses new data (retryable)
// instead of growing without bound, and everything accepted still arrives exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TailSamplingProcessor, validateConfig } from '../../collector/src/processors/tail_sampling/index.ts';
import { spanHeapBytes } from '../../collector/src/processors/tail_sampling/traces.ts';
import { collectSpans, hex, span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import type { Span, TracesData } from '../../proto/src/model.ts';
import type { Consumer } from '../../collector/src/component/index.ts';
import { RetryableError } from '../../collector/src/component/errors.ts';

/** A downstream whose consume() promises stay pending until the test opens the gate. */
class GatedSink implements Consumer<'traces'> {
  /** Every batch ever handed over (held or not). */
  received: TracesData[] = [];
  private held: { batch: TracesData; settle: (err?: Error) => void }[] = [];
  private open = false;
  consume(b: TracesData): Promise<void> {
    this.received.push(b);
    if (this.open) return Promise.resolve();
    return new Promise((resolve, reject) => this.held.push({ batch: b, settle: (err) => (err ? reject(err) : resolve()) }));
  }
  heldBatches(): number { return this.held.length; }
  heldSpans(): Span[] { return collectSpans(this.held.map((h) => h.batch)); }
  release(): void {
    this.open = true;
    for (const h of this.held.splice(0)) h.settle();
  }
  fail(err: Error): void {
    for (const h of this.held.splice(0)) h.settle(err);
  }
}

/** Lets promise callbacks run until cond holds; bounded by turns, not by time. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), what);
}

const keepAll = [{ name: 'all', type: 'always_sample' }];
const BOUND = 64 * 1024;
const SPANS_PER_TRACE = 3;

for (const storage of ['objects', 'encoded'] as const) {
  test(`${storage}: a blocked downstream fills max_buffered_bytes, then data is refused; all accepted arrives once`, async () => {
    let t = 0;
    const sink = new GatedSink();
    const cfg = validateConfig({ decision_wait: '1s', max_buffered_bytes: BOUND, span_storage: storage, policies: keepAll }, 'tail_sampling');
    const p = new TailSamplingProcessor(cfg, sink, undefined, { now: () => t, autoTick: false });
    await p.start();

    const accepted: string[] = [];
    const refused: string[] = [];
    const checkBound = (when: string) => {
      // Independent of the processor's own counters: what the blocked downstream holds, at a
      // lower estimate than any accounting (a shared trace id saves at most 100 B per span).
      let held = 0;
      for (const s of sink.heldSpans()) held += spanHeapBytes(s) - 100;
      assert.ok(held <= BOUND, `${when}: downstream holds ~${held} B of undelivered spans > ${BOUND}`);
      const m = p.metrics();
      const accounted = m.bufferedHeapBytes + m.inflight.heapBytes;
      assert.ok(accounted <= BOUND, `${when}: accounted ${accounted} > ${BOUND}`);
      assert.equal(m.inflight.spans, sink.heldSpans().length, `${when}: in-flight spans match what the downstream holds`);
      assert.equal(m.inflight.forwards, sink.heldBatches(), `${when}: one in-flight forward per held batch`);
    };

    // 200 traces of 3 spans (≈2 KB each, ≈6× the bound), 5 per round; rounds 250 ms apart with
    // a 1 s decision_wait, so undecided traces alone (4 rounds) fit in the bound and only the
    // blocked forwards can fill it.
    let n = 0;
    for (let round = 0; round < 40; round++) {
      t = round * 250;
      for (let i = 0; i < 5; i++) {
        const id = tid(10_000 + n++, storage === 'objects' ? 1 : 2);
        const spans = Array.from({ length: SPANS_PER_TRACE }, () => span(id));
        try {
          await p.consume(traces(spans), {});
          accepted.push(hex(id));
        } catch (err) {
          assert.ok(err instanceof RetryableError, `refusal is retryable: ${String(err)}`);
          refused.push(hex(id));
        }
        checkBound(`round ${round} request ${i}`);
      }
      p.tick(t);
      checkBound(`tick of round ${round}`);
    }

    const m = p.metrics();
    assert.ok(refused.length > 0, 'with the downstream blocked, data is refused once the budget is full');
    assert.ok(accepted.length > 0);
    assert.deepEqual(m.refused, { requests: refused.length, spans: refused.length * SPANS_PER_TRACE });
    assert.equal(p.counters.refused, refused.length * SPANS_PER_TRACE);
    // It is the undelivered forwards, not undecided traces, that fill the budget.
    assert.ok(m.inflight.heapBytes > BOUND / 2, `in-flight ${m.inflight.heapBytes}`);
    assert.ok(p.refusal(SPANS_PER_TRACE) instanceof RetryableError, 'a request of this size is refused before decoding');
    // Encoded traces grow when decoded: decisions wait for room rather than evict accepted traces.
    if (storage === 'encoded') assert.ok(m.deferredDecisions > 0 && m.liveTraces > 0);

    // Open the gate: forwards settle, their bytes are released and data is accepted again.
    sink.release();
    await until(() => p.metrics().inflight.forwards === 0, 'in-flight forwards settle once the gate opens');
    assert.equal(p.metrics().inflight.heapBytes, 0);
    assert.equal(p.metrics().inflight.spans, 0);
    assert.equal(p.refusal(), undefined);
    const after = tid(99_999, storage === 'objects' ? 1 : 2);
    await p.consume(traces([span(after)]), {});
    accepted.push(hex(after));

    // Shutdown decides and flushes what is still pending and waits for those forwards.
    await p.shutdown();
    const fin = p.metrics();
    assert.equal(fin.liveTraces, 0);
    assert.equal(fin.bufferedHeapBytes, 0);
    assert.deepEqual(fin.inflight, { forwards: 0, spans: 0, heapBytes: 0 });
    assert.equal(fin.forwardErrors, 0);

    const delivered = collectSpans(sink.received);
    const spanIds = new Set(delivered.map((s) => hex(s.spanId)));
    assert.equal(spanIds.size, delivered.length, 'no span is delivered twice');
    // Refusing at the door instead of evicting: nothing accepted was lost, all of it arrived once.
    assert.deepEqual(fin.droppedTooEarly, { traces: 0, spans: 0 });
    const deliveredTraces = collectSpans(sink.received).map((s) => hex(s.traceId));
    assert.deepEqual(new Set(deliveredTraces), new Set(accepted));
    assert.equal(delivered.length, (accepted.length - 1) * SPANS_PER_TRACE + 1);
    for (const id of refused) assert.ok(!deliveredTraces.includes(id), `refused trace ${id} is not delivered`);
  });
}

test('late spans of a kept trace are charged while the downstream holds them', async () => {
  let t = 0;
  const sink = new GatedSink();
  const cfg = validateConfig({ decision_wait: '1s', policies: keepAll }, 'tail_sampling');
  const p = new TailSamplingProcessor(cfg, sink, undefined, { now: () => t, autoTick: false });
  const id = tid(1);
  await p.consume(traces([span(id), span(id)]), {});
  t = 1000;
  assert.equal(p.tick(), 1);
  const decided = p.metrics().inflight;
  assert.equal(decided.spans, 2);
  assert.ok(decided.heapBytes > 0);

  let settled = false;
  const late = p.consume(traces([span(id)]), {}).then(() => { settled = true; });
  const m = p.metrics();
  assert.equal(m.lateSpans.sampled, 1);
  assert.equal(m.inflight.spans, 3);
  assert.equal(m.inflight.forwards, 2);
  assert.ok(m.inflight.heapBytes > decided.heapBytes);
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false, 'the late request waits for the downstream');

  sink.release();
  await late;
  assert.deepEqual(p.metrics().inflight, { forwards: 0, spans: 0, heapBytes: 0 });
  assert.equal(collectSpans(sink.received).length, 3);
  await p.shutdown();
});

test('a forward the downstream rejects releases its bytes and is counted', async () => {
  let t = 0;
  const sink = new GatedSink();
  const cfg = validateConfig({ decision_wait: '1s', policies: keepAll }, 'tail_sampling');
  const p = new TailSamplingProcessor(cfg, sink, undefined, { now: () => t, autoTick: false });
  await p.consume(traces([span(tid(2)), span(tid(3))]), {});
  t = 1000;
  p.tick();
  assert.equal(p.metrics().inflight.spans, 2);
  sink.fail(new Error('exporter queue full'));
  await until(() => p.metrics().inflight.forwards === 0, 'the rejected forward settles');
  const m = p.metrics();
  assert.deepEqual(m.inflight, { forwards: 0, spans: 0, heapBytes: 0 });
  assert.equal(m.forwardErrors, 1);
  assert.equal(p.counters.dropped, 2);
  await p.shutdown();
});
