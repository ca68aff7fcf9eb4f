// otelarrow receiver: OTel Arrow (OTAP) streams plus plain OTLP/gRPC on one port. OTAP streams run
// on proto/src/grpc addOtapServices; OTLP Export uses the otlp receiver's OtlpGrpcServices, so both
// receivers authenticate OTLP identically (UNAUTHENTICATED on a refused tenant). Server TLS and mTLS
// come from protocols.grpc.tls as on the otlp receiver. Tenant identity: for OTAP, the verified
// client certificate CN is read once per stream and set as the stream's base context tenant, so it
// applies to every batch; the stream's gRPC metadata and per-batch HPACK headers feed the bearer
// and header sources, resolved per batch in the configured source order. Each OTAP batch is
// authenticated (addOtapServices' authorize hook) once its HPACK headers are decoded and before any
// of its Arrow payloads is read, so an unauthenticated client never makes us decode Arrow data or
// grow dictionaries: it gets BatchStatus UNAUTHENTICATED, and its stream is ended if no batch of
// it had authenticated yet.
import type { SignalData, SignalType } from '../../../../proto/src/model.ts';
import { countItems } from '../../../../proto/src/model.ts';
import { DEFAULT_MAX_CONCURRENT_STREAMS, bindServer, createGrpcServer, shutdownServer, type ServerKeepalive } from '../../../../proto/src/grpc/common.ts';
import { addOtapServices, type OtapServerStats } from '../../../../proto/src/grpc/otap-server.ts';
import { DEFAULT_MAX_DICTIONARY_BYTES, DEFAULT_MAX_DICTIONARY_ENTRIES, DEFAULT_MAX_TOTAL_DICTIONARY_BYTES, DictionaryBudget } from '../../../../proto/src/otap/stream.ts';
import { ConfigError, PermanentError } from '../../component/errors.ts';
import type { Component, Consumer, CreateSettings, ReceiverFactory, RequestContext } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import { AuthError, readAuthConfig, resolveIdentity, type AuthConfig, type Identity } from '../common/auth.ts';
import { receiverContext } from '../common/context.ts';
import { readServerKeepalive } from '../common/keepalive.ts';
import { SharedRegistry, type SharedServer } from '../common/shared.ts';
import { statusOf } from '../common/status.ts';
import { grpcClientCertCN, grpcServerCredentials, readServerTls, type ServerTlsConfig } from '../common/tls.ts';
import { parseEndpoint, type Endpoint } from '../otlp/config.ts';
import { OtlpGrpcServices } from '../otlp/grpc.ts';

export interface OtelArrowReceiverConfig {
  endpoint: Endpoint;
  maxRecvMsgSize: number;
  /** Calls one connection may have open at once (grpc.max_concurrent_streams). */
  maxConcurrentStreamsPerConnection: number;
  /** protocols.grpc.keepalive: pings free the streams (and dictionaries) of clients that vanished. */
  keepalive: ServerKeepalive;
  /** Decompressed Arrow bytes per batch (arrow.memory_limit_mib in contrib). */
  maxBatchBytes: number;
  maxInFlightPerStream: number;
  /** Entries per Arrow dictionary for the life of one IPC stream (arrow.max_dictionary_entries). */
  maxDictionaryEntries: number;
  /** Bytes all dictionaries of one gRPC stream retain, estimated (arrow.max_dictionary_bytes). */
  maxDictionaryBytes: number;
  /** Bytes the dictionaries of all streams retain together (arrow.max_total_dictionary_bytes). */
  maxTotalDictionaryBytes: number;
  /** Open Arrow streams on this receiver, all signals together (arrow.max_concurrent_streams). */
  maxStreams: number;
  tls?: ServerTlsConfig;
  auth: AuthConfig;
  metadataKeys: string[];
}

/** A positive whole number of bytes: a plain integer or a size string such as "64MiB". */
function positiveBytes(r: ConfigReader, key: string, def: number): number {
  const v = typeof r.raw[key] === 'number' ? r.num(key, def, { min: 1, integer: true }) : r.size(key, def);
  if (v < 1) throw new ConfigError(r.field(key), `must be at least 1 byte, got ${v}`);
  return v;
}

