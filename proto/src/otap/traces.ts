// Traces ↔ OTAP tables: SPANS (root), SPAN_ATTRS, SPAN_EVENTS, SPAN_EVENT_ATTRS, SPAN_LINKS,
// SPAN_LINK_ATTRS, RESOURCE_ATTRS, SCOPE_ATTRS. Column names and types follow the Go
// implementation (go/pkg/otel/traces/arrow); zero/empty optional values are sent as nulls so
// all-default columns drop out of the schema.
import { NO_EVENTS, NO_LINKS, STATUS_UNSET, type ResourceSpans, type ScopeSpans, type Span, type SpanEvent, type SpanLink, type TracesData } from '../model.ts';
import { DictBuilder, DurationBuilder, FsbBuilder, PrimBuilder, StructBuilder } from './columns.ts';
import { AttrsEncoder, decodeAttrs, type AttrLists } from './attrs.ts';
import { ResourceScopeColumns, attrsOrEmpty, resourceScopeReader } from './common.ts';
import { ArrowPayloadType as P, type ArrowPayload } from './messages.ts';
import { TableEncoder, type EncodeOptions, SchemaIdSource } from './table.ts';
import { OtapDecodeError, type DecodedBatch } from './ipc.ts';
import { DeltaIds, colBig, colBytes, colStr, colUint, int64View, optId, reqColumn } from './read.ts';

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

const EMPTY = new Uint8Array(0);
const MAX_INT64 = 0x7fffffffffffffffn;

/**
 * Sorts a[0..n) ascending by insertion when that takes at most `budget` element moves; false
 * when it would take more (`a` is then left unusable).
 */
function insertionSortWithin(a: Float64Array, n: number, budget: number): boolean {
  for (let i = 1; i < n; i++) {
    const k = a[i];
    if (k >= a[i - 1]) continue;
    let j = i - 1;
    while (j >= 0 && a[j] > k) {
      a[j + 1] = a[j];
      j--;
      if (--budget < 0) return false;
    }
    a[j + 1] = k;
  }
  return true;
}

function addPayload(out: ArrowPayload[], p: ArrowPayload | null): void {
  if (p !== null) out.push(p);
}

export class TracesEncoder {
  private readonly rs: ResourceScopeColumns;
  private readonly id = new PrimBuilder('id', 'u16');
  private readonly start = new PrimBuilder('start_time_unix_nano', 'ts', true);
  private readonly duration = new DurationBuilder('duration_time_unix_nano', this.start, true);
  private readonly traceId = new FsbBuilder('trace_id', 16, true);
  private readonly spanId = new FsbBuilder('span_id', 8, true);
  private readonly traceState = new DictBuilder<string>('trace_state', 'utf8');
  private readonly parentSpanId = new FsbBuilder('parent_span_id', 8);
  private readonly flags = new PrimBuilder('flags', 'u32');
  private readonly name = new DictBuilder<string>('name', 'utf8', true);
  private readonly kind = new PrimBuilder('kind', 'i32');
  private readonly droppedAttrs = new PrimBuilder('dropped_attributes_count', 'u32');
  private readonly droppedEvents = new PrimBuilder('dropped_events_count', 'u32');
  private readonly droppedLinks = new PrimBuilder('dropped_links_count', 'u32');
  private readonly statusCode = new PrimBuilder('code', 'i32');
  private readonly statusMessage = new DictBuilder<string>('status_message', 'utf8');
  private readonly status = new StructBuilder('status', [this.statusCode, this.statusMessage]);
  private readonly spans: TableEncoder;
  private readonly spanAttrs: AttrsEncoder;

