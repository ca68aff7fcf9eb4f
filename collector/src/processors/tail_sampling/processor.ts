// Tail sampling: buffers spans per trace for decision_wait, then decides per trace with the
// policy set of the trace's tenant / QoS tier, forwards kept traces and remembers the decision
// so late spans follow it.
import type { Span, ResourceSpans, ScopeSpans, TracesData } from '../../../../proto/src/model.ts';
import type { Component, ComponentCounters, Consumer, Host, Logger, RequestContext } from '../../component/index.ts';
import { RetryableError, ShutdownError } from '../../component/errors.ts';
import type { SelfTelemetry } from '../../telemetry/metrics.ts';
import { DEFAULT_POLICY_SET, type TailSamplingConfig } from './config.ts';
import { LruSet } from './lru.ts';
import { PolicySet, type TraceView } from './policies.ts';
import { spanHeapBytes, spanWireBytes, traceKey, TracesBuilder } from './traces.ts';
import { encodeTraces } from '../../../../proto/src/otlp/encode.ts';
import { spanFieldRanges, wrapSpanFields } from './spanbytes.ts';
import { decodeTraces } from '../../../../proto/src/otlp/decode.ts';

interface TraceEntry extends TraceView {
  key: string;
  /** Time (ms, processor clock) at which the trace is due for a decision. */
  deadline: number;
  heapBytes: number;
  set: PolicySet;
  tenant: string | undefined;
  tier: string | undefined;
  /** The ScopeSpans each span came in (parallel to spans). */
  scopes: ScopeSpans[];
  /** span_storage: encoded — slab of each span's OTLP bytes, and (offset, length) pairs. */
  encSlabs?: Uint8Array[];
  encPos?: number[];
}

// Encoded spans are copied into shared slabs: one ArrayBuffer per 256 KiB of spans instead of one
// per span. Spans arrive and are decided in time order, so a slab's spans are released together.
const SLAB_BYTES = 256 * 1024;
const ENCODED_TRACE_OVERHEAD = 900;
const ENCODED_SPAN_OVERHEAD = 50;

/** Kept spans of one tenant/tier on their way downstream, and the bytes charged for them. */
interface Out { b: TracesBuilder; ctx: RequestContext; bytes: number }

export interface TailSamplingMetrics {
  liveTraces: number;
  bufferedSpans: number;
  bufferedWireBytes: number;
  bufferedHeapBytes: number;
  /**
   * Kept spans handed to the next consumer whose consume() has not settled yet. Their heap bytes
   * count against max_buffered_bytes together with bufferedHeapBytes.
   */
  inflight: { forwards: number; spans: number; heapBytes: number };
  /** Requests / spans refused (retryable) while in-flight forwards held max_buffered_bytes full. */
  refused: { requests: number; spans: number };
  /** span_storage: encoded — ticks that left due traces undecided until in-flight bytes free up. */
  deferredDecisions: number;
  spansReceived: number;
  spansForwarded: number;
  tracesSampled: number;
  tracesNotSampled: number;
  /** Per policy set, per top-level policy: traces it voted sampled / not sampled / dropped. */
  policies: Record<string, Record<string, { sampled: number; notSampled: number; dropped: number }>>;
  /** Per policy set: final decisions. */
  policySets: Record<string, { sampled: number; notSampled: number }>;
  /** Traces (and their spans) evicted before their decision: num_traces or max_buffered_bytes. */
  droppedTooEarly: { traces: number; spans: number };
  /** Spans arriving after their trace's decision, by that decision. */
  lateSpans: { sampled: number; notSampled: number };
  oversize: { spansDropped: number; earlyDecisions: number };
  shutdown: { tracesDropped: number; spansDropped: number; tracesFlushed: number };
  invalidSpans: number;
  forwardErrors: number;
  /** span_storage: encoded — buffered traces that failed to decode (dropped). */
  decodeErrors: number;
  decisionCache: { sampled: number; notSampled: number };
}

export interface TailSamplingOptions {
  /** Clock in ms (monotonic); tests inject a manual one. */
  now?: () => number;
  /** Start the ticker on start(); tests drive tick() themselves. Default true. */
  autoTick?: boolean;
  /** Self-telemetry registry: the metrics() snapshot is exported on each scrape. */
  telemetry?: SelfTelemetry;
  /** Component id used as the `processor` label. */
  id?: string;
}

