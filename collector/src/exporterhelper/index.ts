// The one helper every exporter goes through. An exporter supplies only `push(batch, ctx, signal)`;
// the helper adds a bounded sending queue (in memory or persistent on disk), retries with
// exponential backoff that honours server-suggested delays, a per-request timeout, and counters.
//
// Error handling of push():
//   PermanentError                      → dropped and counted (never retried)
//   RetryableError / ThrottledError     → retried after max(backoff, retryAfterMs)
//   any other error (network, timeout)  → treated as retryable
// Retries stop after retry_on_failure.max_elapsed_time (counted), at the caller's deadline (no
// queue only) or at shutdown. With a queue the data is then dropped; without one the caller gets a
// RetryableError (core's "no more retries left" is not permanent: the receiver answers
// UNAVAILABLE / 503 and the client sends again), and a PermanentError only for a permanent one.
import { countItems, type SignalData, type SignalType } from '../../../proto/src/model.ts';
import {
  PermanentError,
  RetryableError,
  ShutdownError,
  retryDelayOf,
  type Component,
  type Consumer,
  type CreateSettings,
  type Host,
  type RequestContext,
} from '../component/index.ts';
import { MetricsRegistry, SelfTelemetry, type MetricFamily } from '../telemetry/metrics.ts';
import type { ExporterHelperConfig, RetryConfig } from './config.ts';
import { PersistentQueue, QueueFullError } from './persistent-queue.ts';

export * from './config.ts';
export { PersistentQueue, QueueFullError } from './persistent-queue.ts';

/**
 * What the backend accepted only in part (OTLP partial success): the rest was delivered. The
 * rejected items are not retried (the backend refused them for good); they are counted and logged.
 */
export interface PartialRejection {
  rejectedItems: number;
  message: string;
}

export type PushFn<S extends SignalType> = (batch: SignalData[S], ctx: RequestContext, abort: AbortSignal) => Promise<void | PartialRejection>;

/** Serialises batches for the persistent queue (OTLP protobuf in practice). */
export interface BatchCodec {
  encode<S extends SignalType>(signal: S, batch: SignalData[S]): Uint8Array;
  decode<S extends SignalType>(signal: S, bytes: Uint8Array): SignalData[S];
}

export interface ExporterHooks {
  /** Runs before the queue starts consuming (open connections, files). */
  start?(host: Host): Promise<void>;
  /** Runs after the queue drained (close connections, files). */
  shutdown?(): Promise<void>;
  /** Needed when sending_queue.storage is configured. */
  codec?: BatchCodec;
  /** Clock and sleep, replaceable in tests. */
  now?: () => number;
}

interface QueueItem<S extends SignalType> {
  batch: SignalData[S];
  ctx: RequestContext;
  items: number;
}

/** Backoff for attempt n (0-based), before jitter. */
export function backoffDelay(r: RetryConfig, attempt: number): number {
  return Math.min(r.maxIntervalMs, r.initialIntervalMs * Math.pow(r.multiplier, attempt));
}

function sleep(ms: number, abort: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (abort.aborted) return resolve(false);
    const t = setTimeout(() => {
      abort.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    abort.addEventListener('abort', onAbort, { once: true });
  });
}

/** How a send ended: delivered, aborted by shutdown, or given up on (counted in send_failed). */
type SendResult = 'sent' | 'aborted' | { gaveUp: 'permanent' | 'retryable'; err: unknown };

function withoutDeadline(ctx: RequestContext): RequestContext {
  if (ctx.deadline === undefined) return ctx;
  const { deadline: _, ...rest } = ctx;
  return rest;
}

/** Longest single setTimeout (larger values fire at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A bounded FIFO of requests with waiting consumers (ring buffer; no per-item closures). */
class MemoryQueue<T> {
  private buf: Array<T | undefined>;
  private head = 0;
  private len = 0;
  private takers: Array<(v: T | undefined) => void> = [];
  private spaceWaiters: Array<() => void> = [];
  closed = false;

  constructor(readonly capacity: number) {
    this.buf = new Array(capacity);
  }

  get size(): number {
    return this.len;
  }

  offer(v: T): boolean {
    if (this.closed) return false;
    const t = this.takers.shift();
    if (t) {
      t(v);
      return true;
    }
    if (this.len >= this.capacity) return false;
    this.buf[(this.head + this.len) % this.capacity] = v;
    this.len++;
    return true;
  }

