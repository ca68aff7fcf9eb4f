// Hand-written OTLP protobuf decoder: bytes → model. Every read is bounded by the end of the
// enclosing message, so a bad length can never read past it; a known field with the wrong wire type,
// a truncated value, a length past the end, field number 0, wire types 6/7 or AnyValue nesting deeper
// than MAX_ANY_DEPTH throw ProtoDecodeError. Unknown fields (including groups) are skipped.
// Packed and unpacked encodings of repeated scalars are both accepted, as proto3 parsers must.
// Strings are decoded leniently: invalid UTF-8 becomes U+FFFD rather than failing the whole batch.
import {
  EMPTY_BYTES,
  KeyValueList,
  NO_EVENTS,
  NO_LINKS,
  STATUS_UNSET,
  type AnyValue,
  type Exemplar,
  type ExponentialHistogramBuckets,
  type ExponentialHistogramDataPoint,
  type HistogramDataPoint,
  type InstrumentationScope,
  type KeyValue,
  type LogRecord,
  type LogsData,
  type Metric,
  type MetricData,
  type MetricsData,
  type NumberDataPoint,
  type Resource,
  type ResourceLogs,
  type ResourceMetrics,
  type ResourceSpans,
  type ScopeLogs,
  type ScopeMetrics,
  type ScopeSpans,
  type SignalData,
  type SignalType,
  type Span,
  type SpanEvent,
  type SpanLink,
  type Status,
  type SummaryDataPoint,
  type TracesData,
  type ValueAtQuantile,
} from '../model.ts';
import { ProtoDecodeError } from './errors.ts';
import { slab, slabSlot, slabView } from '../id-slab.ts';
import type { ExportPartialSuccess } from './encode.ts';
import { SMALL_BIGINTS, smallBigInt } from '../small-bigints.ts';

/** Deepest AnyValue nesting (arrays / kvlists inside values) a decoder accepts. */
export const MAX_ANY_DEPTH = 64;
const MAX_GROUP_DEPTH = 32;

interface FastBuffer extends Buffer {
  utf8Slice(start: number, end: number): string;
}

let buf: FastBuffer;
let u8: Uint8Array; // plain view of the input: ids are copied out of it as plain Uint8Arrays
let view: DataView;
let pos = 0;

function fail(msg: string): never {
  throw new ProtoDecodeError(`invalid protobuf: ${msg} at offset ${pos}`, pos);
}

function wrongType(msg: string, field: number, wt: number): never {
  fail(`${msg} field ${field} has wire type ${wt}`);
}

// ------------------------------------------------------------------ primitives

/** Varint, low 32 bits as uint32 (proto semantics for uint32/int32/enum/bool: truncate). */
function rv(end: number): number {
  if (pos < end) {
    const b = buf[pos];
    if (b < 0x80) {
      pos++;
      return b;
    }
  }
  return rvSlow(end);
}

function rvSlow(end: number): number {
  let r = 0;
  for (let shift = 0; shift < 70; shift += 7) {
    if (pos >= end) fail('truncated varint');
    const b = buf[pos++];
    if (shift < 32) r |= (b & 0x7f) << shift;
    if (b < 0x80) return r >>> 0;
  }
  fail('varint longer than 10 bytes');
}

let hi64 = 0;
/** Full 64-bit varint: returns the low 32 bits, sets hi64 to the high 32 bits. */
function rv64(end: number): number {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) fail('truncated varint');
    const b = buf[pos++];
    if (i < 4) lo |= (b & 0x7f) << (7 * i);
    else if (i === 4) {
      lo |= (b & 0x0f) << 28;
      hi = (b & 0x7f) >>> 4;
    } else hi |= (b & 0x7f) << (7 * i - 32);
    if (b < 0x80) {
      hi64 = hi >>> 0;
      return lo >>> 0;
    }
  }
  fail('varint longer than 10 bytes');
}

function rInt64(end: number): bigint {
  const lo = rv64(end);
  const hi = hi64;
  if (hi === 0) return lo < SMALL_BIGINTS ? smallBigInt(lo) : BigInt(lo); // shared: decoding is GC-bound
  if (hi < 0x200000) return BigInt(hi * 4294967296 + lo);
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
}

function rUint64(end: number): bigint {
  const lo = rv64(end);
  const hi = hi64;
  if (hi === 0) return BigInt(lo);
  if (hi < 0x200000) return BigInt(hi * 4294967296 + lo);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** Length prefix: must fit in what is left of the enclosing message. */
function rLen(end: number): number {
  let len: number;
  const b = pos < end ? buf[pos] : 0x80;
  if (b < 0x80) {
    pos++;
    len = b;
  } else {
    len = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= end) fail('truncated length');
      const c = buf[pos++];
      if (shift === 28 && c > 0x07) fail('length exceeds 2^31');
      len |= (c & 0x7f) << shift;
      if (c < 0x80) break;
    }
  }
  if (len > end - pos) fail(`length ${len} exceeds the ${end - pos} bytes left`);
  return len;
}