export class TailSamplingProcessor implements Component, Consumer<'traces'> {
  private readonly pending = new Map<string, TraceEntry>();
  private readonly sampledCache: LruSet;
  private readonly notSampledCache: LruSet;
  private readonly sets = new Map<string, PolicySet>();
  private readonly now: () => number;
  private readonly autoTick: boolean;
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private unregisterTelemetry: (() => void) | undefined;
  private readonly telemetry: SelfTelemetry | undefined;
  private readonly id: string;
  private stopping: Promise<void> | undefined;
  /** Settles (never rejects) when a forward settles; bounded through inflightHeap. */
  private readonly inflight = new Set<Promise<void>>();
  private due: TraceEntry[];
  private bufferedSpans = 0;
  private bufferedWire = 0;
  private bufferedHeap = 0;
  private inflightSpans = 0;
  private inflightHeap = 0;
  /** Whether the last admission check refused (logs only the transitions). */
  private refusing = false;
  /** span_storage: encoded — decoded vs buffered bytes of kept traces, to predict decode growth. */
  private keptDecodedBytes = 0;
  private keptEncodedBytes = 0;
  private readonly m = {
    spansReceived: 0, spansForwarded: 0,
    droppedTooEarlyTraces: 0, droppedTooEarlySpans: 0,
    lateSampled: 0, lateNotSampled: 0,
    oversizeDropped: 0, earlyDecisions: 0,
    shutdownTracesDropped: 0, shutdownSpansDropped: 0, shutdownFlushed: 0,
    invalidSpans: 0, forwardErrors: 0, decodeErrors: 0,
    refusedRequests: 0, refusedSpans: 0, deferredDecisions: 0,
  };
  private readonly encoded: boolean;
  private slab = new Uint8Array(0);
  private slabPos = 0;
  /** Encoded batch being consumed and the (offset, length) of each span field in it. */
  private encBatch: Uint8Array = new Uint8Array(0);
  private readonly encRanges: number[] = [];
  private encIndex = 0;
  readonly counters: ComponentCounters = { accepted: 0, refused: 0, dropped: 0 };

  constructor(
    readonly cfg: TailSamplingConfig,
    private readonly next: Consumer<'traces'>,
    private readonly logger?: Logger,
    opts: TailSamplingOptions = {},
  ) {
    this.now = opts.now ?? (() => performance.now());
    this.autoTick = opts.autoTick ?? true;
    this.encoded = cfg.spanStorage === 'encoded';
    this.telemetry = opts.telemetry;
    this.id = opts.id ?? 'tail_sampling';
    this.sampledCache = new LruSet(cfg.decisionCache.sampledCacheSize);
    this.notSampledCache = new LruSet(cfg.decisionCache.nonSampledCacheSize);
    this.sets.set(DEFAULT_POLICY_SET, new PolicySet(DEFAULT_POLICY_SET, cfg.policies, cfg.sampleOnFirstMatch));
    for (const [name, ps] of Object.entries(cfg.policySets)) this.sets.set(name, new PolicySet(name, ps, cfg.sampleOnFirstMatch));
    // JS Maps cannot reserve capacity; the hint pre-sizes the per-tick batch of due traces.
    const perTick = Math.ceil((cfg.expectedNewTracesPerSec * cfg.tickIntervalMs) / 1000);
    this.due = perTick > 0 ? new Array<TraceEntry>(perTick) : [];
    this.due.length = 0;
  }

