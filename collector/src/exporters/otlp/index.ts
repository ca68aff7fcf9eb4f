// otlp exporter: OTLP/gRPC client (towards Jaeger, another collector, ...) on @grpc/grpc-js with
// raw-bytes serialisers over our OTLP codec, behind the exporterhelper (queue, retry, timeout).
// Status mapping (as otelcol's otlpexporter): UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, CANCELLED,
// OUT_OF_RANGE, DATA_LOSS → retry; RESOURCE_EXHAUSTED → retry only with RetryInfo (its delay
// honoured), else permanent; everything else permanent.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { SignalData, SignalType } from '../../../../proto/src/model.ts';
import { ConfigError, RetryableError } from '../../component/errors.ts';
import type { CreateSettings, ExporterFactory, Logger, RequestContext } from '../../component/index.ts';
import { ConfigReader, type Raw } from '../../config/reader.ts';
import { QueuedExporter, readExporterHelperConfig, type ExporterHelperConfig, type PartialRejection } from '../../exporterhelper/index.ts';
import { otlpBatchCodec } from '../../exporterhelper/otlp-codec.ts';
import { grpcErrorToPipelineError, type ClientKeepalive } from '../../../../proto/src/grpc/common.ts';
import { OtlpGrpcClient } from '../../../../proto/src/grpc/otlp-client.ts';

export interface OtlpGrpcClientConfig {
  endpoint: string;
  insecure: boolean;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  headers: Record<string, string>;
  compression: 'gzip' | 'none';
  /** Forward the request's tenant in this header (e.g. x-scope-orgid); empty = don't. */
  tenantHeader: string;
  /** HTTP/2 pings (time 0 = off); none when absent. */
  keepalive?: ClientKeepalive;
}

export interface OtlpExporterConfig {
  client: OtlpGrpcClientConfig;
  helper: ExporterHelperConfig;
}

export function readGrpcClientConfig(r: ConfigReader): OtlpGrpcClientConfig {
  const endpoint = r.str('endpoint', '');
  if (!endpoint) throw new ConfigError(r.field('endpoint'), 'is required (host:port)');
  const t = r.sub('tls');
  const cfg: OtlpGrpcClientConfig = {
    endpoint: endpoint.replace(/^(https?|grpc):\/\//, ''),
    insecure: t.bool('insecure', false),
    caFile: t.str('ca_file'),
    certFile: t.str('cert_file'),
    keyFile: t.str('key_file'),
    headers: Object.fromEntries(r.strMap('headers')),
    compression: r.oneOf('compression', ['gzip', 'none'] as const, 'gzip'),
    tenantHeader: r.str('tenant_header', '').toLowerCase(),
    keepalive: readClientKeepalive(r.sub('keepalive')),
  };
  t.done();
  if (!/^[^:]+:\d+$|^\[[^\]]+\]:\d+$/.test(cfg.endpoint)) throw new ConfigError(r.field('endpoint'), `expected host:port, got ${JSON.stringify(endpoint)}`);
  return cfg;
}

/**
 * `keepalive`: the otelcol client defaults (ping after 10 s without reads, 10 s for the ack, not
 * while no call is open). Without pings a connection whose peer vanished stays "ready" until
 * TCP gives up retransmitting, many minutes in which every send on it times out.
 */
export function readClientKeepalive(k: ConfigReader): ClientKeepalive {
  const cfg: ClientKeepalive = {
    timeMs: k.duration('time', 10_000),
    timeoutMs: k.duration('timeout', 10_000),
    permitWithoutStream: k.bool('permit_without_stream', false),
  };
  if (cfg.timeMs > 0 && cfg.timeoutMs <= 0) throw new ConfigError(k.field('timeout'), 'must be positive when keepalive.time is set');
  k.done();
  return cfg;
}

export function validateOtlpExporterConfig(raw: unknown, path: string): OtlpExporterConfig {
  const r = new ConfigReader(raw, path);
  const client = readGrpcClientConfig(r);
  const helper = readExporterHelperConfig(r);
  r.done();
  return { client, helper };
}

/** Maps a gRPC client error to the pipeline error classes (proto/src/grpc mapping), naming the target. */
export function errorFromGrpc(err: grpc.ServiceError, what: string): Error {
  const e = grpcErrorToPipelineError(err);
  e.message = `${what}: ${e.message}`;
  return e;
}

