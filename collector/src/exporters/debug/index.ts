// debug exporter: logs a summary per batch (verbosity basic), every item (detailed) or nothing
// (none: a null sink for benchmarks). Counts items it saw; no queue, never fails.
import { countItems, type SignalData, type SignalType } from '../../../../proto/src/model.ts';
import type { Component, Consumer, CreateSettings, ExporterFactory, RequestContext } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';

export interface DebugExporterConfig {
  /** none: count only; basic: one log line per batch; detailed: the batch itself at debug level. */
  verbosity: 'none' | 'basic' | 'detailed';
}

export class DebugExporter<S extends SignalType> implements Component, Consumer<S> {
  items = 0;
  batches = 0;

  constructor(private readonly settings: CreateSettings, private readonly cfg: DebugExporterConfig, private readonly signal: S) {}

  async start(): Promise<void> {}

  consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    const n = countItems(this.signal, batch);
    this.items += n;
    this.batches++;
    if (this.cfg.verbosity === 'basic') this.settings.logger.info({ signal: this.signal, items: n, tenant: ctx.tenant }, 'batch');
    else if (this.cfg.verbosity === 'detailed')
      this.settings.logger.info({ signal: this.signal, tenant: ctx.tenant, batch: JSON.stringify(batch, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)) }, 'batch');
    return Promise.resolve();
  }

  async shutdown(): Promise<void> {}
}

function validate(raw: unknown, path: string): DebugExporterConfig {
  const r = new ConfigReader(raw, path);
  const cfg: DebugExporterConfig = { verbosity: r.oneOf('verbosity', ['none', 'basic', 'detailed'], 'basic') };
  r.done();
  return cfg;
}

export const debugExporterFactory: ExporterFactory<DebugExporterConfig> = {
  type: 'debug',
  kind: 'exporter',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => ({ verbosity: 'basic' }),
  validate,
  create: (settings, cfg, signal) => new DebugExporter(settings, cfg, signal),
};

/** `nop`: the null sink (debug with verbosity none), for benchmarks. */
export const nopExporterFactory: ExporterFactory<DebugExporterConfig> = {
  ...debugExporterFactory,
  type: 'nop',
  defaultConfig: () => ({ verbosity: 'none' }),
  validate: (raw, path) => {
    const r = new ConfigReader(raw, path);
    r.done();
    return { verbosity: 'none' };
  },
};
