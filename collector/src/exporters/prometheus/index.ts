// prometheus exporter: a scrape endpoint serving the latest value of every series in the text
// exposition format. Delta sums/histograms are accumulated to cumulative; series not updated for
// `metric_expiration` disappear; at most `max_series` are kept (new ones refused and counted).
// A histogram or summary point replaces the whole set of its point's series (an exponential
// histogram's buckets change with its scale); a point without a recorded value removes its series.
// A family (name, type, help) lives only while it has an accepted series, so names sent by
// clients cannot grow state beyond the series limit.
import { createServer, type Server } from 'node:http';
import type { MetricsData, SignalData, SignalType } from '../../../../proto/src/model.ts';
import type { Component, Consumer, CreateSettings, ExporterFactory, RequestContext } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import { RateLimitedLog, type Logger as PinoLogger } from '../../../../lib/log.ts';
import { parseEndpoint, type Endpoint } from '../../receivers/otlp/config.ts';
import { TemporalityConverter } from '../../processors/histogram_to_exponential/temporality.ts';
import { cloneSignal } from '../../pipeline/clone.ts';
import { translate, seriesKey, type PromFamily, type PromSeries, type PromType, DROPPED_POINTS_HELP, DROPPED_POINTS_METRIC } from '../prometheus_common/translate.ts';

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
    targetInfo: r.enabled('target_info', true),
    resourceToLabels: r.enabled('resource_to_telemetry_conversion', false),
  };
  r.done();
  return cfg;
}

/** Help text is sender-controlled and kept per family: cap it (UTF-8 bytes). */
export const MAX_HELP_BYTES = 1024;
/** Ingest sweeps stale series at most this often, so memory is freed even when nobody scrapes. */
export const EXPIRE_SWEEP_INTERVAL_MS = 1000;
/** A steady stream of refusals logs at most one warning per interval. */
export const REFUSAL_WARN_INTERVAL_MS = 60_000;

const helpEncoder = new TextEncoder();
const helpScratch = new Uint8Array(MAX_HELP_BYTES);

/** Cuts `help` to MAX_HELP_BYTES of UTF-8 without splitting a character. */
export function truncateHelp(help: string): string {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short strings need no encoding.
  if (help.length * 3 <= MAX_HELP_BYTES) return help;
  // encodeInto writes whole characters only; `read` is the code units that fitted.
  const { read } = helpEncoder.encodeInto(help, helpScratch);
  return read === help.length ? help : help.slice(0, read);
}

interface Family {
  type: PromType;
  help: string;
  /** Accepted series of this family; the family is dropped when it reaches 0. */
  seriesCount: number;
}

interface Entry {
  family: string;
  /** The point a histogram / summary series belongs to (PromSeries.group). */
  group?: string;
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
  private readonly families = new Map<string, Family>();
  /** Series keys per histogram / summary point. */
  private readonly groups = new Map<string, Set<string>>();
  private readonly temporality: TemporalityConverter;
  private readonly now: () => number;
  private readonly refusedCounter?: { value: number };
  private readonly droppedPointsCounter?: { value: number };
  private unregisterTelemetry?: () => void;
  private readonly refusalLog: RateLimitedLog;
  private lastSweep = -Infinity;
  refusedSeries = 0;

  constructor(private readonly settings: CreateSettings, readonly cfg: PrometheusExporterConfig, now?: () => number) {
    this.temporality = new TemporalityConverter('cumulative', cfg.maxSeries);
    this.now = now ?? Date.now;
    // RateLimitedLog only calls warn(obj, msg), which the component Logger has.
    this.refusalLog = new RateLimitedLog(settings.logger as unknown as PinoLogger, REFUSAL_WARN_INTERVAL_MS, 1, 1, this.now);
    const reg = settings.telemetry?.registry;
    if (reg) {
      this.refusedCounter = reg
        .counter('kscope_prometheus_exporter_refused_series_total', 'New series the prometheus exporter refused because max_series was reached.')
        .at({ exporter: settings.id });
      this.droppedPointsCounter = reg.counter(DROPPED_POINTS_METRIC, DROPPED_POINTS_HELP).at({ exporter: settings.id });
    }
  }

  /** Series currently held (for tests and self-telemetry). */
  get seriesCount(): number {
    return this.series.size;
  }

  /** Metric families currently held (for tests). */
  get familyCount(): number {
    return this.families.size;
  }

