// Tenant identity from a verified mTLS client certificate (CN), on OTLP/HTTP and OTLP/gRPC.
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
