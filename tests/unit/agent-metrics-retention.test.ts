// Metric state per resource must not outlive its process: every exec interns a new Resource, so a
// node runs through thousands of them. Before the fix the aggregator kept every one; at
// max_resources, new processes' metrics were folded into the first-seen (unrelated) resource.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { METRICS, MetricsAggregator, defaultMetricsConfig } from '../../agent/src/signals/metrics.ts';
import type { Resource } from '../../proto/src/model.ts';

const scope = { name: 'test', version: '0' };
const proc = (pid: number): Resource => ({ attributes: [{ key: 'process.pid', value: BigInt(pid) }], droppedAttributesCount: 0 });
const pidsOf = (md: ReturnType<MetricsAggregator['collect']>) => md.resourceMetrics.map((rm) => Number(rm.resource.attributes[0]!.value as bigint));

test('delta: short-lived processes beyond max_resources keep their own resource', () => {
  const agg = new MetricsAggregator({ ...defaultMetricsConfig(), maxResources: 5 }, 0n);
  let now = 1n;
  for (let pid = 100; pid < 130; pid++) {
    // one process per interval: it starts, connects once, exits
    const r = proc(pid); // the enricher hands out one interned Resource per process
    agg.add(r, METRICS.processStarts, '', () => [], 1);
    agg.addPeer(r, METRICS.connectDuration, '10.0.0.1', 80, 0.001);
    const md = agg.collect(++now, scope);
    assert.deepEqual(pidsOf(md), [pid], `interval of pid ${pid}: its metrics under its own resource`);
  }
  assert.equal(agg.foldedResources, 0, 'nothing folded into another resource');
  agg.collect(++now, scope);
  assert.equal(agg.resourceCount, 0, 'idle resources dropped');
});

test('delta: an idle resource is dropped and comes back with fresh series', () => {
  const agg = new MetricsAggregator(defaultMetricsConfig(), 0n);
  const r = proc(7);
  agg.add(r, METRICS.connectionsOpened, 'outbound', () => [{ key: 'kscope.tcp.direction', value: 'outbound' }], 3);
  assert.equal(agg.collect(10n, scope).resourceMetrics.length, 1);
  assert.equal(agg.resourceCount, 1, 'kept right after reporting');
  assert.equal(agg.collect(20n, scope).resourceMetrics.length, 0, 'nothing to report while idle');
  assert.equal(agg.resourceCount, 0);
  agg.add(r, METRICS.connectionsOpened, 'outbound', () => [{ key: 'kscope.tcp.direction', value: 'outbound' }], 2);
  const md = agg.collect(30n, scope);
  const m = md.resourceMetrics[0]!.scopeMetrics[0]!.metrics[0]!;
  assert.equal(m.data.type, 'sum');
  if (m.data.type !== 'sum') return;
  assert.equal(m.data.dataPoints[0]!.value, 2n, 'delta of the last interval only');
  assert.equal(m.data.dataPoints[0]!.startTimeUnixNano, 20n, 'delta start = previous collect');
});

test('cumulative: series keep being reported while idle, then the resource is dropped', () => {
  const agg = new MetricsAggregator({ ...defaultMetricsConfig(), temporality: 'cumulative' }, 0n);
  agg.add(proc(9), METRICS.processExits, 'ok', () => [], 1);
  const reported: number[] = [];
  for (let i = 1; i <= 12; i++) reported.push(agg.collect(BigInt(i * 10), scope).resourceMetrics.length);
  // the active interval + 9 idle ones are still reported with the running total, then dropped
  assert.deepEqual(reported, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
  assert.equal(agg.resourceCount, 0);
});
