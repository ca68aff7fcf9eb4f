// TemporalityConverter against contrib's rules for point order and first points:
// deltatocumulative (internal/delta AccumulateInto: ErrOlderStart, ErrOutOfOrder; a later start
// accumulates, the stream keeps its first start) and cumulativetodelta (internal/tracking Convert,
// `initial_value: auto`: a first point is kept if its start is at or after the processor's start
// and differs from its time).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import { TemporalityConverter, TemporalityJournal, HistogramToExponential, validateHistogramToExponentialConfig } from '../../collector/src/processors/histogram_to_exponential/index.ts';
import { PrometheusExporter, validatePrometheusExporterConfig } from '../../collector/src/exporters/prometheus/index.ts';
import { RetryableError } from '../../collector/src/component/errors.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { Consumer, RequestContext } from '../../collector/src/component/index.ts';
import type { ExponentialHistogramDataPoint, HistogramDataPoint, Metric, MetricData, MetricsData, NumberDataPoint } from '../../proto/src/model.ts';

const T = 1_700_000_000_000_000_000n;
const S = 1_000_000_000n;
const DELTA = 1;
const CUMULATIVE = 2;

const batch = (data: MetricData, name = 'c'): MetricsData => ({
  resourceMetrics: [{ resource: { attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', scopeMetrics: [{ scope: { name: 's', version: '', attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', metrics: [{ name, unit: '', description: '', metadata: [], data } as Metric] }] }],
});
const pointsOf = <P>(d: MetricsData) => (d.resourceMetrics[0].scopeMetrics[0].metrics[0].data as unknown as { dataPoints: P[] }).dataPoints;
const num = (value: number, start: bigint, time: bigint): NumberDataPoint => ({ attributes: [], startTimeUnixNano: start, timeUnixNano: time, value, exemplars: [], flags: 0 });
const sum = (temporality: number, value: number, start: bigint, time: bigint) => batch({ type: 'sum', aggregationTemporality: temporality, isMonotonic: true, dataPoints: [num(value, start, time)] });
const hist = (temporality: number, count: bigint, start: bigint, time: bigint) =>
  batch({ type: 'histogram', aggregationTemporality: temporality, dataPoints: [{ attributes: [], startTimeUnixNano: start, timeUnixNano: time, count, sum: Number(count), bucketCounts: [count, 0n], explicitBounds: [1], exemplars: [], flags: 0, min: 1, max: 1 }] });
const expo = (count: bigint, start: bigint, time: bigint) =>
  batch({ type: 'exponentialHistogram', aggregationTemporality: DELTA, dataPoints: [{ attributes: [], startTimeUnixNano: start, timeUnixNano: time, count, sum: Number(count), scale: 0, zeroCount: 0n, zeroThreshold: 0, positive: { offset: 0, bucketCounts: [count] }, negative: { offset: 0, bucketCounts: [] }, flags: 0, exemplars: [] }] });

/** Converts each batch in turn; per batch: the values of the points left (sum value or count). */
function run(c: TemporalityConverter, batches: MetricsData[]): Array<Array<number | bigint>> {
  return batches.map((b) => {
    c.convert(b.resourceMetrics);
    return pointsOf<{ value?: number | bigint; count?: bigint }>(b).map((p) => p.value ?? p.count!);
  });
}

// Item 1: delta → cumulative must not add a point it has already added (or one older than the stream).

test('delta → cumulative sums: a duplicate or out-of-order point is dropped, not added again', () => {
  const c = new TemporalityConverter('cumulative');
  const dup = sum(DELTA, 3, T + 10n * S, T + 20n * S);
  const got = run(c, [sum(DELTA, 5, T, T + 10n * S), sum(DELTA, 3, T + 10n * S, T + 20n * S), dup, sum(DELTA, 1, T + 5n * S, T + 15n * S), sum(DELTA, 2, T + 20n * S, T + 30n * S)]);
  // Old code: [[5], [8], [11], [12], [14]], every later value inflated.
  assert.deepEqual(got, [[5], [8], [], [], [10]]);
  assert.equal(pointsOf<NumberDataPoint>(dup).length, 0);
  assert.deepEqual(c.drops, { initial: 0, olderStart: 0, outOfOrder: 2 });
});

