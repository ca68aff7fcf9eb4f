// Two-tier topology over real OTLP/gRPC on loopback, in one process: three sampling replicas
// (OtlpGrpcServer from proto/src/grpc → tail sampling) behind two load-balancing exporters that
// use the collector's OTLP/gRPC sender per backend. 10k traces whose spans enter through different
// load-balancers are each decided exactly once and complete; after a replica's server is killed and
// membership drops it, traces are no longer split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OtlpGrpcServer } from '../../proto/src/grpc/otlp-server.ts';
import { otlpGrpcSenderFactory } from '../../collector/src/exporters/otlp/index.ts';
import { LoadBalancingExporter, validateConfig as lbValidate, type Resolver } from '../../collector/src/exporters/loadbalancing/index.ts';
import { TailSamplingProcessor, validateConfig as tsValidate } from '../../collector/src/processors/tail_sampling/index.ts';
import { hex, span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { TracesData } from '../../proto/src/model.ts';

const SPANS_PER_TRACE = 4;

/** Membership both load-balancers watch (what a headless Service / EndpointSlice gives in k8s). */
class SharedMembership {
  private listeners = new Set<(eps: string[]) => void>();
  constructor(private eps: string[]) {}
  resolver(): Resolver {
    const self = this;
    let mine: ((eps: string[]) => void) | undefined;
    return {
      async start(cb) { mine = cb; self.listeners.add(cb); cb(self.eps); },
      async shutdown() { if (mine) self.listeners.delete(mine); },
    };
  }
  set(eps: string[]) { this.eps = eps; for (const l of this.listeners) l(eps); }
}

class Replica {
  readonly proc: TailSamplingProcessor;
  readonly released = new Map<string, { batches: number; spans: number }>();
  server!: OtlpGrpcServer;
  endpoint = '';
  constructor() {
    const cfg = tsValidate({
      decision_wait: '2s', tick_interval: '20ms', num_traces: 50_000,
      policies: [
        { name: 'half', type: 'probabilistic', probabilistic: { sampling_percentage: 50 } },
        { name: 'errors', type: 'status_code', status_code: { status_codes: ['ERROR'] } },
      ],
    }, 'tail_sampling');
    this.proc = new TailSamplingProcessor(cfg, {
      consume: async (b: TracesData) => {
        const seen = new Map<string, number>();
        for (const rs of b.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) seen.set(hex(s.traceId), (seen.get(hex(s.traceId)) ?? 0) + 1);
        for (const [k, n] of seen) {
          const r = this.released.get(k) ?? { batches: 0, spans: 0 };
          r.batches++;
          r.spans += n;
          this.released.set(k, r);
        }
      },
    });
  }
  async start(): Promise<void> {
    await this.proc.start();
    this.server = new OtlpGrpcServer({
      signals: ['traces'],
      handler: async (signal, data, ctx) => {
        if (signal === 'traces') await this.proc.consume(data as TracesData, ctx);
      },
    });
    const port = await this.server.listen('127.0.0.1:0');
    this.endpoint = `127.0.0.1:${port}`;
  }
  decisions(): number {
    const m = this.proc.metrics();
    return m.tracesSampled + m.tracesNotSampled;
  }
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('OTLP/gRPC on loopback: 2 load-balancers × 3 sampling replicas, kill one replica', async (t) => {
  const replicas = [new Replica(), new Replica(), new Replica()];
  const lbs: LoadBalancingExporter<'traces'>[] = [];
  // a failed assertion must not leave servers and queues holding the test file open
  t.after(async () => {
    for (const lb of lbs) await lb.shutdown();
    for (const r of replicas) {
      await r.server?.shutdown(0);
      await r.proc.shutdown();
    }
  });
  for (const r of replicas) await r.start();
  const members = new SharedMembership(replicas.map((r) => r.endpoint));
  const lbCfg = lbValidate({
    resolver: { static: { hostnames: ['127.0.0.1:1'] } }, // replaced by the shared membership below
    protocol: { otlp: { compression: 'none' } },
    sending_queue: { num_consumers: 4, queue_size: 5000, drain_timeout: '3s' },
    retry_on_failure: { initial_interval: '50ms', max_interval: '200ms', max_elapsed_time: '30s' },
  }, 'exporters.loadbalancing');
  lbs.push(...[0, 1].map((i) => new LoadBalancingExporter({ id: `loadbalancing-${i}`, logger: testLogger() }, lbCfg, 'traces', otlpGrpcSenderFactory, members.resolver())));
  for (const lb of lbs) await lb.start({ reportFatal: (e) => { throw e; } });

  async function sendTraces(n: number, salt: number): Promise<void> {
    const per = 100;
    for (let t0 = 0; t0 < n; t0 += per) {
      const a = [], b = [];
      for (let t = t0; t < Math.min(n, t0 + per); t++) {
        const id = tid(t, salt);
        a.push(span(id, { name: 'root', status: t % 10 === 0 ? 2 : 0 }), span(id, { name: 'db' }));
        b.push(span(id, { name: 'cache' }), span(id, { name: 'render' }));
      }
      await Promise.all([lbs[0].consume(traces(a, { 'service.name': 'web' }), {}), lbs[1].consume(traces(b, { 'service.name': 'api' }), {})]);
    }
  }

  function check(n: number, salt: number, live: Replica[]): number {
    let sampled = 0;
    for (let t = 0; t < n; t++) {
      const k = hex(tid(t, salt));
      const homes = live.filter((r) => r.released.has(k));
      assert.ok(homes.length <= 1, `trace ${t} released by ${homes.length} replicas`);
      if (homes.length) {
        const rel = homes[0].released.get(k)!;
        assert.equal(rel.batches, 1, `trace ${t} released in ${rel.batches} batches`);
        assert.equal(rel.spans, SPANS_PER_TRACE, `trace ${t} incomplete`);
        sampled++;
      }
      if (t % 10 === 0) assert.equal(homes.length, 1, `error trace ${t} must be kept`);
    }
    return sampled;
  }

  const N = 10_000;
  const all = () => replicas.reduce((s, r) => s + r.decisions(), 0);
  await sendTraces(N, 11);
  await until(() => all() === N, 30_000, `${N} decisions`);
  const sampled = check(N, 11, replicas);
  assert.ok(sampled > N * 0.5 && sampled < N * 0.6, `sampled ${sampled}`);
  for (const r of replicas) {
    const m = r.proc.metrics();
    assert.equal(m.lateSpans.sampled + m.lateSpans.notSampled, 0);
    assert.ok(r.decisions() > N * 0.25, `${r.endpoint}: ${r.decisions()} decisions`);
  }

  // Kill replica 3's server (connections refused from now on), then membership drops it.
  const dead = replicas[2];
  await dead.server.shutdown(0);
  members.set(replicas.slice(0, 2).map((r) => r.endpoint));
  for (const lb of lbs) await lb.settled();
  for (const lb of lbs) assert.deepEqual([...lb.members], replicas.slice(0, 2).map((r) => r.endpoint).sort());

  const live = replicas.slice(0, 2);
  const before = live.reduce((s, r) => s + r.decisions(), 0);
  const deadBefore = dead.decisions();
  await sendTraces(N, 12);
  await until(() => live.reduce((s, r) => s + r.decisions(), 0) - before === N, 30_000, 'decisions after the kill');
  check(N, 12, live);
  assert.equal(dead.decisions(), deadBefore);
  for (const r of live) {
    const m = r.proc.metrics();
    assert.equal(m.lateSpans.sampled + m.lateSpans.notSampled, 0);
  }
  // every span delivered, the removed replica's share included (sentItems keeps current backends only)
  assert.equal(lbs[0].metrics().sentTotal + lbs[1].metrics().sentTotal, 2 * N * SPANS_PER_TRACE);

  for (const lb of lbs) await lb.shutdown();
  for (const r of live) {
    await r.server.shutdown(1000);
    await r.proc.shutdown();
  }
  await dead.proc.shutdown();
});
