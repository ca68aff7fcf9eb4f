// Composes a running agent from its config: exporters (collector exporter factories), the
// enricher (with the Kubernetes pod informer when a cluster is configured), the event source
// (live eBPF, or a fixture replay), the pipeline, and the health/metrics HTTP server.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { createServer, type Server } from 'node:http';
import type { Host } from '../../collector/src/component/index.ts';
import type { FactoryRegistry } from '../../collector/src/pipeline/registry.ts';
import { parseEndpoint } from '../../collector/src/receivers/otlp/config.ts';
import { parseSize } from '../../collector/src/config/reader.ts';
import { MetricsRegistry, SelfTelemetry as ComponentTelemetry } from '../../collector/src/telemetry/metrics.ts';
import type { Resource, SignalType } from '../../proto/src/model.ts';
import { createLogger, type Logger } from '../../lib/log.ts';
import type { AgentConfig } from './config.ts';
import type { KernelEvent } from './decode/decoder.ts';
import { Enrichment, recordedHostOf } from './enrich/index.ts';
import { AgentPipeline, type AgentExporters, type SignalExporter } from './pipeline.ts';
import { LiveSource, type ProbeFailure } from './sources/live.ts';
import { sumPerCpuU64 } from './bpf/object.ts';
import { UnixClock } from './bpf/clock.ts';
import { kernelCapabilities } from './bpf/probe.ts';
import { knownProbes } from './sources/probes.ts';
import { ReplaySource } from './sources/replay.ts';
import type { BatchSource } from './sources/types.ts';
import { SELF_SPANS, SelfTelemetry } from './telemetry.ts';
import type { Span } from '@opentelemetry/api';

export interface AgentOptions {
  config: AgentConfig;
  registry: FactoryRegistry;
  /** Replay this fixture instead of attaching to the kernel. */
  replay?: { path: string; speed: 'max' | 'recorded' };
  logger?: Logger;
}

/** Wall-clock offset for CLOCK_MONOTONIC timestamps (bpf_ktime_get_ns and hrtime share the clock):
 * CLOCK_REALTIME − CLOCK_MONOTONIC to the ns (not Date.now(): whole ms, up to 1 ms early). */
export { monotonicToUnixOffset, UnixClock } from './bpf/clock.ts';

/** Zstd level of the agent's OTel Arrow payloads: level 1 costs ~1.4× less CPU than the collector's
 * default 3 for ~2% more bytes (measured on agent traces), and the agent's CPU is the budget. */
export const AGENT_ZSTD_LEVEL = 1;

/** Shares of the spool's `max_bytes` per signal: the three spools together stay within it. */
const SPOOL_SHARE: Record<SignalType, number> = { traces: 0.5, metrics: 0.25, logs: 0.25 };
const DEFAULT_SPOOL_BYTES = 256 * 1024 * 1024;
const DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024;

/**
 * The exporter config the agent validates for one signal: the user's `exporter.config` plus the
 * agent's defaults. With a spool (`sending_queue.storage`): a directory per signal, its share of
 * `max_bytes` (the setting is the whole spool's), the oldest data dropped when full (counted),
 * retries without a time limit (a batch leaves the spool only when the collector acknowledged
 * it) and one sender per signal (batches are delivered and replayed in order). And the agent's
 * zstd level for OTel Arrow payloads.
 */