/** Channel credentials for a client config: plain, TLS, or mTLS with a client certificate. */
export function grpcClientCredentials(cfg: OtlpGrpcClientConfig): grpc.ChannelCredentials {
  if (cfg.insecure) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(
    cfg.caFile ? readFileSync(cfg.caFile) : null,
    cfg.keyFile ? readFileSync(cfg.keyFile) : null,
    cfg.certFile ? readFileSync(cfg.certFile) : null,
  );
}

/**
 * One gRPC connection exporting one signal, on the proto/src/grpc OtlpGrpcClient (16 MiB HTTP/2
 * window: grpc-js's 64 KiB default costs round trips and CPU on 100 KiB+ requests). Used by the
 * otlp exporter and as the load-balancing exporter's per-backend sender.
 */
export class OtlpGrpcSender<S extends SignalType> {
  private readonly client: OtlpGrpcClient;

  constructor(readonly cfg: OtlpGrpcClientConfig, readonly signal: S) {
    this.client = new OtlpGrpcClient({ address: cfg.endpoint, credentials: grpcClientCredentials(cfg), compression: cfg.compression, headers: cfg.headers, keepalive: cfg.keepalive, maxSendMessageBytes: 64 * 1024 * 1024 });
  }

  /** Resolves with the backend's partial success, if it rejected part of the batch. */
  send(batch: SignalData[S], ctx: RequestContext, abort: AbortSignal): Promise<PartialRejection | undefined> {
    const headers = this.cfg.tenantHeader && ctx.tenant ? { [this.cfg.tenantHeader]: ctx.tenant } : undefined;
    const timeoutMs = ctx.deadline ? Math.max(1, ctx.deadline - Date.now()) : 10_000;
    const call = this.client.export(this.signal, batch, { headers, timeoutMs }).then(
      (ps): PartialRejection | undefined => (ps ? { rejectedItems: Number(ps.rejected), message: ps.errorMessage } : undefined),
      (err: Error) => {
        err.message = `OTLP/gRPC export to ${this.cfg.endpoint}: ${err.message}`;
        throw err;
      },
    );
    if (abort.aborted) return Promise.reject(new RetryableError('aborted'));
    // An abort (shutdown, backend removed) gives up at once; the call itself ends by its deadline.
    return new Promise<PartialRejection | undefined>((resolve, reject) => {
      const onAbort = () => reject(new RetryableError(`OTLP/gRPC export to ${this.cfg.endpoint} aborted`));
      abort.addEventListener('abort', onAbort, { once: true });
      call.then(resolve, reject).finally(() => abort.removeEventListener('abort', onAbort));
    });
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

/** EndpointSenderFactory for the load-balancing exporter: `protocol` is its `protocol.otlp` section. */
export function otlpGrpcSenderFactory<S extends SignalType>(endpoint: string, signal: S, protocol: Raw, _logger: Logger): OtlpGrpcSender<S> {
  return new OtlpGrpcSender(readOtlpSenderConfig(protocol, endpoint), signal);
}

/**
 * The load-balancing exporter's `protocol.otlp` for one backend: the otlp exporter's client keys,
 * plaintext unless `tls` says otherwise. Also run at validation (with a stand-in endpoint), so a
 * typo fails `validate` instead of the first backend's start.
 */
export function readOtlpSenderConfig(protocol: Raw, endpoint: string, path = 'exporters.loadbalancing.protocol.otlp'): OtlpGrpcClientConfig {
  const r = new ConfigReader({ tls: { insecure: true }, ...protocol, endpoint }, path);
  const c = readGrpcClientConfig(r);
  // Queue/retry keys belong to the load balancer's own helper; accept and ignore them here.
  for (const k of ['timeout', 'retry_on_failure', 'sending_queue']) r.skip(k);
  r.done();
  return c;
}

export function createOtlpExporter<S extends SignalType>(settings: CreateSettings, cfg: OtlpExporterConfig, signal: S): QueuedExporter<S> {
  let sender: OtlpGrpcSender<S> | undefined;
  return new QueuedExporter(settings, cfg.helper, signal, (b, ctx, abort) => sender!.send(b, ctx, abort), {
    codec: otlpBatchCodec,
    start: async () => {
      sender = new OtlpGrpcSender(cfg.client, signal);
    },
    shutdown: async () => {
      await sender?.close();
    },
  });
}

export const otlpExporterFactory: ExporterFactory<OtlpExporterConfig> = {
  type: 'otlp',
  kind: 'exporter',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => validateOtlpExporterConfig({ endpoint: '127.0.0.1:4317' }, 'exporters.otlp'),
  validate: validateOtlpExporterConfig,
  create: (settings, cfg, signal) => createOtlpExporter(settings, cfg, signal),
};
