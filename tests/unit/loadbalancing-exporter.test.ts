// Load-balancing exporter with in-process backends: trace-id splitting, resource routing,
// membership changes, re-routing of in-flight data, resolvers, config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import {
  createLoadBalancingExporterFactory, DnsResolver, K8sResolver, LoadBalancingExporter, validateConfig,
  type EndpointSliceLike, type SliceHandlers,
} from '../../collector/src/exporters/loadbalancing/index.ts';
import { hex, span, tid, traces, attrs } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import { makeGaugeMetrics } from '../../collector/src/testing/fixtures.ts';
import { Backends, EPS, ManualResolver, host, lbConfig, settings, until } from './loadbalancing-helpers.ts';
import type { LogsData, MetricsData, TracesData } from '../../proto/src/model.ts';
import { ConfigError, RetryableError } from '../../collector/src/component/errors.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';

test('every span of a trace goes to the same backend; batches are split per endpoint', async () => {
  const be = new Backends();
  const lb = new LoadBalancingExporter(settings, lbConfig(), 'traces', be.factory);
  await lb.start(host);
  // 300 traces × 4 spans, spread over 4 batches with interleaved traces.
  for (let part = 0; part < 4; part++) {
    const spans = [];
    for (let t = 0; t < 300; t++) spans.push(span(tid(t, 42), { name: `s${part}` }));
    await lb.consume(traces(spans), {});
  }
  await lb.shutdown();
  const homes = be.traceHomes();
  assert.equal(homes.size, 300);
  for (const [t, eps] of homes) assert.equal(eps.size, 1, `trace ${t} split over ${[...eps]}`);
  let total = 0;
  for (const ep of EPS) {
    const n = be.spansOf(ep).length;
    assert.ok(n > 200, `${ep} got ${n}`);
    total += n;
  }
  assert.equal(total, 1200);
  assert.deepEqual(lb.metrics().backends, EPS);
  // Resource and scope are shared, not copied, in the per-endpoint batches.
  const b0 = be.got.get(EPS[0])![0] as TracesData;
  assert.equal(b0.resourceSpans.length, 1);
  assert.equal(b0.resourceSpans[0].resource.attributes[0].value, 'checkout');
});

test('metrics route by service.name (default), logs by trace id (routing_key: traceID)', async () => {
  const be = new Backends();
  const lbm = new LoadBalancingExporter(settings, lbConfig(), 'metrics', be.factory);
  await lbm.start(host);
  // one gauge point per resource: batches without data points are not sent at all
  const rm = (svc: string) => ({
    ...makeGaugeMetrics(1).resourceMetrics[0]!,
    resource: { attributes: attrs({ 'service.name': svc, 'host.name': `h-${Math.random()}` }), droppedAttributesCount: 0 },
  });
  const services = Array.from({ length: 30 }, (_, i) => `svc-${i}`);
  for (let round = 0; round < 3; round++) await lbm.consume({ resourceMetrics: services.map(rm) } as MetricsData, {});
  await lbm.shutdown();
  const home = new Map<string, Set<string>>();
  for (const [ep, bs] of be.got) for (const b of bs as MetricsData[]) for (const r of b.resourceMetrics) {
    const svc = r.resource.attributes[0].value as string;
    if (!home.has(svc)) home.set(svc, new Set());
    home.get(svc)!.add(ep);
  }
  assert.equal(home.size, 30);
  for (const eps of home.values()) assert.equal(eps.size, 1);
  assert.ok(be.got.size >= 2, 'services spread over backends');

  const bl = new Backends();
  const lbl = new LoadBalancingExporter(settings, lbConfig({ routing_key: 'traceID' }), 'logs', bl.factory);
  await lbl.start(host);
  const rec = (t: number) => ({
    timeUnixNano: 1n, observedTimeUnixNano: 1n, severityNumber: 9, severityText: 'INFO', body: 'x', attributes: [],
    droppedAttributesCount: 0, flags: 0, traceId: tid(t, 5), spanId: new Uint8Array(8), eventName: '',
  });
  const logs: LogsData = { resourceLogs: [{ resource: { attributes: [], droppedAttributesCount: 0 }, scopeLogs: [{ scope: { name: '', version: '', attributes: [], droppedAttributesCount: 0 }, logRecords: [...Array(200).keys()].map((t) => rec(t % 50)), schemaUrl: '' }], schemaUrl: '' }] };
  await lbl.consume(logs, {});
  await lbl.shutdown();
  const lhome = new Map<string, Set<string>>();
  for (const [ep, bs] of bl.got) for (const b of bs as LogsData[]) for (const r of b.resourceLogs[0].scopeLogs[0].logRecords) {
    const k = hex(r.traceId);
    if (!lhome.has(k)) lhome.set(k, new Set());
    lhome.get(k)!.add(ep);
  }
  assert.equal(lhome.size, 50);
  for (const eps of lhome.values()) assert.equal(eps.size, 1);
  assert.equal(bl.got.size, 3);
});

