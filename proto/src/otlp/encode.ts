// Hand-written OTLP protobuf encoder: model → bytes.
// Each item (span, metric, log record, resource, scope) is encoded in two passes while its objects
// are still in cache: pass 1 (size*) computes every nested message length and every string's UTF-8
// length and records them, in the order pass 2 needs them, in one Int32Array; pass 2 (write*) then
// writes the item straight into a reusable scratch buffer. The lengths of the enclosing ResourceX /
// ScopeX messages are back-filled once their items are written (moving the body left by the few
// bytes a shorter varint saves), and the result is copied out once into an exact-size Buffer.
// Fields are written in field-number order, defaults (0, "", empty) omitted as proto3 does; oneof
// members (AnyValue, data point values) are always written because their presence is the value.
import {
  KeyValueList,
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
  type MetricsData,
  type NumberDataPoint,
  type Resource,
  type SignalData,
  type SignalType,
  type Span,
  type SummaryDataPoint,
  type TracesData,
} from '../model.ts';

/** Node's Buffer has fast native writers that the public typings omit. */
interface FastBuffer extends Buffer {
  utf8Write(s: string, offset: number, length: number): number;
}

// ------------------------------------------------------------------ shared encoder state
// Encoding is synchronous and never re-entered, so module state is safe and avoids a context object.
let sizes = new Int32Array(4096);
let sp = 0; // pass-1 push index
let rp = 0; // pass-2 read index
const SCRATCH_INITIAL = 64 * 1024;
const SCRATCH_KEEP_MAX = 32 * 1024 * 1024; // a larger scratch is dropped after use
let buf = Buffer.allocUnsafeSlow(SCRATCH_INITIAL) as FastBuffer;
let view = new DataView(buf.buffer, buf.byteOffset, buf.length);
let pos = 0;

function ensure(n: number): void {
  if (pos + n > buf.length) {
    const next = Buffer.allocUnsafeSlow(Math.max(pos + n, buf.length * 2)) as FastBuffer;
    buf.copy(next, 0, 0, pos);
    buf = next;
    view = new DataView(next.buffer, next.byteOffset, next.length);
  }
}

/** Opens a length-delimited field whose length is not known yet: tag + 5 reserved bytes. */
function open(tag: number): number {
  ensure(6);
  buf[pos++] = tag;
  const at = pos;
  pos += 5;
  return at;
}

/** Back-fills the length opened at `at`, closing the gap a shorter varint leaves. */
function close(at: number): void {
  const len = pos - at - 5;
  const k = vsize(len);
  if (k < 5) {
    buf.copyWithin(at + k, at + 5, pos);
    pos -= 5 - k;
  }
  wvp(buf, at, len);
}

/** Sizes then writes one item; sizes/rp/sp are per item so the sizes array stays small. */
function item<T>(tag: number, x: T, size: (x: T) => number, write: (x: T) => void): void {
  sp = 0;
  rp = 0;
  const n = size(x);
  ensure(6 + n);
  buf[pos] = tag;
  pos = wvp(buf, pos + 1, n);
  const start = pos;
  write(x);
  if (pos - start !== n || rp !== sp) throw new Error(`OTLP encode: size mismatch (${pos - start}/${n}, ${rp}/${sp})`);
}

/** A message-typed field sized by a size* function that already counts its own tag and slot. */
function field<T>(x: T, size: (x: T) => number, write: (tag: number, x: T) => void, tag: number): void {
  sp = 0;
  rp = 0;
  const n = size(x);
  ensure(n);
  write(tag, x);
}

function strField(tag: number, s: string): void {
  sp = 0;
  rp = 0;
  ensure(sStr(s));
  wStr(tag, s);
}

function reserve(): number {
  if (sp === sizes.length) {
    const n = new Int32Array(sizes.length * 2);
    n.set(sizes);
    sizes = n;
  }
  return sp++;
}

function vsize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Size of an int32 varint (enums): negatives are sign-extended to 10 bytes. */
function i32size(v: number): number {
  return v < 0 ? 10 : vsize(v);
}

function u64size(lo: number, hi: number): number {
  if (hi === 0) return vsize(lo);
  let n = 5; // the low 32 bits plus at least one more group
  hi >>>= 3; // bits 35.. of the value
  while (hi !== 0) {
    n++;
    hi >>>= 7;
  }
  return n;
}

let lo64 = 0;
let hi64 = 0;
function split64(v: bigint): void {
  const u = BigInt.asUintN(64, v);
  lo64 = Number(u & 0xffffffffn);
  hi64 = Number(u >> 32n);
}

