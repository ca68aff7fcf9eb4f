import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toExponential, mapToIndex, lowerBoundary, expQuantile, TemporalityConverter, HistogramToExponential, validateHistogramToExponentialConfig } from '../../collector/src/processors/histogram_to_exponential/index.ts';
import { CaptureSink, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { HistogramDataPoint, MetricsData } from '../../proto/src/model.ts';

function explicitFrom(values: number[], bounds: number[]): HistogramDataPoint {
  const counts = new Array<bigint>(bounds.length + 1).fill(0n);
  for (const v of values) {
    let i = 0;
    while (i < bounds.length && v > bounds[i]) i++;
    counts[i]++;
  }
  return {
    attributes: [], startTimeUnixNano: 1n, timeUnixNano: 2n, count: BigInt(values.length),
    sum: values.reduce((a, b) => a + b, 0), bucketCounts: counts, explicitBounds: bounds, exemplars: [], flags: 0,
    min: Math.min(...values), max: Math.max(...values),
  };
}

test('mapToIndex follows the spec: exact powers of two, both scale signs, boundaries consistent', () => {
  assert.equal(mapToIndex(1, 0), -1);
  assert.equal(mapToIndex(2, 0), 0);
  assert.equal(mapToIndex(3, 0), 1);
  assert.equal(mapToIndex(4, 1), 3);
  assert.equal(mapToIndex(1024, -2), 2); // (1024 = 2^10) → exp 9 >> 2 = 2
  assert.equal(mapToIndex(0.5, 3), -9);
  fc.assert(fc.property(fc.double({ min: 1e-200, max: 1e200, noNaN: true }), fc.integer({ min: -5, max: 12 }), (v, s) => {
    const i = mapToIndex(v, s);
    const lo = lowerBoundary(i, s);
    const hi = lowerBoundary(i + 1, s);
    const eps = 1e-9;
    return v > lo * (1 - eps) && v <= hi * (1 + eps);
  }), { numRuns: 500 });
});

const positiveValues = fc.array(fc.double({ min: 1e-3, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 300 });
const boundsArb = fc.uniqueArray(fc.double({ min: 1e-3, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 40 }).map((b) => b.sort((x, y) => x - y));

test('property: count, sum, min, max and total bucket count are preserved; ranges fit max_size', () => {
  fc.assert(fc.property(fc.array(fc.double({ min: -1e5, max: 1e5, noNaN: true }), { minLength: 1, maxLength: 200 }), fc.uniqueArray(fc.double({ min: -1e5, max: 1e5, noNaN: true }), { minLength: 0, maxLength: 30 }).map((b) => b.sort((x, y) => x - y)), fc.integer({ min: 2, max: 200 }), (values, bounds, maxSize) => {
    const dp = explicitFrom(values, bounds);
    const e = toExponential(dp, { maxSize, maxScale: 20, minScale: -10 });
    const total = e.zeroCount + e.positive.bucketCounts.reduce((a, c) => a + c, 0n) + e.negative.bucketCounts.reduce((a, c) => a + c, 0n);
    assert.equal(total, dp.count);
    assert.equal(e.count, dp.count);
    assert.equal(e.sum, dp.sum);
    assert.equal(e.min, dp.min);
    assert.equal(e.max, dp.max);
    assert.ok(e.positive.bucketCounts.length <= maxSize && e.negative.bucketCounts.length <= maxSize);
    return true;
  }), { numRuns: 300 });
});

test('property: quantile error within the documented bound ½·ln(u/l) + ln(base)', () => {
  fc.assert(fc.property(positiveValues, boundsArb, fc.double({ min: 0.01, max: 1, noNaN: true }), (values, bounds, q) => {
    const dp = explicitFrom(values, bounds);
    const e = toExponential(dp);
    const sorted = values.slice().sort((a, b) => a - b);
    const rank = Math.max(1, Math.ceil(q * sorted.length));
    const v = sorted[rank - 1];
    // The explicit bucket holding v, clamped to [min, max] as the converter does.
    let i = 0;
    while (i < bounds.length && v > bounds[i]) i++;
    const l = Math.max(i === 0 ? dp.min! : bounds[i - 1], dp.min!);
    const u = Math.min(i === bounds.length ? dp.max! : bounds[i], dp.max!);
    const base = Math.pow(2, Math.pow(2, -e.scale));
    const bound = 0.5 * Math.log(u / l) + Math.log(base) + 1e-9;
    const est = expQuantile(e, q);
    const err = Math.abs(Math.log(est) - Math.log(v));
    assert.ok(err <= bound, `q=${q} v=${v} est=${est} err=${err} bound=${bound} scale=${e.scale}`);
    return true;
  }), { numRuns: 300 });
});

test('typical latency histogram: fine scale, exact totals', () => {
  const bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  const values = Array.from({ length: 1000 }, (_, k) => 0.001 * Math.pow(1.01, k));
  const e = toExponential(explicitFrom(values, bounds));
  assert.ok(e.scale >= 3, `scale ${e.scale}`);
  assert.ok(e.positive.bucketCounts.length <= 160);
});

test('temporality: cumulative → delta drops first point and handles resets; delta → cumulative accumulates', () => {
  const mk = (value: number, start = 1n, t = 2n): MetricsData => ({
    resourceMetrics: [{ resource: { attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', scopeMetrics: [{ scope: { name: 's', version: '', attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', metrics: [{ name: 'c', description: '', unit: '', metadata: [], data: { type: 'sum', isMonotonic: true, aggregationTemporality: 2, dataPoints: [{ attributes: [], startTimeUnixNano: start, timeUnixNano: t, value, exemplars: [], flags: 0 }] } }] }] }],
  });
  const pts = (d: MetricsData) => (d.resourceMetrics[0].scopeMetrics[0].metrics[0].data as { dataPoints: Array<{ value: number }> }).dataPoints.map((p) => p.value);
  const toDelta = new TemporalityConverter('delta');
  const a = mk(10); toDelta.convert(a.resourceMetrics); assert.deepEqual(pts(a), []);
  const b = mk(15, 1n, 3n); toDelta.convert(b.resourceMetrics); assert.deepEqual(pts(b), [5]);
  const c = mk(4, 5n, 6n); toDelta.convert(c.resourceMetrics); assert.deepEqual(pts(c), [4], 'reset: value since the new start');
  const toCum = new TemporalityConverter('cumulative');
  const d1 = mk(3); (d1.resourceMetrics[0].scopeMetrics[0].metrics[0].data as { aggregationTemporality: number }).aggregationTemporality = 1;
  // d2 is the next window: the same (start, time) again would be a duplicate, dropped (as contrib).
  const d2 = mk(4, 2n, 3n); (d2.resourceMetrics[0].scopeMetrics[0].metrics[0].data as { aggregationTemporality: number }).aggregationTemporality = 1;
  toCum.convert(d1.resourceMetrics); toCum.convert(d2.resourceMetrics);
  assert.deepEqual(pts(d2), [7]);
  const bounded = new TemporalityConverter('delta', 1);
  bounded.convert(mk(1).resourceMetrics);
  const other = mk(1); other.resourceMetrics[0].scopeMetrics[0].metrics[0].name = 'd';
  bounded.convert(other.resourceMetrics);
  assert.equal(bounded.size, 1);
  assert.equal(bounded.evictions, 1);
});

test('processor converts histograms in a batch and leaves other metrics alone', async () => {
  const sink = new CaptureSink('metrics');
  const p = new HistogramToExponential({ id: 'h', logger: testLogger() }, validateHistogramToExponentialConfig({}, 'x'), sink);
  const dp = explicitFrom([1, 2, 3, 50], [1, 5, 10]);
  await p.consume({ resourceMetrics: [{ resource: { attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', scopeMetrics: [{ scope: { name: '', version: '', attributes: [], droppedAttributesCount: 0 }, schemaUrl: '', metrics: [
    { name: 'lat', description: '', unit: 's', metadata: [], data: { type: 'histogram', aggregationTemporality: 2, dataPoints: [dp] } },
    { name: 'g', description: '', unit: '', metadata: [], data: { type: 'gauge', dataPoints: [] } },
  ] }] }] }, {});
  const ms = sink.batches[0].batch.resourceMetrics[0].scopeMetrics[0].metrics;
  assert.equal(ms[0].data.type, 'exponentialHistogram');
  assert.equal(ms[1].data.type, 'gauge');
});
