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
import { validateOtelArrowReceiverConfig, type OtelArrowReceiver } from '../../collector/src/receivers/otelarrow/index.ts';
import { OtapClient } from '../../proto/src/grpc/otap-client.ts';
import { OTAP_METHODS, addOtapServices } from '../../proto/src/grpc/otap-server.ts';
import { bindServer, createGrpcServer, shutdownServer } from '../../proto/src/grpc/common.ts';
import type { RequestContext } from '../../collector/src/component/index.ts';
import { ConfigError, PermanentError, RetryableError } from '../../collector/src/component/errors.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSignal } from '../../proto/src/otlp/index.ts';
import { OTLP_SERVICE_PATHS } from '../../proto/src/grpc/otlp-server.ts';

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

test('otelarrow receiver config: protocols.grpc.tls as on the otlp receiver, errors name the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-arrow-cfg-'));
  try {
    for (const f of ['srv.crt', 'srv.key', 'ca.crt']) writeFileSync(join(dir, f), `-----BEGIN ${f}-----\n`);
    const grpcWith = (tls: unknown) => ({ protocols: { grpc: { endpoint: '127.0.0.1:0', tls } } });
    assert.equal(validateOtelArrowReceiverConfig({}, 'receivers.otelarrow').tls, undefined, 'plaintext by default');
    const cfg = validateOtelArrowReceiverConfig(grpcWith({ cert_file: join(dir, 'srv.crt'), key_file: join(dir, 'srv.key'), client_ca_file: join(dir, 'ca.crt'), require_client_cert: true }), 'receivers.otelarrow');
    assert.equal(cfg.tls?.requireClientCert, true);
    assert.equal(cfg.tls?.clientCa?.toString(), '-----BEGIN ca.crt-----\n');
    assert.equal(cfg.tls?.cert.toString(), '-----BEGIN srv.crt-----\n');
    const bad = (tls: unknown, field: string, message: RegExp) =>
      assert.throws(() => validateOtelArrowReceiverConfig(grpcWith(tls), 'receivers.otelarrow'), (e: Error) => e instanceof ConfigError && e.field === field && message.test(e.message));
    bad({ key_file: join(dir, 'srv.key') }, 'receivers.otelarrow.protocols.grpc.tls.cert_file', /is required/);
    bad({ cert_file: join(dir, 'srv.crt'), key_file: join(dir, 'nope.key') }, 'receivers.otelarrow.protocols.grpc.tls.key_file', /cannot read/);
    bad({ cert_file: join(dir, 'srv.crt'), key_file: join(dir, 'srv.key'), require_client_cert: true }, 'receivers.otelarrow.protocols.grpc.tls.client_ca_file', /required when require_client_cert/);
    bad({ cert_file: join(dir, 'srv.crt'), key_file: join(dir, 'srv.key'), client_ca: 'x' }, 'receivers.otelarrow.protocols.grpc.tls.client_ca', /./);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('otelarrow receiver: plain OTLP/gRPC on the Arrow port authenticates like the otlp receiver (UNAUTHENTICATED)', async () => {
  const cfg = parseConfig(parseYaml(`
receivers:
  otelarrow/otlp:
    protocols: { grpc: { endpoint: "127.0.0.1:0" } }
    auth: { sources: [bearer, header], tokens: { s3cret: acme }, tenants: { acme: { tier: high } } }
exporters: { capture/arrowotlp: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { traces: { receivers: [otelarrow/otlp], exporters: [capture/arrowotlp] } }
`));
  const col = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await col.start();
  const port = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtelArrowReceiver).server.port;
  const call = (signal: 'traces' | 'logs', md: Record<string, string>) =>
    new Promise<grpc.ServiceError | null>((resolve) => {
      const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      const meta = new grpc.Metadata();
      for (const [k, v] of Object.entries(md)) meta.set(k, v);
      const body = signal === 'traces' ? encodeSignal('traces', makeTraces(3)) : encodeSignal('logs', makeLogs(3));
      client.makeUnaryRequest(OTLP_SERVICE_PATHS[signal], (b: Buffer) => b, (b: Buffer) => b, body, meta, {}, (err) => {
        client.close();
        resolve(err);
      });
    });
  try {
    assert.equal(await call('traces', { authorization: 'Bearer s3cret' }), null);
    assert.equal(await call('traces', { 'x-scope-orgid': 'acme' }), null);
    assert.equal((await call('traces', { authorization: 'Bearer wrong' }))?.code, grpc.status.UNAUTHENTICATED);
    assert.equal((await call('traces', { 'x-scope-orgid': 'mallory' }))?.code, grpc.status.UNAUTHENTICATED);
    assert.equal((await call('traces', {}))?.code, grpc.status.UNAUTHENTICATED);
    assert.equal((await call('logs', { 'x-scope-orgid': 'acme' }))?.code, grpc.status.UNIMPLEMENTED, 'no logs pipeline');
    const sink = sinkOf('capture/arrowotlp', 'traces');
    assert.equal(sink.items, 6);
    assert.deepEqual(sink.batches.map((b) => [b.ctx.tenant, b.ctx.tier, b.ctx.metadata?.['x-scope-orgid']]), [['acme', 'high', undefined], ['acme', 'high', 'acme']]);
  } finally {
    await col.shutdown();
  }
});

test("addOtapServices streamContext: called once per stream, its context is every batch's base; a throwing hook ends the stream with its code", async () => {
  const server = createGrpcServer();
  const seen: RequestContext[] = [];
  let opened = 0;
  addOtapServices(server, async (_signal, _data, ctx) => void seen.push(ctx), {
    streamContext: (_call, base) => {
      opened++;
      if (base.metadata?.['x-refuse']) throw Object.assign(new Error('stream refused by hook'), { code: grpc.status.UNAUTHENTICATED });
      return { ...base, tenant: `stream-${opened}` };
    },
  });
  const port = await bindServer(server, '127.0.0.1:0');
  try {
    const a = new OtapClient(`127.0.0.1:${port}`, 'traces');
    await a.send(makeTraces(1));
    await a.send(makeTraces(1), { 'x-scope-orgid': 'other' });
    await a.close();
    assert.equal(opened, 1);
    assert.deepEqual(seen.map((c) => c.tenant), ['stream-1', 'stream-1'], "the hook's tenant on both batches, headers do not replace it");
    assert.equal(seen[1].metadata?.['x-scope-orgid'], 'other', 'batch headers still add metadata');
    const refused = new OtapClient(`127.0.0.1:${port}`, 'traces', { headers: { 'x-refuse': '1' } });
    await assert.rejects(refused.send(makeTraces(1)), (e: Error) => e instanceof PermanentError && /UNAUTHENTICATED: stream refused by hook/.test(e.message));
    await refused.close(200);
    assert.equal(seen.length, 2, 'nothing handled on the refused stream');
  } finally {
    await shutdownServer(server, 500);
  }
});