test('delta → cumulative: a start before the stream’s start is dropped; a later start accumulates, keeping the first start', () => {
  const c = new TemporalityConverter('cumulative');
  const later = sum(DELTA, 2, T + 50n * S, T + 60n * S);
  const older = sum(DELTA, 7, T - S, T + 70n * S);
  assert.deepEqual(run(c, [sum(DELTA, 5, T, T + 10n * S), later, older]), [[5], [7], []]);
  assert.equal(pointsOf<NumberDataPoint>(later)[0].startTimeUnixNano, T, 'contrib keeps the stream’s first start');
  assert.deepEqual(c.drops, { initial: 0, olderStart: 1, outOfOrder: 0 });
  assert.equal(c.convert(sum(DELTA, 7, T - S, T + 80n * S).resourceMetrics), 1, 'convert() counts the dropped point');
});

test('delta → cumulative histograms: a duplicate point is dropped, not added again', () => {
  const c = new TemporalityConverter('cumulative');
  // Old code: [[2n], [5n], [8n]].
  assert.deepEqual(run(c, [hist(DELTA, 2n, T, T + S), hist(DELTA, 3n, T + S, T + 2n * S), hist(DELTA, 3n, T + S, T + 2n * S)]), [[2n], [5n], []]);
  assert.equal(c.drops.outOfOrder, 1);
});

test('delta → cumulative histograms: a late point with other bounds is dropped, not a restart', () => {
  const c = new TemporalityConverter('cumulative');
  run(c, [hist(DELTA, 2n, T, T + 2n * S)]);
  const late = hist(DELTA, 4n, T, T + S);
  pointsOf<HistogramDataPoint>(late)[0].explicitBounds = [5];
  // Old code restarted the stream from the late point: [[4n]].
  assert.deepEqual(run(c, [late, hist(DELTA, 1n, T + 2n * S, T + 3n * S)]), [[], [3n]]);
});

test('delta → cumulative exponential histograms: a duplicate point is dropped, not merged again', () => {
  const c = new TemporalityConverter('cumulative');
  const dup = expo(3n, T + S, T + 2n * S);
  // Old code: [[2n], [5n], [8n]], and the duplicate stayed in the batch.
  assert.deepEqual(run(c, [expo(2n, T, T + S), expo(3n, T + S, T + 2n * S), dup]), [[2n], [5n], []]);
  assert.equal(c.drops.outOfOrder, 1);
  assert.deepEqual(run(c, [expo(1n, T + 2n * S, T + 3n * S)]), [[6n]]);
});

test('delta → cumulative: a refused batch sent again is accepted once; a dropped point does not block its rollback', () => {
  const c = new TemporalityConverter('cumulative');
  run(c, [sum(DELTA, 5, T, T + 10n * S)]);
  const a = new TemporalityJournal();
  c.convert(sum(DELTA, 3, T + 10n * S, T + 20n * S).resourceMetrics, a);
  // Meanwhile a duplicate of the first batch arrives: dropped, it changes nothing.
  const dup = sum(DELTA, 5, T, T + 10n * S);
  c.convert(dup.resourceMetrics, new TemporalityJournal());
  // The next consumer refuses batch a; its deltas are taken back out and the sender sends it again.
  c.rollback(a);
  // Old code: the duplicate was added (13) and, having touched the stream, kept the rollback from
  // happening; the resent batch was then added a second time: [[16]].
  assert.deepEqual(run(c, [sum(DELTA, 3, T + 10n * S, T + 20n * S)]), [[8]]);
  assert.equal(pointsOf<NumberDataPoint>(dup).length, 0);
});

test('processor: a duplicate delta batch is counted in droppedPoints, and a refused batch resent is accepted', async () => {
  const got: Array<number | bigint> = [];
  let calls = 0;
  const next: Consumer<'metrics'> = {
    consume: async (b: MetricsData, _ctx: RequestContext) => {
      if (calls++ === 1) throw new RetryableError('queue full');
      for (const p of pointsOf<NumberDataPoint>(b)) got.push(p.value);
    },
  };
  const proc = new HistogramToExponential({ id: 'p', logger: testLogger() }, validateHistogramToExponentialConfig({ temporality: 'cumulative' }, 'x'), next);
  await proc.consume(sum(DELTA, 5, T, T + S), {});
  await assert.rejects(proc.consume(sum(DELTA, 3, T + S, T + 2n * S), {}));
  await proc.consume(sum(DELTA, 3, T + S, T + 2n * S), {});
  await proc.consume(sum(DELTA, 3, T + S, T + 2n * S), {}); // a duplicate
  assert.deepEqual(got, [5, 8]);
  assert.equal(proc.droppedPoints, 1);
});

