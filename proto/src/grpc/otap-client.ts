// Exporter side of the OTel Arrow services: sends telemetry batches as BatchArrowRecords on a
// long-lived bidirectional stream and resolves each send() when the server's BatchStatus for its
// batch_id arrives. Status semantics follow the Go exporter (contrib otelarrowexporter):
// OK → resolved; UNAVAILABLE → RetryableError; INVALID_ARGUMENT, UNAUTHENTICATED → PermanentError;
// RESOURCE_EXHAUSTED → PermanentError (a BatchStatus carries no RetryInfo; a stream ending with
// RESOURCE_EXHAUSTED + RetryInfo → ThrottledError); any other code or an unknown batch_id breaks
// the stream (all pending sends fail with RetryableError). Streams are recycled after
// maxStreamLifetimeMs; each has its own producer state and HPACK encoder. A send given up by its
// caller (AbortSignal: the exporter's timeout) leaves its in-flight slot, and a batch written
// without a status by then breaks the stream: a server that stopped answering would otherwise
// hold every slot, and the callers queued behind them, for good.
import * as grpc from '@grpc/grpc-js';
import type { SignalData, SignalType } from '../model.ts';
import { PermanentError, RetryableError, ShutdownError, type PipelineError } from '../../../collector/src/component/errors.ts';
import { OtapProducer, splitBatch, type ProducerOptions } from '../otap/stream.ts';
import { OtapStatusCode, decodeBatchStatus, encodeBatchArrowRecords, type BatchStatus } from '../otap/messages.ts';
import { HpackEncoder } from '../otap/hpack.ts';
import { clientKeepaliveOptions, grpcErrorToPipelineError, rawDeserialize, rawSerialize, toMetadata, type ClientKeepalive } from './common.ts';
import { OTAP_METHODS } from './otap-server.ts';

export interface OtapClientOptions extends ProducerOptions {
  credentials?: grpc.ChannelCredentials;
  /** gRPC metadata sent when each stream opens (e.g. authorization). */
  headers?: Record<string, string>;
  /** Streams are closed and replaced after this long (Go default 30 s). */
  maxStreamLifetimeMs?: number;
  /** Sends awaiting their BatchStatus; send() waits for room beyond. Default 64. */
  maxInFlight?: number;
  /** HTTP/2 pings: a dead connection fails its streams within time + timeout, and they reopen. */
  keepalive?: ClientKeepalive;
  channelOptions?: grpc.ChannelOptions;
}

interface Pending {
  resolve: () => void;
  reject: (e: PipelineError) => void;
}

class ArrowStream {
  readonly producer: OtapProducer;
  readonly hpack = new HpackEncoder();
  readonly pending = new Map<bigint, Pending>();
  readonly opened = Date.now();
  broken = false;
  closing = false;
  call: grpc.ClientDuplexStream<Buffer, Buffer>;

  constructor(client: grpc.Client, path: string, metadata: grpc.Metadata, opts: ProducerOptions, private readonly onGone: (s: ArrowStream) => void) {
    this.producer = new OtapProducer(opts);
    this.call = client.makeBidiStreamRequest<Buffer, Buffer>(path, rawSerialize, rawDeserialize, metadata);
    this.call.on('data', (b: Buffer) => this.onStatus(b));
    this.call.on('error', (e: grpc.ServiceError) => this.fail(grpcErrorToPipelineError(e)));
    this.call.on('end', () => this.fail(new RetryableError('OTel Arrow stream ended by the server')));
    this.call.on('status', () => undefined);
  }

  private onStatus(buf: Buffer): void {
    let s: BatchStatus;
    try {
      s = decodeBatchStatus(buf);
    } catch (e) {
      this.breakStream(`undecodable BatchStatus: ${(e as Error).message}`);
      return;
    }
    const p = this.pending.get(s.batchId);
    if (!p) {
      this.breakStream(`BatchStatus for unknown batch_id ${s.batchId}`);
      return;
    }
    const msg = `OTel Arrow batch ${s.batchId}: ${s.statusMessage || 'status ' + s.statusCode}`;
    switch (s.statusCode) {
      case OtapStatusCode.OK:
        this.settle(s.batchId);
        p.resolve();
        break;
      case OtapStatusCode.UNAVAILABLE:
        this.settle(s.batchId);
        p.reject(new RetryableError(msg));
        break;
      case OtapStatusCode.INVALID_ARGUMENT:
      case OtapStatusCode.UNAUTHENTICATED: // retrying with the same credentials cannot help
      case OtapStatusCode.RESOURCE_EXHAUSTED:
        this.settle(s.batchId);
        p.reject(new PermanentError(msg));
        break;
      default:
        this.breakStream(`${msg} (code ${s.statusCode} ends the stream)`);
    }
  }

  private settle(id: bigint): void {
    this.pending.delete(id);
    if (this.closing && this.pending.size === 0) this.call.end();
  }

  breakStream(reason: string): void {
    this.fail(new RetryableError(`OTel Arrow stream broken: ${reason}`));
    this.call.cancel();
  }