function i64size(v: bigint): number {
  const n = Number(v); // exact whenever it lands in [0, 2^31)
  if (n >= 0 && n < 0x80000000) return vsize(n);
  if (v < 0n) return 10;
  split64(v);
  return u64size(lo64, hi64);
}

function utf8Len(s: string): number {
  const n = s.length;
  if (n > 64) return Buffer.byteLength(s, 'utf8');
  let len = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) len += 1;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < n && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      i++;
      len += 2; // 2 UTF-16 units → 4 bytes
    } else len += 2; // 3 bytes; a lone surrogate becomes U+FFFD (3 bytes), as Buffer writes it
  }
  return len;
}

// ------------------------------------------------------------------ write primitives

function wv(v: number): void {
  while (v > 127) {
    buf[pos++] = (v & 127) | 128;
    v >>>= 7;
  }
  buf[pos++] = v;
}

/** Varint at p into out, returning the new position (hot paths keep buf/pos in locals). */
function wvp(out: FastBuffer, p: number, v: number): number {
  while (v > 127) {
    out[p++] = (v & 127) | 128;
    v >>>= 7;
  }
  out[p] = v;
  return p + 1;
}

function wv64p(out: FastBuffer, p: number, lo: number, hi: number): number {
  while (hi !== 0) {
    out[p++] = (lo & 127) | 128;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  return wvp(out, p, lo);
}

/** String of UTF-8 length len at p (see wstr). */
function wstrp(out: FastBuffer, p: number, s: string, len: number): number {
  if (len === s.length && len < 48) {
    for (let i = 0; i < len; i++) out[p + i] = s.charCodeAt(i);
  } else out.utf8Write(s, p, len);
  return p + len;
}

function wv64(lo: number, hi: number): void {
  while (hi !== 0) {
    buf[pos++] = (lo & 127) | 128;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  wv(lo);
}

function wi32(v: number): void {
  if (v >= 0) wv(v);
  else wv64(v >>> 0, 0xffffffff);
}

function wi64(v: bigint): void {
  const n = Number(v);
  if (n >= 0 && n < 0x80000000) wv(n);
  else {
    split64(v);
    wv64(lo64, hi64);
  }
}


function wbytes(b: Uint8Array): void {
  const n = b.length;
  if (n <= 32) {
    const out = buf; // ids: a local loop is cheaper than a native set() call
    const p = pos;
    for (let i = 0; i < n; i++) out[p + i] = b[i];
  } else buf.set(b, pos);
  pos += n;
}

function wfixed64(v: bigint): void {
  view.setBigUint64(pos, v, true);
  pos += 8;
}

function wdouble(v: number): void {
  view.setFloat64(pos, v, true);
  pos += 8;
}

function wfixed32(v: number): void {
  view.setUint32(pos, v >>> 0, true);
  pos += 4;
}

// ------------------------------------------------------------------ field helpers (tag ≤ 15 → 1 byte)

function sStr(s: string): number {
  if (s.length === 0) return 0;
  const l = utf8Len(s);
  { const r = reserve(); sizes[r] = l; }
  return 1 + vsize(l) + l;
}

function wStr(tag: number, s: string): void {
  if (s.length === 0) return;
  const out = buf;
  let p = pos;
  out[p++] = tag;
  const l = sizes[rp++];
  p = wvp(out, p, l);
  pos = wstrp(out, p, s, l);
}

function sBytes(b: Uint8Array): number {
  const l = b.length;
  return l === 0 ? 0 : 1 + vsize(l) + l;
}

function wBytes(tag: number, b: Uint8Array): void {
  const n = b.length;
  if (n === 0) return;
  const out = buf;
  let p = pos;
  out[p++] = tag;
  p = wvp(out, p, n);
  if (n <= 32) {
    for (let i = 0; i < n; i++) out[p + i] = b[i]; // ids: cheaper than a native set() call
  } else out.set(b, p);
  pos = p + n;
}

function sU32(v: number): number {
  return v === 0 ? 0 : 1 + vsize(v >>> 0);
}

function wU32(tag: number, v: number): void {
  if (v === 0) return;
  const out = buf;
  out[pos] = tag;
  pos = wvp(out, pos + 1, v >>> 0);
}

function sEnum(v: number): number {
  return v === 0 ? 0 : 1 + i32size(v | 0);
}

function wEnum(tag: number, v: number): void {
  if (v === 0) return;
  buf[pos++] = tag;
  wi32(v | 0);
}

function sF64(v: bigint): number {
  return v === 0n ? 0 : 9;
}

function wF64(tag: number, v: bigint): void {
  if (v === 0n) return;
  buf[pos] = tag;
  view.setBigUint64(pos + 1, v, true);
  pos += 9;
}

/** proto3 non-optional double: omitted when +0 (−0 is kept so it survives the round trip). */
function sDbl(v: number): number {
  return Object.is(v, 0) ? 0 : 9;
}

function wDbl(tag: number, v: number): void {
  if (Object.is(v, 0)) return;
  buf[pos++] = tag;
  wdouble(v);
}

function sOptDbl(v: number | undefined): number {
  return v === undefined ? 0 : 9;
}

function wOptDbl(tag: number, v: number | undefined): void {
  if (v === undefined) return;
  buf[pos++] = tag;
  wdouble(v);
}

/** A sub-message field: reserve its length slot, size the body, return tag + length + body. */
function sMsgBody(bodySize: number): number {
  return 1 + vsize(bodySize) + bodySize;
}

// ------------------------------------------------------------------ common

function sAny(v: AnyValue): number {
  switch (typeof v) {
    case 'string': {
      const l = utf8Len(v);
      { const r = reserve(); sizes[r] = l; }
      return 1 + vsize(l) + l;
    }
    case 'boolean':
      return 2;
    case 'number':
      return 9;
    case 'bigint':
      return 1 + i64size(v);
    case 'object': {
      if (v === null) return 0;
      if (v instanceof Uint8Array) return 1 + vsize(v.length) + v.length;
      if (Array.isArray(v)) {
        const slot = reserve();
        let n = 0;
        for (let i = 0; i < v.length; i++) {
          const s = reserve();
          const b = sAny(v[i]);
          sizes[s] = b;
          n += 1 + vsize(b) + b;
        }
        sizes[slot] = n;
        return 1 + vsize(n) + n;
      }
      if (v instanceof KeyValueList) {
        const slot = reserve();
        const n = sAttrs(v.values);
        sizes[slot] = n;
        return 1 + vsize(n) + n;
      }
    }
  }
  throw new TypeError(`OTLP encode: unsupported AnyValue ${String(v)}`);
}

function wAny(v: AnyValue): void {
  switch (typeof v) {
    case 'string': {
      const out = buf;
      const l = sizes[rp++];
      out[pos] = 0x0a;
      pos = wstrp(out, wvp(out, pos + 1, l), v, l);
      return;
    }
    case 'boolean':
      buf[pos] = 0x10;
      buf[pos + 1] = v ? 1 : 0;
      pos += 2;
      return;
    case 'number':
      buf[pos++] = 0x21;
      wdouble(v);
      return;
    case 'bigint': {
      buf[pos] = 0x18;
      const n = Number(v);
      if (n >= 0 && n < 0x80000000) pos = wvp(buf, pos + 1, n);
      else {
        pos++;
        wi64(v);
      }
      return;
    }
    default: {
      if (v === null) return;
      if (v instanceof Uint8Array) {
        buf[pos++] = 0x3a;
        wv(v.length);
        wbytes(v);
        return;
      }
      if (Array.isArray(v)) {
        buf[pos++] = 0x2a;
        wv(sizes[rp++]);
        for (let i = 0; i < v.length; i++) {
          buf[pos++] = 0x0a;
          wv(sizes[rp++]);
          wAny(v[i]);
        }
        return;
      }
      buf[pos++] = 0x32;
      wv(sizes[rp++]);
      wAttrs(0x0a, (v as KeyValueList).values);
    }
  }
}

// Attribute keys repeat in every span, so their UTF-8 bytes are cached (bounded, never evicted):
// pass 1 skips the length scan and pass 2 copies bytes instead of re-encoding characters. Pass 1
// records -(index + 1) of the cache entry in the sizes array so pass 2 (wAttrs) needs no second lookup.
const KEY_CACHE_MAX = 4096;
const keyIndex = new Map<string, number>();
const keyBytes: Uint8Array[] = [];

// Consecutive items mostly carry the same keys in the same order: a per-position memo of the last
// key and its cache index skips the Map lookup (string equality is exact, so a miss is only slower).
const MEMO_POSITIONS = 64;
const memoKey: string[] = new Array<string>(MEMO_POSITIONS).fill('');
const memoKeyIdx = new Int32Array(MEMO_POSITIONS);

function sKey(k: string, at: number): number {
  if (k.length === 0) return 0;
  let i: number | undefined;
  if (at < MEMO_POSITIONS && memoKey[at] === k) i = memoKeyIdx[at];
  else {
    i = keyIndex.get(k);
    if (i !== undefined && at < MEMO_POSITIONS) {
      memoKey[at] = k;
      memoKeyIdx[at] = i;
    }
  }
  if (i === undefined) {
    if (k.length > 64 || keyBytes.length >= KEY_CACHE_MAX) return sStr(k);
    i = keyBytes.length;
    keyBytes.push(new Uint8Array(Buffer.from(k, 'utf8')));
    keyIndex.set(k, i);
  }
  const r = reserve();
  sizes[r] = -(i + 1);
  const n = keyBytes[i].length;
  return 1 + vsize(n) + n;
}

function sKV(kv: KeyValue, at: number): number {
  let n = sKey(kv.key, at);
  const v = kv.value;
  if (v !== null) {
    const slot = reserve();
    const b = sAny(v);
    sizes[slot] = b;
    n += 1 + vsize(b) + b;
  }
  return n;
}

/** Size of a repeated KeyValue field including tags (all attribute field numbers are ≤ 15). */
function sAttrs(attrs: KeyValue[]): number {
  let n = 0;
  for (let i = 0; i < attrs.length; i++) {
    const slot = reserve();
    const b = sKV(attrs[i], i);
    sizes[slot] = b;
    n += 1 + vsize(b) + b;
  }
  return n;
}

function wAttrs(tag: number, attrs: KeyValue[]): void {
  for (let i = 0; i < attrs.length; i++) {
    const kv = attrs[i];
    const out = buf;
    let p = pos;
    out[p++] = tag;
    p = wvp(out, p, sizes[rp++]);
    const k = kv.key;
    if (k.length !== 0) {
      out[p++] = 0x0a;
      const l = sizes[rp++];
      if (l >= 0) p = wstrp(out, wvp(out, p, l), k, l);
      else {
        const e = keyBytes[-l - 1];
        const n = e.length;
        p = wvp(out, p, n);
        if (n < 16) for (let j = 0; j < n; j++) out[p + j] = e[j];
        else out.set(e, p);
        p += n;
      }
    }
    const v = kv.value;
    if (v !== null) {
      out[p++] = 0x12;
      pos = wvp(out, p, sizes[rp++]);
      wAny(v);
    } else pos = p;
  }
}

function sResource(r: Resource): number {
  const slot = reserve();
  const n = sAttrs(r.attributes) + sU32(r.droppedAttributesCount);
  sizes[slot] = n;
  return sMsgBody(n);
}

function wResource(tag: number, r: Resource): void {
  buf[pos++] = tag;
  wv(sizes[rp++]);
  wAttrs(0x0a, r.attributes);
  wU32(0x10, r.droppedAttributesCount);
}

function sScope(s: InstrumentationScope): number {
  const slot = reserve();
  const n = sStr(s.name) + sStr(s.version) + sAttrs(s.attributes) + sU32(s.droppedAttributesCount);
  sizes[slot] = n;
  return sMsgBody(n);
}

function wScope(tag: number, s: InstrumentationScope): void {
  buf[pos++] = tag;
  wv(sizes[rp++]);
  wStr(0x0a, s.name);
  wStr(0x12, s.version);
  wAttrs(0x1a, s.attributes);
  wU32(0x20, s.droppedAttributesCount);
}

// ------------------------------------------------------------------ traces

function sSpan(s: Span): number {
  let n = sBytes(s.traceId) + sBytes(s.spanId) + sStr(s.traceState) + sBytes(s.parentSpanId) + sStr(s.name);
  n += sEnum(s.kind) + sF64(s.startTimeUnixNano) + sF64(s.endTimeUnixNano);
  n += sAttrs(s.attributes) + sU32(s.droppedAttributesCount);
  const events = s.events;
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    const slot = reserve();
    const b = sF64(e.timeUnixNano) + sStr(e.name) + sAttrs(e.attributes) + sU32(e.droppedAttributesCount);
    sizes[slot] = b;
    n += sMsgBody(b);
  }
  n += sU32(s.droppedEventsCount);
  const links = s.links;
  for (let i = 0; i < links.length; i++) {
    const l = links[i];
    const slot = reserve();
    const b =
      sBytes(l.traceId) +
      sBytes(l.spanId) +
      sStr(l.traceState) +
      sAttrs(l.attributes) +
      sU32(l.droppedAttributesCount) +
      (l.flags === 0 ? 0 : 5);
    sizes[slot] = b;
    n += sMsgBody(b);
  }
  n += sU32(s.droppedLinksCount);
  const st = s.status;
  if (st.code !== 0 || st.message.length !== 0) {
    const slot = reserve();
    const b = sStr(st.message) + sEnum(st.code);
    sizes[slot] = b;
    n += sMsgBody(b);
  }
  if (s.flags !== 0) n += 6; // field 16 → 2-byte tag
  return n;
}

function wSpan(s: Span): void {
  wBytes(0x0a, s.traceId);
  wBytes(0x12, s.spanId);
  wStr(0x1a, s.traceState);
  wBytes(0x22, s.parentSpanId);
  wStr(0x2a, s.name);
  wEnum(0x30, s.kind);
  wF64(0x39, s.startTimeUnixNano);
  wF64(0x41, s.endTimeUnixNano);
  wAttrs(0x4a, s.attributes);
  wU32(0x50, s.droppedAttributesCount);
  const events = s.events;
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    buf[pos++] = 0x5a;
    wv(sizes[rp++]);
    wF64(0x09, e.timeUnixNano);
    wStr(0x12, e.name);
    wAttrs(0x1a, e.attributes);
    wU32(0x20, e.droppedAttributesCount);
  }
  wU32(0x60, s.droppedEventsCount);
  const links = s.links;
  for (let i = 0; i < links.length; i++) {
    const l = links[i];
    buf[pos++] = 0x6a;
    wv(sizes[rp++]);
    wBytes(0x0a, l.traceId);
    wBytes(0x12, l.spanId);
    wStr(0x1a, l.traceState);
    wAttrs(0x22, l.attributes);
    wU32(0x28, l.droppedAttributesCount);
    if (l.flags !== 0) {
      buf[pos++] = 0x35;
      wfixed32(l.flags);
    }
  }
  wU32(0x70, s.droppedLinksCount);
  const st = s.status;
  if (st.code !== 0 || st.message.length !== 0) {
    buf[pos++] = 0x7a;
    wv(sizes[rp++]);
    wStr(0x12, st.message);
    wEnum(0x18, st.code);
  }
  if (s.flags !== 0) {
    buf[pos++] = 0x85;
    buf[pos++] = 0x01;
    wfixed32(s.flags);
  }
}

