// Load-balancing exporter: what a backend's queue gave up on stays counted after the backend left
// (kscope_loadbalancer_send_failed_items_total{reason}, metrics().failedItems), although its own
// kscope_exporter_* series are dropped to keep them bounded by the current backends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoadBalancingExporter, type EndpointSender, type EndpointSenderFactory } from '../../collector/src/exporters/loadbalancing/index.ts';
import { HashRing } from '../../collector/src/exporters/loadbalancing/ring.ts';
import { PermanentError } from '../../collector/src/component/errors.ts';
import { span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import type { SignalData, SignalType } from '../../proto/src/model.ts';
import { EPS, host, lbConfig, ManualResolver, until } from './loadbalancing-helpers.ts';

/** Backends that deliver, hang until aborted, or refuse everything for good. */
function sinks(mode: Map<string, 'hang' | 'permanent'>) {
  let delivered = 0;
  const factory: EndpointSenderFactory = <S extends SignalType>(endpoint: string) => {
    const sender: EndpointSender<S> = {
      async send(batch: SignalData[S], _ctx, abort) {
        const m = mode.get(endpoint);
        if (m === 'permanent') throw new PermanentError('refused');
        if (m === 'hang') await new Promise<void>((_, rej) => abort.addEventListener('abort', () => rej(abort.reason), { once: true }));
        delivered += batch ? 1 : 0;
      },
      async close() {},
    };
    return sender;
  };
  return { factory, delivered: () => delivered };
}

function ownedBy(owner: string, members: string[], n: number, salt: number) {
  const ring = new HashRing(members);
  const out = [];
  for (let i = 0; out.length < n; i++) {
    const id = tid(i, salt);
    if (ring.locateBytes(id) === owner) out.push(span(id));
  }
  return out;
}

const lbFailed = (reg: MetricsRegistry, reason: string) => {
  const m = new RegExp(`kscope_loadbalancer_send_failed_items_total\\{exporter="loadbalancing",signal="traces",reason="${reason}"\\} (\\d+)`).exec(reg.render());
  return m ? Number(m[1]) : 0;
};
const backendSeries = (reg: MetricsRegistry, ep: string) => reg.render().split('\n').filter((l) => l.includes(`exporter="loadbalancing/${ep}"`));

test('items a removed backend dropped at shutdown stay counted by the load balancer after its series go', async () => {
  const reg = new MetricsRegistry();
  const r = new ManualResolver(EPS);
  const s = sinks(new Map([[EPS[1], 'hang']]));
  const lb = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger(), telemetry: new SelfTelemetry(reg) },
    lbConfig({ sending_queue: { num_consumers: 1, drain_timeout: '100ms' } }), 'traces', s.factory, r);
  await lb.start(host);
  for (let k = 0; k < 3; k++) await lb.consume(traces(ownedBy(EPS[1], EPS, 10, k)), {});
  // Every backend leaves: the hanging one's data has nowhere to go and is dropped at its drain timeout.
  r.set([]);
  await lb.settled();
  await until(() => backendSeries(reg, EPS[1]).length === 0 && lbFailed(reg, 'shutdown') > 0);
  assert.equal(lbFailed(reg, 'shutdown'), 30, reg.render());
  assert.deepEqual(lb.metrics().failedItems, { shutdown: 30 });
  await lb.shutdown();
  assert.equal(lbFailed(reg, 'shutdown'), 30, 'still there after shutdown');
});

test('the load balancer counts what live and removed backends gave up on, once, by reason', async () => {
  const reg = new MetricsRegistry();
  const r = new ManualResolver(EPS);
  const s = sinks(new Map([[EPS[0], 'permanent']]));
  const lb = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger(), telemetry: new SelfTelemetry(reg) }, lbConfig(), 'traces', s.factory, r);
  await lb.start(host);
  await lb.consume(traces(ownedBy(EPS[0], EPS, 7, 1)), {});
  await until(() => lbFailed(reg, 'permanent') === 7);
  assert.ok(backendSeries(reg, EPS[0]).length > 0, 'a live backend keeps its own series');
  r.set([EPS[1], EPS[2]]);
  await lb.settled();
  await until(() => backendSeries(reg, EPS[0]).length === 0);
  assert.equal(lbFailed(reg, 'permanent'), 7, 'not lost with the series, not counted twice');
  // It comes back and fails again: its new failures add up.
  r.set(EPS);
  await lb.settled();
  await lb.consume(traces(ownedBy(EPS[0], EPS, 5, 2)), {});
  await until(() => lbFailed(reg, 'permanent') === 12);
  assert.deepEqual(lb.metrics().failedItems, { permanent: 12 });
  await lb.shutdown();
  assert.equal(lbFailed(reg, 'permanent'), 12);
});

test('a retiring backend of one signal leaves the series of the same backend under another signal alone', async () => {
  const reg = new MetricsRegistry();
  const tel = new SelfTelemetry(reg);
  const rt = new ManualResolver(EPS);
  const rl = new ManualResolver(EPS);
  const s = sinks(new Map());
  const t = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger(), telemetry: tel }, lbConfig(), 'traces', s.factory, rt);
  const l = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger(), telemetry: tel }, lbConfig(), 'logs', s.factory, rl);
  await t.start(host);
  await l.start(host);
  await t.consume(traces(ownedBy(EPS[0], EPS, 3, 1)), {});
  await until(() => /kscope_exporter_sent_items_total\{exporter="loadbalancing\/10.0.0.1:4317",signal="traces"\} 3/.test(reg.render()));
  const logsSeries = () => backendSeries(reg, EPS[0]).filter((x) => x.includes('signal="logs"'));
  const before = logsSeries().length;
  assert.ok(before > 0);
  rt.set([EPS[1], EPS[2]]);
  await t.settled();
  await until(() => backendSeries(reg, EPS[0]).every((x) => !x.includes('signal="traces"')));
  assert.equal(logsSeries().length, before, 'the logs load balancer still has its backend series');
  await t.shutdown();
  await l.shutdown();
});
