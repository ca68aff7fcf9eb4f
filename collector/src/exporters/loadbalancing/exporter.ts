// Load-balancing exporter: routes every span of a trace (or every block of a service) to the same
// backend via a consistent hash ring, one queued + retrying exporter per backend.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { countItems, type SignalData, type SignalType } from '../../../../proto/src/model.ts';
import type { Component, Consumer, CreateSettings, Host, Logger, RequestContext } from '../../component/index.ts';
import { RetryableError, ShutdownError } from '../../component/errors.ts';
import { createQueuedExporter, type ExporterHelperConfig, type PartialRejection, type PushFn, type QueuedExporter } from '../../exporterhelper/index.ts';
import { otlpBatchCodec } from '../../exporterhelper/otlp-codec.ts';
import { MetricsRegistry, SelfTelemetry } from '../../telemetry/metrics.ts';
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

/** How long a part waits for room in a full backend queue: undefined = as sending_queue says; `until` undefined = not at all. */
type Wait = { until: number | undefined } | undefined;

export type EndpointSenderFactory = <S extends SignalType>(endpoint: string, signal: S, protocol: Raw, logger: Logger) => EndpointSender<S>;

interface Backend<S extends SignalType> {
  endpoint: string;
  sender: EndpointSender<S>;
  exporter: QueuedExporter<S>;
  /** Name of its persistent queue's directory under `<storage.directory>/<signal>/`, with storage only. */
  queueDir?: string;
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
  /**
   * Items the backends' queues gave up on (their kscope_exporter_send_failed_items_total), by
   * reason, removed backends included: what a backend lost on its way out stays counted here
   * after its own series are dropped.
   */
  failedItems: Record<string, number>;
}

/**
 * Directory name of a backend's persistent queue. Reversible, so no two endpoints share one and a
 * leftover directory names its endpoint; `:` reads as `_` (`10.0.0.1:4317` → `10.0.0.1_4317`).
 */
export function backendQueueDir(endpoint: string): string {
  return encodeURIComponent(endpoint).replace(/_/g, '%5F').replace(/%3A/gi, '_');
}