function wTraces(d: TracesData): void {
  for (const rs of d.resourceSpans) {
    const ra = open(0x0a);
    field(rs.resource, sResource, wResource, 0x0a);
    for (const ss of rs.scopeSpans) {
      const sa = open(0x12);
      field(ss.scope, sScope, wScope, 0x0a);
      const spans = ss.spans;
      for (let i = 0; i < spans.length; i++) item(0x12, spans[i], sSpan, wSpan);
      strField(0x1a, ss.schemaUrl);
      close(sa);
    }
    strField(0x1a, rs.schemaUrl);
    close(ra);
  }
}

// ------------------------------------------------------------------ metrics

function sExemplars(list: Exemplar[]): number {
  let n = 0;
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    const slot = reserve();
    const b = sF64(e.timeUnixNano) + 9 + sBytes(e.spanId) + sBytes(e.traceId) + sAttrs(e.filteredAttributes);
    sizes[slot] = b;
    n += sMsgBody(b);
  }
  return n;
}

function wExemplars(tag: number, list: Exemplar[]): void {
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    buf[pos++] = tag;
    wv(sizes[rp++]);
    wF64(0x11, e.timeUnixNano);
    if (typeof e.value === 'number') {
      buf[pos++] = 0x19;
      wdouble(e.value);
    }
    wBytes(0x22, e.spanId);
    wBytes(0x2a, e.traceId);
    if (typeof e.value === 'bigint') {
      buf[pos++] = 0x31;
      view.setBigInt64(pos, e.value, true);
      pos += 8;
    }
    wAttrs(0x3a, e.filteredAttributes);
  }
}