/** End offset of a length-delimited sub-message that starts at pos. */
/**
 * Nested messages the current input may still open. Every one becomes objects of ~100-200 B, and
 * an empty one is 2 bytes of input: `0a 00` repeated decodes 10 MiB into a gigabyte. Real
 * telemetry spends well over 4 bytes per message (a one-letter key with a bool is 4.5), so the
 * budget of one per 4 bytes only refuses input built to blow up.
 */
let subsLeft = 0;

function rSub(end: number): number {
  const len = rLen(end);
  if (--subsLeft < 0) throw new ProtoDecodeError(`more nested messages than ${MAX_SUB_PER_BYTE_TEXT} of the input allows (built to expand in memory)`, pos);
  return pos + len;
}
const MAX_SUB_PER_BYTE_TEXT = 'one per 4 bytes';

// Short strings repeat heavily in telemetry (attribute keys, span names, enum-like values), so they
// are interned: a direct-mapped cache keyed by a hash of the bytes, verified in full, returns
// the same string without allocating. Misses fall back to the native UTF-8 decoder.
const INTERN_MAX = 40; // a multiple of 4: slots are compared 4 bytes at a time
const INTERN_SLOTS = 4096; // power of two
const internBytes = new Uint8Array(INTERN_SLOTS * INTERN_MAX);
const internWords = new Int32Array(internBytes.buffer);
const internLen = new Int32Array(INTERN_SLOTS).fill(-1);
const internStr: string[] = new Array<string>(INTERN_SLOTS).fill('');
// internWords reads in platform byte order, so the input words are read in the same order.
const NATIVE_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Hash of bytes [s, e): it reads at most 3 words (head, middle, tail), so its cost does not grow
 *  with the length; callers compare in full, so a collision never returns a wrong value. */
function hashRange(s: number, e: number, len: number): number {
  let h = 0x811c9dc5 ^ len;
  if (len < 4) {
    const src = u8;
    for (let i = s; i < e; i++) h = Math.imul(h ^ src[i], 0x01000193);
  } else {
    const dv = view;
    h = Math.imul(h ^ dv.getInt32(s, true), 0x01000193);
    h = Math.imul(h ^ dv.getInt32(e - 4, true), 0x01000193);
    if (len > 8) h = Math.imul(h ^ dv.getInt32(s + (len >> 1) - 2, true), 0x01000193);
    h ^= h >>> 13;
    h = Math.imul(h, 0x5bd1e995);
  }
  return h ^ (h >>> 15);
}

/** Whether the cached bytes at slot (of a table with rows of `max` bytes) equal input [s, s+len). */
function sameBytes(bytes: Uint8Array, words: Int32Array, slot: number, max: number, s: number, len: number): boolean {
  const dv = view;
  const n = len >> 2;
  const wb = slot * (max >> 2);
  let i = 0;
  while (i < n && words[wb + i] === dv.getInt32(s + 4 * i, NATIVE_LE)) i++;
  if (i !== n) return false;
  const src = u8;
  const base = slot * max;
  let j = n << 2;
  while (j < len && bytes[base + j] === src[s + j]) j++;
  return j === len;
}

/** Stores input [s, e) as the cached bytes of slot (rows of `max` bytes); callers keep e - s ≤ max. */
function storeBytes(bytes: Uint8Array, slot: number, max: number, s: number, e: number): void {
  const src = u8;
  const o = slot * max - s;
  for (let i = s; i < e; i++) bytes[o + i] = src[i];
}

function rStr(end: number): string {
  const len = rLen(end);
  const s = pos;
  const e = s + len;
  pos = e;
  if (len === 0) return '';
  if (len > INTERN_MAX) return buf.utf8Slice(s, e);
  const slot = hashRange(s, e, len) & (INTERN_SLOTS - 1);
  if (internLen[slot] === len && sameBytes(internBytes, internWords, slot, INTERN_MAX, s, len)) return internStr[slot];
  const str = buf.utf8Slice(s, e);
  storeBytes(internBytes, slot, INTERN_MAX, s, e);
  internLen[slot] = len;
  internStr[slot] = str;
  return str;
}

// Whole attributes repeat too (network.transport=tcp, a handful of peers, status enums): a KeyValue
// whose encoded bytes were seen before is returned as the same object, which saves the decode
// and, at 10k-span batches, the garbage that pushes a half-built batch out of the young
// generation. Only scalar values are cached. Consumers replace a decoded KeyValue and never
// assign to one (model.ts); the objects are not frozen, because that made decoding slower.
const KV_MAX = 48; // a multiple of 4
const KV_SLOTS = 2048; // power of two
const kvBytes = new Uint8Array(KV_SLOTS * KV_MAX);
const kvWords = new Int32Array(kvBytes.buffer);
const kvLen = new Int32Array(KV_SLOTS).fill(-1);
const kvObj: KeyValue[] = new Array<KeyValue>(KV_SLOTS).fill(Object.freeze({ key: '', value: null }));
// Second chance: a slot hit since it was filled survives one miss, so attributes unique to a span
// (byte counts, ports) pass through without evicting the ones that repeat.
const kvHit = new Uint8Array(KV_SLOTS);

