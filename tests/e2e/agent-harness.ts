// Shared pieces of the agent e2e tests: a collector child process (OTLP/gRPC in → OTLP/JSON files
// out), the agent config that points at it, and reading the files back into the telemetry model.
import { join } from 'node:path';
import { spawnCollector, type CollectorProcess } from '../../collector/src/testing/process.ts';
import { freePorts } from '../peers/index.ts';
import { decodeJson } from '../../proto/src/otlp/index.ts';
import type {
  AnyValue, ExponentialHistogramDataPoint, KeyValue, LogRecord, LogsData, MetricsData, NumberDataPoint, Resource, Span, TracesData,
} from '../../proto/src/model.ts';
import { parseAgentConfig, type AgentConfig } from '../../agent/src/config.ts';
import { completeLines } from '../lib/jsonl.ts';

/** How the agent reaches the collector: OTel Arrow streams (the agent's default) or OTLP/gRPC. */
export type Transport = 'otelarrow' | 'otlp';
export const TRANSPORTS: readonly Transport[] = ['otelarrow', 'otlp'];

export interface CollectorHandle {
  grpcPort: number;
  out: string;
  proc: CollectorProcess;
}

/** Starts the collector binary; `grpcPort` reuses a port (a restart after an outage). */
export async function startFileCollector(dir: string, opts: { grpcPort?: number; telemetryPort?: number; name?: string; transport?: Transport } = {}): Promise<CollectorHandle> {
  const receiver = opts.transport ?? 'otelarrow';
  const [gp, tp] = await freePorts(2);
  const grpcPort = opts.grpcPort ?? gp!;
  const telemetryPort = opts.telemetryPort ?? tp!;
  const out = join(dir, 'out');
  const yaml = `
receivers:
  ${receiver}: { protocols: { grpc: { endpoint: "127.0.0.1:${grpcPort}" } } }
exporters:
  file/traces: { path: "${join(out, 'traces.jsonl')}" }
  file/metrics: { path: "${join(out, 'metrics.jsonl')}" }
  file/logs: { path: "${join(out, 'logs.jsonl')}" }
service:
  telemetry: { logs: { level: warn }, metrics: { address: "127.0.0.1:${telemetryPort}" } }
  pipelines:
    traces: { receivers: [${receiver}], exporters: [file/traces] }
    metrics: { receivers: [${receiver}], exporters: [file/metrics] }
    logs: { receivers: [${receiver}], exporters: [file/logs] }
`;
  const proc = await spawnCollector(dir, yaml, telemetryPort, { name: opts.name ?? 'collector' });
  return { grpcPort, out, proc };
}

/** Agent config for the tests: live probes, no Kubernetes, exporting to the collector at `port`. */
export function agentConfig(port: number, extra: {
  transport?: Transport;
  spoolDir?: string;
  targetTgid?: number;
  metricsInterval?: string;
  retry?: Record<string, unknown>;
} = {}): AgentConfig {
  return parseAgentConfig({
    probes: { tcp: true, proc: true, ...(extra.targetTgid ? { target_tgid: extra.targetTgid } : {}) },
    enrich: { k8s: { enabled: false } },
    signals: { metrics: { interval: extra.metricsInterval ?? '1s' }, logs: { process_exec_exit: true, tcp_resets: true } },
    batch: { timeout: '200ms', send_batch_size: 500 },
    exporter: {
      type: extra.transport ?? 'otelarrow',
      config: {
        endpoint: `127.0.0.1:${port}`,
        tls: { insecure: true },
        compression: 'none',
        timeout: '2s',
        retry_on_failure: extra.retry ?? { initial_interval: '200ms', max_interval: '1s', max_elapsed_time: '0s' },
        sending_queue: {
          num_consumers: 2,
          ...(extra.spoolDir ? { storage: { directory: extra.spoolDir, max_bytes: '64MiB', segment_bytes: '64KiB' } } : {}),
        },
      },
    },
    server: { address: '127.0.0.1:0' },
    log: { level: 'warn' },
  }, {});
}


export interface Output {
  traces: TracesData[];
  metrics: MetricsData[];
  logs: LogsData[];
}

export function readOutput(out: string): Output {
  return {
    traces: completeLines(join(out, 'traces.jsonl')).map((l) => decodeJson('traces', l)),
    metrics: completeLines(join(out, 'metrics.jsonl')).map((l) => decodeJson('metrics', l)),
    logs: completeLines(join(out, 'logs.jsonl')).map((l) => decodeJson('logs', l)),
  };
}

export function attrOf(attrs: readonly KeyValue[], key: string): AnyValue | undefined {
  return attrs.find((a) => a.key === key)?.value;
}

export function pidOf(r: Resource): number | undefined {
  const v = attrOf(r.attributes, 'process.pid');
  return v === undefined ? undefined : Number(v as bigint);
}

export interface FlatSpan {
  resource: Resource;
  span: Span;
  pid: number | undefined;
  /** hex span id */
  id: string;
}

export function flatSpans(o: Output): FlatSpan[] {
  const out: FlatSpan[] = [];
  for (const td of o.traces)
    for (const rs of td.resourceSpans)
      for (const ss of rs.scopeSpans)
        for (const s of ss.spans) out.push({ resource: rs.resource, span: s, pid: pidOf(rs.resource), id: Buffer.from(s.spanId).toString('hex') });
  return out;
}

export interface FlatPoint {
  resource: Resource;
  pid: number | undefined;
  metric: string;
  point: NumberDataPoint | ExponentialHistogramDataPoint;
  type: string;
}

export function flatPoints(o: Output): FlatPoint[] {
  const out: FlatPoint[] = [];
  for (const md of o.metrics)
    for (const rm of md.resourceMetrics)
      for (const sm of rm.scopeMetrics)
        for (const m of sm.metrics) {
          if (m.data.type === 'sum' || m.data.type === 'gauge' || m.data.type === 'exponentialHistogram')
            for (const p of m.data.dataPoints as (NumberDataPoint | ExponentialHistogramDataPoint)[])
              out.push({ resource: rm.resource, pid: pidOf(rm.resource), metric: m.name, point: p, type: m.data.type });
        }
  return out;
}

export function flatLogs(o: Output): { resource: Resource; pid: number | undefined; log: LogRecord }[] {
  const out: { resource: Resource; pid: number | undefined; log: LogRecord }[] = [];
  for (const ld of o.logs)
    for (const rl of ld.resourceLogs)
      for (const sl of rl.scopeLogs)
        for (const l of sl.logRecords) out.push({ resource: rl.resource, pid: pidOf(rl.resource), log: l });
  return out;
}

/** Sum of a sum metric's points (delta temporality: every exported interval adds). */
export function sumOf(points: FlatPoint[]): number {
  let n = 0;
  for (const p of points) {
    const v = (p.point as NumberDataPoint).value;
    n += typeof v === 'bigint' ? Number(v) : (v as number);
  }
  return n;
}

export function histCount(points: FlatPoint[]): number {
  let n = 0;
  for (const p of points) n += Number((p.point as ExponentialHistogramDataPoint).count);
  return n;
}

/** Polls `check` until it returns true or the deadline passes. */
export async function waitFor(check: () => boolean, timeoutMs: number, stepMs = 250): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
