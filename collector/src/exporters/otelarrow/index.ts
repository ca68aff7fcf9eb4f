// otelarrow exporter: OTel Arrow (OTAP) streams — one long-lived bidirectional gRPC stream per
// signal, Arrow IPC with zstd body compression and delta dictionaries across batches, each batch
// acknowledged by a BatchStatus — behind the shared exporterhelper (queue, retry, persistent
// queue on disk). The agent's default transport to the collector.
import type { SignalType } from '../../../../proto/src/model.ts';
import { OtapClient } from '../../../../proto/src/grpc/otap-client.ts';
import type { CreateSettings, ExporterFactory } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import { QueuedExporter, readExporterHelperConfig, type ExporterHelperConfig } from '../../exporterhelper/index.ts';
import { otlpBatchCodec } from '../../exporterhelper/otlp-codec.ts';
import { grpcClientCredentials, readGrpcClientConfig, type OtlpGrpcClientConfig } from '../otlp/index.ts';

export interface OtelArrowExporterConfig {
  client: OtlpGrpcClientConfig;
  /** Arrow IPC body compression inside the stream (gRPC transport compression is separate). */
  payloadCompression: 'zstd' | 'none';
  zstdLevel: number;
  maxStreamLifetimeMs: number;
  maxInFlight: number;
  helper: ExporterHelperConfig;
}

export function validateOtelArrowExporterConfig(raw: unknown, path: string): OtelArrowExporterConfig {
  // Transport compression defaults to none: the Arrow payloads are already zstd-compressed.
  const base = raw && typeof raw === 'object' && !Array.isArray(raw) ? raw : {};
  const r = new ConfigReader({ compression: 'none', ...base }, path);
  const client = readGrpcClientConfig(r);
  const a = r.sub('arrow');
  const cfg: OtelArrowExporterConfig = {
    client,
    payloadCompression: a.oneOf('payload_compression', ['zstd', 'none'] as const, 'zstd'),
    zstdLevel: a.num('zstd_level', 3, { min: 1, max: 19, integer: true }),
    maxStreamLifetimeMs: a.duration('max_stream_lifetime', 30_000),
    maxInFlight: a.num('max_in_flight', 64, { min: 1, integer: true }),
    helper: readExporterHelperConfig(r),
  };
  a.done();
  r.done();
  return cfg;
}

export function createOtelArrowExporter<S extends SignalType>(settings: CreateSettings, cfg: OtelArrowExporterConfig, signal: S): QueuedExporter<S> {
  let client: OtapClient<S> | undefined;
  return new QueuedExporter(
    settings,
    cfg.helper,
    signal,
    async (batch, ctx, abort) => {
      const md = cfg.client.tenantHeader && ctx.tenant ? { [cfg.client.tenantHeader]: ctx.tenant } : undefined;
      await client!.send(batch, md, abort);
    },
    {
      codec: otlpBatchCodec,
      start: async () => {
        client = new OtapClient(cfg.client.endpoint, signal, {
          credentials: grpcClientCredentials(cfg.client),
          headers: cfg.client.headers,
          compression: cfg.payloadCompression,
          zstdLevel: cfg.zstdLevel,
          maxStreamLifetimeMs: cfg.maxStreamLifetimeMs,
          maxInFlight: cfg.maxInFlight,
          keepalive: cfg.client.keepalive,
          ...(cfg.client.compression === 'gzip' ? { channelOptions: { 'grpc.default_compression_algorithm': 2 } } : {}),
        });
      },
      shutdown: async () => {
        client?.close();
      },
    },
  );
}

export const otelArrowExporterFactory: ExporterFactory<OtelArrowExporterConfig> = {
  type: 'otelarrow',
  kind: 'exporter',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => validateOtelArrowExporterConfig({ endpoint: '127.0.0.1:4317' }, 'exporters.otelarrow'),
  validate: validateOtelArrowExporterConfig,
  create: (settings, cfg, signal) => createOtelArrowExporter(settings, cfg, signal),
};