  // events
  private readonly evId = new PrimBuilder('id', 'u32');
  private readonly evParent = new PrimBuilder('parent_id', 'u16', true);
  private readonly evTime = new PrimBuilder('time_unix_nano', 'ts');
  private readonly evName = new DictBuilder<string>('name', 'utf8', true);
  private readonly evDropped = new PrimBuilder('dropped_attributes_count', 'u32');
  private readonly events: TableEncoder;
  private readonly eventAttrs: AttrsEncoder;
  // links
  private readonly lkId = new PrimBuilder('id', 'u32');
  private readonly lkParent = new PrimBuilder('parent_id', 'u16', true);
  private readonly lkTraceId = new FsbBuilder('trace_id', 16, true);
  private readonly lkSpanId = new FsbBuilder('span_id', 8, true);
  private readonly lkTraceState = new DictBuilder<string>('trace_state', 'utf8');
  private readonly lkDropped = new PrimBuilder('dropped_attributes_count', 'u32');
  private readonly lkFlags = new PrimBuilder('flags', 'u32');
  private readonly links: TableEncoder;
  private readonly linkAttrs: AttrsEncoder;

  // staged events/links (sorted before writing): parent span id and object
  private evStage: { parent: number; ev: SpanEvent; rank: number }[] = [];
  private lkStage: { parent: number; lk: SpanLink; rank: number }[] = [];

  constructor(ids: SchemaIdSource, opts: EncodeOptions) {
    this.rs = new ResourceScopeColumns(ids, opts);
    this.spans = new TableEncoder(
      P.SPANS,
      [
        this.id, this.rs.resource, this.rs.scope, this.rs.schemaUrl, this.start, this.duration, this.traceId,
        this.spanId, this.traceState, this.parentSpanId, this.flags, this.name, this.kind, this.droppedAttrs,
        this.droppedEvents, this.droppedLinks, this.status,
      ],
      ids,
      opts,
    );
    this.spanAttrs = new AttrsEncoder(P.SPAN_ATTRS, 16, ids, opts);
    this.events = new TableEncoder(P.SPAN_EVENTS, [this.evId, this.evParent, this.evTime, this.evName, this.evDropped], ids, opts);
    this.eventAttrs = new AttrsEncoder(P.SPAN_EVENT_ATTRS, 32, ids, opts);
    this.links = new TableEncoder(
      P.SPAN_LINKS,
      [this.lkId, this.lkParent, this.lkTraceId, this.lkSpanId, this.lkTraceState, this.lkDropped, this.lkFlags],
      ids,
      opts,
    );
    this.linkAttrs = new AttrsEncoder(P.SPAN_LINK_ATTRS, 32, ids, opts);
  }

  /** Encodes one batch; the SPANS payload comes first. Throws RangeError past 65536 spans. */
  encode(data: TracesData): ArrowPayload[] {
    try {
      // The row count is known before writing, so the span columns are written by row index
      // (no per-cell growth checks) and resource/scope columns by range.
      let total = 0;
      const rss = data.resourceSpans;
      for (let r = 0; r < rss.length; r++) {
        const sss = rss[r].scopeSpans;
        for (let k = 0; k < sss.length; k++) total += sss[k].spans.length;
      }
      if (total > 0x10000) throw new RangeError('OTAP batch holds more than 65536 spans; split it');
      this.reserveSpans(total);
      let row = 0;
      for (let r = 0; r < rss.length; r++) {
        const rs = rss[r];
        this.rs.beginResource(rs.resource, rs.schemaUrl);
        const sss = rs.scopeSpans;
        for (let k = 0; k < sss.length; k++) {
          const ss = sss[k];
          this.rs.beginScope(ss.scope, ss.schemaUrl);
          const from = row;
          row = this.writeScope(ss.spans, row);
          this.rs.fillRows(from, row);
        }
      }
      this.sealSpans();
      const out: ArrowPayload[] = [];
      addPayload(out, this.spans.finish());
      addPayload(out, this.rs.resourceAttrs.finish());
      addPayload(out, this.rs.scopeAttrs.finish());
      addPayload(out, this.spanAttrs.finish());
      this.writeEvents();
      addPayload(out, this.events.finish());
      addPayload(out, this.eventAttrs.finish());
      this.writeLinks();
      addPayload(out, this.links.finish());
      addPayload(out, this.linkAttrs.finish());
      return out;
    } finally {
      this.resetBatch();
    }
  }

