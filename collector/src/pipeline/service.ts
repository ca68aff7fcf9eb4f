// Builds the pipeline graph from a parsed config and runs its lifecycle.
//
// Graph rules (as in otelcol): one exporter instance per (exporter id, signal), shared by every
// pipeline that lists it (fan-in); one processor instance per pipeline; one receiver instance per
// (receiver id, signal) feeding every pipeline that lists it (fan-out). A pipeline with several
// exporters fans out to all of them. Start order is exporters → processors → receivers so nothing
// receives before its consumers exist. Shutdown follows the data: receivers first, then every
// component only after everything that can still forward into it has flushed (see shutdownGraph):
// a routing pipeline before the pipelines it routes into, an exporter after every pipeline that
// lists it; each component flushes.
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
  /**
   * What each component looked up through its host (pipelines by id, other components): it may
   * forward into them (routing into pipelines), so it must flush before they stop.
   */
  private readonly lookups = new Map<BuiltComponent, { pipelines: Set<string>; components: Set<Component> }>();

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

  /** The host a component sees: the service, recording what the component looks up. */
  private hostFor(c: BuiltComponent): Host {
    let rec = this.lookups.get(c);
    if (!rec) this.lookups.set(c, (rec = { pipelines: new Set(), components: new Set() }));
    const seen = rec;
    return {
      reportFatal: (err) => this.reportFatal(err),
      getComponent: (id) => {
        const x = this.getComponent(id);
        if (x) seen.components.add(x);
        return x;
      },
      getPipeline: (id) => {
        const p = this.getPipeline(id);
        if (p) seen.pipelines.add(id);
        return p;
      },
    };
  }

  /**
   * For each processor and exporter, the components that must have shut down (flushed) before it:
   *  - the processor before it in its pipeline;
   *  - for an exporter, the last processor of every pipeline that lists it (a shared exporter
   *    waits for all of them);
   *  - every component that looked up its pipeline (routing into it) or the component itself
   *    through the host, since that one may forward into it while flushing.
   * Receivers are not in the graph: they all stop before anything else. Pipelines that do not
   * feed each other share no edge and stop in parallel.
   */
  private shutdownGraph(): Map<BuiltComponent, Set<BuiltComponent>> {
    const before = new Map<BuiltComponent, Set<BuiltComponent>>();
    const add = (c: BuiltComponent, pred: BuiltComponent) => {
      if (c === pred) return;
      let s = before.get(c);
      if (!s) before.set(c, (s = new Set()));
      s.add(pred);
    };
    const processorsOf = (p: PipelineConfig) =>
      p.processors.map((id) => this.components.find((x) => x.kind === 'processor' && x.pipeline === p.id && x.id === id)!);
    const exportersOf = (p: PipelineConfig) =>
      p.exporters.map((id) => this.components.find((x) => x.kind === 'exporter' && x.signal === p.signal && x.id === id)!);
    for (const p of this.config.pipelines) {
      const procs = processorsOf(p);
      for (let i = 1; i < procs.length; i++) add(procs[i], procs[i - 1]);
      if (procs.length) for (const e of exportersOf(p)) add(e, procs[procs.length - 1]);
    }
    for (const [src, rec] of this.lookups) {
      for (const pid of rec.pipelines) {
        const p = this.config.pipelines.find((x) => x.id === pid);
        if (!p) continue;
        for (const t of [...processorsOf(p), ...exportersOf(p)]) add(t, src);
      }
      for (const comp of rec.components) {
        const t = this.components.find((x) => x.component === comp);
        if (t && t.kind !== 'receiver') add(t, src);
      }
    }
    return before;
  }

  /**
   * Shuts the given components down in dependency order: receivers first (all of them), then each
   * other component once everything in shutdownGraph() before it has finished; independent
   * chains run in parallel. Failures are logged and do not hold the others back.
   */
  private async stopInOrder(which: ReadonlySet<BuiltComponent>): Promise<void> {
    const stop = (c: BuiltComponent): Promise<void> =>
      which.has(c)
        ? c.component.shutdown().catch((err) => this.logger.error({ err, id: c.id, kind: c.kind }, 'shutdown failed'))
        : Promise.resolve();
    await Promise.all(this.components.filter((c) => c.kind === 'receiver').map(stop));
    const before = this.shutdownGraph();
    const done = new Map<BuiltComponent, Promise<void>>();
    const visiting = new Set<BuiltComponent>();
    const run = (c: BuiltComponent): Promise<void> => {
      const known = done.get(c);
      if (known) return known;
      visiting.add(c);
      const waits: Promise<void>[] = [];
      for (const pred of before.get(c) ?? []) {
        if (pred.kind === 'receiver') continue;
        if (visiting.has(pred)) {
          // Only reachable through components that forward into each other both ways; the
          // routing processor refuses such loops at start. Break it rather than deadlock.
          this.logger.warn({ id: c.id, pipeline: c.pipeline, after: pred.id }, 'shutdown: dependency cycle; stopping without waiting');
          continue;
        }
        waits.push(run(pred));
      }
      visiting.delete(c);
      const p = Promise.all(waits).then(() => stop(c));
      done.set(c, p);
      return p;
    };
    await Promise.all(this.components.filter((c) => c.kind !== 'receiver').map(run));
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
          await c.component.start(this.hostFor(c));
          started.push(c);
        }
      }
    } catch (err) {
      this.logger.error({ err }, 'start failed; shutting down what started');
      this.state = 'stopping';
      // Later shutdown() calls return this same promise (idempotent).
      this.stopping ??= this.stopInOrder(new Set(started)).then(() => {
        this.state = 'stopped';
      });
      await this.stopping;
      throw err;
    }
    this.state = 'running';
    for (const p of this.config.pipelines)
      if (p.receivers.length === 0) this.logger.info({ pipeline: p.id }, 'pipeline has no receivers: only a routing processor can feed it');
    this.logger.info({ components: this.components.length, pipelines: this.config.pipelines.map((p) => p.id) }, 'collector started');
  }

  /**
   * Receivers first (stop intake), then processors (flush) and exporters (drain queues), each only
   * after everything that can forward into it: the earlier processors of its pipeline, the
   * pipelines listing it (exporters), and components routing into its pipeline. Idempotent.
   */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      this.state = 'stopping';
      await this.stopInOrder(new Set(this.components));
      this.state = 'stopped';
      this.logger.info('collector stopped');
    })();
    return this.stopping;
  }
}