export function agentExporterConfig(type: AgentConfig['exporter']['type'], config: unknown, signal: SignalType): Record<string, any> {
  const raw = structuredClone((config ?? {}) as Record<string, any>);
  const storage = raw?.sending_queue?.storage;
  if (storage && typeof storage === 'object') {
    if (storage.directory) storage.directory = `${storage.directory}/${signal}`;
    if (storage.drop_oldest === undefined) storage.drop_oldest = true;
    const field = 'exporter.config.sending_queue.storage';
    const share = Math.floor(parseSize(storage.max_bytes ?? DEFAULT_SPOOL_BYTES, `${field}.max_bytes`) * SPOOL_SHARE[signal]);
    storage.max_bytes = share;
    // a small spool gets smaller segments, so dropping the oldest frees a fraction, not all of it
    if (storage.segment_bytes === undefined && share < 4 * DEFAULT_SEGMENT_BYTES) storage.segment_bytes = Math.max(4096, Math.floor(share / 4));
    const retry = raw.retry_on_failure && typeof raw.retry_on_failure === 'object' ? raw.retry_on_failure : (raw.retry_on_failure = {});
    if (retry.max_elapsed_time === undefined) retry.max_elapsed_time = 0;
    if (raw.sending_queue.num_consumers === undefined) raw.sending_queue.num_consumers = 1;
  }
  if (type === 'otelarrow') {
    const arrow = raw.arrow && typeof raw.arrow === 'object' ? raw.arrow : (raw.arrow = {});
    if (arrow.zstd_level === undefined) arrow.zstd_level = AGENT_ZSTD_LEVEL;
  }
  return raw;
}

