// histogram_to_exponential: converts explicit-bucket histograms to exponential histograms (see
// expo.ts for the placement rule and its error bound) and, optionally, sums and histograms to one
// aggregation temporality (see temporality.ts), before the bucket conversion.
import type { MetricsData, SignalData, SignalType, HistogramDataPoint } from '../../../../proto/src/model.ts';
import { ConfigError, PermanentError } from '../../component/errors.ts';
import type { Component, Consumer, CreateSettings, ProcessorFactory, RequestContext } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import { toExponential, type ConvertOptions } from './expo.ts';
import { TemporalityConverter, TemporalityJournal } from './temporality.ts';

export { toExponential, mapToIndex, lowerBoundary, expQuantile, representative } from './expo.ts';
export { TemporalityConverter, TemporalityJournal } from './temporality.ts';

export interface HistogramToExponentialConfig {
  convert: ConvertOptions;
  /** Metric names to convert; empty = every histogram. */
  metrics: string[];
  temporality: 'keep' | 'delta' | 'cumulative';
  maxStreams: number;
}

export function validateHistogramToExponentialConfig(raw: unknown, path: string): HistogramToExponentialConfig {
  const r = new ConfigReader(raw, path);
  const maxSize = r.num('max_size', 160, { min: 2, max: 16384, integer: true });
  const maxScale = r.num('max_scale', 20, { min: -10, max: 20, integer: true });
  const cfg: HistogramToExponentialConfig = {
    convert: { maxSize, maxScale, minScale: -10 },
    metrics: r.strList('metrics', []),
    temporality: r.oneOf('temporality', ['keep', 'delta', 'cumulative'] as const, 'keep'),
    maxStreams: r.num('max_streams', 10_000, { min: 1, integer: true }),
  };
  r.done();
  if (cfg.convert.maxScale < cfg.convert.minScale) throw new ConfigError(r.field('max_scale'), 'too small');
  return cfg;
}

export class HistogramToExponential<S extends SignalType> implements Component, Consumer<S> {
  private readonly temporality?: TemporalityConverter;
  private readonly names?: Set<string>;
  converted = 0;
  droppedPoints = 0;

  constructor(private readonly settings: CreateSettings, readonly cfg: HistogramToExponentialConfig, private readonly next: Consumer<S>) {
    if (cfg.temporality !== 'keep') this.temporality = new TemporalityConverter(cfg.temporality, cfg.maxStreams);
    if (cfg.metrics.length) this.names = new Set(cfg.metrics);
  }

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    const d = batch as MetricsData;
    const journal = this.temporality ? new TemporalityJournal() : undefined;
    if (this.temporality) this.droppedPoints += this.temporality.convert(d.resourceMetrics, journal);
    for (const rm of d.resourceMetrics)
      for (const sm of rm.scopeMetrics)
        for (const m of sm.metrics) {
          if (m.data.type !== 'histogram' || (this.names && !this.names.has(m.name))) continue;
          const h = m.data;
          m.data = {
            type: 'exponentialHistogram',
            aggregationTemporality: h.aggregationTemporality,
            dataPoints: (h.dataPoints as HistogramDataPoint[]).map((p) => toExponential(p, this.cfg.convert)),
          };
          this.converted += h.dataPoints.length;
        }
    if (!journal) return this.next.consume(batch, ctx);
    let out: Promise<void>;
    try {
      out = this.next.consume(batch, ctx);
    } catch (err) {
      out = Promise.reject(err);
    }
    // A refused batch may be sent again: undo its conversion so it is not counted twice.
    return out.catch((err: unknown) => {
      if (!(err instanceof PermanentError)) this.temporality!.rollback(journal);
      throw err;
    });
  }
}

export const histogramToExponentialFactory: ProcessorFactory<HistogramToExponentialConfig> = {
  type: 'histogram_to_exponential',
  kind: 'processor',
  signals: ['metrics'],
  mutatesData: true,
  defaultConfig: () => validateHistogramToExponentialConfig({}, 'processors.histogram_to_exponential'),
  validate: validateHistogramToExponentialConfig,
  create: (settings, cfg, _signal, next) => new HistogramToExponential(settings, cfg, next),
};
