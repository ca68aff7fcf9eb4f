// The agent's own traces (self-telemetry): spans for its lifecycle and periodic work — start,
// probe load and attach per probe with per-program results, each export call with its item count
// and outcome, stop — exported over OTLP/gRPC with the OpenTelemetry JS SDK. Never one span per
// kernel event. The agent's own metrics stay on /metrics (Prometheus text); this module adds its
// counters there.
//
// The SDK's tracer provider is kept per Agent instead of being registered globally (NodeSDK.start
// would register global providers and, from the environment, OTLP metric and log exporters): an
// agent embedded in a test or a tool must not take over the process's global OpenTelemetry state,
// and its metrics must not leave through a second path. The SDK is loaded only when enabled.
//
// No loop: nothing here instruments gRPC or HTTP, so exporting self spans creates no spans; the
// span exporter's TCP connection shows up in the agent's own TCP probe data like any other.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import * as api from '@opentelemetry/api';
import type { Span, Tracer, Attributes } from '@opentelemetry/api';
import type { core, tracing } from '@opentelemetry/sdk-node';
import { ConfigError } from '../../collector/src/component/errors.ts';
import type { Host } from '../../collector/src/component/index.ts';
import type { ConfigReader } from '../../collector/src/config/reader.ts';
import type { MetricsRegistry } from '../../collector/src/telemetry/metrics.ts';
import { countItems, type SignalType } from '../../proto/src/model.ts';
import type { Logger } from '../../lib/log.ts';
import type { AgentExporters, SignalExporter } from './pipeline.ts';
import type { AttachResult } from './bpf/object.ts';

export interface SelfTelemetryConfig {
  enabled: boolean;
  /** grpc-js target for the OTLP/gRPC trace exporter (host:port). */
  tracesEndpoint: string;
  serviceName: string;
  /** Longest a finished span waits before its batch is exported (BatchSpanProcessor delay). */
  exportIntervalMs: number;
  /** Finished spans held at most; beyond, new spans are dropped (counted by the SDK). */
  maxQueueSize: number;
  maxExportBatchSize: number;
  timeoutMs: number;
  tls: { insecure: boolean; caFile: string; certFile: string; keyFile: string };
  headers: Record<string, string>;
}

const DEFAULT_ENDPOINT = 'localhost:4317';

/**
 * `self_telemetry` section. Enabled when it names `traces_endpoint`, when `enabled: true`, or when
 * the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT is set (config wins);
 * OTEL_SDK_DISABLED=true and `enabled: false` turn it off. OTEL_SERVICE_NAME names the service when
 * the config does not. An http:// URL or a bare host:port is plaintext unless a `tls` file is set;
 * https:// means TLS.
 */
export function readSelfTelemetryConfig(r: ConfigReader, env: NodeJS.ProcessEnv): SelfTelemetryConfig {
  const configured = r.str('traces_endpoint');
  const fromEnv = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined;
  const endpointRaw = configured || fromEnv || '';
  const sdkDisabled = /^true$/i.test(env.OTEL_SDK_DISABLED ?? '');
  const enabled = r.bool('enabled', !!endpointRaw && !sdkDisabled);
  const t = r.sub('tls');
  const tlsFiles = { caFile: t.str('ca_file', ''), certFile: t.str('cert_file', ''), keyFile: t.str('key_file', '') };
  const scheme = /^([a-z]+):\/\//i.exec(endpointRaw)?.[1]?.toLowerCase();
  const field = configured ? r.field('traces_endpoint') : env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  if (scheme && scheme !== 'http' && scheme !== 'https' && scheme !== 'grpc') throw new ConfigError(field, `unsupported scheme ${scheme}:// (http, https or host:port)`);
  const insecureDefault = scheme === 'https' ? false : !(tlsFiles.caFile || tlsFiles.certFile || tlsFiles.keyFile);
  const cfg: SelfTelemetryConfig = {
    enabled,
    tracesEndpoint: (endpointRaw || DEFAULT_ENDPOINT).replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, ''),
    serviceName: r.str('service_name', env.OTEL_SERVICE_NAME || 'kscope-agent'),
    exportIntervalMs: r.duration('interval', 5000),
    maxQueueSize: r.num('max_queue_size', 2048, { min: 1, integer: true }),
    maxExportBatchSize: r.num('max_export_batch_size', 512, { min: 1, integer: true }),
    timeoutMs: r.duration('timeout', 10_000),
    tls: { insecure: t.bool('insecure', insecureDefault), ...tlsFiles },
    headers: Object.fromEntries(r.strMap('headers')),
  };
  t.done();
  r.done();
  if (enabled && !/^[^\s/:]+:\d+$|^\[[^\]]+\]:\d+$/.test(cfg.tracesEndpoint)) throw new ConfigError(field, `expected host:port or http(s)://host:port, got ${JSON.stringify(endpointRaw)}`);
  if (cfg.exportIntervalMs < 10) throw new ConfigError(r.field('interval'), 'must be at least 10ms');
  if (cfg.maxExportBatchSize > cfg.maxQueueSize) throw new ConfigError(r.field('max_export_batch_size'), 'must not exceed max_queue_size');
  if (!!cfg.tls.certFile !== !!cfg.tls.keyFile) throw new ConfigError(t.field(cfg.tls.certFile ? 'key_file' : 'cert_file'), 'cert_file and key_file go together');
  return cfg;
}

