// Exponential histograms from the collector's remote-write exporter into a real Prometheus (Debian
// 2.42, --web.enable-remote-write-receiver --enable-feature=native-histograms, see
// tests/peers startPrometheus) as native histograms, asserted through /api/v1/query: one series
// named like the family with a "histogram" value (count, sum, bucket boundaries: schema, index
// shift, scale 10 merged to 8, gaps), histogram_quantile in the right bucket, no classic
// _bucket series, and a point without recorded value ending the series (stale marker).
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
import { emptyScope, type ExponentialHistogramDataPoint, type Metric, type MetricsData } from '../../proto/src/model.ts';

function metrics(nowMs: number, connect: Partial<ExponentialHistogramDataPoint>, skew: Partial<ExponentialHistogramDataPoint>): MetricsData {
  const now = BigInt(nowMs) * 1_000_000n;
  const start = now - 60_000_000_000n;
  const exp = (name: string, p: Partial<ExponentialHistogramDataPoint>): Metric => ({
    name, description: '', unit: 's', metadata: [], data: { type: 'exponentialHistogram', aggregationTemporality: 2, dataPoints: [{
      attributes: [{ key: 'peer.service', value: 'db' }], startTimeUnixNano: start, timeUnixNano: now, count: 0n, sum: 0, scale: 0, zeroCount: 0n, zeroThreshold: 0,
      positive: { offset: 0, bucketCounts: [] }, negative: { offset: 0, bucketCounts: [] }, flags: 0, exemplars: [], ...p,
    }] },
  });
  return {
    resourceMetrics: [{ resource: { attributes: [{ key: 'service.name', value: 'cart' }, { key: 'service.instance.id', value: 'cart-7f9' }], droppedAttributesCount: 0 }, schemaUrl: '', scopeMetrics: [{ scope: { ...emptyScope(), name: 'kscope.agent' }, schemaUrl: '', metrics: [
      exp('kscope.tcp.connect.duration', connect),
      exp('kscope.test.skew', skew),
      { name: 'process.memory.usage', description: '', unit: 'By', metadata: [], data: { type: 'gauge', dataPoints: [{ attributes: [], startTimeUnixNano: 0n, timeUnixNano: now, value: 1048576n, exemplars: [], flags: 0 }] } },
    ] }] }],
  };
}

// Connect durations around 1 ms at scale 3 (base 2^(1/8)): OTel buckets -80 (6), -78 (3), -72 (2),
// i.e. a gap of 1 bucket and one of 5; one exact zero.
const CONNECT = { count: 12n, sum: 0.0123, scale: 3, zeroCount: 1n, positive: { offset: -80, bucketCounts: [6n, 0n, 3n, 0n, 0n, 0n, 0n, 0n, 2n] } };
// Scale 10, merged to schema 8: OTel 0..3 → Prometheus bucket 1 = (1, 2^(1/256)]; negative 4..7 → 2.
const SKEW = { count: 6n, sum: 1.5, scale: 10, positive: { offset: 0, bucketCounts: [1n, 1n, 1n, 1n] }, negative: { offset: 4, bucketCounts: [2n] } };

