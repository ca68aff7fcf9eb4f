// prometheusremotewrite: exponential histograms as Prometheus native histograms. What the exporter
// POSTs is decoded here with a reader of its own for prompb types.proto (TimeSeries labels=1,
// samples=2, histograms=4; Histogram count_int=1, sum=3, schema=4 sint32, zero_threshold=5,
// zero_count_int=6, negative_spans=8, negative_deltas=9 packed sint64, positive_spans=11,
// positive_deltas=12, reset_hint=14, timestamp=15; BucketSpan offset=1 sint32, length=2), and
// compared with values derived by hand from the mapping (contrib's exponentialToNativeHistogram).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import snappy from 'snappyjs';
import { createRemoteWriteExporter, validateRemoteWriteConfig } from '../../collector/src/exporters/prometheusremotewrite/index.ts';
import { ConfigError, PermanentError } from '../../collector/src/component/errors.ts';
import type { Logger } from '../../collector/src/component/index.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import type { ExponentialHistogramDataPoint, Metric, MetricsData } from '../../proto/src/model.ts';

const T = 1_700_000_000_000_000_000n;
const T_MS = 1_700_000_000_000;
const STALE_NAN = 0x7ff0000000000002n;

// ---------------------------------------------------------------------------------------------
// A protobuf reader for the WriteRequest fields above (varints as bigint: count_int can be the
// stale NaN's 64 bits).

class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array) {}
  more(): boolean {
    return this.pos < this.b.length;
  }
  varint(): bigint {
    let x = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const c = this.b[this.pos++];
      if (c === undefined) throw new Error('truncated varint');
      x |= BigInt(c & 0x7f) << shift;
      if (c < 0x80) return x;
    }
  }
  tag(): [number, number] {
    const t = Number(this.varint());
    return [t >>> 3, t & 7];
  }
  bytes(): Uint8Array {
    const n = Number(this.varint());
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  fixed64(): Buffer {
    const out = Buffer.from(this.b.subarray(this.pos, this.pos + 8));
    this.pos += 8;
    return out;
  }
  skip(wt: number): void {
    if (wt === 0) this.varint();
    else if (wt === 1) this.pos += 8;
    else if (wt === 2) this.bytes();
    else if (wt === 5) this.pos += 4;
    else throw new Error(`wire type ${wt}`);
  }
}
const unzig = (v: bigint): bigint => (v >> 1n) ^ -(v & 1n);

interface Span { offset: number; length: number }
interface Hist {
  countInt?: bigint;
  sum?: number;
  sumBits?: bigint;
  schema: number;
  zeroThreshold?: number;
  zeroCount?: bigint;
  negativeSpans: Span[];
  negativeDeltas: bigint[];
  positiveSpans: Span[];
  positiveDeltas: bigint[];
  resetHint: number;
  timestamp?: bigint;
}
interface Series { labels: Record<string, string>; samples: Array<{ value: number; bits: bigint }>; histograms: Hist[] }

function decodeSpan(b: Uint8Array): Span {
  const r = new Reader(b);
  const s = { offset: 0, length: 0 };
  while (r.more()) {
    const [f, wt] = r.tag();
    if (f === 1 && wt === 0) s.offset = Number(unzig(r.varint()));
    else if (f === 2 && wt === 0) s.length = Number(r.varint());
    else r.skip(wt);
  }
  return s;
}

function decodeDeltas(b: Uint8Array): bigint[] {
  const r = new Reader(b);
  const out: bigint[] = [];
  while (r.more()) out.push(unzig(r.varint()));
  return out;
}

function decodeHistogram(b: Uint8Array): Hist {
  const r = new Reader(b);
  const h: Hist = { schema: 0, negativeSpans: [], negativeDeltas: [], positiveSpans: [], positiveDeltas: [], resetHint: 0 };
  while (r.more()) {
    const [f, wt] = r.tag();
    if (f === 1 && wt === 0) h.countInt = r.varint();
    else if (f === 3 && wt === 1) {
      const x = r.fixed64();
      h.sum = x.readDoubleLE();
      h.sumBits = x.readBigUInt64LE();
    } else if (f === 4 && wt === 0) h.schema = Number(unzig(r.varint()));
    else if (f === 5 && wt === 1) h.zeroThreshold = r.fixed64().readDoubleLE();
    else if (f === 6 && wt === 0) h.zeroCount = r.varint();
    else if (f === 8 && wt === 2) h.negativeSpans.push(decodeSpan(r.bytes()));
    else if (f === 9 && wt === 2) h.negativeDeltas.push(...decodeDeltas(r.bytes()));
    else if (f === 11 && wt === 2) h.positiveSpans.push(decodeSpan(r.bytes()));
    else if (f === 12 && wt === 2) h.positiveDeltas.push(...decodeDeltas(r.bytes()));
    else if (f === 14 && wt === 0) h.resetHint = Number(r.varint());
    else if (f === 15 && wt === 0) h.timestamp = r.varint();
    else throw new Error(`unexpected Histogram field ${f} (wire type ${wt})`);
  }
  return h;
}

