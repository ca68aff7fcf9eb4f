// Hand-written OTLP protobuf encoder: model → bytes, in one pass into a reusable scratch buffer.
// Writers take and return the write position, so hot loops keep it (and the buffer) in locals.
// - Attributes with a scalar or short string value (almost all of them) have their lengths computed
//   up front from the value, so they are written once, with no length slot to fix up.
// - Other nested messages (a span, an event, a data point, a kvlist...) reserve a length slot sized
//   for their usual length; when the body ends up needing another varint width, it is moved by the
//   difference (copyWithin), so the output is always canonical (minimal varints).
// - The ResourceX / ScopeX envelopes reserve 5 bytes and leave the unused ones as holes that the
//   final copy into an exact-size Buffer skips, so a batch of megabytes is never moved in place.
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
const SCRATCH_INITIAL = 64 * 1024;
const SCRATCH_KEEP_MAX = 32 * 1024 * 1024; // a larger scratch is dropped after use
let buf = Buffer.allocUnsafeSlow(SCRATCH_INITIAL) as FastBuffer;
let view = new DataView(buf.buffer, buf.byteOffset, buf.length);

// Holes left by the envelopes' 5-byte length slots: position * 8 + size (size ≤ 4), skipped on copy-out.
let holes = new Float64Array(64);
let holeCount = 0;
let holeBytes = 0;

/** Grows the scratch so that n bytes fit at p (bytes before p are kept). */
function grow(p: number, n: number): void {
  const next = Buffer.allocUnsafeSlow(Math.max(p + n, buf.length * 2)) as FastBuffer;
  buf.copy(next, 0, 0, p);
  buf = next;
  view = new DataView(next.buffer, next.byteOffset, next.length);
}

// int64 → two uint32 halves through a typed array: no BigInt arithmetic, no allocation.
const i64 = new BigInt64Array(1);
const u32 = new Uint32Array(i64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = 1 - LO;

function vsize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
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

/** Varint at p, returning the new position. */
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

/** String s of UTF-8 length len at p. */
function wstrp(out: FastBuffer, p: number, s: string, len: number): number {
  if (len === s.length && len < 64) {
    for (let i = 0; i < len; i++) out[p + i] = s.charCodeAt(i);
  } else out.utf8Write(s, p, len);
  return p + len;
}

/**
 * Closes a nested message whose body starts at `start` after a `reserved`-byte length slot, moving
 * the body when its length needs a different varint width than reserved.
 */
function fin(start: number, p: number, reserved: number): number {
  const len = p - start;
  const k = vsize(len);
  if (k !== reserved) {
    if (k > reserved && p + k - reserved > buf.length) grow(p, k - reserved);
    buf.copyWithin(start + k - reserved, start, p);
    p += k - reserved;
  }
  wvp(buf, start - reserved, len);
  return p;
}

/** Opens an envelope (ResourceX / ScopeX): tag + 5 reserved length bytes; returns the slot position. */
function openEnvelope(p: number, tag: number): number {
  if (p + 6 > buf.length) grow(p, 6);
  buf[p] = tag;
  return p + 1;
}

/** Writes an envelope's length into its slot and records the unused slot bytes as a hole. */
function closeEnvelope(slot: number, p: number, holesBefore: number): void {
  const len = p - slot - 5 - (holeBytes - holesBefore);
  const k = wvp(buf, slot, len) - slot;
  if (k < 5) {
    if (holeCount === holes.length) {
      const next = new Float64Array(holes.length * 2);
      next.set(holes);
      holes = next;
    }
    holes[holeCount++] = (slot + k) * 8 + (5 - k);
    holeBytes += 5 - k;
  }
}

// ------------------------------------------------------------------ field writers (tag ≤ 15 → 1 byte)

function wStr(p: number, tag: number, s: string): number {
  const n = s.length;
  if (n === 0) return p;
  if (n < 128) {
    // Optimistically ASCII (length = n): copy the char codes and check them afterwards.
    if (p + n + 2 > buf.length) grow(p, n + 2);
    const out = buf;
    out[p] = tag;
    out[p + 1] = n;
    const b = p + 2;
    let any = 0;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      any |= c;
      out[b + i] = c;
    }
    if (any < 0x80) return b + n;
  }
  const l = utf8Len(s);
  if (p + l + 6 > buf.length) grow(p, l + 6);
  const out = buf;
  out[p] = tag;
  return wstrp(out, wvp(out, p + 1, l), s, l);
}

function wBytes(p: number, tag: number, b: Uint8Array): number {
  const n = b.length;
  if (n === 0) return p;
  if (p + n + 6 > buf.length) grow(p, n + 6);
  const out = buf;
  out[p] = tag;
  p = wvp(out, p + 1, n);
  return n <= 32 ? wSmallBytes(out, p, b, n) : (out.set(b, p), p + n);
}