  // Span order inside a scope carries no meaning in OTLP, so rows are written grouped by name and
  // by start time within a name (one of the Go encoder's orders): ids, times and attribute
  // parents of like spans then sit together and compress better (measured: 3–9% fewer bytes
  // than input order on agent and telemetrygen traces). Keys are doubles — name rank, then the
  // start time relative to the scope's first span scaled into the bits left, then the index in
  // the low 16 bits — so one native Float64Array sort orders them; ties keep input order.
  // Approximate start times only make the order less ideal, never wrong.
  private orderKeys = new Float64Array(1024);
  private orderByRank = new Float64Array(1024);
  private orderTimes = new Float64Array(1024);
  /** The scope's start times in input order: stored once here, copied to the start column by row. */
  private stagedStarts = new BigInt64Array(1024);
  private stagedStartHalves = new Int32Array(this.stagedStarts.buffer);
  /** The scope's span names as ids in first-seen order, and each id's rank in sorted name order. */
  private stagedNames = new Uint32Array(1024);
  private nameRanks = new Float64Array(64);
  private readonly nameIds = new Map<string, number>();
  private readonly names: string[] = [];

  /**
   * Stages the scope's start times, then returns the row order (`key % 65536` is the span index),
   * or null for input order.
   */
  private spanOrder(spans: Span[]): Float64Array | null {
    const n = spans.length;
    if (this.orderKeys.length < n) {
      const size = Math.max(n, this.orderKeys.length * 2);
      this.orderKeys = new Float64Array(size);
      this.orderByRank = new Float64Array(size);
      this.orderTimes = new Float64Array(size);
      this.stagedStarts = new BigInt64Array(size);
      this.stagedStartHalves = new Int32Array(this.stagedStarts.buffer);
      this.stagedNames = new Uint32Array(size);
    }
    const starts = this.stagedStarts, halves = this.stagedStartHalves;
    if (n < 2) {
      if (n === 1) starts[0] = spans[0].startTimeUnixNano;
      return null;
    }
    const nameIds = this.nameIds, names = this.names, nameOf = this.stagedNames;
    nameIds.clear();
    names.length = 0;
    const times = this.orderTimes;
    let base = 0, lo = 0, hi = 0;
    // Runs of one name and two alternating names (client and server spans) skip the Map.
    let last: string | undefined, lastId = 0;
    let prev: string | undefined, prevId = 0;
    for (let i = 0; i < n; i++) {
      const s = spans[i];
      const start = s.startTimeUnixNano;
      starts[i] = start; // u64 above 2^63 wraps to the same bits
      // The time as a double from the stored halves: the same correctly rounded value as
      // Number(bigint) at a fraction of its cost. Halves hold the value itself in [0, 2^63) ns,
      // every real timestamp; anything else takes the exact conversion.
      let t = start >= 0n && start <= MAX_INT64 ? halves[2 * i + 1] * 4294967296 + (halves[2 * i] >>> 0) : Number(start);
      if (i === 0) base = t;
      t -= base; // to 256 ns: a rougher order, no bigint allocated
      times[i] = t;
      if (t < lo) lo = t;
      else if (t > hi) hi = t;
      const name = s.name;
      if (name !== last) {
        let id: number;
        if (name === prev) id = prevId;
        else {
          const known = nameIds.get(name);
          if (known === undefined) {
            id = names.length;
            names.push(name);
            nameIds.set(name, id);
          } else id = known;
        }
        prev = last;
        prevId = lastId;
        last = name;
        lastId = id;
      }
      nameOf[i] = lastId;
    }
    const distinct = names.length;
    if (this.nameRanks.length < distinct) this.nameRanks = new Float64Array(Math.max(distinct, 2 * this.nameRanks.length));
    const ranks = this.nameRanks;
    ranks[0] = 0;
    if (distinct > 1) {
      const sortedNames = names.slice().sort();
      for (let r = 0; r < distinct; r++) ranks[nameIds.get(sortedNames[r])!] = r;
    }
    // 53 bits: 16 for the index, then enough for the name ranks, the rest for time
    const rankBits = 32 - Math.clz32(distinct - 1 || 1);
    const timeSteps = 2 ** (37 - rankBits);
    const scale = hi - lo < timeSteps ? 1 : (hi - lo + 1) / timeSteps;
    const keys = this.orderKeys;
    let sorted = true;
    let prevKey = -1;
    for (let i = 0; i < n; i++) {
      const t = Math.min(timeSteps - 1, Math.floor((times[i] - lo) / scale));
      const k = (ranks[nameOf[i]] * timeSteps + t) * 65536 + i;
      keys[i] = k;
      if (k < prevKey) sorted = false;
      prevKey = k;
    }
    if (sorted) return null;
    if (distinct > 1 && distinct <= 64) {
      // Spans mostly come in start order with names interleaved (client and server spans): then
      // placing the keys by name rank (input order within a rank) sorts them, or nearly (a few
      // late spans, which an insertion sort moves). Keys are distinct, so the sorted order is
      // unique: any exact sort gives the same rows.
      const at = this.rankStarts;
      at.fill(0, 0, distinct + 1);
      for (let i = 0; i < n; i++) at[ranks[nameOf[i]] + 1]++;
      for (let r = 1; r <= distinct; r++) at[r] += at[r - 1];
      const byRank = this.orderByRank;
      for (let i = 0; i < n; i++) byRank[at[ranks[nameOf[i]]]++] = keys[i];
      if (insertionSortWithin(byRank, n, n)) return byRank.subarray(0, n);
    }
    const view = keys.subarray(0, n);
    view.sort();
    return view;
  }
  private readonly rankStarts = new Uint32Array(65);

