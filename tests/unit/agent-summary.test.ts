import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionSummary, percentile, workloadOf } from '../../agent/src/cli/summary.ts';
import type { Span, TracesData } from '../../proto/src/model.ts';

function span(name: string, durNs: bigint, peer: string, error = false): Span {
  return {
    traceId: new Uint8Array(16), spanId: new Uint8Array(8), traceState: '', parentSpanId: new Uint8Array(0), flags: 1, name, kind: 3,
    startTimeUnixNano: 1000n, endTimeUnixNano: 1000n + durNs,
    attributes: [{ key: 'server.address', value: peer }, { key: 'server.port', value: 80n }],
    droppedAttributesCount: 0, events: [], droppedEventsCount: 0, links: [], droppedLinksCount: 0, status: { code: error ? 2 : 0, message: '' },
  };
}

test('percentile picks the nearest rank', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 50), 50);
  assert.ok(Number.isNaN(percentile([], 99)));
});

test('workload name prefers the pod, then the process, and marks unknown owners', () => {
  assert.equal(workloadOf({ attributes: [{ key: 'k8s.pod.name', value: 'web-1' }, { key: 'k8s.namespace.name', value: 'shop' }], droppedAttributesCount: 0 }), 'shop/web-1');
  assert.equal(workloadOf({ attributes: [{ key: 'process.executable.name', value: 'curl' }, { key: 'process.pid', value: 42n }], droppedAttributesCount: 0 }), 'curl[42]');
  assert.equal(workloadOf({ attributes: [{ key: 'process.pid', value: 0n }], droppedAttributesCount: 0 }), '(owner unknown)');
});

test('rows rank by p99 connect latency and count failures', () => {
  const s = new ConnectionSummary();
  const res = { attributes: [{ key: 'process.executable.name', value: 'curl' }, { key: 'process.pid', value: 7n }], droppedAttributesCount: 0 };
  const spans = [span('tcp connect', 1_000_000n, 'a'), span('tcp connect', 9_000_000n, 'b'), span('tcp connect', 0n, 'b', true)];
  const d: TracesData = { resourceSpans: [{ resource: res, schemaUrl: '', scopeSpans: [{ scope: { name: '', version: '', attributes: [], droppedAttributesCount: 0 }, spans, schemaUrl: '' }] }] };
  s.ingest(d);
  const top = s.top(10);
  assert.equal(top[0].peer, 'b:80');
  assert.equal(top[0].p99, 9);
  assert.equal(top[0].failures, 1);
  assert.equal(top[1].peer, 'a:80');
  assert.match(s.render(5), /curl\[7\]\s+b:80/);
});