/** Ids: 4 bytes per store is cheaper than a byte loop or a native set() call. */
function wSmallBytes(out: FastBuffer, p: number, b: Uint8Array, n: number): number {
  const dv = view;
  let i = 0;
  for (; i + 4 <= n; i += 4) dv.setInt32(p + i, b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24), true);
  for (; i < n; i++) out[p + i] = b[i];
  return p + n;
}

// The writers below need at most 11 bytes; callers make room before a run of them.
const SCALAR_ROOM = 11;

function wU32(p: number, tag: number, v: number): number {
  if (v === 0) return p;
  const out = buf;
  out[p] = tag;
  return wvp(out, p + 1, v >>> 0);
}

/** int32 enum; negatives are sign-extended to 10 bytes. */
function wEnum(p: number, tag: number, v: number): number {
  if (v === 0) return p;
  const out = buf;
  out[p] = tag;
  v |= 0;
  return v >= 0 ? wvp(out, p + 1, v) : wv64p(out, p + 1, v >>> 0, 0xffffffff);
}

function wF64(p: number, tag: number, v: bigint): number {
  return v === 0n ? p : wFixed64(p, tag, v);
}

/** Tag and 8 little-endian bytes of v mod 2^64 (through the int64 halves: no builtin call). */
function wFixed64(p: number, tag: number, v: bigint): number {
  i64[0] = v;
  const dv = view;
  buf[p] = tag;
  dv.setInt32(p + 1, u32[LO], true);
  dv.setInt32(p + 5, u32[HI], true);
  return p + 9;
}

function wDouble(p: number, tag: number, v: number): number {
  buf[p] = tag;
  view.setFloat64(p + 1, v, true);
  return p + 9;
}

/** proto3 non-optional double: omitted when +0 (−0 is kept so it survives the round trip). */
function wDbl(p: number, tag: number, v: number): number {
  return Object.is(v, 0) ? p : wDouble(p, tag, v);
}

function wOptDbl(p: number, tag: number, v: number | undefined): number {
  return v === undefined ? p : wDouble(p, tag, v);
}

function wFixed32(p: number, tag: number, v: number): number {
  if (v === 0) return p;
  buf[p] = tag;
  view.setUint32(p + 1, v >>> 0, true);
  return p + 5;
}

// ------------------------------------------------------------------ common

/** An AnyValue-typed field: tag, length, and the AnyValue message (whose oneof member is always written). */
function wAnyField(p: number, tag: number, v: AnyValue): number {
  if (p + 24 > buf.length) grow(p, 24);
  const out = buf;
  switch (typeof v) {
    case 'string': {
      const l = utf8Len(v);
      const n = 1 + vsize(l) + l;
      if (p + n + 6 > buf.length) grow(p, n + 6);
      const o = buf;
      o[p] = tag;
      p = wvp(o, p + 1, n);
      o[p] = 0x0a;
      return wstrp(o, wvp(o, p + 1, l), v, l);
    }
    case 'boolean':
      out[p] = tag;
      out[p + 1] = 2;
      out[p + 2] = 0x10;
      out[p + 3] = v ? 1 : 0;
      return p + 4;
    case 'number':
      out[p] = tag;
      out[p + 1] = 9;
      return wDouble(p + 2, 0x21, v);
    case 'bigint': {
      i64[0] = v;
      const lo = u32[LO];
      const hi = u32[HI];
      out[p] = tag;
      out[p + 1] = 1 + u64size(lo, hi);
      out[p + 2] = 0x18;
      return wv64p(out, p + 3, lo, hi);
    }
    case 'object': {
      if (v === null) {
        out[p] = tag;
        out[p + 1] = 0;
        return p + 2;
      }
      if (v instanceof Uint8Array) {
        const n = v.length;
        const m = 1 + vsize(n) + n;
        if (p + m + 6 > buf.length) grow(p, m + 6);
        const o = buf;
        o[p] = tag;
        p = wvp(o, p + 1, m);
        return wBytesBody(p, 0x3a, v);
      }
      if (Array.isArray(v)) {
        out[p] = tag;
        const start = p + 2;
        out[start] = 0x2a; // array_value, written even when empty: the set oneof member is the value
        const inner = start + 2;
        p = inner;
        for (let i = 0; i < v.length; i++) p = wAnyField(p, 0x0a, v[i]);
        p = fin(inner, p, 1);
        return fin(start, p, 1);
      }
      if (v instanceof KeyValueList) {
        out[p] = tag;
        const start = p + 2;
        buf[start] = 0x32;
        const inner = start + 2;
        p = wAttrs(inner, 0x0a, v.values);
        p = fin(inner, p, 1);
        return fin(start, p, 1);
      }
    }
  }
  throw new TypeError(`OTLP encode: unsupported AnyValue ${String(v)}`);
}

/** A bytes field whose room the caller has made. */
function wBytesBody(p: number, tag: number, b: Uint8Array): number {
  const out = buf;
  const n = b.length;
  out[p] = tag;
  p = wvp(out, p + 1, n);
  return n <= 32 ? wSmallBytes(out, p, b, n) : (out.set(b, p), p + n);
}

