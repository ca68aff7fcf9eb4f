// Two-tier topology in one process (in-process consumers, no network): two load-balancing
// exporters in front of three tail-sampling "replicas". Membership comes from one fake
// EndpointSlice source both load-balancers watch, as both would watch the same Service.
// 10k traces whose spans enter through different load-balancers must each be decided exactly
// once, complete; after one replica is killed, the ring converges and no trace is split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  K8sResolver, LoadBalancingExporter, validateConfig as lbValidate,
  type EndpointSender, type EndpointSenderFactory, type EndpointSliceLike, type SliceHandlers,
} from '../../collector/src/exporters/loadbalancing/index.ts';
import { TailSamplingProcessor, validateConfig as tsValidate } from '../../collector/src/processors/tail_sampling/index.ts';
import { hex, span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { TracesData, SignalData, SignalType } from '../../proto/src/model.ts';
import { RetryableError } from '../../collector/src/component/errors.ts';

const SPANS_PER_TRACE = 4;

/** A fake apiserver: one EndpointSlice for the sampling Service, watched by every resolver. */
class FakeSlices {
  private watchers = new Set<SliceHandlers>();
  private slice: EndpointSliceLike;
  constructor(addrs: string[]) {
    this.slice = { metadata: { name: 'sampling-abc', namespace: 'obs', uid: 'u1' }, addressType: 'IPv4', endpoints: addrs.map((a) => ({ addresses: [a], conditions: { ready: true } })) };
  }
  source() {
    const self = this;
    let mine: SliceHandlers | undefined;
    return {
      async start(h: SliceHandlers) { mine = h; self.watchers.add(h); h.reset([self.slice]); },
      async stop() { if (mine) self.watchers.delete(mine); },
    };
  }
  setReady(addr: string, ready: boolean) {
    for (const ep of this.slice.endpoints!) if (ep.addresses![0] === addr) ep.conditions = { ready };
    this.slice = { ...this.slice, endpoints: this.slice.endpoints!.map((e) => ({ ...e })) };
    for (const w of this.watchers) w.upsert(this.slice);
  }
}

/** One sampling replica: tail sampling whose released batches are recorded per trace. */
class Replica {
  readonly proc: TailSamplingProcessor;
  /** trace id → number of released batches that carried it, and spans released. */
  readonly released = new Map<string, { batches: number; spans: number }>();
  alive = true;
  constructor(readonly addr: string) {
    const cfg = tsValidate({
      decision_wait: '1500ms', tick_interval: '20ms', num_traces: 50_000,
      policies: [
        { name: 'half', type: 'probabilistic', probabilistic: { sampling_percentage: 50 } },
        { name: 'errors', type: 'status_code', status_code: { status_codes: ['ERROR'] } },
      ],
    }, 'tail_sampling');
    const self = this;
    this.proc = new TailSamplingProcessor(cfg, {
      async consume(b: TracesData) {
        const seen = new Map<string, number>();
        for (const rs of b.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) {
          const k = hex(s.traceId);
          seen.set(k, (seen.get(k) ?? 0) + 1);
        }
        for (const [k, n] of seen) {
          const r = self.released.get(k) ?? { batches: 0, spans: 0 };
          r.batches++;
          r.spans += n;
          self.released.set(k, r);
        }
      },
    });
  }
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('two load-balancers, three sampling replicas: every trace decided once and complete; a killed replica leaves the ring', async () => {
  const replicas = ['10.9.0.1', '10.9.0.2', '10.9.0.3'].map((a) => new Replica(a));
  for (const r of replicas) await r.proc.start();
  const byEndpoint = new Map(replicas.map((r) => [`${r.addr}:4317`, r]));
  const senderFactory: EndpointSenderFactory = <S extends SignalType>(endpoint: string) => {
    const r = byEndpoint.get(endpoint)!;
    const sender: EndpointSender<S> = {
      async send(batch: SignalData[S]) {
        if (!r.alive) throw new RetryableError(`${endpoint}: connection refused`);
        await r.proc.consume(batch as TracesData, {});
      },
      async close() {},
    };
    return sender;
  };
  const slices = new FakeSlices(replicas.map((r) => r.addr));
  const lbCfg = lbValidate({
    resolver: { k8s: { service: 'sampling.obs', ports: [4317] } },
    sending_queue: { num_consumers: 4, queue_size: 10_000, drain_timeout: '2s' },
    retry_on_failure: { initial_interval: '20ms', max_interval: '100ms', max_elapsed_time: '20s' },
  }, 'exporters.loadbalancing');
  const lbs = [0, 1].map((i) => new LoadBalancingExporter(
    { id: `loadbalancing-${i}`, logger: testLogger() }, lbCfg, 'traces', senderFactory,
    new K8sResolver({ service: 'sampling.obs', ports: [4317], source: slices.source() }),
  ));
  for (const lb of lbs) await lb.start({ reportFatal: (e) => { throw e; } });

  /** Sends traces [from, to): spans 0-1 of each through LB 0, spans 2-3 through LB 1, interleaved batches. */
  async function sendTraces(from: number, to: number, salt: number): Promise<void> {
    const per = 50; // traces per batch → 100 spans per batch per LB
    for (let t0 = from; t0 < to; t0 += per) {
      const a = [], b = [];
      for (let t = t0; t < Math.min(to, t0 + per); t++) {
        const id = tid(t, salt);
        const err = t % 10 === 0 ? 2 : 0;
        a.push(span(id, { name: 'root', status: err as 0 | 2 }), span(id, { name: 'db' }));
        b.push(span(id, { name: 'cache' }), span(id, { name: 'render' }));
      }
      await Promise.all([lbs[0].consume(traces(a, { 'service.name': 'web' }), {}), lbs[1].consume(traces(b, { 'service.name': 'api' }), {})]);
    }
  }

  function check(from: number, to: number, salt: number, live: Replica[]) {
    let decided = 0, sampled = 0;
    for (let t = from; t < to; t++) {
      const k = hex(tid(t, salt));
      const homes = live.filter((r) => r.released.has(k));
      assert.ok(homes.length <= 1, `trace ${t} released by ${homes.length} replicas`);
      if (homes.length === 1) {
        const rel = homes[0].released.get(k)!;
        assert.equal(rel.batches, 1, `trace ${t} released in ${rel.batches} batches (split decision)`);
        assert.equal(rel.spans, SPANS_PER_TRACE, `trace ${t} incomplete: ${rel.spans} spans`);
        sampled++;
      }
      if (t % 10 === 0) assert.equal(homes.length, 1, `error trace ${t} must be sampled`);
      decided++;
    }
    return { decided, sampled };
  }

  const N = 10_000;
  const decisions = () => replicas.reduce((n, r) => n + r.proc.metrics().tracesSampled + r.proc.metrics().tracesNotSampled, 0);
  await sendTraces(0, N, 1);
  await until(() => decisions() === N, 15_000, `${N} decisions`);
  const r1 = check(0, N, 1, replicas);
  assert.ok(r1.sampled > N * 0.5 && r1.sampled < N * 0.6, `sampled ${r1.sampled}`); // 50% ∪ 10% errors ≈ 55%
  for (const r of replicas) {
    const m = r.proc.metrics();
    assert.equal(m.lateSpans.sampled + m.lateSpans.notSampled, 0, 'no span arrived after its decision');
    assert.equal(m.droppedTooEarly.traces, 0);
    assert.ok(m.tracesSampled + m.tracesNotSampled > N * 0.25, `${r.addr} decided ${m.tracesSampled + m.tracesNotSampled}`);
  }
  assert.equal(decisions(), N, 'every trace decided exactly once across replicas');

  // Kill replica 3: it refuses connections; its EndpointSlice entry turns not-ready.
  const dead = replicas[2];
  dead.alive = false;
  await dead.proc.shutdown();
  slices.setReady(dead.addr, false);
  for (const lb of lbs) await lb.settled();
  for (const lb of lbs) assert.deepEqual(lb.members, ['10.9.0.1:4317', '10.9.0.2:4317']);

  const live = replicas.slice(0, 2);
  const before = live.reduce((n, r) => n + r.proc.metrics().tracesSampled + r.proc.metrics().tracesNotSampled, 0);
  await sendTraces(0, N, 2);
  await until(() => live.reduce((n, r) => n + r.proc.metrics().tracesSampled + r.proc.metrics().tracesNotSampled, 0) - before === N, 15_000, 'decisions after the kill');
  const r2 = check(0, N, 2, live);
  assert.equal(r2.decided, N);
  for (let t = 0; t < N; t++) assert.ok(!dead.released.has(hex(tid(t, 2))), 'nothing reaches the dead replica');
  for (const r of live) {
    const m = r.proc.metrics();
    assert.equal(m.lateSpans.sampled + m.lateSpans.notSampled, 0);
  }
  for (const lb of lbs) await lb.shutdown();
  for (const r of live) await r.proc.shutdown();
});
