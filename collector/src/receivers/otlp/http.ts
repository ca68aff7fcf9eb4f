// OTLP/HTTP server: POST /v1/{traces,metrics,logs}, protobuf or JSON, with the Content-Encodings
// of core's confighttp except lz4 (gzip, deflate, zlib, zstd, snappy, x-snappy-framed).
// Status codes per the OTLP spec: 200 with an ExportServiceResponse; 400 malformed; 401 no or
// unknown tenant; 404 unknown path or signal not in any pipeline; 405 not POST; 413 body over
// max_request_body_size (checked on Content-Length, while streaming, and after decompression);
// 415 other content types and encodings; 429/503 with Retry-After from ThrottledError/RetryableError.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { gunzip, inflate } from 'node:zlib';
import { promisify } from 'node:util';
import snappy from 'snappyjs';
import type { SignalType } from '../../../../proto/src/model.ts';
import { countItems } from '../../../../proto/src/model.ts';
import { decodeSignal, decodeJson, encodeExportResponse } from '../../../../proto/src/otlp/index.ts';
import { countEncodedItems } from '../../../../proto/src/otlp/count.ts';
import { DecompressionLimitError, zstdDecompress } from '../../../../proto/src/zstd.ts';
import type { Consumer, Logger, RequestContext } from '../../component/index.ts';
import type { SelfTelemetry } from '../../telemetry/metrics.ts';
import { AuthError, resolveIdentity, type AuthConfig } from '../common/auth.ts';
import { normalisePeerAddress } from '../common/context.ts';
import { retryAfterHeader, statusOf, GRPC } from '../common/status.ts';
import type { HttpProtocolConfig } from './config.ts';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

/** google.rpc.Status { int32 code = 1; string message = 2; } */
function encodeRpcStatus(code: number, message: string): Buffer {
  const msg = Buffer.from(message.slice(0, 1024));
  const out: number[] = [0x08];
  let c = code;
  do {
    let b = c & 0x7f;
    c >>>= 7;
    if (c) b |= 0x80;
    out.push(b);
  } while (c);
  out.push(0x12);
  let l = msg.length;
  do {
    let b = l & 0x7f;
    l >>>= 7;
    if (l) b |= 0x80;
    out.push(b);
  } while (l);
  return Buffer.concat([Buffer.from(out), msg]);
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly grpcCode: number = GRPC.INVALID_ARGUMENT) {
    super(message);
  }
}

/** The request body ended early: the client closed the connection or aborted. */
class ClientGoneError extends Error {
  constructor(cause?: Error) {
    super(`client closed the request${cause ? `: ${cause.message}` : ''}`, cause ? { cause } : undefined);
  }
}

/** The decoded body would pass max_request_body_size (→ 413). */
class BodyLimitError extends Error {}

/**
 * Snappy block header: the decoded length (uvarint, at most 32 bits as in Go's snappy.DecodedLen).
 * Read here, not by snappyjs, so the limit is checked before anything is allocated (snappyjs turns
 * lengths of 2^31 and more into negative numbers).
 */
function snappyDecodedLen(block: Uint8Array): number {
  let v = 0;
  for (let i = 0; i < 5 && i < block.length; i++) {
    v += (block[i] & 0x7f) * 2 ** (7 * i);
    if (block[i] < 0x80) {
      if (v > 0xffffffff) break;
      return v;
    }
  }
  throw new Error('corrupt snappy block length');
}

/** Content-Encoding `snappy` is the block format (one block, length first), as core sends it. */
function snappyBlock(body: Buffer, max: number): Buffer {
  const n = snappyDecodedLen(body);
  if (n > max) throw new BodyLimitError();
  return snappy.uncompress(body, n);
}