  /**
   * One scope's spans into rows from `row` on; returns the next row. A method of its own so the
   * span loop never gets optimized on-stack inside encode(): such code, compiled during the
   * first batch, lacked feedback for the rest of encode() and deoptimized on every batch.
   */
  private writeScope(spans: Span[], row: number): number {
    const order = this.spanOrder(spans);
    if (order === null) for (let i = 0; i < spans.length; i++) this.writeSpan(spans[i], i, row++);
    else {
      for (let i = 0; i < spans.length; i++) {
        const k = order[i] % 65536;
        this.writeSpan(spans[k], k, row++);
      }
    }
    return row;
  }

  private reserveSpans(n: number): void {
    this.id.reserve(n, true);
    this.rs.reserve(n);
    this.start.reserve(n, true);
    this.duration.reserve(n);
    this.traceId.reserve(n);
    this.spanId.reserve(n);
    this.traceState.reserve(n);
    this.parentSpanId.reserve(n);
    this.flags.reserve(n);
    this.name.reserve(n);
    this.kind.reserve(n);
    this.droppedAttrs.reserve(n);
    this.droppedEvents.reserve(n);
    this.droppedLinks.reserve(n);
    this.status.reserve(n);
    this.statusCode.reserve(n);
    this.statusMessage.reserve(n);
  }

  private sealSpans(): void {
    this.rs.seal();
    this.traceId.seal();
    this.spanId.seal();
    this.traceState.seal();
    this.parentSpanId.seal();
    this.flags.seal();
    this.name.seal();
    this.kind.seal();
    this.droppedAttrs.seal();
    this.droppedEvents.seal();
    this.droppedLinks.seal();
    this.status.seal();
  }

  /** Span `s` (staged start time at `staged`) into `row`. */
  private writeSpan(s: Span, staged: number, row: number): void {
    this.id.put(row, row === 0 ? 0 : 1);
    this.start.putHalves(row, this.stagedStartHalves, staged);
    this.duration.putEnd(row, s.endTimeUnixNano);
    this.traceId.put(row, s.traceId);
    this.spanId.put(row, s.spanId);
    this.traceState.putOptString(row, s.traceState);
    this.parentSpanId.putOpt(row, s.parentSpanId);
    this.flags.putOpt(row, s.flags);
    this.name.putValue(row, s.name);
    this.kind.putOpt(row, s.kind);
    this.droppedAttrs.putOpt(row, s.droppedAttributesCount);
    this.droppedEvents.putOpt(row, s.droppedEventsCount);
    this.droppedLinks.putOpt(row, s.droppedLinksCount);
    const st = s.status;
    this.statusCode.putOpt(row, st.code);
    this.statusMessage.putOptString(row, st.message);
    const attrs = s.attributes;
    if (attrs.length !== 0) this.spanAttrs.add(row, attrs);
    const evs = s.events;
    for (let i = 0; i < evs.length; i++) this.evStage.push({ parent: row, ev: evs[i], rank: 0 });
    const lks = s.links;
    for (let i = 0; i < lks.length; i++) this.lkStage.push({ parent: row, lk: lks[i], rank: 0 });
  }

