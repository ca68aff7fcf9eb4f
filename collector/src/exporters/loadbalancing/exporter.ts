// Load-balancing exporter: routes every span of a trace (or every block of a service) to the same
// backend via a consistent hash ring, one queued + retrying exporter per backend.
import { countItems, type SignalData, type SignalType } from '../../../../proto/src/model.ts';
import type { Component, Consumer, CreateSettings, Host, Logger, RequestContext } from '../../component/index.ts';
import { RetryableError, ShutdownError } from '../../component/errors.ts';
import { createQueuedExporter, type PartialRejection, type QueuedExporter } from '../../exporterhelper/index.ts';
import type { Raw } from '../../config/reader.ts';
import type { LoadBalancingConfig } from './config.ts';
import { HashRing } from './ring.ts';
import { DnsResolver, K8sResolver, StaticResolver, type Resolver } from './resolvers.ts';
import { splitBatch, type RoutingKey } from './split.ts';

/** Sends batches to one backend (an OTLP gRPC client in production, in-process in tests). */
export interface EndpointSender<S extends SignalType> {
  /** Resolves with the backend's partial rejection, if any (counted by the backend's queue). */
  send(batch: SignalData[S], ctx: RequestContext, abort: AbortSignal): Promise<void | PartialRejection>;
  close(): Promise<void>;
}

export type EndpointSenderFactory = <S extends SignalType>(endpoint: string, signal: S, protocol: Raw, logger: Logger) => EndpointSender<S>;

interface Backend<S extends SignalType> {
  endpoint: string;
  sender: EndpointSender<S>;
  exporter: QueuedExporter<S>;
  /** Set when the resolver dropped this backend: what it still holds is re-routed. */
  removed: boolean;
  /** Fires on removal so sends hanging on a dead backend give up at once. */
  removal: AbortController;
  sentItems: number;
}

export interface LoadBalancingMetrics {
  backends: string[];
  ringChanges: number;
  /** Items re-routed because their backend left the ring. */
  reroutedItems: number;
  /**
   * Items delivered per backend in the ring or still retiring; a backend's entry goes once its
   * retirement completes (a backend that comes back starts again from 0).
   */
  sentItems: Record<string, number>;
  /** Items delivered to any backend since start, including backends since removed. */
  sentTotal: number;
  /** Items refused because no backend was known. */
  noBackendItems: number;
}

export function createResolver(cfg: LoadBalancingConfig, logger: Logger): Resolver {
  const r = cfg.resolver;
  if (r.type === 'static') return new StaticResolver(r.hostnames);
  if (r.type === 'dns') return new DnsResolver({ hostname: r.hostname, port: r.port, intervalMs: r.intervalMs, timeoutMs: r.timeoutMs, logger });
  return new K8sResolver({ service: r.service, ports: r.ports, kubeconfig: r.kubeconfig, logger });
}

export class LoadBalancingExporter<S extends SignalType> implements Component, Consumer<S> {
  private ring: HashRing;
  private readonly backends = new Map<string, Backend<S>>();
  private readonly retiring = new Set<Promise<void>>();
  private readonly routingKey: RoutingKey;
  private host: Host = { reportFatal: () => {} };
  private membership: Promise<void> = Promise.resolve();
  private state: 'new' | 'running' | 'stopping' = 'new';
  private stopped: Promise<void> | undefined;
  private readonly m = { ringChanges: 0, rerouted: 0, noBackend: 0, sent: new Map<string, number>(), sentTotal: 0 };
  private readonly logger: Logger;
  private unregisterTelemetry: (() => void) | undefined;

  constructor(
    private readonly settings: CreateSettings,
    private readonly cfg: LoadBalancingConfig,
    private readonly signal: S,
    private readonly senderFactory: EndpointSenderFactory,
    private readonly resolver: Resolver = createResolver(cfg, settings.logger),
  ) {
    this.ring = new HashRing([], cfg.virtualNodes);
    this.routingKey = cfg.routingKey ?? (signal === 'traces' ? 'traceID' : 'service');
    this.logger = settings.logger;
  }

