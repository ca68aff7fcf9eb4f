// prometheusremotewrite exporter: Prometheus remote-write 1.0. Each batch is translated (see
// prometheus_common/translate.ts), encoded as prometheus.WriteRequest protobuf by hand
// (WriteRequest{timeseries=1}, TimeSeries{labels=1, samples=2, histograms=4}, Label{name=1, value=2},
// Sample{value=1 double, timestamp=2 int64 ms}; Histogram: see native.ts), compressed with snappy
// *block* format and POSTed with Content-Encoding: snappy and X-Prometheus-Remote-Write-Version:
// 0.1.0. 5xx and 429 are retried (Retry-After honoured), other 4xx are permanent.
// Exponential histograms are sent as native histograms (exponential_histograms: native, the
// default, as contrib) or as classic _bucket{le} series (classic). Points that cannot be native
// histograms (scale < -4, count ≠ zero_count + buckets) are left out and reported as a partial
// rejection (counted, logged once the rest is delivered).
// Delta sums and (exponential) histograms are accumulated to cumulative (bounded state) in
// consume(), once per batch, before it is queued: push() runs again on every retry.
// Points without a recorded value are sent as stale markers, and so are the le / quantile series
// a histogram or summary point no longer has (another exponential scale, other bounds).
import snappy from 'snappyjs';
import type { MetricsData, SignalData, SignalType } from '../../../../proto/src/model.ts';
import { PermanentError, RetryableError, ThrottledError } from '../../component/errors.ts';
import type { CreateSettings, ExporterFactory, RequestContext } from '../../component/index.ts';
import { ConfigError } from '../../component/errors.ts';
import { ConfigReader } from '../../config/reader.ts';
import { QueuedExporter, readExporterHelperConfig, type ExporterHelperConfig, type ExporterHooks, type PartialRejection, type PushFn } from '../../exporterhelper/index.ts';
import { otlpBatchCodec } from '../../exporterhelper/otlp-codec.ts';
import { PbWriter } from '../../util/pb.ts';
import { TemporalityConverter, TemporalityJournal } from '../../processors/histogram_to_exponential/temporality.ts';
import { cloneSignal } from '../../pipeline/clone.ts';
import { translate, seriesKey, STALE_NAN_BITS, type PromSeries, DROPPED_POINTS_HELP, DROPPED_POINTS_METRIC } from '../prometheus_common/translate.ts';
import { toNativeHistogram, writeHistogram, type NativeHistogram } from './native.ts';

export type ExponentialHistogramMode = 'native' | 'classic';

/** A series to send: float samples and / or native histograms. */
export interface RemoteWriteSeries extends PromSeries {
  histograms?: NativeHistogram[];
}

/** An exponential histogram point toSeries() could not turn into a native histogram. */
export interface RefusedPoint {
  metric: string;
  reason: string;
}

export interface RemoteWriteConfig {
  endpoint: string;
  headers: Record<string, string>;
  targetInfo: boolean;
  resourceToLabels: boolean;
  maxStreams: number;
  /** How exponential histograms are sent: Prometheus native histograms, or classic _bucket series. */
  exponentialHistograms: ExponentialHistogramMode;
  helper: ExporterHelperConfig;
}

export function validateRemoteWriteConfig(raw: unknown, path: string): RemoteWriteConfig {
  const r = new ConfigReader(raw, path);
  const endpoint = r.str('endpoint', '');
  if (!endpoint) throw new ConfigError(r.field('endpoint'), 'is required (e.g. http://prometheus:9090/api/v1/write)');
  try {
    const u = new URL(endpoint);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
  } catch {
    throw new ConfigError(r.field('endpoint'), `not an http(s) URL: ${JSON.stringify(endpoint)}`);
  }
  const cfg: RemoteWriteConfig = {
    endpoint,
    headers: Object.fromEntries(r.strMap('headers')),
    targetInfo: r.enabled('target_info', true),
    resourceToLabels: r.enabled('resource_to_telemetry_conversion', false),
    maxStreams: r.num('max_streams', 100_000, { min: 1, integer: true }),
    exponentialHistograms: r.oneOf('exponential_histograms', ['native', 'classic'] as const, 'native'),
    helper: readExporterHelperConfig(r),
  };
  r.done();
  return cfg;
}