  /** Events sorted by name (stable, so parents ascend within a name) for quasi-delta parent ids. */
  private writeEvents(): void {
    const st = this.evStage;
    if (st.length === 0) return;
    const ranks = new Map<string, number>();
    for (const e of st) {
      let r = ranks.get(e.ev.name);
      if (r === undefined) ranks.set(e.ev.name, (r = ranks.size));
      e.rank = r;
    }
    st.sort((a, b) => a.rank - b.rank || a.parent - b.parent);
    let prevName: string | null = null, prevParent = 0;
    for (let i = 0; i < st.length; i++) {
      const { parent, ev } = st[i];
      this.evId.append(i === 0 ? 0 : 1);
      this.evParent.append(ev.name === prevName ? parent - prevParent : parent);
      prevName = ev.name;
      prevParent = parent;
      if (ev.timeUnixNano) this.evTime.appendBig(ev.timeUnixNano);
      else this.evTime.appendNull();
      this.evName.appendString(ev.name);
      if (ev.droppedAttributesCount) this.evDropped.append(ev.droppedAttributesCount);
      else this.evDropped.appendNull();
      if (ev.attributes.length) this.eventAttrs.add(i, ev.attributes);
    }
  }

  private writeLinks(): void {
    const st = this.lkStage;
    if (st.length === 0) return;
    const ranks = new Map<string, number>();
    for (const l of st) {
      const k = latin1(l.lk.traceId);
      let r = ranks.get(k);
      if (r === undefined) ranks.set(k, (r = ranks.size));
      l.rank = r;
    }
    st.sort((a, b) => a.rank - b.rank || a.parent - b.parent);
    let prevRank = -1, prevParent = 0;
    for (let i = 0; i < st.length; i++) {
      const { parent, lk, rank } = st[i];
      this.lkId.append(i === 0 ? 0 : 1);
      this.lkParent.append(rank === prevRank ? parent - prevParent : parent);
      prevRank = rank;
      prevParent = parent;
      this.lkTraceId.append(lk.traceId);
      this.lkSpanId.append(lk.spanId);
      if (lk.traceState) this.lkTraceState.appendString(lk.traceState);
      else this.lkTraceState.appendNull();
      if (lk.droppedAttributesCount) this.lkDropped.append(lk.droppedAttributesCount);
      else this.lkDropped.appendNull();
      if (lk.flags) this.lkFlags.append(lk.flags);
      else this.lkFlags.appendNull();
      if (lk.attributes.length) this.linkAttrs.add(i, lk.attributes);
    }
  }

  private resetBatch(): void {
    this.spans.reset();
    this.events.reset();
    this.links.reset();
    this.rs.resetBatch();
    this.spanAttrs.discard();
    this.eventAttrs.discard();
    this.linkAttrs.discard();
    this.evStage = [];
    this.lkStage = [];
  }

  /** Schema resets so far, per table (for tests and self-telemetry). */
  resets(): number {
    return this.spans.resets + this.events.resets + this.links.resets + this.spanAttrs.table.resets;
  }
}

// ------------------------------------------------------------------ decoding

