// Span-level helpers shared by tail sampling and the load-balancing exporter: trace-id keys,
// size accounting and regrouping of spans into OTLP-shaped batches.
import type { AnyValue, KeyValue, ResourceSpans, ScopeSpans, Span, TracesData } from '../../../../proto/src/model.ts';
import { KeyValueList } from '../../../../proto/src/model.ts';

/**
 * A Map key for a 16-byte trace id: one 16-char string (each char holds one byte), cheaper than
 * hex and collision-free.
 */
export function traceKey(id: Uint8Array): string {
  if (id.length !== 16) return String.fromCharCode.apply(null, id as unknown as number[]);
  return String.fromCharCode(
    id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7],
    id[8], id[9], id[10], id[11], id[12], id[13], id[14], id[15],
  );
}

// ------------------------------------------------------------------ size accounting

/** Protobuf varint length of a non-negative integer below 2^53. */
function varintLen(n: number): number {
  let len = 1;
  while (n >= 128) { n = Math.floor(n / 128); len++; }
  return len;
}

function strWire(s: string): number {
  // ASCII fast path: UTF-8 length equals .length; non-ASCII is rare in names and keys.
  return s.length;
}

function anyValueWire(v: AnyValue): number {
  if (v === null) return 0;
  switch (typeof v) {
    case 'string': return 2 + strWire(v);
    case 'boolean': return 2;
    case 'number': return 9;
    case 'bigint': return 1 + 10;
    default:
      if (v instanceof Uint8Array) return 2 + v.length;
      if (v instanceof KeyValueList) return 2 + attrsWire(v.values);
      if (Array.isArray(v)) { let n = 2; for (const x of v) n += 2 + anyValueWire(x); return n; }
      return 0;
  }
}

function attrsWire(attrs: KeyValue[]): number {
  let n = 0;
  for (let i = 0; i < attrs.length; i++) {
    const kv = attrs[i];
    const body = 2 + strWire(kv.key) + 2 + anyValueWire(kv.value);
    n += 1 + varintLen(body) + body;
  }
  return n;
}

/**
 * Approximate OTLP protobuf size of one span (without its resource and scope, which are shared by
 * many spans). Exact enough to budget memory and rates; it never walks bytes.
 */
export function spanWireBytes(s: Span): number {
  let n = 18 + 10 + 2 + strWire(s.name) + 2 + 18 /* times */ + 2 /* kind */;
  if (s.parentSpanId.length) n += 10;
  if (s.traceState.length) n += 2 + s.traceState.length;
  if (s.flags) n += 5;
  n += attrsWire(s.attributes);
  for (let i = 0; i < s.events.length; i++) {
    const e = s.events[i];
    n += 3 + 9 + 2 + strWire(e.name) + attrsWire(e.attributes);
  }
  for (let i = 0; i < s.links.length; i++) {
    const l = s.links[i];
    n += 3 + 18 + 10 + l.traceState.length + attrsWire(l.attributes);
  }
  if (s.status.code || s.status.message) n += 4 + s.status.message.length;
  return n + 3;
}

// V8 object sizes on 64-bit with pointer compression (Node 20): a header of 12 bytes plus 4 per
// in-object field; strings 12 + length (one-byte); bigints 16; Uint8Array views ~ 100 incl.
// their ArrayBuffer share. Calibrated against heap deltas in tests/bench/tail-sampling.bench.ts.
function anyValueHeap(v: AnyValue): number {
  if (v === null) return 0;
  switch (typeof v) {
    case 'string': return 16 + v.length;
    case 'boolean': return 0;
    case 'number': return 12;
    case 'bigint': return 16;
    default:
      if (v instanceof Uint8Array) return 100 + v.length;
      if (v instanceof KeyValueList) return 32 + attrsHeap(v.values);
      if (Array.isArray(v)) { let n = 16 + 4 * v.length; for (const x of v) n += anyValueHeap(x); return n; }
      return 0;
  }
}

function attrsHeap(attrs: KeyValue[]): number {
  let n = 16 + 4 * attrs.length;
  for (let i = 0; i < attrs.length; i++) n += 24 + 16 + attrs[i].key.length + anyValueHeap(attrs[i].value);
  return n;
}

/**
 * Estimated V8 heap bytes retained by one decoded span object graph (what buffering it costs).
 * Keys and values that decoders intern are counted anyway: the estimate errs high.
 */
export function spanHeapBytes(s: Span): number {
  // Span object, 3 id views, times, status, the (decoder-allocated) empty events/links arrays; the
  // constants are calibrated so the estimate tracks the bench's measured heap + ArrayBuffer delta.
  let n = 200 + 3 * 100 + 16 + s.name.length + 2 * 16 + 32 + 32;
  n += attrsHeap(s.attributes);
  if (s.events.length) {
    n += 16 + 4 * s.events.length;
    for (let i = 0; i < s.events.length; i++) n += 40 + 16 + 16 + s.events[i].name.length + attrsHeap(s.events[i].attributes);
  }
  if (s.links.length) {
    n += 16 + 4 * s.links.length;
    for (let i = 0; i < s.links.length; i++) n += 40 + 200 + attrsHeap(s.links[i].attributes);
  }
  return n;
}

// ------------------------------------------------------------------ regrouping

/**
 * Regroups spans into TracesData, keeping one ResourceSpans per source ResourceSpans and one
 * ScopeSpans per source ScopeSpans (by identity), so resources and scopes are shared, not copied.
 */
export class TracesBuilder {
  private readonly resources = new Map<ResourceSpans, ResourceSpans>();
  private readonly scopes = new Map<ScopeSpans, ScopeSpans>();
  private out: TracesData = { resourceSpans: [] };
  spanCount = 0;

  add(rs: ResourceSpans, ss: ScopeSpans, span: Span): void {
    let outSs = this.scopes.get(ss);
    if (outSs === undefined) {
      let outRs = this.resources.get(rs);
      if (outRs === undefined) {
        outRs = { resource: rs.resource, scopeSpans: [], schemaUrl: rs.schemaUrl };
        this.resources.set(rs, outRs);
        this.out.resourceSpans.push(outRs);
      }
      outSs = { scope: ss.scope, spans: [], schemaUrl: ss.schemaUrl };
      this.scopes.set(ss, outSs);
      outRs.scopeSpans.push(outSs);
    }
    outSs.spans.push(span);
    this.spanCount++;
  }

  /** Adds a whole ResourceSpans (routing by resource). */
  addResourceSpans(rs: ResourceSpans): void {
    for (const ss of rs.scopeSpans) for (const sp of ss.spans) this.add(rs, ss, sp);
  }

  get empty(): boolean {
    return this.spanCount === 0;
  }

  /** Returns the batch built so far and starts a new one. */
  take(): TracesData {
    const out = this.out;
    this.out = { resourceSpans: [] };
    this.resources.clear();
    this.scopes.clear();
    this.spanCount = 0;
    return out;
  }
}