// Ids (16 / 8 bytes, two or three per span) are copied into shared slabs (id-slab.ts), so the
// decoded model never aliases the caller's input buffer.
function rBytes(end: number): Uint8Array {
  const len = rLen(end);
  if (len === 0) return EMPTY_BYTES;
  const s = pos;
  pos += len;
  if (len > 256) return u8.slice(s, pos);
  const o = slabSlot(len);
  const dst = slab;
  const src = u8;
  for (let i = 0; i < len; i++) dst[o + i] = src[s + i];
  return slabView(o, len);
}

function rFixed64(end: number): bigint {
  if (end - pos < 8) fail('truncated fixed64');
  const v = view.getBigUint64(pos, true);
  pos += 8;
  return v;
}

function rSfixed64(end: number): bigint {
  if (end - pos < 8) fail('truncated sfixed64');
  const v = view.getBigInt64(pos, true);
  pos += 8;
  return v;
}

function rDouble(end: number): number {
  if (end - pos < 8) fail('truncated double');
  const v = view.getFloat64(pos, true);
  pos += 8;
  return v;
}

function rFixed32(end: number): number {
  if (end - pos < 4) fail('truncated fixed32');
  const v = view.getUint32(pos, true);
  pos += 4;
  return v;
}

function rTag(end: number): number {
  const tag = rv(end);
  if (tag >>> 3 === 0) fail('field number 0');
  return tag;
}

function skip(tag: number, end: number, groupDepth = 0): void {
  switch (tag & 7) {
    case 0:
      rv64(end);
      return;
    case 1:
      if (end - pos < 8) fail('truncated fixed64');
      pos += 8;
      return;
    case 2: {
      const len = rLen(end); // read first: `pos += rLen()` would add to the pre-length position
      pos += len;
      return;
    }
    case 3: {
      if (groupDepth >= MAX_GROUP_DEPTH) fail('groups nested too deeply');
      const field = tag >>> 3;
      for (;;) {
        if (pos >= end) fail('unterminated group');
        const t = rTag(end);
        if ((t & 7) === 4) {
          if (t >>> 3 !== field) fail('mismatched end-group');
          return;
        }
        skip(t, end, groupDepth + 1);
      }
    }
    case 5:
      if (end - pos < 4) fail('truncated fixed32');
      pos += 4;
      return;
    case 4:
      fail('unexpected end-group');
    default:
      fail(`invalid wire type ${tag & 7}`);
  }
}

// ------------------------------------------------------------------ common

function dAny(end: number, depth: number): AnyValue {
  if (depth > MAX_ANY_DEPTH) fail(`AnyValue nested deeper than ${MAX_ANY_DEPTH}`);
  let v: AnyValue = null;
  while (pos < end) {
    const tag = rTag(end);
    const f = tag >>> 3;
    const wt = tag & 7;
    switch (f) {
      case 1:
        if (wt !== 2) wrongType('AnyValue', f, wt);
        v = rStr(end);
        break;
      case 2:
        if (wt !== 0) wrongType('AnyValue', f, wt);
        v = rv64(end) !== 0 || hi64 !== 0;
        break;
      case 3:
        if (wt !== 0) wrongType('AnyValue', f, wt);
        v = rInt64(end);
        break;
      case 4:
        if (wt !== 1) wrongType('AnyValue', f, wt);
        v = rDouble(end);
        break;
      case 5: {
        if (wt !== 2) wrongType('AnyValue', f, wt);
        const e = rSub(end);
        const arr: AnyValue[] = [];
        while (pos < e) {
          const t = rTag(e);
          if (t >>> 3 === 1) {
            if ((t & 7) !== 2) wrongType('ArrayValue', 1, t & 7);
            arr.push(dAny(rSub(e), depth + 1));
          } else skip(t, e);
        }
        v = arr;
        break;
      }
      case 6: {
        if (wt !== 2) wrongType('AnyValue', f, wt);
        const e = rSub(end);
        const kvs: KeyValue[] = [];
        while (pos < e) {
          const t = rTag(e);
          if (t >>> 3 === 1) {
            if ((t & 7) !== 2) wrongType('KeyValueList', 1, t & 7);
            kvs.push(dKV(rSub(e), depth + 1));
          } else skip(t, e);
        }
        v = new KeyValueList(kvs);
        break;
      }
      case 7:
        if (wt !== 2) wrongType('AnyValue', f, wt);
        v = rBytes(end);
        break;
      default:
        skip(tag, end);
    }
  }
  return v;
}

function dKV(end: number, depth: number): KeyValue {
  const s = pos;
  const len = end - s;
  let slot = -1;
  // past the depth bound a fresh decode fails, so a cached copy must not answer for it
  if (len <= KV_MAX && len > 0 && depth <= MAX_ANY_DEPTH) {
    slot = hashRange(s, end, len) & (KV_SLOTS - 1);
    if (kvLen[slot] === len && sameBytes(kvBytes, kvWords, slot, KV_MAX, s, len)) {
      pos = end;
      kvHit[slot] = 1;
      return kvObj[slot];
    }
    if (kvHit[slot] === 1) {
      kvHit[slot] = 0;
      slot = -1;
    }
  }
  const kv = dKVFields(end, depth);
  if (slot >= 0) {
    const v = kv.value;
    if (typeof v !== 'object' || v === null) {
      storeBytes(kvBytes, slot, KV_MAX, s, end);
      kvLen[slot] = len;
      kvObj[slot] = kv;
    }
  }
  return kv;
}