// Attribute keys repeat in every item, so the encoded key field (tag 1, length, UTF-8 bytes) is
// cached per key (bounded, never evicted) and copied 8 bytes per store instead of re-encoding
// characters. An entry is [byte length, then the field's bytes as little-endian float64 words,
// zero-padded]: a plain array of doubles, because typed-array reads cost a detach check each once
// any ArrayBuffer in the process has been transferred. A NaN bit pattern (which the engine may
// canonicalise) needs a 0xf0+ byte followed by 0x7f / 0xff, which valid UTF-8 never has; a key
// with one would simply not be cached.
const KEY_CACHE_MAX = 4096;
const KEY_CACHE_MAX_CHARS = 64;
const keyFields = new Map<string, number[]>();

// Consecutive items mostly carry the same keys in the same order: a per-position memo of the last
// key and its cached field skips the Map lookup (string equality is exact, so a miss is only slower).
const MEMO_POSITIONS = 64;
// Starts as the empty key, whose field is empty (proto3 omits it), so every entry is always valid.
const NO_KEY_FIELD = [0.5];
NO_KEY_FIELD[0] = 0; // (a double array from the start, like every entry)
const memoKey: string[] = new Array<string>(MEMO_POSITIONS).fill('');
const memoField: number[][] = new Array<number[]>(MEMO_POSITIONS).fill(NO_KEY_FIELD);

// Marks a key whose field has a NaN word (see above), so it is not rebuilt each time it is met.
const UNCACHEABLE = [0.5];

function keyField(k: string): number[] | undefined {
  let f = keyFields.get(k);
  if (f === UNCACHEABLE) return undefined;
  if (f === undefined) {
    if (k.length > KEY_CACHE_MAX_CHARS || keyFields.size >= KEY_CACHE_MAX) return undefined;
    if (k.length === 0) f = NO_KEY_FIELD; // proto3: an empty key is omitted
    else {
      const bytes = Buffer.from(k, 'utf8');
      const n = 1 + vsize(bytes.length) + bytes.length;
      const field = Buffer.alloc((n + 7) & ~7) as FastBuffer;
      field[0] = 0x0a;
      field.set(bytes, wvp(field, 1, bytes.length));
      f = [0.5];
      f[0] = n;
      for (let i = 0; i < field.length; i += 8) {
        const w = field.readDoubleLE(i);
        if (w !== w) {
          keyFields.set(k, UNCACHEABLE);
          return undefined;
        }
        f.push(w);
      }
    }
    keyFields.set(k, f);
  }
  return f;
}

/** Room a cached key field needs: its length plus up to 7 bytes of word padding. */
const KEY_PAD = 7;

/** Copies a cached key field to q (writing up to KEY_PAD bytes past it); returns its end. */
function wKeyField(q: number, f: number[]): number {
  const dv = view;
  const nw = f.length;
  for (let j = 1; j < nw; j++) dv.setFloat64(q + 8 * j - 8, f[j], true);
  return q + (f[0] | 0);
}

/** A repeated KeyValue field (every attribute field number is ≤ 15). */
function wAttrs(p: number, tag: number, attrs: KeyValue[]): number {
  for (let i = 0; i < attrs.length; i++) {
    const kv = attrs[i];
    const k = kv.key;
    let f: number[] | undefined;
    if (i < MEMO_POSITIONS && memoKey[i] === k) f = memoField[i];
    else {
      f = keyField(k);
      if (f !== undefined && i < MEMO_POSITIONS) {
        memoKey[i] = k;
        memoField[i] = f;
      }
    }
    if (f === undefined) {
      p = wKVUncached(p, tag, kv);
      continue;
    }
    // The two commonest shapes inline (see wKV): an int below 2^32, a short ASCII string, whose
    // lengths are known up front (a string is assumed ASCII, length = n, and checked after the copy).
    const v = kv.value;
    const fl = f[0] | 0;
    if (p + fl + 80 > buf.length) grow(p, fl + 80);
    const out = buf;
    const dv = view;
    if (typeof v === 'bigint') {
      i64[0] = v;
      const lo = u32[LO];
      const hi = u32[HI];
      if (hi === 0) {
        const vl = vsize(lo);
        let q = wHead(out, dv, p, tag, fl + 3 + vl);
        q = wKeyField(q, f);
        const b0 = lo < 0x80 ? lo : (lo & 127) | 128;
        dv.setInt32(q, 0x12 | ((1 + vl) << 8) | (0x18 << 16) | (b0 << 24), true);
        p = lo < 0x80 ? q + 4 : wvp(out, q + 4, lo >>> 7);
        continue;
      }
    } else if (typeof v === 'string') {
      const n = v.length;
      if (n < 64) {
        let q = wHead(out, dv, p, tag, fl + 4 + n);
        q = wKeyField(q, f);
        dv.setInt32(q, 0x12 | ((2 + n) << 8) | (0x0a << 16) | (n << 24), true);
        q += 4;
        if (wAscii(dv, q, v, n)) {
          p = q + n;
          continue;
        }
        // not ASCII: wKV rewrites it from p with exact lengths
      }
    }
    p = wKV(p, tag, f, v);
  }
  return p;
}

