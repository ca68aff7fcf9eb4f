import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyScope, type KeyValue, type MetricsData } from '../../proto/src/model.ts';
import type { Logger } from '../../collector/src/component/index.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import {
  EXPIRE_SWEEP_INTERVAL_MS,
  MAX_HELP_BYTES,
  PrometheusExporter,
  REFUSAL_WARN_INTERVAL_MS,
  truncateHelp,
  validatePrometheusExporterConfig,
} from '../../collector/src/exporters/prometheus/index.ts';

/** One gauge point named `name`: exactly one Prometheus series when target_info is off. */
function gauge(name: string, description = `help for ${name}`, attributes: KeyValue[] = []): MetricsData {
  return {
    resourceMetrics: [{
      resource: { attributes: [{ key: 'service.name', value: 'svc' }], droppedAttributesCount: 0 },
      schemaUrl: '',
      scopeMetrics: [{ scope: emptyScope(), schemaUrl: '', metrics: [{
        name, description, unit: '', metadata: [],
        data: { type: 'gauge', dataPoints: [{ attributes, startTimeUnixNano: 0n, timeUnixNano: 1_700_000_000_000_000_000n, value: 1, exemplars: [], flags: 0 }] },
      }] }],
    }],
  };
}

function capturingLogger(): { logger: Logger; warnings: Array<{ obj: object | string; msg?: string }> } {
  const warnings: Array<{ obj: object | string; msg?: string }> = [];
  const logger: Logger = {
    info() {},
    debug() {},
    error() {},
    warn(obj, msg) { warnings.push({ obj, msg }); },
    child() { return logger; },
  };
  return { logger, warnings };
}

function config(extra: Record<string, unknown>) {
  return validatePrometheusExporterConfig({ endpoint: '127.0.0.1:0', target_info: { enabled: false }, ...extra }, 'exporters.prometheus');
}

function familyNames(text: string): string[] {
  return [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
}

test('prometheus exporter: names past max_series add no family, are counted, exported and warned once', async () => {
  const tel = new SelfTelemetry(new MetricsRegistry());
  const { logger, warnings } = capturingLogger();
  let now = 0;
  const ex = new PrometheusExporter({ id: 'prom', logger, telemetry: tel }, config({ max_series: 5 }), () => now);
  for (let i = 0; i < 20; i++) await ex.consume(gauge(`name_${i}`), {});

  assert.equal(ex.seriesCount, 5);
  assert.equal(ex.familyCount, 5, 'refused series must not leave a family behind');
  assert.equal(ex.hasFamily('name_5'), false);
  assert.equal(ex.refusedSeries, 15);
  const text = ex.render();
  assert.deepEqual(familyNames(text), ['name_0', 'name_1', 'name_2', 'name_3', 'name_4']);
  assert.equal(text.match(/^# HELP /gm)?.length, 5);

  const own = tel.registry.render();
  assert.match(own, /^kscope_prometheus_exporter_refused_series_total\{exporter="prom"\} 15$/m);
  assert.equal(warnings.length, 1, 'one warning for a burst of refusals');
  assert.match(String(warnings[0].msg), /max_series/);

  // Still refusing a minute later: one more warning, carrying the running total.
  now += REFUSAL_WARN_INTERVAL_MS;
  await ex.consume(gauge('name_late'), {});
  assert.equal(warnings.length, 2);
  assert.equal((warnings[1].obj as { refusedSeries: number }).refusedSeries, 16);
  assert.equal(tel.registry.get('kscope_prometheus_exporter_refused_series_total')!.get({ exporter: 'prom' }), 16);
});

test('prometheus exporter: held series gauge exported while started', async () => {
  const tel = new SelfTelemetry(new MetricsRegistry());
  const ex = new PrometheusExporter({ id: 'prom', logger: capturingLogger().logger, telemetry: tel }, config({ max_series: 5 }));
  await ex.start();
  try {
    await ex.consume(gauge('a'), {});
    await ex.consume(gauge('b'), {});
    assert.match(tel.registry.render(), /^kscope_prometheus_exporter_series\{exporter="prom"\} 2$/m);
  } finally {
    await ex.shutdown();
  }
});

test('prometheus exporter: expired series and their family are dropped on ingest, without a scrape', async () => {
  let now = 0;
  const ex = new PrometheusExporter({ id: 'prom', logger: capturingLogger().logger }, config({ metric_expiration: '10s', max_series: 2 }), () => now);
  await ex.consume(gauge('old_metric'), {});
  now = 5_000;
  await ex.consume(gauge('kept_metric'), {});
  assert.equal(ex.familyCount, 2);

  // Full: a third name is refused until old_metric expires.
  await ex.consume(gauge('new_metric'), {});
  assert.equal(ex.refusedSeries, 1);

  now = 10_000 + EXPIRE_SWEEP_INTERVAL_MS; // old_metric is past metric_expiration, kept_metric is not
  await ex.consume(gauge('new_metric'), {});
  assert.equal(ex.hasFamily('old_metric'), false, 'family removed with its last series, no scrape needed');
  assert.equal(ex.hasFamily('kept_metric'), true);
  assert.equal(ex.hasFamily('new_metric'), true, 'the expired series freed room under max_series');
  assert.equal(ex.seriesCount, 2);
  assert.equal(ex.familyCount, 2);
  assert.equal(ex.refusedSeries, 1);

  assert.deepEqual(familyNames(ex.render()).sort(), ['kept_metric', 'new_metric']);
});

test('prometheus exporter: a family keeps its entry while any of its series lives', async () => {
  let now = 0;
  const ex = new PrometheusExporter({ id: 'prom', logger: capturingLogger().logger }, config({ metric_expiration: '10s' }), () => now);
  await ex.consume(gauge('multi'), {});
  now = 8_000;
  await ex.consume(gauge('multi', 'h', [{ key: 'k', value: 'v' }]), {});
  assert.equal(ex.seriesCount, 2);

  now = 12_000; // the first series expired, the labelled one has not
  const text = ex.render();
  assert.match(text, /^multi\{job="svc",k="v"\} 1$/m);
  assert.doesNotMatch(text, /^multi\{job="svc"\} 1$/m);
  assert.equal(ex.seriesCount, 1);
  assert.equal(ex.hasFamily('multi'), true);

  now = 20_000;
  assert.equal(ex.render(), '');
  assert.equal(ex.familyCount, 0);
});

test('prometheus exporter: HELP text capped at MAX_HELP_BYTES of UTF-8 without splitting characters', async () => {
  assert.equal(truncateHelp('short'), 'short');
  const ascii = 'x'.repeat(5000);
  assert.equal(truncateHelp(ascii), 'x'.repeat(MAX_HELP_BYTES));
  // 'a' + 4-byte characters: 1 + 255 * 4 = 1021 bytes fit, a 256th would need 1025.
  const emoji = truncateHelp('a' + '😀'.repeat(300));
  assert.equal(emoji, 'a' + '😀'.repeat(255));
  assert.ok(Buffer.byteLength(emoji) <= MAX_HELP_BYTES);
  const accented = truncateHelp('é'.repeat(2000));
  assert.equal(accented, 'é'.repeat(MAX_HELP_BYTES / 2));

  const ex = new PrometheusExporter({ id: 'prom', logger: capturingLogger().logger }, config({}));
  await ex.consume(gauge('long_help', 'h'.repeat(100_000)), {});
  const help = ex.render().match(/^# HELP long_help (.*)$/m)![1];
  assert.equal(help, 'h'.repeat(MAX_HELP_BYTES));
});
