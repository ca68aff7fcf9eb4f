// span_storage: encoded — the batch is encoded once, and this walks only the protobuf framing
// (tags and lengths, no field decoding) to find each Span's bytes, in model order. A trace's
// stored span fields are later wrapped into one TracesData { ResourceSpans { ScopeSpans { spans } } }
// and decoded in one call. Field numbers are OTLP's: TracesData.resource_spans = 1,
// ResourceSpans.scope_spans = 2, ScopeSpans.spans = 2.

let p = 0;

function varint(b: Uint8Array): number {
  let v = 0, shift = 0, byte: number;
  do {
    if (p >= b.length) throw new RangeError('truncated varint');
    byte = b[p++];
    v += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return v;
}

function skip(b: Uint8Array, wire: number): void {
  if (wire === 0) varint(b);
  else if (wire === 1) p += 8;
  else if (wire === 2) {
    const len = varint(b); // read before adding: `p += varint(b)` would add to the stale p
    p += len;
  }
  else if (wire === 5) p += 4;
  else throw new RangeError(`unsupported wire type ${wire}`);
}

/**
 * Appends (offset, length) of every ScopeSpans.spans field — tag and length prefix included — to
 * `out`, in the order the spans appear in the model the bytes were encoded from.
 */
export function spanFieldRanges(b: Uint8Array, out: number[]): void {
  p = 0;
  const end = b.length;
  while (p < end) {
    const tag = varint(b);
    if (tag === 0x0a) {
      const len = varint(b);
      const rsEnd = p + len;
      while (p < rsEnd) {
        const t2 = varint(b);
        if (t2 === 0x12) {
          const l2 = varint(b);
          const ssEnd = p + l2;
          while (p < ssEnd) {
            const start = p;
            const t3 = varint(b);
            if (t3 === 0x12) {
              const l3 = varint(b);
              p += l3;
              out.push(start, p - start);
            } else skip(b, t3 & 7);
          }
        } else skip(b, t2 & 7);
      }
    } else skip(b, tag & 7);
  }
}

function varintLen(n: number): number {
  let l = 1;
  while (n >= 128) { n = Math.floor(n / 128); l++; }
  return l;
}

function putVarint(buf: Uint8Array, o: number, n: number): number {
  while (n >= 128) { buf[o++] = (n % 128) | 0x80; n = Math.floor(n / 128); }
  buf[o++] = n;
  return o;
}

/** Wraps span fields (each a `spans` field with tag) into one TracesData message. */
export function wrapSpanFields(slabs: Uint8Array[], pos: number[]): Uint8Array {
  let inner = 0;
  for (let i = 1; i < pos.length; i += 2) inner += pos[i];
  const rsLen = 1 + varintLen(inner) + inner;
  const total = 1 + varintLen(rsLen) + rsLen;
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  out[o++] = 0x0a; // TracesData.resource_spans
  o = putVarint(out, o, rsLen);
  out[o++] = 0x12; // ResourceSpans.scope_spans
  o = putVarint(out, o, inner);
  for (let i = 0; i < slabs.length; i++) {
    const off = pos[2 * i], len = pos[2 * i + 1];
    out.set(slabs[i].subarray(off, off + len), o);
    o += len;
  }
  return out;
}