export function decodeTraces(tables: Map<number, DecodedBatch>): TracesData {
  const spans = tables.get(P.SPANS);
  if (!spans) throw new OtapDecodeError('traces batch has no SPANS payload');
  const resAttrs = attrsOrEmpty(tables.get(P.RESOURCE_ATTRS), 'RESOURCE_ATTRS');
  const scopeAttrs = attrsOrEmpty(tables.get(P.SCOPE_ATTRS), 'SCOPE_ATTRS');
  const spanAttrs = attrsOrEmpty(tables.get(P.SPAN_ATTRS), 'SPAN_ATTRS');
  const events = decodeEvents(tables.get(P.SPAN_EVENTS), attrsOrEmpty(tables.get(P.SPAN_EVENT_ATTRS), 'SPAN_EVENT_ATTRS'));
  const links = decodeLinks(tables.get(P.SPAN_LINKS), attrsOrEmpty(tables.get(P.SPAN_LINK_ATTRS), 'SPAN_LINK_ATTRS'));

  const c = spans.columns;
  const what = 'SPANS';
  const idCol = c.get('id');
  const start = reqColumn(c, 'start_time_unix_nano', what);
  const duration = c.get('duration_time_unix_nano');
  const end = c.get('end_time_unix_nano');
  const traceId = reqColumn(c, 'trace_id', what);
  const spanId = reqColumn(c, 'span_id', what);
  const traceState = c.get('trace_state');
  const parent = c.get('parent_span_id');
  const flags = c.get('flags');
  const name = reqColumn(c, 'name', what);
  const kind = c.get('kind');
  const dAttrs = c.get('dropped_attributes_count');
  const dEvents = c.get('dropped_events_count');
  const dLinks = c.get('dropped_links_count');
  const status = c.get('status');
  const stCode = status?.child('code'), stMsg = status?.child('status_message');
  const rs = resourceScopeReader(spans, resAttrs, scopeAttrs);
  const ids = new DeltaIds();
  // Plain 64-bit start and duration: the end time is summed on 32-bit halves and read once, one
  // bigint per timestamp instead of three (read, read, add).
  const startV = int64View(start);
  const durV = startV !== null ? int64View(duration) : null;
  const startH = startV !== null ? new Int32Array(startV.buffer, startV.byteOffset, 2 * startV.length) : null;
  const durH = durV !== null ? new Int32Array(durV.buffer, durV.byteOffset, 2 * durV.length) : null;
  const endBig = new BigInt64Array(1);
  const endH = new Int32Array(endBig.buffer);

  const out: TracesData = { resourceSpans: [] };
  let curRes: ResourceSpans | null = null;
  let curScope: ScopeSpans | null = null;
  let prevRes = -1, prevScope = -1;
  for (let i = 0; i < spans.length; i++) {
    rs.read(i);
    if (curRes === null || rs.resId !== prevRes) {
      const r = rs.resource();
      curRes = { resource: r.resource, scopeSpans: [], schemaUrl: r.schemaUrl };
      out.resourceSpans.push(curRes);
      prevRes = rs.resId;
      curScope = null;
    }
    if (curScope === null || rs.scopeId !== prevScope) {
      curScope = { scope: rs.scope(), spans: [], schemaUrl: rs.schemaUrl(i) };
      curRes.scopeSpans.push(curScope);
      prevScope = rs.scopeId;
    }
    const id = ids.next(idCol, i);
    const startNs = startV !== null ? startV[i] : colBig(start, i);
    let endNs = startNs;
    if (duration && duration.isValid(i)) {
      if (durH !== null) {
        const lo = (startH![2 * i] >>> 0) + (durH[2 * i] >>> 0);
        const hi = startH![2 * i + 1] + durH[2 * i + 1] + (lo > 0xffffffff ? 1 : 0);
        if (hi >= -0x80000000 && hi <= 0x7fffffff) {
          endH[0] = lo; // stores mod 2^32
          endH[1] = hi;
          endNs = endBig[0];
        } else endNs = startNs + durV![i]; // beyond int64: the exact sum, as bigint arithmetic gives
      } else endNs = startNs + colBig(duration, i);
    } else if (end && end.isValid(i)) endNs = colBig(end, i);
    const tid = colBytes(traceId, i);
    const sid = colBytes(spanId, i);
    if (tid.length !== 16) throw new OtapDecodeError(`SPANS row ${i}: trace_id of ${tid.length} bytes`);
    if (sid.length !== 8) throw new OtapDecodeError(`SPANS row ${i}: span_id of ${sid.length} bytes`);
    const span: Span = {
      traceId: tid,
      spanId: sid,
      traceState: traceState && traceState.isValid(i) ? colStr(traceState, i) : '',
      parentSpanId: optId(parent, i),
      flags: flags && flags.isValid(i) ? colUint(flags, i) : 0,
      name: colStr(name, i),
      kind: kind && kind.isValid(i) ? colUint(kind, i) : 0,
      startTimeUnixNano: startNs,
      endTimeUnixNano: endNs,
      attributes: (id >= 0 && spanAttrs.get(id)) || [],
      droppedAttributesCount: dAttrs && dAttrs.isValid(i) ? colUint(dAttrs, i) : 0,
      events: (id >= 0 && events.size !== 0 && events.get(id)) || NO_EVENTS,
      droppedEventsCount: dEvents && dEvents.isValid(i) ? colUint(dEvents, i) : 0,
      links: (id >= 0 && links.size !== 0 && links.get(id)) || NO_LINKS,
      droppedLinksCount: dLinks && dLinks.isValid(i) ? colUint(dLinks, i) : 0,
      status: STATUS_UNSET,
    };
    // shared defaults (see model.ts): a status object only when the span has one
    const code = stCode && stCode.isValid(i) ? colUint(stCode, i) : 0;
    const message = stMsg && stMsg.isValid(i) ? colStr(stMsg, i) : '';
    if (code !== 0 || message !== '') span.status = { code, message };
    curScope.spans.push(span);
  }
  return out;
}

