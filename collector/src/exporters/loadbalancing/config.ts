// Configuration of the load-balancing exporter. The per-endpoint queue / retry / timeout use the
// collector's exporterhelper section (timeout, retry_on_failure, sending_queue) and apply to
// every backend separately (sending_queue.storage: one directory per backend, see exporter.ts).
import { ConfigError } from '../../component/errors.ts';
import { ConfigReader, type Raw } from '../../config/reader.ts';
import { defaultExporterHelperConfig, readExporterHelperConfig, type ExporterHelperConfig } from '../../exporterhelper/config.ts';
import type { RoutingKey } from './split.ts';
import { readOtlpSenderConfig } from '../otlp/index.ts';

export type ResolverConfig =
  | { type: 'static'; hostnames: string[] }
  | { type: 'dns'; hostname: string; port: number; intervalMs: number; timeoutMs: number }
  | { type: 'k8s'; service: string; ports: number[]; kubeconfig?: string };

export interface LoadBalancingConfig {
  /** Default: traceID for traces, service for metrics and logs (set per pipeline at create()). */
  routingKey?: RoutingKey;
  /** Ring points per backend: more → smoother spread, larger ring. */
  virtualNodes: number;
  /** How often one batch may be re-routed after its backend left the ring. */
  maxReroutes: number;
  /** Per-backend queue / retry / timeout. */
  helper: ExporterHelperConfig;
  /** The `protocol.otlp` section, handed to the per-backend client (tls, compression, headers...). */
  protocol: Raw;
  resolver: ResolverConfig;
}

export function defaultConfig(): LoadBalancingConfig {
  const helper = defaultExporterHelperConfig();
  // Backends come and go: retry sooner than the 5 s default so re-routing happens within the
  // queue's drain window.
  helper.retry.initialIntervalMs = 500;
  helper.retry.maxIntervalMs = 5000;
  helper.retry.maxElapsedMs = 60_000;
  return {
    virtualNodes: 150,
    maxReroutes: 3,
    helper,
    protocol: {},
    resolver: { type: 'static', hostnames: [] },
  };
}

const ROUTING_KEYS: readonly RoutingKey[] = ['traceID', 'service', 'resource'];

function port(v: number, field: string): number {
  if (!Number.isInteger(v) || v < 1 || v > 65535) throw new ConfigError(field, `expected a port 1..65535, got ${v}`);
  return v;
}

export function validateConfig(raw: unknown, path: string): LoadBalancingConfig {
  const c = defaultConfig();
  const r = new ConfigReader(raw, path);
  if (r.has('routing_key')) c.routingKey = r.oneOf('routing_key', ROUTING_KEYS, 'traceID');
  c.virtualNodes = r.num('virtual_nodes', c.virtualNodes, { min: 1, max: 10_000, integer: true });
  c.maxReroutes = r.num('max_reroutes', c.maxReroutes, { min: 0, max: 100, integer: true });
  c.helper = readExporterHelperConfig(r, c.helper);
  if (r.has('protocol')) {
    const p = r.sub('protocol');
    const o = p.sub('otlp');
    c.protocol = o.raw;
    for (const k of Object.keys(o.raw)) o.skip(k);
    if ('endpoint' in o.raw) throw new ConfigError(o.field('endpoint'), 'is set per backend by the resolver; remove it');
    readOtlpSenderConfig(o.raw, 'backend.invalid:4317', o.path); // the senders' own checks, now rather than at the first backend
    p.done();
  }
  const rr = r.sub('resolver');
  const kinds = ['static', 'dns', 'k8s'].filter((k) => rr.has(k));
  if (kinds.length !== 1) throw new ConfigError(rr.field(kinds.length ? kinds[1] : 'static'), 'configure exactly one of static, dns, k8s');
  const kind = kinds[0];
  const kr = rr.sub(kind);
  if (kind === 'static') {
    const hostnames = kr.strList('hostnames', []);
    if (hostnames.length === 0) throw new ConfigError(kr.field('hostnames'), 'list at least one host:port');
    hostnames.forEach((h, i) => {
      if (!/^(\[[0-9a-fA-F:.]+\]|[^\s:]+):\d{1,5}$/.test(h)) throw new ConfigError(`${kr.field('hostnames')}[${i}]`, `expected host:port, got ${JSON.stringify(h)}`);
    });
    c.resolver = { type: 'static', hostnames };
  } else if (kind === 'dns') {
    const hostname = kr.str('hostname');
    if (!hostname) throw new ConfigError(kr.field('hostname'), 'required');
    c.resolver = {
      type: 'dns', hostname,
      port: port(kr.num('port', 4317), kr.field('port')),
      intervalMs: kr.duration('interval', 5000),
      timeoutMs: kr.duration('timeout', 1000),
    };
    if (c.resolver.intervalMs < 100) throw new ConfigError(kr.field('interval'), 'must be ≥ 100ms');
  } else {
    const service = kr.str('service');
    if (!service || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$/.test(service))
      throw new ConfigError(kr.field('service'), 'expected a Service as name or name.namespace');
    const ports = (kr.skip('ports') ?? [4317]) as unknown;
    if (!Array.isArray(ports) || ports.length === 0) throw new ConfigError(kr.field('ports'), 'expected a non-empty list of ports');
    c.resolver = {
      type: 'k8s', service,
      ports: ports.map((p, i) => port(Number(p), `${kr.field('ports')}[${i}]`)),
      kubeconfig: kr.str('kubeconfig'),
    };
  }
  kr.done();
  rr.done();
  r.done();
  return c;
}