/** Encodes series as a prometheus.WriteRequest. */
export function encodeWriteRequest(series: RemoteWriteSeries[]): Buffer {
  const w = new PbWriter(4096);
  for (const s of series) {
    w.message(1, (ts) => {
      for (const [n, v] of s.labels) ts.message(1, (l) => l.string(1, n).string(2, v));
      for (const smp of s.samples) ts.message(2, (x) => {
        x.double(1, smp.value);
        // A JS NaN need not keep its payload: write the stale marker's bits themselves.
        if (smp.stale) x.buf.writeBigUInt64LE(STALE_NAN_BITS, x.pos - 8);
        if (smp.timestampMs) x.uint(2, BigInt(Math.trunc(smp.timestampMs)));
      });
      if (s.histograms) for (const h of s.histograms) ts.message(4, (x) => writeHistogram(x, h));
    });
  }
  return w.finish();
}

/**
 * Translates a batch and merges samples (and native histograms) of identical series, sorted by
 * time within a series. Exponential histograms become native histograms unless
 * `exponentialHistograms` is 'classic'; points that cannot be are left out and added to `refused`.
 */
export function toSeries(
  d: MetricsData,
  cfg: { targetInfo: boolean; resourceToLabels: boolean; exponentialHistograms?: ExponentialHistogramMode },
  refused: RefusedPoint[] = [],
): RemoteWriteSeries[] {
  const byKey = new Map<string, RemoteWriteSeries>();
  const nativeExponential = (cfg.exponentialHistograms ?? 'native') === 'native';
  for (const f of translate(d, { targetInfo: cfg.targetInfo, resourceToLabels: cfg.resourceToLabels, nativeExponential }).values()) {
    for (const s of f.series) {
      let hs: NativeHistogram[] | undefined;
      if (s.exponential) {
        hs = [];
        for (const e of s.exponential) {
          const h = toNativeHistogram(e.point, e.timestampMs, e.stale);
          if ('refused' in h) refused.push({ metric: f.name, reason: h.refused });
          else hs.push(h);
        }
        if (hs.length === 0 && s.samples.length === 0) continue;
      }
      const k = seriesKey(s.labels);
      const prev = byKey.get(k);
      if (prev) {
        prev.samples.push(...s.samples);
        if (hs) (prev.histograms ??= []).push(...hs);
        continue;
      }
      const n: RemoteWriteSeries = { labels: s.labels, samples: s.samples.slice() };
      if (s.group !== undefined) n.group = s.group;
      if (hs) n.histograms = hs;
      byKey.set(k, n);
    }
  }
  const out = [...byKey.values()];
  for (const s of out) {
    if (s.samples.length > 1) s.samples.sort((a, b) => a.timestampMs - b.timestampMs);
    if (s.histograms && s.histograms.length > 1) s.histograms.sort((a, b) => a.timestampMs - b.timestampMs);
  }
  return out;
}

/** The partial rejection push() reports for points toSeries() left out. */
function refusalOf(refused: RefusedPoint[]): PartialRejection | undefined {
  if (refused.length === 0) return undefined;
  const shown = refused.slice(0, 3).map((r) => `${r.metric}: ${r.reason}`).join('; ');
  const more = refused.length > 3 ? `; and ${refused.length - 3} more` : '';
  return {
    rejectedItems: refused.length,
    message: `${refused.length} exponential histogram point(s) not sent as native histograms: ${shown}${more}`,
  };
}

/** The series of a histogram / summary point that differ by one label (le / quantile). */
interface SentGroup {
  ts: number;
  /** The labels of one of those series; the others differ only in `label`. */
  template: Array<[string, string]>;
  label: string;
  values: Set<string>;
}