function decodeEvents(b: DecodedBatch | undefined, attrs: AttrLists): Map<number, SpanEvent[]> {
  const out = new Map<number, SpanEvent[]>();
  if (!b) return out;
  const what = 'SPAN_EVENTS';
  const c = b.columns;
  const idCol = c.get('id');
  const parent = reqColumn(c, 'parent_id', what);
  const time = c.get('time_unix_nano');
  const name = c.get('name');
  const dropped = c.get('dropped_attributes_count');
  const ids = new DeltaIds();
  let prevName: string | null = null, prevParent = 0;
  for (let i = 0; i < b.length; i++) {
    const id = ids.next(idCol, i);
    const n = name && name.isValid(i) ? colStr(name, i) : '';
    const raw = colUint(parent, i);
    const p = n === prevName ? (prevParent + raw) & 0xffff : raw;
    prevName = n;
    prevParent = p;
    const ev: SpanEvent = {
      timeUnixNano: time && time.isValid(i) ? colBig(time, i) : 0n,
      name: n,
      attributes: (id >= 0 && attrs.get(id)) || [],
      droppedAttributesCount: dropped && dropped.isValid(i) ? colUint(dropped, i) : 0,
    };
    let list = out.get(p);
    if (!list) out.set(p, (list = []));
    list.push(ev);
  }
  return out;
}

function sameBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function decodeLinks(b: DecodedBatch | undefined, attrs: AttrLists): Map<number, SpanLink[]> {
  const out = new Map<number, SpanLink[]>();
  if (!b) return out;
  const what = 'SPAN_LINKS';
  const c = b.columns;
  const idCol = c.get('id');
  const parent = reqColumn(c, 'parent_id', what);
  const traceId = c.get('trace_id');
  const spanId = c.get('span_id');
  const traceState = c.get('trace_state');
  const dropped = c.get('dropped_attributes_count');
  const flags = c.get('flags');
  const ids = new DeltaIds();
  let prevTrace: Uint8Array | null = null, prevParent = 0;
  for (let i = 0; i < b.length; i++) {
    const id = ids.next(idCol, i);
    const tid = traceId && traceId.isValid(i) ? colBytes(traceId, i) : EMPTY;
    const raw = colUint(parent, i);
    const p = sameBytes(prevTrace, tid) ? (prevParent + raw) & 0xffff : raw;
    prevTrace = tid;
    prevParent = p;
    const lk: SpanLink = {
      traceId: tid,
      spanId: spanId && spanId.isValid(i) ? colBytes(spanId, i) : EMPTY,
      traceState: traceState && traceState.isValid(i) ? colStr(traceState, i) : '',
      attributes: (id >= 0 && attrs.get(id)) || [],
      droppedAttributesCount: dropped && dropped.isValid(i) ? colUint(dropped, i) : 0,
      flags: flags && flags.isValid(i) ? colUint(flags, i) : 0,
    };
    let list = out.get(p);
    if (!list) out.set(p, (list = []));
    list.push(lk);
  }
  return out;
}

export { decodeAttrs };
