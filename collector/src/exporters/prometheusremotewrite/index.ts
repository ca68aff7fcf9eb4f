// prometheusremotewrite exporter: Prometheus remote-write 1.0. Each batch is translated (see
// prometheus_common/translate.ts), encoded as prometheus.WriteRequest protobuf by hand
// (WriteRequest{timeseries=1}, TimeSeries{labels=1, samples=2}, Label{name=1, value=2},
// Sample{value=1 double, timestamp=2 int64 ms}), compressed with snappy *block* format and POSTed
// with Content-Encoding: snappy and X-Prometheus-Remote-Write-Version: 0.1.0. 5xx and 429 are
// retried (Retry-After honoured), other 4xx are permanent. Delta sums/histograms are accumulated
// to cumulative first (bounded state).
import snappy from 'snappyjs';
import type { MetricsData, SignalData, SignalType } from '../../../../proto/src/model.ts';
import { PermanentError, RetryableError, ThrottledError } from '../../component/errors.ts';
import type { CreateSettings, ExporterFactory, RequestContext } from '../../component/index.ts';
import { ConfigError } from '../../component/errors.ts';
import { ConfigReader } from '../../config/reader.ts';
import { QueuedExporter, readExporterHelperConfig, type ExporterHelperConfig } from '../../exporterhelper/index.ts';
import { otlpBatchCodec } from '../../exporterhelper/otlp-codec.ts';
import { PbWriter } from '../../util/pb.ts';
import { TemporalityConverter } from '../../processors/histogram_to_exponential/temporality.ts';
import { cloneSignal } from '../../pipeline/clone.ts';
import { translate, seriesKey, type PromSeries } from '../prometheus_common/translate.ts';

export interface RemoteWriteConfig {
  endpoint: string;
  headers: Record<string, string>;
  targetInfo: boolean;
  resourceToLabels: boolean;
  maxStreams: number;
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
    targetInfo: r.sub('target_info').bool('enabled', true),
    resourceToLabels: r.sub('resource_to_telemetry_conversion').bool('enabled', false),
    maxStreams: r.num('max_streams', 100_000, { min: 1, integer: true }),
    helper: readExporterHelperConfig(r),
  };
  r.done();
  return cfg;
}

/** Encodes series as a prometheus.WriteRequest. */
export function encodeWriteRequest(series: PromSeries[]): Buffer {
  const w = new PbWriter(4096);
  for (const s of series) {
    w.message(1, (ts) => {
      for (const [n, v] of s.labels) ts.message(1, (l) => l.string(1, n).string(2, v));
      for (const smp of s.samples) ts.message(2, (x) => {
        x.double(1, smp.value);
        if (smp.timestampMs) x.uint(2, BigInt(Math.trunc(smp.timestampMs)));
      });
    });
  }
  return w.finish();
}

/** Translates a batch and merges samples of identical series (sorted by time within a series). */
export function toSeries(d: MetricsData, cfg: { targetInfo: boolean; resourceToLabels: boolean }): PromSeries[] {
  const byKey = new Map<string, PromSeries>();
  for (const f of translate(d, { targetInfo: cfg.targetInfo, resourceToLabels: cfg.resourceToLabels }).values()) {
    for (const s of f.series) {
      const k = seriesKey(s.labels);
      const prev = byKey.get(k);
      if (prev) prev.samples.push(...s.samples);
      else byKey.set(k, { labels: s.labels, samples: s.samples.slice() });
    }
  }
  const out = [...byKey.values()];
  for (const s of out) if (s.samples.length > 1) s.samples.sort((a, b) => a.timestampMs - b.timestampMs);
  return out;
}

export function createRemoteWriteExporter<S extends SignalType>(settings: CreateSettings, cfg: RemoteWriteConfig, signal: S) {
  const temporality = new TemporalityConverter('cumulative', cfg.maxStreams);
  const headers = {
    'Content-Type': 'application/x-protobuf',
    'Content-Encoding': 'snappy',
    'User-Agent': 'kernelscope-collector/0.1',
    'X-Prometheus-Remote-Write-Version': '0.1.0',
    ...cfg.headers,
  };
  const push = async (batch: SignalData[S], _ctx: RequestContext, abort: AbortSignal) => {
    let d = batch as MetricsData;
    // Accumulating rewrites points in place; work on a copy so a retry sees the original.
    d = cloneSignal('metrics', d);
    temporality.convert(d.resourceMetrics);
    const series = toSeries(d, cfg);
    if (series.length === 0) return;
    const body = snappy.compress(encodeWriteRequest(series));
    let res: Response;
    try {
      res = await fetch(cfg.endpoint, { method: "POST", headers, body: body as unknown as RequestInit['body'], signal: abort });
    } catch (err) {
      throw new RetryableError(`remote write to ${cfg.endpoint} failed: ${(err as Error).message}`, undefined, { cause: err });
    }
    if (res.ok) {
      await res.arrayBuffer().catch(() => undefined);
      return;
    }
    const text = (await res.text().catch(() => '')).slice(0, 300);
    const ra = res.headers.get('retry-after');
    const retryMs = ra ? (Number.isFinite(Number(ra)) ? Number(ra) * 1000 : Math.max(0, Date.parse(ra) - Date.now())) : undefined;
    if (res.status === 429) throw new ThrottledError(`remote write throttled: ${text}`, retryMs ?? 1000);
    if (res.status >= 500) throw new RetryableError(`remote write: HTTP ${res.status}: ${text}`, retryMs);
    throw new PermanentError(`remote write rejected: HTTP ${res.status}: ${text}`);
  };
  return new QueuedExporter(settings, cfg.helper, signal, push, { codec: otlpBatchCodec });
}

export const remoteWriteExporterFactory: ExporterFactory<RemoteWriteConfig> = {
  type: 'prometheusremotewrite',
  kind: 'exporter',
  signals: ['metrics'],
  defaultConfig: () => validateRemoteWriteConfig({ endpoint: 'http://127.0.0.1:9090/api/v1/write' }, 'exporters.prometheusremotewrite'),
  validate: validateRemoteWriteConfig,
  create: (settings, cfg, signal) => createRemoteWriteExporter(settings, cfg, signal),
};
