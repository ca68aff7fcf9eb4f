// The agent's data path after the ring buffer: decode each batch with flyweight views, resolve
// the owner's resource (enricher, cached path), feed the signal builders, and hand batches of
// spans, logs and metrics to the exporters. Sizes and timers bound what is held in memory.
import type { Component, Consumer, Host } from '../../collector/src/component/index.ts';
import { MetricsRegistry } from '../../collector/src/telemetry/metrics.ts';
import { countDataPoints, type LogsData, type MetricsData, type Resource, type SignalType, type TracesData } from '../../proto/src/model.ts';
import { EventDecoder, type ExecEventView, type KernelEvent, type ProcEventView, type TcpEventView } from './decode/decoder.ts';
import { EventType } from './decode/layouts.ts';
import type { Enricher } from './enrich/enricher.ts';
import { SignalBuilder, type SignalsConfig } from './signals/builder.ts';
import type { ProcEventFields, TcpEventFields } from './signals/events.ts';
import type { Logger } from '../../lib/log.ts';

/** Rough OTLP size of one agent span (measured on agent traces); bounds batches by bytes. */
const APPROX_SPAN_BYTES = 260;

/** Forks whose start waits for the child's resource (see deferStart); the oldest is settled beyond. */
const MAX_PENDING_FORKS = 4096;

export interface BatchConfig {
  sendBatchSize: number;
  timeoutMs: number;
  maxBytes: number;
  /** Export calls in flight at once; beyond this a batch is dropped and counted. */
  maxPendingBatches: number;
}

export type SignalExporter<S extends SignalType> = Component & Consumer<S>;

export interface AgentExporters {
  traces: SignalExporter<'traces'>;
  metrics: SignalExporter<'metrics'>;
  logs: SignalExporter<'logs'>;
}

export interface AgentPipelineOptions {
  signals: SignalsConfig & { metricsIntervalMs: number };
  batch: BatchConfig;
  enricher: Enricher<KernelEvent>;
  exporters: AgentExporters;
  /** Event timestamps: the source's monotonic clock (bpf_ktime_get_ns, or a replay's) → Unix ns. */
  toUnixNano: (mono: bigint) => bigint;
  /** Wall clock in Unix ns for metric collection and logs not tied to an event (default: this host's). */
  now?: () => bigint;
  logger: Logger;
  metrics?: MetricsRegistry;
}

export class AgentPipeline {
  readonly decoder: EventDecoder;
  readonly builder: SignalBuilder;
  readonly telemetry: MetricsRegistry;
  readonly counters = { batches: 0, spansExported: 0, logsExported: 0, pointsExported: 0, exportFailures: 0, droppedBatches: 0, droppedItems: 0 };
  private readonly enricher: Enricher<KernelEvent>;
  private readonly exporters: AgentExporters;
  private flushTimer: NodeJS.Timeout | undefined;
  private metricsTimer: NodeJS.Timeout | undefined;
  private pending = new Set<Promise<void>>();
  /** Child pid → its fork (a copy) and cgroup, until the child's start is counted. */
  private readonly pendingForks = new Map<number, { ev: KernelEvent; cg: number }>();
  private started = false;
  private stopped: Promise<void> | undefined;

  constructor(private readonly opts: AgentPipelineOptions) {
    this.enricher = opts.enricher;
    this.exporters = opts.exporters;
    this.spanFlushAt = Math.max(1, Math.min(opts.batch.sendBatchSize, Math.floor(opts.batch.maxBytes / APPROX_SPAN_BYTES)));
    this.builder = new SignalBuilder(opts.signals, opts.toUnixNano, undefined, opts.now);
    this.telemetry = opts.metrics ?? new MetricsRegistry();
    this.enricher.setReleaseHandler((item, resource) => this.onEnriched(item, resource));
    this.decoder = new EventDecoder({
      tcp: (v) => this.onTcp(v),
      proc: (v) => this.onProc(v),
      exec: (v) => this.onExec(v),
    });
    this.registerSelfMetrics();
  }