/** The endpoint whose queue directory this is, or undefined for a directory that is not one. */
export function endpointOfQueueDir(name: string): string | undefined {
  let ep: string;
  try {
    ep = decodeURIComponent(name.replace(/_/g, '%3A'));
  } catch {
    return undefined;
  }
  return backendQueueDir(ep) === name ? ep : undefined;
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
  private readonly m = { ringChanges: 0, rerouted: 0, noBackend: 0, sent: new Map<string, number>(), sentTotal: 0, failedGone: new Map<string, number>() };
  private readonly logger: Logger;
  private unregisterTelemetry: (() => void) | undefined;
  /** Where the per-backend queues' series live (the collector's registry, else a private one so metrics() still sees them). */
  private readonly telemetry: SelfTelemetry;
  /** Per-backend queue exporters alive per endpoint (live, retiring, draining a leftover queue); their series go at 0. */
  private readonly exportersOf = new Map<string, number>();
  /** `<storage.directory>/<signal>` when the queues are persistent. */
  private readonly queueRoot: string | undefined;
  /** Queue directories a retiring backend or a leftover drain still holds, until it has let go. */
  private readonly dirBusy = new Map<string, Promise<void>>();

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
    this.telemetry = settings.telemetry ?? new SelfTelemetry(new MetricsRegistry());
    const storage = cfg.helper.queue.enabled ? cfg.helper.queue.storage : undefined;
    // Per signal: the same exporter in a traces and a logs pipeline must not share (or drain) queues.
    if (storage) this.queueRoot = join(storage.directory, signal);
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
    const created: Backend<S>[] = [];
    for (const ep of next) {
      if (this.backends.has(ep)) continue;
      try {
        created.push(this.createBackend(ep));
      } catch (err) {
        // One unusable address must not keep the others out of the ring.
        this.logger.error({ err, endpoint: ep }, 'loadbalancing: cannot create a client for this backend; left out of the ring');
        next.delete(ep);
      }
    }
    const started = await Promise.all(created.map(async (b) => {
      // A persistent queue's directory is locked by one queue at a time: a backend that comes back
      // waits for its retiring predecessor (or a leftover drain) to let go of it.
      const busy = b.queueDir === undefined ? undefined : this.dirBusy.get(b.queueDir);
      if (busy) await busy;
      try {
        await b.exporter.start(this.host);
        return true;
      } catch (err) {
        // Like a client that cannot be created: the others still join the ring.
        this.logger.error({ err, endpoint: b.endpoint }, 'loadbalancing: cannot start the queue of this backend; left out of the ring');
        next.delete(b.endpoint);
        await b.exporter.shutdown().catch(() => {});
        await b.sender.close().catch(() => {});
        this.releaseExporter(b.endpoint);
        return false;
      }
    }));
    const added = created.filter((_, i) => started[i]);
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
      const p: Promise<void> = b.exporter
        .shutdown()
        .then(() => b.sender.close())
        .catch((err: unknown) => {
          this.logger.warn({ err, endpoint: b.endpoint }, 'loadbalancing: closing a removed backend failed');
        })
        .then(() => this.letGoOfQueueDir(b.queueDir, b.exporter, b.endpoint))
        .finally(() => {
          this.retiring.delete(p);
          if (b.queueDir !== undefined && this.dirBusy.get(b.queueDir) === p) this.dirBusy.delete(b.queueDir);
          this.releaseExporter(b.endpoint);
        });
      this.retiring.add(p);
      if (b.queueDir !== undefined) this.dirBusy.set(b.queueDir, p);
    }
    this.drainLeftoverQueues();
  }

  private holdExporter(endpoint: string): void {
    this.exportersOf.set(endpoint, (this.exportersOf.get(endpoint) ?? 0) + 1);
  }

  /**
   * One per-backend queue exporter of `endpoint` is gone. When it was the last, per-backend stats
   * are bounded by the current backends: its entry goes, and so do its queue's series
   * (kscope_exporter_*{exporter="<id>/<endpoint>"}), after what they counted as given up on is
   * added to the load balancer's own failed-items count, so data lost on the way out stays visible.
   */
  private releaseExporter(endpoint: string): void {
    const n = (this.exportersOf.get(endpoint) ?? 1) - 1;
    if (n > 0) {
      this.exportersOf.set(endpoint, n);
      return;
    }
    this.exportersOf.delete(endpoint);
    this.m.sent.delete(endpoint);
    const match = { exporter: `${this.settings.id}/${endpoint}`, signal: this.signal };
    const failed = this.telemetry.registry.get('kscope_exporter_send_failed_items_total');
    for (const s of failed?.series.values() ?? [])
      if (s.labels.exporter === match.exporter && s.labels.signal === match.signal && s.value > 0)
        this.m.failedGone.set(s.labels.reason, (this.m.failedGone.get(s.labels.reason) ?? 0) + s.value);
    this.telemetry.registry.dropSeries(match);
  }

  /** The helper config of a backend: its own directory when the queue is persistent. */
  private helperFor(queueDir: string | undefined): ExporterHelperConfig {
    const h = this.cfg.helper;
    if (queueDir === undefined || !h.queue.storage) return h;
    return { ...h, queue: { ...h.queue, storage: { ...h.queue.storage, directory: join(this.queueRoot!, queueDir) } } };
  }

  private newQueuedExporter(endpoint: string, queueDir: string | undefined, logger: Logger, push: PushFn<S>): QueuedExporter<S> {
    this.holdExporter(endpoint);
    try {
      return createQueuedExporter({ ...this.settings, id: `${this.settings.id}/${endpoint}`, logger, telemetry: this.telemetry }, this.helperFor(queueDir), this.signal, push, queueDir === undefined ? {} : { codec: otlpBatchCodec });
    } catch (err) {
      this.releaseExporter(endpoint);
      throw err;
    }
  }

  /**
   * After a persistent queue closed: an emptied directory goes (pod addresses churn; one directory
   * per address ever seen would pile up), one with records left stays for the next drain.
   */
  private letGoOfQueueDir(queueDir: string | undefined, exporter: QueuedExporter<S>, endpoint: string): void {
    if (queueDir === undefined) return;
    const dir = join(this.queueRoot!, queueDir);
    const left = exporter.persistedCount;
    if (left > 0) {
      this.logger.warn({ endpoint, records: left, directory: dir }, 'loadbalancing: records of a removed backend stay on disk; they are re-routed at the next membership change or restart');
      return;
    }
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      this.logger.warn({ err, directory: dir }, 'loadbalancing: cannot remove the emptied queue directory of a removed backend');
    }
  }

  /**
   * Queue directories of backends not in the ring (removed before their queue drained, or while
   * the collector was down) are opened and drained like a removed backend's: every record is
   * re-routed over the current ring, then the directory goes.
   */
  private drainLeftoverQueues(): void {
    if (this.queueRoot === undefined || this.state !== 'running') return;
    let names: string[];
    try {
      names = readdirSync(this.queueRoot, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ err, directory: this.queueRoot }, 'loadbalancing: cannot list the queue directories');
      return;
    }
    const inUse = new Set<string>();
    for (const b of this.backends.values()) if (b.queueDir !== undefined) inUse.add(b.queueDir);
    for (const name of names) {
      if (inUse.has(name) || this.dirBusy.has(name)) continue;
      const endpoint = endpointOfQueueDir(name);
      if (endpoint === undefined) continue; // not ours
      const logger = this.logger.child({ endpoint, leftover: true });
      let exporter: QueuedExporter<S>;
      try {
        exporter = this.newQueuedExporter(endpoint, name, logger, (batch, ctx) => this.reroute(batch, ctx));
      } catch (err) {
        this.logger.warn({ err, endpoint }, 'loadbalancing: cannot drain a leftover queue');
        continue;
      }
      const p: Promise<void> = (async () => {
        try {
          await exporter.start(this.host);
        } catch (err) {
          // e.g. locked by another collector sharing the directory: leave it to its owner.
          this.logger.warn({ err, directory: join(this.queueRoot!, name) }, 'loadbalancing: cannot open a leftover queue; left alone');
          await exporter.shutdown().catch(() => {});
          return;
        }
        this.logger.info({ endpoint, records: exporter.persistedCount }, 'loadbalancing: re-routing the leftover queue of a backend not in the ring');
        await exporter.shutdown(); // takes no new data: drains (bounded by drain_timeout) through the re-route
        this.letGoOfQueueDir(name, exporter, endpoint);
      })()
        .catch((err: unknown) => this.logger.warn({ err, endpoint }, 'loadbalancing: draining a leftover queue failed'))
        .finally(() => {
          this.retiring.delete(p);
          if (this.dirBusy.get(name) === p) this.dirBusy.delete(name);
          this.releaseExporter(endpoint);
        });
      this.retiring.add(p);
      this.dirBusy.set(name, p);
    }
  }

  private createBackend(endpoint: string): Backend<S> {
    const logger = this.logger.child({ endpoint });
    const sender = this.senderFactory(endpoint, this.signal, this.cfg.protocol, logger);
    const b: Backend<S> = { endpoint, sender, removed: false, removal: new AbortController(), sentItems: 0, exporter: undefined as unknown as QueuedExporter<S> };
    if (this.queueRoot !== undefined) b.queueDir = backendQueueDir(endpoint);
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
    b.exporter = this.newQueuedExporter(endpoint, b.queueDir, logger, push);
    return b;
  }

  private async reroute(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    this.m.rerouted += countItems(this.signal, batch);
    const { deadline: _drop, ...rest } = ctx;
    // No waiting for room here (not even with block_on_overflow): the retiring queue's send times
    // out and retries this push, and a wait that succeeded after that would queue the data twice.
    await this.route(batch, rest, 1, false);
  }

  async consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    if (this.state !== 'running') throw new ShutdownError(`exporter ${this.settings.id} is not running`);
    await this.route(batch, ctx, 0);
  }

  private async route(batch: SignalData[S], ctx: RequestContext, depth: number, mayWait = true): Promise<void> {
    const ring = this.ring;
    if (ring.size === 0) {
      this.m.noBackend += countItems(this.signal, batch);
      throw new RetryableError(`exporter ${this.settings.id}: no backend resolved`, 1000);
    }
    const parts = splitBatch(this.signal, batch, ring, this.routingKey);
    let n = 0;
    for (const part of parts) if (part !== undefined) n++;
    // Split over several backends, a refusal of one part makes the client resend the whole batch,
    // parts others already queued included (duplicates there). So a full queue is waited on, up to
    // the caller's deadline (without one, the per-attempt timeout), whatever block_on_overflow says.
    // A single part follows sending_queue as configured.
    const t = this.cfg.helper.timeoutMs;
    const wait: Wait = !mayWait ? { until: undefined } : n > 1 ? { until: ctx.deadline ?? (t > 0 ? Date.now() + t : Infinity) } : undefined;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part === undefined) continue;
      const b = this.backends.get(ring.members[i]);
      sends.push(this.deliver(b, part, ctx, depth, wait, mayWait));
    }
    if (sends.length === 1) return sends[0];
    const rs = await Promise.allSettled(sends);
    for (const r of rs) if (r.status === 'rejected') throw r.reason;
  }

  private async deliver(b: Backend<S> | undefined, part: SignalData[S], ctx: RequestContext, depth: number, wait: Wait, mayWait: boolean): Promise<void> {
    // The ring may have changed between split and send: route again with the current one.
    if (b === undefined || b.removed) {
      if (depth >= this.cfg.maxReroutes) throw new RetryableError(`exporter ${this.settings.id}: backend set is changing`, 500);
      this.m.rerouted += countItems(this.signal, part);
      return this.route(part, ctx, depth + 1, mayWait);
    }
    try {
      await (wait ? b.exporter.consumeUntil(part, ctx, wait.until) : b.exporter.consume(part, ctx));
    } catch (err) {
      if (b.removed && depth < this.cfg.maxReroutes) {
        this.m.rerouted += countItems(this.signal, part);
        return this.route(part, ctx, depth + 1, mayWait);
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
      failedItems: this.failedItems(),
    };
  }

  private failedItems(): Record<string, number> {
    const out = new Map(this.m.failedGone);
    const exporters = new Set([...this.exportersOf.keys()].map((ep) => `${this.settings.id}/${ep}`));
    for (const s of this.telemetry.registry.get('kscope_exporter_send_failed_items_total')?.series.values() ?? [])
      if (s.labels.signal === this.signal && exporters.has(s.labels.exporter)) out.set(s.labels.reason, (out.get(s.labels.reason) ?? 0) + s.value);
    return Object.fromEntries(out);
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
    const failed = reg.counter('kscope_loadbalancer_send_failed_items_total', 'Items the backends\' queues gave up on, by reason, removed backends included.');
    for (const [reason, n] of Object.entries(m.failedItems)) failed.set({ ...l, reason }, n);
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
