// Shutdown order of linked pipelines: a pipeline whose routing processor forwards into other
// pipelines flushes before those pipelines stop, so what it flushes at shutdown is not refused
// with ShutdownError and lost; pipelines that do not feed each other still stop in parallel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { Collector } from '../../collector/src/collector.ts';
import { parseConfig } from '../../collector/src/config/load.ts';
import { ConfigReader } from '../../collector/src/config/reader.ts';
import { FactoryRegistry } from '../../collector/src/pipeline/registry.ts';
import { Service } from '../../collector/src/pipeline/service.ts';
import { ShutdownError, type Consumer, type ProcessorFactory, type RequestContext } from '../../collector/src/component/index.ts';
import { routingFactory } from '../../collector/src/processors/routing/index.ts';
import { tailSamplingProcessorFactory, type TailSamplingProcessor } from '../../collector/src/processors/tail_sampling/index.ts';
import { captureExporterFactory, sinkOf } from '../../collector/src/testing/components.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { SignalType, TracesData } from '../../proto/src/model.ts';

const events: string[] = [];
const shutdownCalls = new Map<string, number>();

/**
 * Holds every batch until shutdown, then forwards it; refuses with ShutdownError once stopping,
 * like the real components. Its shutdown yields a few times before and while flushing, so a
 * component that is not ordered after it really runs in between.
 */
const holdProcessor: ProcessorFactory<object> = {
  type: 'hold', kind: 'processor', signals: ['traces'],
  defaultConfig: () => ({}),
  validate: (raw, path) => { new ConfigReader(raw, path).done(); return {}; },
  create: <S extends SignalType>(s: { id: string; pipeline?: string }, _c: unknown, _signal: S, next: Consumer<S>) => {
    const name = `${s.pipeline}/${s.id}`;
    const held: Array<{ b: TracesData; ctx: RequestContext }> = [];
    let stopping: Promise<void> | undefined;
    return {
      start: async () => {},
      shutdown: () => {
        shutdownCalls.set(name, (shutdownCalls.get(name) ?? 0) + 1);
        stopping ??= (async () => {
          events.push(`stop ${name}`);
          for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
          for (const h of held.splice(0)) await (next as Consumer<'traces'>).consume(h.b, h.ctx);
          events.push(`stopped ${name}`);
        })();
        return stopping;
      },
      consume: async (b, ctx) => {
        if (stopping) throw new ShutdownError(`${name} is shutting down`);
        held.push({ b: b as TracesData, ctx });
      },
    };
  },
};

function registry() {
  return new FactoryRegistry().register(tailSamplingProcessorFactory, routingFactory, holdProcessor, captureExporterFactory);
}

const sampler = `{ decision_wait: 1h, policies: [ { name: all, type: always_sample } ] }`;

