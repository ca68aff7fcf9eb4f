// The otelarrow exporter (the agent's default transport) against our OTAP server adapter: data
// arrives intact over one stream with zstd Arrow payloads; a server that refuses for a while is
// retried; with a persistent queue, batches survive an exporter restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGrpcServer, bindServer, shutdownServer } from '../../proto/src/grpc/common.ts';
import { addOtapServices } from '../../proto/src/grpc/otap-server.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';
import { countSpans, type TracesData } from '../../proto/src/model.ts';
import { RetryableError } from '../../collector/src/component/errors.ts';
import { otelArrowExporterFactory } from '../../collector/src/exporters/otelarrow/index.ts';
import { silentLogger } from '../../lib/log.ts';

async function server(handler: (d: TracesData) => Promise<void>) {
  const s = createGrpcServer();
  addOtapServices(s, async (signal, data) => {
    assert.equal(signal, 'traces');
    await handler(data as TracesData);
  });
  const port = await bindServer(s, '127.0.0.1:0');
  return { port, stop: () => shutdownServer(s, 1000) };
}

function spanIds(d: TracesData[]): string[] {
  return d.flatMap((t) => t.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => Buffer.from(s.spanId).toString('hex')))));
}

test('otelarrow exporter delivers batches over an OTAP stream, field by field', async () => {
  const got: TracesData[] = [];
  const srv = await server(async (d) => { got.push(d); });
  const cfg = otelArrowExporterFactory.validate({ endpoint: `127.0.0.1:${srv.port}`, tls: { insecure: true }, sending_queue: { enabled: false } }, 'exporter');
  const exp = otelArrowExporterFactory.create({ id: 'otelarrow', logger: silentLogger() as never }, cfg, 'traces');
  await exp.start({ reportFatal: () => {} });
  const sent = [agentTraces(50, 1), agentTraces(70, 2), agentTraces(30, 3)];
  for (const b of sent) await exp.consume(b, {});
  await exp.shutdown();
  await srv.stop();
  assert.equal(got.length, 3);
  // every span arrives once, batch by batch (OTAP reorders a scope's spans by name and start time)
  assert.deepEqual(got.map((d) => spanIds([d]).sort()), sent.map((d) => spanIds([d]).sort()));
  const a = sent[1].resourceSpans[0].scopeSpans[0].spans[5];
  const b = got[1].resourceSpans[0].scopeSpans[0].spans.find((s) => Buffer.compare(s.spanId, a.spanId) === 0)!;
  assert.equal(b.name, a.name);
  assert.equal(b.startTimeUnixNano, a.startTimeUnixNano);
  // OTAP stores attributes sorted (as the Go implementation does): compare as sets.
  const byKey = (x: { key: string }, y: { key: string }) => x.key.localeCompare(y.key);
  assert.deepEqual([...b.attributes].sort(byKey), [...a.attributes].sort(byKey));
  assert.deepEqual([...got[1].resourceSpans[0].resource.attributes].sort(byKey), [...sent[1].resourceSpans[0].resource.attributes].sort(byKey));
});

test('a server refusing with UNAVAILABLE is retried until it accepts', async () => {
  let refusals = 3;
  const got: TracesData[] = [];
  const srv = await server(async (d) => {
    if (refusals-- > 0) throw new RetryableError('not now');
    got.push(d);
  });
  const cfg = otelArrowExporterFactory.validate({
    endpoint: `127.0.0.1:${srv.port}`, tls: { insecure: true },
    retry_on_failure: { initial_interval: '50ms', max_interval: '100ms' }, sending_queue: { queue_size: 10 },
  }, 'exporter');
  const exp = otelArrowExporterFactory.create({ id: 'otelarrow', logger: silentLogger() as never }, cfg, 'traces');
  await exp.start({ reportFatal: () => {} });
  await exp.consume(agentTraces(10, 4), {});
  await exp.shutdown();
  await srv.stop();
  assert.equal(got.length, 1);
  assert.equal(countSpans(got[0]), 10);
});

test('with a persistent queue, batches queued while the collector is down survive an exporter restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ks-otap-spool-'));
  try {
    // Nothing listens on this port yet.
    const probe = await server(async () => {});
    const port = probe.port;
    await probe.stop();
    const raw = {
      endpoint: `127.0.0.1:${port}`, tls: { insecure: true }, timeout: '500ms',
      retry_on_failure: { initial_interval: '100ms', max_interval: '200ms', max_elapsed_time: '0s' },
      sending_queue: { storage: { directory: dir }, drain_timeout: '200ms' },
    };
    const cfg = otelArrowExporterFactory.validate(raw, 'exporter');
    const first = otelArrowExporterFactory.create({ id: 'otelarrow', logger: silentLogger() as never }, cfg, 'traces');
    await first.start({ reportFatal: () => {} });
    const sent = [agentTraces(20, 5), agentTraces(25, 6)];
    for (const b of sent) await first.consume(b, {});
    await first.shutdown(); // collector still down: the batches stay on disk
    const got: TracesData[] = [];
    const srv = await (async () => {
      const s = createGrpcServer();
      addOtapServices(s, async (_sig, data) => { got.push(data as TracesData); });
      await bindServer(s, `127.0.0.1:${port}`);
      return { stop: () => shutdownServer(s, 1000) };
    })();
    const second = otelArrowExporterFactory.create({ id: 'otelarrow', logger: silentLogger() as never }, cfg, 'traces');
    await second.start({ reportFatal: () => {} });
    const deadline = Date.now() + 15_000;
    while (spanIds(got).length < 45 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await second.shutdown();
    await srv.stop();
    assert.deepEqual(new Set(spanIds(got)), new Set(spanIds(sent)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
