// A memory limiter above its soft limit refuses requests before the OTLP receivers decode them
// (Consumer.refusal), so a flood of refused requests is not turned into garbage first; the refused
// items are still counted, from the encoding (countEncodedItems). On OTel Arrow streams a refused
// batch's payloads are still read (the stream's dictionaries carry over) but no model is built.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, sinkOf } from '../../collector/src/testing/components.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import type { OtelArrowReceiver } from '../../collector/src/receivers/otelarrow/index.ts';
import { countEncodedItems } from '../../proto/src/otlp/count.ts';
import { decodeSignal, encodeSignal } from '../../proto/src/otlp/index.ts';
import { countItems, type SignalType } from '../../proto/src/model.ts';
import { OTLP_SERVICE_PATHS } from '../../proto/src/grpc/otlp-server.ts';
import { OTAP_METHODS } from '../../proto/src/grpc/otap-server.ts';
import { OtapConsumer, OtapProducer } from '../../proto/src/otap/stream.ts';
import { OtapStatusCode, decodeBatchArrowRecords, decodeBatchStatus, encodeBatchArrowRecords } from '../../proto/src/otap/messages.ts';
import { agentTraces } from '../../proto/src/otap/fixtures.ts';
import { arbs } from './otlp-helpers.ts';

/** An export request by hand: one resource, one scope, the given encoded items (spans, metrics or log records, each under 128 bytes). */
function exportRequest(items: number[][]): Uint8Array {
  const scope = items.flatMap((item) => [0x12, item.length, ...item]);
  const resource = [0x12, scope.length, ...scope];
  return Uint8Array.from([0x0a, resource.length, ...resource]);
}

test('countEncodedItems equals countItems of the decoded request; malformed bytes give -1 or a count, never a throw', () => {
  const A = arbs();
  for (const signal of ['traces', 'metrics', 'logs'] as const) {
    fc.assert(fc.property(A[signal], (d) => {
      const bytes = encodeSignal(signal, d as never);
      assert.equal(countEncodedItems(signal, bytes), countItems(signal, d as never));
      for (const cut of [1, 7, bytes.length >> 1]) {
        const n = countEncodedItems(signal, bytes.subarray(0, Math.max(0, bytes.length - cut)));
        assert.ok(Number.isInteger(n) && n >= -1);
      }
    }), { numRuns: 150 });
  }
  // a metric with its data field repeated: the last one counts, as in the decoder
  const sum2 = [0x3a, 4, 0x0a, 0, 0x0a, 0], sum1 = [0x3a, 2, 0x0a, 0], gauge1 = [0x2a, 2, 0x0a, 0];
  for (const data of [[...sum2, ...sum1], [...sum2, ...gauge1], [...gauge1, ...sum2]]) {
    const req = exportRequest([[0x0a, 1, 0x6d, ...data]]);
    assert.equal(countEncodedItems('metrics', req), countItems('metrics', decodeSignal('metrics', req)));
  }
  assert.equal(countEncodedItems('traces', Uint8Array.from([0x0a, 0x05, 0x01])), -1, 'a length past the end');
  assert.equal(countEncodedItems('traces', Uint8Array.from([0x0f])), -1, 'wire type 7');
});

/** Three spans whose contents are not valid protobuf: countable, but decoding fails (400). */
function undecodableSpans(): Uint8Array {
  const span = [0x0f]; // field 1, wire type 7
  return exportRequest([span, span, span]);
}

let collector: Collector;
let httpUrl: string;
let grpcAddr: string;
let arrowAddr: string;

before(async () => {
  // a 1 MiB limit: every measurement is above it, so the limiter refuses from the start
  const cfg = parseConfig(parseYaml(`
receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:0" }
      http: { endpoint: "127.0.0.1:0" }
  otelarrow:
    protocols: { grpc: { endpoint: "127.0.0.1:0" } }
processors:
  memory_limiter: { limit_mib: 1, check_interval: 50ms }
exporters:
  capture: {}
service:
  telemetry: { metrics: { address: "127.0.0.1:0" } }
  pipelines:
    traces: { receivers: [otlp, otelarrow], processors: [memory_limiter], exporters: [capture] }
`));
  collector = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await collector.start();
  const r = collector.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver;
  httpUrl = `http://127.0.0.1:${r.server.http!.port}`;
  grpcAddr = `127.0.0.1:${r.server.grpc!.port}`;
  const arrow = collector.service.components.find((c) => c.kind === 'receiver' && c.id === 'otelarrow')!.component as OtelArrowReceiver;
  arrowAddr = `127.0.0.1:${arrow.server.port}`;
});

after(async () => {
  await collector.shutdown();
});

