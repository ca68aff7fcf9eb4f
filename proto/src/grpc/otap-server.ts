// Server side of the OTel Arrow services on @grpc/grpc-js: ArrowTracesService/ArrowTraces,
// ArrowLogsService/ArrowLogs and ArrowMetricsService/ArrowMetrics, each a bidirectional stream of
// BatchArrowRecords → BatchStatus. Every gRPC stream gets its own OtapConsumer (IPC stream state)
// and HPACK decoder; each batch is decoded in arrival order, handed to the handler, and answered
// with one BatchStatus when the handler settles (acks may go out of order). A batch's HPACK
// headers are decoded and the batch authorized (the `authorize` hook) before any of its Arrow
// payloads is read, as the Go receiver does.
import * as grpc from '@grpc/grpc-js';
import type { SignalData, SignalType } from '../model.ts';
import type { RequestContext } from '../../../collector/src/component/index.ts';
import {
  PermanentError,
  PipelineError,
  RetryableError,
  ShutdownError,
  ThrottledError,
} from '../../../collector/src/component/errors.ts';
import { OtapConsumer, type ConsumerOptions } from '../otap/stream.ts';
import { OtapDecodeError } from '../otap/ipc.ts';
import {
  OtapStatusCode,
  decodeBatchArrowRecords,
  encodeBatchStatus,
  type BatchArrowRecords,
  type BatchStatus,
} from '../otap/messages.ts';
import { HpackDecoder, HpackError } from '../otap/hpack.ts';
import { STATUS_DETAILS_KEY, contextFromCall, encodeStatusDetails, rawDeserialize, rawSerialize } from './common.ts';

export const OTAP_PACKAGE = 'opentelemetry.proto.experimental.arrow.v1';

export const OTAP_METHODS: Record<SignalType, { service: string; method: string; path: string }> = {
  traces: { service: 'ArrowTracesService', method: 'ArrowTraces', path: `/${OTAP_PACKAGE}.ArrowTracesService/ArrowTraces` },
  logs: { service: 'ArrowLogsService', method: 'ArrowLogs', path: `/${OTAP_PACKAGE}.ArrowLogsService/ArrowLogs` },
  metrics: { service: 'ArrowMetricsService', method: 'ArrowMetrics', path: `/${OTAP_PACKAGE}.ArrowMetricsService/ArrowMetrics` },
};

export function otapServiceDefinition(signal: SignalType): grpc.ServiceDefinition {
  const m = OTAP_METHODS[signal];
  return {
    [m.method]: {
      path: m.path,
      requestStream: true,
      responseStream: true,
      requestSerialize: rawSerialize,
      requestDeserialize: rawDeserialize,
      responseSerialize: rawSerialize,
      responseDeserialize: rawDeserialize,
      originalName: m.method,
    },
  } as grpc.ServiceDefinition;
}

export type OtapHandler = <S extends SignalType>(signal: S, data: SignalData[S], ctx: RequestContext) => Promise<void>;