/**
 * One KeyValue with a cached key field (wAttrs inlines the two commonest shapes of this). Scalar
 * values have lengths known before writing, so the KeyValue is written straight through, several
 * bytes per store; strings get exact lengths first (wKVString), nested values a slot (wKVSlot).
 */
function wKV(p: number, tag: number, f: number[], v: AnyValue): number {
  if (typeof v === 'string') return wKVString(p, tag, f, v);
  const fl = f[0] | 0; // an int32, so position arithmetic stays in integers
  if (p + fl + 80 > buf.length) grow(p, fl + 80);
  const out = buf;
  const dv = view;
  if (typeof v === 'bigint') {
    i64[0] = v;
    const lo = u32[LO];
    const hi = u32[HI];
    const vl = hi === 0 ? vsize(lo) : u64size(lo, hi);
    const kvLen = fl + 3 + vl; // key field, AnyValue tag + length, int tag, varint
    let q = wHead(out, dv, p, tag, kvLen);
    q = wKeyField(q, f);
    if (hi === 0) {
      // 0x12, AnyValue length, 0x18 and the varint's first byte in one store.
      const b0 = lo < 0x80 ? lo : (lo & 127) | 128;
      dv.setInt32(q, 0x12 | ((1 + vl) << 8) | (0x18 << 16) | (b0 << 24), true);
      return lo < 0x80 ? q + 4 : wvp(out, q + 4, lo >>> 7);
    }
    dv.setUint16(q, 0x12 | ((1 + vl) << 8), true);
    out[q + 2] = 0x18;
    return wv64p(out, q + 3, lo, hi);
  }
  if (typeof v === 'number') {
    const kvLen = fl + 11;
    let q = wHead(out, dv, p, tag, kvLen);
    q = wKeyField(q, f);
    dv.setUint32(q, 0x12 | (9 << 8) | (0x21 << 16), true);
    dv.setFloat64(q + 3, v, true);
    return q + 11;
  }
  if (typeof v === 'boolean') {
    const kvLen = fl + 4;
    let q = wHead(out, dv, p, tag, kvLen);
    q = wKeyField(q, f);
    dv.setInt32(q, 0x12 | (2 << 8) | (0x10 << 16) | ((v ? 1 : 0) << 24), true);
    return q + 4;
  }
  return wKVSlot(p, tag, f, v);
}

/** Tag and length of a length-delimited field; a 1-byte length is written with the tag in one store. */
function wHead(out: FastBuffer, dv: DataView, p: number, tag: number, len: number): number {
  if (len < 128) {
    dv.setUint16(p, tag | (len << 8), true);
    return p + 2;
  }
  out[p] = tag;
  return wvp(out, p + 1, len);
}

/**
 * Writes the n char codes of s at p, 4 per store (up to 3 bytes past the end are overwritten);
 * returns false when a char is not ASCII (the bytes are then garbage).
 */
function wAscii(dv: DataView, p: number, s: string, n: number): boolean {
  let any = 0;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const c0 = s.charCodeAt(j);
    const c1 = s.charCodeAt(j + 1);
    const c2 = s.charCodeAt(j + 2);
    const c3 = s.charCodeAt(j + 3);
    any |= c0 | c1 | c2 | c3;
    dv.setInt32(p + j, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24), true);
  }
  if (j < n) {
    let w = s.charCodeAt(j);
    any |= w;
    if (j + 1 < n) {
      const c1 = s.charCodeAt(j + 1);
      any |= c1;
      w |= c1 << 8;
      if (j + 2 < n) {
        const c2 = s.charCodeAt(j + 2);
        any |= c2;
        w |= c2 << 16;
      }
    }
    dv.setInt32(p + j, w, true);
  }
  return any < 0x80;
}

/** A KeyValue (cached key field) with a long or non-ASCII string value: exact lengths, one write. */
function wKVString(p: number, tag: number, f: number[], v: string): number {
  const fl = f[0] | 0; // an int32, so position arithmetic stays in integers
  const l = utf8Len(v);
  const anyLen = 1 + vsize(l) + l;
  const kvLen = fl + 1 + vsize(anyLen) + anyLen;
  if (p + kvLen + 16 > buf.length) grow(p, kvLen + 16); // + tag, length and key padding
  const out = buf;
  out[p] = tag;
  let q = wvp(out, p + 1, kvLen);
  q = wKeyField(q, f);
  out[q] = 0x12;
  q = wvp(out, q + 1, anyLen);
  out[q] = 0x0a;
  return wstrp(out, wvp(out, q + 1, l), v, l);
}

