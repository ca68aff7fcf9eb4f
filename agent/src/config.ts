// The agent's YAML config: env substitution (${env:NAME}), env overrides (KSCOPE_CFG__a__b=value
// sets a.b), then validation with defaults; every error names its dotted field. The exporter
// section is a collector exporter config (same factories and validation as the collector).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../collector/src/component/errors.ts';
import { ConfigReader, isObject, type Raw } from '../../collector/src/config/reader.ts';
import { substituteEnv } from '../../collector/src/config/load.ts';
import { parseEndpoint } from '../../collector/src/receivers/otlp/config.ts';
import { type EnrichmentConfig, validateEnrichmentConfig } from './enrich/index.ts';
import { type SignalsConfig, defaultSignalsConfig } from './signals/builder.ts';
import { readSelfTelemetryConfig, type SelfTelemetryConfig } from './telemetry.ts';

export interface ProbesConfig {
  tcp: boolean;
  proc: boolean;
  /** Ring buffer size per probe object, bytes (power of two, multiple of the page size). */
  ringBufferBytes: number;
  /** Longest a record waits in the kernel ring before the reader hands it over (ms). */
  pollIntervalMs: number;
  /** Only trace this process (0 = all); mostly for tests and demos. */
  targetTgid: number;
  /** Entries of the tcp probe's socket-owner table (`sockets` LRU map); past it the least
   * recently used socket's owner is forgotten (see kscope_agent_tcp_socket_table_*). */
  maxSockets: number;
  /** Fall back to replaying this fixture when live eBPF is not possible (said loudly). */
  fallbackFixture: string;
}

export interface AgentConfig {
  nodeName: string;
  probes: ProbesConfig;
  /** Enrichment, incl. `k8s` (pod informer: enabled auto|true|false, kubeconfig, ...). */
  enrich: EnrichmentConfig;
  signals: SignalsConfig & { metricsIntervalMs: number };
  batch: { sendBatchSize: number; timeoutMs: number; maxBytes: number; maxPendingBatches: number };
  exporter: { type: 'otelarrow' | 'otlp' | 'otlphttp' | 'file' | 'none'; config: unknown };
  server: { address: string };
  log: { level: string };
  /** The agent's own traces over OTLP/gRPC (agent/src/telemetry.ts); metrics stay on /metrics. */
  selfTelemetry: SelfTelemetryConfig;
}

/** The tcp probe's `sockets` table: its compiled size, and the most the config accepts (~120 bytes
 * of kernel memory per entry, preallocated: 4 Mi entries ≈ 0.5 GiB). */
export const DEFAULT_MAX_SOCKETS = 65_536;
export const MAX_MAX_SOCKETS = 4 * 1024 * 1024;

const SNAKE = /_([a-z])/g;
const camel = (k: string) => k.replace(SNAKE, (_, c: string) => c.toUpperCase());

/** The enrich section's components take camelCase keys; the YAML uses snake_case like the rest. */
function camelKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camelKeys);
  if (!isObject(v)) return v;
  const o: Raw = {};
  for (const [k, x] of Object.entries(v)) o[camel(k)] = camelKeys(x);
  return o;
}

/**
 * The enrich components validate camelCase keys (camelKeys above); their errors must still name
 * the field as written in the YAML (enrich.hold_ms, not enrich.holdMs).
 */
function snakeFieldErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof ConfigError) || !/[A-Z]/.test(err.field)) throw err;
    const field = err.field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const message = err.message.startsWith(`${err.field}: `) ? err.message.slice(err.field.length + 2) : err.message;
    throw new ConfigError(field, message);
  }
}

/** Applies KSCOPE_CFG__a__b=value overrides onto the raw document (values read as YAML scalars). */
export function applyEnvOverrides(doc: Raw, env: NodeJS.ProcessEnv = process.env): Raw {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('KSCOPE_CFG__') || value === undefined) continue;
    const path = name.slice('KSCOPE_CFG__'.length).toLowerCase().split('__').filter(Boolean);
    if (path.length === 0) continue;
    let cur: Raw = doc;
    for (const p of path.slice(0, -1)) {
      if (!isObject(cur[p])) cur[p] = {};
      cur = cur[p] as Raw;
    }
    try {
      cur[path[path.length - 1]] = parseYaml(value);
    } catch (err) {
      // the YAML parser's message alone does not say which variable held the bad value
      throw new ConfigError(path.join('.'), `${name}: not a valid YAML value (${(err as Error).message.split('\n')[0]})`);
    }
  }
  return doc;
}