  async start(host: Host): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'running';
    this.host = host;
    // Dry run of the per-backend client so a bad protocol section fails start-up, not the first
    // membership change (clients connect lazily, so this opens nothing).
    await this.senderFactory('127.0.0.1:4317', this.signal, this.cfg.protocol, this.logger).close();
    const tel = this.settings.telemetry;
    if (tel) this.unregisterTelemetry = tel.registry.onCollect(() => this.exportTelemetry());
    await this.resolver.start((eps) => this.onMembership(eps));
    await this.membership;
  }

  /** Current ring members (sorted). */
  get members(): readonly string[] {
    return this.ring.members;
  }

  /** Resolves when every membership change reported so far is applied. */
  settled(): Promise<void> {
    return this.membership;
  }

  private onMembership(endpoints: string[]): void {
    // Changes apply in order; each waits for the previous one's backends to start.
    this.membership = this.membership.then(() => this.applyMembership(endpoints)).catch((err: unknown) => {
      this.logger.error({ err }, 'loadbalancing: applying a membership change failed');
    });
  }

  private async applyMembership(endpoints: string[]): Promise<void> {
    if (this.state !== 'running') return;
    const next = new Set(endpoints);
    const added: Backend<S>[] = [];
    for (const ep of next) {
      if (this.backends.has(ep)) continue;
      try {
        added.push(this.createBackend(ep));
      } catch (err) {
        // One unusable address must not keep the others out of the ring.
        this.logger.error({ err, endpoint: ep }, 'loadbalancing: cannot create a client for this backend; left out of the ring');
        next.delete(ep);
      }
    }
    await Promise.all(added.map((b) => b.exporter.start(this.host)));
    for (const b of added) this.backends.set(b.endpoint, b);
    const removed: Backend<S>[] = [];
    for (const [ep, b] of this.backends) if (!next.has(ep)) removed.push(b);
    for (const b of removed) {
      b.removed = true;
      this.backends.delete(b.endpoint);
    }
    // The ring switches before removed backends drain, so their re-routed data finds new owners.
    this.ring = new HashRing([...this.backends.keys()], this.cfg.virtualNodes);
    this.m.ringChanges++;
    this.logger.info({ backends: this.ring.members, added: added.map((b) => b.endpoint), removed: removed.map((b) => b.endpoint) }, 'loadbalancing: ring updated');
    for (const b of removed) {
      b.removal.abort(new ShutdownError(`backend ${b.endpoint} left the ring`));
      const p = b.exporter
        .shutdown()
        .then(() => b.sender.close())
        .catch((err: unknown) => {
          this.logger.warn({ err, endpoint: b.endpoint }, 'loadbalancing: closing a removed backend failed');
        })
        .finally(() => {
          this.retiring.delete(p);
          // Per-backend stats are bounded by the current backends: drop the entry of one that is
          // gone for good (unless it came back in the meantime and is counting again), and its
          // queue's series (kscope_exporter_*{exporter="<id>/<endpoint>"}).
          if (!this.backends.has(b.endpoint)) {
            this.m.sent.delete(b.endpoint);
            this.settings.telemetry?.registry.dropSeries({ exporter: `${this.settings.id}/${b.endpoint}` });
          }
        });
      this.retiring.add(p);
    }
  }

  private createBackend(endpoint: string): Backend<S> {
    const logger = this.logger.child({ endpoint });
    const sender = this.senderFactory(endpoint, this.signal, this.cfg.protocol, logger);
    const b: Backend<S> = { endpoint, sender, removed: false, removal: new AbortController(), sentItems: 0, exporter: undefined as unknown as QueuedExporter<S> };
    const push = async (batch: SignalData[S], ctx: RequestContext, abort: AbortSignal): Promise<void | PartialRejection> => {
      if (b.removed) return this.reroute(batch, ctx);
      let partial: void | PartialRejection;
      try {
        partial = await sender.send(batch, ctx, AbortSignal.any([abort, b.removal.signal]));
      } catch (err) {
        // The backend left while this was in flight (or failing): hand the data to its new owner.
        if (b.removed) return this.reroute(batch, ctx);
        throw err;
      }
      const all = countItems(this.signal, batch);
      const n = all - (partial ? Math.min(partial.rejectedItems, all) : 0);
      this.m.sent.set(endpoint, (this.m.sent.get(endpoint) ?? 0) + n);
      this.m.sentTotal += n;
      return partial;
    };
    b.exporter = createQueuedExporter({ ...this.settings, id: `${this.settings.id}/${endpoint}`, logger }, this.cfg.helper, this.signal, push);
    return b;
  }

  private async reroute(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    this.m.rerouted += countItems(this.signal, batch);
    const { deadline: _drop, ...rest } = ctx;
    await this.route(batch, rest, 1);
  }

  async consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    if (this.state !== 'running') throw new ShutdownError(`exporter ${this.settings.id} is not running`);
    await this.route(batch, ctx, 0);
  }

  private async route(batch: SignalData[S], ctx: RequestContext, depth: number): Promise<void> {
    const ring = this.ring;
    if (ring.size === 0) {
      this.m.noBackend += countItems(this.signal, batch);
      throw new RetryableError(`exporter ${this.settings.id}: no backend resolved`, 1000);
    }
    const parts = splitBatch(this.signal, batch, ring, this.routingKey);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part === undefined) continue;
      const b = this.backends.get(ring.members[i]);
      sends.push(this.deliver(b, part, ctx, depth));
    }
    if (sends.length === 1) return sends[0];
    const rs = await Promise.allSettled(sends);
    for (const r of rs) if (r.status === 'rejected') throw r.reason;
  }

  private async deliver(b: Backend<S> | undefined, part: SignalData[S], ctx: RequestContext, depth: number): Promise<void> {
    // The ring may have changed between split and send: route again with the current one.
    if (b === undefined || b.removed) {
      if (depth >= this.cfg.maxReroutes) throw new RetryableError(`exporter ${this.settings.id}: backend set is changing`, 500);
      this.m.rerouted += countItems(this.signal, part);
      return this.route(part, ctx, depth + 1);
    }
    try {
      await b.exporter.consume(part, ctx);
    } catch (err) {
      if (b.removed && depth < this.cfg.maxReroutes) {
        this.m.rerouted += countItems(this.signal, part);
        return this.route(part, ctx, depth + 1);
      }
      throw err;
    }
  }

  metrics(): LoadBalancingMetrics {
    return {
      backends: [...this.ring.members],
      ringChanges: this.m.ringChanges,
      reroutedItems: this.m.rerouted,
      sentItems: Object.fromEntries(this.m.sent),
      sentTotal: this.m.sentTotal,
      noBackendItems: this.m.noBackend,
    };
  }

  private exportTelemetry(): void {
    const reg = this.settings.telemetry!.registry;
    const l = { exporter: this.settings.id, signal: this.signal };
    const m = this.metrics();
    reg.gauge('kscope_loadbalancer_num_backends', 'Backends in the ring.').set(l, m.backends.length);
    reg.counter('kscope_loadbalancer_ring_changes_total', 'Membership changes applied to the ring.').set(l, m.ringChanges);
    reg.counter('kscope_loadbalancer_rerouted_items_total', 'Items re-routed because their backend left the ring.').set(l, m.reroutedItems);
    reg.counter('kscope_loadbalancer_no_backend_items_total', 'Items refused because no backend was resolved.').set(l, m.noBackendItems);
    reg.counter('kscope_loadbalancer_sent_items_total', 'Items delivered to any backend, removed ones included.').set(l, m.sentTotal);
    const sent = reg.counter('kscope_loadbalancer_backend_sent_items_total', 'Items delivered per backend.');
    for (const [endpoint, n] of Object.entries(m.sentItems)) sent.set({ ...l, endpoint }, n);
    // The series of backends that left go too, so the family stays bounded by the current backends.
    const live = new Set(Object.keys(m.sentItems));
    for (const [key, s] of sent.series)
      if (s.labels.exporter === l.exporter && s.labels.signal === l.signal && !live.has(s.labels.endpoint)) sent.series.delete(key);
  }

  shutdown(): Promise<void> {
    this.stopped ??= (async () => {
      if (this.state === 'new') return;
      await this.resolver.shutdown();
      await this.membership;
      this.state = 'stopping';
      // Retiring backends first: what they still hold is re-routed into the live backends, which
      // must still accept it (a stopped one refuses with ShutdownError until the drain times out).
      // No new retirement starts now: membership changes stop applying once we are stopping.
      while (this.retiring.size) await Promise.all([...this.retiring]);
      // Then drain every live backend's queue and close its connection.
      await Promise.all([...this.backends.values()].map(async (b) => {
        await b.exporter.shutdown();
        await b.sender.close();
      }));
      while (this.retiring.size) await Promise.all([...this.retiring]);
      if (this.unregisterTelemetry) {
        this.exportTelemetry();
        this.unregisterTelemetry();
      }
    })();
    return this.stopped;
  }
}
