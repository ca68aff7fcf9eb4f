import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../collector/src/config/load.ts';
import { ConfigReader } from '../../collector/src/config/reader.ts';
import { FactoryRegistry } from '../../collector/src/pipeline/registry.ts';
import { Service } from '../../collector/src/pipeline/service.ts';
import type { Consumer, ExporterFactory, ProcessorFactory, ReceiverFactory, RequestContext } from '../../collector/src/component/index.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';
import { CaptureSink, makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import { getAttr, type SignalType, type TracesData } from '../../proto/src/model.ts';

const events: string[] = [];
const receivers = new Map<string, Consumer>();
const sinks = new Map<string, CaptureSink<'traces'>>();

const testReceiver: ReceiverFactory<object> = {
  type: 'test', kind: 'receiver', signals: ['traces', 'logs'],
  defaultConfig: () => ({}),
  validate: (raw, path) => { new ConfigReader(raw, path).done(); return {}; },
  create: (s, _c, signal, next) => {
    receivers.set(`${s.id}:${signal}`, next as Consumer);
    return { start: async () => { events.push(`start r ${s.id}`); }, shutdown: async () => { events.push(`stop r ${s.id}`); } };
  },
};

interface TagCfg { key: string; value: string }
/** Adds an attribute to each resource (mutates) and holds one batch until shutdown to test flushing. */
const tagProcessor: ProcessorFactory<TagCfg> = {
  type: 'tag', kind: 'processor', signals: ['traces'], mutatesData: true,
  defaultConfig: () => ({ key: 'tag', value: 'x' }),
  validate: (raw, path) => {
    const r = new ConfigReader(raw, path);
    const c = { key: r.str('key', 'tag'), value: r.str('value', '') };
    if (!c.value) throw new ConfigError(r.field('value'), 'is required');
    r.done();
    return c;
  },
  create: <S extends SignalType>(s: { id: string }, c: TagCfg, _signal: S, next: Consumer<S>) => {
    let held: { b: TracesData; ctx: RequestContext } | undefined;
    return {
      start: async () => { events.push(`start p ${s.id}`); },
      shutdown: async () => {
        events.push(`stop p ${s.id}`);
        if (held) await (next as Consumer<'traces'>).consume(held.b, held.ctx);
        held = undefined;
      },
      consume: async (b, ctx) => {
        for (const rs of (b as TracesData).resourceSpans) rs.resource.attributes.push({ key: c.key, value: c.value });
        if (ctx.metadata?.hold === '1') { held = { b: b as TracesData, ctx }; return; }
        await next.consume(b as never, ctx);
      },
    };
  },
};

const testExporter: ExporterFactory<object> = {
  type: 'sink', kind: 'exporter', signals: ['traces', 'logs'],
  defaultConfig: () => ({}),
  validate: (raw, path) => { new ConfigReader(raw, path).done(); return {}; },
  create: (s, _c, signal) => {
    const sink = new CaptureSink(signal);
    sinks.set(`${s.id}:${signal}`, sink as unknown as CaptureSink<'traces'>);
    return {
      start: async () => { events.push(`start e ${s.id}`); },
      shutdown: async () => { events.push(`stop e ${s.id}`); },
      consume: (b, ctx) => sink.consume(b, ctx),
    };
  },
};

function registry() {
  return new FactoryRegistry().register(testReceiver, tagProcessor, testExporter);
}

test('fan-out, fan-in, per-pipeline copies, ordered start and flushing shutdown', async () => {
  events.length = 0;
  receivers.clear();
  sinks.clear();
  const cfg = parseConfig(parseYaml(`
receivers: { test/a: {}, test/b: {} }
processors: { tag/one: { value: one }, tag/two: { value: two } }
exporters: { sink/x: {}, sink/y: {} }
service:
  pipelines:
    traces/1: { receivers: [test/a], processors: [tag/one], exporters: [sink/x, sink/y] }
    traces/2: { receivers: [test/a, test/b], processors: [tag/two], exporters: [sink/y] }
    logs: { receivers: [test/a], exporters: [sink/x] }
`));
  const svc = new Service(cfg, registry(), { logger: testLogger() });
  await svc.start();
  assert.deepEqual(events.slice(0, 2).sort(), ['start e sink/x', 'start e sink/y']);
  assert.ok(events.indexOf('start p tag/one') > 1 && events.indexOf('start r test/a') > events.indexOf('start p tag/two'));

  // test/a feeds traces/1 and traces/2 (fan-out); sink/y is fed by both pipelines (fan-in).
  await receivers.get('test/a:traces')!.consume(makeTraces(3), { tenant: 't1' });
  const x = sinks.get('sink/x:traces')!;
  const y = sinks.get('sink/y:traces')!;
  assert.equal(x.items, 3);
  assert.equal(y.items, 6);
  // Each pipeline saw its own copy: no batch carries both tags.
  for (const { batch } of [...x.batches, ...y.batches]) {
    const attrs = batch.resourceSpans[0].resource.attributes;
    assert.equal(attrs.filter((a) => a.key === 'tag').length, 1);
  }
  assert.deepEqual(y.batches.map((b) => getAttr(b.batch.resourceSpans[0].resource.attributes, 'tag')).sort(), ['one', 'two']);
  assert.equal(sinks.get('sink/x:logs')!.items, 0);

  // test/b only feeds traces/2; counters per component and tenant are kept.
  await receivers.get('test/b:traces')!.consume(makeTraces(2), { tenant: 't2', metadata: { hold: '1' } });
  assert.equal(y.items, 6, 'held by tag/two until shutdown');
  const acc = svc.telemetry.accepted;
  assert.equal(acc.sum({ kind: 'exporter', component: 'sink/y', tenant: 't1' }), 6);
  assert.equal(acc.sum({ kind: 'processor', component: 'tag/one', tenant: 't1' }), 3);

  await svc.shutdown();
  assert.equal(y.items, 8, 'shutdown flushed the held batch before exporters stopped');
  const stopR = events.indexOf('stop r test/a');
  const stopP = events.indexOf('stop p tag/two');
  const stopE = events.indexOf('stop e sink/y');
  assert.ok(stopR < stopP && stopP < stopE, events.join(' | '));
  await svc.shutdown(); // idempotent
});

test('a processor config error names the field; an unsupported signal names the pipeline entry', () => {
  const bad = parseConfig(parseYaml(`
receivers: { test: {} }
processors: { tag: { value: "" } }
exporters: { sink: {} }
service: { pipelines: { traces: { receivers: [test], processors: [tag], exporters: [sink] } } }`));
  assert.throws(() => new Service(bad, registry(), { logger: testLogger() }), (e: unknown) => e instanceof ConfigError && e.field === 'processors.tag.value');
  const metrics = parseConfig(parseYaml(`
receivers: { test: {} }
exporters: { sink: {} }
service: { pipelines: { metrics: { receivers: [test], exporters: [sink] } } }`));
  assert.throws(() => new Service(metrics, registry(), { logger: testLogger() }), (e: unknown) => e instanceof ConfigError && e.field === 'service.pipelines.metrics.receivers[0]');
});

test('routing into pipelines: each target runs its own processors on its own copy; a routing loop is refused at start', async () => {
  const { routingFactory } = await import('../../collector/src/processors/routing/index.ts');
  sinks.clear();
  const reg = registry().register(routingFactory);
  const cfg = parseConfig(parseYaml(`
receivers: { test/in: {} }
processors:
  routing: { table: [ { value: acme, pipelines: [traces/acme, traces/audit] } ], default_exporters: [sink/default] }
  tag/acme: { value: acme }
  tag/audit: { value: audit }
exporters: { sink/default: {}, sink/acme: {}, sink/audit: {} }
service:
  pipelines:
    traces/in: { receivers: [test/in], processors: [routing], exporters: [sink/default] }
    traces/acme: { processors: [tag/acme], exporters: [sink/acme] }
    traces/audit: { processors: [tag/audit], exporters: [sink/audit] }
`));
  const svc = new Service(cfg, reg, { logger: testLogger() });
  await svc.start();
  await receivers.get('test/in:traces')!.consume(makeTraces(2), { tenant: 'acme' });
  await receivers.get('test/in:traces')!.consume(makeTraces(3), { tenant: 'other' });
  const tagOf = (id: string) => sinks.get(`${id}:traces`)!.batches.map((b) => b.batch.resourceSpans[0].resource.attributes.filter((a) => a.key === 'tag').map((a) => a.value));
  assert.deepEqual(tagOf('sink/acme'), [['acme']]);
  assert.deepEqual(tagOf('sink/audit'), [['audit']]);
  assert.equal(sinks.get('sink/default:traces')!.items, 3);
  await svc.shutdown();

  const loop = parseConfig(parseYaml(`
receivers: { test/in: {} }
processors:
  routing: { table: [ { value: a, pipelines: [traces/b] } ] }
  routing/b: { table: [ { value: a, pipelines: [traces] } ], default_exporters: [sink] }
exporters: { sink: {} }
service:
  pipelines:
    traces: { receivers: [test/in], processors: [routing], exporters: [sink] }
    traces/b: { processors: [routing/b], exporters: [sink] }
`));
  const bad = new Service(loop, reg, { logger: testLogger() });
  await assert.rejects(bad.start(), (e: unknown) => e instanceof ConfigError && /routes itself/.test(e.message));
});