/**
 * Per histogram / summary point: the le (quantile) series last acknowledged, so that those a newer
 * point no longer has get a stale marker instead of lingering until Prometheus' lookback ends.
 * markStale() only reads this state; commit() records a batch once the server accepted it, so a
 * retried batch gets the same markers. At most `max` points are remembered (least recently sent
 * forgotten: their next change just sends no markers).
 */
export class SentBuckets {
  private readonly groups = new Map<string, SentGroup>();
  constructor(private readonly max: number) {}

  get size(): number {
    return this.groups.size;
  }

  /** Adds stale markers to `series` (in place); returns the state to commit() after a 2xx. */
  markStale(series: PromSeries[]): Map<string, SentGroup | undefined> {
    const byKey = new Map<string, PromSeries>();
    const varying: Array<[PromSeries, string, string]> = []; // [series, label, value] of le / quantile series
    const latest = new Map<string, SentGroup & { seen: Set<string> }>();
    for (const s of series) {
      if (s.group === undefined) continue;
      byKey.set(seriesKey(s.labels), s);
      const lbl = s.labels.find(([n]) => n === 'le' || n === 'quantile');
      if (!lbl) continue; // _sum / _count: every point has them
      varying.push([s, lbl[0], lbl[1]]);
      const ts = s.samples[s.samples.length - 1].timestampMs;
      const g = latest.get(s.group);
      if (!g || ts > g.ts) latest.set(s.group, { ts, template: s.labels, label: lbl[0], values: new Set(), seen: new Set() });
    }
    // The latest point's values; the others (earlier points in this batch) may have gone since.
    for (const [s, , v] of varying) {
      const g = latest.get(s.group!)!;
      if (s.samples.some((x) => x.timestampMs === g.ts && !x.stale)) g.values.add(v);
      else g.seen.add(v);
    }
    const next = new Map<string, SentGroup | undefined>();
    for (const [group, g] of latest) {
      const prev = this.groups.get(group);
      if (prev && prev.ts > g.ts) continue; // an older point: leave what was sent alone
      const gone = new Set(g.seen);
      if (prev && prev.label === g.label) for (const v of prev.values) gone.add(v);
      for (const v of gone) {
        if (g.values.has(v)) continue;
        const labels = g.template.map(([n, x]): [string, string] => (n === g.label ? [n, v] : [n, x]));
        const key = seriesKey(labels);
        const marker = { value: NaN, timestampMs: g.ts, stale: true };
        const held = byKey.get(key);
        if (held) {
          if (!held.samples.some((x) => x.timestampMs === g.ts)) held.samples.push(marker);
        } else {
          const s: PromSeries = { labels, samples: [marker], group };
          series.push(s);
          byKey.set(key, s);
        }
      }
      next.set(group, g.values.size ? { ts: g.ts, template: g.template, label: g.label, values: g.values } : undefined);
    }
    return next;
  }

  commit(next: Map<string, SentGroup | undefined>): void {
    for (const [group, g] of next) {
      const prev = this.groups.get(group);
      if (prev && g && prev.ts > g.ts) continue; // a later batch was acknowledged first
      this.groups.delete(group);
      if (g) this.groups.set(group, g);
    }
    while (this.groups.size > this.max) this.groups.delete(this.groups.keys().next().value as string);
  }
}

/** QueuedExporter that makes delta metrics cumulative once per batch, before queueing it. */
class RemoteWriteExporter<S extends SignalType> extends QueuedExporter<S> {
  private readonly droppedPoints?: { value: number };

  constructor(settings: CreateSettings, cfg: ExporterHelperConfig, signal: S, push: PushFn<S>, hooks: ExporterHooks, private readonly temporality: TemporalityConverter) {
    super(settings, cfg, signal, push, hooks);
    this.droppedPoints = settings.telemetry?.registry.counter(DROPPED_POINTS_METRIC, DROPPED_POINTS_HELP).at({ exporter: settings.id });
  }