export class Agent {
  readonly log: Logger;
  pipeline!: AgentPipeline;
  source!: BatchSource;
  enrichment!: Enrichment<KernelEvent>;
  /** 'live' or 'replay': what the source really is (live may fall back to replay). */
  mode: 'live' | 'replay' = 'live';
  /** BPF load/attach failures seen at start (reported as log records once the pipeline runs). */
  readonly bpfFailures: Array<{ program: string; message: string; verifierLog: string }> = [];
  private server: Server | undefined;
  private ready = false;
  private stopping: Promise<void> | undefined;
  private sourceDone: Promise<void> | undefined;
  /** The agent's own spans (lifecycle, probes, export calls); no-ops unless self_telemetry is on. */
  readonly selfTelemetry: SelfTelemetry;
  /** What /metrics serves: the pipeline's counters and the exporters' (queue, spool, retries, drops). */
  readonly metrics = new MetricsRegistry();

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.logger ?? createLogger({ name: 'agent', level: opts.config.log.level as 'info' });
    const nodeName = opts.config.nodeName;
    this.selfTelemetry = new SelfTelemetry(opts.config.selfTelemetry, { logger: this.log.child({ component: 'self-telemetry' }), resource: nodeName ? { 'k8s.node.name': nodeName } : {} });
  }

  private createExporters(): AgentExporters {
    const { type, config } = this.opts.config.exporter;
    const make = <S extends SignalType>(signal: S): SignalExporter<S> => {
      const factory = this.opts.registry.require('exporter', type === 'none' ? 'nop' : type, 'exporter.type');
      const cfg = factory.validate(agentExporterConfig(type, config, signal), 'exporter.config');
      const settings = { id: `${type}/${signal}`, logger: this.log.child({ exporter: type, signal }), telemetry: new ComponentTelemetry(this.metrics) };
      return factory.create(settings, cfg, signal) as SignalExporter<S>;
    };
    return { traces: make('traces'), metrics: make('metrics'), logs: make('logs') };
  }

  /** The source and its clocks: event timestamps → Unix ns, and Unix ns now (metric collection, logs not tied to an event). */
  private openSource(): { source: BatchSource; toUnixNano: (m: bigint) => bigint; now: () => bigint } {
    const cfg = this.opts.config;
    if (this.opts.replay) return this.openReplay(this.opts.replay.path, this.opts.replay.speed);
    // Tracepoint attach needs tracefs: mount it when absent (as root), like `agent probe` does.
    const caps = kernelCapabilities({ mountTracefs: true });
    if (caps.tracefs.mountedByUs) this.log.info({ path: caps.tracefs.path }, 'mounted tracefs');
    else if (!caps.tracefs.mounted) this.log.warn({ error: caps.tracefs.error }, 'tracefs unavailable: tracepoint programs will not attach');
    // accept() ownership comes from syscall tracepoints; where tracefs lacks them, the optional
    // raw_tp/sys_exit variant takes over (absence is reported by attach, never fatal).
    const syscallTracepoints = existsSync(`${caps.tracefs.path}/events/syscalls/sys_exit_accept4`);
    if (!syscallTracepoints) this.log.warn('syscall tracepoints unavailable: using the raw_tp accept fallback');
    const globals: Record<string, number> = cfg.probes.targetTgid ? { target_tgid: cfg.probes.targetTgid } : {};
    const specs = [];
    if (cfg.probes.tcp) specs.push({ ...knownProbes.tcp, enable: syscallTracepoints ? [] : ['ks_raw_sys_exit_accept'], globals });
    if (cfg.probes.proc) specs.push({ ...knownProbes.proc, globals });
    const failed = (f: ProbeFailure): void => {
      this.log.error({ err: f.message, probe: f.probe, program: f.program, verifierLog: f.verifierLog }, 'BPF probe failed to load');
      this.bpfFailures.push({ program: f.program ?? `(${f.probe} object)`, message: f.message, verifierLog: f.verifierLog });
    };
    try {
      // A probe that does not load is reported (log + OTel log record) and the others run.
      const source = new LiveSource(specs, {
        ringBytes: cfg.probes.ringBufferBytes,
        maxEntries: { tcp: { sockets: cfg.probes.maxSockets } },
        ring: { pollTimeoutMs: cfg.probes.pollIntervalMs },
        onError: (err, probe) => this.log.error({ err: String(err), probe: probe.name }, 'ring buffer batch handler failed'),
      });
      for (const f of source.failures) failed(f);
      // bpf_ktime_get_ns is this host's CLOCK_MONOTONIC: one offset serves both clocks.
      const clock = new UnixClock();
      return { source, toUnixNano: clock.toUnixNano, now: clock.now };
    } catch (err) {
      const e = err as Error & { verifierLog?: string; program?: string; probeFailures?: ProbeFailure[] };
      if (e.probeFailures) for (const f of e.probeFailures) failed(f);
      else {
        this.log.error({ err: e.message, program: e.program, verifierLog: e.verifierLog }, 'BPF load failed');
        this.bpfFailures.push({ program: e.program ?? '(object)', message: e.message, verifierLog: e.verifierLog ?? '' });
      }
      if (!cfg.probes.fallbackFixture) throw err;
      this.log.warn({ fixture: cfg.probes.fallbackFixture }, '*** live eBPF unavailable: REPLAYING A RECORDED FIXTURE instead ***');
      return this.openReplay(cfg.probes.fallbackFixture, 'recorded');
    }
  }

  private openReplay(path: string, speed: 'max' | 'recorded'): { source: BatchSource; toUnixNano: (m: bigint) => bigint; now: () => bigint } {
    this.mode = 'replay';
    const source = new ReplaySource(path, { speed, onError: (err) => this.log.error({ err: String(err) }, 'replay batch failed') });
    // Replayed events are shifted to now, keeping their spacing.
    const startMono = BigInt(source.header.startMonotonicNs);
    const offset = BigInt(Date.now()) * 1_000_000n - startMono;
    // Events are on the recording host's monotonic clock; collection times are this host's.
    return { source, toUnixNano: (m) => m + offset, now: new UnixClock().now };
  }

  async start(): Promise<void> {
    const st = this.selfTelemetry;
    try {
      await st.start();
      await st.trace(SELF_SPANS.start, { 'kscope.exporter': this.opts.config.exporter.type }, undefined, (span) => this.startTraced(span));
    } catch (err) {
      // a failure after the server or the probes are up must not leave a half-started agent
      // (probes attached, /healthz 200) behind: stop what started, then report the failure
      await this.stop().catch((e: unknown) => this.log.error({ err: String(e) }, 'stop after a failed start failed'));
      throw err;
    }
  }

  private async startTraced(span: Span): Promise<void> {
    const cfg = this.opts.config;
    const st = this.selfTelemetry;
    const exporters = st.wrapExporters(this.createExporters(), cfg.exporter.type);
    const loadStart = Date.now();
    const { source, toUnixNano, now } = await st.trace(SELF_SPANS.sourceOpen, {}, span, (s) => {
      const opened = this.openSource();
      s.setAttribute('kscope.mode', this.mode);
      if (this.mode === 'replay') s.setAttribute('kscope.fallback', !this.opts.replay);
      return opened;
    });
    const loadEnd = Date.now();
    this.source = source;
    // Built once the source is known: a replay (asked for, or the live fallback) enriches from the
    // fixture's recorded cgroup and process tables, never from this host's /proc and cgroupfs.
    try {
      this.enrichment = new Enrichment<KernelEvent>(cfg.enrich, {
        logger: this.log,
        ...(source instanceof ReplaySource ? { recorded: recordedHostOf(source.header) } : {}),
      });
    } catch (err) {
      await source.stop(); // a config error (e.g. enrich.k8s) must not leave probes attached
      throw err;
    }
    this.pipeline = new AgentPipeline({
      signals: cfg.signals,
      batch: cfg.batch,
      enricher: this.enrichment.enricher,
      exporters,
      toUnixNano,
      now,
      logger: this.log,
      metrics: this.metrics,
    });
    st.registerMetrics(this.pipeline.telemetry);
    this.registerRingMetrics();
    await this.startServer();
    const host: Host = { reportFatal: (err) => { this.log.error({ err: err.message }, 'fatal'); void this.stop(); } };
    await this.pipeline.start(host);
    await st.trace(SELF_SPANS.enrichStart, { 'kscope.k8s.source': this.enrichment.k8sSource }, span, async (s) => {
      await this.enrichment.start();
      if (this.enrichment.informer) s.setAttribute('kscope.k8s.synced', this.enrichment.informer.synced);
    });
    if (this.enrichment.informer && !this.enrichment.informer.synced)
      this.log.warn('pod informer not synced yet; events wait for metadata as configured (enrich.hold_ms)');
    const attachStart = Date.now();
    this.sourceDone = source.start(this.pipeline.onBatch).catch(async (err: unknown) => {
      // e.g. a fixture corrupt partway: stop (flushing what was delivered), and let
      // sourceFinished() report it
      this.log.error({ err: (err as Error)?.message ?? String(err) }, 'event source failed; stopping');
      await this.stop();
      throw err;
    });
    this.sourceDone.catch(() => undefined); // observed: sourceFinished() rethrows it
    if (source instanceof LiveSource) {
      st.recordProbes(span, source.probes, { start: loadStart, end: loadEnd }, { start: attachStart, end: Date.now() });
      for (const p of source.probes)
        for (const a of p.attach)
          if (!a.ok) {
            this.log.warn({ probe: p.name, program: a.program, error: a.error }, 'program did not attach');
            this.bpfFailures.push({ program: a.program, message: `attach failed: ${a.error ?? 'unknown'}`, verifierLog: (a as { log?: string }).log ?? '' });
          }
    }
    // Every load or attach failure also leaves as an OTel log record (with the verifier log tail).
    for (const f of this.bpfFailures) this.pipeline.builder.onBpfFailure(this.agentResource(), f.program, f.message, f.verifierLog.slice(-4096));
    this.ready = true;
    span.setAttribute('kscope.mode', this.mode);
    this.log.info({ mode: this.mode, server: cfg.server.address }, 'agent running');
  }

  /** The resource of the agent itself (for its own log records). */
  private agentResource(): Resource {
    const attributes: Resource['attributes'] = [
      { key: 'service.name', value: 'kscope-agent' },
      { key: 'host.name', value: hostname() },
      { key: 'process.pid', value: BigInt(process.pid) },
    ];
    if (this.opts.config.nodeName) attributes.push({ key: 'k8s.node.name', value: this.opts.config.nodeName });
    return { attributes, droppedAttributesCount: 0 };
  }

  /** The BPF side's per-CPU counters: ring-buffer reserve failures (lost events) and events emitted. */
  private registerRingMetrics(): void {
    const source = this.source;
    if (!(source instanceof LiveSource)) return;
    const t = this.pipeline.telemetry;
    const lost = t.counter('kscope_agent_ring_lost_events_total', 'Events the BPF programs could not reserve ring-buffer space for, by probe.');
    const sockIns = t.counter('kscope_agent_tcp_socket_table_inserts_total', 'Sockets added to the tcp probe\'s socket-owner table (new entries).');
    const sockDel = t.counter('kscope_agent_tcp_socket_table_deletes_total', 'Entries removed from the tcp socket-owner table (socket destroyed, connect failed).');
    const sockFail = t.counter('kscope_agent_tcp_socket_table_insert_failures_total', 'Socket owners the tcp probe could not record (map update failed).');
    const sockEntries = t.gauge('kscope_agent_tcp_socket_table_entries', 'Inserts minus deletes: the table\'s size while below capacity; near or above capacity (probes.max_sockets) the LRU evicts live sockets\' owners, at least the excess.');
    const sockCap = t.gauge('kscope_agent_tcp_socket_table_capacity', 'Entries the tcp socket-owner table holds (probes.max_sockets).');
    t.onCollect(() => {
      for (const p of source.probes) {
        const v = p.object.mapLookup('lost_events', 0);
        if (v) lost.set({ probe: p.name }, Number(sumPerCpuU64(v)));
      }
      for (const s of source.socketTables()) {
        const l = { probe: s.probe };
        sockIns.set(l, Number(s.inserted));
        sockDel.set(l, Number(s.deleted));
        sockFail.set(l, Number(s.insertFailed));
        sockEntries.set(l, Number(s.inserted - s.deleted));
        sockCap.set(l, s.capacity);
      }
    });
  }

  /** Resolves when a replay source has delivered everything (live sources never finish); rejects
   * with the source's error if it failed (the agent is stopped by then). */
  async sourceFinished(): Promise<void> {
    await this.sourceDone;
  }

  /** Never resolves; rejects when the source failed (the agent stopped itself). For commands
   * that otherwise wait only for a signal. */
  async sourceFailed(): Promise<never> {
    await this.sourceDone;
    return new Promise<never>(() => undefined);
  }

  private startServer(): Promise<void> {
    const { host, port } = parseEndpoint(this.opts.config.server.address, 'server.address');
    this.server = createServer((req, res) => {
      const url = req.url ?? '/';
      if (url === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      if (url === '/readyz') return void res.writeHead(this.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(this.ready ? 'ready\n' : this.stopping ? 'stopping\n' : 'starting\n');
      if (url === '/metrics') {
        return void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.pipeline?.telemetry.render() ?? '');
      }
      res.writeHead(404).end();
    });
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
  }

  get serverPort(): number {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /** Detaches, drains the rings, flushes every held item to the exporters, stops. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.ready = false;
      const span = this.selfTelemetry.span(SELF_SPANS.stop, { 'kscope.mode': this.mode });
      await this.source?.stop();
      await this.pipeline?.shutdown();
      await this.enrichment?.shutdown();
      await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
      const c = this.pipeline?.counters;
      if (c) span.setAttributes({ 'kscope.spans_exported': c.spansExported, 'kscope.points_exported': c.pointsExported, 'kscope.logs_exported': c.logsExported, 'kscope.export_failures': c.exportFailures, 'kscope.dropped_items': c.droppedItems });
      span.end();
      // last: the stop span and the final export calls' spans leave with this flush
      await this.selfTelemetry.shutdown();
      this.log.info('agent stopped');
    })();
    return this.stopping;
  }
}
