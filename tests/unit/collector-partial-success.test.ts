// OTLP partial success: a backend that accepts a request but rejects part of it (ExportResponse
// partial_success) has those items counted as failed (reason "rejected") and logged, the rest as
// sent, and nothing retried. Over OTLP/gRPC (protobuf response) and OTLP/HTTP (protobuf and JSON).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { OtlpGrpcServer } from '../../proto/src/grpc/otlp-server.ts';
import { encodeExportResponse } from '../../proto/src/otlp/index.ts';
import { createOtlpExporter, validateOtlpExporterConfig } from '../../collector/src/exporters/otlp/index.ts';
import { createOtlpHttpExporter, validateOtlpHttpExporterConfig } from '../../collector/src/exporters/otlphttp/index.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';

const host = { reportFatal() {} };
const counts = (tel: SelfTelemetry) => ({
  sent: tel.registry.get('kscope_exporter_sent_items_total')!.sum({}),
  rejected: tel.registry.get('kscope_exporter_send_failed_items_total')?.sum({ reason: 'rejected' }) ?? 0,
  retries: tel.registry.get('kscope_exporter_retries_total')!.sum({}),
});

test('OTLP/gRPC exporter: rejected items of a partial success are counted, the rest sent, nothing retried', async () => {
  let requests = 0;
  const server = new OtlpGrpcServer({
    signals: ['traces'],
    handler: async () => {
      requests++;
      return { rejected: 3n, errorMessage: 'spans too old' };
    },
  });
  const port = await server.listen('127.0.0.1:0');
  try {
    const tel = new SelfTelemetry(new MetricsRegistry());
    const ex = createOtlpExporter({ id: 'otlp', logger: testLogger(), telemetry: tel }, validateOtlpExporterConfig({ endpoint: `127.0.0.1:${port}`, tls: { insecure: true } }, 'x'), 'traces');
    await ex.start(host);
    await ex.consume(makeTraces(10), { tenant: 't' });
    await ex.shutdown();
    assert.equal(requests, 1);
    assert.deepEqual(counts(tel), { sent: 7, rejected: 3, retries: 0 });
  } finally {
    await server.shutdown(100);
  }
});

test('OTLP/HTTP exporter: partial success in protobuf and JSON responses', async () => {
  let requests = 0;
  const http = createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => {
      if (req.headers['content-type'] === 'application/json') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ partialSuccess: { rejectedSpans: '4', errorMessage: 'bad attributes' } }));
      } else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(encodeExportResponse({ rejected: 2n, errorMessage: 'spans too old' }));
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const port = (http.address() as { port: number }).port;
  try {
    for (const [encoding, rejected] of [['proto', 2], ['json', 4]] as const) {
      const tel = new SelfTelemetry(new MetricsRegistry());
      const ex = createOtlpHttpExporter({ id: 'otlphttp', logger: testLogger(), telemetry: tel }, validateOtlpHttpExporterConfig({ endpoint: `http://127.0.0.1:${port}`, encoding }, 'x'), 'traces');
      await ex.start(host);
      await ex.consume(makeTraces(10), { tenant: 't' });
      await ex.shutdown();
      assert.deepEqual(counts(tel), { sent: 10 - rejected, rejected, retries: 0 }, encoding);
    }
    assert.equal(requests, 2);
  } finally {
    await new Promise((r) => http.close(r));
  }
});
