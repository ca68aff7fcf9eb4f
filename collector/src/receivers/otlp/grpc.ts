// OTLP/gRPC server on @grpc/grpc-js with raw-bytes (de)serialisers, so decoding is our own codec
// and a malformed message is an INVALID_ARGUMENT, not a crash. Refusals carry RetryInfo in
// grpc-status-details-bin when a delay is known (the Go exporter retries RESOURCE_EXHAUSTED only
// then). Messages over max_recv_msg_size are refused by grpc-js with RESOURCE_EXHAUSTED.
import * as grpc from '@grpc/grpc-js';
import type { SignalType } from '../../../../proto/src/model.ts';
import { countItems } from '../../../../proto/src/model.ts';
import { decodeSignal, encodeExportResponse } from '../../../../proto/src/otlp/index.ts';
import type { Consumer, Logger, RequestContext } from '../../component/index.ts';
import type { SelfTelemetry } from '../../telemetry/metrics.ts';
import { encodeStatusWithRetryInfo } from '../../util/pb.ts';
import { AuthError, resolveIdentity, type AuthConfig } from '../common/auth.ts';
import { GRPC, statusOf } from '../common/status.ts';
import type { GrpcProtocolConfig } from './config.ts';

export const OTLP_GRPC_PATHS: Record<SignalType, string> = {
  traces: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
  metrics: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
  logs: '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
};

const identity = (b: Buffer) => b;

export interface GrpcReceiverOptions {
  id: string;
  cfg: GrpcProtocolConfig;
  auth: AuthConfig;
  metadataKeys: string[];
  consumers: Partial<Record<SignalType, Consumer>>;
  logger: Logger;
  telemetry?: SelfTelemetry;
}

/** "ipv4:1.2.3.4:5", "1.2.3.4:5", "[::1]:5" → bare address. */
export function grpcPeerIp(peer: string): string {
  let p = peer.replace(/^ipv[46]:/, '');
  if (p.startsWith('[')) return p.slice(1, p.indexOf(']'));
  const i = p.lastIndexOf(':');
  if (i > 0 && p.indexOf(':') === i) p = p.slice(0, i);
  return p.startsWith('::ffff:') ? p.slice(7) : p;
}

export function grpcError(code: number, message: string, retryAfterMs?: number): grpc.ServiceError {
  const md = new grpc.Metadata();
  if (retryAfterMs !== undefined) md.set('grpc-status-details-bin', encodeStatusWithRetryInfo(code, message, retryAfterMs));
  return Object.assign(new Error(message), { code, details: message, metadata: md }) as grpc.ServiceError;
}

export class OtlpGrpcServer {
  private server?: grpc.Server;
  private boundPort = 0;
  private readonly requests?: import('../../telemetry/metrics.ts').MetricFamily;

  constructor(private readonly o: GrpcReceiverOptions) {
    this.requests = o.telemetry?.registry.counter('kscope_receiver_requests_total', 'Requests per receiver, transport and status code.');
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const server = new grpc.Server({ 'grpc.max_receive_message_length': this.o.cfg.maxRecvMsgSize });
    for (const signal of ['traces', 'metrics', 'logs'] as const) {
      const path = OTLP_GRPC_PATHS[signal];
      const def: grpc.ServiceDefinition = {
        Export: { path, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
      };
      server.addService(def, { Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => void this.export(signal, call, cb) });
    }
    const tls = this.o.cfg.tls;
    const creds = tls
      ? grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.requireClientCert)
      : grpc.ServerCredentials.createInsecure();
    const { host, port } = this.o.cfg.endpoint;
    this.boundPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.server = server;
    this.o.logger.info({ endpoint: `${host}:${this.boundPort}`, tls: !!tls }, 'OTLP/gRPC receiver listening');
  }

  async shutdown(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        s.forceShutdown();
        resolve();
      }, 5000);
      s.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private count(code: number): void {
    this.requests?.add({ receiver: this.o.id, transport: 'grpc', code: String(code) });
  }

  private fail(cb: grpc.sendUnaryData<Buffer>, code: number, message: string, retryAfterMs?: number): void {
    this.count(code);
    cb(grpcError(code, message, retryAfterMs));
  }

  private async export(signal: SignalType, call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): Promise<void> {
    try {
      const consumer = this.o.consumers[signal];
      if (!consumer) return this.fail(cb, GRPC.UNIMPLEMENTED, `no ${signal} pipeline on this receiver`);
      const header = (n: string) => {
        const v = call.metadata.get(n);
        return v.length ? String(v[0]) : undefined;
      };
      let id;
      try {
        id = resolveIdentity(this.o.auth, { header, clientCertCN: this.o.cfg.tls ? clientCN(call) : undefined });
      } catch (err) {
        if (err instanceof AuthError) return this.fail(cb, GRPC.UNAUTHENTICATED, err.message);
        throw err;
      }
      let data;
      try {
        data = decodeSignal(signal, call.request);
      } catch (err) {
        return this.fail(cb, GRPC.INVALID_ARGUMENT, `malformed OTLP ${signal} request: ${(err as Error).message}`);
      }
      const ctx: RequestContext = { bytes: call.request.length, peerAddress: grpcPeerIp(call.getPeer()) };
      if (id.tenant !== undefined) ctx.tenant = id.tenant;
      if (id.tier !== undefined) ctx.tier = id.tier;
      if (this.o.metadataKeys.length) {
        const md: Record<string, string> = {};
        for (const k of this.o.metadataKeys) {
          const v = header(k);
          if (v !== undefined) md[k] = v;
        }
        ctx.metadata = md;
      }
      const deadline = call.getDeadline();
      if (deadline instanceof Date) ctx.deadline = deadline.getTime();
      else if (typeof deadline === 'number' && Number.isFinite(deadline)) ctx.deadline = deadline;
      const items = countItems(signal, data);
      const labels = { kind: 'receiver', component: this.o.id, pipeline: '', signal, tenant: ctx.tenant ?? '' };
      try {
        await consumer.consume(data, ctx);
      } catch (err) {
        const st = statusOf(err);
        (st.grpc === GRPC.INVALID_ARGUMENT ? this.o.telemetry?.dropped : this.o.telemetry?.refused)?.add(labels, items);
        return this.fail(cb, st.grpc, st.message, st.retryAfterMs);
      }
      this.o.telemetry?.accepted.add(labels, items);
      this.count(GRPC.OK);
      cb(null, encodeExportResponse());
    } catch (err) {
      this.o.logger.error({ err }, 'OTLP/gRPC export failed');
      this.fail(cb, GRPC.INTERNAL, 'internal error');
    }
  }
}

function clientCN(call: grpc.ServerUnaryCall<Buffer, Buffer>): string | undefined {
  const c = call as unknown as { getAuthContext?: () => { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } };
  const cn = c.getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn || undefined;
}
