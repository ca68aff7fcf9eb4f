import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryLimiter, validateMemoryLimiterConfig } from '../../collector/src/processors/memory_limiter/index.ts';
import { cgroupMemoryLimit } from '../../collector/src/processors/memory_limiter/cgroup.ts';
import { RateLimiter, validateRateLimitConfig } from '../../collector/src/processors/rate_limit/index.ts';
import { RoutingProcessor, validateRoutingConfig } from '../../collector/src/processors/routing/index.ts';
import { K8sAttributesProcessor, validateK8sAttributesConfig, peerIp } from '../../collector/src/processors/k8s_attributes/index.ts';
import { FanOutConsumer } from '../../collector/src/pipeline/consumers.ts';
import { ConfigError, PermanentError, RetryableError, ThrottledError } from '../../collector/src/component/errors.ts';
import { CaptureSink, makeTraces, makeLogs, testLogger } from '../../collector/src/testing/fixtures.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import { PodStore } from '../../lib/k8s/pod-store.ts';
import type { PodMeta } from '../../lib/k8s/pod-model.ts';
import { getAttr } from '../../proto/src/model.ts';

const host = { reportFatal() {} };
const settings = (id = 'p') => ({ id, logger: testLogger(), telemetry: new SelfTelemetry(new MetricsRegistry()) });

test('memory_limiter: refuses above soft limit (503-style or throttled), forces GC (rate-limited), recovers', async () => {
  const cfg = validateMemoryLimiterConfig({ limit_mib: 100, spike_limit_mib: 20, check_interval: '10ms', min_gc_interval: '10ms', min_gc_interval_when_soft_limited: '1s' }, 'processors.memory_limiter');
  assert.equal(cfg.softLimitBytes, 80 * 1024 * 1024);
  const MiB = 1024 * 1024;
  let mem = 50 * MiB;
  let afterGc = 0;
  let gcs = 0;
  let t = 0;
  const sink = new CaptureSink('traces');
  const ml = new MemoryLimiter(settings(), cfg, sink, { readMemory: () => mem, gc: () => { gcs++; mem = afterGc; }, now: () => t });
  await ml.start(host);
  await ml.consume(makeTraces(1), {});
  assert.equal(gcs, 0, 'no GC below the soft limit');
  mem = 85 * MiB; afterGc = 85 * MiB; t += 20;
  await assert.rejects(ml.consume(makeTraces(1), {}), RetryableError);
  assert.equal(gcs, 1, 'one GC when crossing the soft limit');
  t += 20;
  await assert.rejects(ml.consume(makeTraces(1), {}), RetryableError);
  assert.equal(gcs, 1, 'soft-limit GCs are rate-limited');
  mem = 120 * MiB; afterGc = 70 * MiB; t += 20;
  await ml.consume(makeTraces(1), {});
  assert.equal(gcs, 2, 'above the hard limit GC runs sooner, and freed memory means accepting again');
  mem = 60 * MiB; t += 20;
  await ml.consume(makeTraces(1), {});
  assert.equal(sink.items, 3);
  await ml.shutdown();

  const thr = validateMemoryLimiterConfig({ limit_mib: 10, refuse_with: 'resource_exhausted', retry_after: '2s' }, 'x');
  const ml2 = new MemoryLimiter(settings(), thr, sink, { readMemory: () => 100 * MiB, gc: () => {} });
  await ml2.start(host);
  await assert.rejects(ml2.consume(makeTraces(1), {}), (e: unknown) => e instanceof ThrottledError && e.retryAfterMs === 2000);
  await ml2.shutdown();
});

