// Prometheus exporters, translator and temporality converter against the OTel data model and the
// reference translator (contrib pkg/translator/prometheus{,remotewrite}, deltatocumulative,
// cumulativetodelta). One case per audited defect; expected values are derived from those rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import snappy from 'snappyjs';
import { promName, translate } from '../../collector/src/exporters/prometheus_common/translate.ts';
import { createRemoteWriteExporter, validateRemoteWriteConfig } from '../../collector/src/exporters/prometheusremotewrite/index.ts';
import { PrometheusExporter, validatePrometheusExporterConfig } from '../../collector/src/exporters/prometheus/index.ts';
import { TemporalityConverter, toExponential, lowerBoundary, HistogramToExponential, validateHistogramToExponentialConfig } from '../../collector/src/processors/histogram_to_exponential/index.ts';
import { RetryableError } from '../../collector/src/component/errors.ts';
import { PbReader } from '../../collector/src/util/pb.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { Consumer, RequestContext } from '../../collector/src/component/index.ts';
import type { ExponentialHistogramDataPoint, HistogramDataPoint, KeyValue, Metric, MetricData, MetricsData, NumberDataPoint } from '../../proto/src/model.ts';

const T = 1_700_000_000_000_000_000n;
const S = 1_000_000_000n; // one second in ns
const DELTA = 1;
const CUMULATIVE = 2;
const STALE_NAN = 0x7ff0000000000002n;