function sNumberDP(p: NumberDataPoint): number {
  return sF64(p.startTimeUnixNano) + sF64(p.timeUnixNano) + 9 + sExemplars(p.exemplars) + sAttrs(p.attributes) + sU32(p.flags);
}

function wNumberDP(p: NumberDataPoint): void {
  wF64(0x11, p.startTimeUnixNano);
  wF64(0x19, p.timeUnixNano);
  if (typeof p.value === 'number') {
    buf[pos++] = 0x21;
    wdouble(p.value);
  }
  wExemplars(0x2a, p.exemplars);
  if (typeof p.value === 'bigint') {
    buf[pos++] = 0x31;
    view.setBigInt64(pos, p.value, true);
    pos += 8;
  }
  wAttrs(0x3a, p.attributes);
  wU32(0x40, p.flags);
}

function sHistDP(p: HistogramDataPoint): number {
  let n = sF64(p.startTimeUnixNano) + sF64(p.timeUnixNano) + sF64(p.count) + sOptDbl(p.sum);
  if (p.bucketCounts.length) n += sMsgBody(p.bucketCounts.length * 8);
  if (p.explicitBounds.length) n += sMsgBody(p.explicitBounds.length * 8);
  n += sExemplars(p.exemplars) + sAttrs(p.attributes) + sU32(p.flags) + sOptDbl(p.min) + sOptDbl(p.max);
  return n;
}