  fail(err: PipelineError): void {
    if (!this.broken) {
      this.broken = true;
      this.onGone(this);
    }
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Half-close once every pending batch has its status. */
  retire(): void {
    this.closing = true;
    if (this.pending.size === 0 && !this.broken) this.call.end();
  }
}

export class OtapClient<S extends SignalType = SignalType> {
  private readonly client: grpc.Client;
  private stream: ArrowStream | null = null;
  private readonly opts: OtapClientOptions;
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  private closed = false;
  /** Counters for self-telemetry and tests. */
  readonly stats = { batches: 0, streams: 0, bytes: 0 };

  constructor(
    address: string,
    readonly signal: S,
    opts: OtapClientOptions = {},
  ) {
    this.opts = opts;
    this.client = new grpc.Client(address, opts.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      // grpc-js backs reconnects off up to 120 s by default; callers retry on their own schedule,
      // so cap it to pick a returning server up within seconds.
      'grpc.max_reconnect_backoff_ms': 5000,
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      ...clientKeepaliveOptions(opts.keepalive),
      ...opts.channelOptions,
    });
  }

  private current(): ArrowStream {
    const life = this.opts.maxStreamLifetimeMs ?? 30_000;
    if (this.stream && !this.stream.broken && Date.now() - this.stream.opened < life) return this.stream;
    this.stream?.retire();
    this.stats.streams++;
    this.stream = new ArrowStream(
      this.client,
      OTAP_METHODS[this.signal].path,
      toMetadata(this.opts.headers),
      { compression: this.opts.compression, zstdLevel: this.opts.zstdLevel },
      (s) => {
        if (this.stream === s) this.stream = null;
      },
    );
    return this.stream;
  }

  /**
   * Sends one batch; resolves on its OK BatchStatus. `metadata` travels HPACK-encoded in the
   * batch's headers field.
   */
  async send(data: SignalData[S], metadata?: Record<string, string>, abort?: AbortSignal): Promise<void> {
    if (this.closed) throw new ShutdownError('OTel Arrow client is closed');
    const parts = splitBatch(this.signal, data);
    if (parts.length > 1) {
      // u16 ids cap a batch at 65536 items: send the pieces as separate batches.
      await Promise.all(parts.map((p) => this.sendOne(p, metadata, abort)));
      return;
    }
    return this.sendOne(data, metadata, abort);
  }

  /** Sends waiting for an in-flight slot (for tests and self-telemetry). */
  get waiting(): number {
    return this.waiters.length;
  }

  private waitForSlot(abort?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const gaveUp = () => {
        const i = this.waiters.indexOf(wake);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new RetryableError('OTel Arrow send gave up waiting for an in-flight slot'));
      };
      const wake = () => {
        abort?.removeEventListener('abort', gaveUp);
        resolve();
      };
      if (abort?.aborted) return gaveUp();
      this.waiters.push(wake);
      abort?.addEventListener('abort', gaveUp, { once: true });
    });
  }

  private async sendOne(data: SignalData[S], metadata?: Record<string, string>, abort?: AbortSignal): Promise<void> {
    const max = this.opts.maxInFlight ?? 64;
    while (this.inFlight >= max) await this.waitForSlot(abort);
    if (abort?.aborted) {
      this.waiters.shift()?.(); // the slot this send was woken for goes to the next in line
      throw new RetryableError('OTel Arrow send given up before it was written');
    }
    this.inFlight++;
    try {
      const stream = this.current();
      let bytes: Buffer;
      let batchId: bigint;
      try {
        const headers = metadata && Object.keys(metadata).length ? stream.hpack.encode(metadata) : new Uint8Array(0);
        const batch = stream.producer.produce(this.signal, data, headers);
        batchId = batch.batchId;
        const enc = encodeBatchArrowRecords(batch);
        bytes = Buffer.from(enc.buffer, enc.byteOffset, enc.byteLength);
      } catch (e) {
        // Encoding state may be half-advanced: start over on a fresh stream next time.
        stream.fail(new RetryableError('encoder reset'));
        stream.call.cancel();
        throw new PermanentError(`OTel Arrow encoding failed: ${(e as Error).message}`, { cause: e });
      }
      this.stats.batches++;
      this.stats.bytes += bytes.length;
      const noStatus = () => stream.breakStream(`batch ${batchId} got no status before its sender gave up`);
      abort?.addEventListener('abort', noStatus, { once: true });
      try {
        await new Promise<void>((resolve, reject) => {
          stream.pending.set(batchId, { resolve, reject });
          stream.call.write(bytes);
        });
      } finally {
        abort?.removeEventListener('abort', noStatus);
      }
    } finally {
      this.inFlight--;
      this.waiters.shift()?.();
    }
  }

  /** Waits for pending statuses (up to graceMs), then closes the channel. Idempotent. */
  async close(graceMs = 5000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const s = this.stream;
    this.stream = null;
    if (s && !s.broken) {
      s.retire();
      const deadline = Date.now() + graceMs;
      while (s.pending.size > 0 && !s.broken && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      if (s.pending.size > 0) {
        s.fail(new ShutdownError('OTel Arrow client closed before the status arrived'));
        s.call.cancel();
      }
    }
    this.client.close();
  }
}
