import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, scriptedProcessorFactory, scriptedCalls, sinkOf } from '../../collector/src/testing/components.ts';
import { makeTraces, makeLogs, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import { createOtlpHttpExporter, validateOtlpHttpExporterConfig } from '../../collector/src/exporters/otlphttp/index.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';

test('otlphttp exporter → our HTTP receiver: proto+gzip and JSON, tenant forwarded, 429 retried after Retry-After, 400 dropped', async () => {
  const backend = new Collector(parseConfig(parseYaml(`
receivers:
  otlp:
    protocols: { http: { endpoint: "127.0.0.1:0" } }
    auth: { sources: [header], tenants: { acme: {} } }
    metadata_keys: [x-fail]
processors: { scripted: {} }
exporters: { capture/ohttp: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines:
    traces: { receivers: [otlp], processors: [scripted], exporters: [capture/ohttp] }
    logs: { receivers: [otlp], exporters: [capture/ohttp] }
`)), { registry: defaultRegistry().register(captureExporterFactory, scriptedProcessorFactory), logger: testLogger() });
  await backend.start();
  const port = (backend.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver).server.http!.port;
  try {
    const tel = new SelfTelemetry(new MetricsRegistry());
    const mk = (over: Record<string, unknown>, signal: 'traces' | 'logs' = 'traces') =>
      createOtlpHttpExporter({ id: 'otlphttp', logger: testLogger(), telemetry: tel }, validateOtlpHttpExporterConfig({ endpoint: `http://127.0.0.1:${port}/`, tenant_header: 'X-Scope-OrgID', retry_on_failure: { initial_interval: '10ms', randomization_factor: 0 }, ...over }, 'x'), signal);
    const proto = mk({});
    const json = mk({ encoding: 'json', compression: 'none' }, 'logs');
    await proto.start({ reportFatal() {} });
    await json.start({ reportFatal() {} });
    await proto.consume(makeTraces(4), { tenant: 'acme' });
    await json.consume(makeLogs(3), { tenant: 'acme' });
    await proto.shutdown();
    await json.shutdown();
    assert.equal(sinkOf('capture/ohttp', 'traces').items, 4);
    assert.equal(sinkOf('capture/ohttp', 'traces').batches[0].ctx.tenant, 'acme');
    assert.equal(sinkOf('capture/ohttp', 'logs').items, 3);

    // 429 with Retry-After 300 ms: the retry waits for it (the backoff alone would retry after 10 ms)
    const once = mk({ headers: { 'x-fail': 'throttled-once' } });
    await once.start({ reportFatal() {} });
    await once.consume(makeTraces(5), { tenant: 'acme' });
    await once.shutdown();
    const onceCalls = scriptedCalls.filter((c) => c.fail === 'throttled-once');
    assert.equal(onceCalls.length, 2, 'refused once, then accepted');
    assert.ok(onceCalls[1]!.at - onceCalls[0]!.at >= 290, `retried ${onceCalls[1]!.at - onceCalls[0]!.at} ms after a Retry-After of 300 ms`);
    assert.equal(sinkOf('capture/ohttp', 'traces').items, 4 + 5);

    // Retry-After 3 s exceeds max_elapsed_time 2 s: given up without a second attempt, counted.
    const throttled = mk({ headers: { 'x-fail': 'throttled' }, retry_on_failure: { initial_interval: '10ms', max_elapsed_time: '2s' } });
    await throttled.start({ reportFatal() {} });
    await throttled.consume(makeTraces(1), { tenant: 'acme' });
    await throttled.shutdown();
    assert.equal(scriptedCalls.filter((c) => c.fail === 'throttled').length, 1);
    assert.equal(tel.registry.get('kscope_exporter_send_failed_items_total')!.sum({ reason: 'retries_exhausted' }), 1);
    const bad = mk({ headers: { 'x-fail': 'permanent' } });
    await bad.start({ reportFatal() {} });
    await bad.consume(makeTraces(2), { tenant: 'acme' });
    await bad.shutdown();
    assert.equal(tel.registry.get('kscope_exporter_send_failed_items_total')!.sum({ reason: 'permanent' }), 2);
  } finally {
    await backend.shutdown();
  }
});