function decodeWriteRequest(body: Uint8Array): Series[] {
  const out: Series[] = [];
  const r = new Reader(body);
  while (r.more()) {
    const [f, wt] = r.tag();
    if (f !== 1 || wt !== 2) { r.skip(wt); continue; }
    const ts = new Reader(r.bytes());
    const s: Series = { labels: {}, samples: [], histograms: [] };
    while (ts.more()) {
      const [tf, twt] = ts.tag();
      if (twt !== 2) { ts.skip(twt); continue; }
      const inner = new Reader(ts.bytes());
      if (tf === 1) {
        const kv: string[] = [];
        while (inner.more()) { inner.tag(); kv.push(Buffer.from(inner.bytes()).toString()); }
        s.labels[kv[0]] = kv[1];
      } else if (tf === 2) {
        const smp = { value: 0, bits: 0n };
        while (inner.more()) {
          const [sf, swt] = inner.tag();
          if (sf === 1) { const x = inner.fixed64(); smp.value = x.readDoubleLE(); smp.bits = x.readBigUInt64LE(); }
          else inner.skip(swt);
        }
        s.samples.push(smp);
      } else if (tf === 4) s.histograms.push(decodeHistogram(inner.b));
    }
    out.push(s);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function batch(metrics: Metric[]): MetricsData {
  return {
    resourceMetrics: [{
      resource: { attributes: [{ key: 'service.name', value: 'cart' }, { key: 'service.instance.id', value: 'cart-1' }], droppedAttributesCount: 0 },
      schemaUrl: '',
      scopeMetrics: [{ scope: { name: 'kscope.agent', version: '', attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', metrics }],
    }],
  };
}

type Sides = { scale: number; pos?: [number, number[]]; neg?: [number, number[]]; zero?: number; zeroThreshold?: number; sum?: number | null; flags?: number; count?: number };
function point(s: Sides): ExponentialHistogramDataPoint {
  const pos = s.pos ?? [0, []];
  const neg = s.neg ?? [0, []];
  const zero = s.zero ?? 0;
  const total = zero + [...pos[1], ...neg[1]].reduce((a, b) => a + b, 0);
  const p: ExponentialHistogramDataPoint = {
    attributes: [{ key: 'peer.service', value: 'db' }], startTimeUnixNano: T - 60_000_000_000n, timeUnixNano: T, count: BigInt(s.count ?? total),
    scale: s.scale, zeroCount: BigInt(zero), zeroThreshold: s.zeroThreshold ?? 0,
    positive: { offset: pos[0], bucketCounts: pos[1].map(BigInt) }, negative: { offset: neg[0], bucketCounts: neg[1].map(BigInt) },
    flags: s.flags ?? 0, exemplars: [],
  };
  if (s.sum !== null) p.sum = s.sum ?? 42.5;
  return p;
}
const expMetric = (name: string, ...pts: ExponentialHistogramDataPoint[]): Metric => ({
  name, unit: 's', description: '', metadata: [], data: { type: 'exponentialHistogram', aggregationTemporality: 2, dataPoints: pts },
});

function captureLogger(lines: string[]): Logger {
  const l: Logger = {
    info: () => {}, debug: () => {}, child: () => l,
    warn: (o, m) => void lines.push(`${m ?? ''} ${JSON.stringify(o)}`),
    error: (o, m) => void lines.push(`${m ?? ''} ${JSON.stringify(o)}`),
  };
  return l;
}

/** A remote-write endpoint answering `reply` (default 204); records every decoded request. */
async function withExporter(extra: Record<string, unknown>, run: (consume: (d: MetricsData) => Promise<void>) => Promise<void>,
  reply: () => [number, string] = () => [204, '']) {
  const requests: Series[][] = [];
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push(decodeWriteRequest(Buffer.from(snappy.uncompress(Buffer.concat(chunks)))));
      const [status, body] = reply();
      res.writeHead(status).end(body);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  const tel = new SelfTelemetry(new MetricsRegistry());
  const logs: string[] = [];
  const ex = createRemoteWriteExporter({ id: 'prw', logger: captureLogger(logs), telemetry: tel }, validateRemoteWriteConfig({
    endpoint: `http://127.0.0.1:${port}/api/v1/write`,
    target_info: { enabled: false },
    sending_queue: { enabled: false }, // consume() returns once the request is answered
    retry_on_failure: { initial_interval: '5ms', randomization_factor: 0 },
    ...extra,
  }, 'exporters.prometheusremotewrite'), 'metrics');
  await ex.start({ reportFatal() {} });
  try {
    await run((d) => ex.consume(d, {}));
  } finally {
    await ex.shutdown();
    srv.close();
  }
  return { requests, tel, logs };
}

/** The one native histogram series of the (only) request. */
async function sendOne(p: ExponentialHistogramDataPoint): Promise<{ series: Series; h: Hist }> {
  const { requests } = await withExporter({}, async (consume) => consume(batch([expMetric('rpc.latency', p)])));
  assert.equal(requests.length, 1);
  assert.equal(requests[0].length, 1, 'one series per exponential histogram point');
  const series = requests[0][0];
  assert.equal(series.histograms.length, 1);
  assert.equal(series.samples.length, 0);
  return { series, h: series.histograms[0] };
}

test('config: exponential_histograms defaults to native, accepts classic, names the field when invalid', () => {
  const v = (extra: object) => validateRemoteWriteConfig({ endpoint: 'http://127.0.0.1:9090/api/v1/write', ...extra }, 'exporters.prometheusremotewrite');
  assert.equal(v({}).exponentialHistograms, 'native');
  assert.equal(v({ exponential_histograms: 'classic' }).exponentialHistograms, 'classic');
  assert.throws(() => v({ exponential_histograms: 'sparse' }), (e: unknown) => e instanceof ConfigError && /exporters\.prometheusremotewrite\.exponential_histograms/.test(e.message) && /native, classic/.test(e.message));
});

test('positive and negative buckets: one series named like the family, schema = scale, index + 1, deltas', async () => {
  // scale 0: OTel positive 2..4 = (4,8], (8,16], (16,32] → Prometheus 3..5; negative -1..0 → 0..1.
  const { series, h } = await sendOne(point({ scale: 0, pos: [2, [1, 2, 4]], neg: [-1, [5, 3]], zero: 2, sum: 99.5 }));
  assert.deepEqual(series.labels, { __name__: 'rpc_latency_seconds', job: 'cart', instance: 'cart-1', otel_scope_name: 'kscope.agent', peer_service: 'db' });
  assert.equal(h.schema, 0);
  assert.equal(h.countInt, 17n);
  assert.equal(h.sum, 99.5);
  assert.equal(h.zeroCount, 2n);
  assert.equal(h.zeroThreshold, 1e-128, 'zero_threshold 0 in OTel → contrib’s default');
  assert.deepEqual(h.positiveSpans, [{ offset: 3, length: 3 }]);
  assert.deepEqual(h.positiveDeltas, [1n, 1n, 2n]);
  assert.deepEqual(h.negativeSpans, [{ offset: 0, length: 2 }]);
  assert.deepEqual(h.negativeDeltas, [5n, -2n]);
  assert.equal(h.resetHint, 0, 'UNKNOWN for cumulative points, as contrib');
  assert.equal(h.timestamp, BigInt(T_MS));
});

test('a gap of 1 (and 2) empty buckets stays inside the span as zero-count buckets', async () => {
  const one = (await sendOne(point({ scale: 3, pos: [-4, [1, 0, 2]] }))).h;
  assert.equal(one.schema, 3);
  assert.deepEqual(one.positiveSpans, [{ offset: -3, length: 3 }]);
  assert.deepEqual(one.positiveDeltas, [1n, -1n, 2n]);
  const two = (await sendOne(point({ scale: 3, pos: [0, [1, 0, 0, 2]] }))).h;
  assert.deepEqual(two.positiveSpans, [{ offset: 1, length: 4 }]);
  assert.deepEqual(two.positiveDeltas, [1n, -1n, 0n, 2n]);
});

test('a gap of 5 (and 3) empty buckets starts a new span; empty buckets at either end are not sent', async () => {
  // Prometheus indexes: 3 at 2, 2 at 8 (five empty buckets 3..7 between them).
  const five = (await sendOne(point({ scale: 0, pos: [0, [0, 3, 0, 0, 0, 0, 0, 2, 0, 0]] }))).h;
  assert.deepEqual(five.positiveSpans, [{ offset: 2, length: 1 }, { offset: 5, length: 1 }]);
  assert.deepEqual(five.positiveDeltas, [3n, -1n]);
  const three = (await sendOne(point({ scale: 0, neg: [-2, [4, 0, 0, 0, 1]] }))).h;
  assert.deepEqual(three.negativeSpans, [{ offset: -1, length: 1 }, { offset: 3, length: 1 }]);
  assert.deepEqual(three.negativeDeltas, [4n, -3n]);
});

test('scale 10 is merged down to schema 8: four buckets into one, floor for negative indexes', async () => {
  // OTel indexes -5..2 at scale 10 → ⌊i/4⌋ at scale 8: -5→-2; -4..-1→-1; 0..2→0. Then +1.
  const { h } = await sendOne(point({ scale: 10, pos: [-5, [1, 2, 3, 4, 5, 6, 7, 8]], neg: [3, [1, 1, 1, 1, 1]] }));
  assert.equal(h.schema, 8);
  assert.deepEqual(h.positiveSpans, [{ offset: -1, length: 3 }]);
  assert.deepEqual(h.positiveDeltas, [1n, 13n, 7n]); // counts 1, 14, 21
  // Negative side: 3→0, 4..7→1 → Prometheus 1 and 2 with counts 1 and 4.
  assert.deepEqual(h.negativeSpans, [{ offset: 1, length: 2 }]);
  assert.deepEqual(h.negativeDeltas, [1n, 3n]);
  assert.equal(h.countInt, 41n);
});

test('zero bucket: zero_count_int, and the point’s zero_threshold when it has one', async () => {
  const only = (await sendOne(point({ scale: 2, zero: 7, zeroThreshold: 0.001 }))).h;
  assert.equal(only.zeroCount, 7n);
  assert.equal(only.zeroThreshold, 0.001);
  assert.equal(only.countInt, 7n);
  assert.deepEqual(only.positiveSpans, []);
  assert.deepEqual(only.negativeSpans, []);
  // No sum on the point: 0, as contrib.
  const noSum = (await sendOne(point({ scale: 2, zero: 1, pos: [0, [1]], sum: null }))).h;
  assert.equal(noSum.sum, 0);
});

test('no recorded value: a stale native histogram (sum and count_int carry 0x7ff0000000000002)', async () => {
  const { h } = await sendOne(point({ scale: 1, flags: 1 }));
  assert.equal(h.sumBits, STALE_NAN);
  assert.equal(h.countInt, STALE_NAN);
  assert.equal(h.timestamp, BigInt(T_MS));
});

test('scale below -4 and a count that is not the bucket total: left out, counted, logged; the rest is sent', async () => {
  const gauge: Metric = { name: 'queue.depth', unit: '', description: '', metadata: [], data: { type: 'gauge', dataPoints: [{ attributes: [], startTimeUnixNano: 0n, timeUnixNano: T, value: 3, exemplars: [], flags: 0 }] } };
  const { requests, tel, logs } = await withExporter({}, async (consume) => {
    await consume(batch([expMetric('coarse', point({ scale: -5, pos: [0, [1]] }), point({ scale: 0, pos: [0, [1]], count: 5 })), gauge]));
    await consume(batch([expMetric('coarse', point({ scale: -6, pos: [0, [1]] }))])); // nothing left to send
  });
  assert.equal(requests.length, 1);
  assert.deepEqual(requests[0].map((s) => s.labels.__name__), ['queue_depth']);
  assert.equal(tel.registry.get('kscope_exporter_send_failed_items_total')!.sum({ reason: 'rejected' }), 3);
  assert.ok(logs.some((l) => /scale -5 is below -4/.test(l)), logs.join('\n'));
  assert.ok(logs.some((l) => /count 5 is not zero_count \+ bucket counts \(1\)/.test(l)), logs.join('\n'));
});

test('classic mode keeps the _bucket{le} series and sends no native histogram', async () => {
  const { requests } = await withExporter({ exponential_histograms: 'classic' }, async (consume) => consume(batch([expMetric('rpc.latency', point({ scale: 0, pos: [0, [1, 2]] }))])));
  const names = requests[0].map((s) => s.labels.__name__).sort();
  assert.deepEqual([...new Set(names)], ['rpc_latency_seconds_bucket', 'rpc_latency_seconds_count', 'rpc_latency_seconds_sum']);
  assert.deepEqual(requests[0].filter((s) => s.labels.__name__ === 'rpc_latency_seconds_bucket').map((s) => [s.labels.le, s.samples[0].value]), [['0', 0], ['2', 1], ['4', 3], ['+Inf', 3]]);
  assert.ok(requests[0].every((s) => s.histograms.length === 0));
});

test('a Prometheus with native histograms disabled (HTTP 500) drops the batch at once, saying what to change', async () => {
  let err: unknown;
  const { requests, logs } = await withExporter({}, async (consume) => {
    err = await consume(batch([expMetric('rpc.latency', point({ scale: 0, pos: [0, [1]] }))])).catch((e: unknown) => e);
  }, () => [500, 'native histograms are disabled\n']);
  assert.equal(requests.length, 1, 'not retried');
  assert.ok(err instanceof PermanentError, String(err));
  assert.ok(logs.some((l) => l.includes('--enable-feature=native-histograms') && l.includes('exponential_histograms: classic')), logs.join('\n'));
});