test('no backend resolved: the batch is refused as retryable', async () => {
  const be = new Backends();
  const r = new ManualResolver([]);
  const lb = new LoadBalancingExporter(settings, lbConfig(), 'traces', be.factory, r);
  await lb.start(host);
  await assert.rejects(lb.consume(traces([span(tid(1))]), {}), RetryableError);
  assert.equal(lb.metrics().noBackendItems, 1);
  await lb.shutdown();
});

test('a membership change rebalances: later spans of moved traces go to the new owner', async () => {
  const be = new Backends();
  const r = new ManualResolver(EPS.slice(0, 2));
  const lb = new LoadBalancingExporter(settings, lbConfig(), 'traces', be.factory, r);
  await lb.start(host);
  const ids = Array.from({ length: 600 }, (_, i) => tid(i, 77));
  await lb.consume(traces(ids.map((id) => span(id))), {});
  r.set(EPS);
  await lb.settled();
  assert.deepEqual(lb.members, EPS);
  await lb.consume(traces(ids.map((id) => span(id))), {});
  await lb.shutdown();
  const homes = be.traceHomes();
  let split = 0;
  for (const eps of homes.values()) if (eps.size > 1) {
    split++;
    assert.ok(eps.has(EPS[2]), 'a moved trace moved to the new member');
  }
  // About a third of the traces moved to the new member.
  assert.ok(split > 600 * 0.2 && split < 600 * 0.47, `moved ${split}`);
  assert.equal(be.spansOf(EPS[2]).length, split);
});

test('data in flight to a removed backend is re-routed to the new owners', async () => {
  const be = new Backends();
  const r = new ManualResolver(EPS);
  const lb = new LoadBalancingExporter(settings, lbConfig(), 'traces', be.factory, r);
  await lb.start(host);
  const dead = EPS[1];
  be.hang.add(dead); // the backend stopped answering
  const ids = Array.from({ length: 300 }, (_, i) => tid(i, 99));
  // Accepted into the per-backend queues; the dead backend's sends hang.
  await lb.consume(traces(ids.map((id) => span(id))), {});
  await lb.consume(traces(ids.map((id) => span(id))), {});
  await until(() => be.spansOf(EPS[0]).length + be.spansOf(EPS[2]).length > 0);
  assert.equal(be.spansOf(dead).length, 0);
  // The resolver notices (EndpointSlice not ready / DNS gone) and drops it.
  r.set([EPS[0], EPS[2]]);
  await lb.settled();
  await until(() => be.spansOf(EPS[0]).length + be.spansOf(EPS[2]).length === 600);
  assert.ok(be.abortedSends >= 1, 'hanging sends were aborted on removal');
  const m = lb.metrics();
  assert.ok(m.reroutedItems > 0);
  // Every trace ends up complete on exactly one live backend.
  const homes = be.traceHomes();
  assert.equal(homes.size, 300);
  for (const eps of homes.values()) {
    assert.equal(eps.size, 1);
    assert.ok(!eps.has(dead));
  }
  await lb.shutdown();
});