export function validateOtelArrowReceiverConfig(raw: unknown, path: string): OtelArrowReceiverConfig {
  const r = new ConfigReader(raw, path);
  const p = r.sub('protocols');
  const g = p.sub('grpc');
  const a = p.sub('arrow');
  const cfg: OtelArrowReceiverConfig = {
    endpoint: parseEndpoint(g.str('endpoint', '127.0.0.1:4317'), g.field('endpoint')),
    maxRecvMsgSize: g.size('max_recv_msg_size', 16 * 1024 * 1024),
    maxConcurrentStreamsPerConnection: g.num('max_concurrent_streams', DEFAULT_MAX_CONCURRENT_STREAMS, { min: 1, integer: true }),
    keepalive: readServerKeepalive(g.sub('keepalive')),
    maxBatchBytes: a.num('memory_limit_mib', 128, { min: 1 }) * 1024 * 1024,
    maxInFlightPerStream: a.num('max_in_flight_per_stream', 16, { min: 1, integer: true }),
    maxDictionaryEntries: a.num('max_dictionary_entries', DEFAULT_MAX_DICTIONARY_ENTRIES, { min: 1, integer: true }),
    maxDictionaryBytes: positiveBytes(a, 'max_dictionary_bytes', DEFAULT_MAX_DICTIONARY_BYTES),
    maxTotalDictionaryBytes: positiveBytes(a, 'max_total_dictionary_bytes', DEFAULT_MAX_TOTAL_DICTIONARY_BYTES),
    maxStreams: a.num('max_concurrent_streams', 4096, { min: 1, integer: true }),
    tls: readServerTls(g),
    auth: readAuthConfig(r.sub('auth')),
    metadataKeys: r.strList('metadata_keys', ['x-scope-orgid']).map((k) => k.toLowerCase()),
  };
  g.done();
  a.done();
  p.done();
  r.done();
  return cfg;
}

export class OtelArrowServer implements SharedServer {
  readonly consumers: Partial<Record<SignalType, Consumer>> = {};
  private server?: ReturnType<typeof createGrpcServer>;
  stats?: OtapServerStats;
  /** Dictionary bytes all OTAP streams of this server retain (set on start). */
  dictionaryBudget?: DictionaryBudget;
  port = 0;

  constructor(private readonly settings: CreateSettings, private readonly cfg: OtelArrowReceiverConfig) {}

  /**
   * One OTAP batch, already authorized (authorize() passed for the same context, so resolving the
   * identity again cannot fail). `stream.tenant` is only ever the verified client certificate CN.
   */
  private async handle<S extends SignalType>(signal: S, data: SignalData[S], stream: RequestContext): Promise<void> {
    const consumer = this.consumers[signal];
    if (!consumer) throw new PermanentError(`no ${signal} pipeline on this receiver`);
    const md = stream.metadata ?? {};
    const ctx = receiverContext(stream, this.identityOf(stream), md, this.cfg.metadataKeys);
    const tel = this.settings.telemetry;
    const labels = { kind: 'receiver', component: this.settings.id, pipeline: '', signal, tenant: ctx.tenant ?? '' };
    const items = countItems(signal, data);
    try {
      await consumer.consume(data as never, ctx);
      tel?.accepted.add(labels, items);
      tel?.registry.counter('kscope_receiver_requests_total', 'Requests per receiver, transport and status code.').add({ receiver: this.settings.id, transport: 'otap', code: '0' });
    } catch (err) {
      const st = statusOf(err);
      (st.http === 400 ? tel?.dropped : tel?.refused)?.add(labels, items);
      throw err;
    }
  }

  /** The tenant of a batch, or null when it does not authenticate. */
  private tenantOf(stream: RequestContext): string | null {
    try {
      return this.identityOf(stream).tenant ?? '';
    } catch {
      return null;
    }
  }

  private identityOf(stream: RequestContext): Identity {
    const md = stream.metadata ?? {};
    return resolveIdentity(this.cfg.auth, { header: (n) => md[n], clientCertCN: stream.tenant });
  }

  /** Why a batch (stream metadata plus its HPACK headers) does not authenticate, or undefined when it does. */
  private authorize(stream: RequestContext): AuthError | undefined {
    try {
      this.identityOf(stream);
      return undefined;
    } catch (err) {
      if (err instanceof AuthError) return err;
      throw err;
    }
  }

  /** A refusing pipeline head (memory limiter), asked (after authorize) before a batch's model is built. */
  private refusal(signal: SignalType): Error | undefined {
    return this.consumers[signal]?.refusal?.();
  }

  /** Items refused before their model was built, under the batch's tenant. */
  private countRefused(signal: SignalType, items: number, stream: RequestContext): void {
    const labels = { kind: 'receiver', component: this.settings.id, pipeline: '', signal, tenant: this.tenantOf(stream) ?? '' };
    this.settings.telemetry?.refused.add(labels, items);
  }