function batch(metrics: Metric[], resource: KeyValue[] = [], scope = ''): MetricsData {
  return {
    resourceMetrics: [{ resource: { attributes: resource, droppedAttributesCount: 0 }, schemaUrl: '', scopeMetrics: [{ scope: { name: scope, version: '', attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', metrics }] }],
  };
}
const metric = (name: string, unit: string, data: MetricData): Metric => ({ name, unit, description: '', metadata: [], data });
const num = (value: number | bigint, start: bigint, time: bigint, extra: Partial<NumberDataPoint> = {}): NumberDataPoint => ({ attributes: [], startTimeUnixNano: start, timeUnixNano: time, value, exemplars: [], flags: 0, ...extra });
const sum = (name: string, temporality: number, monotonic: boolean, pts: NumberDataPoint[]): Metric => metric(name, '', { type: 'sum', aggregationTemporality: temporality, isMonotonic: monotonic, dataPoints: pts });
const pointsOf = (d: MetricsData) => (d.resourceMetrics[0].scopeMetrics[0].metrics[0].data as { dataPoints: unknown[] }).dataPoints;

/** Bucket index of v > 0 per the data model: ceil(log2(v)·2^scale) − 1 (values here are far from boundaries). */
const specIndex = (v: number, scale: number) => Math.ceil(Math.log2(v) * Math.pow(2, scale)) - 1;

/** An exponential histogram point recording `values` at `scale` (zeros into zero_count). */
function recordExp(values: number[], scale: number, start: bigint, time: bigint): ExponentialHistogramDataPoint {
  const idx = values.filter((v) => v > 0).map((v) => specIndex(v, scale));
  const lo = Math.min(...idx);
  const counts = new Array<bigint>(Math.max(...idx) - lo + 1).fill(0n);
  for (const i of idx) counts[i - lo]++;
  return {
    attributes: [], startTimeUnixNano: start, timeUnixNano: time, count: BigInt(values.length), sum: values.reduce((a, b) => a + b, 0),
    scale, zeroCount: BigInt(values.filter((v) => v === 0).length), zeroThreshold: 0, positive: { offset: lo, bucketCounts: counts },
    negative: { offset: 0, bucketCounts: [] }, flags: 0, exemplars: [], min: Math.min(...values), max: Math.max(...values),
  };
}

/** Decoded prometheus.WriteRequest: labels by name; sample values with their raw bits. */
type Written = Array<{ labels: Record<string, string>; samples: Array<{ value: number; bits: bigint; ts: number }> }>;
function decodeWriteRequest(body: Uint8Array): Written {
  const out: Written = [];
  const r = new PbReader(body);
  while (r.more()) {
    r.tag();
    const ts = new PbReader(r.lenBytes());
    const series: Written[number] = { labels: {}, samples: [] };
    while (ts.more()) {
      const [f] = ts.tag();
      const inner = new PbReader(ts.lenBytes());
      if (f === 1) {
        const kv: string[] = [];
        while (inner.more()) { inner.tag(); kv.push(Buffer.from(inner.lenBytes()).toString()); }
        series.labels[kv[0]] = kv[1];
      } else {
        const smp = { value: 0, bits: 0n, ts: 0 };
        while (inner.more()) {
          const [sf] = inner.tag();
          if (sf === 1) {
            const b = Buffer.from(inner.b.subarray(inner.pos, inner.pos + 8));
            smp.value = b.readDoubleLE();
            smp.bits = b.readBigUInt64LE();
            inner.pos += 8;
          } else smp.ts = inner.varint();
        }
        series.samples.push(smp);
      }
    }
    out.push(series);
  }
  return out;
}

/** A remote-write endpoint answering with `statuses` in turn (then 204); records every request. */
async function writeServer(statuses: number[]) {
  const requests: Written[] = [];
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push(decodeWriteRequest(Buffer.from(snappy.uncompress(Buffer.concat(chunks)))));
      res.writeHead(statuses.shift() ?? 204).end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  const exporter = createRemoteWriteExporter({ id: 'prw', logger: testLogger() }, validateRemoteWriteConfig({
    endpoint: `http://127.0.0.1:${port}/api/v1/write`,
    target_info: { enabled: false },
    exponential_histograms: 'classic', // these cases are about the classic _bucket{le} series
    // No queue: each consume() sends (and retries) before returning, so requests are in order.
    sending_queue: { enabled: false },
    retry_on_failure: { initial_interval: '5ms', randomization_factor: 0 },
  }, 'x'), 'metrics');
  await exporter.start({ reportFatal() {} });
  return { exporter, requests, close: async () => { await exporter.shutdown(); srv.close(); } };
}

const newScrape = () => new PrometheusExporter({ id: 'prom', logger: testLogger() }, validatePrometheusExporterConfig({ endpoint: '127.0.0.1:0', target_info: { enabled: false } }, 'x'));
/** le → value of `<name>_bucket` lines in a rendered scrape. */
function buckets(text: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\S+)$`, 'gm'))) out[m[1]] = Number(m[2]);
  return out;
}

test('1. remote write: a delta batch retried after a 503 is accumulated once (samples 5, 5, then 10)', async () => {
  const w = await writeServer([503]);
  try {
    for (const t of [T + S, T + 2n * S]) await w.exporter.consume(batch([sum('c', DELTA, true, [num(5n, t - S, t)])]), {});
  } finally {
    await w.close();
  }
  const values = w.requests.map((r) => r.find((s) => s.labels.__name__ === 'c_total')!.samples.map((x) => x.value));
  // Attempt 1 (503) and its retry carry the first delta; the second batch adds 5 more.
  assert.deepEqual(values, [[5], [5], [10]]);
});

test('2. delta exponential histograms are accumulated (merged at the coarser scale), not dropped', async () => {
  const a = [1.1, 1.3, 1.5, 1.9, 3];
  const b = [0, 1.2, 5, 7];
  const ex = newScrape();
  const hist = (p: ExponentialHistogramDataPoint) => batch([metric('lat', 's', { type: 'exponentialHistogram', aggregationTemporality: DELTA, dataPoints: [p] })]);
  await ex.consume(hist(recordExp(a, 2, T, T + S)), {});
  await ex.consume(hist(recordExp(b, 0, T + S, T + 2n * S)), {});
  const text = ex.render();
  // At scale 0 bucket i is (2^i, 2^(i+1)]: le = 2^(i+1), cumulative count of all values ≤ le.
  const all = [...a, ...b];
  const expected: Record<string, number> = { '0': all.filter((v) => v === 0).length };
  for (let i = 0; i <= Math.max(...all.filter((v) => v > 0).map((v) => specIndex(v, 0))); i++) expected[String(2 ** (i + 1))] = all.filter((v) => v <= 2 ** (i + 1)).length;
  expected['+Inf'] = all.length;
  assert.deepEqual(buckets(text, 'lat_seconds'), expected);
  assert.match(text, new RegExp(`^lat_seconds_count ${all.length}$`, 'm'));
  assert.match(text, new RegExp(`^lat_seconds_sum ${all.reduce((x, y) => x + y, 0)}$`, 'm'));
});

test('3. cumulative → delta: a non-monotonic sum is not reset on a decrease (left cumulative, as contrib)', () => {
  const run = (monotonic: boolean) => {
    const c = new TemporalityConverter('delta');
    return [5, 8, 6].map((v, k) => {
      const d = batch([sum('q', CUMULATIVE, monotonic, [num(v, T, T + BigInt(k + 1) * S)])]);
      c.convert(d.resourceMetrics);
      const data = d.resourceMetrics[0].scopeMetrics[0].metrics[0].data as { aggregationTemporality: number; dataPoints: NumberDataPoint[] };
      return { temporality: data.aggregationTemporality, values: data.dataPoints.map((p) => p.value) };
    });
  };
  assert.deepEqual(run(false), [5, 8, 6].map((v) => ({ temporality: CUMULATIVE, values: [v] })));
  // A monotonic counter going down did reset: the point is the delta since its start.
  assert.deepEqual(run(true).map((r) => r.values), [[], [3], [6]]);
});

test('4. cumulative → delta histograms: each delta starts at the previous point', () => {
  const c = new TemporalityConverter('delta');
  const windows = [10n, 20n, 30n].map((t, k) => {
    const p: HistogramDataPoint = { attributes: [], startTimeUnixNano: 1n, timeUnixNano: t, count: BigInt(2 + 3 * k), sum: 2 + 3 * k, bucketCounts: [BigInt(2 + 3 * k)], explicitBounds: [], exemplars: [], flags: 0 };
    const d = batch([metric('h', '', { type: 'histogram', aggregationTemporality: CUMULATIVE, dataPoints: [p] })]);
    c.convert(d.resourceMetrics);
    return (pointsOf(d) as HistogramDataPoint[]).map((x) => [x.startTimeUnixNano, x.timeUnixNano, x.count]);
  });
  assert.deepEqual(windows, [[], [[10n, 20n, 3n]], [[20n, 30n, 3n]]]);
});

test('5. explicit → exponential: the overflow bucket without max lies above its finite bound', () => {
  const dp: HistogramDataPoint = { attributes: [], startTimeUnixNano: 1n, timeUnixNano: 2n, count: 10n, sum: 100, bucketCounts: [0n, 0n, 0n, 10n], explicitBounds: [1, 2, 4], exemplars: [], flags: 0 };
  const e = toExponential(dp);
  const nonzero = e.positive.bucketCounts.map((c, i) => [e.positive.offset + i, c] as const).filter(([, c]) => c > 0n);
  // 4 = 2^2 is the upper edge of bucket 2·2^scale − 1; values > 4 start in bucket 2·2^scale.
  assert.deepEqual(nonzero, [[2 * 2 ** e.scale, 10n]]);
  assert.equal(lowerBoundary(nonzero[0][0], e.scale), 4);
});

const expHist = (t: bigint, scale: number, counts: bigint[], flags = 0) => batch([metric('h', 's', { type: 'exponentialHistogram', aggregationTemporality: CUMULATIVE, dataPoints: [{
  attributes: [], startTimeUnixNano: T, timeUnixNano: t, count: counts.reduce((a, c) => a + c, 0n), sum: 1, scale, zeroCount: 0n, zeroThreshold: 0,
  positive: { offset: 0, bucketCounts: counts }, negative: { offset: 0, bucketCounts: [] }, flags, exemplars: [],
}] })]);

test('6a. scrape: a new exponential scale replaces the histogram’s whole bucket set', async () => {
  const ex = newScrape();
  await ex.consume(expHist(T + S, 1, [2n, 3n]), {});
  await ex.consume(expHist(T + 2n * S, 0, [5n, 0n, 0n, 1n]), {});
  // Scale 0, offset 0, 4 buckets: upper edges 2, 4, 8, 16; nothing of scale 1 (e.g. le=√2) remains.
  assert.deepEqual(buckets(ex.render(), 'h_seconds'), { '0': 0, '2': 5, '4': 5, '8': 5, '16': 6, '+Inf': 6 });
});

test('6b. remote write: le series a new scale no longer has get a stale marker', async () => {
  const w = await writeServer([]);
  try {
    await w.exporter.consume(expHist(T + S, 1, [2n, 3n]), {});
    await w.exporter.consume(expHist(T + 2n * S, 0, [5n, 0n, 0n, 1n]), {});
  } finally {
    await w.close();
  }
  const second = w.requests[1].filter((s) => s.labels.__name__ === 'h_seconds_bucket');
  const stale = second.filter((s) => s.samples[0].bits === STALE_NAN).map((s) => [s.labels.le, s.samples[0].ts]);
  // Scale 1 had le = 2^0.5 and 2 (and 0, +Inf); only 2^0.5 is gone at scale 0.
  assert.deepEqual(stale, [[String(Math.SQRT2), Number((T + 2n * S) / 1_000_000n)]]);
  assert.deepEqual(second.filter((s) => s.samples[0].bits !== STALE_NAN).map((s) => s.labels.le).sort(), ['+Inf', '0', '16', '2', '4', '8']);
});

test('7. a histogram without buckets still has le="+Inf" = count', () => {
  const h = (p: Partial<HistogramDataPoint>) => batch([metric('h', '', { type: 'histogram', aggregationTemporality: CUMULATIVE, dataPoints: [{ attributes: [], startTimeUnixNano: T, timeUnixNano: T + S, count: 3n, sum: 1, bucketCounts: [], explicitBounds: [], exemplars: [], flags: 0, ...p }] })]);
  const bucketsOf = (d: MetricsData) => translate(d).get('h')!.series.filter((s) => Object.fromEntries(s.labels).__name__ === 'h_bucket').map((s) => [Object.fromEntries(s.labels).le, s.samples[0].value]);
  assert.deepEqual(bucketsOf(h({})), [['+Inf', 3]]);
  // With buckets, +Inf is the point's count too.
  assert.deepEqual(bucketsOf(h({ bucketCounts: [1n, 2n], explicitBounds: [0.5] })), [['0.5', 1], ['+Inf', 3]]);
});

test('8. labels and names as contrib: resource job/instance and scope win; tokens decide unit and _total', () => {
  const d = batch([metric('g', '', { type: 'gauge', dataPoints: [num(1, 0n, T + S, { attributes: [
    { key: 'job', value: 'x' }, { key: 'instance', value: 'y' }, { key: 'otel_scope_name', value: 'z' },
    { key: 'a_b', value: 'second' }, { key: 'a.b', value: 'first' }, { key: 'host.name', value: 'h2' },
  ] })] })], [{ key: 'service.name', value: 'svc' }, { key: 'service.instance.id', value: 'i-1' }, { key: 'host.name', value: 'h1' }], 'sc');
  const lbl = Object.fromEntries(translate(d, { targetInfo: false, resourceToLabels: true }).get('g')!.series[0].labels);
  assert.equal(lbl.job, 'svc');
  assert.equal(lbl.instance, 'i-1');
  assert.equal(lbl.otel_scope_name, 'sc');
  assert.equal(lbl.a_b, 'first;second', 'colliding names joined in order of the original keys');
  assert.equal(lbl.host_name, 'h1', 'a resource attribute replaces the point attribute of the same key');
  // contrib normalizeName: unit word only if not already a token; all `total` tokens moved to the end.
  assert.equal(promName('a.seconds.total', 's', 'counter'), 'a_seconds_total');
  assert.equal(promName('tcp.bytes.sent', 'By', 'counter'), 'tcp_bytes_sent_total');
  assert.equal(promName('total.requests', '', 'counter'), 'requests_total');
  assert.equal(promName('rate', '{packet}/s', 'gauge'), 'rate_per_second');
});

test('9. no recorded value: stale NaN over remote write, series removed from the scrape', async () => {
  const g = (t: bigint, flags: number) => batch([metric('g', '', { type: 'gauge', dataPoints: [num(7, 0n, t, { flags })] })]);
  const w = await writeServer([]);
  try {
    await w.exporter.consume(g(T + S, 0), {});
    await w.exporter.consume(g(T + 2n * S, 1), {});
    await w.exporter.consume(expHist(T + 3n * S, 0, [1n], 1), {});
  } finally {
    await w.close();
  }
  assert.deepEqual(w.requests.map((r) => r.map((s) => s.samples[0].bits === STALE_NAN)), [[false], [true], [true, true, true, true, true]]);
  const ex = newScrape();
  await ex.consume(g(T + S, 0), {});
  assert.match(ex.render(), /^g 7$/m);
  await ex.consume(g(T + 2n * S, 1), {});
  assert.equal(ex.render(), '');
  assert.equal(ex.seriesCount, 0);
});

test('delta → cumulative histograms: other bounds restart the stream instead of adding up', () => {
  const c = new TemporalityConverter('cumulative');
  const h = (bounds: number[], counts: bigint[], k: bigint) => batch([metric('h', '', { type: 'histogram', aggregationTemporality: DELTA, dataPoints: [{ attributes: [], startTimeUnixNano: T + k * S, timeUnixNano: T + (k + 1n) * S, count: counts.reduce((a, x) => a + x, 0n), sum: 1, bucketCounts: counts, explicitBounds: bounds, exemplars: [], flags: 0 }] })]);
  c.convert(h([1, 2], [1n, 1n, 1n], 0n).resourceMetrics);
  const d = h([5, 10], [2n, 2n, 2n], 1n);
  c.convert(d.resourceMetrics);
  const p = pointsOf(d)[0] as HistogramDataPoint;
  assert.deepEqual([p.bucketCounts, p.count, p.startTimeUnixNano], [[2n, 2n, 2n], 6n, T + S]);
});

test('processor: a batch the next consumer refused is not converted twice when sent again', async () => {
  /** Sends each batch; the call at index `refuse` is refused and that batch is sent again (a fresh copy, as a client would). */
  const run = async (temporality: 'cumulative' | 'delta', batches: Array<() => MetricsData>, refuse: number) => {
    const got: Array<number | bigint> = [];
    let calls = 0;
    const next: Consumer<'metrics'> = {
      consume: async (b: MetricsData, _ctx: RequestContext) => {
        if (calls++ === refuse) throw new RetryableError('queue full');
        for (const p of pointsOf(b) as NumberDataPoint[]) got.push(p.value);
      },
    };
    const proc = new HistogramToExponential({ id: 'p', logger: testLogger() }, validateHistogramToExponentialConfig({ temporality }, 'x'), next);
    for (let k = 0; k < batches.length; k++) {
      if (calls === refuse) await assert.rejects(proc.consume(batches[k](), {}));
      await proc.consume(batches[k](), {});
    }
    return got;
  };
  const delta = (k: number) => () => batch([sum('c', DELTA, true, [num(5, T + BigInt(k) * S, T + BigInt(k + 1) * S)])]);
  assert.deepEqual(await run('cumulative', [delta(0), delta(1)], 0), [5, 10]);
  // cumulative → delta: 10 is the first point (dropped); the resent 15 must still give 15 − 10.
  const cumulative = (v: number, k: number) => () => batch([sum('c', CUMULATIVE, true, [num(v, T, T + BigInt(k + 1) * S)])]);
  assert.deepEqual(await run('delta', [cumulative(10, 0), cumulative(15, 1)], 1), [5]);
});