  hasFamily(name: string): boolean {
    return this.families.has(name);
  }

  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const reg = this.settings.telemetry?.registry;
    if (reg && !this.unregisterTelemetry) {
      const held = reg.gauge('kscope_prometheus_exporter_series', 'Series held by the prometheus exporter (limit: max_series).');
      this.unregisterTelemetry = reg.onCollect(() => held.set({ exporter: this.settings.id }, this.series.size));
    }
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
    let d = batch as MetricsData;
    if (this.temporality.wouldConvert(d.resourceMetrics)) {
      // Accumulation rewrites points: work on a copy, other exporters may share this batch.
      d = cloneSignal('metrics', d);
      const dropped = this.temporality.convert(d.resourceMetrics);
      if (this.droppedPointsCounter) this.droppedPointsCounter.value += dropped;
    }
    const now = this.now();
    // Free expired series before checking the limit, so they do not cause refusals.
    if (now - this.lastSweep >= EXPIRE_SWEEP_INTERVAL_MS || now < this.lastSweep) this.expire(now);
    const items: Array<{ f: PromFamily; s: PromSeries; key: string }> = [];
    // Per histogram / summary point: the latest timestamp in this batch and that point's series.
    const latest = new Map<string, { ts: number; keys: Set<string>; older: boolean }>();
    for (const f of translate(d, { targetInfo: this.cfg.targetInfo, resourceToLabels: this.cfg.resourceToLabels }).values()) {
      for (const s of f.series) {
        const key = seriesKey(s.labels);
        items.push({ f, s, key });
        if (s.group === undefined) continue;
        const ts = s.samples[s.samples.length - 1].timestampMs;
        let g = latest.get(s.group);
        if (!g || ts > g.ts) latest.set(s.group, (g = { ts, keys: new Set(), older: false }));
        if (ts === g.ts) g.keys.add(key);
      }
    }
    for (const [group, g] of latest) {
      const held = this.groups.get(group);
      if (!held) continue;
      for (const k of held) if (this.series.get(k)!.timestampMs > g.ts) g.older = true;
      // A newer point replaces the old one's series: buckets it no longer has must go.
      if (!g.older) for (const k of [...held]) if (!g.keys.has(k)) this.remove(k);
    }
    let refused = 0;
    for (const { f, s, key } of items) {
      const smp = s.samples[s.samples.length - 1];
      if (s.group !== undefined) {
        const g = latest.get(s.group)!;
        if (g.older || !g.keys.has(key)) continue; // older than what is held, or an earlier point of this batch
      }
      if (smp.stale) {
        // No recorded value: the series ended (contrib's accumulator deletes it too).
        this.remove(key);
        continue;
      }
      let e = this.series.get(key);
      if (!e) {
        if (this.series.size >= this.cfg.maxSeries) {
          refused++;
          continue;
        }
        const fam = this.families.get(f.name);
        if (fam) fam.seriesCount++;
        else this.families.set(f.name, { type: f.type, help: truncateHelp(f.help), seriesCount: 1 });
        e = { family: f.name, labels: s.labels, value: smp.value, timestampMs: smp.timestampMs, updated: now };
        if (s.group !== undefined) {
          e.group = s.group;
          let set = this.groups.get(s.group);
          if (!set) this.groups.set(s.group, (set = new Set()));
          set.add(key);
        }
        this.series.set(key, e);
      } else if (smp.timestampMs >= e.timestampMs) {
        e.value = smp.value;
        e.timestampMs = smp.timestampMs;
        e.updated = now;
      }
    }
    if (refused > 0) this.countRefused(refused);
    return Promise.resolve();
  }

  /** Drops one series, its family when it was the last, and its place in its point's set. */
  private remove(key: string): void {
    const e = this.series.get(key);
    if (!e) return;
    this.series.delete(key);
    const fam = this.families.get(e.family)!;
    if (--fam.seriesCount === 0) this.families.delete(e.family);
    if (e.group !== undefined) {
      const set = this.groups.get(e.group);
      set?.delete(key);
      if (set?.size === 0) this.groups.delete(e.group);
    }
  }

  private countRefused(n: number): void {
    this.refusedSeries += n;
    if (this.refusedCounter) this.refusedCounter.value += n;
    this.refusalLog.warn('max_series', { maxSeries: this.cfg.maxSeries, refusedSeries: this.refusedSeries }, 'prometheus exporter: max_series reached, new series refused');
  }

  /** Drops series not updated for metric_expiration, and families left without series. */
  private expire(now: number): void {
    this.lastSweep = now;
    for (const [k, e] of this.series) if (now - e.updated > this.cfg.expirationMs) this.remove(k);
  }

  render(): string {
    this.expire(this.now());
    const byFamily = new Map<string, Entry[]>();
    for (const e of this.series.values()) {
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
    this.unregisterTelemetry?.();
    this.unregisterTelemetry = undefined;
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
