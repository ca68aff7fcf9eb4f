// otelarrow receiver: OTel Arrow (OTAP) streams plus plain OTLP/gRPC on one port, on the
// proto/src/grpc adapters (addOtapServices, addOtlpServices). Each decoded batch carries the
// stream's gRPC metadata and per-batch HPACK headers in ctx.metadata; tenant identity is resolved
// from them (bearer token map or header; mTLS is available on the otlp receiver). A refused tenant
// answers PermanentError: BatchStatus INVALID_ARGUMENT on OTAP, INVALID_ARGUMENT on OTLP (the
// generic mapping has no UNAUTHENTICATED); both are never retried by senders, which is the point.
import type { SignalData, SignalType } from '../../../../proto/src/model.ts';
import { countItems } from '../../../../proto/src/model.ts';
import { bindServer, createGrpcServer, shutdownServer } from '../../../../proto/src/grpc/common.ts';
import { addOtapServices, type OtapServerStats } from '../../../../proto/src/grpc/otap-server.ts';
import { addOtlpServices } from '../../../../proto/src/grpc/otlp-server.ts';
import { PermanentError } from '../../component/errors.ts';
import type { Component, Consumer, CreateSettings, ReceiverFactory, RequestContext } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import { AuthError, readAuthConfig, resolveIdentity, type AuthConfig } from '../common/auth.ts';
import { SharedRegistry, type SharedServer } from '../common/shared.ts';
import { statusOf } from '../common/status.ts';
import { parseEndpoint, type Endpoint } from '../otlp/config.ts';

export interface OtelArrowReceiverConfig {
  endpoint: Endpoint;
  maxRecvMsgSize: number;
  /** Decompressed Arrow bytes per batch (arrow.memory_limit_mib in contrib). */
  maxBatchBytes: number;
  maxInFlightPerStream: number;
  auth: AuthConfig;
  metadataKeys: string[];
}

export function validateOtelArrowReceiverConfig(raw: unknown, path: string): OtelArrowReceiverConfig {
  const r = new ConfigReader(raw, path);
  const p = r.sub('protocols');
  const g = p.sub('grpc');
  const a = p.sub('arrow');
  const cfg: OtelArrowReceiverConfig = {
    endpoint: parseEndpoint(g.str('endpoint', '127.0.0.1:4317'), g.field('endpoint')),
    maxRecvMsgSize: g.size('max_recv_msg_size', 16 * 1024 * 1024),
    maxBatchBytes: a.num('memory_limit_mib', 128, { min: 1 }) * 1024 * 1024,
    maxInFlightPerStream: a.num('max_in_flight_per_stream', 16, { min: 1, integer: true }),
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
  port = 0;

  constructor(private readonly settings: CreateSettings, private readonly cfg: OtelArrowReceiverConfig) {}

  private async handle<S extends SignalType>(signal: S, data: SignalData[S], base: RequestContext, transport: string): Promise<void> {
    const consumer = this.consumers[signal];
    if (!consumer) throw new PermanentError(`no ${signal} pipeline on this receiver`);
    const md = base.metadata ?? {};
    let id;
    try {
      id = resolveIdentity(this.cfg.auth, { header: (n) => md[n] });
    } catch (err) {
      if (err instanceof AuthError) throw new PermanentError(`unauthenticated: ${err.message}`);
      throw err;
    }
    const ctx: RequestContext = {};
    if (base.bytes !== undefined) ctx.bytes = base.bytes;
    if (base.peerAddress) ctx.peerAddress = base.peerAddress.startsWith('::ffff:') ? base.peerAddress.slice(7) : base.peerAddress;
    if (base.deadline !== undefined) ctx.deadline = base.deadline;
    if (id.tenant !== undefined) ctx.tenant = id.tenant;
    if (id.tier !== undefined) ctx.tier = id.tier;
    const keep: Record<string, string> = {};
    for (const k of this.cfg.metadataKeys) if (md[k] !== undefined) keep[k] = md[k];
    ctx.metadata = keep;
    const tel = this.settings.telemetry;
    const labels = { kind: 'receiver', component: this.settings.id, pipeline: '', signal, tenant: ctx.tenant ?? '' };
    const items = countItems(signal, data);
    try {
      await consumer.consume(data as never, ctx);
      tel?.accepted.add(labels, items);
      tel?.registry.counter('kscope_receiver_requests_total', 'Requests per receiver, transport and status code.').add({ receiver: this.settings.id, transport, code: '0' });
    } catch (err) {
      const st = statusOf(err);
      (st.http === 400 ? tel?.dropped : tel?.refused)?.add(labels, items);
      throw err;
    }
  }

  async start(): Promise<void> {
    const server = createGrpcServer({ maxReceiveMessageBytes: this.cfg.maxRecvMsgSize });
    this.stats = addOtapServices(server, (signal, data, ctx) => this.handle(signal, data, ctx, 'otap'), {
      maxBatchBytes: this.cfg.maxBatchBytes,
      maxInFlightPerStream: this.cfg.maxInFlightPerStream,
      onRefused: (signal, status) => this.settings.logger.debug({ signal, status: status.statusCode, message: status.statusMessage }, 'OTAP batch refused'),
    });
    addOtlpServices(server, { handler: (signal, data, ctx) => this.handle(signal, data, ctx, 'grpc') });
    const { host, port } = this.cfg.endpoint;
    this.port = await bindServer(server, `${host.includes(':') ? `[${host}]` : host}:${port}`);
    this.server = server;
    this.settings.logger.info({ endpoint: `${host}:${this.port}` }, 'OTel Arrow receiver listening (OTAP + OTLP/gRPC)');
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