  override async consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    const d = batch as MetricsData;
    if (!this.temporality.wouldConvert(d.resourceMetrics)) return super.consume(batch, ctx);
    // Accumulating rewrites points: convert a copy, other exporters may share this batch.
    const copy = cloneSignal('metrics', d);
    const journal = new TemporalityJournal();
    const dropped = this.temporality.convert(copy.resourceMetrics, journal);
    if (this.droppedPoints) this.droppedPoints.value += dropped;
    try {
      await super.consume(copy as SignalData[S], ctx);
    } catch (err) {
      // Refused (queue full, shutting down): the sender may send it again, so undo its deltas.
      if (!(err instanceof PermanentError)) this.temporality.rollback(journal);
      throw err;
    }
  }
}

export function createRemoteWriteExporter<S extends SignalType>(settings: CreateSettings, cfg: RemoteWriteConfig, signal: S): QueuedExporter<S> {
  const temporality = new TemporalityConverter('cumulative', cfg.maxStreams);
  const sent = new SentBuckets(cfg.maxStreams);
  const headers = {
    'Content-Type': 'application/x-protobuf',
    'Content-Encoding': 'snappy',
    'User-Agent': 'kernelscope-collector/0.1',
    'X-Prometheus-Remote-Write-Version': '0.1.0',
    ...cfg.headers,
  };
  const push = async (batch: SignalData[S], _ctx: RequestContext, abort: AbortSignal): Promise<PartialRejection | undefined> => {
    // Already cumulative (consume converted it); translating does not modify the batch.
    const refused: RefusedPoint[] = [];
    const series = toSeries(batch as MetricsData, cfg, refused);
    const next = sent.markStale(series);
    if (series.length === 0) return refusalOf(refused);
    const body = snappy.compress(encodeWriteRequest(series));
    let res: Response;
    try {
      res = await fetch(cfg.endpoint, { method: "POST", headers, body: body as unknown as RequestInit['body'], signal: abort });
    } catch (err) {
      throw new RetryableError(`remote write to ${cfg.endpoint} failed: ${(err as Error).message}`, undefined, { cause: err });
    }
    if (res.ok) {
      await res.arrayBuffer().catch(() => undefined);
      sent.commit(next);
      return refusalOf(refused);
    }
    const text = (await res.text().catch(() => '')).slice(0, 300);
    // Prometheus before 3.8 without --enable-feature=native-histograms answers 500 to the whole
    // request: retrying cannot help, so drop it at once and say what to change.
    if (/native histograms are disabled/i.test(text) && series.some((s) => s.histograms?.length))
      throw new PermanentError(`remote write rejected: the server does not accept native histograms (Prometheus before 3.8 needs --enable-feature=native-histograms; or set exponential_histograms: classic on this exporter): HTTP ${res.status}: ${text}`);
    const ra = res.headers.get('retry-after');
    const retryMs = ra ? (Number.isFinite(Number(ra)) ? Number(ra) * 1000 : Math.max(0, Date.parse(ra) - Date.now())) : undefined;
    if (res.status === 429) throw new ThrottledError(`remote write throttled: ${text}`, retryMs ?? 1000);
    if (res.status >= 500) throw new RetryableError(`remote write: HTTP ${res.status}: ${text}`, retryMs);
    throw new PermanentError(`remote write rejected: HTTP ${res.status}: ${text}`);
  };
  return new RemoteWriteExporter(settings, cfg.helper, signal, push, { codec: otlpBatchCodec }, temporality);
}

export const remoteWriteExporterFactory: ExporterFactory<RemoteWriteConfig> = {
  type: 'prometheusremotewrite',
  kind: 'exporter',
  signals: ['metrics'],
  defaultConfig: () => validateRemoteWriteConfig({ endpoint: 'http://127.0.0.1:9090/api/v1/write' }, 'exporters.prometheusremotewrite'),
  validate: validateRemoteWriteConfig,
  create: (settings, cfg, signal) => createRemoteWriteExporter(settings, cfg, signal),
};
