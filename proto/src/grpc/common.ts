// Generic gRPC helpers shared by the OTLP and OTel-Arrow adapters: raw-bytes serializers, pipeline
// error ⇄ gRPC status mapping (with google.rpc.RetryInfo in grpc-status-details-bin), request
// context from call metadata, and a grpc-js server with a larger HTTP/2 flow-control window.
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { isIP } from 'node:net';
import {
  PermanentError,
  PipelineError,
  RetryableError,
  ShutdownError,
  ThrottledError,
} from '../../../collector/src/component/errors.ts';
import type { RequestContext } from '../../../collector/src/component/index.ts';
import { ProtoDecodeError } from '../otlp/errors.ts';
import { DecompressionLimitError, ZstdDataError } from '../zstd.ts';

export const Status = grpc.status;

/** Pass-through (de)serializers: the payload codecs run in our code, not in grpc-js. */
export const rawSerialize = (b: Buffer): Buffer => b;
export const rawDeserialize = (b: Buffer): Buffer => b;

// ------------------------------------------------------------------ google.rpc.Status / RetryInfo
// Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
// Any { string type_url = 1; bytes value = 2; }
// RetryInfo { google.protobuf.Duration retry_delay = 1; }  Duration { int64 seconds = 1; int32 nanos = 2; }

export const RETRY_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.RetryInfo';
export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';

function pushVarint(out: number[], v: number): void {
  while (v > 127) {
    out.push((v & 127) | 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function pushBytesField(out: number[], field: number, bytes: ArrayLike<number>): void {
  out.push((field << 3) | 2);
  pushVarint(out, bytes.length);
  for (let i = 0; i < bytes.length; i++) out.push(bytes[i]);
}

/** google.rpc.RetryInfo bytes for a delay in milliseconds. */
export function encodeRetryInfo(delayMs: number): Buffer {
  const ms = Math.max(0, Math.round(delayMs));
  const duration: number[] = [];
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms % 1000) * 1_000_000;
  if (seconds) {
    duration.push(0x08);
    pushVarint(duration, seconds);
  }
  if (nanos) {
    duration.push(0x10);
    pushVarint(duration, nanos);
  }
  const out: number[] = [];
  pushBytesField(out, 1, duration);
  return Buffer.from(out);
}

/** google.rpc.Status bytes (what grpc-status-details-bin carries), optionally with a RetryInfo detail. */
export function encodeStatusDetails(code: number, message: string, retryDelayMs?: number): Buffer {
  const out: number[] = [];
  if (code) {
    out.push(0x08);
    pushVarint(out, code);
  }
  if (message) pushBytesField(out, 2, Buffer.from(message, 'utf8'));
  if (retryDelayMs !== undefined) {
    const any: number[] = [];
    pushBytesField(any, 1, Buffer.from(RETRY_INFO_TYPE_URL, 'utf8'));
    pushBytesField(any, 2, encodeRetryInfo(retryDelayMs));
    pushBytesField(out, 3, any);
  }
  return Buffer.from(out);
}

// A tiny tolerant reader for these three small messages; malformed details yield undefined.
function* fields(b: Uint8Array): Generator<[number, number, number | Uint8Array]> {
  let p = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (p >= b.length) throw new Error('truncated');
      const c = b[p++];
      v += (c & 127) * mul;
      if (c < 128) return v;
      mul *= 128;
    }
    throw new Error('varint too long');
  };
  while (p < b.length) {
    const tag = varint();
    const wt = tag & 7;
    if (wt === 0) yield [tag >>> 3, wt, varint()];
    else if (wt === 2) {
      const len = varint();
      if (p + len > b.length) throw new Error('truncated');
      yield [tag >>> 3, wt, b.subarray(p, p + len)];
      p += len;
    } else if (wt === 1) p += 8;
    else if (wt === 5) p += 4;
    else throw new Error('bad wire type');
  }
}

/** The RetryInfo delay (ms) inside a google.rpc.Status, or undefined when there is none. */
export function decodeRetryDelayMs(statusDetails: Uint8Array): number | undefined {
  try {
    for (const [f, wt, v] of fields(statusDetails)) {
      if (f !== 3 || wt !== 2) continue;
      let typeUrl = '';
      let value: Uint8Array | undefined;
      for (const [af, awt, av] of fields(v as Uint8Array)) {
        if (af === 1 && awt === 2) typeUrl = Buffer.from(av as Uint8Array).toString('utf8');
        if (af === 2 && awt === 2) value = av as Uint8Array;
      }
      if (typeUrl !== RETRY_INFO_TYPE_URL || !value) continue;
      let ms = 0;
      for (const [rf, rwt, rv] of fields(value)) {
        if (rf !== 1 || rwt !== 2) continue;
        for (const [df, dwt, dv] of fields(rv as Uint8Array)) {
          if (dwt !== 0) continue;
          if (df === 1) ms += (dv as number) * 1000;
          if (df === 2) ms += (dv as number) / 1_000_000;
        }
      }
      return Math.round(ms);
    }
  } catch {
    return undefined;
  }
  return undefined;
}

// ------------------------------------------------------------------ error ⇄ status