/** A KeyValue (cached key field) with a bytes, null or nested value: the length goes in a slot. */
function wKVSlot(p: number, tag: number, f: number[], v: AnyValue): number {
  const fl = f[0] | 0; // an int32, so position arithmetic stays in integers
  if (p + 2 + fl + KEY_PAD > buf.length) grow(p, 2 + fl + KEY_PAD); // tag, slot, field and its padding
  const out = buf;
  out[p] = tag;
  const start = p + 2;
  p = start;
  p = wKeyField(p, f);
  if (v !== null) p = wAnyField(p, 0x12, v);
  return fin(start, p, 1);
}

/** A KeyValue whose key is not cached (long, or the cache is full). */
function wKVUncached(p: number, tag: number, kv: KeyValue): number {
  if (p + 2 > buf.length) grow(p, 2);
  buf[p] = tag;
  const start = p + 2;
  p = wStr(start, 0x0a, kv.key);
  if (kv.value !== null) p = wAnyField(p, 0x12, kv.value);
  return fin(start, p, 1);
}

function wResource(p: number, tag: number, r: Resource): number {
  if (p + 3 > buf.length) grow(p, 3);
  buf[p] = tag;
  const start = p + 3; // k8s resources are mostly 128 B..16 KiB
  p = wAttrs(start, 0x0a, r.attributes);
  if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
  p = wU32(p, 0x10, r.droppedAttributesCount);
  return fin(start, p, 2);
}

function wScope(p: number, tag: number, s: InstrumentationScope): number {
  if (p + 2 > buf.length) grow(p, 2);
  buf[p] = tag;
  const start = p + 2;
  p = wStr(start, 0x0a, s.name);
  p = wStr(p, 0x12, s.version);
  p = wAttrs(p, 0x1a, s.attributes);
  if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
  p = wU32(p, 0x20, s.droppedAttributesCount);
  return fin(start, p, 1);
}

// ------------------------------------------------------------------ traces

/** One span as field 2 of ScopeSpans, with a 2-byte length slot (spans are mostly 128 B..16 KiB). */
function wSpan(p: number, s: Span): number {
  const traceId = s.traceId;
  const spanId = s.spanId;
  const parentSpanId = s.parentSpanId;
  const room = 64 + traceId.length + spanId.length + parentSpanId.length;
  if (p + room > buf.length) grow(p, room);
  buf[p] = 0x12;
  const start = p + 3;
  p = wBytes(start, 0x0a, traceId);
  p = wBytes(p, 0x12, spanId);
  p = wStr(p, 0x1a, s.traceState);
  p = wBytes(p, 0x22, parentSpanId);
  p = wStr(p, 0x2a, s.name);
  if (p + 3 * SCALAR_ROOM > buf.length) grow(p, 3 * SCALAR_ROOM);
  p = wEnum(p, 0x30, s.kind);
  p = wF64(p, 0x39, s.startTimeUnixNano);
  p = wF64(p, 0x41, s.endTimeUnixNano);
  p = wAttrs(p, 0x4a, s.attributes);
  if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
  p = wU32(p, 0x50, s.droppedAttributesCount);
  const events = s.events;
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    if (p + 2 + 9 > buf.length) grow(p, 11);
    buf[p] = 0x5a;
    const es = p + 2;
    p = wF64(es, 0x09, e.timeUnixNano);
    p = wStr(p, 0x12, e.name);
    p = wAttrs(p, 0x1a, e.attributes);
    if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
    p = wU32(p, 0x20, e.droppedAttributesCount);
    p = fin(es, p, 1);
  }
  if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
  p = wU32(p, 0x60, s.droppedEventsCount);
  const links = s.links;
  for (let i = 0; i < links.length; i++) {
    const l = links[i];
    if (p + 2 > buf.length) grow(p, 2);
    buf[p] = 0x6a;
    const ls = p + 2;
    p = wBytes(ls, 0x0a, l.traceId);
    p = wBytes(p, 0x12, l.spanId);
    p = wStr(p, 0x1a, l.traceState);
    p = wAttrs(p, 0x22, l.attributes);
    if (p + 2 * SCALAR_ROOM > buf.length) grow(p, 2 * SCALAR_ROOM);
    p = wU32(p, 0x28, l.droppedAttributesCount);
    p = wFixed32(p, 0x35, l.flags);
    p = fin(ls, p, 1);
  }
  if (p + 2 * SCALAR_ROOM > buf.length) grow(p, 2 * SCALAR_ROOM);
  p = wU32(p, 0x70, s.droppedLinksCount);
  const st = s.status;
  if (st.code !== 0 || st.message.length !== 0) {
    buf[p] = 0x7a;
    const ss = p + 2;
    p = wStr(ss, 0x12, st.message);
    if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
    p = wEnum(p, 0x18, st.code);
    p = fin(ss, p, 1);
  }
  if (s.flags !== 0) {
    if (p + 6 > buf.length) grow(p, 6);
    buf[p] = 0x85; // field 16 → 2-byte tag
    p = wFixed32(p + 1, 0x01, s.flags);
  }
  const len = p - start;
  if (len >= 0x80 && len < 0x4000) {
    const out = buf;
    out[start - 2] = (len & 127) | 128;
    out[start - 1] = len >>> 7;
    return p;
  }
  return fin(start, p, 2);
}

