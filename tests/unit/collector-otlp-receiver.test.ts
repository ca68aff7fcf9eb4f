import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, scriptedProcessorFactory, captured, sinkOf } from '../../collector/src/testing/components.ts';
import { makeTraces, makeGaugeMetrics, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import { encodeSignal, encodeJson } from '../../proto/src/otlp/index.ts';
import { OTLP_SERVICE_PATHS } from '../../proto/src/grpc/otlp-server.ts';
import { OtlpGrpcSender } from '../../collector/src/exporters/otlp/index.ts';
import { PermanentError, ThrottledError, RetryableError } from '../../collector/src/component/errors.ts';

let collector: Collector;
let httpUrl: string;
let grpcAddr: string;

before(async () => {
  const cfg = parseConfig(parseYaml(`
receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:0", max_recv_msg_size: 64KiB }
      http: { endpoint: "127.0.0.1:0", max_request_body_size: 64KiB }
    auth:
      sources: [bearer, header]
      tokens: { secret-a: tenant-a }
      tenants: { tenant-a: { tier: high }, tenant-b: { tier: low } }
    metadata_keys: [x-fail]
processors:
  scripted: {}
exporters:
  capture: {}
service:
  telemetry: { metrics: { address: "127.0.0.1:0" } }
  pipelines:
    traces: { receivers: [otlp], processors: [scripted], exporters: [capture] }
    logs: { receivers: [otlp], processors: [scripted], exporters: [capture] }
`));
  const reg = defaultRegistry().register(captureExporterFactory, scriptedProcessorFactory);
  collector = new Collector(cfg, { registry: reg, logger: testLogger() });
  await collector.start();
  const r = collector.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver;
  httpUrl = `http://127.0.0.1:${r.server.http!.port}`;
  grpcAddr = `127.0.0.1:${r.server.grpc!.port}`;
});

after(async () => {
  await collector.shutdown();
});

const sink = () => sinkOf('capture', 'traces');

async function post(path: string, body: Uint8Array | string, headers: Record<string, string>) {
  const res = await fetch(`${httpUrl}${path}`, { method: 'POST', headers, body: body as never });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

const PB = { 'content-type': 'application/x-protobuf', 'x-scope-orgid': 'tenant-b' };

test('HTTP: protobuf, JSON and gzip accepted with tenant, tier and peer address in the context', async () => {
  const before = sink().items;
  let r = await post('/v1/traces', encodeSignal('traces', makeTraces(3)), { ...PB, authorization: 'Bearer secret-a' });
  assert.equal(r.status, 200);
  r = await post('/v1/traces', encodeJson('traces', makeTraces(2)), { 'content-type': 'application/json', 'x-scope-orgid': 'tenant-b' });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), '{}');
  r = await post('/v1/traces', gzipSync(encodeSignal('traces', makeTraces(4))), { ...PB, 'content-encoding': 'gzip' });
  assert.equal(r.status, 200);
  assert.equal(sink().items - before, 9);
  const last = sink().batches.at(-1)!.ctx;
  assert.equal(last.tenant, 'tenant-b');
  assert.equal(last.tier, 'low');
  assert.equal(last.peerAddress, '127.0.0.1');
  assert.ok((last.bytes ?? 0) > 0);
  assert.equal(sink().batches.at(-3)!.ctx.tier, 'high');
});

test('HTTP: error statuses — 400, 401, 404, 405, 413, 415, 429/503 with Retry-After', async () => {
  const t = encodeSignal('traces', makeTraces(1));
  assert.equal((await post('/v1/traces', Buffer.from([0x0a, 0xff, 0xff, 0x01]), PB)).status, 400, 'malformed protobuf');
  assert.equal((await post('/v1/traces', '{"resourceSpans": [', { ...PB, 'content-type': 'application/json' })).status, 400, 'invalid JSON');
  assert.equal((await post('/v1/traces', Buffer.from('not gzip'), { ...PB, 'content-encoding': 'gzip' })).status, 400, 'bad gzip');
  const unknown = await post('/v1/traces', t, { 'content-type': 'application/x-protobuf', 'x-scope-orgid': 'mallory' });
  assert.equal(unknown.status, 401);
  assert.equal((await post('/v1/traces', t, { 'content-type': 'application/x-protobuf' })).status, 401, 'no tenant');
  assert.equal((await post('/v1/traces', t, { ...PB, authorization: 'Bearer wrong' })).status, 401, 'bad token');
  assert.equal((await post('/v1/metrics', encodeSignal('metrics', makeGaugeMetrics(1)), PB)).status, 404, 'no metrics pipeline');
  assert.equal((await post('/v2/nope', t, PB)).status, 404);
  assert.equal((await fetch(`${httpUrl}/v1/traces`)).status, 405);
  assert.equal((await post('/v1/traces', t, { ...PB, 'content-type': 'text/plain' })).status, 415);
  assert.equal((await post('/v1/traces', Buffer.alloc(100 * 1024), PB)).status, 413, 'over max_request_body_size');
  assert.equal((await post('/v1/traces', gzipSync(Buffer.alloc(1024 * 1024)), { ...PB, 'content-encoding': 'gzip' })).status, 413, 'decompression bomb');
  const thr = await post('/v1/traces', t, { ...PB, 'x-fail': 'throttled' });
  assert.equal(thr.status, 429);
  assert.equal(thr.headers.get('retry-after'), '3');
  const una = await post('/v1/traces', t, { ...PB, 'x-fail': 'retryable' });
  assert.equal(una.status, 503);
  assert.equal(una.headers.get('retry-after'), '2');
  assert.equal((await post('/v1/traces', t, { ...PB, 'x-fail': 'permanent' })).status, 400);
  // counted per receiver and code
  const reqs = collector.telemetry.registry.get('kscope_receiver_requests_total')!;
  assert.ok(reqs.get({ receiver: 'otlp', transport: 'http', code: '401' }) >= 3);
});

