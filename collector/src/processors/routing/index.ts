// routing: sends each batch (or each resource within it) to the exporters of the matching route
// and/or into other pipelines of the same signal (which run their own processors).
// The routing value comes from the request (ctx.tenant, ctx.tier, or a request metadata key such
// as x-scope-orgid) or from a resource attribute (e.g. service.name). A route can also set the QoS
// tier that later components see in ctx.tier. Must be the last processor of its pipeline; exporter
// targets must be exporters of that pipeline, pipeline targets must not route again (checked at start).
import type { KeyValue, LogsData, MetricsData, SignalData, SignalType, TracesData } from '../../../../proto/src/model.ts';
import { countItems, getAttr } from '../../../../proto/src/model.ts';
import { ConfigError } from '../../component/errors.ts';
import type { Component, Consumer, CreateSettings, Host, ProcessorFactory, RequestContext } from '../../component/index.ts';
import { cloneSignal } from '../../pipeline/clone.ts';
import { ConfigReader } from '../../config/reader.ts';
import { FanOutConsumer, settleAll, type FanOutMember } from '../../pipeline/consumers.ts';

export interface Route {
  value: string;
  exporters: string[];
  /** Other pipelines (same signal) that receive the data, e.g. "traces/tenant-a". */
  pipelines: string[];
  tier?: string;
}

export interface RoutingConfig {
  source: 'tenant' | 'tier' | 'metadata' | 'resource_attribute';
  /** Metadata key (lower-case header name) or resource attribute key. */
  attribute: string;
  table: Route[];
  defaultExporters: string[];
  defaultPipelines: string[];
  /** Tier set on ctx when the default route is taken (empty: leave it). */
  defaultTier: string;
  dropResourceRoutingAttribute: boolean;
}

export function validateRoutingConfig(raw: unknown, path: string): RoutingConfig {
  const r = new ConfigReader(raw, path);
  const source = r.oneOf('from', ['tenant', 'tier', 'metadata', 'resource_attribute'] as const, 'tenant');
  const attribute = r.str('attribute', '');
  if ((source === 'metadata' || source === 'resource_attribute') && !attribute)
    throw new ConfigError(r.field('attribute'), `is required when from is ${source}`);
  const table: Route[] = r.list('table').map((tr) => {
    const value = tr.str('value');
    if (value === undefined) throw new ConfigError(tr.field('value'), 'is required');
    const exporters = tr.strList('exporters', []);
    const pipelines = tr.strList('pipelines', []);
    if (exporters.length === 0 && pipelines.length === 0) throw new ConfigError(tr.field('exporters'), 'a route needs at least one exporter or pipeline');
    const tier = tr.str('tier');
    tr.done();
    return { value, exporters, pipelines, ...(tier ? { tier } : {}) };
  });
  const seen = new Set<string>();
  table.forEach((t, i) => {
    if (seen.has(t.value)) throw new ConfigError(`${r.field('table')}[${i}].value`, `duplicate route value ${JSON.stringify(t.value)}`);
    seen.add(t.value);
  });
  const cfg: RoutingConfig = {
    source,
    attribute: source === 'metadata' ? attribute.toLowerCase() : attribute,
    table,
    defaultExporters: r.strList('default_exporters', []),
    defaultPipelines: r.strList('default_pipelines', []),
    defaultTier: r.str('default_tier', ''),
    dropResourceRoutingAttribute: r.bool('drop_resource_routing_attribute', false),
  };
  r.done();
  return cfg;
}

interface ResolvedRoute {
  members: FanOutMember<SignalType>[];
  /** Pipeline names, resolved to consumers at start (pipelines are built after this processor). */
  pipelineIds: string[];
  pipelines: Consumer[];
  tier?: string;
}

type ResourceList = Array<{ resource: { attributes: KeyValue[] } }>;

function resourcesOf(signal: SignalType, d: SignalData[SignalType]): ResourceList {
  if (signal === 'traces') return (d as TracesData).resourceSpans;
  if (signal === 'metrics') return (d as MetricsData).resourceMetrics;
  return (d as LogsData).resourceLogs;
}

function withResources(signal: SignalType, list: ResourceList): SignalData[SignalType] {
  if (signal === 'traces') return { resourceSpans: list } as TracesData;
  if (signal === 'metrics') return { resourceMetrics: list } as MetricsData;
  return { resourceLogs: list } as LogsData;
}

export class RoutingProcessor<S extends SignalType> implements Component, Consumer<S> {
  private readonly routes = new Map<string, ResolvedRoute>();
  private defaultRoute?: ResolvedRoute;
  private readonly fanout: FanOutConsumer<S>;
  /** Items that matched no route and had no default: dropped by configuration, and counted. */
  unrouted = 0;
  private readonly unroutedCounter?: { value: number };

  constructor(private readonly settings: CreateSettings, readonly cfg: RoutingConfig, private readonly signal: S, next: Consumer<S>) {
    if (!(next instanceof FanOutConsumer))
      throw new ConfigError(`processors.${settings.id}`, 'routing must be the last processor of its pipeline');
    this.fanout = next;
    this.unroutedCounter = settings.telemetry?.registry
      .counter('kscope_routing_unrouted_items_total', 'Items the routing processor dropped: no route matched and no default route is configured.')
      .at({ processor: settings.id, pipeline: settings.pipeline ?? '', signal });
    const resolve = (ids: string[], field: string): FanOutMember<SignalType>[] =>
      ids.map((id, i) => {
        const m = this.fanout.members.get(id);
        if (!m) throw new ConfigError(`${field}[${i}]`, `exporter ${JSON.stringify(id)} is not an exporter of pipeline ${settings.pipeline ?? '?'}`);
        return m as FanOutMember<SignalType>;
      });
    cfg.table.forEach((t, i) =>
      this.routes.set(t.value, { members: resolve(t.exporters, `processors.${settings.id}.table[${i}].exporters`), pipelineIds: t.pipelines, pipelines: [], tier: t.tier }),
    );
    if (cfg.defaultExporters.length || cfg.defaultPipelines.length)
      this.defaultRoute = {
        members: resolve(cfg.defaultExporters, `processors.${settings.id}.default_exporters`),
        pipelineIds: cfg.defaultPipelines,
        pipelines: [],
        ...(cfg.defaultTier ? { tier: cfg.defaultTier } : {}),
      };
  }