// A batch's objects are mostly out of cache (the model of 10k spans is megabytes), and walking one
// span is a chain of dependent loads: span → attributes → KeyValue → value. Touching the next item's
// objects in a tight loop, whose loads are independent, lets their cache misses overlap each other
// and the current item's encoding. The sum only keeps the loads from being optimised away.
let touchSink = 0;

function touchAttrs(attrs: KeyValue[], x: number): number {
  for (let i = 0; i < attrs.length; i++) {
    const kv = attrs[i];
    const v = kv.value;
    x += kv.key.length + (typeof v === 'string' ? v.length : typeof v === 'bigint' ? 1 : 2);
  }
  return x;
}

function touchSpan(s: Span): void {
  const t = s.traceId;
  const id = s.spanId;
  let x = (t.length !== 0 ? t[0] : 0) + (id.length !== 0 ? id[0] : 0) + s.name.length + s.status.code;
  if (typeof s.startTimeUnixNano === 'bigint') x++;
  if (typeof s.endTimeUnixNano === 'bigint') x++;
  touchSink = touchAttrs(s.attributes, x);
}

function wTraces(d: TracesData): number {
  let p = 0;
  for (const rs of d.resourceSpans) {
    const ra = openEnvelope(p, 0x0a);
    const rh = holeBytes;
    p = wResource(ra + 5, 0x0a, rs.resource);
    for (const ss of rs.scopeSpans) {
      const sa = openEnvelope(p, 0x12);
      const sh = holeBytes;
      p = wScope(sa + 5, 0x0a, ss.scope);
      const spans = ss.spans;
      for (let i = 0; i < spans.length; i++) {
        if (i + 1 < spans.length) touchSpan(spans[i + 1]);
        p = wSpan(p, spans[i]);
      }
      p = wStr(p, 0x1a, ss.schemaUrl);
      closeEnvelope(sa, p, sh);
    }
    p = wStr(p, 0x1a, rs.schemaUrl);
    closeEnvelope(ra, p, rh);
  }
  return p;
}

// ------------------------------------------------------------------ metrics

function wExemplars(p: number, tag: number, list: Exemplar[]): number {
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    if (p + 2 + 2 * SCALAR_ROOM > buf.length) grow(p, 2 + 2 * SCALAR_ROOM);
    buf[p] = tag;
    const start = p + 2;
    p = wF64(start, 0x11, e.timeUnixNano);
    if (typeof e.value === 'number') p = wDouble(p, 0x19, e.value);
    p = wBytes(p, 0x22, e.spanId);
    p = wBytes(p, 0x2a, e.traceId);
    if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
    if (typeof e.value === 'bigint') p = wFixed64(p, 0x31, e.value);
    p = wAttrs(p, 0x3a, e.filteredAttributes);
    p = fin(start, p, 1);
  }
  return p;
}

function wNumberDP(p: number, dp: NumberDataPoint): number {
  if (p + 3 * SCALAR_ROOM > buf.length) grow(p, 3 * SCALAR_ROOM);
  p = wF64(p, 0x11, dp.startTimeUnixNano);
  p = wF64(p, 0x19, dp.timeUnixNano);
  if (typeof dp.value === 'number') p = wDouble(p, 0x21, dp.value);
  p = wExemplars(p, 0x2a, dp.exemplars);
  if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
  if (typeof dp.value === 'bigint') p = wFixed64(p, 0x31, dp.value);
  p = wAttrs(p, 0x3a, dp.attributes);
  if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
  return wU32(p, 0x40, dp.flags);
}

function wHistDP(p: number, dp: HistogramDataPoint): number {
  const bc = dp.bucketCounts;
  const eb = dp.explicitBounds;
  const room = 6 * SCALAR_ROOM + bc.length * 8 + eb.length * 8;
  if (p + room > buf.length) grow(p, room);
  p = wF64(p, 0x11, dp.startTimeUnixNano);
  p = wF64(p, 0x19, dp.timeUnixNano);
  p = wF64(p, 0x21, dp.count);
  p = wOptDbl(p, 0x29, dp.sum);
  const out = buf;
  if (bc.length) {
    out[p] = 0x32;
    p = wvp(out, p + 1, bc.length * 8);
    const dv = view;
    for (let i = 0; i < bc.length; i++, p += 8) {
      i64[0] = bc[i];
      dv.setInt32(p, u32[LO], true);
      dv.setInt32(p + 4, u32[HI], true);
    }
  }
  if (eb.length) {
    out[p] = 0x3a;
    p = wvp(out, p + 1, eb.length * 8);
    for (let i = 0; i < eb.length; i++, p += 8) view.setFloat64(p, eb[i], true);
  }
  p = wExemplars(p, 0x42, dp.exemplars);
  p = wAttrs(p, 0x4a, dp.attributes);
  if (p + 3 * SCALAR_ROOM > buf.length) grow(p, 3 * SCALAR_ROOM);
  p = wU32(p, 0x50, dp.flags);
  p = wOptDbl(p, 0x59, dp.min);
  return wOptDbl(p, 0x61, dp.max);
}

