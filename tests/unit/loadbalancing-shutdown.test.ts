// Load-balancing exporter at shutdown and under churn: a backend removed just before shutdown
// hands what it holds to the live backends before they stop; per-backend stats (and their
// self-telemetry series) only cover the backends in the ring or still retiring.
// Backends are in-process, as in loadbalancing-exporter.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoadBalancingExporter, type Resolver } from '../../collector/src/exporters/loadbalancing/index.ts';
import { hex, span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import { Backends, EPS, host, lbConfig, ManualResolver, until } from './loadbalancing-helpers.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';

function newExporter(r: Resolver, be: Backends) {
  const reg = new MetricsRegistry();
  const lb = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger(), telemetry: new SelfTelemetry(reg) }, lbConfig(), 'traces', be.factory, r);
  return { lb, reg };
}

test('a backend removed just before shutdown re-routes its queued data into the live backends before they stop', async () => {
  const be = new Backends();
  const r = new ManualResolver(EPS);
  const { lb, reg } = newExporter(r, be);
  await lb.start(host);
  const dead = EPS[1];
  be.hang.add(dead); // its sink is blocked: two sends hang, the rest waits in its queue
  const ids = Array.from({ length: 300 }, (_, i) => tid(i, 51));
  const batches = 6;
  for (let k = 0; k < batches; k++) await lb.consume(traces(ids.map((id) => span(id, { name: `b${k}` }))), {});
  assert.equal(be.spansOf(dead).length, 0);

  // The resolver drops it and the collector shuts down at once.
  r.set([EPS[0], EPS[2]]);
  await lb.shutdown();

  assert.equal(be.spansOf(dead).length, 0);
  assert.equal(be.spansOf(EPS[0]).length + be.spansOf(EPS[2]).length, 300 * batches, 'every span reached a live backend');
  assert.ok(be.abortedSends >= 1, 'the hanging sends were aborted on removal');
  const m = lb.metrics();
  assert.ok(m.reroutedItems > 0, 'the removed backend held data that had to move');
  // Every trace is whole on exactly one live backend.
  const homes = new Map<string, Set<string>>();
  for (const ep of [EPS[0], EPS[2]]) for (const s of be.spansOf(ep)) {
    const k = hex(s.traceId);
    if (!homes.has(k)) homes.set(k, new Set());
    homes.get(k)!.add(ep);
  }
  assert.equal(homes.size, 300);
  for (const eps of homes.values()) assert.equal(eps.size, 1);
  // Nothing was given up on (shutdown drain timeout, retries) by any per-backend exporter.
  assert.equal(reg.get('kscope_exporter_send_failed_items_total')?.sum() ?? 0, 0, reg.render());
  await lb.shutdown(); // idempotent
});

test('per-backend stats shrink when backends leave, and stay bounded by the current backends under churn', async () => {
  const be = new Backends();
  const r = new ManualResolver(EPS);
  const { lb, reg } = newExporter(r, be);
  await lb.start(host);
  let sent = 0;
  const feed = async (n: number, salt: number) => {
    await lb.consume(traces(Array.from({ length: n }, (_, i) => span(tid(i, salt)))), {});
    sent += n;
    await until(() => be.total() === sent);
  };
  const series = () => [...reg.render().matchAll(/kscope_loadbalancer_backend_sent_items_total\{[^}]*endpoint="([^"]+)"[^}]*\} (\d+)/g)].map((x) => x[1]).sort();

  await feed(300, 1);
  assert.deepEqual(Object.keys(lb.metrics().sentItems).sort(), EPS);
  assert.deepEqual(series(), EPS);

  // One backend leaves: once its retirement completes, its entry and its series are gone.
  r.set([EPS[0], EPS[2]]);
  await lb.settled();
  await until(() => !(EPS[1] in lb.metrics().sentItems));
  assert.deepEqual(Object.keys(lb.metrics().sentItems).sort(), [EPS[0], EPS[2]]);
  assert.deepEqual(series(), [EPS[0], EPS[2]]);

  // Churn: a different second backend every round. The stats never hold more than the ring plus
  // what is still retiring, and end with exactly the current members.
  for (let i = 0; i < 12; i++) {
    const extra = `10.0.1.${i}:4317`;
    r.set([EPS[0], extra]);
    await lb.settled();
    await feed(100, 10 + i);
    assert.ok(extra in lb.metrics().sentItems, 'the new backend got its share');
    await until(() => Object.keys(lb.metrics().sentItems).every((ep) => lb.members.includes(ep)));
    assert.deepEqual(Object.keys(lb.metrics().sentItems).sort(), [EPS[0], extra].sort());
  }
  assert.deepEqual(series(), [EPS[0], '10.0.1.11:4317']);
  // and so are the per-backend queues' own series (kscope_exporter_*{exporter="<id>/<endpoint>"})
  const queues = () => [...new Set([...reg.render().matchAll(/^kscope_exporter_\w+\{[^}]*exporter="loadbalancing\/([^"]+)"/gm)].map((x) => x[1]))].sort();
  assert.deepEqual(queues(), [EPS[0], '10.0.1.11:4317']);

  // A backend that comes back counts again from zero.
  const before = be.spansOf(EPS[1]).length;
  assert.ok(before > 0);
  r.set([EPS[0], EPS[1]]);
  await lb.settled();
  await feed(300, 99);
  const back = lb.metrics().sentItems[EPS[1]];
  assert.equal(back, be.spansOf(EPS[1]).length - before, 'only what it got since it came back');
  assert.ok(back > 0, `${back}`);
  await lb.shutdown();
  assert.deepEqual(Object.keys(lb.metrics().sentItems).sort(), [EPS[0], EPS[1]]);
});