function wHistDP(p: HistogramDataPoint): void {
  wF64(0x11, p.startTimeUnixNano);
  wF64(0x19, p.timeUnixNano);
  wF64(0x21, p.count);
  wOptDbl(0x29, p.sum);
  const bc = p.bucketCounts;
  if (bc.length) {
    buf[pos++] = 0x32;
    wv(bc.length * 8);
    for (let i = 0; i < bc.length; i++) wfixed64(bc[i]);
  }
  const eb = p.explicitBounds;
  if (eb.length) {
    buf[pos++] = 0x3a;
    wv(eb.length * 8);
    for (let i = 0; i < eb.length; i++) wdouble(eb[i]);
  }
  wExemplars(0x42, p.exemplars);
  wAttrs(0x4a, p.attributes);
  wU32(0x50, p.flags);
  wOptDbl(0x59, p.min);
  wOptDbl(0x61, p.max);
}

function sBuckets(b: ExponentialHistogramBuckets): number {
  if (b.offset === 0 && b.bucketCounts.length === 0) return 0;
  const slot = reserve();
  let n = b.offset === 0 ? 0 : 1 + vsize(zigzag32(b.offset));
  if (b.bucketCounts.length) {
    let packed = 0;
    for (const c of b.bucketCounts) packed += i64size(c);
    { const r = reserve(); sizes[r] = packed; }
    n += sMsgBody(packed);
  }
  sizes[slot] = n;
  return sMsgBody(n);
}

