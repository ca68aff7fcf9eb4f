// Tenant identity from a verified mTLS client certificate (CN), on OTLP/HTTP and OTLP/gRPC (otlp
// receiver) and on OTAP streams and OTLP/gRPC (otelarrow receiver).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, sinkOf } from '../../collector/src/testing/components.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import type { OtelArrowReceiver } from '../../collector/src/receivers/otelarrow/index.ts';
import { OtapClient } from '../../proto/src/grpc/otap-client.ts';
import { PermanentError, RetryableError } from '../../collector/src/component/errors.ts';
import { createCa } from '../lib/certs.ts';
import { encodeSignal } from '../../proto/src/otlp/index.ts';
import { OTLP_SERVICE_PATHS } from '../../proto/src/grpc/otlp-server.ts';

function openssl(dir: string, args: string[]) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function makePki(dir: string) {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=kscope-test-ca', '-days', '1']);
  writeFileSync(join(dir, 'srv.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const leaf = (name: string, cn: string, ext?: string) => {
    openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', ...(ext ? ['-extfile', ext] : [])]);
  };
  leaf('srv', 'localhost', 'srv.ext');
  leaf('acme', 'acme');
  leaf('eve', 'eve');
}

test('mTLS: the client certificate CN is the tenant (HTTP and gRPC); an unknown CN is refused', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-mtls-'));
  makePki(dir);
  const tls = `{ cert_file: ${join(dir, 'srv.crt')}, key_file: ${join(dir, 'srv.key')}, client_ca_file: ${join(dir, 'ca.crt')}, require_client_cert: true }`;
  const col = new Collector(parseConfig(parseYaml(`
receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:0", tls: ${tls} }
      http: { endpoint: "127.0.0.1:0", tls: ${tls} }
    auth: { sources: [mtls], tenants: { acme: { tier: high } } }
exporters: { capture/mtls: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { traces: { receivers: [otlp], exporters: [capture/mtls] } }
`)), { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await col.start();
  const srv = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver).server;
  const ca = readFileSync(join(dir, 'ca.crt'));
  const body = encodeSignal('traces', makeTraces(2));
  const httpPost = (who: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: srv.http!.port, path: '/v1/traces', method: 'POST', ca, cert: readFileSync(join(dir, `${who}.crt`)), key: readFileSync(join(dir, `${who}.key`)), headers: { 'content-type': 'application/x-protobuf' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      req.end(body);
    });
  const grpcCall = (who: string) =>
    new Promise<grpc.ServiceError | null>((resolve) => {
      const client = new grpc.Client(`127.0.0.1:${srv.grpc!.port}`, grpc.credentials.createSsl(ca, readFileSync(join(dir, `${who}.key`)), readFileSync(join(dir, `${who}.crt`))));
      client.makeUnaryRequest(OTLP_SERVICE_PATHS.traces, (b: Buffer) => b, (b: Buffer) => b, body, new grpc.Metadata(), {}, (err) => {
        client.close();
        resolve(err);
      });
    });
  try {
    assert.equal(await httpPost('acme'), 200);
    assert.equal(await httpPost('eve'), 401);
    assert.equal(await grpcCall('acme'), null);
    assert.equal((await grpcCall('eve'))?.code, grpc.status.UNAUTHENTICATED);
    const sink = sinkOf('capture/mtls', 'traces');
    assert.equal(sink.items, 4);
    assert.deepEqual(sink.batches.map((b) => [b.ctx.tenant, b.ctx.tier]), [['acme', 'high'], ['acme', 'high']]);
  } finally {
    await col.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mTLS on the otelarrow receiver: the CN is the tenant of every OTAP batch of the stream and of OTLP calls; no cert or an unknown CN is refused', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-mtls-arrow-'));
  const ca = createCa(join(dir, 'pki'), 'arrow');
  const srv = ca.server('collector');
  const files = (who: string) => ca.client(who);
  const tls = (required: boolean) => `{ cert_file: ${srv.cert}, key_file: ${srv.key}, client_ca_file: ${ca.cert}, require_client_cert: ${required} }`;
  const col = new Collector(parseConfig(parseYaml(`
receivers:
  otelarrow/required:
    protocols: { grpc: { endpoint: "127.0.0.1:0", tls: ${tls(true)} } }
    auth: { sources: [mtls], tenants: { acme: { tier: high }, beta: { tier: low } } }
  otelarrow/optional:
    protocols: { grpc: { endpoint: "127.0.0.1:0", tls: ${tls(false)} } }
    auth: { sources: [mtls, header], tenants: { acme: { tier: high }, beta: { tier: low } } }
exporters: { capture/arrowmtls: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { traces: { receivers: [otelarrow/required, otelarrow/optional], exporters: [capture/arrowmtls] } }
`)), { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await col.start();
  const portOf = (id: string) => (col.service.components.find((c) => c.kind === 'receiver' && c.id === id)!.component as OtelArrowReceiver).server.port;
  const required = `localhost:${portOf('otelarrow/required')}`;
  const optional = `localhost:${portOf('otelarrow/optional')}`;
  const caPem = readFileSync(ca.cert);
  const rogue = createCa(join(dir, 'pki'), 'rogue').client('acme');
  const pairs = { acme: files('acme')!, beta: files('beta')!, eve: files('eve')!, rogue };
  const creds = (who?: keyof typeof pairs) => (who ? grpc.credentials.createSsl(caPem, readFileSync(pairs[who].key), readFileSync(pairs[who].cert)) : grpc.credentials.createSsl(caPem));
  const sink = sinkOf('capture/arrowmtls', 'traces');
  const seen = () => sink.batches.map((b) => `${b.ctx.tenant}/${b.ctx.tier}`);
  const otlpCall = (addr: string, who?: keyof typeof pairs, md: Record<string, string> = {}) =>
    new Promise<grpc.ServiceError | null>((resolve) => {
      const client = new grpc.Client(addr, creds(who));
      const meta = new grpc.Metadata();
      for (const [k, v] of Object.entries(md)) meta.set(k, v);
      client.makeUnaryRequest(OTLP_SERVICE_PATHS.traces, (b: Buffer) => b, (b: Buffer) => b, encodeSignal('traces', makeTraces(1)), meta, {}, (err) => {
        client.close();
        resolve(err);
      });
    });
  try {
    // One stream, three batches: the certificate's tenant on each, whatever the batch headers say.
    const acme = new OtapClient(required, 'traces', { credentials: creds('acme') });
    await acme.send(makeTraces(2));
    await acme.send(makeTraces(2), { 'x-scope-orgid': 'beta' });
    await acme.send(makeTraces(2));
    assert.equal(acme.stats.streams, 1, 'all batches on one stream');
    await acme.close();
    assert.deepEqual(seen(), ['acme/high', 'acme/high', 'acme/high']);

    // A trusted certificate with an unknown CN: every batch refused, permanently.
    const eve = new OtapClient(required, 'traces', { credentials: creds('eve') });
    await assert.rejects(eve.send(makeTraces(1)), (e: Error) => e instanceof PermanentError && /unknown tenant "eve"/.test(e.message));
    await assert.rejects(eve.send(makeTraces(1)), PermanentError);
    await eve.close();

    // No client certificate: the handshake fails, nothing is delivered.
    const anon = new OtapClient(required, 'traces', { credentials: creds() });
    await assert.rejects(anon.send(makeTraces(1)), (e: Error) => e instanceof RetryableError && /No connection established/.test(e.message));
    await anon.close(200);
    assert.equal(sink.items, 6);

    // Plain OTLP/gRPC on the same port authenticates the same way, answering UNAUTHENTICATED.
    assert.equal(await otlpCall(required, 'beta'), null);
    assert.equal((await otlpCall(required, 'eve'))?.code, grpc.status.UNAUTHENTICATED);
    assert.equal((await otlpCall(required))?.code, grpc.status.UNAVAILABLE);
    assert.deepEqual(seen().slice(3), ['beta/low']);

    // Optional client certificate, sources [mtls, header]: the CN wins over the header; without a
    // certificate the header is the tenant.
    const withCert = new OtapClient(optional, 'traces', { credentials: creds('acme'), headers: { 'x-scope-orgid': 'beta' } });
    await withCert.send(makeTraces(1));
    await withCert.close();
    const headerOnly = new OtapClient(optional, 'traces', { credentials: creds(), headers: { 'x-scope-orgid': 'beta' } });
    await headerOnly.send(makeTraces(1));
    await headerOnly.close();
    // A certificate from another CA (CN=acme) is not verified: it is no identity, the header is.
    const forged = new OtapClient(optional, 'traces', { credentials: creds('rogue'), headers: { 'x-scope-orgid': 'beta' } });
    await forged.send(makeTraces(1));
    await forged.close();
    const nobody = new OtapClient(optional, 'traces', { credentials: creds() });
    await assert.rejects(nobody.send(makeTraces(1)), (e: Error) => e instanceof PermanentError && /no tenant identity/.test(e.message));
    await nobody.close();
    assert.deepEqual(seen().slice(4), ['acme/high', 'beta/low', 'beta/low']);
    // The same optional client certificate on plain OTLP/gRPC.
    assert.equal(await otlpCall(optional, 'acme', { 'x-scope-orgid': 'beta' }), null);
    assert.equal(await otlpCall(optional, undefined, { 'x-scope-orgid': 'beta' }), null);
    assert.deepEqual(seen().slice(7), ['acme/high', 'beta/low']);
  } finally {
    await col.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
});
