// OTLP/gRPC server adapter: registers TraceService/MetricsService/LogsService Export on a grpc-js
// server, decodes requests with our codec and hands (signal, data, ctx) to one handler. The collector's
// otlp receiver is built on top; this layer only maps bytes and errors.
import * as grpc from '@grpc/grpc-js';
import type { SignalData, SignalType } from '../model.ts';
import type { RequestContext } from '../../../collector/src/component/index.ts';
import { decodeSignal } from '../otlp/decode.ts';
import { encodeExportResponse, type ExportPartialSuccess } from '../otlp/encode.ts';
import {
  bindServer,
  contextFromCall,
  createGrpcServer,
  errorToGrpcStatus,
  rawDeserialize,
  rawSerialize,
  shutdownServer,
  type GrpcServerOptions,
} from './common.ts';

export const OTLP_SERVICE_PATHS: Record<SignalType, string> = {
  traces: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
  metrics: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
  logs: '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
};

const SERVICE_NAMES: Record<SignalType, string> = {
  traces: 'opentelemetry.proto.collector.trace.v1.TraceService',
  metrics: 'opentelemetry.proto.collector.metrics.v1.MetricsService',
  logs: 'opentelemetry.proto.collector.logs.v1.LogsService',
};

/**
 * Receives one decoded request. Resolve (optionally with a partial success) to acknowledge; reject
 * with a PipelineError to answer with the mapped status.
 */
export type OtlpHandler = <S extends SignalType>(signal: S, data: SignalData[S], ctx: RequestContext) => Promise<void | ExportPartialSuccess>;

export interface OtlpServiceOptions {
  handler: OtlpHandler;
  /** Signals to serve; the others answer UNIMPLEMENTED. Default all three. */
  signals?: SignalType[];
  /** Called for every request that fails to decode (for counters / logs). */
  onDecodeError?: (signal: SignalType, err: Error, ctx: RequestContext) => void;
}

/** Adds the OTLP Export services to an existing grpc-js server (shared with other services). */
export function addOtlpServices(server: grpc.Server, opts: OtlpServiceOptions): void {
  for (const signal of opts.signals ?? (['traces', 'metrics', 'logs'] as const)) {
    const definition: grpc.ServiceDefinition = {
      Export: {
        path: OTLP_SERVICE_PATHS[signal],
        requestStream: false,
        responseStream: false,
        requestSerialize: rawSerialize,
        requestDeserialize: rawDeserialize,
        responseSerialize: rawSerialize,
        responseDeserialize: rawDeserialize,
        originalName: 'export',
      },
    };
    const exportHandler: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
      const ctx = contextFromCall(call, call.request.length);
      let data: SignalData[typeof signal];
      try {
        data = decodeSignal(signal, call.request);
      } catch (err) {
        opts.onDecodeError?.(signal, err as Error, ctx);
        callback(errorToGrpcStatus(err));
        return;
      }
      opts.handler(signal, data, ctx).then(
        (ps) => callback(null, encodeExportResponse(ps ?? undefined)),
        (err: unknown) => callback(errorToGrpcStatus(err)),
      );
    };
    server.addService(definition, { Export: exportHandler });
  }
}

export interface OtlpGrpcServerOptions extends OtlpServiceOptions, GrpcServerOptions {}

/** A standalone OTLP/gRPC server: `listen()` then `shutdown()`. */
export class OtlpGrpcServer {
  readonly server: grpc.Server & { windowPatched: boolean };
  private stopped = false;

  constructor(opts: OtlpGrpcServerOptions) {
    this.server = createGrpcServer(opts);
    addOtlpServices(this.server, opts);
  }

  /** Binds (e.g. "127.0.0.1:0") and resolves with the bound port. */
  listen(address: string, credentials?: grpc.ServerCredentials): Promise<number> {
    return bindServer(this.server, address, credentials);
  }

  /** Idempotent; lets in-flight calls finish for up to `graceMs`. */
  async shutdown(graceMs = 5000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await shutdownServer(this.server, graceMs);
  }
}

export { SERVICE_NAMES as OTLP_SERVICE_NAMES };
