// OTLP/gRPC receiver on the proto/src/grpc adapters (server with a large HTTP/2 window, request
// context from the call, pipeline error → status with RetryInfo). The Export handlers are
// registered here rather than through addOtlpServices because tenant authentication needs the call
// itself (mTLS peer certificate) and must answer UNAUTHENTICATED, which the generic mapping does
// not produce. A malformed message is INVALID_ARGUMENT; messages over max_recv_msg_size are
// refused by grpc-js with RESOURCE_EXHAUSTED. OtlpGrpcServices is also mounted by the otelarrow
// receiver next to its Arrow streams, so both ports authenticate OTLP the same way.
import * as grpc from '@grpc/grpc-js';
import { bindServer, contextFromCall, createGrpcServer, errorToGrpcStatus, rawDeserialize, rawSerialize, shutdownServer } from '../../../../proto/src/grpc/common.ts';
import { OTLP_SERVICE_PATHS } from '../../../../proto/src/grpc/otlp-server.ts';
import type { SignalType } from '../../../../proto/src/model.ts';
import { countItems } from '../../../../proto/src/model.ts';
import { decodeSignal, encodeExportResponse } from '../../../../proto/src/otlp/index.ts';
import { countEncodedItems } from '../../../../proto/src/otlp/count.ts';
import type { Consumer, Logger } from '../../component/index.ts';
import type { MetricFamily, SelfTelemetry } from '../../telemetry/metrics.ts';
import { AuthError, resolveIdentity, type AuthConfig } from '../common/auth.ts';
import { receiverContext } from '../common/context.ts';
import { GRPC, statusOf } from '../common/status.ts';
import { grpcClientCertCN, grpcServerCredentials } from '../common/tls.ts';
import type { GrpcProtocolConfig } from './config.ts';

export const OTLP_GRPC_PATHS = OTLP_SERVICE_PATHS;

export interface OtlpGrpcServiceOptions {
  id: string;
  auth: AuthConfig;
  metadataKeys: string[];
  consumers: Partial<Record<SignalType, Consumer>>;
  logger: Logger;
  telemetry?: SelfTelemetry;
  /** The server has TLS: read the verified client certificate CN (auth source `mtls`). */
  tls: boolean;
}

export interface GrpcReceiverOptions extends Omit<OtlpGrpcServiceOptions, 'tls'> {
  cfg: GrpcProtocolConfig;
}

function unauthenticated(message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code: grpc.status.UNAUTHENTICATED, details: message, metadata: new grpc.Metadata() }) as grpc.ServiceError;
}

/** The three OTLP Export services with tenant authentication, for any grpc-js server. */
export class OtlpGrpcServices {
  private readonly requests?: MetricFamily;

  constructor(private readonly o: OtlpGrpcServiceOptions) {
    this.requests = o.telemetry?.registry.counter('kscope_receiver_requests_total', 'Requests per receiver, transport and status code.');
  }

  addTo(server: grpc.Server): void {
    for (const signal of ['traces', 'metrics', 'logs'] as const) {
      const path = OTLP_GRPC_PATHS[signal];
      const def: grpc.ServiceDefinition = {
        Export: { path, requestStream: false, responseStream: false, requestSerialize: rawSerialize, requestDeserialize: rawDeserialize, responseSerialize: rawSerialize, responseDeserialize: rawDeserialize },
      };
      server.addService(def, { Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => void this.export(signal, call, cb) });
    }
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
        id = resolveIdentity(this.o.auth, { header: (n) => headers[n], clientCertCN: this.o.tls ? grpcClientCertCN(call) : undefined });
      } catch (err) {
        if (err instanceof AuthError) return this.fail(cb, unauthenticated(err.message));
        throw err;
      }
      const refusal = consumer.refusal?.();
      if (refusal) {
        // refused before decoding: the items are counted from the encoding
        this.o.telemetry?.refused.add({ kind: 'receiver', component: this.o.id, pipeline: '', signal, tenant: id.tenant ?? '' }, Math.max(0, countEncodedItems(signal, call.request)));
        return this.fail(cb, refusal);
      }
      let data;
      try {
        data = decodeSignal(signal, call.request);
      } catch (err) {
        return this.fail(cb, err);
      }
      const ctx = receiverContext(full, id, headers, this.o.metadataKeys);
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

export class OtlpGrpcServer {
  private server?: grpc.Server;
  private boundPort = 0;

  constructor(private readonly o: GrpcReceiverOptions) {}

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const server = createGrpcServer({ maxReceiveMessageBytes: this.o.cfg.maxRecvMsgSize, maxConcurrentStreams: this.o.cfg.maxConcurrentStreams, keepalive: this.o.cfg.keepalive });
    const tls = this.o.cfg.tls;
    new OtlpGrpcServices({ ...this.o, tls: !!tls }).addTo(server);
    const { host, port } = this.o.cfg.endpoint;
    this.boundPort = await bindServer(server, `${host.includes(':') ? `[${host}]` : host}:${port}`, grpcServerCredentials(tls));
    this.server = server;
    this.o.logger.info({ endpoint: `${host}:${this.boundPort}`, tls: !!tls }, 'OTLP/gRPC receiver listening');
  }

  async shutdown(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await shutdownServer(s, 5000);
  }
}
