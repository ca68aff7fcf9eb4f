// OTLP receiver config: protocols.grpc / protocols.http (either or both), auth, metadata keys.
import { DEFAULT_MAX_CONCURRENT_STREAMS, type ServerKeepalive } from '../../../../proto/src/grpc/common.ts';
import { ConfigError } from '../../component/errors.ts';
import { ConfigReader } from '../../config/reader.ts';
import { readAuthConfig, type AuthConfig } from '../common/auth.ts';
import { readServerTls, type ServerTlsConfig } from '../common/tls.ts';
import { readServerKeepalive } from '../common/keepalive.ts';

export interface Endpoint {
  host: string;
  port: number;
}

export interface GrpcProtocolConfig {
  endpoint: Endpoint;
  maxRecvMsgSize: number;
  /** Calls one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
  keepalive: ServerKeepalive;
  tls?: ServerTlsConfig;
}

export interface HttpProtocolConfig {
  endpoint: Endpoint;
  maxRequestBodySize: number;
  tls?: ServerTlsConfig;
  paths: { traces: string; metrics: string; logs: string };
}

export interface OtlpReceiverConfig {
  grpc?: GrpcProtocolConfig;
  http?: HttpProtocolConfig;
  auth: AuthConfig;
  /** Request headers copied (lower-cased) into RequestContext.metadata for routing. */
  metadataKeys: string[];
}

export function parseEndpoint(v: string, field: string): Endpoint {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v.trim());
  if (!m) throw new ConfigError(field, `expected host:port, got ${JSON.stringify(v)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(field, `port out of range: ${port}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function validateOtlpReceiverConfig(raw: unknown, path: string): OtlpReceiverConfig {
  const r = new ConfigReader(raw, path);
  const p = r.sub('protocols');
  const cfg: OtlpReceiverConfig = { auth: undefined as unknown as AuthConfig, metadataKeys: [] };
  if (p.has('grpc') || p.raw.grpc === null) {
    const g = p.sub('grpc');
    cfg.grpc = {
      endpoint: parseEndpoint(g.str('endpoint', '127.0.0.1:4317'), g.field('endpoint')),
      maxRecvMsgSize: g.size('max_recv_msg_size', 4 * 1024 * 1024),
      maxConcurrentStreams: g.num('max_concurrent_streams', DEFAULT_MAX_CONCURRENT_STREAMS, { min: 1, integer: true }),
      keepalive: readServerKeepalive(g.sub('keepalive')),
      tls: readServerTls(g),
    };
    g.done();
  } else p.skip('grpc');
  if (p.has('http') || p.raw.http === null) {
    const h = p.sub('http');
    cfg.http = {
      endpoint: parseEndpoint(h.str('endpoint', '127.0.0.1:4318'), h.field('endpoint')),
      maxRequestBodySize: h.size('max_request_body_size', 10 * 1024 * 1024),
      tls: readServerTls(h),
      paths: { traces: h.str('traces_url_path', '/v1/traces'), metrics: h.str('metrics_url_path', '/v1/metrics'), logs: h.str('logs_url_path', '/v1/logs') },
    };
    h.done();
  } else p.skip('http');
  p.done();
  if (!cfg.grpc && !cfg.http) throw new ConfigError(p.path, 'at least one of grpc or http must be configured');
  cfg.auth = readAuthConfig(r.sub('auth'));
  cfg.metadataKeys = r.strList('metadata_keys', ['x-scope-orgid']).map((k) => k.toLowerCase());
  r.done();
  return cfg;
}