const CRC32C = (() => {
  const t = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

/** The framing format's checksum: CRC-32C (Castagnoli), masked. */
function maskedCrc32c(data: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < data.length; i++) c = CRC32C[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  const crc = ~c >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** Stream identifier chunk: type 0xff, length 6, "sNaPpY" — the first 10 bytes of every framed stream. */
const SNAPPY_FRAMED_MAGIC = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);
const SNAPPY_FRAME_MAX = 65536;

/**
 * Snappy framing format (x-snappy-framed; google/snappy framing_format.txt), as Go's snappy.Reader
 * reads it: checksums verified, reserved unskippable chunks refused, skippable ones and padding
 * skipped. Each chunk decodes to at most 64 KiB and the running total is checked before decoding.
 */
function snappyFramed(body: Buffer, max: number): Buffer {
  const out: Buffer[] = [];
  let total = 0;
  let pos = 0;
  let identified = false;
  while (pos < body.length) {
    if (pos + 4 > body.length) throw new Error('truncated snappy chunk header');
    const type = body[pos];
    const len = body[pos + 1] | (body[pos + 2] << 8) | (body[pos + 3] << 16);
    pos += 4;
    if (pos + len > body.length) throw new Error('truncated snappy chunk');
    const chunk = body.subarray(pos, pos + len);
    pos += len;
    if (type === 0xff) {
      if (!chunk.equals(SNAPPY_FRAMED_MAGIC.subarray(4))) throw new Error('bad snappy stream identifier');
      identified = true;
      continue;
    }
    if (!identified) throw new Error('snappy stream identifier missing');
    if (type === 0x00 || type === 0x01) {
      if (len < 4) throw new Error('snappy chunk too short');
      const payload = chunk.subarray(4);
      const n = type === 0x00 ? snappyDecodedLen(payload) : payload.length;
      if (n > SNAPPY_FRAME_MAX) throw new Error('snappy chunk over 64 KiB');
      if (total + n > max) throw new BodyLimitError();
      const data = type === 0x00 ? snappy.uncompress(payload, n) : payload;
      if (maskedCrc32c(data) !== chunk.readUInt32LE(0)) throw new Error('snappy checksum mismatch');
      out.push(data);
      total += n;
    } else if (type <= 0x7f) {
      throw new Error(`reserved unskippable snappy chunk type 0x${type.toString(16)}`);
    } // 0x80-0xfe: reserved skippable chunks and padding
  }
  return out.length === 1 ? out[0] : Buffer.concat(out, total);
}

/** What core's confighttp decodes, lz4 aside (no maintained lz4 package in this repo's dependencies). */
const ENCODINGS = ['gzip', 'deflate', 'zlib', 'zstd', 'snappy', 'x-snappy-framed'];

/**
 * Decodes the body per Content-Encoding, never producing more than `max` bytes: each codec is
 * bounded before or while it allocates, so a small bomb costs at most the limit (413).
 * `deflate` is zlib-wrapped, as core reads it; `snappy` is the block format unless the body starts
 * with the framing format's stream identifier (core's fallback for collectors before v0.125 that
 * sent framed snappy under that name).
 */
async function decodeContentEncoding(enc: string, body: Buffer, max: number): Promise<Buffer> {
  try {
    switch (enc) {
      case 'identity':
      case '':
        return body;
      case 'gzip':
        return await gunzipAsync(body, { maxOutputLength: max });
      case 'deflate':
      case 'zlib':
        return await inflateAsync(body, { maxOutputLength: max });
      case 'zstd':
        return await zstdDecompress(body, max);
      case 'snappy':
        return body.subarray(0, SNAPPY_FRAMED_MAGIC.length).equals(SNAPPY_FRAMED_MAGIC) ? snappyFramed(body, max) : snappyBlock(body, max);
      case 'x-snappy-framed':
        return snappyFramed(body, max);
    }
  } catch (err) {
    if (err instanceof BodyLimitError || err instanceof DecompressionLimitError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError)
      throw new HttpError(413, `decompressed body larger than ${max} bytes`);
    throw new HttpError(400, `invalid ${enc} body: ${(err as Error).message}`);
  }
  throw new HttpError(415, `unsupported content encoding ${JSON.stringify(enc)}; supported: ${ENCODINGS.join(', ')}`);
}

export { normalisePeerAddress as normalisePeer } from '../common/context.ts';

export interface HttpReceiverOptions {
  id: string;
  cfg: HttpProtocolConfig;
  auth: AuthConfig;
  metadataKeys: string[];
  consumers: Partial<Record<SignalType, Consumer>>;
  logger: Logger;
  telemetry?: SelfTelemetry;
}

export class OtlpHttpServer {
  private server?: Server;
  private readonly routes: Map<string, SignalType>;
  private readonly requests?: import('../../telemetry/metrics.ts').MetricFamily;

  constructor(private readonly o: HttpReceiverOptions) {
    this.routes = new Map([
      [o.cfg.paths.traces, 'traces'],
      [o.cfg.paths.metrics, 'metrics'],
      [o.cfg.paths.logs, 'logs'],
    ]);
    this.requests = o.telemetry?.registry.counter('kscope_receiver_requests_total', 'Requests per receiver, transport and status code.');
  }

  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  async start(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    const tls = this.o.cfg.tls;
    this.server = tls
      ? createHttpsServer({ cert: tls.cert, key: tls.key, ca: tls.clientCa, requestCert: !!tls.clientCa, rejectUnauthorized: tls.requireClientCert }, handler)
      : createHttpServer(handler);
    this.server.keepAliveTimeout = 30_000;
    this.server.requestTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.o.cfg.endpoint.port, this.o.cfg.endpoint.host, () => {
        this.server!.off('error', reject);
        resolve();
      });
    });
    this.o.logger.info({ endpoint: `${this.o.cfg.endpoint.host}:${this.port}`, tls: !!tls }, 'OTLP/HTTP receiver listening');
  }

  /**
   * Stops listening and closes idle connections; requests being handled finish (node closes
   * their kept-alive connections after the reply). Connections still open after `graceMs` are
   * closed: a client that never finishes its body would otherwise hold the server, and the
   * collector's flush behind it, until the 60 s request timeout.
   */
  async shutdown(graceMs = 5000): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => s.closeAllConnections(), graceMs);
      s.close(() => {
        clearTimeout(force);
        resolve();
      });
      s.closeIdleConnections();
    });
  }

  private count(code: number): void {
    this.requests?.add({ receiver: this.o.id, transport: 'http', code: String(code) });
  }

  private reply(res: ServerResponse, json: boolean, status: number, grpcCode: number, message: string, retryAfterMs?: number): void {
    this.count(status);
    if (res.headersSent) return;
    const headers: Record<string, string> = { 'Content-Type': json ? 'application/json' : 'application/x-protobuf' };
    if (retryAfterMs !== undefined) headers['Retry-After'] = retryAfterHeader(retryAfterMs);
    if (status === 401) headers['WWW-Authenticate'] = 'Bearer';
    if (status === 405) headers['Allow'] = 'POST';
    const body = json ? Buffer.from(JSON.stringify({ code: grpcCode, message })) : encodeRpcStatus(grpcCode, message);
    res.writeHead(status, headers);
    res.end(body);
  }

  private readBody(req: IncomingMessage, max: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          reject(new HttpError(413, `request body larger than ${max} bytes`));
          req.removeAllListeners('data');
          req.resume();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
      // the client went away mid-body: its problem, not a server error (and any client could
      // otherwise fill the error log)
      req.on('error', (err) => reject(new ClientGoneError(err)));
      req.on('aborted', () => reject(new ClientGoneError()));
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ctype = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const json = ctype === 'application/json';
    try {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const signal = this.routes.get(q < 0 ? url : url.slice(0, q));
      if (!signal) throw new HttpError(404, `unknown path ${url.slice(0, 100)}`, GRPC.UNIMPLEMENTED);
      if (req.method !== 'POST') throw new HttpError(405, `method ${req.method} not allowed`, GRPC.UNIMPLEMENTED);
      const consumer = this.o.consumers[signal];
      if (!consumer) throw new HttpError(404, `no ${signal} pipeline on this receiver`, GRPC.UNIMPLEMENTED);
      if (ctype !== 'application/x-protobuf' && !json) throw new HttpError(415, `unsupported content type ${JSON.stringify(ctype)}; use application/x-protobuf or application/json`);
      let identity;
      try {
        identity = resolveIdentity(this.o.auth, {
          header: (n) => {
            const v = req.headers[n];
            return Array.isArray(v) ? v[0] : v;
          },
          clientCertCN: this.o.cfg.tls ? certCN(req.socket as TLSSocket) : undefined,
        });
      } catch (err) {
        if (err instanceof AuthError) throw new HttpError(401, err.message, GRPC.UNAUTHENTICATED);
        throw err;
      }
      const max = this.o.cfg.maxRequestBodySize;
      const declared = Number(req.headers['content-length'] ?? -1);
      if (declared > max) {
        res.setHeader('Connection', 'close');
        throw new HttpError(413, `request body of ${declared} bytes larger than ${max}`);
      }
      const enc = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
      const body = await decodeContentEncoding(enc, await this.readBody(req, max), max);
      const refusal = consumer.refusal?.();
      if (refusal) {
        // refused before decoding: the items are counted from the encoding (JSON is not parsed)
        const items = json ? 0 : Math.max(0, countEncodedItems(signal, body));
        this.o.telemetry?.refused.add({ kind: 'receiver', component: this.o.id, pipeline: '', signal, tenant: identity.tenant ?? '' }, items);
        const st = statusOf(refusal);
        this.reply(res, json, st.http, st.grpc, st.message, st.retryAfterMs);
        return;
      }
      let data;
      try {
        data = json ? decodeJson(signal, body) : decodeSignal(signal, body);
      } catch (err) {
        throw new HttpError(400, `malformed ${json ? 'OTLP/JSON' : 'OTLP protobuf'} ${signal} payload: ${(err as Error).message}`);
      }
      const ctx: RequestContext = { bytes: body.length };
      if (identity.tenant !== undefined) ctx.tenant = identity.tenant;
      if (identity.tier !== undefined) ctx.tier = identity.tier;
      const peer = normalisePeerAddress(req.socket.remoteAddress);
      if (peer) ctx.peerAddress = peer;
      if (this.o.metadataKeys.length) {
        const md: Record<string, string> = {};
        for (const k of this.o.metadataKeys) {
          const v = req.headers[k];
          if (typeof v === 'string') md[k] = v;
        }
        ctx.metadata = md;
      }
      const items = countItems(signal, data);
      const tel = this.o.telemetry;
      const labels = { kind: 'receiver', component: this.o.id, pipeline: '', signal, tenant: ctx.tenant ?? '' };
      try {
        await consumer.consume(data, ctx);
        tel?.accepted.add(labels, items);
      } catch (err) {
        const st = statusOf(err);
        (st.http === 400 ? tel?.dropped : tel?.refused)?.add(labels, items);
        this.reply(res, json, st.http, st.grpc, st.message, st.retryAfterMs);
        return;
      }
      this.count(200);
      res.writeHead(200, { 'Content-Type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : encodeExportResponse());
    } catch (err) {
      if (err instanceof ClientGoneError) {
        this.count(499); // nginx's "client closed request": nothing can be answered
        this.o.logger.debug({ err: err.message }, 'OTLP/HTTP client went away before its body was complete');
      } else if (err instanceof HttpError) {
        this.reply(res, json, err.status, err.grpcCode, err.message);
      } else {
        this.o.logger.error({ err }, 'OTLP/HTTP request failed');
        this.reply(res, json, 500, GRPC.INTERNAL, 'internal error');
      }
    }
  }
}

function certCN(sock: TLSSocket): string | undefined {
  if (typeof sock.getPeerCertificate !== 'function' || !sock.authorized) return undefined;
  const c = sock.getPeerCertificate();
  const cn = c?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn || undefined;
}