function zigzag32(v: number): number {
  return ((v << 1) ^ (v >> 31)) >>> 0;
}

function wBuckets(p: number, tag: number, b: ExponentialHistogramBuckets): number {
  const bc = b.bucketCounts;
  if (b.offset === 0 && bc.length === 0) return p;
  const room = 2 + SCALAR_ROOM + 6 + bc.length * 10;
  if (p + room > buf.length) grow(p, room);
  const out = buf;
  out[p] = tag;
  const start = p + 2;
  p = start;
  if (b.offset !== 0) {
    out[p] = 0x08;
    p = wvp(out, p + 1, zigzag32(b.offset));
  }
  if (bc.length) {
    out[p] = 0x12;
    const packed = p + 2;
    p = packed;
    for (let i = 0; i < bc.length; i++) {
      i64[0] = bc[i]; // uint64: values ≥ 2^63 wrap to the same 64 bits
      p = wv64p(out, p, u32[LO], u32[HI]);
    }
    p = fin(packed, p, 1);
  }
  return fin(start, p, 1);
}

function wExpDP(p: number, dp: ExponentialHistogramDataPoint): number {
  p = wAttrs(p, 0x0a, dp.attributes);
  if (p + 6 * SCALAR_ROOM > buf.length) grow(p, 6 * SCALAR_ROOM);
  p = wF64(p, 0x11, dp.startTimeUnixNano);
  p = wF64(p, 0x19, dp.timeUnixNano);
  p = wF64(p, 0x21, dp.count);
  p = wOptDbl(p, 0x29, dp.sum);
  if (dp.scale !== 0) {
    buf[p] = 0x30;
    p = wvp(buf, p + 1, zigzag32(dp.scale));
  }
  p = wF64(p, 0x39, dp.zeroCount);
  p = wBuckets(p, 0x42, dp.positive);
  p = wBuckets(p, 0x4a, dp.negative);
  if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
  p = wU32(p, 0x50, dp.flags);
  p = wExemplars(p, 0x5a, dp.exemplars);
  if (p + 3 * SCALAR_ROOM > buf.length) grow(p, 3 * SCALAR_ROOM);
  p = wOptDbl(p, 0x61, dp.min);
  p = wOptDbl(p, 0x69, dp.max);
  return wDbl(p, 0x71, dp.zeroThreshold);
}

function wSummaryDP(p: number, dp: SummaryDataPoint): number {
  const qs = dp.quantileValues;
  const room = 4 * SCALAR_ROOM + qs.length * 20;
  if (p + room > buf.length) grow(p, room);
  p = wF64(p, 0x11, dp.startTimeUnixNano);
  p = wF64(p, 0x19, dp.timeUnixNano);
  p = wF64(p, 0x21, dp.count);
  p = wDbl(p, 0x29, dp.sum);
  for (let i = 0; i < qs.length; i++) {
    const q = qs[i];
    buf[p] = 0x32;
    buf[p + 1] = (Object.is(q.quantile, 0) ? 0 : 9) + (Object.is(q.value, 0) ? 0 : 9);
    p = wDbl(p + 2, 0x09, q.quantile);
    p = wDbl(p, 0x11, q.value);
  }
  p = wAttrs(p, 0x3a, dp.attributes);
  if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
  return wU32(p, 0x40, dp.flags);
}

/** Repeated data points (field 1 of every data message), each with a 2-byte length slot. */
function wPoints<P>(p: number, points: P[], write: (p: number, dp: P) => number): number {
  for (let i = 0; i < points.length; i++) {
    if (p + 3 > buf.length) grow(p, 3);
    buf[p] = 0x0a;
    const start = p + 3;
    p = fin(start, write(start, points[i]), 2);
  }
  return p;
}

function wMetric(p: number, m: Metric): number {
  if (p + 3 > buf.length) grow(p, 3);
  buf[p] = 0x12;
  const start = p + 3;
  p = wStr(start, 0x0a, m.name);
  p = wStr(p, 0x12, m.description);
  p = wStr(p, 0x1a, m.unit);
  const d = m.data;
  if (d.type !== 'empty') {
    if (p + 3 > buf.length) grow(p, 3);
    const ds = p + 3;
    switch (d.type) {
      case 'gauge':
        buf[p] = 0x2a;
        p = wPoints(ds, d.dataPoints, wNumberDP);
        break;
      case 'sum':
        buf[p] = 0x3a;
        p = wPoints(ds, d.dataPoints, wNumberDP);
        if (p + 2 * SCALAR_ROOM > buf.length) grow(p, 2 * SCALAR_ROOM);
        p = wEnum(p, 0x10, d.aggregationTemporality);
        if (d.isMonotonic) {
          buf[p] = 0x18;
          buf[p + 1] = 1;
          p += 2;
        }
        break;
      case 'histogram':
        buf[p] = 0x4a;
        p = wPoints(ds, d.dataPoints, wHistDP);
        if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
        p = wEnum(p, 0x10, d.aggregationTemporality);
        break;
      case 'exponentialHistogram':
        buf[p] = 0x52;
        p = wPoints(ds, d.dataPoints, wExpDP);
        if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
        p = wEnum(p, 0x10, d.aggregationTemporality);
        break;
      case 'summary':
        buf[p] = 0x5a;
        p = wPoints(ds, d.dataPoints, wSummaryDP);
        break;
      default:
        throw new TypeError(`OTLP encode: unknown metric data type ${(d as { type: string }).type}`);
    }
    p = fin(ds, p, 2);
  }
  p = wAttrs(p, 0x62, m.metadata);
  return fin(start, p, 2);
}