function grpcCall(body: Buffer, md: Record<string, string>): Promise<{ err: grpc.ServiceError | null }> {
  const client = new grpc.Client(grpcAddr, grpc.credentials.createInsecure());
  const meta = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) meta.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(OTLP_SERVICE_PATHS.traces, (b: Buffer) => b, (b: Buffer) => b, body, meta, {}, (err) => {
      client.close();
      resolve({ err });
    });
  });
}

test('gRPC: OK, INVALID_ARGUMENT, UNAUTHENTICATED, and the exporter maps refusals back (RetryInfo honoured)', async () => {
  const before = sink().items;
  assert.equal((await grpcCall(encodeSignal('traces', makeTraces(5)), { 'x-scope-orgid': 'tenant-a' })).err, null);
  assert.equal(sink().items - before, 5);
  assert.equal(sink().batches.at(-1)!.ctx.tier, 'high');
  assert.equal((await grpcCall(Buffer.from([0x0a, 0x05, 0x01]), { 'x-scope-orgid': 'tenant-a' })).err?.code, grpc.status.INVALID_ARGUMENT);
  assert.equal((await grpcCall(encodeSignal('traces', makeTraces(1)), { 'x-scope-orgid': 'eve' })).err?.code, grpc.status.UNAUTHENTICATED);
  assert.equal((await grpcCall(Buffer.alloc(100 * 1024), { 'x-scope-orgid': 'tenant-a' })).err?.code, grpc.status.RESOURCE_EXHAUSTED, 'over max_recv_msg_size');
  const sender = new OtlpGrpcSender({ endpoint: grpcAddr, insecure: true, headers: { 'x-scope-orgid': 'tenant-a' }, compression: 'gzip', tenantHeader: '' }, 'traces');
  const ac = new AbortController();
  await sender.send(makeTraces(2), {}, ac.signal);
  const thrSender = new OtlpGrpcSender({ endpoint: grpcAddr, insecure: true, headers: { 'x-scope-orgid': 'tenant-a', 'x-fail': 'throttled' }, compression: 'none', tenantHeader: '' }, 'traces');
  await assert.rejects(thrSender.send(makeTraces(1), {}, ac.signal), (e: unknown) => e instanceof ThrottledError && e.retryAfterMs === 3000);
  const unaSender = new OtlpGrpcSender({ endpoint: grpcAddr, insecure: true, headers: { 'x-scope-orgid': 'tenant-a', 'x-fail': 'retryable' }, compression: 'none', tenantHeader: '' }, 'traces');
  await assert.rejects(unaSender.send(makeTraces(1), {}, ac.signal), RetryableError);
  const badSender = new OtlpGrpcSender({ endpoint: grpcAddr, insecure: true, headers: { 'x-scope-orgid': 'tenant-a', 'x-fail': 'permanent' }, compression: 'none', tenantHeader: '' }, 'traces');
  await assert.rejects(badSender.send(makeTraces(1), {}, ac.signal), PermanentError);
  await Promise.all([sender.close(), thrSender.close(), unaSender.close(), badSender.close()]);
});

test('fuzz (bounded): random and mutated bodies never crash either transport; answers are 200/400/413 or OK/INVALID_ARGUMENT', async () => {
  const valid = encodeSignal('traces', makeTraces(3));
  const bodies = fc.oneof(
    fc.uint8Array({ maxLength: 512 }),
    fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, b]) => {
      const c = Buffer.from(valid);
      c[i] = b;
      return new Uint8Array(c);
    }),
    fc.nat(valid.length).map((n) => new Uint8Array(valid.subarray(0, n))),
  );
  const samples = fc.sample(bodies, { numRuns: 150, seed: 42 });
  for (const b of samples) {
    const r = await post('/v1/traces', b, PB);
    assert.ok([200, 400].includes(r.status), `HTTP status ${r.status}`);
    const j = await post('/v1/traces', Buffer.from(b).toString('latin1'), { ...PB, 'content-type': 'application/json' });
    assert.ok([200, 400].includes(j.status), `HTTP JSON status ${j.status}`);
    const g = await grpcCall(Buffer.from(b), { 'x-scope-orgid': 'tenant-a' });
    assert.ok(g.err === null || g.err.code === grpc.status.INVALID_ARGUMENT, `gRPC code ${g.err?.code}`);
  }
  // still serving
  assert.equal((await post('/v1/traces', valid, PB)).status, 200);
});

test('self-telemetry endpoint: /metrics has per-tenant counters, /healthz is 200 while running', async () => {
  const base = `http://127.0.0.1:${collector.telemetryPort}`;
  const h = await fetch(`${base}/healthz`);
  assert.equal(h.status, 200);
  const text = await (await fetch(`${base}/metrics`)).text();
  assert.match(text, /kscope_collector_accepted_items_total\{kind="receiver",component="otlp",pipeline="",signal="traces",tenant="tenant-b"\} \d+/);
  assert.match(text, /kscope_collector_refused_items_total\{[^}]*tenant="tenant-b"[^}]*\} [1-9]/);
  assert.match(text, /kscope_process_resident_memory_bytes \d+/);
});
