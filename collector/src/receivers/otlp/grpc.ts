// OTLP/gRPC receiver on the proto/src/grpc adapters (server with a large HTTP/2 window, request
// context from the call, pipeline error → status with RetryInfo). The Export handlers are
// registered here rather than through addOtlpServices because tenant authentication needs the call
// itself (mTLS peer certificate) and must answer UNAUTHENTICATED, which the generic mapping does
// not produce. A malformed message is INVALID_ARGUMENT; messages over max_recv_msg_size are
// refused by grpc-js with RESOURCE_EXHAUSTED.
import * as grpc from '@grpc/grpc-js';
import { bindServer, contextFromCall, createGrpcServer, errorToGrpcStatus, rawDeserialize, rawSerialize, shutdownServer } from '../../../../proto/src/grpc/common.ts';
import { OTLP_SERVICE_PATHS } from '../../../../proto/src/grpc/otlp-server.ts';
import type { SignalType } from '../../../../proto/src/model.ts';
import { countItems } from '../../../../proto/src/model.ts';
import { decodeSignal, encodeExportResponse } from '../../../../proto/src/otlp/index.ts';
import type { Consumer, Logger, RequestContext } from '../../component/index.ts';
import type { SelfTelemetry } from '../../telemetry/metrics.ts';
import { AuthError, resolveIdentity, type AuthConfig } from '../common/auth.ts';
import { GRPC, statusOf } from '../common/status.ts';
import type { GrpcProtocolConfig } from './config.ts';

export const OTLP_GRPC_PATHS = OTLP_SERVICE_PATHS;

export interface GrpcReceiverOptions {
  id: string;
  cfg: GrpcProtocolConfig;
  auth: AuthConfig;
  metadataKeys: string[];
  consumers: Partial<Record<SignalType, Consumer>>;
  logger: Logger;
  telemetry?: SelfTelemetry;
}

function unauthenticated(message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code: grpc.status.UNAUTHENTICATED, details: message, metadata: new grpc.Metadata() }) as grpc.ServiceError;
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
    const server = createGrpcServer({ maxReceiveMessageBytes: this.o.cfg.maxRecvMsgSize });
    for (const signal of ['traces', 'metrics', 'logs'] as const) {
      const path = OTLP_GRPC_PATHS[signal];
      const def: grpc.ServiceDefinition = {
        Export: { path, requestStream: false, responseStream: false, requestSerialize: rawSerialize, requestDeserialize: rawDeserialize, responseSerialize: rawSerialize, responseDeserialize: rawDeserialize },
      };
      server.addService(def, { Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => void this.export(signal, call, cb) });
    }
    const tls = this.o.cfg.tls;
    const creds = tls
      ? grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.requireClientCert)
      : grpc.ServerCredentials.createInsecure();
    const { host, port } = this.o.cfg.endpoint;
    this.boundPort = await bindServer(server, `${host.includes(':') ? `[${host}]` : host}:${port}`, creds);
    this.server = server;
    this.o.logger.info({ endpoint: `${host}:${this.boundPort}`, tls: !!tls }, 'OTLP/gRPC receiver listening');
  }

  async shutdown(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await shutdownServer(s, 5000);
  }

  private count(code: number): void {
    this.requests?.add({ receiver: this.o.id, transport: 'grpc', code: String(code) });
  }

  private fail(cb: grpc.sendUnaryData<Buffer>, err: unknown): void {
    const st = err instanceof Error && (err as grpc.ServiceError).code === grpc.status.UNAUTHENTICATED ? (err as grpc.ServiceError) : errorToGrpcStatus(err);
    this.count(st.code);
    cb(st as grpc.ServiceError);
  }

  private async export(signal: SignalType, call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): Promise<void> {
    try {
      const consumer = this.o.consumers[signal];
      if (!consumer) {
        const e = Object.assign(new Error(`no ${signal} pipeline on this receiver`), { code: grpc.status.UNIMPLEMENTED, details: `no ${signal} pipeline on this receiver`, metadata: new grpc.Metadata() });
        this.count(e.code);
        return cb(e);
      }
      const full = contextFromCall(call, call.request.length);
      const headers = full.metadata ?? {};
      let id;
      try {
        id = resolveIdentity(this.o.auth, { header: (n) => headers[n], clientCertCN: this.o.cfg.tls ? clientCN(call) : undefined });
      } catch (err) {
        if (err instanceof AuthError) return this.fail(cb, unauthenticated(err.message));
        throw err;
      }
      let data;
      try {
        data = decodeSignal(signal, call.request);
      } catch (err) {
        return this.fail(cb, err);
      }
      const ctx: RequestContext = { bytes: full.bytes };
      if (full.peerAddress) ctx.peerAddress = full.peerAddress.startsWith('::ffff:') ? full.peerAddress.slice(7) : full.peerAddress;
      if (full.deadline !== undefined) ctx.deadline = full.deadline;
      if (id.tenant !== undefined) ctx.tenant = id.tenant;
      if (id.tier !== undefined) ctx.tier = id.tier;
      if (this.o.metadataKeys.length) {
        const md: Record<string, string> = {};
        for (const k of this.o.metadataKeys) if (headers[k] !== undefined) md[k] = headers[k];
        ctx.metadata = md;
      }
      const items = countItems(signal, data);
      const labels = { kind: 'receiver', component: this.o.id, pipeline: '', signal, tenant: ctx.tenant ?? '' };
      try {
        await consumer.consume(data, ctx);
      } catch (err) {
        const st = statusOf(err);
        (st.grpc === GRPC.INVALID_ARGUMENT ? this.o.telemetry?.dropped : this.o.telemetry?.refused)?.add(labels, items);
        return this.fail(cb, err);
      }
      this.o.telemetry?.accepted.add(labels, items);
      this.count(GRPC.OK);
      cb(null, encodeExportResponse());
    } catch (err) {
      this.o.logger.error({ err }, 'OTLP/gRPC export failed');
      this.fail(cb, new Error('internal error'));
    }
  }
}

function clientCN(call: grpc.ServerUnaryCall<Buffer, Buffer>): string | undefined {
  const c = call as unknown as { getAuthContext?: () => { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } };
  const cn = c.getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn || undefined;
}