test('prometheus scrape: the same delta point twice is counted once', async () => {
  const telemetry = new SelfTelemetry(new MetricsRegistry());
  const ex = new PrometheusExporter({ id: 'prom', logger: testLogger(), telemetry }, validatePrometheusExporterConfig({ endpoint: '127.0.0.1:0', target_info: { enabled: false } }, 'x'));
  const d = () => batch({ type: 'sum', aggregationTemporality: DELTA, isMonotonic: true, dataPoints: [num(5, T, T + S)] }, 'req');
  await ex.consume(d(), {});
  await ex.consume(d(), {});
  // Old code: req_total 10.
  assert.match(ex.render(), /^req_total\{[^}]*\} 5$/m);
  assert.match(telemetry.registry.render(), /kscope_exporter_temporality_dropped_points_total\{exporter="prom"\} 1/, 'the dropped point is counted');
});

// Item 2: cumulative → delta keeps a first point whose whole count is new (contrib initial_value: auto).

test('cumulative → delta: a first point starting at or after the converter’s creation is kept as its own delta', () => {
  const c = new TemporalityConverter('delta', 10_000, T);
  const first = sum(CUMULATIVE, 7, T + S, T + 2n * S);
  // Old code: [[], [3]]: the 7 counted since T + S was lost.
  assert.deepEqual(run(c, [first, sum(CUMULATIVE, 10, T + S, T + 3n * S)]), [[7], [3]]);
  const p = pointsOf<NumberDataPoint>(first)[0];
  assert.deepEqual([p.startTimeUnixNano, p.timeUnixNano], [T + S, T + 2n * S]);
  assert.equal(c.drops.initial, 0);
  // Exactly at the converter's start counts as after it (contrib: dropped only if start < start time).
  const c2 = new TemporalityConverter('delta', 10_000, T);
  assert.deepEqual(run(c2, [sum(CUMULATIVE, 4, T, T + S)]), [[4]]);
});

test('cumulative → delta: a first point started before the converter, unset, or with time = start is dropped', () => {
  const c = new TemporalityConverter('delta', 10_000, T);
  const firsts = [sum(CUMULATIVE, 7, T - S, T + S), sum(CUMULATIVE, 7, 0n, T + S), sum(CUMULATIVE, 7, T + S, T + S)];
  firsts.forEach((b, k) => (b.resourceMetrics[0].scopeMetrics[0].metrics[0].name = `c${k}`));
  assert.deepEqual(run(c, firsts), [[], [], []]);
  assert.equal(c.drops.initial, 3);
  // The next point of each gives the delta from the first as before.
  const seconds = [sum(CUMULATIVE, 9, T - S, T + 2n * S), sum(CUMULATIVE, 9, 0n, T + 2n * S), sum(CUMULATIVE, 9, T + S, T + 2n * S)];
  seconds.forEach((b, k) => (b.resourceMetrics[0].scopeMetrics[0].metrics[0].name = `c${k}`));
  assert.deepEqual(run(c, seconds), [[2], [2], [2]]);
});

test('cumulative → delta histograms: the auto rule applies to the first point too', () => {
  const c = new TemporalityConverter('delta', 10_000, T);
  const first = hist(CUMULATIVE, 4n, T + S, T + 2n * S);
  // Old code: [[], [2n]].
  assert.deepEqual(run(c, [first, hist(CUMULATIVE, 6n, T + S, T + 3n * S)]), [[4n], [2n]]);
  const p = pointsOf<HistogramDataPoint>(first)[0];
  assert.deepEqual([p.startTimeUnixNano, p.bucketCounts, p.min, p.max], [T + S, [4n, 0n], 1, 1]);
  const old = new TemporalityConverter('delta', 10_000, T + 10n * S);
  assert.deepEqual(run(old, [hist(CUMULATIVE, 4n, T + S, T + 20n * S)]), [[]]);
});

test('cumulative → delta: by default the converter’s creation time is the start (a counter started after it is kept)', async () => {
  const got: Array<number | bigint> = [];
  const next: Consumer<'metrics'> = { consume: async (b: MetricsData) => { for (const p of pointsOf<NumberDataPoint>(b)) got.push(p.value); } };
  const proc = new HistogramToExponential({ id: 'p', logger: testLogger() }, validateHistogramToExponentialConfig({ temporality: 'delta' }, 'x'), next);
  const now = BigInt(Date.now()) * 1_000_000n;
  await proc.consume(sum(CUMULATIVE, 7, now + S, now + 2n * S), {});
  await proc.consume(sum(CUMULATIVE, 9, now + S, now + 3n * S), {});
  // A counter that started before the processor: its first value includes counts seen before.
  const before = sum(CUMULATIVE, 100, now - 3600n * S, now + 2n * S);
  before.resourceMetrics[0].scopeMetrics[0].metrics[0].name = 'older';
  await proc.consume(before, {});
  // Old code: [2].
  assert.deepEqual(got, [7, 2]);
  assert.equal(proc.droppedPoints, 1);
});
