import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import snappy from 'snappyjs';
import { promName, sanitizeLabel, translate } from '../../collector/src/exporters/prometheus_common/translate.ts';
import { encodeWriteRequest, toSeries, createRemoteWriteExporter, validateRemoteWriteConfig } from '../../collector/src/exporters/prometheusremotewrite/index.ts';
import { PrometheusExporter, validatePrometheusExporterConfig } from '../../collector/src/exporters/prometheus/index.ts';
import { createFileExporter, validateFileExporterConfig } from '../../collector/src/exporters/file/index.ts';
import { PbReader } from '../../collector/src/util/pb.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import { decodeJson } from '../../proto/src/otlp/index.ts';
import { createServer } from 'node:http';
import { emptyScope, type MetricsData } from '../../proto/src/model.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';

const T = 1_700_000_000_000_000_000n;

export function sampleMetrics(): MetricsData {
  const res = { attributes: [{ key: 'service.name', value: 'cart' }, { key: 'service.namespace', value: 'shop' }, { key: 'service.instance.id', value: 'i-1' }, { key: 'k8s.pod.name', value: 'cart-0' }], droppedAttributesCount: 0 };
  return {
    resourceMetrics: [{ resource: res, schemaUrl: '', scopeMetrics: [{ scope: { ...emptyScope(), name: 'kscope', version: '1.0' }, schemaUrl: '', metrics: [
      { name: 'http.server.request.duration', description: 'latency', unit: 's', metadata: [], data: { type: 'histogram', aggregationTemporality: 2, dataPoints: [{ attributes: [{ key: 'http.route', value: '/a' }], startTimeUnixNano: T, timeUnixNano: T + 1_000_000_000n, count: 6n, sum: 1.5, bucketCounts: [1n, 2n, 3n], explicitBounds: [0.1, 0.5], exemplars: [], flags: 0 }] } },
      { name: 'tcp.bytes.sent', description: '', unit: 'By', metadata: [], data: { type: 'sum', aggregationTemporality: 2, isMonotonic: true, dataPoints: [{ attributes: [{ key: '1st', value: 'x' }], startTimeUnixNano: T, timeUnixNano: T + 1_000_000_000n, value: 4096n, exemplars: [], flags: 0 }] } },
      { name: 'cpu.utilization', description: '', unit: '1', metadata: [], data: { type: 'gauge', dataPoints: [{ attributes: [], startTimeUnixNano: 0n, timeUnixNano: T + 1_000_000_000n, value: 0.25, exemplars: [], flags: 0 }] } },
      { name: 'queue.depth', description: '', unit: '{item}', metadata: [], data: { type: 'sum', aggregationTemporality: 1, isMonotonic: false, dataPoints: [{ attributes: [], startTimeUnixNano: T, timeUnixNano: T + 1_000_000_000n, value: 3, exemplars: [], flags: 0 }] } },
      { name: 'rpc.latency', description: '', unit: 'ms', metadata: [], data: { type: 'exponentialHistogram', aggregationTemporality: 2, dataPoints: [{ attributes: [], startTimeUnixNano: T, timeUnixNano: T + 1_000_000_000n, count: 3n, sum: 7, scale: 0, zeroCount: 0n, positive: { offset: 0, bucketCounts: [1n, 2n] }, negative: { offset: 0, bucketCounts: [] }, flags: 0, exemplars: [], zeroThreshold: 0 }] } },
    ] }] }],
  };
}