  async start(host: Host): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.exporters.traces.start(host);
    await this.exporters.metrics.start(host);
    await this.exporters.logs.start(host);
    this.flushTimer = setInterval(() => this.flush(), this.opts.batch.timeoutMs);
    this.metricsTimer = setInterval(() => this.exportMetrics(), this.opts.signals.metricsIntervalMs);
  }

  /** The ring-buffer / replay batch handler. */
  readonly onBatch = (buf: ArrayBuffer, byteLength: number, count: number): void => {
    this.counters.batches++;
    this.decoder.decodeBatch(buf, byteLength, count);
  };

  // A ring poll hands over everything since the last one (2000 events every 200 ms at 10k/s), so
  // the size trigger is checked per event: exported batches keep to send_batch_size / max_bytes,
  // and no more than one batch of spans is alive at a time (a poll's worth kept the young
  // generation full and sent its spans to the old one).
  private readonly spanFlushAt: number;

  private afterEvent(): void {
    const b = this.builder;
    if (b.spanCount >= this.spanFlushAt) this.flushSpans();
    if (b.logCount >= this.opts.batch.sendBatchSize) this.flushLogs();
  }

  // ------------------------------------------------------------------ per event (hot path)

  private onTcp(v: TcpEventView): void {
    const r = this.enricher.enrich(v.cgroupIdNumber, v.tgid, v.tsNs, LAZY);
    if (r === undefined) return this.holdLast(v);
    this.builder.onTcp(v, r);
    this.afterEvent();
  }

  private onProc(v: ProcEventView): void {
    if (v.typeCode === EventType.ProcFork) return this.deferStart(v);
    this.settleStart(v.tgid); // its exit, before the exit itself
    const r = this.enricher.enrich(v.cgroupIdNumber, v.tgid, v.tsNs, LAZY);
    if (r === undefined) return this.holdLast(v);
    this.builder.onProc(v, r);
    if (v.typeCode === EventType.ProcExit) this.enricher.onExit(v.tgid);
    this.afterEvent();
  }

  private onExec(v: ExecEventView): void {
    this.enricher.onExec(v.tgid, { comm: v.comm, filename: v.filename, ppid: v.ppid });
    this.settleStart(v.tgid); // with what the exec just told the enricher
    const r = this.enricher.enrich(v.cgroupIdNumber, v.tgid, v.tsNs, LAZY);
    if (r === undefined) return this.holdLast(v);
    this.builder.onProc(v as unknown as ProcEventFields, r);
    this.afterEvent();
  }

  /**
   * A fork is the child's start, counted on the child's resource (it shares the parent's cgroup).
   * At fork time nothing is known of the child: it is settled at its first exec (the resource its
   * exec and exit logs carry), else at its exit, else before the next metrics collection, so it
   * still falls in the interval of the fork. Forks are rare next to TCP events: a copy is fine.
   */
  private deferStart(v: ProcEventView): void {
    this.enricher.onFork(v.childPid); // a reused pid must not resolve to the previous process
    const m = this.pendingForks;
    if (m.size >= MAX_PENDING_FORKS) this.settleStart(m.keys().next().value!);
    m.set(v.childPid, { ev: v.toObject(), cg: v.cgroupIdNumber });
  }

  private settleStart(pid: number): void {
    const f = this.pendingForks.get(pid);
    if (f === undefined) return;
    this.pendingForks.delete(pid);
    const r = this.enricher.enrich(f.cg, pid, f.ev.tsNs, f.ev);
    if (r === undefined) return; // held: released to onEnriched with the child's resource
    this.builder.onProc(f.ev as unknown as ProcEventFields, r);
  }

  private settleStarts(): void {
    for (const pid of [...this.pendingForks.keys()]) this.settleStart(pid);
  }

  /**
   * The enricher held the event (cgroup not known yet) under the LAZY placeholder: the view is
   * only valid now, so swap in a copy. Rare (first event of a new cgroup), so allocation is fine.
   */
  private holdLast(v: TcpEventView | ProcEventView | ExecEventView): void {
    this.enricher.replaceHeld(LAZY, v.toObject());
  }

  private onEnriched(item: KernelEvent, resource: Resource): void {
    if (item.kind === 'tcp') this.builder.onTcp(item as TcpEventFields, resource);
    else {
      this.builder.onProc(item as unknown as ProcEventFields, resource);
      if (item.typeCode === EventType.ProcExit) this.enricher.onExit(item.tgid);
    }
    this.afterEvent();
  }

  // ------------------------------------------------------------------ export

  private send<S extends SignalType>(signal: S, data: S extends 'traces' ? TracesData : S extends 'metrics' ? MetricsData : LogsData, items: number): void {
    if (items === 0) return;
    if (this.pending.size >= this.opts.batch.maxPendingBatches) {
      this.counters.droppedBatches++;
      this.counters.droppedItems += items;
      this.opts.logger.warn({ signal, items, pending: this.pending.size }, 'export back-pressure: batch dropped');
      return;
    }
    const exporter = this.exporters[signal] as unknown as Consumer<S>;
    const p = exporter
      .consume(data as never, {})
      .then(() => {
        if (signal === 'traces') this.counters.spansExported += items;
        else if (signal === 'logs') this.counters.logsExported += items;
        else this.counters.pointsExported += items;
      })
      .catch((err: Error) => {
        this.counters.exportFailures++;
        this.counters.droppedItems += items;
        this.opts.logger.warn({ signal, items, err: err.message }, 'export failed');
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  flushSpans(): void {
    const n = this.builder.spanCount;
    if (n) this.send('traces', this.builder.drainSpans(), n);
  }

  flushLogs(): void {
    const n = this.builder.logCount;
    if (n) this.send('logs', this.builder.drainLogs(), n);
  }

  flush(): void {
    this.flushSpans();
    this.flushLogs();
  }

  exportMetrics(): void {
    this.settleStarts();
    const md = this.builder.collectMetrics();
    this.send('metrics', md, countDataPoints(md));
  }

  /** Waits until every export call in flight has settled. */
  async settle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /** Flushes everything held (held events released with what is known), then stops exporters. Idempotent. */
  shutdown(): Promise<void> {
    this.stopped ??= (async () => {
      clearInterval(this.flushTimer);
      clearInterval(this.metricsTimer);
      this.settleStarts(); // before the enricher releases what it holds
      await this.enricher.shutdown();
      this.flush();
      this.exportMetrics();
      await this.settle();
      // in parallel: each drains its queue for up to its drain timeout, and one after another
      // that would add up past the pod's termination grace period
      const { traces, metrics, logs } = this.exporters;
      await Promise.all([traces.shutdown(), metrics.shutdown(), logs.shutdown()]);
    })();
    return this.stopped;
  }

  private registerSelfMetrics(): void {
    const t = this.telemetry;
    const events = t.counter('kscope_agent_events_total', 'Kernel events decoded, by kind.');
    const bad = t.counter('kscope_agent_decode_errors_total', 'Records skipped by the decoder, by reason.');
    const exported = t.counter('kscope_agent_exported_items_total', 'Items accepted by the exporter, by signal.');
    const dropped = t.counter('kscope_agent_dropped_items_total', 'Items dropped (back-pressure or export failure).');
    const failures = t.counter('kscope_agent_export_failures_total', 'Export calls that failed.');
    const held = t.gauge('kscope_agent_enrich_held_events', 'Events waiting for their cgroup/pod metadata.');
    const unresolved = t.counter('kscope_agent_enrich_unresolved_total', 'Events emitted without the metadata they waited for.');
    const folded = t.counter('kscope_agent_metric_series_folded_total', 'Metric series folded into "_other" by the per-workload peer cap (each series once).');
    const foldedResources = t.counter('kscope_agent_metric_resources_folded_total', 'Resources whose metrics went to another resource because metrics max_resources was reached.');
    t.onCollect(() => {
      const s = this.decoder.stats;
      events.set({ kind: 'tcp' }, s.tcp);
      events.set({ kind: 'proc' }, s.proc);
      events.set({ kind: 'exec' }, s.exec);
      bad.set({ reason: 'unknown_type' }, s.unknownType);
      bad.set({ reason: 'too_short' }, s.tooShort);
      bad.set({ reason: 'bad_frame' }, s.badFrames);
      exported.set({ signal: 'traces' }, this.counters.spansExported);
      exported.set({ signal: 'logs' }, this.counters.logsExported);
      exported.set({ signal: 'metrics' }, this.counters.pointsExported);
      dropped.set({}, this.counters.droppedItems);
      failures.set({}, this.counters.exportFailures);
      held.set({}, this.enricher.heldCount);
      unresolved.set({}, this.enricher.counters.releasedUnresolved);
      folded.set({}, this.builder.metrics.foldedPeers);
      foldedResources.set({}, this.builder.metrics.foldedResources);
    });
  }
}

/** Placeholder the enricher holds until holdLast() swaps in a copy of the event. */
const LAZY = { kind: 'lazy' } as unknown as KernelEvent;
