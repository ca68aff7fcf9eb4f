// OTLP/HTTP server: POST /v1/{traces,metrics,logs}, protobuf or JSON, optional gzip/deflate.
// Status codes per the OTLP spec: 200 with an ExportServiceResponse; 400 malformed; 401 no or
// unknown tenant; 404 unknown path or signal not in any pipeline; 405 not POST; 413 body over
// max_request_body_size (checked on Content-Length, while streaming, and after decompression);
// 415 other content types; 429/503 with Retry-After from ThrottledError/RetryableError.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { gunzip, inflate } from 'node:zlib';
import { promisify } from 'node:util';
import type { SignalType } from '../../../../proto/src/model.ts';
import { countItems } from '../../../../proto/src/model.ts';
import { decodeSignal, decodeJson, encodeExportResponse } from '../../../../proto/src/otlp/index.ts';
import { countEncodedItems } from '../../../../proto/src/otlp/count.ts';
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
      let body = await this.readBody(req, max);
      const enc = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
      if (enc === 'gzip' || enc === 'deflate') {
        try {
          body = await (enc === 'gzip' ? gunzipAsync : inflateAsync)(body, { maxOutputLength: max });
        } catch (err) {
          if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) throw new HttpError(413, `decompressed body larger than ${max} bytes`);
          throw new HttpError(400, `invalid ${enc} body: ${(err as Error).message}`);
        }
      } else if (enc !== 'identity' && enc !== '') {
        throw new HttpError(415, `unsupported content encoding ${JSON.stringify(enc)}`);
      }
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