test('names and labels per the OTel Prometheus compatibility spec', () => {
  assert.equal(promName('http.server.request.duration', 's', 'other'), 'http_server_request_duration_seconds');
  assert.equal(promName('tcp.bytes.sent', 'By', 'counter'), 'tcp_bytes_sent_total');
  assert.equal(promName('cpu.utilization', '1', 'gauge'), 'cpu_utilization_ratio');
  assert.equal(promName('queue.depth', '{item}', 'gauge'), 'queue_depth');
  assert.equal(promName('net.io', 'By/s', 'gauge'), 'net_io_bytes_per_second');
  assert.equal(promName('requests_total', '', 'counter'), 'requests_total');
  assert.equal(promName('latency_seconds', 's', 'gauge'), 'latency_seconds');
  assert.equal(promName('2xx..rate', '', 'gauge'), '_2xx_rate');
  assert.equal(sanitizeLabel('1st'), 'key_1st');
  assert.equal(sanitizeLabel('http.route'), 'http_route');
});

test('translation: histogram buckets, counters, target_info with job/instance, scope labels; delta sums skipped', () => {
  const fams = translate(sampleMetrics());
  const h = fams.get('http_server_request_duration_seconds')!;
  assert.equal(h.type, 'histogram');
  const buckets = h.series.filter((s) => s.labels.find(([n, v]) => n === '__name__' && v.endsWith('_bucket')));
  assert.deepEqual(buckets.map((s) => [Object.fromEntries(s.labels).le, s.samples[0].value]), [['0.1', 1], ['0.5', 3], ['+Inf', 6]]);
  const lbl = Object.fromEntries(buckets[0].labels);
  assert.equal(lbl.job, 'shop/cart');
  assert.equal(lbl.instance, 'i-1');
  assert.equal(lbl.otel_scope_name, 'kscope');
  assert.equal(lbl.http_route, '/a');
  assert.equal(lbl['k8s_pod_name'], undefined, 'resource attributes go to target_info, not every series');
  const ti = Object.fromEntries(fams.get('target_info')!.series[0].labels);
  assert.equal(ti.k8s_pod_name, 'cart-0');
  assert.equal(ti.job, 'shop/cart');
  assert.equal(fams.get('tcp_bytes_sent_total')!.type, 'counter');
  assert.equal(fams.get('tcp_bytes_sent_total')!.series[0].samples[0].value, 4096);
  assert.equal(fams.get('queue_depth'), undefined, 'delta sum is not representable without accumulation');
  const e = fams.get('rpc_latency_milliseconds')!;
  const eb = e.series.filter((s) => Object.fromEntries(s.labels).__name__ === 'rpc_latency_milliseconds_bucket').map((s) => [Object.fromEntries(s.labels).le, s.samples[0].value]);
  assert.deepEqual(eb, [['0', 0], ['2', 1], ['4', 3], ['+Inf', 3]]);
});

test('remote write encoding: WriteRequest protobuf round-trips labels, values and ms timestamps; snappy block format', () => {
  const series = toSeries(sampleMetrics(), { targetInfo: true, resourceToLabels: false });
  const body = encodeWriteRequest(series);
  const compressed = snappy.compress(body);
  assert.deepEqual(Buffer.from(snappy.uncompress(compressed)), body);
  const r = new PbReader(body);
  let n = 0;
  const first: { labels: string[]; value?: number; ts?: number } = { labels: [] };
  while (r.more()) {
    const [f] = r.tag();
    assert.equal(f, 1);
    const ts = new PbReader(r.lenBytes());
    while (ts.more()) {
      const [tf] = ts.tag();
      const inner = new PbReader(ts.lenBytes());
      if (n > 0) continue;
      if (tf === 1) {
        const kv: string[] = [];
        while (inner.more()) { inner.tag(); kv.push(Buffer.from(inner.lenBytes()).toString()); }
        first.labels.push(kv.join('='));
      } else {
        while (inner.more()) {
          const [sf, wt] = inner.tag();
          if (sf === 1 && wt === 1) { first.value = Buffer.from(inner.b.subarray(inner.pos, inner.pos + 8)).readDoubleLE(); inner.pos += 8; }
          else if (sf === 2) first.ts = inner.varint();
        }
      }
    }
    n++;
  }
  assert.equal(n, series.length);
  assert.ok(first.labels.includes('__name__=http_server_request_duration_seconds_bucket'));
  assert.deepEqual(first.labels, [...first.labels].sort(), 'labels sorted');
  assert.equal(first.ts, 1_700_000_001_000);
});