export interface OtapServerOptions extends ConsumerOptions {
  /** Signals to serve (default all three). */
  signals?: SignalType[];
  /** Batches handed to the handler and not yet acknowledged, per stream; reading pauses beyond. Default 16. */
  maxInFlightPerStream?: number;
  /**
   * Open Arrow streams over all signals of this registration; a stream beyond is ended at once
   * with RESOURCE_EXHAUSTED (plus a RetryInfo, it is a transient condition). Default unlimited.
   * Bounds the receiver's dictionary memory at maxStreams × maxDictionaryBytes.
   */
  maxStreams?: number;
  /**
   * Called when the server ends a stream itself: `max_streams` when it was refused on open,
   * `dictionary_limit` when its dictionaries hit maxDictionaryBytes / maxDictionaryEntries,
   * `unauthenticated` when `authorize` refused a batch before any batch of the stream passed,
   * `invalid_headers` when a batch's HPACK header block did not decode.
   */
  onStreamRefused?: (signal: SignalType, reason: OtapStreamRefusal, message: string) => void;
  /** Called for every batch that was refused (bad input or handler error), for counters/logs. */
  onRefused?: (signal: SignalType, status: BatchStatus, err: unknown) => void;
  /**
   * Asked before each batch's model is built (e.g. a memory limiter that is refusing): an error
   * refuses the batch at once. Its payloads are still read, because their dictionaries carry over
   * to later batches of the stream, but no model objects are made.
   */
  refusal?: (signal: SignalType, ctx: RequestContext) => Error | undefined;
  /**
   * Asked for each batch once its HPACK headers are merged into `ctx` and before any of its Arrow
   * payloads is read: an error refuses the batch with BatchStatus UNAUTHENTICATED (message
   * `unauthenticated: <error message>`). Until a batch of the stream has passed, a refusal also
   * ends the stream with gRPC UNAUTHENTICATED and nothing of it is decoded; after one has passed,
   * the refused batch's payloads are still read (no model is built, its items go to
   * onRefusedItems), since skipping them would desynchronise the stream's dictionaries.
   */
  authorize?: (signal: SignalType, ctx: RequestContext) => Error | undefined;
  /** The items of each batch that `refusal` or `authorize` refused (from its tables' row counts), for counters. */
  onRefusedItems?: (signal: SignalType, items: number, ctx: RequestContext) => void;
  /**
   * Called once when a stream opens, with the call (e.g. for its TLS peer certificate) and the
   * context read from its metadata; what it returns is the base context of every batch on that
   * stream. Per-batch headers only ever add to `metadata`, so fields set here cannot be overridden
   * by the sender. Throwing ends the stream with the error's numeric `code` as gRPC status.
   * Default: the context as read.
   */
  streamContext?: (call: grpc.ServerDuplexStream<Buffer, Buffer>, base: RequestContext) => RequestContext;
}

export type OtapStreamRefusal = 'max_streams' | 'dictionary_limit' | 'unauthenticated' | 'invalid_headers';

export interface OtapServerStats {
  /** Streams accepted since start. */
  streams: number;
  /** Streams open now. */
  active: number;
  /** Streams refused on open (over maxStreams). */
  streamsRefused: number;
  /** Streams the server ended because their dictionaries hit a limit or their HPACK headers broke. */
  streamsFailed: number;
  /** Streams the server ended because a batch did not authenticate before any batch had. */
  streamsUnauthenticated: number;
  batches: number;
  items: number;
  refused: number;
}

/** How long a stream refused over maxStreams is told to wait before retrying. */
const MAX_STREAMS_RETRY_MS = 1000;

/** A BatchStatus answer for an error: decode problems and handler rejections alike. */
export function errorToBatchStatus(batchId: bigint, err: unknown): BatchStatus {
  const message = err instanceof Error ? err.message : String(err);
  let code: number;
  if (err instanceof OtapDecodeError) code = err.resourceExhausted ? OtapStatusCode.RESOURCE_EXHAUSTED : OtapStatusCode.INVALID_ARGUMENT;
  else if (err instanceof HpackError || err instanceof PermanentError || err instanceof RangeError) code = OtapStatusCode.INVALID_ARGUMENT;
  // BatchStatus cannot carry RetryInfo, and the Go exporter retries RESOURCE_EXHAUSTED only with
  // it, so a throttle is answered UNAVAILABLE (retried) with the delay in the message.
  else if (err instanceof ThrottledError) code = OtapStatusCode.UNAVAILABLE;
  else if (err instanceof RetryableError || err instanceof ShutdownError) code = OtapStatusCode.UNAVAILABLE;
  else if (err instanceof PipelineError) code = OtapStatusCode.INTERNAL;
  else code = OtapStatusCode.INTERNAL;
  const text = err instanceof ThrottledError ? `${message} (retry after ${err.retryAfterMs} ms)` : message;
  return { batchId, statusCode: code, statusMessage: text };
}

/**
 * Registers the Arrow services on `server`. `handler` gets each decoded batch; its promise
 * decides the BatchStatus (resolve → OK, reject → the mapped code).
 */