export interface GrpcStatusObject {
  code: grpc.status;
  details: string;
  metadata: grpc.Metadata;
}

/**
 * What a server answers for an error from its handler:
 * PermanentError, ProtoDecodeError, ZstdDataError → INVALID_ARGUMENT; ThrottledError →
 * RESOURCE_EXHAUSTED + RetryInfo; DecompressionLimitError → RESOURCE_EXHAUSTED without RetryInfo
 * (never retried); RetryableError / ShutdownError / anything else → UNAVAILABLE (+ RetryInfo when
 * the error carries a delay), as the reference collector treats non-permanent errors.
 */
export function errorToGrpcStatus(err: unknown): GrpcStatusObject {
  const metadata = new grpc.Metadata();
  const message = err instanceof Error ? err.message : String(err);
  let code: grpc.status;
  let retryMs: number | undefined;
  if (err instanceof PermanentError || err instanceof ProtoDecodeError || err instanceof ZstdDataError) code = Status.INVALID_ARGUMENT;
  else if (err instanceof ThrottledError) {
    code = Status.RESOURCE_EXHAUSTED;
    retryMs = err.retryAfterMs;
  } else if (err instanceof DecompressionLimitError) code = Status.RESOURCE_EXHAUSTED;
  else {
    code = Status.UNAVAILABLE;
    if (err instanceof RetryableError) retryMs = err.retryAfterMs;
  }
  if (retryMs !== undefined) metadata.set(STATUS_DETAILS_KEY, encodeStatusDetails(code, message, retryMs));
  return { code, details: message, metadata };
}

/** Codes the reference exporter retries (RESOURCE_EXHAUSTED only with RetryInfo). */
const RETRYABLE_CODES = new Set<number>([
  Status.CANCELLED,
  Status.DEADLINE_EXCEEDED,
  Status.ABORTED,
  Status.OUT_OF_RANGE,
  Status.UNAVAILABLE,
  Status.DATA_LOSS,
]);

/** Client side: a failed call → ThrottledError / RetryableError / PermanentError. */
export function grpcErrorToPipelineError(err: grpc.ServiceError | (Error & { code?: number; metadata?: grpc.Metadata; details?: string })): PipelineError {
  const code = err.code ?? Status.UNKNOWN;
  const details = err.details ?? err.message;
  const message = `gRPC ${Status[code] ?? code}: ${details}`;
  let retryMs: number | undefined;
  const raw = err.metadata?.get(STATUS_DETAILS_KEY)[0];
  if (raw !== undefined) retryMs = decodeRetryDelayMs(typeof raw === 'string' ? Buffer.from(raw, 'base64') : raw);
  if (code === Status.RESOURCE_EXHAUSTED) {
    return retryMs !== undefined ? new ThrottledError(message, retryMs, { cause: err }) : new PermanentError(message, { cause: err });
  }
  if (RETRYABLE_CODES.has(code)) return new RetryableError(message, retryMs, { cause: err });
  return new PermanentError(message, { cause: err });
}

export { PermanentError, RetryableError, ThrottledError, ShutdownError };

// ------------------------------------------------------------------ request context

/** Peer "1.2.3.4:5678" / "[::1]:5678" / "::1:5678" (grpc-js) / "ipv4:1.2.3.4:5678" → host part. */
export function peerHost(peer: string): string {
  const p = peer.replace(/^ipv[46]:/, '');
  if (p.startsWith('[')) return p.slice(1, p.indexOf(']'));
  const m = /^(.*):(\d+)$/.exec(p);
  if (m && isIP(m[1])) return m[1];
  return p;
}

/** RequestContext from a call: lower-cased text metadata, peer host, size, deadline. */
export function contextFromCall(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>, bytes?: number): RequestContext {
  const metadata: Record<string, string> = {};
  const map = call.metadata.getMap();
  for (const k in map) {
    const v = map[k];
    if (typeof v === 'string') metadata[k.toLowerCase()] = v;
  }
  const ctx: RequestContext = { metadata, peerAddress: peerHost(call.getPeer()) };
  if (bytes !== undefined) ctx.bytes = bytes;
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  if (Number.isFinite(ms)) ctx.deadline = ms;
  return ctx;
}

/** Record<string,string> → grpc.Metadata (keys lower-cased; "-bin" keys expect base64 values). */
export function toMetadata(headers?: Record<string, string>): grpc.Metadata {
  const md = new grpc.Metadata();
  if (headers)
    for (const [k, v] of Object.entries(headers)) {
      const key = k.toLowerCase();
      if (key.endsWith('-bin')) md.set(key, Buffer.from(v, 'base64'));
      else md.set(key, v);
    }
  return md;
}

// ------------------------------------------------------------------ server with a larger window