function wBuckets(tag: number, b: ExponentialHistogramBuckets): void {
  if (b.offset === 0 && b.bucketCounts.length === 0) return;
  buf[pos++] = tag;
  wv(sizes[rp++]);
  if (b.offset !== 0) {
    buf[pos++] = 0x08;
    wv(zigzag32(b.offset));
  }
  const bc = b.bucketCounts;
  if (bc.length) {
    buf[pos++] = 0x12;
    wv(sizes[rp++]);
    for (let i = 0; i < bc.length; i++) {
      const c = bc[i];
      if (c >= 0n && c < 0x80000000n) wv(Number(c));
      else {
        split64(c);
        wv64(lo64, hi64);
      }
    }
  }
}

function zigzag32(v: number): number {
  return ((v << 1) ^ (v >> 31)) >>> 0;
}

function sExpDP(p: ExponentialHistogramDataPoint): number {
  let n = sAttrs(p.attributes) + sF64(p.startTimeUnixNano) + sF64(p.timeUnixNano) + sF64(p.count) + sOptDbl(p.sum);
  if (p.scale !== 0) n += 1 + vsize(zigzag32(p.scale));
  n += sF64(p.zeroCount) + sBuckets(p.positive) + sBuckets(p.negative) + sU32(p.flags);
  n += sExemplars(p.exemplars) + sOptDbl(p.min) + sOptDbl(p.max) + sDbl(p.zeroThreshold);
  return n;
}

function wExpDP(p: ExponentialHistogramDataPoint): void {
  wAttrs(0x0a, p.attributes);
  wF64(0x11, p.startTimeUnixNano);
  wF64(0x19, p.timeUnixNano);
  wF64(0x21, p.count);
  wOptDbl(0x29, p.sum);
  if (p.scale !== 0) {
    buf[pos++] = 0x30;
    wv(zigzag32(p.scale));
  }
  wF64(0x39, p.zeroCount);
  wBuckets(0x42, p.positive);
  wBuckets(0x4a, p.negative);
  wU32(0x50, p.flags);
  wExemplars(0x5a, p.exemplars);
  wOptDbl(0x61, p.min);
  wOptDbl(0x69, p.max);
  wDbl(0x71, p.zeroThreshold);
}

function sSummaryDP(p: SummaryDataPoint): number {
  let n = sF64(p.startTimeUnixNano) + sF64(p.timeUnixNano) + sF64(p.count) + sDbl(p.sum);
  for (const q of p.quantileValues) n += sMsgBody(sDbl(q.quantile) + sDbl(q.value));
  return n + sAttrs(p.attributes) + sU32(p.flags);
}