async function refusedItems(component = 'otlp', kind = 'receiver', pipeline = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${collector.telemetryPort}/metrics`)).text();
  const m = new RegExp(`kscope_collector_refused_items_total\\{kind="${kind}",component="${component}",pipeline="${pipeline}",signal="traces",tenant=""\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}
/** Items the memory limiter itself refused inside consume(), i.e. after the receiver decoded them. */
const refusedAfterDecoding = () => refusedItems('memory_limiter', 'processor', 'traces');

test('HTTP: a refusing memory limiter answers 503 before the body is decoded, and the refused items are counted', async () => {
  const body = undecodableSpans();
  assert.throws(() => decodeSignal('traces', body), 'the body does not decode');
  assert.equal(countEncodedItems('traces', body), 3);
  const before = await refusedItems();
  const res = await fetch(`${httpUrl}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: body as never });
  assert.equal(res.status, 503, 'refused, not 400: decoding never ran');
  assert.ok(res.headers.get('retry-after'));
  const ok = await fetch(`${httpUrl}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeSignal('traces', makeTraces(5)) as never });
  assert.equal(ok.status, 503);
  assert.equal((await refusedItems()) - before, 3 + 5);
  assert.equal(sinkOf('capture', 'traces').items, 0);
});

test('gRPC: a refusing memory limiter answers UNAVAILABLE before the request is decoded, and the refused items are counted', async () => {
  const client = new grpc.Client(grpcAddr, grpc.credentials.createInsecure());
  const call = (body: Uint8Array) => new Promise<grpc.ServiceError | null>((resolve) =>
    client.makeUnaryRequest(OTLP_SERVICE_PATHS.traces, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(body), new grpc.Metadata(), {}, (err) => resolve(err)));
  try {
    const before = await refusedItems();
    const err = await call(undecodableSpans());
    assert.equal(err?.code, grpc.status.UNAVAILABLE, 'refused, not INVALID_ARGUMENT: decoding never ran');
    assert.match(err!.details, /memory limiter/);
    assert.equal((await call(encodeSignal('traces', makeTraces(4))))?.code, grpc.status.UNAVAILABLE);
    assert.equal((await refusedItems()) - before, 3 + 4);
    assert.equal(sinkOf('capture', 'traces').items, 0);
  } finally {
    client.close();
  }
});

test('OTel Arrow: a refused batch is read without building its model, and the stream decodes on after it', () => {
  const producer = new OtapProducer({ compression: 'zstd' });
  const wires = [agentTraces(300, 1), agentTraces(300, 2), agentTraces(300, 3)].map((d) => encodeBatchArrowRecords(producer.produce('traces', d)));
  const full = new OtapConsumer('traces');
  const want = wires.map((w) => full.consume(decodeBatchArrowRecords(w)));
  const skipping = new OtapConsumer('traces');
  const refused = skipping.consume(decodeBatchArrowRecords(wires[0]!), false);
  assert.equal(refused.items, 300);
  assert.deepEqual(refused.data, { resourceSpans: [] }, 'no model built');
  // the later batches carry delta dictionaries on top of the refused one's
  for (let i = 1; i < wires.length; i++) assert.deepStrictEqual(skipping.consume(decodeBatchArrowRecords(wires[i]!)), want[i]);
});

test('OTel Arrow: a refusing memory limiter answers UNAVAILABLE per batch, and the refused spans are counted', async () => {
  const producer = new OtapProducer({ compression: 'zstd' });
  const batches = [makeTraces(6), makeTraces(9)].map((d) => encodeBatchArrowRecords(producer.produce('traces', d)));
  const client = new grpc.Client(arrowAddr, grpc.credentials.createInsecure());
  try {
    const before = await refusedItems('otelarrow');
    const late = await refusedAfterDecoding();
    const statuses = await new Promise<{ statusCode: number; statusMessage: string }[]>((resolve, reject) => {
      const got: { statusCode: number; statusMessage: string }[] = [];
      const call = client.makeBidiStreamRequest(OTAP_METHODS.traces.path, (b: Buffer) => b, (b: Buffer) => b);
      call.on('data', (b: Buffer) => {
        got.push(decodeBatchStatus(b));
        if (got.length === batches.length) call.end();
      });
      call.on('error', (e) => (got.length === batches.length ? resolve(got) : reject(e)));
      call.on('end', () => resolve(got));
      for (const b of batches) call.write(Buffer.from(b));
    });
    assert.deepEqual(statuses.map((s) => s.statusCode), [OtapStatusCode.UNAVAILABLE, OtapStatusCode.UNAVAILABLE]);
    assert.match(statuses[0]!.statusMessage, /memory limiter/);
    assert.equal((await refusedItems('otelarrow')) - before, 6 + 9);
    assert.equal(await refusedAfterDecoding(), late, 'refused before any model reached the pipeline');
    assert.equal(sinkOf('capture', 'traces').items, 0);
  } finally {
    client.close();
  }
});
