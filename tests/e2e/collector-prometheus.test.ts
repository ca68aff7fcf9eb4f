// Remote write from the collector into a real Prometheus (Debian 2.42, --web.enable-remote-write-receiver),
// asserted through /api/v1/query: names with unit/_total suffixes, labels, target_info, histogram buckets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { requires } from '../lib/env.ts';
import { startPrometheus } from '../peers/index.ts';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import { encodeSignal } from '../../proto/src/otlp/index.ts';
import { emptyScope, type MetricsData } from '../../proto/src/model.ts';

function metricsNow(): MetricsData {
  const now = BigInt(Date.now()) * 1_000_000n;
  const start = now - 60_000_000_000n;
  return {
    resourceMetrics: [{ resource: { attributes: [{ key: 'service.name', value: 'cart' }, { key: 'service.instance.id', value: 'cart-7f9' }, { key: 'k8s.namespace.name', value: 'shop' }], droppedAttributesCount: 0 }, schemaUrl: '', scopeMetrics: [{ scope: { ...emptyScope(), name: 'kscope.agent' }, schemaUrl: '', metrics: [
      { name: 'http.server.request.duration', description: 'request latency', unit: 's', metadata: [], data: { type: 'histogram', aggregationTemporality: 2, dataPoints: [{ attributes: [{ key: 'http.route', value: '/checkout' }], startTimeUnixNano: start, timeUnixNano: now, count: 10n, sum: 2.5, bucketCounts: [4n, 5n, 1n], explicitBounds: [0.1, 0.5], exemplars: [], flags: 0 }] } },
      { name: 'tcp.connections.opened', description: '', unit: '{connection}', metadata: [], data: { type: 'sum', aggregationTemporality: 2, isMonotonic: true, dataPoints: [{ attributes: [{ key: 'peer.service', value: 'db' }], startTimeUnixNano: start, timeUnixNano: now, value: 42n, exemplars: [], flags: 0 }] } },
      { name: 'process.memory.usage', description: '', unit: 'By', metadata: [], data: { type: 'gauge', dataPoints: [{ attributes: [], startTimeUnixNano: 0n, timeUnixNano: now, value: 1048576n, exemplars: [], flags: 0 }] } },
    ] }] }],
  };
}

test('OTLP metrics in → remote write → Prometheus: names, labels and target_info queryable', async (t) => {
  if (!requires(t, existsSync('/usr/bin/prometheus'), 'prometheus (Debian)')) return;
  const prom = await startPrometheus();
  const cfg = parseConfig(parseYaml(`
receivers:
  otlp: { protocols: { http: { endpoint: "127.0.0.1:0" } } }
processors:
  memory_limiter: { limit_mib: 4096 }
exporters:
  prometheusremotewrite:
    endpoint: ${prom.remoteWriteUrl}
    retry_on_failure: { initial_interval: 100ms }
service:
  telemetry: { metrics: { address: "" } }
  pipelines:
    metrics: { receivers: [otlp], processors: [memory_limiter], exporters: [prometheusremotewrite] }
`));
  const col = new Collector(cfg, { registry: defaultRegistry(), logger: testLogger() });
  try {
    await col.start();
    const port = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver).server.http!.port;
    const res = await fetch(`http://127.0.0.1:${port}/v1/metrics`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeSignal('metrics', metricsNow()) as never });
    assert.equal(res.status, 200);
    const poll = async (q: string) => {
      const end = Date.now() + 20_000;
      for (;;) {
        const r = await prom.query(q);
        if (r.length || Date.now() > end) return r;
        await new Promise((x) => setTimeout(x, 250));
      }
    };
    const bucket = await poll('http_server_request_duration_seconds_bucket{le="0.5"}');
    assert.equal(bucket.length, 1);
    assert.equal(bucket[0].value[1], '9');
    assert.equal(bucket[0].metric.job, 'cart');
    assert.equal(bucket[0].metric.instance, 'cart-7f9');
    assert.equal(bucket[0].metric.http_route, '/checkout');
    assert.equal(bucket[0].metric.otel_scope_name, 'kscope.agent');
    const inf = await poll('http_server_request_duration_seconds_bucket{le="+Inf"}');
    assert.equal(inf[0].value[1], '10');
    assert.equal((await poll('http_server_request_duration_seconds_count'))[0].value[1], '10');
    assert.equal((await poll('http_server_request_duration_seconds_sum'))[0].value[1], '2.5');
    const counter = await poll('tcp_connections_opened_total');
    assert.equal(counter[0].value[1], '42');
    assert.equal(counter[0].metric.peer_service, 'db');
    assert.equal((await poll('process_memory_usage_bytes'))[0].value[1], '1048576');
    const ti = await poll('target_info{job="cart"}');
    assert.equal(ti[0].metric.k8s_namespace_name, 'shop');
    assert.equal(ti[0].metric.instance, 'cart-7f9');
  } finally {
    await col.shutdown();
    await prom.stop();
  }
});