test('a routing pipeline flushes into its target pipelines before they stop; nothing is refused or dropped', async () => {
  events.length = 0;
  shutdownCalls.clear();
  // traces/a is listed before the source and traces/z after it: the order of the config must not
  // matter. Both targets hold data themselves until shutdown (tail_sampling, hold).
  const cfg = parseConfig(parseYaml(`
processors:
  tail_sampling: ${sampler}
  tail_sampling/a: ${sampler}
  tail_sampling/z: ${sampler}
  hold/in: {}
  hold/a: {}
  hold/z: {}
  routing: { table: [ { value: a, pipelines: [traces/a] }, { value: z, pipelines: [traces/z] } ] }
exporters: { capture/in: {}, capture/a: {}, capture/z: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines:
    traces/a: { processors: [tail_sampling/a, hold/a], exporters: [capture/a] }
    traces/in: { processors: [hold/in, tail_sampling, routing], exporters: [capture/in] }
    traces/z: { processors: [hold/z, tail_sampling/z], exporters: [capture/z] }
`));
  const col = new Collector(cfg, { registry: registry(), logger: testLogger() });
  await col.start();
  const entry = col.service.entries.get('traces/in')!;
  let sentA = 0;
  let sentZ = 0;
  for (let i = 0; i < 6; i++) {
    const n = 3 + i;
    const tenant = i % 2 === 0 ? 'a' : 'z';
    await entry.consume(makeTraces(n, [{ key: 'service.name', value: `svc-${i}` }]), { tenant });
    if (tenant === 'a') sentA += n;
    else sentZ += n;
  }
  // Everything is still held: by hold/in (and nothing is decided before decision_wait).
  assert.equal(sinkOf('capture/a', 'traces').items + sinkOf('capture/z', 'traces').items, 0);

  await col.shutdown();

  assert.equal(sinkOf('capture/a', 'traces').items, sentA, 'every span routed to traces/a reached its exporter');
  assert.equal(sinkOf('capture/z', 'traces').items, sentZ, 'every span routed to traces/z reached its exporter');
  assert.equal(sinkOf('capture/in', 'traces').items, 0);
  assert.ok(sinkOf('capture/a', 'traces').batches.every((b) => b.ctx.tenant === 'a'));
  assert.ok(sinkOf('capture/z', 'traces').batches.every((b) => b.ctx.tenant === 'z'));

  for (const id of ['tail_sampling', 'tail_sampling/a', 'tail_sampling/z']) {
    const ts = col.service.components.find((c) => c.id === id)!.component as unknown as TailSamplingProcessor;
    const m = ts.metrics();
    assert.equal(m.forwardErrors, 0, `${id}: a flush was refused downstream`);
    assert.equal(m.shutdown.spansDropped, 0, id);
  }
  const tel = col.service.telemetry;
  assert.equal(tel.refused.sum(), 0, 'no component refused data (ShutdownError) during shutdown');
  assert.equal(tel.dropped.sum(), 0);
  assert.equal(tel.accepted.sum({ kind: 'exporter', component: 'capture/a' }), sentA);
  assert.equal(tel.accepted.sum({ kind: 'exporter', component: 'capture/z' }), sentZ);

  // The source chain finished flushing before any target processor began to stop.
  const srcDone = events.indexOf('stopped traces/in/hold/in');
  assert.ok(srcDone >= 0 && srcDone < events.indexOf('stop traces/a/hold/a') && srcDone < events.indexOf('stop traces/z/hold/z'), events.join(' | '));

  await col.shutdown(); // idempotent
  await col.service.shutdown();
  for (const [name, n] of shutdownCalls) assert.equal(n, 1, `${name} shut down once`);
});

test('pipelines that do not feed each other flush in parallel; exporters stop after every pipeline using them', async () => {
  events.length = 0;
  shutdownCalls.clear();
  const cfg = parseConfig(parseYaml(`
processors: { hold/1: {}, hold/2: {} }
exporters: { capture/shared: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines:
    traces/1: { processors: [hold/1], exporters: [capture/shared] }
    traces/2: { processors: [hold/2], exporters: [capture/shared] }
`));
  const svc = new Service(cfg, registry(), { logger: testLogger() });
  await svc.start();
  await svc.entries.get('traces/1')!.consume(makeTraces(2), {});
  await svc.entries.get('traces/2')!.consume(makeTraces(3), {});
  const sink = sinkOf('capture/shared', 'traces');
  const stop = sink.shutdown.bind(sink);
  let itemsAtStop = -1;
  sink.shutdown = async () => { itemsAtStop = sink.items; await stop(); };
  await svc.shutdown();
  // Both flushes began before either finished: neither pipeline waited for the other.
  assert.deepEqual(events.slice(0, 2).sort(), ['stop traces/1/hold/1', 'stop traces/2/hold/2'], events.join(' | '));
  assert.equal(itemsAtStop, 5, 'the shared exporter stopped only after both pipelines flushed into it');
  assert.equal(sink.items, 5);
});
