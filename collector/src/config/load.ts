// Loads an otelcol-style YAML config: env substitution, then the service section parsed into a
// typed shape. Component sections stay raw here; the pipeline builder validates them through their
// factories so every error names its dotted path (e.g. "processors.rate_limit.tiers.high.spans_per_second").
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../component/errors.ts';
import type { SignalType } from '../../../proto/src/model.ts';
import { ConfigReader, isObject, type Raw } from './reader.ts';

export interface PipelineConfig {
  /** Pipeline id, e.g. "traces" or "traces/tenant-a". */
  id: string;
  signal: SignalType;
  receivers: string[];
  processors: string[];
  exporters: string[];
}

export interface TelemetryConfig {
  logLevel: string;
  /** host:port of the /metrics and /healthz endpoint; empty disables it. */
  metricsAddress: string;
  /** Upper bound on distinct label sets per self-metric (tenant labels are user-controlled). */
  maxSeriesPerMetric: number;
}

export interface CollectorConfig {
  receivers: Record<string, unknown>;
  processors: Record<string, unknown>;
  exporters: Record<string, unknown>;
  pipelines: PipelineConfig[];
  telemetry: TelemetryConfig;
  /** How long shutdown may take before in-memory data is given up (ms). */
  shutdownTimeoutMs: number;
}

const ENV_RE = /\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const ID_TYPE_RE = /^[a-z][a-z0-9_]*$/;
const SIGNALS: SignalType[] = ['traces', 'metrics', 'logs'];

/**
 * Replaces `${env:NAME}` (and `${env:NAME:-default}`) in every string value; `$$` is a literal `$`.
 * A value that is exactly one reference is re-read as a YAML scalar so `${env:PORT}` can be a number.
 */
export function substituteEnv(v: unknown, path: string, env: NodeJS.ProcessEnv = process.env): unknown {
  if (typeof v === 'string') {
    if (!v.includes('$')) return v;
    const whole = /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$/.exec(v);
    const out = v.replace(ENV_RE, (m, name: string | undefined, def: string | undefined) => {
      if (m === '$$') return '$';
      const val = env[name!];
      if (val === undefined) {
        if (def !== undefined) return def;
        throw new ConfigError(path, `environment variable ${name} is not set`);
      }
      return val;
    });
    if (whole) {
      const scalar = parseYaml(out);
      return typeof scalar === 'number' || typeof scalar === 'boolean' ? scalar : out;
    }
    return out;
  }
  if (Array.isArray(v)) return v.map((x, i) => substituteEnv(x, `${path}[${i}]`, env));
  if (isObject(v)) {
    const o: Raw = {};
    for (const [k, x] of Object.entries(v)) o[k] = substituteEnv(x, path ? `${path}.${k}` : k, env);
    return o;
  }
  return v;
}

/** "otlp/tenant-a" → { type: "otlp", name: "tenant-a" }. */
export function parseComponentId(id: string, field: string): { type: string; name: string } {
  const slash = id.indexOf('/');
  const type = slash < 0 ? id : id.slice(0, slash);
  const name = slash < 0 ? '' : id.slice(slash + 1);
  if (!ID_TYPE_RE.test(type)) throw new ConfigError(field, `invalid component id ${JSON.stringify(id)}: type must match ${ID_TYPE_RE}`);
  if (slash >= 0 && !/^[A-Za-z0-9_.-]+$/.test(name)) throw new ConfigError(field, `invalid component id ${JSON.stringify(id)}: bad name`);
  return { type, name };
}

export function parseConfig(doc: unknown, env: NodeJS.ProcessEnv = process.env): CollectorConfig {
  const root = new ConfigReader(substituteEnv(doc ?? {}, '', env), '');
  const section = (k: string): Record<string, unknown> => {
    const v = root.skip(k);
    if (v === undefined || v === null) return {};
    if (!isObject(v)) throw new ConfigError(k, 'expected a mapping of component ids to configs');
    for (const id of Object.keys(v)) parseComponentId(id, `${k}.${id}`);
    return v;
  };
  const receivers = section('receivers');
  const processors = section('processors');
  const exporters = section('exporters');
  root.skip('extensions');
  const service = root.sub('service');
  root.done();

  const pipelines: PipelineConfig[] = [];
  for (const [id, p] of service.map('pipelines')) {
    const { type } = parseComponentId(id, p.path);
    if (!SIGNALS.includes(type as SignalType)) throw new ConfigError(p.path, `pipeline type must be one of ${SIGNALS.join(', ')}`);
    const pc: PipelineConfig = {
      id,
      signal: type as SignalType,
      receivers: p.strList('receivers', []),
      processors: p.strList('processors', []),
      exporters: p.strList('exporters', []),
    };
    p.done();
    // A pipeline without receivers can only be fed by a routing processor (checked at start).
    if (pc.exporters.length === 0) throw new ConfigError(p.field('exporters'), 'a pipeline needs at least one exporter');
    const check = (list: string[], sect: Record<string, unknown>, kind: string) =>
      list.forEach((c, i) => {
        if (!(c in sect)) throw new ConfigError(`${p.field(kind)}[${i}]`, `references ${kind.slice(0, -1)} ${JSON.stringify(c)} which is not configured`);
      });
    check(pc.receivers, receivers, 'receivers');
    check(pc.processors, processors, 'processors');
    check(pc.exporters, exporters, 'exporters');
    if (new Set(pc.processors).size !== pc.processors.length) throw new ConfigError(p.field('processors'), 'a processor may appear only once per pipeline');
    pipelines.push(pc);
  }
  if (pipelines.length === 0) throw new ConfigError('service.pipelines', 'at least one pipeline is required');

  const tel = service.sub('telemetry');
  const logs = tel.sub('logs');
  const metrics = tel.sub('metrics');
  const telemetry: TelemetryConfig = {
    logLevel: logs.oneOf('level', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], 'info'),
    metricsAddress: metrics.str('address', '127.0.0.1:8888'),
    maxSeriesPerMetric: metrics.num('max_series_per_metric', 2000, { min: 1, integer: true }),
  };
  logs.done();
  metrics.done();
  tel.done();
  // below Kubernetes' default 30 s termination grace, above a receiver's 5 s grace + a 10 s queue drain
  const shutdownTimeoutMs = service.duration('shutdown_timeout', 25_000);
  service.done();
  return { receivers, processors, exporters, pipelines, telemetry, shutdownTimeoutMs };
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): CollectorConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('', `cannot read config file ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError('', `invalid YAML in ${file}: ${(err as Error).message}`);
  }
  return parseConfig(doc, env);
}
