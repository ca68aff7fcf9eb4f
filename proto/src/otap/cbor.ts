// CBOR (RFC 8949) for the `ser` column: OTAP stores map and array AnyValues as CBOR. Only what an
// AnyValue needs: text, integers, float64, bool, null, byte strings, arrays and maps with text
// keys (definite or indefinite length on input, definite on output).
import { KeyValueList, type AnyValue, type KeyValue } from '../model.ts';

export class CborError extends Error {
  override name = 'CborError';
}

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

class Out {
  buf = new Uint8Array(64);
  pos = 0;
  room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }
  head(major: number, v: number | bigint): void {
    this.room(9);
    const m = major << 5;
    const n = typeof v === 'bigint' ? v : BigInt(v);
    if (n < 24n) this.buf[this.pos++] = m | Number(n);
    else if (n < 0x100n) {
      this.buf[this.pos++] = m | 24;
      this.buf[this.pos++] = Number(n);
    } else if (n < 0x10000n) {
      this.buf[this.pos++] = m | 25;
      this.buf[this.pos++] = Number(n >> 8n);
      this.buf[this.pos++] = Number(n & 0xffn);
    } else if (n < 0x100000000n) {
      this.buf[this.pos++] = m | 26;
      new DataView(this.buf.buffer).setUint32(this.pos, Number(n));
      this.pos += 4;
    } else {
      this.buf[this.pos++] = m | 27;
      new DataView(this.buf.buffer).setBigUint64(this.pos, n);
      this.pos += 8;
    }
  }
  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

function enc(o: Out, v: AnyValue): void {
  if (v === null) {
    o.room(1);
    o.buf[o.pos++] = 0xf6;
  } else if (typeof v === 'string') {
    const b = te.encode(v);
    o.head(3, b.length);
    o.raw(b);
  } else if (typeof v === 'bigint') {
    if (v >= 0n) o.head(0, v);
    else o.head(1, -1n - v);
  } else if (typeof v === 'number') {
    o.room(9);
    o.buf[o.pos++] = 0xfb;
    new DataView(o.buf.buffer).setFloat64(o.pos, v);
    o.pos += 8;
  } else if (typeof v === 'boolean') {
    o.room(1);
    o.buf[o.pos++] = v ? 0xf5 : 0xf4;
  } else if (v instanceof Uint8Array) {
    o.head(2, v.length);
    o.raw(v);
  } else if (Array.isArray(v)) {
    o.head(4, v.length);
    for (const x of v) enc(o, x);
  } else if (v instanceof KeyValueList) {
    o.head(5, v.values.length);
    for (const kv of v.values) {
      const b = te.encode(kv.key);
      o.head(3, b.length);
      o.raw(b);
      enc(o, kv.value);
    }
  } else {
    throw new CborError(`cannot encode ${typeof v}`);
  }
}

export function cborEncode(v: AnyValue): Uint8Array {
  const o = new Out();
  enc(o, v);
  return o.buf.slice(0, o.pos);
}

const MAX_DEPTH = 64;

class In {
  pos = 0;
  constructor(readonly b: Uint8Array) {}
  byte(): number {
    if (this.pos >= this.b.length) throw new CborError('truncated CBOR');
    return this.b[this.pos++];
  }
  take(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.b.length) throw new CborError('truncated CBOR');
    const s = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  /** Argument of a head; -1n for indefinite length. */
  arg(info: number): bigint {
    if (info < 24) return BigInt(info);
    const dv = (n: number) => {
      const s = this.take(n);
      return new DataView(s.buffer, s.byteOffset, n);
    };
    if (info === 24) return BigInt(this.byte());
    if (info === 25) return BigInt(dv(2).getUint16(0));
    if (info === 26) return BigInt(dv(4).getUint32(0));
    if (info === 27) return dv(8).getBigUint64(0);
    if (info === 31) return -1n;
    throw new CborError(`reserved CBOR additional info ${info}`);
  }
}

function len(inp: In, a: bigint): number {
  if (a > BigInt(inp.b.length)) throw new CborError('CBOR length beyond input');
  return Number(a);
}

function dec(inp: In, depth: number): AnyValue {
  if (depth > MAX_DEPTH) throw new CborError('CBOR nested too deeply');
  const ib = inp.byte();
  const major = ib >> 5, info = ib & 31;
  switch (major) {
    case 0: {
      const a = inp.arg(info);
      if (a > 0x7fffffffffffffffn) throw new CborError('CBOR integer beyond int64');
      return a;
    }
    case 1: {
      const a = inp.arg(info);
      if (a > 0x7fffffffffffffffn) throw new CborError('CBOR integer beyond int64');
      return -1n - a;
    }
    case 2:
    case 3: {
      const a = inp.arg(info);
      let bytes: Uint8Array;
      if (a === -1n) {
        const parts: Uint8Array[] = [];
        for (;;) {
          if (inp.b[inp.pos] === 0xff) {
            inp.pos++;
            break;
          }
          const h = inp.byte();
          if (h >> 5 !== major) throw new CborError('bad chunk in indefinite CBOR string');
          parts.push(inp.take(len(inp, inp.arg(h & 31))));
        }
        const total = parts.reduce((s, p) => s + p.length, 0);
        bytes = new Uint8Array(total);
        let o = 0;
        for (const p of parts) {
          bytes.set(p, o);
          o += p.length;
        }
      } else bytes = inp.take(len(inp, a));
      if (major === 2) return bytes.slice();
      try {
        return td.decode(bytes);
      } catch {
        throw new CborError('invalid UTF-8 in CBOR text');
      }
    }
    case 4: {
      const a = inp.arg(info);
      const out: AnyValue[] = [];
      if (a === -1n) {
        while (inp.b[inp.pos] !== 0xff) out.push(dec(inp, depth + 1));
        inp.pos++;
      } else {
        const n = len(inp, a);
        for (let i = 0; i < n; i++) out.push(dec(inp, depth + 1));
      }
      return out;
    }
    case 5: {
      const a = inp.arg(info);
      const kvs: KeyValue[] = [];
      const one = () => {
        const k = dec(inp, depth + 1);
        if (typeof k !== 'string') throw new CborError('CBOR map key is not text');
        kvs.push({ key: k, value: dec(inp, depth + 1) });
      };
      if (a === -1n) {
        while (inp.b[inp.pos] !== 0xff) {
          if (inp.pos >= inp.b.length) throw new CborError('truncated CBOR');
          one();
        }
        inp.pos++;
      } else {
        const n = len(inp, a);
        for (let i = 0; i < n; i++) one();
      }
      return new KeyValueList(kvs);
    }
    case 6:
      inp.arg(info); // tag: ignored, decode the tagged item
      return dec(inp, depth + 1);
    default: {
      if (info === 20) return false;
      if (info === 21) return true;
      if (info === 22 || info === 23) return null;
      if (info === 25) {
        const s = inp.take(2);
        return halfToFloat((s[0] << 8) | s[1]);
      }
      if (info === 26) {
        const s = inp.take(4);
        return new DataView(s.buffer, s.byteOffset, 4).getFloat32(0);
      }
      if (info === 27) {
        const s = inp.take(8);
        return new DataView(s.buffer, s.byteOffset, 8).getFloat64(0);
      }
      throw new CborError(`unsupported CBOR simple value ${info}`);
    }
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

export function cborDecode(b: Uint8Array): AnyValue {
  const inp = new In(b);
  const v = dec(inp, 0);
  return v;
}