function dKVFields(end: number, depth: number): KeyValue {
  let key = '';
  let value: AnyValue = null;
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x0a:
        key = rStr(end);
        break;
      case 0x12:
        value = dAny(rSub(end), depth);
        break;
      default:
        if (tag >>> 3 <= 2) wrongType('KeyValue', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return { key, value };
}

/** One element of a repeated KeyValue field; the caller has checked the tag. */
function pushKV(list: KeyValue[], tag: number, end: number, msg: string): void {
  if ((tag & 7) !== 2) wrongType(msg, tag >>> 3, tag & 7);
  list.push(dKV(rSub(end), 0));
}

function dResource(end: number): Resource {
  const r: Resource = { attributes: [], droppedAttributesCount: 0 };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag >>> 3) {
      case 1:
        pushKV(r.attributes, tag, end, 'Resource');
        break;
      case 2:
        if ((tag & 7) !== 0) wrongType('Resource', 2, tag & 7);
        r.droppedAttributesCount = rv(end);
        break;
      default:
        skip(tag, end);
    }
  }
  return r;
}

function dScope(end: number): InstrumentationScope {
  const s: InstrumentationScope = { name: '', version: '', attributes: [], droppedAttributesCount: 0 };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x0a:
        s.name = rStr(end);
        break;
      case 0x12:
        s.version = rStr(end);
        break;
      case 0x1a:
        s.attributes.push(dKV(rSub(end), 0));
        break;
      case 0x20:
        s.droppedAttributesCount = rv(end);
        break;
      default:
        if (tag >>> 3 <= 4) wrongType('InstrumentationScope', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return s;
}

// ------------------------------------------------------------------ traces

function dEvent(end: number): SpanEvent {
  const e: SpanEvent = { timeUnixNano: 0n, name: '', attributes: [], droppedAttributesCount: 0 };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x09:
        e.timeUnixNano = rFixed64(end);
        break;
      case 0x12:
        e.name = rStr(end);
        break;
      case 0x1a:
        e.attributes.push(dKV(rSub(end), 0));
        break;
      case 0x20:
        e.droppedAttributesCount = rv(end);
        break;
      default:
        if (tag >>> 3 <= 4) wrongType('Span.Event', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return e;
}

function dLink(end: number): SpanLink {
  const l: SpanLink = {
    traceId: EMPTY_BYTES,
    spanId: EMPTY_BYTES,
    traceState: '',
    attributes: [],
    droppedAttributesCount: 0,
    flags: 0,
  };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x0a:
        l.traceId = rBytes(end);
        break;
      case 0x12:
        l.spanId = rBytes(end);
        break;
      case 0x1a:
        l.traceState = rStr(end);
        break;
      case 0x22:
        l.attributes.push(dKV(rSub(end), 0));
        break;
      case 0x28:
        l.droppedAttributesCount = rv(end);
        break;
      case 0x35:
        l.flags = rFixed32(end);
        break;
      default:
        if (tag >>> 3 <= 6) wrongType('Span.Link', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return l;
}

function dStatus(end: number): Status {
  const s: Status = { code: 0, message: '' };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x12:
        s.message = rStr(end);
        break;
      case 0x18:
        s.code = rv(end) | 0;
        break;
      default:
        if (tag >>> 3 === 2 || tag >>> 3 === 3) wrongType('Status', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return s;
}

function dSpan(end: number): Span {
  const s: Span = {
    traceId: EMPTY_BYTES,
    spanId: EMPTY_BYTES,
    traceState: '',
    parentSpanId: EMPTY_BYTES,
    flags: 0,
    name: '',
    kind: 0,
    startTimeUnixNano: 0n,
    endTimeUnixNano: 0n,
    attributes: [],
    droppedAttributesCount: 0,
    events: NO_EVENTS,
    droppedEventsCount: 0,
    links: NO_LINKS,
    droppedLinksCount: 0,
    status: STATUS_UNSET,
  };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x0a:
        s.traceId = rBytes(end);
        break;
      case 0x12:
        s.spanId = rBytes(end);
        break;
      case 0x1a:
        s.traceState = rStr(end);
        break;
      case 0x22:
        s.parentSpanId = rBytes(end);
        break;
      case 0x2a:
        s.name = rStr(end);
        break;
      case 0x30:
        s.kind = rv(end) | 0;
        break;
      case 0x39:
        s.startTimeUnixNano = rFixed64(end);
        break;
      case 0x41:
        s.endTimeUnixNano = rFixed64(end);
        break;
      case 0x4a:
        s.attributes.push(dKV(rSub(end), 0));
        break;
      case 0x50:
        s.droppedAttributesCount = rv(end);
        break;
      case 0x5a:
        if (s.events === NO_EVENTS) s.events = [];
        s.events.push(dEvent(rSub(end)));
        break;
      case 0x60:
        s.droppedEventsCount = rv(end);
        break;
      case 0x6a:
        if (s.links === NO_LINKS) s.links = [];
        s.links.push(dLink(rSub(end)));
        break;
      case 0x70:
        s.droppedLinksCount = rv(end);
        break;
      case 0x7a:
        s.status = dStatus(rSub(end));
        break;
      case 0x85: // field 16, fixed32 (a two-byte tag on the wire)
        s.flags = rFixed32(end);
        break;
      default:
        if (tag >>> 3 <= 16) wrongType('Span', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return s;
}

function dTraces(end: number): TracesData {
  const resourceSpans: ResourceSpans[] = [];
  while (pos < end) {
    const tag = rTag(end);
    if (tag === 0x0a) resourceSpans.push(dResourceSpans(rSub(end)));
    else {
      if (tag >>> 3 === 1) wrongType('TracesData', 1, tag & 7);
      skip(tag, end);
    }
  }
  return { resourceSpans };
}

function dResourceSpans(end: number): ResourceSpans {
  const rs: ResourceSpans = { resource: { attributes: [], droppedAttributesCount: 0 }, scopeSpans: [], schemaUrl: '' };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x0a:
        rs.resource = dResource(rSub(end));
        break;
      case 0x12:
        rs.scopeSpans.push(dScopeSpans(rSub(end)));
        break;
      case 0x1a:
        rs.schemaUrl = rStr(end);
        break;
      default:
        if (tag >>> 3 <= 3) wrongType('ResourceSpans', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return rs;
}

function dScopeSpans(end: number): ScopeSpans {
  const ss: ScopeSpans = { scope: { name: '', version: '', attributes: [], droppedAttributesCount: 0 }, spans: [], schemaUrl: '' };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x0a:
        ss.scope = dScope(rSub(end));
        break;
      case 0x12:
        ss.spans.push(dSpan(rSub(end)));
        break;
      case 0x1a:
        ss.schemaUrl = rStr(end);
        break;
      default:
        if (tag >>> 3 <= 3) wrongType('ScopeSpans', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return ss;
}

// ------------------------------------------------------------------ metrics

function dExemplar(end: number): Exemplar {
  const e: Exemplar = { filteredAttributes: [], timeUnixNano: 0n, value: 0, spanId: EMPTY_BYTES, traceId: EMPTY_BYTES };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x11:
        e.timeUnixNano = rFixed64(end);
        break;
      case 0x19:
        e.value = rDouble(end);
        break;
      case 0x22:
        e.spanId = rBytes(end);
        break;
      case 0x2a:
        e.traceId = rBytes(end);
        break;
      case 0x31:
        e.value = rSfixed64(end);
        break;
      case 0x3a:
        e.filteredAttributes.push(dKV(rSub(end), 0));
        break;
      default:
        if (tag >>> 3 >= 2 && tag >>> 3 <= 7) wrongType('Exemplar', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return e;
}

function dNumberDP(end: number): NumberDataPoint {
  const p: NumberDataPoint = { attributes: [], startTimeUnixNano: 0n, timeUnixNano: 0n, value: 0, exemplars: [], flags: 0 };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x11:
        p.startTimeUnixNano = rFixed64(end);
        break;
      case 0x19:
        p.timeUnixNano = rFixed64(end);
        break;
      case 0x21:
        p.value = rDouble(end);
        break;
      case 0x2a:
        p.exemplars.push(dExemplar(rSub(end)));
        break;
      case 0x31:
        p.value = rSfixed64(end);
        break;
      case 0x3a:
        p.attributes.push(dKV(rSub(end), 0));
        break;
      case 0x40:
        p.flags = rv(end);
        break;
      default:
        if (tag >>> 3 >= 2 && tag >>> 3 <= 8) wrongType('NumberDataPoint', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return p;
}

/** repeated fixed64 (packed or not) into list. */
function pushFixed64s(list: bigint[], tag: number, end: number): void {
  const wt = tag & 7;
  if (wt === 1) list.push(rFixed64(end));
  else if (wt === 2) {
    const len = rLen(end);
    if (len % 8 !== 0) fail(`packed fixed64 length ${len} is not a multiple of 8`);
    const e = pos + len;
    while (pos < e) list.push(rFixed64(e));
  } else wrongType('repeated fixed64', tag >>> 3, wt);
}

function pushDoubles(list: number[], tag: number, end: number): void {
  const wt = tag & 7;
  if (wt === 1) list.push(rDouble(end));
  else if (wt === 2) {
    const len = rLen(end);
    if (len % 8 !== 0) fail(`packed double length ${len} is not a multiple of 8`);
    const e = pos + len;
    while (pos < e) list.push(rDouble(e));
  } else wrongType('repeated double', tag >>> 3, wt);
}

function dHistDP(end: number): HistogramDataPoint {
  const p: HistogramDataPoint = {
    attributes: [],
    startTimeUnixNano: 0n,
    timeUnixNano: 0n,
    count: 0n,
    sum: undefined,
    bucketCounts: [],
    explicitBounds: [],
    exemplars: [],
    flags: 0,
    min: undefined,
    max: undefined,
  };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x11:
        p.startTimeUnixNano = rFixed64(end);
        break;
      case 0x19:
        p.timeUnixNano = rFixed64(end);
        break;
      case 0x21:
        p.count = rFixed64(end);
        break;
      case 0x29:
        p.sum = rDouble(end);
        break;
      case 0x31:
      case 0x32:
        pushFixed64s(p.bucketCounts, tag, end);
        break;
      case 0x39:
      case 0x3a:
        pushDoubles(p.explicitBounds, tag, end);
        break;
      case 0x42:
        p.exemplars.push(dExemplar(rSub(end)));
        break;
      case 0x4a:
        p.attributes.push(dKV(rSub(end), 0));
        break;
      case 0x50:
        p.flags = rv(end);
        break;
      case 0x59:
        p.min = rDouble(end);
        break;
      case 0x61:
        p.max = rDouble(end);
        break;
      default:
        if (tag >>> 3 >= 2 && tag >>> 3 <= 12) wrongType('HistogramDataPoint', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return p;
}

function dBuckets(end: number): ExponentialHistogramBuckets {
  const b: ExponentialHistogramBuckets = { offset: 0, bucketCounts: [] };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x08: {
        const n = rv(end);
        b.offset = (n >>> 1) ^ -(n & 1);
        break;
      }
      case 0x10:
        b.bucketCounts.push(rUint64(end));
        break;
      case 0x12: {
        const e = rSub(end);
        while (pos < e) b.bucketCounts.push(rUint64(e));
        break;
      }
      default:
        if (tag >>> 3 <= 2) wrongType('ExponentialHistogramDataPoint.Buckets', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return b;
}

function dExpDP(end: number): ExponentialHistogramDataPoint {
  const p: ExponentialHistogramDataPoint = {
    attributes: [],
    startTimeUnixNano: 0n,
    timeUnixNano: 0n,
    count: 0n,
    sum: undefined,
    scale: 0,
    zeroCount: 0n,
    positive: { offset: 0, bucketCounts: [] },
    negative: { offset: 0, bucketCounts: [] },
    flags: 0,
    exemplars: [],
    min: undefined,
    max: undefined,
    zeroThreshold: 0,
  };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x0a:
        p.attributes.push(dKV(rSub(end), 0));
        break;
      case 0x11:
        p.startTimeUnixNano = rFixed64(end);
        break;
      case 0x19:
        p.timeUnixNano = rFixed64(end);
        break;
      case 0x21:
        p.count = rFixed64(end);
        break;
      case 0x29:
        p.sum = rDouble(end);
        break;
      case 0x30: {
        const n = rv(end);
        p.scale = (n >>> 1) ^ -(n & 1);
        break;
      }
      case 0x39:
        p.zeroCount = rFixed64(end);
        break;
      case 0x42:
        p.positive = dBuckets(rSub(end));
        break;
      case 0x4a:
        p.negative = dBuckets(rSub(end));
        break;
      case 0x50:
        p.flags = rv(end);
        break;
      case 0x5a:
        p.exemplars.push(dExemplar(rSub(end)));
        break;
      case 0x61:
        p.min = rDouble(end);
        break;
      case 0x69:
        p.max = rDouble(end);
        break;
      case 0x71:
        p.zeroThreshold = rDouble(end);
        break;
      default:
        if (tag >>> 3 <= 14) wrongType('ExponentialHistogramDataPoint', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return p;
}

function dQuantile(end: number): ValueAtQuantile {
  const q: ValueAtQuantile = { quantile: 0, value: 0 };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x09:
        q.quantile = rDouble(end);
        break;
      case 0x11:
        q.value = rDouble(end);
        break;
      default:
        if (tag >>> 3 <= 2) wrongType('ValueAtQuantile', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return q;
}

function dSummaryDP(end: number): SummaryDataPoint {
  const p: SummaryDataPoint = { attributes: [], startTimeUnixNano: 0n, timeUnixNano: 0n, count: 0n, sum: 0, quantileValues: [], flags: 0 };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x11:
        p.startTimeUnixNano = rFixed64(end);
        break;
      case 0x19:
        p.timeUnixNano = rFixed64(end);
        break;
      case 0x21:
        p.count = rFixed64(end);
        break;
      case 0x29:
        p.sum = rDouble(end);
        break;
      case 0x32:
        p.quantileValues.push(dQuantile(rSub(end)));
        break;
      case 0x3a:
        p.attributes.push(dKV(rSub(end), 0));
        break;
      case 0x40:
        p.flags = rv(end);
        break;
      default:
        if (tag >>> 3 >= 2 && tag >>> 3 <= 8) wrongType('SummaryDataPoint', tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
  return p;
}

/** Gauge / Sum / Histogram / ExponentialHistogram / Summary bodies: points in field 1, temporality 2, monotonic 3. */
function dData<P>(end: number, msg: string, point: (end: number) => P, out: { points: P[]; temporality: number; monotonic: boolean }): void {
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x0a:
        out.points.push(point(rSub(end)));
        break;
      case 0x10:
        out.temporality = rv(end) | 0;
        break;
      case 0x18:
        out.monotonic = rv64(end) !== 0 || hi64 !== 0;
        break;
      default:
        if (tag >>> 3 <= 3) wrongType(msg, tag >>> 3, tag & 7);
        skip(tag, end);
    }
  }
}

function dMetric(end: number): Metric {
  const m: Metric = { name: '', description: '', unit: '', data: { type: 'empty' }, metadata: [] };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x0a:
        m.name = rStr(end);
        break;
      case 0x12:
        m.description = rStr(end);
        break;
      case 0x1a:
        m.unit = rStr(end);
        break;
      case 0x2a: {
        const o = { points: [] as NumberDataPoint[], temporality: 0, monotonic: false };
        dData(rSub(end), 'Gauge', dNumberDP, o);
        m.data = { type: 'gauge', dataPoints: o.points };
        break;
      }
      case 0x3a: {
        const o = { points: [] as NumberDataPoint[], temporality: 0, monotonic: false };
        dData(rSub(end), 'Sum', dNumberDP, o);
        m.data = { type: 'sum', dataPoints: o.points, aggregationTemporality: o.temporality, isMonotonic: o.monotonic };
        break;
      }
      case 0x4a: {
        const o = { points: [] as HistogramDataPoint[], temporality: 0, monotonic: false };
        dData(rSub(end), 'Histogram', dHistDP, o);
        m.data = { type: 'histogram', dataPoints: o.points, aggregationTemporality: o.temporality };
        break;
      }
      case 0x52: {
        const o = { points: [] as ExponentialHistogramDataPoint[], temporality: 0, monotonic: false };
        dData(rSub(end), 'ExponentialHistogram', dExpDP, o);
        m.data = { type: 'exponentialHistogram', dataPoints: o.points, aggregationTemporality: o.temporality };
        break;
      }
      case 0x5a: {
        const o = { points: [] as SummaryDataPoint[], temporality: 0, monotonic: false };
        dData(rSub(end), 'Summary', dSummaryDP, o);
        m.data = { type: 'summary', dataPoints: o.points };
        break;
      }
      case 0x62:
        m.metadata.push(dKV(rSub(end), 0));
        break;
      default: {
        const f = tag >>> 3;
        if (f <= 3 || f === 5 || f === 7 || (f >= 9 && f <= 12)) wrongType('Metric', f, tag & 7);
        skip(tag, end);
      }
    }
  }
  return m;
}

function dMetrics(end: number): MetricsData {
  const resourceMetrics: ResourceMetrics[] = [];
  while (pos < end) {
    const tag = rTag(end);
    if (tag === 0x0a) {
      const e = rSub(end);
      const rm: ResourceMetrics = { resource: { attributes: [], droppedAttributesCount: 0 }, scopeMetrics: [], schemaUrl: '' };
      while (pos < e) {
        const t = rTag(e);
        switch (t) {
          case 0x0a:
            rm.resource = dResource(rSub(e));
            break;
          case 0x12: {
            const se = rSub(e);
            const sm: ScopeMetrics = { scope: { name: '', version: '', attributes: [], droppedAttributesCount: 0 }, metrics: [], schemaUrl: '' };
            while (pos < se) {
              const u = rTag(se);
              switch (u) {
                case 0x0a:
                  sm.scope = dScope(rSub(se));
                  break;
                case 0x12:
                  sm.metrics.push(dMetric(rSub(se)));
                  break;
                case 0x1a:
                  sm.schemaUrl = rStr(se);
                  break;
                default:
                  if (u >>> 3 <= 3) wrongType('ScopeMetrics', u >>> 3, u & 7);
                  skip(u, se);
              }
            }
            rm.scopeMetrics.push(sm);
            break;
          }
          case 0x1a:
            rm.schemaUrl = rStr(e);
            break;
          default:
            if (t >>> 3 <= 3) wrongType('ResourceMetrics', t >>> 3, t & 7);
            skip(t, e);
        }
      }
      resourceMetrics.push(rm);
    } else {
      if (tag >>> 3 === 1) wrongType('MetricsData', 1, tag & 7);
      skip(tag, end);
    }
  }
  return { resourceMetrics };
}

// ------------------------------------------------------------------ logs

function dLog(end: number): LogRecord {
  const r: LogRecord = {
    timeUnixNano: 0n,
    observedTimeUnixNano: 0n,
    severityNumber: 0,
    severityText: '',
    body: null,
    attributes: [],
    droppedAttributesCount: 0,
    flags: 0,
    traceId: EMPTY_BYTES,
    spanId: EMPTY_BYTES,
    eventName: '',
  };
  while (pos < end) {
    const tag = rTag(end);
    switch (tag) {
      case 0x09:
        r.timeUnixNano = rFixed64(end);
        break;
      case 0x10:
        r.severityNumber = rv(end) | 0;
        break;
      case 0x1a:
        r.severityText = rStr(end);
        break;
      case 0x2a:
        r.body = dAny(rSub(end), 0);
        break;
      case 0x32:
        r.attributes.push(dKV(rSub(end), 0));
        break;
      case 0x38:
        r.droppedAttributesCount = rv(end);
        break;
      case 0x45:
        r.flags = rFixed32(end);
        break;
      case 0x4a:
        r.traceId = rBytes(end);
        break;
      case 0x52:
        r.spanId = rBytes(end);
        break;
      case 0x59:
        r.observedTimeUnixNano = rFixed64(end);
        break;
      case 0x62:
        r.eventName = rStr(end);
        break;
      default: {
        const f = tag >>> 3;
        if (f <= 12 && f !== 4) wrongType('LogRecord', f, tag & 7);
        skip(tag, end);
      }
    }
  }
  return r;
}

function dLogs(end: number): LogsData {
  const resourceLogs: ResourceLogs[] = [];
  while (pos < end) {
    const tag = rTag(end);
    if (tag === 0x0a) {
      const e = rSub(end);
      const rl: ResourceLogs = { resource: { attributes: [], droppedAttributesCount: 0 }, scopeLogs: [], schemaUrl: '' };
      while (pos < e) {
        const t = rTag(e);
        switch (t) {
          case 0x0a:
            rl.resource = dResource(rSub(e));
            break;
          case 0x12: {
            const se = rSub(e);
            const sl: ScopeLogs = { scope: { name: '', version: '', attributes: [], droppedAttributesCount: 0 }, logRecords: [], schemaUrl: '' };
            while (pos < se) {
              const u = rTag(se);
              switch (u) {
                case 0x0a:
                  sl.scope = dScope(rSub(se));
                  break;
                case 0x12:
                  sl.logRecords.push(dLog(rSub(se)));
                  break;
                case 0x1a:
                  sl.schemaUrl = rStr(se);
                  break;
                default:
                  if (u >>> 3 <= 3) wrongType('ScopeLogs', u >>> 3, u & 7);
                  skip(u, se);
              }
            }
            rl.scopeLogs.push(sl);
            break;
          }
          case 0x1a:
            rl.schemaUrl = rStr(e);
            break;
          default:
            if (t >>> 3 <= 3) wrongType('ResourceLogs', t >>> 3, t & 7);
            skip(t, e);
        }
      }
      resourceLogs.push(rl);
    } else {
      if (tag >>> 3 === 1) wrongType('LogsData', 1, tag & 7);
      skip(tag, end);
    }
  }
  return { resourceLogs };
}

// ------------------------------------------------------------------ entry points

function run<T>(bytes: Uint8Array, decode: (end: number) => T): T {
  buf = (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as FastBuffer;
  u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = 0;
  subsLeft = (bytes.byteLength >>> 2) + 1024;
  try {
    return decode(bytes.byteLength);
  } catch (err) {
    if (err instanceof ProtoDecodeError) throw err;
    // Anything else (e.g. stack overflow on hostile input) is still bad input to the caller.
    throw new ProtoDecodeError(`invalid protobuf: ${(err as Error).message}`, pos);
  } finally {
    buf = undefined as unknown as FastBuffer;
    u8 = undefined as unknown as Uint8Array;
    view = undefined as unknown as DataView;
  }
}

/** Protobuf TracesData / ExportTraceServiceRequest → model. Throws ProtoDecodeError. */
export function decodeTraces(bytes: Uint8Array): TracesData {
  return run(bytes, dTraces);
}

/** Protobuf MetricsData / ExportMetricsServiceRequest → model. Throws ProtoDecodeError. */
export function decodeMetrics(bytes: Uint8Array): MetricsData {
  return run(bytes, dMetrics);
}

/** Protobuf LogsData / ExportLogsServiceRequest → model. Throws ProtoDecodeError. */
export function decodeLogs(bytes: Uint8Array): LogsData {
  return run(bytes, dLogs);
}

export function decodeSignal<S extends SignalType>(signal: S, bytes: Uint8Array): SignalData[S] {
  if (signal === 'traces') return decodeTraces(bytes) as SignalData[S];
  if (signal === 'metrics') return decodeMetrics(bytes) as SignalData[S];
  return decodeLogs(bytes) as SignalData[S];
}

/** Export*ServiceResponse → its partial_success, or undefined when absent or empty (full success). */
export function decodeExportResponse(bytes: Uint8Array): ExportPartialSuccess | undefined {
  return run(bytes, (end) => {
    let out: ExportPartialSuccess | undefined;
    while (pos < end) {
      const tag = rTag(end);
      if (tag === 0x0a) {
        const e = rSub(end);
        const ps: ExportPartialSuccess = { rejected: 0n, errorMessage: '' };
        while (pos < e) {
          const t = rTag(e);
          if (t === 0x08) ps.rejected = rInt64(e);
          else if (t === 0x12) ps.errorMessage = rStr(e);
          else {
            if (t >>> 3 <= 2) wrongType('PartialSuccess', t >>> 3, t & 7);
            skip(t, e);
          }
        }
        // An empty partial_success (the reference collector sends one) means full success too.
        out = ps.rejected === 0n && ps.errorMessage === '' ? undefined : ps;
      } else {
        if (tag >>> 3 === 1) wrongType('ExportResponse', 1, tag & 7);
        skip(tag, end);
      }
    }
    return out;
  });
}