function wSummaryDP(p: SummaryDataPoint): void {
  wF64(0x11, p.startTimeUnixNano);
  wF64(0x19, p.timeUnixNano);
  wF64(0x21, p.count);
  wDbl(0x29, p.sum);
  for (const q of p.quantileValues) {
    buf[pos++] = 0x32;
    wv(sDbl(q.quantile) + sDbl(q.value));
    wDbl(0x09, q.quantile);
    wDbl(0x11, q.value);
  }
  wAttrs(0x3a, p.attributes);
  wU32(0x40, p.flags);
}

/** Repeated data points (field 1 of every data message). */
function sPoints<P>(points: P[], size: (p: P) => number): number {
  let n = 0;
  for (let i = 0; i < points.length; i++) {
    const slot = reserve();
    const b = size(points[i]);
    sizes[slot] = b;
    n += sMsgBody(b);
  }
  return n;
}

function wPoints<P>(points: P[], write: (p: P) => void): void {
  for (let i = 0; i < points.length; i++) {
    buf[pos++] = 0x0a;
    wv(sizes[rp++]);
    write(points[i]);
  }
}

function sMetric(m: Metric): number {
  let n = sStr(m.name) + sStr(m.description) + sStr(m.unit);
  const d = m.data;
  if (d.type !== 'empty') {
    const slot = reserve();
    let b: number;
    switch (d.type) {
      case 'gauge':
        b = sPoints(d.dataPoints, sNumberDP);
        break;
      case 'sum':
        b = sPoints(d.dataPoints, sNumberDP) + sEnum(d.aggregationTemporality) + (d.isMonotonic ? 2 : 0);
        break;
      case 'histogram':
        b = sPoints(d.dataPoints, sHistDP) + sEnum(d.aggregationTemporality);
        break;
      case 'exponentialHistogram':
        b = sPoints(d.dataPoints, sExpDP) + sEnum(d.aggregationTemporality);
        break;
      case 'summary':
        b = sPoints(d.dataPoints, sSummaryDP);
        break;
      default:
        throw new TypeError(`OTLP encode: unknown metric data type ${(d as { type: string }).type}`);
    }
    sizes[slot] = b;
    n += sMsgBody(b);
  }
  return n + sAttrs(m.metadata);
}

function wMetric(m: Metric): void {
  wStr(0x0a, m.name);
  wStr(0x12, m.description);
  wStr(0x1a, m.unit);
  const d = m.data;
  switch (d.type) {
    case 'gauge':
      buf[pos++] = 0x2a;
      wv(sizes[rp++]);
      wPoints(d.dataPoints, wNumberDP);
      break;
    case 'sum':
      buf[pos++] = 0x3a;
      wv(sizes[rp++]);
      wPoints(d.dataPoints, wNumberDP);
      wEnum(0x10, d.aggregationTemporality);
      if (d.isMonotonic) {
        buf[pos++] = 0x18;
        buf[pos++] = 1;
      }
      break;
    case 'histogram':
      buf[pos++] = 0x4a;
      wv(sizes[rp++]);
      wPoints(d.dataPoints, wHistDP);
      wEnum(0x10, d.aggregationTemporality);
      break;
    case 'exponentialHistogram':
      buf[pos++] = 0x52;
      wv(sizes[rp++]);
      wPoints(d.dataPoints, wExpDP);
      wEnum(0x10, d.aggregationTemporality);
      break;
    case 'summary':
      buf[pos++] = 0x5a;
      wv(sizes[rp++]);
      wPoints(d.dataPoints, wSummaryDP);
      break;
  }
  wAttrs(0x62, m.metadata);
}

function wMetrics(d: MetricsData): void {
  for (const rm of d.resourceMetrics) {
    const ra = open(0x0a);
    field(rm.resource, sResource, wResource, 0x0a);
    for (const sm of rm.scopeMetrics) {
      const sa = open(0x12);
      field(sm.scope, sScope, wScope, 0x0a);
      for (const m of sm.metrics) item(0x12, m, sMetric, wMetric);
      strField(0x1a, sm.schemaUrl);
      close(sa);
    }
    strField(0x1a, rm.schemaUrl);
    close(ra);
  }
}

// ------------------------------------------------------------------ logs

