// One lifecycle test over every built-in factory: defaultConfig validates, create → start →
// consume → shutdown works, shutdown is idempotent and safe before start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fullRegistry } from '../../collector/src/registry-full.ts';
import { CaptureSink, makeTraces, makeGaugeMetrics, makeLogs, testLogger } from '../../collector/src/testing/fixtures.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import { FanOutConsumer } from '../../collector/src/pipeline/consumers.ts';
import type { SignalType } from '../../proto/src/model.ts';

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
        await e2.consume(data[signal]() as never, { tenant: 't' }).catch(() => {}); // unreachable peers may refuse
        await e2.shutdown();
        await e2.shutdown();
      }
    }
  } finally {
    Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([, v]) => v !== undefined)));
    rmSync(dir, { recursive: true, force: true });
  }
});