  async start(_host?: Host): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.telemetry) this.unregisterTelemetry = this.telemetry.registry.onCollect(() => this.exportTelemetry());
    if (this.autoTick) {
      // One ticker for every trace; each tick decides the batch of traces that are due.
      this.timer = setInterval(() => this.tick(), this.cfg.tickIntervalMs);
      this.timer.unref();
    }
  }

  /** The policy set for a request: tenant override, then tier mapping, then the default set. */
  policySetFor(ctx: RequestContext): PolicySet {
    const byTenant = ctx.tenant !== undefined ? this.cfg.tenants[ctx.tenant] : undefined;
    const name = byTenant ?? (ctx.tier !== undefined ? this.cfg.tiers[ctx.tier] : undefined) ?? DEFAULT_POLICY_SET;
    return this.sets.get(name)!;
  }

  /**
   * Back-pressure: while forwards the next consumer has not settled hold part of
   * max_buffered_bytes, a request that would not fit in what is left is refused with a retryable
   * error. Accepting it would evict the oldest undecided traces, i.e. lose data already accepted.
   * Receivers call this before decoding, when the size is unknown (at least one span); consume()
   * passes the request's span count.
   */
  refusal(spans = 1): Error | undefined {
    let full = false;
    if (this.inflightHeap > 0) {
      const held = this.bufferedHeap + this.inflightHeap;
      // The request's cost is not known before it is buffered: estimate it at the mean accounted
      // bytes per span held now. A larger request still fits the bound through eviction.
      const perSpan = held / (this.bufferedSpans + this.inflightSpans);
      full = held + spans * perSpan > this.cfg.maxBufferedBytes || held >= this.cfg.maxBufferedBytes;
    }
    if (full !== this.refusing) {
      this.refusing = full;
      const f = { bufferedBytes: this.bufferedHeap, inflightBytes: this.inflightHeap, maxBufferedBytes: this.cfg.maxBufferedBytes };
      if (full) this.logger?.warn(f, 'tail_sampling: max_buffered_bytes full with undelivered forwards; refusing data');
      else this.logger?.info(f, 'tail_sampling: accepting data again');
    }
    if (!full) return undefined;
    this.m.refusedRequests++;
    return new RetryableError(
      `tail_sampling: max_buffered_bytes (${this.cfg.maxBufferedBytes}) is full: ${this.inflightHeap} bytes wait for the next consumer`,
    );
  }

  async consume(batch: TracesData, ctx: RequestContext): Promise<void> {
    if (this.stopping) {
      this.counters.refused++;
      throw new ShutdownError('tail_sampling is shutting down');
    }
    let spans = 0;
    if (this.inflightHeap > 0) for (const rs of batch.resourceSpans) for (const ss of rs.scopeSpans) spans += ss.spans.length;
    const refused = this.refusal(spans);
    if (refused) {
      this.m.refusedSpans += spans;
      this.counters.refused += spans;
      throw refused;
    }
    const now = this.now();
    const cfg = this.cfg;
    let set: PolicySet | undefined;
    let late: Out | undefined;
    let outs: Map<string, Out> | undefined;
    let n = 0;
    if (this.encoded) {
      // One encode per request; spans are then copied out of it by their byte ranges.
      this.encRanges.length = 0;
      this.encBatch = encodeTraces(batch);
      spanFieldRanges(this.encBatch, this.encRanges);
    }
    for (const rs of batch.resourceSpans) {
      // Buffered spans point at shells holding only the resource / scope, never at the incoming
      // ResourceSpans / ScopeSpans: those list every span of the request, and one pending trace
      // would otherwise keep all the request's other spans (decided or not) alive.
      let rsShell: ResourceSpans | undefined;
      for (const ss of rs.scopeSpans) {
        const spans = ss.spans;
        let ssShell: ScopeSpans | undefined;
        for (let i = 0; i < spans.length; i++) {
          const span = spans[i];
          this.encIndex = n; // index of this span's byte range (encoded storage)
          n++;
          if (span.traceId.length !== 16) { this.m.invalidSpans++; continue; }
          const key = traceKey(span.traceId);
          let e = this.pending.get(key);
          let wire: number;
          if (e === undefined) {
            if (this.sampledCache.touch(key)) {
              this.m.lateSampled++;
              late ??= { b: new TracesBuilder(), ctx, bytes: 0 };
              late.b.add(rs, ss, span);
              this.charge(late, 1, spanHeapBytes(span));
              continue;
            }
            if (this.notSampledCache.touch(key)) { this.m.lateNotSampled++; continue; }
            wire = spanWireBytes(span);
            if (cfg.maxTraceSizeBytes && wire > cfg.maxTraceSizeBytes) {
              // A first span that alone exceeds the size cap is dropped before it opens a trace:
              // no entry to charge (or leak) and no live trace evicted to make room for it.
              this.m.oversizeDropped++;
              this.counters.dropped++;
              continue;
            }
            if (this.pending.size >= cfg.numTraces) this.evictOldest();
            set ??= this.policySetFor(ctx);
            e = {
              // Encoded storage must not keep the decoder's id slab alive through a view: own copy.
              key, traceId: this.encoded ? span.traceId.slice() : span.traceId, spans: [], resources: [], scopes: [], spanCount: 0,
              wireBytes: 0, heapBytes: 0, deadline: now + cfg.decisionWaitMs, set, tenant: ctx.tenant, tier: ctx.tier,
            };
            if (this.encoded) {
              e.encSlabs = [];
              e.encPos = [];
              // Per-trace cost that dominates once spans are compact: entry, key, Map slot, five
              // arrays, own trace id copy (calibrated against the bench's measured delta).
              e.heapBytes = ENCODED_TRACE_OVERHEAD;
              this.bufferedHeap += ENCODED_TRACE_OVERHEAD;
            }
            this.pending.set(key, e);
          } else wire = spanWireBytes(span);
          if ((cfg.maxSpansPerTrace && e.spanCount >= cfg.maxSpansPerTrace) || (cfg.maxTraceSizeBytes && e.wireBytes + wire > cfg.maxTraceSizeBytes)) {
            if (cfg.onOversize === 'drop_excess') {
              this.m.oversizeDropped++;
              this.counters.dropped++;
              continue;
            }
            // decide_early: the trace is decided now on what it holds; this span and later ones
            // follow that decision through the decision caches.
            // Decided inline so the rest of this batch already sees the cached decision.
            this.pending.delete(e.key);
            this.m.earlyDecisions++;
            rsShell ??= { resource: rs.resource, scopeSpans: [], schemaUrl: rs.schemaUrl };
            ssShell ??= { scope: ss.scope, spans: [], schemaUrl: ss.schemaUrl };
            this.appendSpan(e, rsShell, ssShell, span, wire);
            this.decideOne(e, now, (outs ??= new Map()));
            continue;
          }
          rsShell ??= { resource: rs.resource, scopeSpans: [], schemaUrl: rs.schemaUrl };
          ssShell ??= { scope: ss.scope, spans: [], schemaUrl: ss.schemaUrl };
          this.appendSpan(e, rsShell, ssShell, span, wire);
        }
      }
    }
    this.m.spansReceived += n;
    this.counters.accepted += n;
    if (this.encoded) this.encBatch = new Uint8Array(0);
    this.enforceBudget();

    const sends: Promise<void>[] = [];
    if (late && !late.b.empty) sends.push(this.send(late));
    if (outs) for (const o of outs.values()) sends.push(this.send(o));
    if (sends.length) await Promise.all(sends);
  }

  /** Evicts the oldest undecided traces while buffered plus in-flight bytes exceed the budget. */
  private enforceBudget(): void {
    while (this.bufferedHeap + this.inflightHeap > this.cfg.maxBufferedBytes && this.pending.size > 0) this.evictOldest();
  }

  /** Charges kept spans to the in-flight budget; send() releases them when the forward settles. */
  private charge(o: Out, spans: number, bytes: number): void {
    o.bytes += bytes;
    this.inflightSpans += spans;
    this.inflightHeap += bytes;
  }

  /**
   * Hands a batch to the next consumer. Its bytes stay charged until consume() settles, so a slow
   * downstream fills max_buffered_bytes and turns into refusals instead of unbounded memory.
   * With onError the returned promise never rejects; without, it is the next consumer's promise.
   */
  private send(o: Out, onError?: (err: unknown) => void): Promise<void> {
    const n = o.b.spanCount, bytes = o.bytes;
    this.m.spansForwarded += n;
    let p: Promise<void>;
    // A consumer that throws instead of rejecting must not leave its bytes charged forever.
    try { p = this.next.consume(o.b.take(), o.ctx); } catch (err) { p = Promise.reject(err); }
    let settled: Promise<void> | undefined;
    const release = () => {
      this.inflightSpans -= n;
      this.inflightHeap -= bytes;
      this.inflight.delete(settled!);
    };
    // Registered before the caller's handlers: bytes are released by the time the caller resumes.
    settled = p.then(release, (err: unknown) => { release(); onError?.(err); });
    this.inflight.add(settled);
    return onError ? settled : p;
  }

  private appendSpan(e: TraceEntry, rs: ResourceSpans, ss: ScopeSpans, span: Span, wire: number): void {
    if (e.encSlabs) return this.appendEncoded(e, rs, ss);
    let heap = spanHeapBytes(span) + 12; // + three array slots
    // Spans of a trace share one trace id view instead of holding one each.
    if (span.traceId !== e.traceId) { span.traceId = e.traceId; heap -= 100; }
    e.spans.push(span);
    e.resources.push(rs);
    e.scopes.push(ss);
    e.spanCount++;
    e.wireBytes += wire;
    e.heapBytes += heap;
    this.bufferedSpans++;
    this.bufferedWire += wire;
    this.bufferedHeap += heap;
  }

  private appendEncoded(e: TraceEntry, rs: ResourceSpans, ss: ScopeSpans): void {
    const src = this.encBatch;
    const off0 = this.encRanges[2 * this.encIndex], len = this.encRanges[2 * this.encIndex + 1];
    let slab: Uint8Array, off: number;
    if (len > SLAB_BYTES / 8) {
      slab = src.slice(off0, off0 + len); // large span: its own buffer
      off = 0;
    } else {
      if (this.slabPos + len > this.slab.length) {
        this.slab = new Uint8Array(SLAB_BYTES);
        this.slabPos = 0;
      }
      slab = this.slab;
      off = this.slabPos;
      slab.set(src.subarray(off0, off0 + len), off);
      this.slabPos += len;
    }
    e.encSlabs!.push(slab);
    e.encPos!.push(off, len);
    e.resources.push(rs);
    e.scopes.push(ss);
    // bytes + slab ref, two small ints, two array slots and their share of array growth
    const heap = len + ENCODED_SPAN_OVERHEAD;
    e.spanCount++;
    e.wireBytes += len;
    e.heapBytes += heap;
    this.bufferedSpans++;
    this.bufferedWire += len;
    this.bufferedHeap += heap;
  }

  /** span_storage: encoded — decodes the trace's spans for evaluation (one decode per trace). */
  private materialise(e: TraceEntry): boolean {
    const buf = wrapSpanFields(e.encSlabs!, e.encPos!);
    e.encSlabs = undefined;
    e.encPos = undefined;
    try {
      const d = decodeTraces(buf);
      const spans = d.resourceSpans[0]?.scopeSpans[0]?.spans ?? [];
      if (spans.length !== e.spanCount) throw new Error(`decoded ${spans.length} spans, expected ${e.spanCount}`);
      e.spans = spans;
      return true;
    } catch (err) {
      this.m.decodeErrors++;
      this.logger?.error({ err }, 'tail_sampling: buffered trace failed to decode; dropped');
      return false;
    }
  }

  private release(e: TraceEntry): void {
    this.bufferedSpans -= e.spanCount;
    this.bufferedWire -= e.wireBytes;
    this.bufferedHeap -= e.heapBytes;
  }

  private evictOldest(): void {
    const first = this.pending.values().next();
    if (first.done) return;
    const e = first.value;
    this.pending.delete(e.key);
    this.release(e);
    this.m.droppedTooEarlyTraces++;
    this.m.droppedTooEarlySpans += e.spanCount;
    this.counters.dropped += e.spanCount;
  }

  /** Decides the given (already unlinked) traces; returns the kept spans grouped per tenant. */
  private decide(traces: TraceEntry[], now: number): Map<string, Out> {
    const outs = new Map<string, Out>();
    for (const e of traces) this.decideOne(e, now, outs);
    return outs;
  }

  private decideOne(e: TraceEntry, now: number, outs: Map<string, Out>): void {
    this.release(e);
    if (e.encSlabs && !this.materialise(e)) {
      this.notSampledCache.add(e.key);
      this.counters.dropped += e.spanCount;
      return;
    }
    if (e.set.decide(e, now)) {
      this.sampledCache.add(e.key);
      const gk = e.tenant === undefined && e.tier === undefined ? '' : `${e.tenant ?? ''}\u0000${e.tier ?? ''}`;
      let o = outs.get(gk);
      if (o === undefined) {
        const ctx: RequestContext = {};
        if (e.tenant !== undefined) ctx.tenant = e.tenant;
        if (e.tier !== undefined) ctx.tier = e.tier;
        o = { b: new TracesBuilder(), ctx, bytes: 0 };
        outs.set(gk, o);
      }
      for (let i = 0; i < e.spans.length; i++) o.b.add(e.resources[i], e.scopes[i], e.spans[i]);
      // Encoded traces were just decoded into objects: charge what they now hold, not their bytes.
      let heap = e.heapBytes;
      if (this.encoded) {
        heap = 0;
        for (const s of e.spans) heap += spanHeapBytes(s);
        this.keptDecodedBytes += heap;
        this.keptEncodedBytes += e.heapBytes;
      }
      this.charge(o, e.spanCount, heap);
    } else {
      this.notSampledCache.add(e.key);
      this.counters.dropped += e.spanCount;
    }
  }

  private forward(outs: Map<string, Out>): void {
    for (const o of outs.values()) {
      const n = o.b.spanCount;
      void this.send(o, (err: unknown) => {
        this.m.forwardErrors++;
        this.counters.dropped += n;
        this.logger?.warn({ err, spans: n }, 'tail_sampling: next consumer refused sampled traces');
      });
    }
  }

  /**
   * Decides every trace whose decision_wait has elapsed (the ticker calls this; tests call it with
   * a manual clock). Returns the number of traces decided.
   */
  tick(now: number = this.now()): number {
    const due = this.due;
    due.length = 0;
    // span_storage: encoded — a kept trace grows when decoded. While the downstream holds the
    // budget, decisions whose growth would not fit wait for a later tick: evicting the oldest
    // undecided traces to make room would lose data that was accepted.
    let room = this.encoded && this.inflightHeap > 0 ? this.cfg.maxBufferedBytes - this.bufferedHeap - this.inflightHeap : Infinity;
    const growth = this.keptEncodedBytes > 0 ? Math.max(0, this.keptDecodedBytes / this.keptEncodedBytes - 1) : 1;
    // Insertion order of the Map is arrival order, so deadlines are non-decreasing along it.
    for (const e of this.pending.values()) {
      if (e.deadline > now) break;
      if (room !== Infinity) {
        room -= e.heapBytes * growth;
        if (room < 0) { this.m.deferredDecisions++; break; }
      }
      due.push(e);
    }
    if (due.length === 0) return 0;
    for (const e of due) this.pending.delete(e.key);
    this.forward(this.decide(due, now));
    // The growth is an estimate: the bound itself is kept by eviction.
    if (this.encoded) this.enforceBudget();
    const n = due.length;
    due.length = 0;
    return n;
  }

  shutdown(): Promise<void> {
    this.stopping ??= this.doShutdown();
    return this.stopping;
  }

  private async doShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const all = [...this.pending.values()];
    this.pending.clear();
    if (this.cfg.dropPendingTracesOnShutdown) {
      for (const e of all) {
        this.release(e);
        this.m.shutdownTracesDropped++;
        this.m.shutdownSpansDropped += e.spanCount;
        this.counters.dropped += e.spanCount;
      }
    } else if (all.length) {
      // Flush: decide every pending trace now on what it holds.
      this.m.shutdownFlushed += all.length;
      this.forward(this.decide(all, this.now()));
    }
    while (this.inflight.size) await Promise.all([...this.inflight]);
    if (this.unregisterTelemetry) {
      this.exportTelemetry();
      this.unregisterTelemetry();
    }
  }

  /** Copies the metrics() snapshot into the self-telemetry registry (run before each scrape). */
  private exportTelemetry(): void {
    const reg = this.telemetry!.registry;
    const m = this.metrics();
    const p = { processor: this.id };
    const traces = reg.counter('kscope_tailsampling_traces_total', 'Traces decided, by policy set and final decision.');
    for (const [set, c] of Object.entries(m.policySets)) {
      traces.set({ ...p, policy_set: set, decision: 'sampled' }, c.sampled);
      traces.set({ ...p, policy_set: set, decision: 'not_sampled' }, c.notSampled);
    }
    const votes = reg.counter('kscope_tailsampling_policy_decisions_total', 'Per-policy votes on decided traces.');
    for (const [set, ps] of Object.entries(m.policies))
      for (const [policy, c] of Object.entries(ps)) {
        votes.set({ ...p, policy_set: set, policy, decision: 'sampled' }, c.sampled);
        votes.set({ ...p, policy_set: set, policy, decision: 'not_sampled' }, c.notSampled);
        votes.set({ ...p, policy_set: set, policy, decision: 'dropped' }, c.dropped);
      }
    reg.counter('kscope_tailsampling_dropped_too_early_traces_total', 'Traces evicted before their decision (num_traces / max_buffered_bytes).').set(p, m.droppedTooEarly.traces);
    reg.counter('kscope_tailsampling_dropped_too_early_spans_total', 'Spans of traces evicted before their decision.').set(p, m.droppedTooEarly.spans);
    const late = reg.counter('kscope_tailsampling_late_spans_total', 'Spans arriving after their trace was decided, by that decision.');
    late.set({ ...p, decision: 'sampled' }, m.lateSpans.sampled);
    late.set({ ...p, decision: 'not_sampled' }, m.lateSpans.notSampled);
    reg.counter('kscope_tailsampling_oversize_spans_dropped_total', 'Spans beyond the per-trace caps (drop_excess).').set(p, m.oversize.spansDropped);
    reg.counter('kscope_tailsampling_early_decisions_total', 'Traces decided early at a per-trace cap (decide_early).').set(p, m.oversize.earlyDecisions);
    reg.gauge('kscope_tailsampling_live_traces', 'Traces waiting for a decision.').set(p, m.liveTraces);
    reg.gauge('kscope_tailsampling_buffered_spans', 'Spans held for undecided traces.').set(p, m.bufferedSpans);
    const bytes = reg.gauge('kscope_tailsampling_buffered_bytes', 'Accounted bytes of buffered spans (heap estimate, OTLP wire estimate).');
    bytes.set({ ...p, kind: 'heap' }, m.bufferedHeapBytes);
    bytes.set({ ...p, kind: 'wire' }, m.bufferedWireBytes);
    reg.gauge('kscope_tailsampling_inflight_spans', 'Kept spans handed downstream and not yet accepted by the next consumer.').set(p, m.inflight.spans);
    reg.gauge('kscope_tailsampling_inflight_bytes', 'Accounted heap bytes of in-flight kept spans (count against max_buffered_bytes).').set(p, m.inflight.heapBytes);
    reg.counter('kscope_tailsampling_refused_spans_total', 'Spans refused (retryable) while in-flight forwards held max_buffered_bytes full.').set(p, m.refused.spans);
    reg.counter('kscope_tailsampling_deferred_decisions_total', 'Ticks that left due traces undecided until in-flight bytes free up (encoded storage).').set(p, m.deferredDecisions);
  }

  metrics(): TailSamplingMetrics {
    const policies: TailSamplingMetrics['policies'] = {};
    const policySets: TailSamplingMetrics['policySets'] = {};
    let sampled = 0, notSampled = 0;
    for (const [name, s] of this.sets) {
      policies[name] = Object.fromEntries([...s.counters].map(([k, v]) => [k, { ...v }]));
      policySets[name] = { sampled: s.tracesSampled, notSampled: s.tracesNotSampled };
      sampled += s.tracesSampled;
      notSampled += s.tracesNotSampled;
    }
    return {
      liveTraces: this.pending.size,
      bufferedSpans: this.bufferedSpans,
      bufferedWireBytes: this.bufferedWire,
      bufferedHeapBytes: this.bufferedHeap,
      inflight: { forwards: this.inflight.size, spans: this.inflightSpans, heapBytes: this.inflightHeap },
      refused: { requests: this.m.refusedRequests, spans: this.m.refusedSpans },
      deferredDecisions: this.m.deferredDecisions,
      spansReceived: this.m.spansReceived,
      spansForwarded: this.m.spansForwarded,
      tracesSampled: sampled,
      tracesNotSampled: notSampled,
      policies,
      policySets,
      droppedTooEarly: { traces: this.m.droppedTooEarlyTraces, spans: this.m.droppedTooEarlySpans },
      lateSpans: { sampled: this.m.lateSampled, notSampled: this.m.lateNotSampled },
      oversize: { spansDropped: this.m.oversizeDropped, earlyDecisions: this.m.earlyDecisions },
      shutdown: { tracesDropped: this.m.shutdownTracesDropped, spansDropped: this.m.shutdownSpansDropped, tracesFlushed: this.m.shutdownFlushed },
      invalidSpans: this.m.invalidSpans,
      forwardErrors: this.m.forwardErrors,
      decodeErrors: this.m.decodeErrors,
      decisionCache: { sampled: this.sampledCache.size, notSampled: this.notSampledCache.size },
    };
  }
}