  /** Resolves pipeline targets; a target must carry this signal and must not route again (no cycles). */
  async start(host: Host): Promise<void> {
    const all: Array<[ResolvedRoute, string]> = [];
    this.cfg.table.forEach((_, i) => all.push([this.routes.get(this.cfg.table[i].value)!, `processors.${this.settings.id}.table[${i}].pipelines`]));
    if (this.defaultRoute) all.push([this.defaultRoute, `processors.${this.settings.id}.default_pipelines`]);
    for (const [route, field] of all) {
      route.pipelines = route.pipelineIds.map((id, k) => {
        const p = host.getPipeline?.(id);
        if (!p) throw new ConfigError(`${field}[${k}]`, `pipeline ${JSON.stringify(id)} does not exist`);
        if (p.signal !== this.signal) throw new ConfigError(`${field}[${k}]`, `pipeline ${id} is not a ${this.signal} pipeline`);
        if (id === this.settings.pipeline || p.processors.some((x) => x === 'routing' || x.startsWith('routing/')))
          throw new ConfigError(`${field}[${k}]`, `pipeline ${id} routes itself; routing into it could loop`);
        return p.consumer;
      });
    }
  }
  async shutdown(): Promise<void> {}

  private routeFor(value: string | undefined): ResolvedRoute | undefined {
    return (value !== undefined ? this.routes.get(value) : undefined) ?? this.defaultRoute;
  }

  private send(route: ResolvedRoute, batch: SignalData[S], ctx: RequestContext): Promise<void> {
    const c = route.tier !== undefined && route.tier !== ctx.tier ? { ...ctx, tier: route.tier } : ctx;
    if (route.pipelines.length === 0) return this.fanout.consumeSubset(route.members as FanOutMember<S>[], batch, c);
    // Target pipelines run their own (possibly mutating) processors: each gets its own copy unless
    // it is the only consumer. Exporters never mutate and share the original.
    const ps: Promise<void>[] = [];
    const shareFirst = route.members.length === 0;
    if (route.members.length) ps.push(this.fanout.consumeSubset(route.members as FanOutMember<S>[], batch, c));
    // Copies are made before any target runs: a target mutates synchronously inside consume().
    const copies = route.pipelines.map((_, k) => (shareFirst && k === 0 ? batch : cloneSignal(this.signal, batch)));
    route.pipelines.forEach((p, k) => ps.push((p as Consumer<S>).consume(copies[k], c)));
    return settleAll(ps);
  }

  private dropUnrouted(items: number): void {
    this.unrouted += items;
    if (this.unroutedCounter) this.unroutedCounter.value += items;
  }

  consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    if (this.cfg.source !== 'resource_attribute') {
      const v = this.cfg.source === 'tenant' ? ctx.tenant : this.cfg.source === 'tier' ? ctx.tier : ctx.metadata?.[this.cfg.attribute];
      const route = this.routeFor(v);
      if (!route) {
        this.dropUnrouted(countItems(this.signal, batch)); // no route and no default: dropped by configuration
        return Promise.resolve();
      }
      return this.send(route, batch, ctx);
    }
    // Per resource: group resources by route so each route gets one batch.
    const groups = new Map<ResolvedRoute, ResourceList>();
    for (const res of resourcesOf(this.signal, batch)) {
      const attrs = res.resource.attributes;
      const v = getAttr(attrs, this.cfg.attribute);
      const route = this.routeFor(typeof v === 'string' ? v : v === undefined || v === null ? undefined : String(v));
      if (!route) {
        this.dropUnrouted(countItems(this.signal, withResources(this.signal, [res]) as SignalData[S]));
        continue;
      }
      if (this.cfg.dropResourceRoutingAttribute) {
        const i = attrs.findIndex((a) => a.key === this.cfg.attribute);
        if (i >= 0) res.resource.attributes = attrs.slice(0, i).concat(attrs.slice(i + 1));
      }
      let g = groups.get(route);
      if (!g) groups.set(route, (g = []));
      g.push(res);
    }
    if (groups.size === 1) {
      const [[route, list]] = groups;
      return this.send(route, withResources(this.signal, list) as SignalData[S], ctx);
    }
    const ps: Promise<void>[] = [];
    for (const [route, list] of groups) ps.push(this.send(route, withResources(this.signal, list) as SignalData[S], ctx));
    return settleAll(ps);
  }
}

export const routingFactory: ProcessorFactory<RoutingConfig> = {
  type: 'routing',
  kind: 'processor',
  signals: ['traces', 'metrics', 'logs'],
  mutatesData: true, // drop_resource_routing_attribute rewrites resources
  defaultConfig: () => validateRoutingConfig({}, 'processors.routing'),
  validate: validateRoutingConfig,
  create: (settings, cfg, signal, next) => new RoutingProcessor(settings, cfg, signal, next),
};
