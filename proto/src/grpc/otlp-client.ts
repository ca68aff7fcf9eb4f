// OTLP/gRPC client: encodes with our codec, calls Export with raw bytes, and maps failures to
// pipeline errors (ThrottledError / RetryableError / PermanentError, RetryInfo → retryAfterMs) so the
// collector's exporter can decide about retries without knowing gRPC.
import * as grpc from '@grpc/grpc-js';
import type { SignalData, SignalType } from '../model.ts';
import { encodeSignal } from '../otlp/encode.ts';
import { decodeExportResponse } from '../otlp/decode.ts';
import type { ExportPartialSuccess } from '../otlp/encode.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_WINDOW_BYTES, clientKeepaliveOptions, grpcErrorToPipelineError, type ClientKeepalive, rawDeserialize, rawSerialize, toMetadata } from './common.ts';
import { OTLP_SERVICE_PATHS } from './otlp-server.ts';

export interface OtlpGrpcClientOptions {
  /** "host:port" (or any grpc-js target). */
  address: string;
  credentials?: grpc.ChannelCredentials;
  /** Requests larger than this fail locally with RESOURCE_EXHAUSTED. Default 16 MiB. */
  maxSendMessageBytes?: number;
  maxReceiveMessageBytes?: number;
  /** 'gzip' compresses requests (grpc-js built-in); default none. */
  compression?: 'gzip' | 'none';
  /** Client HTTP/2 window; default 16 MiB. */
  flowControlWindowBytes?: number;
  /** Metadata sent with every call (e.g. authorization). */
  headers?: Record<string, string>;
  keepalive?: ClientKeepalive;
  channelOptions?: grpc.ChannelOptions;
}

export interface ExportCallOptions {
  /** Per-call metadata, merged over the client's headers. */
  headers?: Record<string, string>;
  /** Deadline relative to now. Default 10 s. */
  timeoutMs?: number;
}

export class OtlpGrpcClient {
  private readonly client: grpc.Client;
  private readonly headers?: Record<string, string>;

  constructor(opts: OtlpGrpcClientOptions) {
    const options: grpc.ChannelOptions = {
      'grpc.max_send_message_length': opts.maxSendMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      // grpc-js backs reconnects off up to 120 s by default; callers retry on their own schedule,
      // so cap it to pick a returning server up within seconds.
      'grpc.max_reconnect_backoff_ms': 5000,
      'grpc.max_receive_message_length': opts.maxReceiveMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      'grpc-node.flow_control_window': opts.flowControlWindowBytes ?? DEFAULT_WINDOW_BYTES,
      ...clientKeepaliveOptions(opts.keepalive),
      ...opts.channelOptions,
    };
    // grpc.default_compression_algorithm: 0 identity, 1 deflate, 2 gzip.
    if (opts.compression === 'gzip') options['grpc.default_compression_algorithm'] = 2;
    this.client = new grpc.Client(opts.address, opts.credentials ?? grpc.credentials.createInsecure(), options);
    this.headers = opts.headers;
  }

  /** Encodes and exports; resolves with the server's partial success, if any. Rejects with a PipelineError. */
  export<S extends SignalType>(signal: S, data: SignalData[S], opts?: ExportCallOptions): Promise<ExportPartialSuccess | undefined> {
    return this.exportBytes(signal, encodeSignal(signal, data), opts);
  }

  /** Exports an already encoded Export*ServiceRequest. */
  exportBytes(signal: SignalType, bytes: Uint8Array, opts: ExportCallOptions = {}): Promise<ExportPartialSuccess | undefined> {
    const metadata = toMetadata({ ...this.headers, ...opts.headers });
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    const request = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest<Buffer, Buffer>(OTLP_SERVICE_PATHS[signal], rawSerialize, rawDeserialize, request, metadata, { deadline }, (err, response) => {
        if (err) return reject(grpcErrorToPipelineError(err));
        try {
          resolve(decodeExportResponse(response ?? Buffer.alloc(0)));
        } catch (e) {
          reject(grpcErrorToPipelineError(Object.assign(new Error(`bad Export response: ${(e as Error).message}`), { code: grpc.status.INTERNAL })));
        }
      });
    });
  }

  /** Resolves once connected (or rejects after `timeoutMs`). */
  waitForReady(timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => this.client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    this.client.close();
  }
}
