import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, scriptedProcessorFactory, captured, sinkOf } from '../../collector/src/testing/components.ts';
import { makeTraces, makeLogs, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtelArrowReceiver } from '../../collector/src/receivers/otelarrow/index.ts';
import { OtapClient } from '../../proto/src/grpc/otap-client.ts';
import { OTAP_METHODS } from '../../proto/src/grpc/otap-server.ts';
import { PermanentError, RetryableError } from '../../collector/src/component/errors.ts';

test('otelarrow receiver: OTAP batches with tenant from headers; refusals mapped; fuzzed frames never crash it', async () => {
  const cfg = parseConfig(parseYaml(`
receivers:
  otelarrow:
    protocols: { grpc: { endpoint: "127.0.0.1:0" } }
    auth: { sources: [header], tenants: { acme: { tier: high } } }
    metadata_keys: [x-fail]
processors: { scripted: {} }
exporters: { capture/otap: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines:
    traces: { receivers: [otelarrow], processors: [scripted], exporters: [capture/otap] }
    logs: { receivers: [otelarrow], exporters: [capture/otap] }
`));
  const col = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory, scriptedProcessorFactory), logger: testLogger() });
  await col.start();
  const port = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtelArrowReceiver).server.port;
  const addr = `127.0.0.1:${port}`;
  try {
    const client = new OtapClient(addr, 'traces', { headers: { 'x-scope-orgid': 'acme' } });
    for (let i = 0; i < 5; i++) await client.send(makeTraces(20));
    const sink = sinkOf('capture/otap', 'traces');
    assert.equal(sink.items, 100);
    assert.equal(sink.batches[0].ctx.tenant, 'acme');
    assert.equal(sink.batches[0].ctx.tier, 'high');
    await assert.rejects(client.send(makeTraces(1), { 'x-fail': 'retryable' }), RetryableError);
    await assert.rejects(client.send(makeTraces(1), { 'x-fail': 'permanent' }), PermanentError);
    await client.close();

    const logs = new OtapClient(addr, 'logs', { headers: { 'x-scope-orgid': 'acme' } });
    await logs.send(makeLogs(7));
    assert.equal(sinkOf('capture/otap', 'logs').items, 7);
    await logs.close();

    const stranger = new OtapClient(addr, 'traces', { headers: { 'x-scope-orgid': 'mallory' } });
    await assert.rejects(stranger.send(makeTraces(1)), PermanentError, 'unknown tenant refused, not retried');
    await stranger.close();

    // Bounded fuzz: random frames on a raw stream get an error or a refusal, and the server keeps serving.
    const raw = new grpc.Client(addr, grpc.credentials.createInsecure());
    for (const frame of fc.sample(fc.uint8Array({ maxLength: 300 }), { numRuns: 60, seed: 7 })) {
      await new Promise<void>((resolve) => {
        const call = raw.makeBidiStreamRequest(OTAP_METHODS.traces.path, (b: Buffer) => b, (b: Buffer) => b);
        const md = setTimeout(() => { call.cancel(); resolve(); }, 2000);
        call.on('data', () => { clearTimeout(md); call.end(); });
        call.on('error', () => { clearTimeout(md); resolve(); });
        call.on('end', () => { clearTimeout(md); resolve(); });
        call.on('status', () => { clearTimeout(md); resolve(); });
        call.write(Buffer.from(frame));
      });
    }
    raw.close();
    const again = new OtapClient(addr, 'traces', { headers: { 'x-scope-orgid': 'acme' } });
    await again.send(makeTraces(3));
    await again.close();
    assert.equal(sink.items, 103);
  } finally {
    await col.shutdown();
  }
});