/** A span that records nothing: what every call returns when self-telemetry is off. */
const NOOP_SPAN: Span = api.trace.wrapSpanContext(api.INVALID_SPAN_CONTEXT);

export interface SelfTelemetryOptions {
  /** Extra resource attributes (k8s.node.name, ...). */
  resource?: Attributes;
  logger: Logger;
}

/** Span names, stable for dashboards and tests. */
export const SELF_SPANS = {
  start: 'agent.start',
  stop: 'agent.stop',
  sourceOpen: 'source.open',
  probeLoad: 'probe.load',
  probeAttach: 'probe.attach',
  enrichStart: 'enrich.start',
  export: (signal: SignalType) => `export ${signal}`,
} as const;

export class SelfTelemetry {
  private provider: tracing.BasicTracerProvider | undefined;
  private tracer: Tracer | undefined;
  private started: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  /** Self spans handed to / accepted by / failed at the OTLP exporter. */
  readonly counters = { spansExported: 0, spansFailed: 0, exportCallsTraced: 0 };

  constructor(readonly cfg: SelfTelemetryConfig, private readonly opts: SelfTelemetryOptions) {}

  get enabled(): boolean {
    return this.cfg.enabled;
  }

  /** Loads the SDK and builds the provider; idempotent. A bad TLS file is a ConfigError. */
  start(): Promise<void> {
    this.started ??= this.enabled ? this.build() : Promise.resolve();
    return this.started;
  }

