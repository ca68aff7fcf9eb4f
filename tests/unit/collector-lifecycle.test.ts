// One lifecycle test over every built-in factory: defaultConfig validates, create → start →
// consume → shutdown works, shutdown is idempotent and safe before start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fullRegistry } from '../../collector/src/registry-full.ts';
import { CaptureSink, makeTraces, makeGaugeMetrics, makeLogs, testLogger } from '../../collector/src/testing/fixtures.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import { FanOutConsumer } from '../../collector/src/pipeline/consumers.ts';
import { PipelineError } from '../../collector/src/component/errors.ts';
import { countItems, type SignalType } from '../../proto/src/model.ts';
import { decodeJson } from '../../proto/src/otlp/index.ts';

const data = { traces: () => makeTraces(3), metrics: () => makeGaugeMetrics(3), logs: () => makeLogs(3) };
const host = { reportFatal() {} };
const settings = (id: string) => ({ id, logger: testLogger(), telemetry: new SelfTelemetry(new MetricsRegistry()), pipeline: 'p' });

// Overrides where the default would bind a well-known port or reach a network peer.
const overrides: Record<string, unknown> = {
  otlp_receiver: { protocols: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } } },
  otelarrow: { protocols: { grpc: { endpoint: '127.0.0.1:0' } } },
  prometheus: { endpoint: '127.0.0.1:0' },
  k8s_attributes: { kubeconfig: '' },
  memory_limiter: { limit_mib: 4096 },
  tail_sampling: { decision_wait: '10ms', policies: [{ name: 'all', type: 'always_sample' }] },
  loadbalancing: { resolver: { static: { hostnames: ['127.0.0.1:1'] } }, timeout: '50ms', sending_queue: { drain_timeout: '10ms' }, protocol: { otlp: { tls: { insecure: true } } } },
};

test('every processor and exporter factory: default config, create, start, consume, shutdown ×2', async () => {
  const reg = fullRegistry();
  const dir = mkdtempSync(join(tmpdir(), 'kscope-life-'));
  const saved = { KUBECONFIG: process.env.KUBECONFIG, KUBERNETES_SERVICE_HOST: process.env.KUBERNETES_SERVICE_HOST };
  delete process.env.KUBECONFIG;
  delete process.env.KUBERNETES_SERVICE_HOST;
  // a factory dropped from the registry would otherwise just shorten the loops below
  assert.deepEqual([...reg.types('processor')].sort(), ['histogram_to_exponential', 'k8s_attributes', 'memory_limiter', 'rate_limit', 'routing', 'tail_sampling']);
  assert.deepEqual([...reg.types('exporter')].sort(), ['debug', 'file', 'loadbalancing', 'nop', 'otelarrow', 'otlp', 'otlphttp', 'prometheus', 'prometheusremotewrite']);
  /** Exporters whose peer is an unreachable address here: they may refuse, with a pipeline error. */
  const withPeer = new Set(['loadbalancing', 'otelarrow', 'otlp', 'otlphttp', 'prometheusremotewrite']);
  try {
    for (const type of reg.types('processor')) {
      const f = reg.get('processor', type)!;
      for (const signal of f.signals as SignalType[]) {
        const path = `processors.${type}`;
        assert.ok(f.defaultConfig(), `${type} has a default config`);
        const cfg = f.validate(overrides[type] ?? {}, path);
        const sink = new CaptureSink(signal);
        const next = type === 'routing' ? new FanOutConsumer(signal, [{ id: 'x', consumer: sink, mutates: false }]) : sink;
        const routingCfg = type === 'routing' ? f.validate({ default_exporters: ['x'] }, path) : cfg;
        const p = f.create(settings(type), routingCfg, signal, next);
        await p.shutdown(); // safe before start
        const p2 = f.create(settings(type), routingCfg, signal, next);
        await p2.start(host);
        await p2.consume(data[signal]() as never, { tenant: 't' });
        await p2.shutdown();
        await p2.shutdown();
        assert.ok(sink.items > 0 || type === 'tail_sampling', `${type}/${signal} passed data on`);
      }
    }
    for (const type of reg.types('exporter')) {
      const f = reg.get('exporter', type)!;
      assert.ok(f.defaultConfig(), `${type} has a default config`);
      const quick = { timeout: '50ms', retry_on_failure: { enabled: false }, sending_queue: { drain_timeout: '10ms' } };
      const raw: Record<string, unknown> =
        type === 'file' ? { path: join(dir, 'out.jsonl') }
        : type === 'otlp' || type === 'otelarrow' ? { endpoint: '127.0.0.1:1', tls: { insecure: true }, ...quick }
        : type === 'otlphttp' ? { endpoint: 'http://127.0.0.1:1', ...quick }
        : type === 'prometheusremotewrite' ? { endpoint: 'http://127.0.0.1:1/api/v1/write', ...quick }
        : ((overrides[type] as Record<string, unknown>) ?? {});
      for (const signal of f.signals as SignalType[]) {
        const cfg = f.validate(raw, `exporters.${type}`);
        const e = f.create(settings(type), cfg as never, signal);
        await e.shutdown();
        const e2 = f.create(settings(type), cfg as never, signal);
        await e2.start(host);
        const sent = e2.consume(data[signal]() as never, { tenant: 't' });
        if (withPeer.has(type)) {
          await sent.catch((err: unknown) => assert.ok(err instanceof PipelineError, `${type}/${signal} refused with ${String(err)}`));
        } else await sent;
        await e2.shutdown();
        await e2.shutdown();
      }
    }
    // the file exporter wrote one OTLP/JSON line per batch it was given, each with its 3 items
    const signalOf: Record<string, SignalType> = { resourceSpans: 'traces', resourceMetrics: 'metrics', resourceLogs: 'logs' };
    const written = readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n').map((line) => {
      const signal = signalOf[Object.keys(JSON.parse(line) as object)[0]!]!;
      return `${signal}:${countItems(signal, decodeJson(signal, line))}`;
    });
    assert.deepEqual(written.sort(), ['logs:3', 'metrics:3', 'traces:3']);
  } finally {
    Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([, v]) => v !== undefined)));
    rmSync(dir, { recursive: true, force: true });
  }
});