  /** Resolves when there may be room (block_on_overflow), or after `ms` without. */
  waitForSpace(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      let t: NodeJS.Timeout | undefined;
      const w = () => {
        clearTimeout(t);
        resolve();
      };
      this.spaceWaiters.push(w);
      if (ms !== undefined)
        t = setTimeout(() => {
          const i = this.spaceWaiters.indexOf(w);
          if (i >= 0) this.spaceWaiters.splice(i, 1);
          resolve();
        }, Math.min(ms, MAX_TIMER_MS));
    });
  }

  take(): Promise<T | undefined> | T | undefined {
    if (this.len > 0) {
      const v = this.buf[this.head];
      this.buf[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.len--;
      const w = this.spaceWaiters.shift();
      if (w) w();
      return v;
    }
    if (this.closed) return undefined;
    return new Promise((r) => this.takers.push(r));
  }

  drainAll(): T[] {
    const out: T[] = [];
    while (this.len > 0) out.push(this.take() as T);
    return out;
  }

  close(): void {
    this.closed = true;
    for (const t of this.takers.splice(0)) t(undefined);
    for (const w of this.spaceWaiters.splice(0)) w();
  }
}

export class QueuedExporter<S extends SignalType> implements Component, Consumer<S> {
  private readonly telemetry: SelfTelemetry;
  private readonly labels: Record<string, string>;
  private readonly sent: { value: number };
  private readonly retries: { value: number };
  private readonly failed: MetricFamily;
  private readonly enqueueFailed: { value: number };
  private readonly ackFailures: { value: number };
  private memQueue?: MemoryQueue<QueueItem<S>>;
  private diskQueue?: PersistentQueue;
  private readonly workers: Promise<void>[] = [];
  private readonly abort = new AbortController();
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopped?: Promise<void>;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  private unregisterCollect?: () => void;
  private readonly now: () => number;
  /** Appends waiting for room in the persistent queue (block_on_overflow), woken by acks. */
  private readonly diskSpaceWaiters = new Set<() => void>();
  /** Bumped whenever the persistent queue may have room again, so a wake-up between a refused append and its wait is not missed. */
  private diskSpaceGen = 0;

  constructor(
    private readonly settings: CreateSettings,
    readonly cfg: ExporterHelperConfig,
    private readonly signal: S,
    private readonly push: PushFn<S>,
    private readonly hooks: ExporterHooks = {},
  ) {
    this.telemetry = settings.telemetry ?? new SelfTelemetry(new MetricsRegistry());
    const reg = this.telemetry.registry;
    this.labels = { exporter: settings.id, signal };
    this.now = hooks.now ?? Date.now;
    this.sent = reg.counter('kscope_exporter_sent_items_total', 'Items an exporter delivered.').at(this.labels);
    this.retries = reg.counter('kscope_exporter_retries_total', 'Send attempts that failed and were retried.').at(this.labels);
    this.failed = reg.counter('kscope_exporter_send_failed_items_total', 'Items an exporter gave up on, by reason.');
    this.enqueueFailed = reg.counter('kscope_exporter_enqueue_failed_items_total', 'Items refused because the sending queue was full.').at(this.labels);
    this.ackFailures = reg.counter('kscope_exporter_queue_ack_failures_total', 'Failed writes of a persistent queue acknowledgement (retried; the record is sent again after a restart if none succeeds).').at(this.labels);
    if (cfg.queue.enabled && cfg.queue.storage && !hooks.codec) throw new Error(`exporter ${settings.id}: a persistent queue needs a batch codec`);
  }

  /** Items waiting in the queue (not counting in-flight sends). */
  get queueSize(): number {
    return this.memQueue?.size ?? this.diskQueue?.pendingCount ?? 0;
  }

  /** Records the persistent queue still holds (pending or unacknowledged); 0 without one. */
  get persistedCount(): number {
    return this.diskQueue?.size ?? 0;
  }