  private async build(): Promise<void> {
    const cfg = this.cfg;
    const read = (file: string, key: string): Buffer | null => {
      if (!file) return null;
      try {
        return readFileSync(file);
      } catch (err) {
        throw new ConfigError(`self_telemetry.tls.${key}`, `cannot read ${file}: ${(err as Error).message}`);
      }
    };
    // files first: a bad path fails start before the SDK (about a second to load) is imported
    const files = cfg.tls.insecure ? undefined : [read(cfg.tls.caFile, 'ca_file'), read(cfg.tls.keyFile, 'key_file'), read(cfg.tls.certFile, 'cert_file')] as const;
    const [{ tracing, resources }, { OTLPTraceExporter }, grpc] = await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/exporter-trace-otlp-grpc'),
      import('@grpc/grpc-js'),
    ]);
    const credentials = files ? grpc.credentials.createSsl(...files) : grpc.credentials.createInsecure();
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(cfg.headers)) metadata.set(k, v);
    const otlp = new OTLPTraceExporter({
      url: `${cfg.tls.insecure ? 'http' : 'https'}://${cfg.tracesEndpoint}`,
      credentials,
      metadata,
      timeoutMillis: cfg.timeoutMs,
    });
    const resource = resources.resourceFromAttributes({
      'service.name': cfg.serviceName,
      'service.instance.id': `${hostname()}/${process.pid}`,
      'host.name': hostname(),
      'process.pid': process.pid,
      'process.runtime.name': 'nodejs',
      'process.runtime.version': process.versions.node,
      ...this.opts.resource,
    });
    this.provider = new tracing.BasicTracerProvider({
      resource,
      spanProcessors: [
        new tracing.BatchSpanProcessor(new CountingExporter(otlp, this.counters, this.opts.logger), {
          scheduledDelayMillis: cfg.exportIntervalMs,
          maxQueueSize: cfg.maxQueueSize,
          maxExportBatchSize: cfg.maxExportBatchSize,
          exportTimeoutMillis: cfg.timeoutMs,
        }),
      ],
    });
    this.tracer = this.provider.getTracer('kscope-agent');
    this.opts.logger.info({ endpoint: cfg.tracesEndpoint, tls: !cfg.tls.insecure, service: cfg.serviceName }, 'self-telemetry traces enabled');
  }

  /** Starts a span (child of `parent` when given); a non-recording span when disabled. */
  span(name: string, attributes: Attributes = {}, parent?: Span, extra: { startTime?: number; kind?: api.SpanKind } = {}): Span {
    if (!this.tracer || this.stopped) return NOOP_SPAN;
    const ctx = parent ? api.trace.setSpan(api.ROOT_CONTEXT, parent) : api.ROOT_CONTEXT;
    return this.tracer.startSpan(name, { attributes, ...(extra.startTime !== undefined ? { startTime: extra.startTime } : {}), ...(extra.kind !== undefined ? { kind: extra.kind } : {}) }, ctx);
  }

  /** Runs `fn` inside a span that ends with its outcome (error status and exception on throw). */
  async trace<T>(name: string, attributes: Attributes, parent: Span | undefined, fn: (span: Span) => Promise<T> | T): Promise<T> {
    const span = this.span(name, attributes, parent);
    try {
      const v = await fn(span);
      span.end();
      return v;
    } catch (err) {
      endWithError(span, err);
      throw err;
    }
  }

  /**
   * One `probe.load` span per probe object (the libbpf load step, timed as a whole: objects load
   * one after the other inside it) and one `probe.attach` span per probe with one event per
   * program: attached or the error text. A failed attach sets the span's status to ERROR.
   */
  recordProbes(parent: Span, probes: { name: string; attach: AttachResult[] }[], load: { start: number; end: number }, attach: { start: number; end: number }): void {
    if (!this.tracer) return;
    for (const p of probes) {
      const l = this.span(SELF_SPANS.probeLoad, { 'kscope.probe.name': p.name, 'kscope.probe.programs': p.attach.map((a) => a.program) }, parent, { startTime: load.start });
      l.setStatus({ code: api.SpanStatusCode.OK });
      l.end(load.end);
      const failed = p.attach.filter((a) => !a.ok);
      const s = this.span(SELF_SPANS.probeAttach, {
        'kscope.probe.name': p.name,
        'kscope.probe.attached': p.attach.filter((a) => a.ok).map((a) => a.program),
        'kscope.probe.failed': failed.map((a) => a.program),
      }, parent, { startTime: attach.start });
      for (const a of p.attach) s.addEvent(a.ok ? 'attached' : 'attach failed', { 'kscope.program': a.program, ...(a.error ? { 'error.message': a.error } : {}), ...(a.errno ? { 'kscope.errno': a.errno } : {}) }, attach.end);
      s.setStatus(failed.length ? { code: api.SpanStatusCode.ERROR, message: `${failed.length} program(s) did not attach: ${failed.map((a) => `${a.program}: ${a.error ?? 'failed'}`).join('; ')}` } : { code: api.SpanStatusCode.OK });
      s.end(attach.end);
    }
  }

  /**
   * Wraps each exporter so every export call is one CLIENT span `export <signal>` with the item
   * count and outcome. With a sending queue, the outcome is the hand-over to the queue.
   */
  wrapExporters(exporters: AgentExporters, exporterType: string): AgentExporters {
    if (!this.enabled) return exporters;
    const wrap = <S extends SignalType>(signal: S, inner: SignalExporter<S>): SignalExporter<S> => ({
      start: (host: Host) => inner.start(host),
      shutdown: () => inner.shutdown(),
      consume: (batch, ctx) => {
        const span = this.span(SELF_SPANS.export(signal), { 'kscope.signal': signal, 'kscope.exporter': exporterType, 'kscope.items': countItems(signal, batch) }, undefined, { kind: api.SpanKind.CLIENT });
        this.counters.exportCallsTraced++;
        return inner.consume(batch, ctx).then(
          () => {
            span.setAttribute('kscope.outcome', 'ok');
            span.setStatus({ code: api.SpanStatusCode.OK });
            span.end();
          },
          (err: unknown) => {
            span.setAttribute('kscope.outcome', 'failed');
            endWithError(span, err);
            throw err;
          },
        );
      },
    });
    return { traces: wrap('traces', exporters.traces), metrics: wrap('metrics', exporters.metrics), logs: wrap('logs', exporters.logs) };
  }

  /** Adds the self-telemetry counters to the agent's /metrics. */
  registerMetrics(registry: MetricsRegistry): void {
    const spans = registry.counter('kscope_agent_self_spans_total', 'Self-telemetry spans sent over OTLP, by outcome.');
    registry.onCollect(() => {
      spans.set({ outcome: 'exported' }, this.counters.spansExported);
      spans.set({ outcome: 'failed' }, this.counters.spansFailed);
    });
  }

  /** Flushes every finished span to the endpoint (bounded by `timeout`), then stops. Idempotent. */
  shutdown(): Promise<void> {
    this.stopped ??= (async () => {
      await this.started?.catch(() => undefined);
      const p = this.provider;
      if (!p) return;
      try {
        await p.forceFlush();
        await p.shutdown();
      } catch (err) {
        this.opts.logger.warn({ err: String(err) }, 'self-telemetry flush failed');
      }
    })();
    return this.stopped;
  }
}

function endWithError(span: Span, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e);
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: e.message });
  span.end();
}

/** Counts what the OTLP exporter accepted or failed (the SDK only logs through diag). */
class CountingExporter implements tracing.SpanExporter {
  private warned = 0;

  constructor(private readonly inner: tracing.SpanExporter, private readonly counters: SelfTelemetry['counters'], private readonly logger: Logger) {}

  export(spans: tracing.ReadableSpan[], done: (result: core.ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code === 0) this.counters.spansExported += spans.length;
      else {
        this.counters.spansFailed += spans.length;
        // one line per failure burst is enough: the counter has the rest
        if (this.warned++ % 100 === 0) this.logger.warn({ err: result.error?.message, spans: spans.length }, 'self-telemetry export failed');
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}
