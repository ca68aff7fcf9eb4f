// otlphttp exporter: POST {endpoint}/v1/{traces,metrics,logs} with OTLP protobuf (or JSON),
// optionally gzip-compressed, behind the exporterhelper. 429, 502, 503, 504 are retried honouring
// Retry-After (OTLP/HTTP spec); other 4xx are permanent.
import { gzipSync } from 'node:zlib';
import type { SignalData, SignalType } from '../../../../proto/src/model.ts';
import { decodeExportResponse, encodeJson, encodeSignal } from '../../../../proto/src/otlp/index.ts';
import { ConfigError, PermanentError, RetryableError, ThrottledError } from '../../component/errors.ts';
import type { CreateSettings, ExporterFactory, RequestContext } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import { QueuedExporter, readExporterHelperConfig, type ExporterHelperConfig, type PartialRejection } from '../../exporterhelper/index.ts';
import { otlpBatchCodec } from '../../exporterhelper/otlp-codec.ts';

export interface OtlpHttpExporterConfig {
  endpoint: string;
  encoding: 'proto' | 'json';
  compression: 'gzip' | 'none';
  headers: Record<string, string>;
  tenantHeader: string;
  helper: ExporterHelperConfig;
}

export function validateOtlpHttpExporterConfig(raw: unknown, path: string): OtlpHttpExporterConfig {
  const r = new ConfigReader(raw, path);
  const endpoint = r.str('endpoint', '').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(endpoint)) throw new ConfigError(r.field('endpoint'), `expected an http(s) URL, got ${JSON.stringify(endpoint)}`);
  const cfg: OtlpHttpExporterConfig = {
    endpoint,
    encoding: r.oneOf('encoding', ['proto', 'json'] as const, 'proto'),
    compression: r.oneOf('compression', ['gzip', 'none'] as const, 'gzip'),
    headers: Object.fromEntries(r.strMap('headers')),
    tenantHeader: r.str('tenant_header', ''),
    helper: readExporterHelperConfig(r),
  };
  r.done();
  return cfg;
}

function retryAfterMs(h: string | null): number | undefined {
  if (!h) return undefined;
  const n = Number(h);
  if (Number.isFinite(n)) return n * 1000;
  const d = Date.parse(h);
  return Number.isFinite(d) ? Math.max(0, d - Date.now()) : undefined;
}

export function createOtlpHttpExporter<S extends SignalType>(settings: CreateSettings, cfg: OtlpHttpExporterConfig, signal: S): QueuedExporter<S> {
  const url = `${cfg.endpoint}/v1/${signal}`;
  const push = async (batch: SignalData[S], ctx: RequestContext, abort: AbortSignal) => {
    let body: Buffer = cfg.encoding === 'json' ? Buffer.from(encodeJson(signal, batch)) : encodeSignal(signal, batch);
    const headers: Record<string, string> = { 'Content-Type': cfg.encoding === 'json' ? 'application/json' : 'application/x-protobuf', ...cfg.headers };
    if (cfg.compression === 'gzip') {
      body = gzipSync(body);
      headers['Content-Encoding'] = 'gzip';
    }
    if (cfg.tenantHeader && ctx.tenant) headers[cfg.tenantHeader] = ctx.tenant;
    let res: Response;
    try {
      res = await fetch(url, { method: "POST", headers, body: body as unknown as RequestInit['body'], signal: abort });
    } catch (err) {
      throw new RetryableError(`OTLP/HTTP export to ${url} failed: ${(err as Error).message}`, undefined, { cause: err });
    }
    const text = res.ok ? '' : (await res.text().catch(() => '')).slice(0, 300);
    if (res.ok) return partialRejection(await res.arrayBuffer().catch(() => undefined), cfg.encoding === 'json');
    const ra = retryAfterMs(res.headers.get('retry-after'));
    if (res.status === 429) throw new ThrottledError(`OTLP/HTTP ${url}: 429 ${text}`, ra ?? 1000);
    if (res.status === 502 || res.status === 503 || res.status === 504) throw new RetryableError(`OTLP/HTTP ${url}: ${res.status} ${text}`, ra);
    throw new PermanentError(`OTLP/HTTP ${url}: ${res.status} ${text}`);
  };
  return new QueuedExporter(settings, cfg.helper, signal, push, { codec: otlpBatchCodec });
}

/**
 * The partial success in a 200 response body, if the backend rejected part of the request. A
 * body that does not parse counts as full success: the backend did accept the request.
 */
function partialRejection(body: ArrayBuffer | undefined, json: boolean): PartialRejection | undefined {
  if (!body || body.byteLength === 0) return undefined;
  try {
    if (json) {
      const ps = (JSON.parse(Buffer.from(body).toString('utf8')) as { partialSuccess?: Record<string, unknown> }).partialSuccess;
      if (!ps) return undefined;
      const rejected = Number(ps.rejectedSpans ?? ps.rejectedDataPoints ?? ps.rejectedLogRecords ?? 0);
      const message = typeof ps.errorMessage === 'string' ? ps.errorMessage : '';
      return rejected > 0 || message ? { rejectedItems: Number.isFinite(rejected) ? rejected : 0, message } : undefined;
    }
    const ps = decodeExportResponse(new Uint8Array(body));
    return ps ? { rejectedItems: Number(ps.rejected), message: ps.errorMessage } : undefined;
  } catch {
    return undefined;
  }
}

export const otlpHttpExporterFactory: ExporterFactory<OtlpHttpExporterConfig> = {
  type: 'otlphttp',
  kind: 'exporter',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => validateOtlpHttpExporterConfig({ endpoint: 'http://127.0.0.1:4318' }, 'exporters.otlphttp'),
  validate: validateOtlpHttpExporterConfig,
  create: (settings, cfg, signal) => createOtlpHttpExporter(settings, cfg, signal),
};