function wMetrics(d: MetricsData): number {
  let p = 0;
  for (const rm of d.resourceMetrics) {
    const ra = openEnvelope(p, 0x0a);
    const rh = holeBytes;
    p = wResource(ra + 5, 0x0a, rm.resource);
    for (const sm of rm.scopeMetrics) {
      const sa = openEnvelope(p, 0x12);
      const sh = holeBytes;
      p = wScope(sa + 5, 0x0a, sm.scope);
      const metrics = sm.metrics;
      for (let i = 0; i < metrics.length; i++) p = wMetric(p, metrics[i]);
      p = wStr(p, 0x1a, sm.schemaUrl);
      closeEnvelope(sa, p, sh);
    }
    p = wStr(p, 0x1a, rm.schemaUrl);
    closeEnvelope(ra, p, rh);
  }
  return p;
}

// ------------------------------------------------------------------ logs

function wLog(p: number, r: LogRecord): number {
  if (p + 3 + 2 * SCALAR_ROOM > buf.length) grow(p, 3 + 2 * SCALAR_ROOM);
  buf[p] = 0x12;
  const start = p + 3;
  p = wF64(start, 0x09, r.timeUnixNano);
  p = wEnum(p, 0x10, r.severityNumber);
  p = wStr(p, 0x1a, r.severityText);
  if (r.body !== null) p = wAnyField(p, 0x2a, r.body);
  p = wAttrs(p, 0x32, r.attributes);
  if (p + 2 * SCALAR_ROOM > buf.length) grow(p, 2 * SCALAR_ROOM);
  p = wU32(p, 0x38, r.droppedAttributesCount);
  p = wFixed32(p, 0x45, r.flags);
  p = wBytes(p, 0x4a, r.traceId);
  p = wBytes(p, 0x52, r.spanId);
  if (p + SCALAR_ROOM > buf.length) grow(p, SCALAR_ROOM);
  p = wF64(p, 0x59, r.observedTimeUnixNano);
  p = wStr(p, 0x62, r.eventName);
  return fin(start, p, 2);
}

function wLogs(d: LogsData): number {
  let p = 0;
  for (const rl of d.resourceLogs) {
    const ra = openEnvelope(p, 0x0a);
    const rh = holeBytes;
    p = wResource(ra + 5, 0x0a, rl.resource);
    for (const sl of rl.scopeLogs) {
      const sa = openEnvelope(p, 0x12);
      const sh = holeBytes;
      p = wScope(sa + 5, 0x0a, sl.scope);
      const recs = sl.logRecords;
      for (let i = 0; i < recs.length; i++) p = wLog(p, recs[i]);
      p = wStr(p, 0x1a, sl.schemaUrl);
      closeEnvelope(sa, p, sh);
    }
    p = wStr(p, 0x1a, rl.schemaUrl);
    closeEnvelope(ra, p, rh);
  }
  return p;
}

// ------------------------------------------------------------------ entry points

/** Copies scratch[0, end) minus the envelope holes into an own, exact-size Buffer. */
function copyOut(end: number): Buffer {
  // An own buffer (not a pool slice), so callers may keep or transfer it.
  const out = Buffer.allocUnsafeSlow(end - holeBytes);
  if (holeCount === 0) {
    buf.copy(out, 0, 0, end);
    return out;
  }
  const hs = holes.subarray(0, holeCount).sort(); // enclosing envelopes close after their children
  let src = 0;
  let dst = 0;
  for (let i = 0; i < holeCount; i++) {
    const at = Math.floor(hs[i] / 8);
    dst += buf.copy(out, dst, src, at);
    src = at + (hs[i] - at * 8);
  }
  buf.copy(out, dst, src, end);
  return out;
}

function run<T>(data: T, write: (d: T) => number): Buffer {
  holeCount = 0;
  holeBytes = 0;
  try {
    return copyOut(write(data));
  } finally {
    if (buf.length > SCRATCH_KEEP_MAX) {
      buf = Buffer.allocUnsafeSlow(SCRATCH_INITIAL) as FastBuffer;
      view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    }
    if (holes.length > 4096) holes = new Float64Array(64);
    holeCount = 0;
    holeBytes = 0;
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
  i64[0] = ps.rejected;
  const lo = u32[LO];
  const hi = u32[HI];
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