test('OTLP exponential histograms → remote write → Prometheus native histograms (count, sum, buckets, quantile, stale)', async (t) => {
  if (!requires(t, existsSync('/usr/bin/prometheus'), 'prometheus (Debian)')) return;
  const prom = await startPrometheus();
  // exponential_histograms is left at its default (native).
  const cfg = parseConfig(parseYaml(`
receivers:
  otlp: { protocols: { http: { endpoint: "127.0.0.1:0" } } }
exporters:
  prometheusremotewrite:
    endpoint: ${prom.remoteWriteUrl}
    target_info: { enabled: false }
    retry_on_failure: { initial_interval: 100ms }
service:
  telemetry: { metrics: { address: "" } }
  pipelines:
    metrics: { receivers: [otlp], exporters: [prometheusremotewrite] }
`));
  const col = new Collector(cfg, { registry: defaultRegistry(), logger: testLogger() });
  try {
    await col.start();
    const port = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver).server.http!.port;
    const send = async (d: MetricsData) => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/metrics`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeSignal('metrics', d) as never });
      assert.equal(res.status, 200);
    };
    const poll = async (q: string, until: (r: any[]) => boolean = (r) => r.length > 0) => {
      const end = Date.now() + 20_000;
      for (;;) {
        const r = await prom.query(q);
        if (until(r) || Date.now() > end) return r;
        await new Promise((x) => setTimeout(x, 250));
      }
    };
    const t1 = Date.now() - 1000;
    await send(metrics(t1, CONNECT, SKEW));

    const got = await poll('kscope_tcp_connect_duration_seconds');
    assert.equal(got.length, 1, JSON.stringify(got));
    assert.deepEqual(got[0].metric, { __name__: 'kscope_tcp_connect_duration_seconds', job: 'cart', instance: 'cart-7f9', otel_scope_name: 'kscope.agent', peer_service: 'db' });
    assert.ok(got[0].histogram, `a native histogram, not a float sample: ${JSON.stringify(got[0])}`);
    const h = got[0].histogram[1] as { count: string; sum: string; buckets: Array<[number, string, string, string]> };
    assert.equal(h.count, '12');
    assert.equal(Number(h.sum), 0.0123);
    // Non-empty buckets as Prometheus reports them: [rule, lower, upper, count]; OTel bucket i is
    // (2^(i/8), 2^((i+1)/8)].
    const b = (i: number, c: number) => [2 ** (i / 8), 2 ** ((i + 1) / 8), c];
    const nonZero = h.buckets.filter((x) => Number(x[3]) > 0 && Number(x[1]) > 0).map((x) => [Number(x[1]), Number(x[2]), Number(x[3])]);
    assertClose(nonZero, [b(-80, 6), b(-78, 3), b(-72, 2)]);
    const zero = h.buckets.find((x) => Number(x[1]) < 0 && Number(x[2]) > 0);
    assert.deepEqual(zero && [Number(zero[2]), zero[3]], [1e-128, '1'], 'zero bucket ±1e-128 holding the exact zero');

    assert.equal((await poll('histogram_count(kscope_tcp_connect_duration_seconds)'))[0].value[1], '12');
    // Rank 6 of 12: past the zero bucket (1), inside bucket -80 (ranks 2..7).
    const q50 = Number((await poll('histogram_quantile(0.5, kscope_tcp_connect_duration_seconds)'))[0].value[1]);
    assert.ok(q50 > 2 ** (-80 / 8) && q50 <= 2 ** (-79 / 8), `median ${q50} in (2^-10, 2^(-79/8)]`);
    assert.deepEqual(await prom.query('{__name__=~"kscope_tcp_connect_duration_seconds_(bucket|sum|count)"}'), [], 'no classic series');

    const skew = (await poll('kscope_test_skew_seconds'))[0].histogram[1] as typeof h;
    assert.equal(skew.count, '6');
    const sb = skew.buckets.filter((x) => Number(x[3]) > 0).map((x) => [Number(x[1]), Number(x[2]), Number(x[3])]);
    assertClose(sb, [[-(2 ** (2 / 256)), -(2 ** (1 / 256)), 2], [1, 2 ** (1 / 256), 4]]);

    assert.equal((await poll('process_memory_usage_bytes'))[0].value[1], '1048576', 'the float series of the same request');

    // A point without a recorded value: a stale native histogram ends the series.
    await send(metrics(Date.now(), { ...CONNECT, flags: 1 }, SKEW));
    assert.deepEqual(await poll('kscope_tcp_connect_duration_seconds', (r) => r.length === 0), [], 'stale marker ends the series');
  } finally {
    await col.shutdown();
    await prom.stop();
  }
});

function assertClose(actual: number[][], expected: number[][]): void {
  assert.equal(actual.length, expected.length, `${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`);
  for (let i = 0; i < expected.length; i++)
    for (let k = 0; k < expected[i].length; k++)
      assert.ok(Math.abs(actual[i][k] - expected[i][k]) <= 1e-12 * Math.max(1, Math.abs(expected[i][k])), `${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`);
}