test('DNS resolver: periodic re-resolve, keeps the last list on errors, times out', async () => {
  let answer: string[] | Error = ['10.1.0.2', '10.1.0.1'];
  let calls = 0;
  const lists: string[][] = [];
  const r = new DnsResolver({
    hostname: 'sampling-headless.obs.svc.cluster.local', port: 4317, intervalMs: 100_000, timeoutMs: 50,
    lookup: async () => {
      calls++;
      if (answer instanceof Error) throw answer;
      if (answer.length === 0) return new Promise<string[]>(() => {}); // never answers
      return answer;
    },
  });
  await r.start((eps) => lists.push(eps));
  assert.deepEqual(lists, [['10.1.0.1:4317', '10.1.0.2:4317']]);
  await r.resolveNow(); // same answer: no event
  assert.equal(lists.length, 1);
  answer = ['10.1.0.1', '10.1.0.3', 'fd00::5'];
  await r.resolveNow();
  assert.deepEqual(lists[1], ['10.1.0.1:4317', '10.1.0.3:4317', '[fd00::5]:4317']);
  answer = new Error('SERVFAIL');
  await r.resolveNow();
  answer = [];
  await r.resolveNow(); // timeout
  assert.equal(lists.length, 2, 'errors and timeouts keep the last endpoints');
  assert.equal(r.stats.errors, 2);
  assert.match(r.stats.lastError!, /timed out/);
  assert.equal(calls, 5);
  await r.shutdown();
});

test('DNS resolver with the system resolver finds localhost', async () => {
  const lists: string[][] = [];
  const r = new DnsResolver({ hostname: 'localhost', port: 4317, intervalMs: 100_000, timeoutMs: 2000 });
  await r.start((eps) => lists.push(eps));
  await r.shutdown();
  assert.equal(lists.length, 1);
  assert.ok(lists[0].some((e) => e === '127.0.0.1:4317' || e === '[::1]:4317'), JSON.stringify(lists));
});

test('k8s resolver: ready endpoints of all slices × ports; not-ready and terminating leave', async () => {
  let h!: SliceHandlers;
  const source = { async start(x: SliceHandlers) { h = x; x.reset([]); }, async stop() {} };
  const lists: string[][] = [];
  const r = new K8sResolver({ service: 'sampling.obs', ports: [4317], source });
  await r.start((eps) => lists.push(eps));
  const slice = (name: string, eps: Array<[string, boolean?, boolean?]>, addressType = 'IPv4'): EndpointSliceLike => ({
    metadata: { name, namespace: 'obs', uid: name }, addressType,
    endpoints: eps.map(([a, ready, term]) => ({ addresses: [a], conditions: { ready, terminating: term } })),
  });
  h.upsert(slice('a', [['10.2.0.1', true], ['10.2.0.2', undefined]]));
  assert.deepEqual(lists.at(-1), ['10.2.0.1:4317', '10.2.0.2:4317']);
  h.upsert(slice('b', [['fd00::7', true]], 'IPv6'));
  assert.deepEqual(lists.at(-1), ['10.2.0.1:4317', '10.2.0.2:4317', '[fd00::7]:4317']);
  h.upsert(slice('a', [['10.2.0.1', false], ['10.2.0.2', true, true], ['10.2.0.3', true]]));
  assert.deepEqual(lists.at(-1), ['10.2.0.3:4317', '[fd00::7]:4317']);
  h.remove(slice('b', []));
  assert.deepEqual(lists.at(-1), ['10.2.0.3:4317']);
  const n = lists.length;
  h.upsert(slice('a', [['10.2.0.3', true]])); // no change: no event
  assert.equal(lists.length, n);
  await r.shutdown();
});