  async start(host: Host): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'running';
    if (this.hooks.start) await this.hooks.start(host);
    const q = this.cfg.queue;
    if (!q.enabled) return;
    if (q.storage) {
      this.diskQueue = new PersistentQueue(q.storage, this.settings.logger);
      this.diskQueue.open();
    } else {
      this.memQueue = new MemoryQueue(q.queueSize);
    }
    const reg = this.telemetry.registry;
    const size = reg.gauge('kscope_exporter_queue_size', 'Requests waiting in the sending queue.');
    const bytes = reg.gauge('kscope_exporter_queue_bytes', 'Bytes held by the persistent sending queue on disk.');
    const droppedOldest = reg.counter('kscope_exporter_queue_dropped_oldest_batches_total', 'Batches dropped from a full persistent queue to make room for newer data (drop_oldest).');
    const corrupt = reg.counter('kscope_exporter_queue_corrupt_records_total', 'Records of the persistent queue found damaged on open and skipped (the damaged file is kept as .corrupt).');
    this.unregisterCollect = reg.onCollect(() => {
      size.set(this.labels, this.queueSize);
      if (this.diskQueue) {
        bytes.set(this.labels, this.diskQueue.bytes);
        droppedOldest.set(this.labels, this.diskQueue.droppedOldest);
        corrupt.set(this.labels, this.diskQueue.corruptRecords);
      }
    });
    for (let i = 0; i < q.numConsumers; i++) this.workers.push(this.diskQueue ? this.diskWorker() : this.memWorker());
  }

  async consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    // block_on_overflow waits for room until the caller's deadline (no deadline: until room or shutdown).
    return this.accept(batch, ctx, this.cfg.queue.blockOnOverflow ? (ctx.deadline ?? Infinity) : undefined);
  }

  /**
   * Like consume(), but a full queue is waited on until `until` (ms since epoch; undefined = not
   * at all) whatever block_on_overflow says. The load balancer uses it for the parts of a split
   * batch, so one momentarily full backend does not make the client resend the parts others
   * already queued, and to re-route a retiring backend's data without waiting.
   */
  consumeUntil(batch: SignalData[S], ctx: RequestContext, until: number | undefined): Promise<void> {
    return this.accept(batch, ctx, until);
  }

  /** `waitUntil`: how long a full queue is waited on; undefined = refuse at once. */
  private async accept(batch: SignalData[S], ctx: RequestContext, waitUntil: number | undefined): Promise<void> {
    if (this.state !== 'running') throw new ShutdownError(`exporter ${this.settings.id} is not running`);
    const items = countItems(this.signal, batch);
    // Nothing to send: a record of an empty batch would cost an index entry and a write, and a
    // stream of them could fill the queue's count with nothing.
    if (items === 0) return;
    // A queued request outlives the caller's: its deadline bounds only the wait for room (core's
    // queue sender detaches the context the same way), not the sends.
    const queuedCtx = this.memQueue || this.diskQueue ? withoutDeadline(ctx) : ctx;
    if (this.diskQueue) {
      const payload = this.encodeRecord(batch, queuedCtx);
      for (;;) {
        const gen = this.diskSpaceGen;
        try {
          await this.diskQueue.append(payload);
          return;
        } catch (err) {
          if (err instanceof QueueFullError && !err.neverFits && waitUntil !== undefined && (await this.waitForDiskSpace(gen, waitUntil))) continue;
          this.enqueueFailed.value += items;
          if (err instanceof QueueFullError) throw new RetryableError(`exporter ${this.settings.id}: ${err.message}`, 1000);
          throw new RetryableError(`exporter ${this.settings.id}: persistent queue write failed: ${(err as Error).message}`, 1000, { cause: err });
        }
      }
    }
    if (this.memQueue) {
      const item: QueueItem<S> = { batch, ctx: queuedCtx, items };
      while (!this.memQueue.offer(item)) {
        const left = waitUntil === undefined ? 0 : waitUntil - this.now();
        if (left <= 0 || this.memQueue.closed) {
          this.enqueueFailed.value += items;
          throw new RetryableError(`exporter ${this.settings.id}: sending queue is full (${this.cfg.queue.queueSize} requests)`, 1000);
        }
        await this.memQueue.waitForSpace(Number.isFinite(left) ? left : undefined);
      }
      return;
    }
    // No queue: send in the caller's context (its deadline bounds attempts and retries) and report
    // the outcome. Only a permanent error is permanent: anything else the caller may send again.
    const r = await this.send(batch, ctx, items);
    if (r === 'sent') return;
    if (r === 'aborted') throw new ShutdownError();
    const msg = `exporter ${this.settings.id}: ${(r.err as Error)?.message ?? String(r.err)}`;
    if (r.gaveUp === 'permanent') throw new PermanentError(msg, { cause: r.err });
    throw new RetryableError(msg, retryDelayOf(r.err), { cause: r.err });
  }

  /**
   * Waits until the persistent queue may have room (an acknowledgement freed a segment), `until`
   * passes (false) or the exporter aborts (false). True at once if room came since `gen`.
   */
  private waitForDiskSpace(gen: number, until: number): Promise<boolean> {
    if (this.diskSpaceGen !== gen) return Promise.resolve(true);
    const left = until - this.now();
    if (left <= 0 || this.abort.signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        clearTimeout(t);
        this.diskSpaceWaiters.delete(wake);
        this.abort.signal.removeEventListener('abort', onAbort);
        resolve(v);
      };
      const wake = () => done(true);
      const onAbort = () => done(false);
      // Room can also come back without an ack (a failed write releases its reservation): look again now and then.
      const t = setTimeout(() => done(this.now() < until), Math.min(left, 1000));
      this.diskSpaceWaiters.add(wake);
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private diskSpaceMayBeFree(): void {
    this.diskSpaceGen++;
    for (const w of [...this.diskSpaceWaiters]) w();
  }

  private encodeRecord(batch: SignalData[S], ctx: RequestContext): Uint8Array {
    // Only what a later send needs; auth material is deliberately not persisted.
    const meta = Buffer.from(JSON.stringify({ tenant: ctx.tenant, tier: ctx.tier }));
    const body = this.hooks.codec!.encode(this.signal, batch);
    const out = Buffer.allocUnsafe(4 + meta.length + body.length);
    out.writeUInt32LE(meta.length, 0);
    out.set(meta, 4);
    out.set(body, 4 + meta.length);
    return out;
  }

  private decodeRecord(b: Uint8Array): { batch: SignalData[S]; ctx: RequestContext } {
    const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    const ml = buf.readUInt32LE(0);
    const meta = JSON.parse(buf.subarray(4, 4 + ml).toString('utf8')) as { tenant?: string; tier?: string };
    const ctx: RequestContext = {};
    if (meta.tenant !== undefined) ctx.tenant = meta.tenant;
    if (meta.tier !== undefined) ctx.tier = meta.tier;
    return { batch: this.hooks.codec!.decode(this.signal, buf.subarray(4 + ml)), ctx };
  }

  private async memWorker(): Promise<void> {
    const q = this.memQueue!;
    for (;;) {
      const it = await q.take();
      if (it === undefined) return;
      this.inFlight++;
      try {
        await this.send(it.batch, it.ctx, it.items);
      } finally {
        this.inFlight--;
        this.checkIdle();
      }
    }
  }

  private async diskWorker(): Promise<void> {
    const q = this.diskQueue!;
    for (;;) {
      let rec: { seq: number; payload: Uint8Array } | undefined;
      try {
        rec = await q.take();
      } catch (err) {
        this.settings.logger.error({ err }, 'persistent queue read failed');
        if (!(await sleep(1000, this.abort.signal))) return;
        continue;
      }
      if (rec === undefined) return;
      this.inFlight++;
      try {
        let decoded: { batch: SignalData[S]; ctx: RequestContext } | undefined;
        try {
          decoded = this.decodeRecord(rec.payload);
        } catch (err) {
          this.settings.logger.error({ err, seq: rec.seq }, 'persistent queue: undecodable record dropped');
          this.failed.add({ ...this.labels, reason: 'corrupt' }, 1);
        }
        const r = decoded ? await this.send(decoded.batch, decoded.ctx, countItems(this.signal, decoded.batch)) : undefined;
        // Aborted sends stay unacknowledged: the next start replays them.
        if (r !== 'aborted') {
          await this.acknowledge(q, rec.seq);
          this.diskSpaceMayBeFree();
        }
      } finally {
        this.inFlight--;
        this.checkIdle();
      }
    }
  }

  /**
   * Records that `seq` left the queue. A failed write (disk full, I/O error) is counted and
   * retried with backoff until it succeeds or the exporter stops; the record then stays
   * unacknowledged on disk and is sent again after a restart (a duplicate, not a loss).
   */
  private async acknowledge(q: PersistentQueue, seq: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await q.ack(seq);
        return;
      } catch (err) {
        this.ackFailures.value++;
        this.settings.logger.error({ err, seq }, 'persistent queue: writing an acknowledgement failed; retrying');
        if (!(await sleep(Math.min(100 * 2 ** attempt, 30_000), this.abort.signal))) return;
      }
    }
  }

  /**
   * Requests not finished yet. The persistent queue's count includes records a worker has claimed
   * but not received yet (still being read): its pending count alone would call a queue idle that
   * is not, and a shutdown right after start would abort instead of draining.
   */
  private get unfinished(): number {
    return this.inFlight + (this.memQueue?.size ?? this.diskQueue?.size ?? 0);
  }

  private checkIdle(): void {
    if (this.unfinished === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * One request through timeout + retry. Never throws. `ctx.deadline` (set only on the no-queue
   * path: queued requests drop it) bounds every attempt, and retrying stops once the next attempt
   * would start after it (core's retry sender: "request will be cancelled before next retry").
   */
  private async send(batch: SignalData[S], ctx: RequestContext, items: number): Promise<SendResult> {
    const r = this.cfg.retry;
    const started = this.now();
    const callerDeadline = ctx.deadline;
    const queued = this.memQueue !== undefined || this.diskQueue !== undefined;
    // Without a queue the caller gets the error back and may send again: nothing is dropped here.
    const outcome = queued ? 'data dropped' : 'returned to the caller as retryable';
    let err: unknown;
    for (let attempt = 0; ; attempt++) {
      const now = this.now();
      if (callerDeadline !== undefined && now >= callerDeadline) {
        // Normally before the first attempt only: later ones are checked before the backoff sleep.
        this.failed.add({ ...this.labels, reason: 'deadline' }, items);
        return { gaveUp: 'retryable', err: err ?? new RetryableError(`the caller's deadline passed before the request was sent`) };
      }
      // timeout 0 = no timeout of our own (core adds no timeout sender then); the caller's
      // deadline, if any, still bounds the attempt.
      const ownDeadline = this.cfg.timeoutMs > 0 ? now + this.cfg.timeoutMs : undefined;
      const byCaller = callerDeadline !== undefined && (ownDeadline === undefined || callerDeadline < ownDeadline);
      const deadline = byCaller ? callerDeadline : ownDeadline;
      const attemptCtx: RequestContext = { ...ctx };
      if (deadline !== undefined) attemptCtx.deadline = deadline;
      const ac = new AbortController();
      const onAbort = () => ac.abort(this.abort.signal.reason);
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
      let timer: NodeJS.Timeout | undefined;
      try {
        let pushed = this.push(batch, attemptCtx, ac.signal);
        if (deadline !== undefined) {
          const ms = deadline - now;
          const timeout = new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              ac.abort(new Error('timeout'));
              reject(new RetryableError(byCaller ? `exporter ${this.settings.id}: the caller's deadline passed during the request` : `exporter ${this.settings.id}: request timed out after ${this.cfg.timeoutMs} ms`));
            }, Math.min(ms, MAX_TIMER_MS));
          });
          pushed = Promise.race([pushed, timeout]);
        }
        const partial = await pushed;
        const rejected = partial ? Math.min(items, Math.max(0, partial.rejectedItems)) : 0;
        if (partial) {
          this.failed.add({ ...this.labels, reason: 'rejected' }, rejected);
          this.settings.logger.warn({ rejected, items, message: partial.message }, 'partial success: the backend rejected part of the data');
        }
        this.sent.value += items - rejected;
        return 'sent';
      } catch (e) {
        err = e;
      } finally {
        clearTimeout(timer);
        this.abort.signal.removeEventListener('abort', onAbort);
      }
      if (err instanceof PermanentError) {
        this.failed.add({ ...this.labels, reason: 'permanent' }, items);
        this.settings.logger.warn({ err: (err as Error).message, items }, 'permanent error: data dropped');
        return { gaveUp: 'permanent', err };
      }
      if (this.abort.signal.aborted) return this.giveUp(items, 'shutdown');
      if (!r.enabled) {
        this.failed.add({ ...this.labels, reason: 'retry_disabled' }, items);
        this.settings.logger.warn({ err: (err as Error)?.message, items }, `send failed and retry is disabled: ${outcome}`);
        return { gaveUp: 'retryable', err };
      }
      const hinted = retryDelayOf(err) ?? 0;
      const base = backoffDelay(r, attempt);
      const jitter = 1 + r.randomizationFactor * (Math.random() * 2 - 1);
      const wait = Math.max(hinted, base * jitter);
      const after = this.now();
      if (r.maxElapsedMs > 0 && after - started + wait > r.maxElapsedMs) {
        this.failed.add({ ...this.labels, reason: 'retries_exhausted' }, items);
        this.settings.logger.warn({ err: (err as Error)?.message, items, elapsedMs: after - started }, `retries exhausted: ${outcome}`);
        return { gaveUp: 'retryable', err };
      }
      if (callerDeadline !== undefined && after + wait >= callerDeadline) {
        this.failed.add({ ...this.labels, reason: 'deadline' }, items);
        this.settings.logger.warn({ err: (err as Error)?.message, items, elapsedMs: after - started }, `the next retry would start after the caller's deadline: ${outcome}`);
        return { gaveUp: 'retryable', err };
      }
      this.retries.value++;
      this.settings.logger.debug({ err: (err as Error)?.message, attempt, waitMs: Math.round(wait) }, 'send failed, retrying');
      if (!(await sleep(wait, this.abort.signal))) return this.giveUp(items, 'shutdown');
    }
  }

  /** Batches and items given up on at shutdown (in-memory queue), logged once after the drain. */
  private givenUp = { batches: 0, items: 0 };

  private giveUp(items: number, reason: string): 'aborted' {
    // Persistent queue: the record stays on disk, so this is not a loss.
    if (!this.diskQueue) {
      this.failed.add({ ...this.labels, reason }, items);
      if (this.memQueue) {
        this.givenUp.batches++;
        this.givenUp.items += items;
      } else this.settings.logger.warn({ items, reason }, 'send given up: data dropped');
    }
    return 'aborted';
  }

  /** Stops intake, drains the queue (bounded by drain_timeout), then closes. Idempotent. */
  shutdown(): Promise<void> {
    this.stopped ??= (async () => {
      if (this.state === 'new') {
        this.state = 'stopped';
        return;
      }
      this.state = 'stopping';
      if (this.memQueue || this.diskQueue) {
        if (this.unfinished > 0) {
          const idle = new Promise<void>((r) => this.idleWaiters.push(r));
          let t: NodeJS.Timeout | undefined;
          const timeout = new Promise<void>((r) => (t = setTimeout(r, this.cfg.queue.drainTimeoutMs)));
          await Promise.race([idle, timeout]);
          clearTimeout(t);
        }
        this.abort.abort(new ShutdownError());
        if (this.memQueue) {
          this.memQueue.close();
          const left = this.memQueue.drainAll();
          let n = 0;
          for (const it of left) n += it.items;
          if (n > 0) {
            this.failed.add({ ...this.labels, reason: 'shutdown' }, n);
            this.settings.logger.warn({ items: n }, 'shutdown: queued data dropped after drain timeout');
          }
        }
        this.diskQueue?.stopTaking();
        await Promise.all(this.workers);
        // one line for all the sends cut short (a line each could flood the log at shutdown)
        if (this.givenUp.items > 0) this.settings.logger.warn({ ...this.givenUp, reason: 'shutdown' }, 'shutdown: in-flight data dropped (sends given up)');
        if (this.diskQueue) await this.diskQueue.close();
        this.unregisterCollect?.();
      } else {
        this.abort.abort(new ShutdownError());
      }
      if (this.hooks.shutdown) await this.hooks.shutdown();
      this.state = 'stopped';
    })();
    return this.stopped;
  }
}

/** The constructor most exporters call from their factory's create(). */
export function createQueuedExporter<S extends SignalType>(
  settings: CreateSettings,
  cfg: ExporterHelperConfig,
  signal: S,
  push: PushFn<S>,
  hooks?: ExporterHooks,
): QueuedExporter<S> {
  return new QueuedExporter(settings, cfg, signal, push, hooks);
}
