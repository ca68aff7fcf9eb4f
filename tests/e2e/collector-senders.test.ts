// Real senders into our receivers: the OTel JS SDK's OTLP/gRPC and OTLP/HTTP trace exporters, and
// telemetrygen (Go SDK) when the peer is built. Also: tenant A over its rate limit gets throttled
// while tenant B passes, through the whole receive → limit → export path.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { Metadata } from '@grpc/grpc-js';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as HttpTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { requires } from '../lib/env.ts';
import { peerBuilt, telemetrygen } from '../peers/index.ts';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, captured, sinkOf } from '../../collector/src/testing/components.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import { encodeSignal } from '../../proto/src/otlp/index.ts';
import { getAttr } from '../../proto/src/model.ts';

let col: Collector;
let grpcPort = 0;
let httpPort = 0;

before(async () => {
  const cfg = parseConfig(parseYaml(`
receivers:
  otlp:
    protocols: { grpc: { endpoint: "127.0.0.1:0" }, http: { endpoint: "127.0.0.1:0" } }
    auth:
      sources: [header]
      require_tenant: false
      default_tenant: anonymous
processors:
  memory_limiter: { limit_mib: 8192 }
  rate_limit:
    default_tier: low
    tiers: { low: { spans: { rate: 20, burst: 100 } }, high: { spans: { rate: 1000000, burst: 1000000 } } }
    overrides: { tenant-b: { tier: high }, anonymous: { tier: high } }
exporters:
  capture/senders: {}
service:
  telemetry: { metrics: { address: "" } }
  pipelines:
    traces: { receivers: [otlp], processors: [memory_limiter, rate_limit], exporters: [capture/senders] }
`));
  col = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await col.start();
  const r = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver).server;
  grpcPort = r.grpc!.port;
  httpPort = r.http!.port;
});

after(async () => {
  await col.shutdown();
});

const sink = () => sinkOf('capture/senders', 'traces');
const spansOf = (service: string) => {
  let n = 0;
  for (const { batch } of sink().batches)
    for (const rs of batch.resourceSpans) if (getAttr(rs.resource.attributes, 'service.name') === service) for (const ss of rs.scopeSpans) n += ss.spans.length;
  return n;
};

async function sdkSend(exporter: GrpcTraceExporter | HttpTraceExporter, service: string, n: number) {
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': service }), spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = provider.getTracer('e2e');
  for (let i = 0; i < n; i++) tracer.startSpan(`op-${i}`, { attributes: { i } }).end();
  await provider.forceFlush();
  await provider.shutdown();
}

test('OTel JS SDK OTLP/gRPC exporter → our gRPC receiver', async () => {
  const md = new Metadata();
  md.set('x-scope-orgid', 'tenant-b');
  await sdkSend(new GrpcTraceExporter({ url: `http://127.0.0.1:${grpcPort}`, metadata: md }), 'sdk-grpc', 25);
  assert.equal(spansOf('sdk-grpc'), 25);
  const b = sink().batches.find((x) => getAttr(x.batch.resourceSpans[0].resource.attributes, 'service.name') === 'sdk-grpc')!;
  assert.equal(b.ctx.tenant, 'tenant-b');
  assert.equal(b.batch.resourceSpans[0].scopeSpans[0].spans[0].attributes[0].key, 'i');
});

test('OTel JS SDK OTLP/HTTP (protobuf JSON) exporter → our HTTP receiver', async () => {
  await sdkSend(new HttpTraceExporter({ url: `http://127.0.0.1:${httpPort}/v1/traces`, headers: { 'X-Scope-OrgID': 'tenant-b' } }), 'sdk-http', 12);
  assert.equal(spansOf('sdk-http'), 12);
});

test('telemetrygen (Go SDK) → our gRPC receiver', async (t) => {
  if (!requires(t, peerBuilt('telemetrygen'), 'telemetrygen peer (bash tests/peers/build.sh telemetrygen)')) return;
  await telemetrygen(['traces', '--otlp-endpoint', `127.0.0.1:${grpcPort}`, '--otlp-insecure', '--traces', '20', '--rate', '0', '--service', 'tgen', '--otlp-header', 'x-scope-orgid="tenant-b"']);
  // telemetrygen sends a parent and a child span per trace
  assert.equal(spansOf('tgen'), 40);
});

test('tenant A over its limit is throttled (429 + Retry-After) while tenant B is not', async () => {
  const post = (tenant: string) =>
    fetch(`http://127.0.0.1:${httpPort}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf', 'x-scope-orgid': tenant }, body: encodeSignal('traces', makeTraces(50)) as never });
  const a: number[] = [];
  const b: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 10; i++) {
    const ra = await post('tenant-a');
    a.push(ra.status);
    if (ra.status === 429) retryAfter = ra.headers.get('retry-after');
    b.push((await post('tenant-b')).status);
  }
  // 100-span burst, 20 spans/s: two 50-span requests pass, the rest wait ≥ 2.5 s for tokens.
  assert.ok(a.filter((s) => s === 429).length >= 6, `tenant-a statuses ${a}`);
  assert.deepEqual(b, Array(10).fill(200));
  assert.ok(Number(retryAfter) >= 1, `Retry-After ${retryAfter}`);
  const counter = col.telemetry.registry.get('kscope_rate_limit_throttled_items_total')!;
  assert.ok(counter.sum({ tenant: 'tenant-a' }) >= 300);
  assert.equal(counter.sum({ tenant: 'tenant-b' }), 0);
});