export function parseAgentConfig(doc: unknown, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  if (doc !== null && doc !== undefined && !isObject(doc)) throw new ConfigError('(root)', 'expected a mapping');
  const raw = applyEnvOverrides(structuredClone((doc ?? {}) as Raw), env);
  const r = new ConfigReader(substituteEnv(raw, '', env), '');
  const nodeName = r.str('node_name', env.NODE_NAME ?? '');

  const pr = r.sub('probes');
  const probes: ProbesConfig = {
    tcp: pr.bool('tcp', true),
    proc: pr.bool('proc', true),
    ringBufferBytes: pr.size('ring_buffer_size', 8 * 1024 * 1024),
    // Each wake-up costs a fixed ~0.3 ms of the process in this VM: at 10k events/s, polling every
    // 200 ms took ~30% less CPU than every 50 ms (tests/bench/agent-pipeline.bench.ts, paced run)
    // and 500 ms grew the heap. Latency is no concern: spans wait for the batch timeout anyway,
    // and bursts still wake the reader early (BPF wakeup_bytes).
    pollIntervalMs: pr.duration('poll_interval', 200),
    targetTgid: pr.num('target_tgid', 0, { min: 0, integer: true }),
    maxSockets: pr.num('max_sockets', DEFAULT_MAX_SOCKETS, { min: 1024, max: MAX_MAX_SOCKETS, integer: true }),
    fallbackFixture: pr.str('fallback_fixture', ''),
  };
  if (probes.pollIntervalMs < 1 || probes.pollIntervalMs > 1000) throw new ConfigError(pr.field('poll_interval'), 'must be between 1ms and 1s');
  if (probes.ringBufferBytes < 4096 || (probes.ringBufferBytes & (probes.ringBufferBytes - 1)) !== 0)
    throw new ConfigError(pr.field('ring_buffer_size'), 'must be a power of two of at least 4096 bytes');
  pr.done();

  const host = r.sub('host');
  const er = r.skip('enrich');
  if (er !== undefined && er !== null && !isObject(er)) throw new ConfigError('enrich', 'expected a mapping');
  const enrichRaw = (camelKeys(er ?? {}) as Raw);
  enrichRaw.procRoot ??= host.str('proc_path', '/proc');
  enrichRaw.cgroupRoot ??= host.str('cgroup_root', '/sys/fs/cgroup');
  host.done();
  if (nodeName) enrichRaw.nodeName ??= nodeName;
  const enrich = snakeFieldErrors(() => validateEnrichmentConfig(enrichRaw, 'enrich'));

  const sr = r.sub('signals');
  const d = defaultSignalsConfig();
  const mr = sr.sub('metrics');
  const lr = sr.sub('logs');
  const signals = {
    spans: sr.bool('spans', d.spans),
    metricsIntervalMs: mr.duration('interval', 10_000),
    metrics: {
      temporality: mr.oneOf('temporality', ['delta', 'cumulative'] as const, d.metrics.temporality),
      maxPeersPerResource: mr.num('max_peers_per_resource', d.metrics.maxPeersPerResource, { min: 1, integer: true }),
      maxResources: mr.num('max_resources', d.metrics.maxResources, { min: 1, integer: true }),
      histogramMaxSize: mr.num('histogram_max_size', d.metrics.histogramMaxSize, { min: 2, max: 16_384, integer: true }),
    },
    logs: {
      oomKills: lr.bool('oom_kills', d.logs.oomKills),
      processExecExit: lr.bool('process_exec_exit', d.logs.processExecExit),
      tcpResets: lr.bool('tcp_resets', d.logs.tcpResets),
    },
    maxInboundSockets: sr.num('max_inbound_sockets', d.maxInboundSockets, { min: 1, integer: true }),
    ephemeralPorts: d.ephemeralPorts, // this host's, read from procfs
  };
  if (signals.metricsIntervalMs < 100) throw new ConfigError(mr.field('interval'), 'must be at least 100ms');
  mr.done();
  lr.done();
  sr.done();

  const br = r.sub('batch');
  const batch = {
    sendBatchSize: br.num('send_batch_size', 1000, { min: 1, integer: true }),
    timeoutMs: br.duration('timeout', 5000),
    maxBytes: br.size('send_batch_max_bytes', 4 * 1024 * 1024),
    maxPendingBatches: br.num('max_pending_batches', 64, { min: 1, integer: true }),
  };
  br.done();

  const xr = r.sub('exporter');
  const exporter = {
    type: xr.oneOf('type', ['otelarrow', 'otlp', 'otlphttp', 'file', 'none'] as const, 'otelarrow'),
    config: xr.skip('config') ?? {},
  };
  xr.done();

  const svr = r.sub('server');
  const server = { address: svr.str('address', '0.0.0.0:8081') };
  parseEndpoint(server.address, svr.field('address'));
  svr.done();

  const lg = r.sub('log');
  const log = { level: lg.oneOf('level', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const, 'info') };
  lg.done();
  const selfTelemetry = readSelfTelemetryConfig(r.sub('self_telemetry'), env);
  r.done();
  return { nodeName, probes, enrich, signals, batch, exporter, server, log, selfTelemetry };
}

export function loadAgentConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  if (!file) return parseAgentConfig({}, env);
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError('(file)', `cannot read ${file}: ${(err as Error).message}`);
  }
  return parseAgentConfig(doc, env);
}
