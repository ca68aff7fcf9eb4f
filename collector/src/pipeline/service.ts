// Builds the pipeline graph from a parsed config and runs its lifecycle.
//
// Graph rules (as in otelcol): one exporter instance per (exporter id, signal), shared by every
// pipeline that lists it (fan-in); one processor instance per pipeline; one receiver instance per
// (receiver id, signal) feeding every pipeline that lists it (fan-out). A pipeline with several
// exporters fans out to all of them. Start order is exporters → processors → receivers so nothing
// receives before its consumers exist; shutdown is the reverse, and each component flushes.
import type { SignalType } from '../../../proto/src/model.ts';
import { ConfigError } from '../component/errors.ts';
import type { Component, Consumer, CreateSettings, Host, Logger } from '../component/index.ts';
import type { CollectorConfig, PipelineConfig } from '../config/load.ts';
import { parseComponentId } from '../config/load.ts';
import { MetricsRegistry, SelfTelemetry } from '../telemetry/metrics.ts';
import { FanOutConsumer, InstrumentedConsumer, type FanOutMember } from './consumers.ts';
import type { FactoryRegistry } from './registry.ts';

export interface BuiltComponent {
  kind: 'receiver' | 'processor' | 'exporter';
  id: string;
  signal: SignalType;
  pipeline?: string;
  component: Component;
}

export interface ServiceOptions {
  logger: Logger;
  telemetry?: SelfTelemetry;
  /** Called when a component reports a fatal error after start. */
  onFatal?: (err: Error) => void;
}

interface ValidatedConfigs {
  receivers: Map<string, unknown>;
  processors: Map<string, unknown>;
  exporters: Map<string, unknown>;
}

/** Validates every configured component through its factory (all errors name the dotted field). */
export function validateConfig(cfg: CollectorConfig, registry: FactoryRegistry): ValidatedConfigs {
  const out: ValidatedConfigs = { receivers: new Map(), processors: new Map(), exporters: new Map() };
  for (const [kind, section] of [['receiver', cfg.receivers], ['processor', cfg.processors], ['exporter', cfg.exporters]] as const) {
    for (const [id, raw] of Object.entries(section)) {
      const path = `${kind}s.${id}`;
      const { type } = parseComponentId(id, path);
      const f = registry.require(kind, type, path);
      out[`${kind}s`].set(id, f.validate(raw, path));
    }
  }
  cfg.pipelines.forEach((p) => {
    const check = (kind: 'receiver' | 'processor' | 'exporter', list: string[]) =>
      list.forEach((id, i) => {
        const f = registry.require(kind, parseComponentId(id, '').type, `service.pipelines.${p.id}.${kind}s[${i}]`);
        if (!f.signals.includes(p.signal))
          throw new ConfigError(`service.pipelines.${p.id}.${kind}s[${i}]`, `${kind} ${id} does not support ${p.signal}`);
      });
    check('receiver', p.receivers);
    check('processor', p.processors);
    check('exporter', p.exporters);
  });
  return out;
}

export class Service implements Host {
  readonly telemetry: SelfTelemetry;
  readonly components: BuiltComponent[] = [];
  /** Pipeline id → its first consumer (what receivers feed), for embedding and tests. */
  readonly entries = new Map<string, Consumer>();
  private readonly logger: Logger;
  private state: 'built' | 'starting' | 'running' | 'stopping' | 'stopped' = 'built';
  private stopping?: Promise<void>;

  constructor(
    readonly config: CollectorConfig,
    private readonly registry: FactoryRegistry,
    private readonly opts: ServiceOptions,
  ) {
    this.logger = opts.logger;
    this.telemetry = opts.telemetry ?? new SelfTelemetry(new MetricsRegistry(config.telemetry.maxSeriesPerMetric));
    this.build();
  }

  get running(): boolean {
    return this.state === 'running';
  }

  private settings(kind: string, id: string, pipeline?: string): CreateSettings {
    return {
      id,
      logger: this.logger.child({ kind, id, ...(pipeline ? { pipeline } : {}) }),
      telemetry: this.telemetry,
      ...(pipeline ? { pipeline } : {}),
    };
  }