export function addOtapServices(server: grpc.Server, handler: OtapHandler, opts: OtapServerOptions = {}): OtapServerStats {
  const stats: OtapServerStats = { streams: 0, active: 0, streamsRefused: 0, streamsFailed: 0, streamsUnauthenticated: 0, batches: 0, items: 0, refused: 0 };
  const maxInFlight = opts.maxInFlightPerStream ?? 16;
  for (const signal of opts.signals ?? (['traces', 'logs', 'metrics'] as SignalType[])) {
    const m = OTAP_METHODS[signal];
    server.addService(otapServiceDefinition(signal), {
      [m.method]: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => serveStream(signal, call, handler, opts, maxInFlight, stats),
    });
  }
  return stats;
}

function serveStream(
  signal: SignalType,
  call: grpc.ServerDuplexStream<Buffer, Buffer>,
  handler: OtapHandler,
  opts: OtapServerOptions,
  maxInFlight: number,
  stats: OtapServerStats,
): void {
  if (opts.maxStreams !== undefined && stats.active >= opts.maxStreams) {
    stats.streamsRefused++;
    const details = `too many concurrent OTel Arrow streams (max_concurrent_streams ${opts.maxStreams})`;
    opts.onStreamRefused?.(signal, 'max_streams', details);
    const metadata = new grpc.Metadata();
    metadata.set(STATUS_DETAILS_KEY, encodeStatusDetails(grpc.status.RESOURCE_EXHAUSTED, details, MAX_STREAMS_RETRY_MS));
    call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details, metadata });
    return;
  }
  stats.streams++;
  stats.active++;
  const consumer = new OtapConsumer(signal, opts);
  // The call is over once its status went out (finish) or it was cancelled / torn down (close):
  // give the slot back and drop the dictionaries now rather than when the call is collected.
  let open = true;
  const closed = () => {
    if (!open) return;
    open = false;
    stats.active--;
    consumer.release();
  };
  call.on('finish', closed);
  call.on('close', closed);
  call.on('cancelled', closed);
  const hpack = new HpackDecoder();
  let base = contextFromCall(call);
  if (opts.streamContext) {
    try {
      base = opts.streamContext(call, base);
    } catch (e) {
      // The hook refused the stream: end it with the error's gRPC code (INTERNAL without one).
      const code = typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : grpc.status.INTERNAL;
      call.emit('error', { code, details: e instanceof Error ? e.message : String(e) });
      return;
    }
  }
  let inFlight = 0;
  let ended = false;
  let paused = false;
  /**
   * The stream's state can no longer be trusted (a dictionary limit released its dictionaries, or a
   * header block broke its HPACK table): it ends with this status once in-flight batches settled.
   */
  let failure: { code: grpc.status; message: string } | null = null;
  let failureSent = false;
  /** A batch of this stream passed `authorize`: from then on its dictionaries are worth keeping. */
  let authenticated = false;
  /** The stream was ended for a batch that did not authenticate: read nothing more. */
  let refusedAuth = false;
  const endFailed = () => {
    if (failureSent) return;
    failureSent = true;
    call.emit('error', { code: failure!.code, details: failure!.message });
  };

  const answer = (s: BatchStatus, err?: unknown) => {
    if (s.statusCode !== OtapStatusCode.OK) {
      stats.refused++;
      opts.onRefused?.(signal, s, err);
    }
    if (!call.writable || call.destroyed) return;
    call.write(Buffer.from(encodeBatchStatus(s)));
  };
  const settle = () => {
    inFlight--;
    if (failure) {
      if (inFlight === 0) endFailed();
      return;
    }
    if (paused && inFlight < maxInFlight) {
      paused = false;
      call.resume();
    }
    if (ended && inFlight === 0) call.end();
  };
  const fail = (code: grpc.status, message: string, reason: OtapStreamRefusal) => {
    if (failure) return;
    failure = { code, message };
    stats.streamsFailed++;
    opts.onStreamRefused?.(signal, reason, message);
    // Read nothing more; batches handed on before still get their status, then the stream ends.
    paused = true;
    call.pause();
    if (inFlight === 0) endFailed();
  };

  call.on('data', (buf: Buffer) => {
    if (refusedAuth) return;
    let batch: BatchArrowRecords;
    try {
      batch = decodeBatchArrowRecords(buf);
    } catch (e) {
      // Without a batch id there is nothing to acknowledge: end the stream.
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `invalid BatchArrowRecords: ${(e as Error).message}` });
      return;
    }
    stats.batches++;
    let ctx: RequestContext;
    let decoded;
    try {
      ctx = { ...base, bytes: buf.length };
      if (batch.headers.length) {
        const md: Record<string, string> = { ...(base.metadata ?? {}) };
        for (const [k, v] of hpack.decode(batch.headers)) md[k.toLowerCase()] = v;
        ctx.metadata = md;
      }
      const authErr = opts.authorize?.(signal, ctx);
      if (authErr) {
        const st: BatchStatus = { batchId: batch.batchId, statusCode: OtapStatusCode.UNAUTHENTICATED, statusMessage: `unauthenticated: ${authErr.message}` };
        if (!authenticated) {
          // Nothing of the stream was read yet, so nothing is lost by ending it, and skipping this
          // batch's payloads would leave later batches referring to schemas and dictionaries we
          // never saw. Ending it also keeps an unauthenticated client from holding a stream slot.
          // (No batch was handed on, so none is in flight.) Items are unknown: counting them would
          // mean parsing the Arrow framing we refuse to touch.
          refusedAuth = true;
          answer(st, authErr);
          stats.streamsUnauthenticated++;
          const details = `OTel Arrow stream ended: batch ${batch.batchId} did not authenticate: ${authErr.message}`;
          opts.onStreamRefused?.(signal, 'unauthenticated', details);
          paused = true;
          call.pause();
          call.emit('error', { code: grpc.status.UNAUTHENTICATED, details });
          return;
        }
        // After an authenticated batch, later delta dictionaries build on this batch's: skipping
        // its payloads would make the next batches fail or decode against the wrong entries. So
        // they are read (no model built) and the stream goes on; its sender has authenticated.
        let read;
        try {
          read = consumer.consume(batch, false);
        } catch (e) {
          // Still an authentication refusal to the sender; a dictionary limit still ends the stream.
          answer(st, authErr);
          if (e instanceof OtapDecodeError && e.streamFatal) fail(grpc.status.RESOURCE_EXHAUSTED, e.message, 'dictionary_limit');
          return;
        }
        opts.onRefusedItems?.(signal, read.items, ctx);
        answer(st, authErr);
        return;
      }
      authenticated = true;
      const refusal = opts.refusal?.(signal, ctx);
      decoded = consumer.consume(batch, !refusal);
      if (refusal) {
        opts.onRefusedItems?.(signal, decoded.items, ctx);
        answer(errorToBatchStatus(batch.batchId, refusal), refusal);
        return;
      }
    } catch (e) {
      answer(errorToBatchStatus(batch.batchId, e), e);
      if (e instanceof OtapDecodeError && e.streamFatal) fail(grpc.status.RESOURCE_EXHAUSTED, e.message, 'dictionary_limit');
      // A header block that failed may have half-updated the HPACK table, so later blocks could
      // decode to wrong metadata (a wrong tenant), and this batch's payloads, never read, leave
      // the dictionaries behind the sender's: the stream cannot go on (the Go receiver ends it too).
      else if (e instanceof HpackError) fail(grpc.status.INVALID_ARGUMENT, `OTel Arrow stream ended: ${e.message}`, 'invalid_headers');
      return;
    }
    stats.items += decoded.items;
    inFlight++;
    if (inFlight >= maxInFlight && !paused) {
      paused = true;
      call.pause();
    }
    let p: Promise<void>;
    try {
      p = handler(decoded.signal, decoded.data, ctx);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      () => answer({ batchId: batch.batchId, statusCode: OtapStatusCode.OK, statusMessage: '' }),
      (e) => answer(errorToBatchStatus(batch.batchId, e), e),
    ).finally(settle);
  });
  call.on('end', () => {
    ended = true;
    if (inFlight === 0 && !failure) call.end();
  });
  call.on('error', () => {
    ended = true;
  });
}
