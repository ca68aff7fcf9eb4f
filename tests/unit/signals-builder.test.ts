import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignalBuilder, defaultSignalsConfig } from '../../agent/src/signals/builder.ts';
import type { TcpEventFields } from '../../agent/src/signals/events.ts';
import { EventType } from '../../agent/src/decode/layouts.ts';
import { getAttr, type Resource, StatusCode, SpanKind } from '../../proto/src/model.ts';

function tcp(over: Partial<TcpEventFields>): TcpEventFields {
  return {
    typeCode: EventType.TcpConnect, flags: 0, tsNs: 2_000_000_000n, cgroupId: 1n, tgid: 100, tid: 100, comm: 'curl',
    sockCookie: 7n, durationNs: 150_000, bytesAcked: 0, bytesReceived: 0, srttUs: 0, totalRetrans: 0, error: 0,
    family: 2, sport: 40000, dport: 80, saddr: '10.0.0.1', daddr: '10.0.0.2', ...over,
  };
}

function setup(cfg = defaultSignalsConfig()) {
  const resources = new Map<number, Resource>();
  const resolve = (_cg: bigint, tgid: number) => {
    let r = resources.get(tgid);
    if (!r) resources.set(tgid, (r = { attributes: [{ key: 'process.pid', value: BigInt(tgid) }], droppedAttributesCount: 0 }));
    return r;
  };
  const b = new SignalBuilder(cfg, (mono) => mono + 1_700_000_000_000_000_000n);
  return {
    onTcp: (ev: TcpEventFields) => b.onTcp(ev, resolve(ev.cgroupId, ev.tgid)),
    drainSpans: () => b.drainSpans(),
    collectMetrics: () => b.collectMetrics(),
    metrics: b.metrics,
  };
}

test('a connect becomes a CLIENT span with network attributes and the measured latency', () => {
  const b = setup();
  b.onTcp(tcp({}));
  const traces = b.drainSpans();
  assert.equal(traces.resourceSpans.length, 1);
  const span = traces.resourceSpans[0].scopeSpans[0].spans[0];
  assert.equal(span.kind, SpanKind.Client);
  assert.equal(span.endTimeUnixNano - span.startTimeUnixNano, 150_000n);
  assert.equal(getAttr(span.attributes, 'server.address'), '10.0.0.2');
  assert.equal(getAttr(span.attributes, 'server.port'), 80n);
  assert.equal(getAttr(span.attributes, 'network.type'), 'ipv4');
  assert.equal(b.drainSpans().resourceSpans.length, 0, 'drain empties');
});

test('a failed connect is an ERROR span naming the errno', () => {
  const b = setup();
  b.onTcp(tcp({ typeCode: EventType.TcpConnectFail, error: 111 }));
  const span = b.drainSpans().resourceSpans[0].scopeSpans[0].spans[0];
  assert.equal(span.status.code, StatusCode.Error);
  assert.equal(span.status.message, 'ECONNREFUSED');
});

test('accept and close of one socket share a trace; the close knows it was inbound', () => {
  const b = setup();
  b.onTcp(tcp({ typeCode: EventType.TcpAccept, sockCookie: 9n, saddr: '10.0.0.2', sport: 80, daddr: '10.0.0.1', dport: 40000 }));
  b.onTcp(tcp({ typeCode: EventType.TcpClose, sockCookie: 9n, saddr: '10.0.0.2', sport: 80, daddr: '10.0.0.1', dport: 40000, bytesAcked: 5, bytesReceived: 7, durationNs: 10 }));
  const [accept, conn] = b.drainSpans().resourceSpans[0].scopeSpans[0].spans;
  assert.equal(accept.kind, SpanKind.Server);
  assert.deepEqual(conn.traceId, accept.traceId);
  assert.deepEqual(conn.parentSpanId, accept.spanId);
  assert.equal(getAttr(conn.attributes, 'server.port'), 80n, 'server side is the local port for inbound');
  assert.equal(getAttr(conn.attributes, 'kscope.tcp.bytes_sent'), 5n);
});

test('metrics: histogram count equals connects; peers beyond the cap fold into _other', () => {
  const cfg = defaultSignalsConfig();
  cfg.metrics.maxPeersPerResource = 2;
  const b = setup(cfg);
  for (let i = 0; i < 5; i++) b.onTcp(tcp({ daddr: `10.0.1.${i}` }));
  const md = b.collectMetrics();
  const metrics = md.resourceMetrics[0].scopeMetrics[0].metrics;
  const dur = metrics.find((m) => m.name === 'kscope.tcp.connect.duration')!;
  assert.equal(dur.data.type, 'exponentialHistogram');
  if (dur.data.type !== 'exponentialHistogram') return;
  assert.equal(dur.data.dataPoints.length, 3);
  assert.equal(dur.data.dataPoints.reduce((a, p) => a + p.count, 0n), 5n);
  const other = dur.data.dataPoints.find((p) => getAttr(p.attributes, 'server.address') === '_other')!;
  assert.equal(other.count, 3n);
  assert.equal(b.metrics.foldedPeers, 3);
  const opened = metrics.find((m) => m.name === 'kscope.tcp.connections.opened')!;
  assert.equal(opened.data.type === 'sum' && opened.data.dataPoints[0].value, 5n);
  // Delta temporality: nothing new → nothing exported.
  assert.equal(b.collectMetrics().resourceMetrics.length, 0);
});

test('metrics: equal resources in different objects (e.g. released from a hold) share one series', async () => {
  const { SignalBuilder, defaultSignalsConfig } = await import('../../agent/src/signals/builder.ts');
  const b = new SignalBuilder(defaultSignalsConfig(), (mono: bigint) => mono);
  const mk = (): Resource => ({ attributes: [{ key: 'process.pid', value: 7n }, { key: 'k8s.pod.name', value: 'web-1' }], droppedAttributesCount: 0 });
  for (let i = 0; i < 3; i++) b.onTcp(tcp({ sockCookie: BigInt(i + 1) }), mk());
  const md = b.collectMetrics();
  assert.equal(md.resourceMetrics.length, 1, 'one resource, not three twins');
  const opened = md.resourceMetrics[0].scopeMetrics[0].metrics.find((m) => m.name === 'kscope.tcp.connections.opened')!;
  assert.equal(opened.data.type === 'sum' && opened.data.dataPoints.length, 1);
  assert.equal(opened.data.type === 'sum' && opened.data.dataPoints[0].value, 3n);
});