  private build(): void {
    const cfg = this.config;
    const valid = validateConfig(cfg, this.registry);
    const exporters = new Map<string, Consumer>(); // key `${id}\0${signal}`

    for (const p of cfg.pipelines) {
      for (const id of p.exporters) {
        const key = `${id}\u0000${p.signal}`;
        if (exporters.has(key)) continue;
        const f = this.registry.require('exporter', parseComponentId(id, '').type, `exporters.${id}`);
        const c = f.create(this.settings('exporter', id), valid.exporters.get(id), p.signal);
        this.components.push({ kind: 'exporter', id, signal: p.signal, component: c });
        exporters.set(key, new InstrumentedConsumer(c, p.signal, 'exporter', id, this.telemetry));
      }
    }

    const pipelineMutates = new Map<string, boolean>();
    for (const p of cfg.pipelines) {
      let next: Consumer = new FanOutConsumer(
        p.signal,
        p.exporters.map((id) => ({ id, consumer: exporters.get(`${id}\u0000${p.signal}`)!, mutates: false })),
      );
      let mutates = false;
      for (let i = p.processors.length - 1; i >= 0; i--) {
        const id = p.processors[i];
        const f = this.registry.require('processor', parseComponentId(id, '').type, `processors.${id}`);
        const c = f.create(this.settings('processor', id, p.id), valid.processors.get(id), p.signal, next as Consumer<typeof p.signal>);
        mutates ||= !!f.mutatesData;
        this.components.push({ kind: 'processor', id, signal: p.signal, pipeline: p.id, component: c });
        next = new InstrumentedConsumer(c, p.signal, 'processor', id, this.telemetry, p.id);
      }
      pipelineMutates.set(p.id, mutates);
      this.entries.set(p.id, next);
    }

    const receivers = new Map<string, { signal: SignalType; pipelines: PipelineConfig[] }>();
    for (const p of cfg.pipelines) {
      for (const id of p.receivers) {
        const key = `${id}\u0000${p.signal}`;
        let r = receivers.get(key);
        if (!r) receivers.set(key, (r = { signal: p.signal, pipelines: [] }));
        r.pipelines.push(p);
      }
    }
    for (const [key, r] of receivers) {
      const id = key.slice(0, key.indexOf('\u0000'));
      const members: FanOutMember<SignalType>[] = r.pipelines.map((p) => ({
        id: p.id,
        consumer: this.entries.get(p.id)!,
        mutates: pipelineMutates.get(p.id)!,
      }));
      const f = this.registry.require('receiver', parseComponentId(id, '').type, `receivers.${id}`);
      const c = f.create(this.settings('receiver', id), valid.receivers.get(id), r.signal, new FanOutConsumer(r.signal, members));
      this.components.push({ kind: 'receiver', id, signal: r.signal, component: c });
    }
  }

  reportFatal(err: Error): void {
    this.logger.error({ err }, 'component reported a fatal error; shutting down');
    if (this.opts.onFatal) this.opts.onFatal(err);
    else void this.shutdown();
  }

  getPipeline(id: string): { consumer: Consumer; processors: string[]; signal: SignalType } | undefined {
    const p = this.config.pipelines.find((x) => x.id === id);
    const consumer = this.entries.get(id);
    return p && consumer ? { consumer, processors: p.processors, signal: p.signal } : undefined;
  }

  getComponent(id: string): Component | undefined {
    return this.components.find((c) => c.id === id)?.component;
  }

  async start(): Promise<void> {
    if (this.state !== 'built') throw new Error(`service cannot start from state ${this.state}`);
    this.state = 'starting';
    const order = ['exporter', 'processor', 'receiver'] as const;
    const started: BuiltComponent[] = [];
    try {
      for (const kind of order) {
        for (const c of this.components) {
          if (c.kind !== kind) continue;
          await c.component.start(this);
          started.push(c);
        }
      }
    } catch (err) {
      this.logger.error({ err }, 'start failed; shutting down what started');
      for (const c of started.reverse()) await c.component.shutdown().catch(() => {});
      this.state = 'stopped';
      throw err;
    }
    this.state = 'running';
    for (const p of this.config.pipelines)
      if (p.receivers.length === 0) this.logger.info({ pipeline: p.id }, 'pipeline has no receivers: only a routing processor can feed it');
    this.logger.info({ components: this.components.length, pipelines: this.config.pipelines.map((p) => p.id) }, 'collector started');
  }

  /** Receivers first (stop intake), then processors (flush), then exporters (drain queues). */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      this.state = 'stopping';
      const stop = (c: BuiltComponent) =>
        c.component.shutdown().catch((err) => this.logger.error({ err, id: c.id, kind: c.kind }, 'shutdown failed'));
      await Promise.all(this.components.filter((c) => c.kind === 'receiver').map(stop));
      // Processors in pipeline order, one pipeline at a time per chain, so what an earlier processor
      // flushes still finds the later ones (and the exporters) running.
      await Promise.all(
        this.config.pipelines.map(async (p) => {
          for (const id of p.processors) {
            const c = this.components.find((x) => x.kind === 'processor' && x.pipeline === p.id && x.id === id);
            if (c) await stop(c);
          }
        }),
      );
      await Promise.all(this.components.filter((c) => c.kind === 'exporter').map(stop));
      this.state = 'stopped';
      this.logger.info('collector stopped');
    })();
    return this.stopping;
  }
}