test('remote write exporter: headers, 5xx retried, 4xx dropped', async () => {
  const seen: Array<{ headers: Record<string, string | string[] | undefined>; status: number }> = [];
  const statuses = [503, 204, 400];
  const srv = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = statuses.shift() ?? 204;
      seen.push({ headers: req.headers, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  const tel = new SelfTelemetry(new MetricsRegistry());
  const cfg = validateRemoteWriteConfig({ endpoint: `http://127.0.0.1:${port}/api/v1/write`, retry_on_failure: { initial_interval: '10ms', randomization_factor: 0 } }, 'x');
  const ex = createRemoteWriteExporter({ id: 'prw', logger: testLogger(), telemetry: tel }, cfg, 'metrics');
  await ex.start({ reportFatal() {} });
  await ex.consume(sampleMetrics(), {});
  await ex.consume(sampleMetrics(), {});
  await ex.shutdown();
  srv.close();
  assert.equal(seen.length, 3);
  assert.equal(seen[0].headers['content-encoding'], 'snappy');
  assert.equal(seen[0].headers['x-prometheus-remote-write-version'], '0.1.0');
  assert.equal(seen[0].headers['content-type'], 'application/x-protobuf');
  assert.equal(tel.registry.get('kscope_exporter_send_failed_items_total')!.sum({ reason: 'permanent' }), 5);
});

test('prometheus scrape exporter: text exposition with TYPE lines; delta sums accumulated', async () => {
  const ex = new PrometheusExporter({ id: 'prom', logger: testLogger() }, validatePrometheusExporterConfig({ endpoint: '127.0.0.1:0' }, 'x'));
  await ex.start();
  await ex.consume(sampleMetrics(), {});
  // The next delta window: the same delta point again would be a duplicate, dropped (as contrib).
  const later = sampleMetrics();
  const q = later.resourceMetrics[0].scopeMetrics[0].metrics.find((m) => m.name === 'queue.depth')!.data as { dataPoints: Array<{ startTimeUnixNano: bigint; timeUnixNano: bigint }> };
  q.dataPoints[0].startTimeUnixNano += 1_000_000_000n;
  q.dataPoints[0].timeUnixNano += 1_000_000_000n;
  await ex.consume(later, {});
  const text = await (await fetch(`http://127.0.0.1:${ex.port}/metrics`)).text();
  await ex.shutdown();
  assert.match(text, /# TYPE http_server_request_duration_seconds histogram/);
  assert.match(text, /http_server_request_duration_seconds_bucket\{[^}]*le="\+Inf"[^}]*\} 6/);
  assert.match(text, /# TYPE tcp_bytes_sent_total counter/);
  assert.match(text, /queue_depth\{[^}]*\} 6\n/, 'delta 3 + 3 accumulated');
  assert.match(text, /target_info\{[^}]*k8s_pod_name="cart-0"/);
});

test('file exporter: OTLP/JSON lines, rotation by size keeps N backups', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-file-'));
  try {
    const path = join(dir, 'out.jsonl');
    const ex = createFileExporter({ id: 'file', logger: testLogger() }, validateFileExporterConfig({ path, rotation: { max_megabytes: 0.01, max_backups: 2 } }, 'x'), 'traces');
    await ex.start({ reportFatal() {} });
    for (let i = 0; i < 20; i++) await ex.consume(makeTraces(5), {});
    await ex.shutdown();
    const files = readdirSync(dir).sort();
    assert.deepEqual(files, ['out.jsonl', 'out.jsonl.1', 'out.jsonl.2']);
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    const d = decodeJson('traces', lines[0]);
    assert.equal(d.resourceSpans[0].scopeSpans[0].spans.length, 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