  async start(): Promise<void> {
    const server = createGrpcServer({ maxReceiveMessageBytes: this.cfg.maxRecvMsgSize, maxConcurrentStreams: this.cfg.maxConcurrentStreamsPerConnection, keepalive: this.cfg.keepalive });
    const tls = this.cfg.tls;
    const id = this.settings.id;
    const requests = this.settings.telemetry?.registry.counter('kscope_receiver_requests_total', 'Requests per receiver, transport and status code.');
    const streamsRefused = this.settings.telemetry?.registry.counter('kscope_receiver_otap_streams_refused_total', 'OTel Arrow streams the receiver ended itself, per reason (max_streams, dictionary_limit, unauthenticated, invalid_headers).');
    // one budget for every stream of this receiver: streams × max_dictionary_bytes is no bound
    this.dictionaryBudget = new DictionaryBudget(this.cfg.maxTotalDictionaryBytes);
    this.stats = addOtapServices(server, (signal, data, ctx) => this.handle(signal, data, ctx), {
      maxBatchBytes: this.cfg.maxBatchBytes,
      maxInFlightPerStream: this.cfg.maxInFlightPerStream,
      maxDictionaryEntries: this.cfg.maxDictionaryEntries,
      maxDictionaryBytes: this.cfg.maxDictionaryBytes,
      dictionaryBudget: this.dictionaryBudget,
      maxStreams: this.cfg.maxStreams,
      onRefused: (signal, status) => {
        // Every non-OK BatchStatus, decode errors included (their items are unknown).
        requests?.add({ receiver: id, transport: 'otap', code: String(status.statusCode) });
        this.settings.logger.debug({ signal, status: status.statusCode, message: status.statusMessage }, 'OTAP batch refused');
      },
      onStreamRefused: (signal, reason, message) => {
        streamsRefused?.add({ receiver: id, signal, reason });
        this.settings.logger.debug({ signal, reason, message }, 'OTAP stream refused');
      },
      // identity first, before any Arrow payload of the batch is read (counted and logged by onRefused)
      authorize: (_signal, stream) => this.authorize(stream),
      // a refusing memory limiter answers before the batch's model objects are built
      refusal: (signal) => this.refusal(signal),
      onRefusedItems: (signal, items, stream) => this.countRefused(signal, items, stream),
      // The stream's identity from its TLS session, read once: a client cannot change it per batch
      // (HPACK headers only add metadata), and a tenant never rides in from the sender's metadata.
      streamContext: (call, base) => {
        const ctx: RequestContext = { ...base };
        delete ctx.tenant;
        const cn = tls ? grpcClientCertCN(call) : undefined;
        if (cn) ctx.tenant = cn;
        return ctx;
      },
    });
    new OtlpGrpcServices({ id: this.settings.id, auth: this.cfg.auth, metadataKeys: this.cfg.metadataKeys, consumers: this.consumers, logger: this.settings.logger, telemetry: this.settings.telemetry, tls: !!tls }).addTo(server);
    const { host, port } = this.cfg.endpoint;
    this.port = await bindServer(server, `${host.includes(':') ? `[${host}]` : host}:${port}`, grpcServerCredentials(tls));
    this.server = server;
    this.settings.logger.info({ endpoint: `${host}:${this.port}`, tls: !!tls, clientCert: tls ? (tls.requireClientCert ? 'required' : tls.clientCa ? 'optional' : 'none') : 'none' }, 'OTel Arrow receiver listening (OTAP + OTLP/gRPC)');
  }

  async shutdown(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await shutdownServer(s, 5000);
  }
}

const servers = new SharedRegistry<OtelArrowServer>();

export class OtelArrowReceiver implements Component {
  private readonly handle: ReturnType<SharedRegistry<OtelArrowServer>['acquire']>;

  constructor(settings: CreateSettings, cfg: OtelArrowReceiverConfig, signal: SignalType, next: Consumer) {
    this.handle = servers.acquire(cfg, () => new OtelArrowServer(settings, cfg));
    this.handle.server.consumers[signal] = next;
  }

  get server(): OtelArrowServer {
    return this.handle.server;
  }

  start(): Promise<void> {
    return this.handle.start();
  }

  shutdown(): Promise<void> {
    return this.handle.shutdown();
  }
}

export const otelArrowReceiverFactory: ReceiverFactory<OtelArrowReceiverConfig> = {
  type: 'otelarrow',
  kind: 'receiver',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => validateOtelArrowReceiverConfig({}, 'receivers.otelarrow'),
  validate: validateOtelArrowReceiverConfig,
  create: (settings, cfg, signal, next) => new OtelArrowReceiver(settings, cfg, signal, next as Consumer),
};