export interface GrpcServerOptions {
  /** Largest request accepted (after gzip decompression); bigger → RESOURCE_EXHAUSTED. Default 16 MiB. */
  maxReceiveMessageBytes?: number;
  /** Largest response sent. Default 16 MiB. */
  maxSendMessageBytes?: number;
  /**
   * HTTP/2 flow-control window per stream and per connection. grpc-js servers keep the 64 KiB
   * default, which caps large-message throughput (measured: 16 MiB gives 1.4–2.7× req/s); 0 keeps
   * the default. Default 16 MiB.
   */
  flowControlWindowBytes?: number;
  /**
   * HTTP/2 streams (calls) one connection may have open at once, announced to the client in its
   * SETTINGS. Each open stream can hold up to a message of buffered data. Default 100.
   */
  maxConcurrentStreams?: number;
  /** HTTP/2 pings and connection ages (ServerKeepalive); grpc-js defaults when absent. */
  keepalive?: ServerKeepalive;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
}

/**
 * Server-side HTTP/2 keepalive, in milliseconds; 0 = off. A client that vanished without closing
 * its TCP connection (node lost, network cut) never answers a ping: its session is closed after
 * `timeMs + timeoutMs`, and with it the streams and their state. Without pings the server would
 * only notice when it next wrote, which a receiver waiting for requests never does.
 */
export interface ServerKeepalive {
  /** Ping a connection that has been quiet for this long. */
  timeMs: number;
  /** Close the connection when the ping's ack takes longer. */
  timeoutMs: number;
  /** Close connections idle (no open call) for this long. */
  maxConnectionIdleMs: number;
  /** Ask clients to reconnect after this long (GOAWAY), e.g. to rebalance behind a load balancer. */
  maxConnectionAgeMs: number;
  /** Then close the connection after this grace for calls still open. */
  maxConnectionAgeGraceMs: number;
}

/** Client-side HTTP/2 keepalive: detects a dead connection in `timeMs + timeoutMs` instead of TCP's minutes. */
export interface ClientKeepalive {
  timeMs: number;
  timeoutMs: number;
  /** Ping also while no call is open (servers may count that as abuse: GOAWAY too_many_pings). */
  permitWithoutStream: boolean;
}

/** grpc-js channel options for a client keepalive (none when absent). */
export function clientKeepaliveOptions(k: ClientKeepalive | undefined): grpc.ChannelOptions {
  if (!k || k.timeMs <= 0) return {};
  return {
    'grpc.keepalive_time_ms': k.timeMs,
    'grpc.keepalive_timeout_ms': k.timeoutMs,
    'grpc.keepalive_permit_without_calls': k.permitWithoutStream ? 1 : 0,
  };
}

function serverKeepaliveOptions(k: ServerKeepalive | undefined): grpc.ChannelOptions {
  if (!k) return {};
  const o: grpc.ChannelOptions = {};
  if (k.timeMs > 0) {
    o['grpc.keepalive_time_ms'] = k.timeMs;
    o['grpc.keepalive_timeout_ms'] = k.timeoutMs;
  }
  if (k.maxConnectionIdleMs > 0) o['grpc.max_connection_idle_ms'] = k.maxConnectionIdleMs;
  if (k.maxConnectionAgeMs > 0) {
    o['grpc.max_connection_age_ms'] = k.maxConnectionAgeMs;
    if (k.maxConnectionAgeGraceMs > 0) o['grpc.max_connection_age_grace_ms'] = k.maxConnectionAgeGraceMs;
  }
  return o;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_WINDOW_BYTES = 16 * 1024 * 1024;

/**
 * A grpc-js Server whose HTTP/2 sessions advertise a larger window. grpc-js has no server option for
 * it, so the instance's (internal) createHttp2Server is wrapped; if a grpc-js upgrade renames it, the
 * server still works with the default window and `windowPatched` says so.
 */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 100;

export function createGrpcServer(opts: GrpcServerOptions = {}): grpc.Server & { windowPatched: boolean } {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxReceiveMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': opts.maxSendMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    'grpc.max_concurrent_streams': opts.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
    ...serverKeepaliveOptions(opts.keepalive),
    ...opts.channelOptions,
  }) as grpc.Server & { windowPatched: boolean };
  const window = opts.flowControlWindowBytes ?? DEFAULT_WINDOW_BYTES;
  const internal = server as unknown as { createHttp2Server?: (creds: unknown) => http2.Http2Server; commonServerOptions?: http2.ServerOptions };
  server.windowPatched = false;
  if (window > 65535 && typeof internal.createHttp2Server === 'function' && internal.commonServerOptions) {
    const original = internal.createHttp2Server;
    internal.commonServerOptions.settings = { ...internal.commonServerOptions.settings, initialWindowSize: Math.min(window, 2 ** 31 - 1) };
    internal.createHttp2Server = function (this: unknown, creds: unknown) {
      const h2 = original.call(this, creds);
      h2.on('session', (session: http2.ServerHttp2Session) => {
        try {
          session.setLocalWindowSize(Math.min(window, 2 ** 31 - 1));
        } catch {
          // the session may already be closing; the default window still works
        }
      });
      return h2;
    };
    server.windowPatched = true;
  }
  return server;
}

/** Bind and resolve with the port (address "host:0" picks a free one). */
export function bindServer(server: grpc.Server, address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Graceful shutdown, forced after `graceMs`. */
export function shutdownServer(server: grpc.Server, graceMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    // Not unref()d: a peer holding a stream open must not leave this promise pending at exit.
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