function sLog(r: LogRecord): number {
  let n = sF64(r.timeUnixNano) + sEnum(r.severityNumber) + sStr(r.severityText);
  if (r.body !== null) {
    const slot = reserve();
    const b = sAny(r.body);
    sizes[slot] = b;
    n += sMsgBody(b);
  }
  n += sAttrs(r.attributes) + sU32(r.droppedAttributesCount) + (r.flags === 0 ? 0 : 5);
  n += sBytes(r.traceId) + sBytes(r.spanId) + sF64(r.observedTimeUnixNano) + sStr(r.eventName);
  return n;
}

function wLog(r: LogRecord): void {
  wF64(0x09, r.timeUnixNano);
  wEnum(0x10, r.severityNumber);
  wStr(0x1a, r.severityText);
  if (r.body !== null) {
    buf[pos++] = 0x2a;
    wv(sizes[rp++]);
    wAny(r.body);
  }
  wAttrs(0x32, r.attributes);
  wU32(0x38, r.droppedAttributesCount);
  if (r.flags !== 0) {
    buf[pos++] = 0x45;
    wfixed32(r.flags);
  }
  wBytes(0x4a, r.traceId);
  wBytes(0x52, r.spanId);
  wF64(0x59, r.observedTimeUnixNano);
  wStr(0x62, r.eventName);
}

function wLogs(d: LogsData): void {
  for (const rl of d.resourceLogs) {
    const ra = open(0x0a);
    field(rl.resource, sResource, wResource, 0x0a);
    for (const sl of rl.scopeLogs) {
      const sa = open(0x12);
      field(sl.scope, sScope, wScope, 0x0a);
      const recs = sl.logRecords;
      for (let i = 0; i < recs.length; i++) item(0x12, recs[i], sLog, wLog);
      strField(0x1a, sl.schemaUrl);
      close(sa);
    }
    strField(0x1a, rl.schemaUrl);
    close(ra);
  }
}

// ------------------------------------------------------------------ entry points

function run<T>(data: T, write: (d: T) => void): Buffer {
  pos = 0;
  try {
    write(data);
    // An own, exact-size buffer (not a pool slice), so callers may keep or transfer it.
    const out = Buffer.allocUnsafeSlow(pos);
    buf.copy(out, 0, 0, pos);
    return out;
  } finally {
    if (buf.length > SCRATCH_KEEP_MAX) {
      buf = Buffer.allocUnsafeSlow(SCRATCH_INITIAL) as FastBuffer;
      view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    }
    pos = 0;
  }
}

/** TracesData / ExportTraceServiceRequest (same layout) → protobuf bytes. */
export function encodeTraces(d: TracesData): Buffer {
  return run(d, wTraces);
}

/** MetricsData / ExportMetricsServiceRequest → protobuf bytes. */
export function encodeMetrics(d: MetricsData): Buffer {
  return run(d, wMetrics);
}

/** LogsData / ExportLogsServiceRequest → protobuf bytes. */
export function encodeLogs(d: LogsData): Buffer {
  return run(d, wLogs);
}

export function encodeSignal<S extends SignalType>(signal: S, d: SignalData[S]): Buffer {
  if (signal === 'traces') return encodeTraces(d as TracesData);
  if (signal === 'metrics') return encodeMetrics(d as MetricsData);
  return encodeLogs(d as LogsData);
}

/** partial_success of an Export*ServiceResponse: how many items were rejected and why. */
export interface ExportPartialSuccess {
  rejected: bigint;
  errorMessage: string;
}

/**
 * Export{Trace,Metrics,Logs}ServiceResponse → bytes. The three responses share one layout
 * (partial_success = 1 { int64 rejected_* = 1; string error_message = 2 }); an absent or all-default
 * partial success encodes as the empty message, which means full success.
 */
export function encodeExportResponse(ps?: ExportPartialSuccess): Buffer {
  if (!ps || (ps.rejected === 0n && ps.errorMessage === '')) return Buffer.alloc(0);
  const msg = Buffer.from(ps.errorMessage, 'utf8');
  split64(ps.rejected);
  const lo = lo64;
  const hi = hi64;
  const inner = (ps.rejected === 0n ? 0 : 1 + u64size(lo, hi)) + (msg.length ? 1 + vsize(msg.length) + msg.length : 0);
  const out = Buffer.allocUnsafeSlow(1 + vsize(inner) + inner) as FastBuffer;
  out[0] = 0x0a;
  let p = wvp(out, 1, inner);
  if (ps.rejected !== 0n) {
    out[p++] = 0x08;
    p = wv64p(out, p, lo, hi);
  }
  if (msg.length) {
    out[p++] = 0x12;
    p = wvp(out, p, msg.length);
    msg.copy(out, p);
  }
  return out;
}
