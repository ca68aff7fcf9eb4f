// prometheus exporter: a scrape endpoint serving the latest value of every series in the text
// exposition format. Delta sums/histograms are accumulated to cumulative; series not updated for
// `metric_expiration` disappear; at most `max_series` are kept (new ones refused and counted).
import { createServer, type Server } from 'node:http';
import type { MetricsData, SignalData, SignalType } from '../../../../proto/src/model.ts';
import type { Component, Consumer, CreateSettings, ExporterFactory, RequestContext } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import { parseEndpoint, type Endpoint } from '../../receivers/otlp/config.ts';
import { TemporalityConverter } from '../../processors/histogram_to_exponential/temporality.ts';
import { cloneSignal } from '../../pipeline/clone.ts';
import { translate, seriesKey, type PromType } from '../prometheus_common/translate.ts';

export interface PrometheusExporterConfig {
  endpoint: Endpoint;
  expirationMs: number;
  maxSeries: number;
  targetInfo: boolean;
  resourceToLabels: boolean;
}

export function validatePrometheusExporterConfig(raw: unknown, path: string): PrometheusExporterConfig {
  const r = new ConfigReader(raw, path);
  const cfg: PrometheusExporterConfig = {
    endpoint: parseEndpoint(r.str('endpoint', '127.0.0.1:8889'), r.field('endpoint')),
    expirationMs: r.duration('metric_expiration', 5 * 60_000),
    maxSeries: r.num('max_series', 100_000, { min: 1, integer: true }),
    targetInfo: r.sub('target_info').bool('enabled', true),
    resourceToLabels: r.sub('resource_to_telemetry_conversion').bool('enabled', false),
  };
  r.done();
  return cfg;
}

interface Entry {
  family: string;
  labels: Array<[string, string]>;
  value: number;
  timestampMs: number;
  updated: number;
}

function escapeValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function fmt(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export class PrometheusExporter<S extends SignalType> implements Component, Consumer<S> {
  private server?: Server;
  private readonly series = new Map<string, Entry>();
  private readonly families = new Map<string, { type: PromType; help: string }>();
  private readonly temporality: TemporalityConverter;
  refusedSeries = 0;

  constructor(private readonly settings: CreateSettings, readonly cfg: PrometheusExporterConfig) {
    this.temporality = new TemporalityConverter('cumulative', cfg.maxSeries);
  }

  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(this.render());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.cfg.endpoint.port, this.cfg.endpoint.host, () => resolve());
    });
    this.server = server;
    this.settings.logger.info({ port: this.port }, 'Prometheus scrape endpoint listening');
  }

  consume(batch: SignalData[S], _ctx: RequestContext): Promise<void> {
    // Accumulation rewrites points: work on a copy, other exporters may share this batch.
    const d = cloneSignal('metrics', batch as MetricsData);
    this.temporality.convert(d.resourceMetrics);
    const now = Date.now();
    for (const f of translate(d, { targetInfo: this.cfg.targetInfo, resourceToLabels: this.cfg.resourceToLabels }).values()) {
      if (!this.families.has(f.name)) this.families.set(f.name, { type: f.type, help: f.help });
      for (const s of f.series) {
        const key = seriesKey(s.labels);
        const smp = s.samples[s.samples.length - 1];
        let e = this.series.get(key);
        if (!e) {
          if (this.series.size >= this.cfg.maxSeries) {
            this.refusedSeries++;
            continue;
          }
          e = { family: f.name, labels: s.labels, value: smp.value, timestampMs: smp.timestampMs, updated: now };
          this.series.set(key, e);
        } else if (smp.timestampMs >= e.timestampMs) {
          e.value = smp.value;
          e.timestampMs = smp.timestampMs;
          e.updated = now;
        }
      }
    }
    return Promise.resolve();
  }

  render(): string {
    const now = Date.now();
    const byFamily = new Map<string, Entry[]>();
    for (const [k, e] of this.series) {
      if (now - e.updated > this.cfg.expirationMs) {
        this.series.delete(k);
        continue;
      }
      let l = byFamily.get(e.family);
      if (!l) byFamily.set(e.family, (l = []));
      l.push(e);
    }
    let out = '';
    for (const [name, entries] of byFamily) {
      const meta = this.families.get(name)!;
      if (meta.help) out += `# HELP ${name} ${meta.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n`;
      out += `# TYPE ${name} ${meta.type}\n`;
      for (const e of entries) {
        let metric = '';
        const lbl: string[] = [];
        for (const [n, v] of e.labels) {
          if (n === '__name__') metric = v;
          else lbl.push(`${n}="${escapeValue(v)}"`);
        }
        out += `${metric}${lbl.length ? `{${lbl.join(',')}}` : ''} ${fmt(e.value)}\n`;
      }
    }
    return out;
  }

  async shutdown(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}

export const prometheusExporterFactory: ExporterFactory<PrometheusExporterConfig> = {
  type: 'prometheus',
  kind: 'exporter',
  signals: ['metrics'],
  defaultConfig: () => validatePrometheusExporterConfig({}, 'exporters.prometheus'),
  validate: validatePrometheusExporterConfig,
  create: (settings, cfg) => new PrometheusExporter(settings, cfg),
};