test('config: errors name the field; the testdata example validates', () => {
  const bad = (raw: unknown, field: string) =>
    assert.throws(() => validateConfig(raw, 'exporters.loadbalancing'), (e: unknown) => e instanceof ConfigError && e.field === field, field);
  bad({}, 'exporters.loadbalancing.resolver.static');
  bad({ resolver: { static: { hostnames: ['nohost'] } } }, 'exporters.loadbalancing.resolver.static.hostnames[0]');
  bad({ resolver: { static: { hostnames: ['a:1'] }, dns: { hostname: 'x' } } }, 'exporters.loadbalancing.resolver.dns');
  bad({ resolver: { dns: { hostname: 'x', port: 70000 } } }, 'exporters.loadbalancing.resolver.dns.port');
  bad({ resolver: { k8s: { service: 'Bad_Name' } } }, 'exporters.loadbalancing.resolver.k8s.service');
  bad({ routing_key: 'spanID', resolver: { static: { hostnames: ['a:1'] } } }, 'exporters.loadbalancing.routing_key');
  bad({ resolver: { static: { hostnames: ['a:1'] } }, sending_queue: { queue_size: 0 } }, 'exporters.loadbalancing.sending_queue.queue_size');
  // the per-backend client's keys are checked at validation, not when the first backend starts
  bad({ resolver: { static: { hostnames: ['a:1'] } }, protocol: { otlp: { compresion: 'gzip' } } }, 'exporters.loadbalancing.protocol.otlp.compresion');
  bad({ resolver: { static: { hostnames: ['a:1'] } }, protocol: { otlp: { keepalive: { time: 'soon' } } } }, 'exporters.loadbalancing.protocol.otlp.keepalive.time');
  bad({ resolver: { static: { hostnames: ['a:1'] } }, bogus: 1 }, 'exporters.loadbalancing.bogus');
  const doc = parse(readFileSync(new URL('../../collector/src/exporters/loadbalancing/testdata/config.yaml', import.meta.url), 'utf8'));
  for (const [id, raw] of Object.entries(doc.exporters as Record<string, unknown>)) {
    const c = validateConfig(raw, `exporters.${id}`);
    assert.ok(c.virtualNodes > 0);
  }
  const k = validateConfig(doc.exporters['loadbalancing/k8s'], 'x');
  assert.deepEqual(k.resolver, { type: 'k8s', service: 'kscope-collector-sampling.kscope', ports: [4317], kubeconfig: undefined });
});

test('the factory creates exporters for all three signals', async () => {
  const be = new Backends();
  const f = createLoadBalancingExporterFactory({ senderFactory: be.factory });
  assert.deepEqual(f.signals, ['traces', 'metrics', 'logs']);
  const cfg = f.validate({ resolver: { static: { hostnames: ['127.0.0.1:1'] } } }, 'exporters.loadbalancing');
  const e = f.create(settings, cfg, 'traces');
  await e.start(host);
  await e.consume(traces([span(tid(5))]), {});
  await e.shutdown();
  assert.equal(be.spansOf('127.0.0.1:1').length, 1);
  await assert.rejects(e.consume(traces([span(tid(5))]), {}));
});

test('self-telemetry: backends, re-routes and per-backend items', async () => {
  const be = new Backends();
  const reg = new MetricsRegistry();
  const r = new ManualResolver(EPS);
  const lb = new LoadBalancingExporter({ ...settings, telemetry: new SelfTelemetry(reg) }, lbConfig(), 'traces', be.factory, r);
  await lb.start(host);
  await lb.consume(traces(Array.from({ length: 90 }, (_, i) => span(tid(i, 3)))), {});
  await until(() => be.spansOf(EPS[0]).length + be.spansOf(EPS[1]).length + be.spansOf(EPS[2]).length === 90);
  const text = reg.render();
  assert.match(text, /kscope_loadbalancer_num_backends\{exporter="loadbalancing",signal="traces"\} 3/);
  const sent = [...text.matchAll(/kscope_loadbalancer_backend_sent_items_total\{[^}]*\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  assert.equal(sent, 90);
  await lb.shutdown();
});