test('memory_limiter: config errors name the field; percentage uses the cgroup limit (v1 and v2)', () => {
  assert.throws(() => validateMemoryLimiterConfig({}, 'processors.ml'), (e: unknown) => e instanceof ConfigError && e.field === 'processors.ml.limit_mib');
  assert.throws(() => validateMemoryLimiterConfig({ limit_mib: 10, spike_limit_mib: 10 }, 'processors.ml'), (e: unknown) => e instanceof ConfigError && e.field === 'processors.ml.spike_limit_mib');
  const p = validateMemoryLimiterConfig({ limit_percentage: 50, spike_limit_percentage: 10 }, 'x', () => ({ bytes: 1000 * 1024 * 1024, source: 'cgroup2' }));
  assert.equal(p.hardLimitBytes, 500 * 1024 * 1024);
  assert.equal(p.softLimitBytes, 400 * 1024 * 1024);

  const root = mkdtempSync(join(tmpdir(), 'kscope-cg-'));
  try {
    // v2: limit on the parent is tighter than on the leaf.
    mkdirSync(join(root, 'v2/kubepods/pod1'), { recursive: true });
    writeFileSync(join(root, 'v2/cgroup.controllers'), 'memory');
    writeFileSync(join(root, 'v2/kubepods/memory.max'), String(512 * 1024 * 1024));
    writeFileSync(join(root, 'v2/kubepods/pod1/memory.max'), 'max');
    writeFileSync(join(root, 'cg2'), '0::/kubepods/pod1\n');
    assert.deepEqual(cgroupMemoryLimit(join(root, 'v2'), join(root, 'cg2')), { bytes: 512 * 1024 * 1024, source: 'cgroup2' });
    // v1 memory controller (hybrid host).
    mkdirSync(join(root, 'v1/memory/a/b'), { recursive: true });
    writeFileSync(join(root, 'v1/memory/a/b/memory.limit_in_bytes'), String(256 * 1024 * 1024));
    writeFileSync(join(root, 'v1/memory/memory.limit_in_bytes'), '9223372036854771712');
    writeFileSync(join(root, 'cg1'), '4:memory:/a/b\n0::/\n');
    assert.deepEqual(cgroupMemoryLimit(join(root, 'v1'), join(root, 'cg1')), { bytes: 256 * 1024 * 1024, source: 'cgroup1' });
    assert.equal(cgroupMemoryLimit(join(root, 'none'), join(root, 'missing')).source, 'host');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('rate_limit: tenant A over its limit is throttled with a retry delay while tenant B is not', async () => {
  const cfg = validateRateLimitConfig({
    default_tier: 'low',
    tiers: { low: { spans: { rate: 100, burst: 100 } }, high: { spans: { rate: 10000, burst: 10000 } } },
    overrides: { b: { tier: 'high' } },
  }, 'processors.rate_limit');
  let t = 0;
  const sink = new CaptureSink('traces');
  const s = settings();
  const rl = new RateLimiter(s, cfg, 'traces', sink, () => t);
  await rl.consume(makeTraces(100), { tenant: 'a' });
  await assert.rejects(rl.consume(makeTraces(50), { tenant: 'a' }), (e: unknown) => e instanceof ThrottledError && e.retryAfterMs === 500);
  for (let i = 0; i < 20; i++) await rl.consume(makeTraces(100), { tenant: 'b' });
  assert.equal(rl.tierOf('b'), 'high');
  assert.equal(rl.tierOf('a'), 'low');
  t += 500; // refilled 50 tokens
  await rl.consume(makeTraces(50), { tenant: 'a' });
  assert.equal(sink.items, 100 + 2000 + 50);
  assert.equal(s.telemetry.registry.get('kscope_rate_limit_throttled_items_total')!.sum({ tenant: 'a' }), 50);
  assert.equal(s.telemetry.registry.get('kscope_rate_limit_throttled_items_total')!.sum({ tenant: 'b' }), 0);
  // A request larger than the burst passes on a full bucket and leaves debt.
  t += 10_000;
  await rl.consume(makeTraces(300), { tenant: 'a' });
  await assert.rejects(rl.consume(makeTraces(1), { tenant: 'a' }), ThrottledError);
});

test('rate_limit: ctx.tier picks the tier, bytes bucket, delay mode, bounded tenant table, per-signal dimension', async () => {
  const cfg = validateRateLimitConfig({
    throttle_behavior: 'delay', max_delay: '200ms', max_tenants: 2,
    tiers: { medium: { log_records: { rate: 1000, burst: 10 }, bytes: { rate: '1KiB', burst: '1KiB' } }, high: {} },
  }, 'x');
  const sink = new CaptureSink('logs');
  const rl = new RateLimiter(settings(), cfg, 'logs', sink);
  const t0 = performance.now();
  await rl.consume(makeLogs(10), { tenant: 'm' });
  await rl.consume(makeLogs(10), { tenant: 'm' }); // delayed ~10 ms, not refused
  assert.ok(performance.now() - t0 >= 8);
  await rl.consume(makeLogs(1), { tenant: 'm2', bytes: 1024 * 1024 }); // larger than the burst: passes on a full bucket, leaves debt
  await assert.rejects(rl.consume(makeLogs(1), { tenant: 'm2', bytes: 10 }), ThrottledError, 'paying the debt takes longer than max_delay: refused');
  for (let i = 0; i < 5; i++) await rl.consume(makeLogs(100), { tenant: 'h', tier: 'high' }); // unlimited tier
  await rl.consume(makeLogs(1), { tenant: 'x' });
  assert.equal(rl.evictions, 2);
  assert.throws(() => validateRateLimitConfig({ overrides: { a: { tier: 'gold' } } }, 'processors.rl'), (e: unknown) => e instanceof ConfigError && e.field === 'processors.rl.overrides.a.tier');
  assert.throws(() => validateRateLimitConfig({ tiers: { low: { spans: { rate: 'fast' } } } }, 'processors.rl'), (e: unknown) => e instanceof ConfigError && e.field === 'processors.rl.tiers.low.spans.rate');
});

test('routing: by tenant with tier, by metadata, by resource attribute with split, default route', async () => {
  const a = new CaptureSink('traces');
  const b = new CaptureSink('traces');
  const d = new CaptureSink('traces');
  const fan = new FanOutConsumer('traces', [
    { id: 'otlp/a', consumer: a, mutates: false },
    { id: 'otlp/b', consumer: b, mutates: false },
    { id: 'debug', consumer: d, mutates: false },
  ]);
  const byTenant = new RoutingProcessor({ ...settings('routing'), pipeline: 'traces' }, validateRoutingConfig({
    table: [{ value: 'acme', exporters: ['otlp/a'], tier: 'high' }, { value: 'beta', exporters: ['otlp/a', 'otlp/b'] }],
    default_exporters: ['debug'],
  }, 'processors.routing'), 'traces', fan);
  await byTenant.consume(makeTraces(2), { tenant: 'acme' });
  await byTenant.consume(makeTraces(3), { tenant: 'beta' });
  await byTenant.consume(makeTraces(4), { tenant: 'other' });
  assert.deepEqual([a.items, b.items, d.items], [5, 3, 4]);
  assert.equal(a.batches[0].ctx.tier, 'high');

  const byHeader = new RoutingProcessor(settings('routing'), validateRoutingConfig({ from: 'metadata', attribute: 'X-Scope-OrgID', table: [{ value: 't1', exporters: ['otlp/b'] }] }, 'x'), 'traces', fan);
  await byHeader.consume(makeTraces(1), { metadata: { 'x-scope-orgid': 't1' } });
  await byHeader.consume(makeTraces(1), { metadata: { 'x-scope-orgid': 'nobody' } });
  assert.equal(b.items, 4);
  assert.equal(byHeader.unrouted, 1);

  const byService = new RoutingProcessor(settings('routing'), validateRoutingConfig({ from: 'resource_attribute', attribute: 'service.name', table: [{ value: 'cart', exporters: ['otlp/a'] }], default_exporters: ['debug'], drop_resource_routing_attribute: true }, 'x'), 'traces', fan);
  const mixed = makeTraces(2, [{ key: 'service.name', value: 'cart' }]);
  mixed.resourceSpans.push(...makeTraces(5, [{ key: 'service.name', value: 'shop' }]).resourceSpans);
  await byService.consume(mixed, {});
  assert.equal(a.items, 7);
  assert.equal(d.items, 9);
  assert.equal(getAttr(a.batches.at(-1)!.batch.resourceSpans[0].resource.attributes, 'service.name'), undefined);

  assert.throws(() => new RoutingProcessor(settings('routing'), validateRoutingConfig({ table: [{ value: 'x', exporters: ['nope'] }] }, 'x'), 'traces', fan), (e: unknown) => e instanceof ConfigError && e.field === 'processors.routing.table[0].exporters[0]');
  assert.throws(() => new RoutingProcessor(settings('routing'), validateRoutingConfig({}, 'x'), 'traces', a), /last processor/);
  assert.throws(() => validateRoutingConfig({ from: 'metadata' }, 'processors.routing'), (e: unknown) => e instanceof ConfigError && e.field === 'processors.routing.attribute');
});

function pod(over: Partial<PodMeta>): PodMeta {
  return {
    uid: 'uid-1', name: 'web-7d4-abc', namespace: 'shop', nodeName: 'node-1', podIP: '10.1.0.5', podIPs: ['10.1.0.5'], hostNetwork: false,
    labels: { app: 'web', team: 'a' }, annotations: {}, qosClass: 'burstable', phase: 'Running',
    containers: [{ name: 'web', id: 'c0ffee', runtime: 'containerd', image: 'web:1.2', imageName: 'web', imageTag: '1.2', kind: 'container' }],
    workloads: { deployment: 'web', replicaset: 'web-7d4', top: { kind: 'Deployment', name: 'web' } }, serviceName: 'web', resourceVersion: '1',
    ...over,
  };
}

test('k8s_attributes: associates by connection IP, pod uid, container id; extracts metadata and labels; never overwrites', async () => {
  const store = new PodStore();
  store.upsert(pod({}));
  store.upsert(pod({ uid: 'uid-2', name: 'db-0', podIP: '10.1.0.9', podIPs: ['10.1.0.9'], workloads: { statefulset: 'db' }, containers: [{ name: 'db', id: 'dbc1', runtime: 'containerd', image: 'pg:16', imageName: 'pg', imageTag: '16', kind: 'container' }] }));
  const cfg = validateK8sAttributesConfig({
    extract: { metadata: ['k8s.namespace.name', 'k8s.pod.name', 'k8s.deployment.name', 'k8s.statefulset.name', 'k8s.node.name', 'k8s.container.name'], labels: [{ key: 'app', tag_name: 'app' }] },
  }, 'processors.k8s_attributes');
  const sink = new CaptureSink('traces');
  const p = new K8sAttributesProcessor(settings(), cfg, 'traces', sink, store);
  await p.start(host);
  await p.consume(makeTraces(1, []), { peerAddress: '::ffff:10.1.0.5' });
  const r1 = sink.batches[0].batch.resourceSpans[0].resource.attributes;
  assert.equal(getAttr(r1, 'k8s.pod.name'), 'web-7d4-abc');
  assert.equal(getAttr(r1, 'k8s.deployment.name'), 'web');
  assert.equal(getAttr(r1, 'app'), 'web');
  assert.equal(getAttr(r1, 'k8s.container.name'), 'web', 'single container pod');

  await p.consume(makeTraces(1, [{ key: 'container.id', value: 'dbc1' }, { key: 'k8s.namespace.name', value: 'keep-me' }]), { peerAddress: '10.1.0.5' });
  const r2 = sink.batches[1].batch.resourceSpans[0].resource.attributes;
  assert.equal(getAttr(r2, 'k8s.pod.name'), 'db-0', 'container.id outranks the connection');
  assert.equal(getAttr(r2, 'k8s.statefulset.name'), 'db');
  assert.equal(getAttr(r2, 'k8s.namespace.name'), 'keep-me');

  await p.consume(makeTraces(1, [{ key: 'k8s.pod.uid', value: 'unknown' }]), { peerAddress: '192.0.2.1' });
  assert.equal(sink.batches[2].batch.resourceSpans[0].resource.attributes.length, 1);
  assert.equal(p.stats.unassociated, 1);
  assert.equal(peerIp('ipv4:10.0.0.1:4317'), '10.0.0.1');
  assert.equal(peerIp('[fd00::1]:80'), 'fd00::1');
  assert.throws(() => validateK8sAttributesConfig({ extract: { metadata: ['k8s.pod.colour'] } }, 'processors.k8s'), (e: unknown) => e instanceof ConfigError && e.field === 'processors.k8s.extract.metadata[0]');
});

test('fan-out: a mutating member never changes what a non-mutating member (e.g. a queued exporter) holds', async () => {
  const reader = new CaptureSink('traces');
  const mutator = { consume: async (b: ReturnType<typeof makeTraces>) => { b.resourceSpans[0].resource.attributes.push({ key: 'x', value: 1 }); } };
  const fan = new FanOutConsumer('traces', [
    { id: 'm', consumer: mutator as never, mutates: true },
    { id: 'r', consumer: reader, mutates: false },
  ]);
  const batch = makeTraces(1, []);
  await fan.consume(batch, {});
  assert.equal(reader.batches[0].batch.resourceSpans[0].resource.attributes.length, 0);
  assert.equal(batch.resourceSpans[0].resource.attributes.length, 0, 'the mutator got a copy');
});

test('routing: a permanent error on one route and a retryable one on another fail as retryable (the sender retries), and unrouted items are counted', async () => {
  const permanent = { consume: async () => { throw new PermanentError('route x refuses'); } };
  const retryable = { consume: () => new Promise<void>((_, reject) => setTimeout(() => reject(new RetryableError('route y: 503')), 20)) };
  const ok = new CaptureSink('traces');
  const fan = new FanOutConsumer('traces', [
    { id: 'otlp/x', consumer: permanent as never, mutates: false },
    { id: 'otlp/y', consumer: retryable as never, mutates: false },
    { id: 'otlp/ok', consumer: ok, mutates: false },
  ]);
  const s = { ...settings('routing'), pipeline: 'traces' };
  const r = new RoutingProcessor(s, validateRoutingConfig({
    from: 'resource_attribute', attribute: 'service.name',
    table: [{ value: 'x', exporters: ['otlp/x'] }, { value: 'y', exporters: ['otlp/y'] }, { value: 'ok', exporters: ['otlp/ok'] }],
  }, 'processors.routing'), 'traces', fan);
  const batch = makeTraces(1, [{ key: 'service.name', value: 'x' }]);
  batch.resourceSpans.push(...makeTraces(2, [{ key: 'service.name', value: 'y' }]).resourceSpans, ...makeTraces(3, [{ key: 'service.name', value: 'ok' }]).resourceSpans);
  // x fails first and permanently, y later and retryably: whichever fails first must not decide
  await assert.rejects(r.consume(batch, {}), (e: unknown) => e instanceof RetryableError, 'retryable outranks permanent');
  assert.equal(ok.items, 3, 'the other route got its data');

  // a resource with no route and no default is dropped by configuration: its items are counted and exported
  const unmatched = makeTraces(4, [{ key: 'service.name', value: 'nobody' }]);
  unmatched.resourceSpans.push(...makeTraces(2, [{ key: 'service.name', value: 'ok' }]).resourceSpans);
  await r.consume(unmatched, {});
  assert.equal(ok.items, 5);
  assert.equal(r.unrouted, 4);
  assert.match(s.telemetry.registry.render(), /kscope_routing_unrouted_items_total\{[^}]*processor="routing"[^}]*\} 4/);
});

test('rate_limit: time passes for every bucket (a request without bytes does not lose the bytes refill), and one id in several pipelines shares its tenants', async () => {
  const cfg = validateRateLimitConfig({ tiers: { medium: { bytes: { rate: 1000, burst: 1000 } } } }, 'processors.rate_limit');
  let t = 0;
  const traces = new RateLimiter(settings('rate_limit'), cfg, 'traces', new CaptureSink('traces'), () => t);
  await traces.consume(makeTraces(1), { tenant: 'a', bytes: 1000 }); // empties the bytes bucket
  t += 10_000; // ten idle seconds: full again
  await traces.consume(makeTraces(1), { tenant: 'a' }); // no ctx.bytes (a transport that does not know them)
  await traces.consume(makeTraces(1), { tenant: 'a', bytes: 500 }); // must not be refused

  // The logs pipeline's instance of the same processor id draws on the same bytes bucket.
  const logs = new RateLimiter(settings('rate_limit'), cfg, 'logs', new CaptureSink('logs'), () => t);
  await logs.consume(makeLogs(1), { tenant: 'a', bytes: 500 }); // the bucket's last 500
  await assert.rejects(traces.consume(makeTraces(1), { tenant: 'a', bytes: 500 }), ThrottledError, 'traces and logs share tenant a\'s bytes per second');
  // another config (another processor id) has its own table
  const other = new RateLimiter(settings('rate_limit/2'), validateRateLimitConfig({ tiers: { medium: { bytes: { rate: 1000, burst: 1000 } } } }, 'x'), 'traces', new CaptureSink('traces'), () => t);
  await other.consume(makeTraces(1), { tenant: 'a', bytes: 1000 });
});

test('memory_limiter: forces V8 GCs without --expose-gc (the image runs without it), and takes otelcol\'s min_gc_interval_when_hard_limited', async () => {
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'this test runs without --expose-gc');
  let used = 10 * 1024 * 1024 * 1024; // far above the hard limit
  const cfg = validateMemoryLimiterConfig({ limit_mib: 100, min_gc_interval_when_hard_limited: '0s' }, 'processors.memory_limiter');
  assert.equal(cfg.minGcIntervalMs, 0);
  const ml = new MemoryLimiter(settings('memory_limiter'), cfg, new CaptureSink('traces'), { readMemory: () => used });
  ml.check();
  assert.equal(ml.gcRuns, 1, 'a full GC was forced');
  used = 0;
  ml.check();
  assert.equal(ml.isRefusing, false);
  assert.throws(
    () => validateMemoryLimiterConfig({ limit_mib: 100, min_gc_interval: '1s', min_gc_interval_when_hard_limited: '1s' }, 'processors.memory_limiter'),
    (e: unknown) => e instanceof ConfigError && e.field === 'processors.memory_limiter.min_gc_interval_when_hard_limited',
  );
});
