// Column builders for the OTAP encoder. Each builder appends one cell per row into growable typed
// arrays (no per-row objects), then lays its data out as Arrow IPC nodes and buffers. Dictionary
// builders keep their dictionary for the life of an IPC stream so later payloads send only the
// new entries as delta dictionary batches.
import { FieldNode } from 'apache-arrow/ipc/metadata/message';
import {
  Field,
  DataType,
  Uint8,
  Uint16,
  Uint32,
  Int32,
  Int64,
  Uint64,
  Float64,
  Bool,
  Utf8,
  Binary,
  FixedSizeBinary,
  TimestampNanosecond,
  DurationNanosecond,
  Struct,
  List,
  Dictionary,
} from 'apache-arrow';
import type { ColumnParts, DictionaryPart } from './ipc.ts';

const EMPTY = new Uint8Array(0);
const te = new TextEncoder();

function grow<T extends { length: number; set(a: ArrayLike<any>, o?: number): void }>(
  a: T,
  need: number,
  make: (n: number) => T,
): T {
  if (need <= a.length) return a;
  let n = a.length * 2 || 64;
  while (n < need) n *= 2;
  const b = make(n);
  b.set(a as any);
  return b;
}

/** Bitmap (LSB first, padded to 8 bytes) from per-row 0/1 bytes, eight rows per output byte. */
function packBits(bits: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(((n + 63) >> 6) << 3);
  const whole = n & ~7;
  let i = 0;
  for (; i < whole; i += 8) {
    out[i >> 3] =
      bits[i] | (bits[i + 1] << 1) | (bits[i + 2] << 2) | (bits[i + 3] << 3) |
      (bits[i + 4] << 4) | (bits[i + 5] << 5) | (bits[i + 6] << 6) | (bits[i + 7] << 7);
  }
  for (; i < n; i++) if (bits[i]) out[i >> 3] |= 1 << (i & 7);
  return out;
}

/** Validity bitmap from per-row 0/1 bytes; empty when there is no null (Arrow allows omitting it). */
function bitmap(valid: Uint8Array, n: number, nullCount: number): Uint8Array {
  if (nullCount === 0) return EMPTY;
  return packBits(valid, n);
}

/**
 * Valid rows among the first `n` validity bytes. A plain function: the loop sees one array type
 * whatever the builder class, and gets a regular optimized version instead of on-stack entries.
 */
function countValid(valid: Uint8Array, n: number): number {
  let count = 0;
  for (let i = 0; i < n; i++) count += valid[i];
  return count;
}

function bytesOf(a: ArrayBufferView, byteLength: number): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, byteLength);
}

// emit() output lives only until the table's payload is written (TableEncoder.finish() compresses
// or copies every buffer before it returns), so builders hand out views of their own arrays and
// reuse one scratch buffer for converted layouts instead of copying per batch.
function scratchOf(cur: ArrayBuffer, bytes: number): ArrayBuffer {
  return cur.byteLength >= bytes ? cur : new ArrayBuffer(Math.max(bytes, cur.byteLength * 2));
}

export interface SchemaContext {
  nextDictId: number;
}

export abstract class ColumnBuilder {
  n = 0;
  nullCount = 0;
  valid = new Uint8Array(64);
  /** Whether the column is part of the current IPC stream's schema. */
  inSchema = false;
  constructor(
    readonly name: string,
    /** Required columns are always in the schema; optional ones only when the batch has a value. */
    readonly required = false,
  ) {}

  protected markValid(isValid: boolean): void {
    if (this.n >= this.valid.length) this.valid = grow(this.valid, this.n + 1, (k) => new Uint8Array(k));
    this.valid[this.n] = isValid ? 1 : 0;
    if (!isValid) this.nullCount++;
    this.n++;
  }

  /**
   * Bulk mode: the column gets `n` rows, all null, and callers fill cells with the set*At
   * methods. Saves a call per null cell on wide, sparse tables (attribute value columns).
   */
  protected bulkRows(n: number): void {
    if (n > this.valid.length) this.valid = new Uint8Array(Math.max(n, this.valid.length * 2));
    this.valid.fill(0, 0, n);
    this.n = n;
    this.nullCount = n;
  }

  /**
   * Direct-write mode: the column gets `n` rows whose cells (and validity bytes, 0 or 1) the
   * caller writes by row index, every row, then seal() counts the nulls. A table that knows its
   * row count up front saves the per-cell growth checks and counter updates of append*().
   */
  protected reserveRows(n: number, allValid: boolean): void {
    if (n > this.valid.length) this.valid = new Uint8Array(Math.max(n, this.valid.length * 2));
    if (allValid) this.valid.fill(1, 0, n);
    this.n = n;
    this.nullCount = 0;
  }

  /** Recounts nulls from the validity bytes after direct writes. */
  seal(): void {
    this.nullCount = this.n - countValid(this.valid, this.n);
  }

  hasValues(): boolean {
    return this.nullCount < this.n;
  }

  /** Column goes into a fresh schema when required or when this batch uses it. */
  wanted(): boolean {
    return this.required || this.hasValues();
  }

  reset(): void {
    this.n = 0;
    this.nullCount = 0;
  }

  abstract field(ctx: SchemaContext): Field;
  abstract emit(out: ColumnParts): void;
  /** Dictionary payloads (new entries) owed before the next record batch. */
  dictionaries(_out: DictionaryPart[], _firstInStream: boolean): void {}
  /** True when the dictionary outgrew the index width of the current schema. */
  overflowed(): boolean {
    return false;
  }
  /** Start of a new IPC stream: forget sent dictionary state, keep only values this batch uses. */
  restart(): void {}

  protected node(out: ColumnParts): void {
    out.nodes.push(new FieldNode(this.n, this.nullCount));
    out.buffers.push(bitmap(this.valid, this.n, this.nullCount));
  }
}

export type PrimKind = 'u8' | 'u16' | 'u32' | 'i32' | 'i64' | 'u64' | 'f64' | 'ts' | 'dur';

function primType(k: PrimKind): DataType {
  switch (k) {
    case 'u8':
      return new Uint8();
    case 'u16':
      return new Uint16();
    case 'u32':
      return new Uint32();
    case 'i32':
      return new Int32();
    case 'i64':
      return new Int64();
    case 'u64':
      return new Uint64();
    case 'f64':
      return new Float64();
    case 'ts':
      return new TimestampNanosecond();
    case 'dur':
      return new DurationNanosecond();
  }
}

/** Numeric column; 64-bit integer kinds take bigint. */
// Storage is monomorphic on purpose (Float64Array for 8–32-bit kinds and f64, BigInt64Array for
// 64-bit kinds): one builder class serving several typed-array types made every store a
// megamorphic keyed store. The Arrow layout is produced at emit time with one native conversion.
export class PrimBuilder extends ColumnBuilder {
  num = new Float64Array(0);
  big = new BigInt64Array(0);
  /** `big` as 32-bit halves (kept in step with `big` by reserve()). */
  private bigHalves = new Int32Array(0);
  readonly isBig: boolean;
  constructor(
    name: string,
    readonly kind: PrimKind,
    required = false,
  ) {
    super(name, required);
    this.isBig = kind === 'i64' || kind === 'u64' || kind === 'ts' || kind === 'dur';
    if (this.isBig) this.big = new BigInt64Array(64);
    else this.num = new Float64Array(64);
  }
  private growNum(): void {
    const b = new Float64Array(this.num.length * 2);
    b.set(this.num);
    this.num = b;
  }
  private growBig(): void {
    const b = new BigInt64Array(this.big.length * 2);
    b.set(this.big);
    this.big = b;
  }
  append(v: number): void {
    if (this.n >= this.num.length) this.growNum();
    this.num[this.n] = v;
    this.markValid(true);
  }
  appendBig(v: bigint): void {
    if (this.n >= this.big.length) this.growBig();
    this.big[this.n] = v; // u64 above 2^63 wraps to the same bits
    this.markValid(true);
  }
  appendNull(): void {
    if (this.isBig) {
      if (this.n >= this.big.length) this.growBig();
      this.big[this.n] = 0n;
    } else {
      if (this.n >= this.num.length) this.growNum();
      this.num[this.n] = 0;
    }
    this.markValid(false);
  }
  bulk(n: number): void {
    if (this.isBig) {
      if (n > this.big.length) this.big = new BigInt64Array(n);
      this.big.fill(0n, 0, n);
    } else {
      if (n > this.num.length) this.num = new Float64Array(n);
      this.num.fill(0, 0, n);
    }
    this.bulkRows(n);
  }
  setAt(row: number, v: number): void {
    this.num[row] = v;
    this.valid[row] = 1;
    this.nullCount--;
  }
  /** Direct-write mode for `n` rows (see reserveRows); cells are not cleared. */
  reserve(n: number, allValid = false): void {
    if (this.isBig) {
      if (n > this.big.length) this.big = new BigInt64Array(Math.max(n, this.big.length * 2));
      if (this.bigHalves.buffer !== this.big.buffer) this.bigHalves = new Int32Array(this.big.buffer);
    } else if (n > this.num.length) this.num = new Float64Array(Math.max(n, this.num.length * 2));
    this.reserveRows(n, allValid);
  }
  put(row: number, v: number): void {
    this.num[row] = v;
    this.valid[row] = 1;
  }
  /** Zero (any falsy number) is sent as null. */
  putOpt(row: number, v: number): void {
    this.num[row] = v;
    this.valid[row] = v ? 1 : 0;
  }
  /**
   * 64-bit kinds, direct-write mode (after reserve(), which keeps the halves view on `big`): the
   * value at index `at` of `halves` (int64 values as 32-bit halves) into `row`.
   */
  putHalves(row: number, halves: Int32Array, at: number): void {
    const dst = this.bigHalves;
    dst[2 * row] = halves[2 * at];
    dst[2 * row + 1] = halves[2 * at + 1];
    this.valid[row] = 1;
  }
  /** Rows [from, to) get `v`; with `zeroIsNull` a falsy v makes them null. */
  fillRows(from: number, to: number, v: number, zeroIsNull: boolean): void {
    this.num.fill(v, from, to);
    this.valid.fill(zeroIsNull && !v ? 0 : 1, from, to);
  }
  field(): Field {
    return new Field(this.name, primType(this.kind), !this.required);
  }
  private scratch = new ArrayBuffer(0);
  emit(out: ColumnParts): void {
    this.node(out);
    const n = this.n;
    if (this.isBig) {
      out.buffers.push(bytesOf(this.big, n * 8));
      return;
    }
    // Narrowing loops, one per target type: about twice as fast as TypedArray.set() converting
    // from doubles, with the same conversion (modular, as on any typed array store).
    const src = this.num;
    let a: Uint8Array | Uint16Array | Uint32Array | Int32Array;
    switch (this.kind) {
      case 'u8':
        a = narrowU8(new Uint8Array((this.scratch = scratchOf(this.scratch, n)), 0, n), src, n);
        break;
      case 'u16':
        a = narrowU16(new Uint16Array((this.scratch = scratchOf(this.scratch, 2 * n)), 0, n), src, n);
        break;
      case 'u32':
        a = narrowU32(new Uint32Array((this.scratch = scratchOf(this.scratch, 4 * n)), 0, n), src, n);
        break;
      case 'i32':
        a = narrowI32(new Int32Array((this.scratch = scratchOf(this.scratch, 4 * n)), 0, n), src, n);
        break;
      default:
        out.buffers.push(bytesOf(this.num, n * 8));
        return;
    }
    out.buffers.push(bytesOf(a, a.byteLength));
  }
}

// Doubles → narrow integers, one loop per element type: a shared generic loop would see four
// typed-array kinds and make every store megamorphic (about 2× slower than TypedArray.set here).
function narrowU8(dst: Uint8Array, src: Float64Array, n: number): Uint8Array {
  for (let i = 0; i < n; i++) dst[i] = src[i];
  return dst;
}
function narrowU16(dst: Uint16Array, src: Float64Array, n: number): Uint16Array {
  for (let i = 0; i < n; i++) dst[i] = src[i];
  return dst;
}
function narrowU32(dst: Uint32Array, src: Float64Array, n: number): Uint32Array {
  for (let i = 0; i < n; i++) dst[i] = src[i];
  return dst;
}
function narrowI32(dst: Int32Array, src: Float64Array, n: number): Int32Array {
  for (let i = 0; i < n; i++) dst[i] = src[i];
  return dst;
}

/**
 * Duration column computed from the start column's timestamps and end timestamps at emit time,
 * with 64-bit subtraction on 32-bit halves: no BigInt arithmetic (an allocation each) per span,
 * and each start time is stored once, in the start column.
 */
export class DurationBuilder extends ColumnBuilder {
  private end = new BigInt64Array(64);
  private scratch = new ArrayBuffer(0);
  constructor(
    name: string,
    /** The 64-bit start timestamps of the same rows. */
    private readonly startCol: PrimBuilder,
    required = false,
  ) {
    super(name, required);
  }
  reserve(n: number): void {
    if (n > this.end.length) this.end = new BigInt64Array(Math.max(n, this.end.length * 2));
    this.reserveRows(n, true);
  }
  /** End time of `row`; the start column holds its start. */
  putEnd(row: number, end: bigint): void {
    this.end[row] = end;
  }
  field(): Field {
    return new Field(this.name, new DurationNanosecond(), !this.required);
  }
  emit(out: ColumnParts): void {
    this.node(out);
    const n = this.n;
    const start = this.startCol.big;
    const s = new Uint32Array(start.buffer, start.byteOffset, n * 2);
    const e = new Uint32Array(this.end.buffer, 0, n * 2);
    const d = new Uint32Array((this.scratch = scratchOf(this.scratch, n * 8)), 0, n * 2);
    subtractInt64(d, e, s, n);
    out.buffers.push(bytesOf(d, n * 8));
  }
}

/**
 * d = e - s for `n` int64 values given as 32-bit halves. A function of its own: a loop that is
 * optimized on-stack leaves the code after it without type feedback (a deopt per call).
 */
function subtractInt64(d: Uint32Array, e: Uint32Array, s: Uint32Array, n: number): void {
  for (let i = 0; i < n * 2; i += 2) {
    const lo = e[i] - s[i];
    const borrow = lo < 0 ? 1 : 0;
    d[i] = lo; // wraps mod 2^32 on store
    d[i + 1] = e[i + 1] - s[i + 1] - borrow;
  }
}

export class BoolBuilder extends ColumnBuilder {
  bits = new Uint8Array(64);
  append(v: boolean): void {
    if (this.n >= this.bits.length) this.bits = grow(this.bits, this.n + 1, (k) => new Uint8Array(k));
    this.bits[this.n] = v ? 1 : 0;
    this.markValid(true);
  }
  appendNull(): void {
    if (this.n >= this.bits.length) this.bits = grow(this.bits, this.n + 1, (k) => new Uint8Array(k));
    this.bits[this.n] = 0;
    this.markValid(false);
  }
  bulk(n: number): void {
    if (n > this.bits.length) this.bits = new Uint8Array(n);
    this.bits.fill(0, 0, n);
    this.bulkRows(n);
  }
  setAt(row: number, v: boolean): void {
    this.bits[row] = v ? 1 : 0;
    this.valid[row] = 1;
    this.nullCount--;
  }
  field(): Field {
    return new Field(this.name, new Bool(), !this.required);
  }
  emit(out: ColumnParts): void {
    this.node(out);
    out.buffers.push(packBits(this.bits, this.n));
  }
}

export class FsbBuilder extends ColumnBuilder {
  data: Uint8Array;
  constructor(
    name: string,
    readonly width: number,
    required = false,
  ) {
    super(name, required);
    this.data = new Uint8Array(64 * width);
  }
  append(v: Uint8Array): void {
    const w = this.width;
    if ((this.n + 1) * w > this.data.length) this.data = grow(this.data, (this.n + 1) * w, (k) => new Uint8Array(k));
    const o = this.n * w;
    if (v.length === w) {
      // a byte loop beats TypedArray.set() call overhead for 8/16-byte ids
      const d = this.data;
      for (let k = 0; k < w; k++) d[o + k] = v[k];
    } else {
      this.data.fill(0, o, o + w);
      this.data.set(v.subarray(0, w), o);
    }
    this.markValid(true);
  }
  appendNull(): void {
    const w = this.width;
    if ((this.n + 1) * w > this.data.length) this.data = grow(this.data, (this.n + 1) * w, (k) => new Uint8Array(k));
    this.data.fill(0, this.n * w, this.n * w + w);
    this.markValid(false);
  }
  reserve(n: number): void {
    const need = n * this.width;
    if (need > this.data.length) this.data = new Uint8Array(Math.max(need, this.data.length * 2));
    this.reserveRows(n, false);
  }
  put(row: number, v: Uint8Array): void {
    const w = this.width;
    const o = row * w;
    const d = this.data;
    // Unrolled copies for the id widths: about three times faster than the byte loop (or set()).
    if (v.length === w && w === 16) {
      d[o] = v[0]; d[o + 1] = v[1]; d[o + 2] = v[2]; d[o + 3] = v[3];
      d[o + 4] = v[4]; d[o + 5] = v[5]; d[o + 6] = v[6]; d[o + 7] = v[7];
      d[o + 8] = v[8]; d[o + 9] = v[9]; d[o + 10] = v[10]; d[o + 11] = v[11];
      d[o + 12] = v[12]; d[o + 13] = v[13]; d[o + 14] = v[14]; d[o + 15] = v[15];
    } else if (v.length === w && w === 8) {
      d[o] = v[0]; d[o + 1] = v[1]; d[o + 2] = v[2]; d[o + 3] = v[3];
      d[o + 4] = v[4]; d[o + 5] = v[5]; d[o + 6] = v[6]; d[o + 7] = v[7];
    } else if (v.length === w) {
      for (let k = 0; k < w; k++) d[o + k] = v[k];
    } else {
      d.fill(0, o, o + w);
      d.set(v.subarray(0, w), o);
    }
    this.valid[row] = 1;
  }
  /** An empty value is sent as null. */
  putOpt(row: number, v: Uint8Array): void {
    if (v.length !== 0) this.put(row, v);
    else {
      const o = row * this.width;
      this.data.fill(0, o, o + this.width);
      this.valid[row] = 0;
    }
  }
  field(): Field {
    return new Field(this.name, new FixedSizeBinary(this.width), !this.required);
  }
  emit(out: ColumnParts): void {
    this.node(out);
    out.buffers.push(this.data.subarray(0, this.n * this.width));
  }
}

/** Variable-length values (utf8 or binary) laid out as offsets + data. */
class VarData {
  offsets = new Int32Array(65);
  data = new Uint8Array(256);
  n = 0;
  size = 0;
  reset(): void {
    this.n = 0;
    this.size = 0;
  }
  private room(extra: number): void {
    if (this.size + extra > this.data.length) this.data = grow(this.data, this.size + extra, (k) => new Uint8Array(k));
    if (this.n + 2 > this.offsets.length) this.offsets = grow(this.offsets, this.n + 2, (k) => new Int32Array(k));
  }
  pushString(s: string): void {
    const len = s.length;
    this.room(len * 3);
    let o = this.size;
    const d = this.data;
    let i = 0;
    // ASCII fast path; TextEncoder for the rest.
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      d[o++] = c;
    }
    if (i < len) o += te.encodeInto(s.substring(i), d.subarray(o)).written;
    this.size = o;
    this.offsets[++this.n] = o;
  }
  pushBytes(b: Uint8Array): void {
    this.room(b.length);
    this.data.set(b, this.size);
    this.size += b.length;
    this.offsets[++this.n] = this.size;
  }
  pushEmpty(): void {
    this.room(0);
    this.offsets[++this.n] = this.size;
  }
  parts(): [Uint8Array, Uint8Array] {
    return [bytesOf(this.offsets, (this.n + 1) * 4), this.data.subarray(0, this.size)];
  }
}

export class VarBuilder extends ColumnBuilder {
  private readonly v = new VarData();
  constructor(
    name: string,
    readonly binary: boolean,
    required = false,
  ) {
    super(name, required);
  }
  appendString(s: string): void {
    this.v.pushString(s);
    this.markValid(true);
  }
  appendBytes(b: Uint8Array): void {
    this.v.pushBytes(b);
    this.markValid(true);
  }
  appendNull(): void {
    this.v.pushEmpty();
    this.markValid(false);
  }
  override reset(): void {
    super.reset();
    this.v.reset();
  }
  private bulkFilled = -1;
  bulk(n: number): void {
    this.v.reset();
    this.bulkRows(n);
    this.bulkFilled = 0;
  }
  /** Bulk mode: rows must be set in ascending order. */
  setBytesAt(row: number, b: Uint8Array): void {
    while (this.v.n < row) this.v.pushEmpty();
    this.v.pushBytes(b);
    this.valid[row] = 1;
    this.nullCount--;
  }
  field(): Field {
    return new Field(this.name, this.binary ? new Binary() : new Utf8(), !this.required);
  }
  emit(out: ColumnParts): void {
    if (this.bulkFilled >= 0) {
      while (this.v.n < this.n) this.v.pushEmpty();
      this.bulkFilled = -1;
    }
    this.node(out);
    const [o, d] = this.v.parts();
    out.buffers.push(o, d);
  }
}

export type DictValueKind = 'utf8' | 'binary' | 'i64';

/**
 * Dictionary-encoded column. The dictionary lives as long as the IPC stream; rows hold indices.
 * The index width is fixed by the schema (u8 or u16); when the dictionary outgrows it the table
 * starts a new stream (schema reset) and the dictionary restarts with only this batch's values.
 * Past 65536 distinct values in one batch the column is written plain.
 */
export class DictBuilder<K extends string | bigint = string | bigint> extends ColumnBuilder {
  private readonly map = new Map<K, number>();
  private readonly values: K[] = [];
  private byteValues: Uint8Array[] = []; // for binary: the bytes per entry
  /** Dictionary index per row (read by the attribute table when it writes rows directly). */
  idx = new Uint32Array(64);
  private scratch = new ArrayBuffer(0);
  private sent = 0;
  /** 8 or 16: dictionary index width; 0: plain column (no dictionary). */
  width = 8;
  private dictId = -1;
  constructor(
    name: string,
    readonly kind: DictValueKind,
    required = false,
  ) {
    super(name, required);
  }

  /** Dictionary index of `key`, adding it when new; pair with appendIndex(). */
  intern(key: K, bytes: Uint8Array | null = null): number {
    // Runs of one value (span names, resource strings) and two alternating values (client and
    // server span names) skip the Map lookup; `===` is exact for strings and bigints, so a stale
    // memo can only miss.
    if (key === this.lastKey) return this.lastIdx;
    let i: number | undefined;
    if (key === this.prevKey) i = this.prevIdx;
    else {
      i = this.map.get(key);
      if (i === undefined) {
        i = this.values.length;
        this.values.push(key);
        if (bytes) this.byteValues.push(bytes);
        this.map.set(key, i);
      }
    }
    this.prevKey = this.lastKey;
    this.prevIdx = this.lastIdx;
    this.lastKey = key;
    this.lastIdx = i;
    return i;
  }
  private lastKey: K | undefined = undefined;
  private lastIdx = 0;
  private prevKey: K | undefined = undefined;
  private prevIdx = 0;
  internBytes(b: Uint8Array): number {
    let key = '';
    for (let i = 0; i < b.length; i++) key += String.fromCharCode(b[i]);
    return this.intern(key as K, b);
  }
  appendIndex(i: number): void {
    if (this.n >= this.idx.length) this.idx = grow(this.idx, this.n + 1, (k) => new Uint32Array(k));
    this.idx[this.n] = i;
    this.markValid(true);
  }
  bulk(n: number): void {
    if (n > this.idx.length) this.idx = new Uint32Array(n);
    this.idx.fill(0, 0, n);
    this.bulkRows(n);
  }
  setIndexAt(row: number, i: number): void {
    this.idx[row] = i;
    this.valid[row] = 1;
    this.nullCount--;
  }
  reserve(n: number, allValid = false): void {
    if (n > this.idx.length) this.idx = new Uint32Array(Math.max(n, this.idx.length * 2));
    this.reserveRows(n, allValid);
  }
  putValue(row: number, key: K): void {
    this.idx[row] = this.intern(key);
    this.valid[row] = 1;
  }
  /** An empty string is sent as null. */
  putOptString(row: number, s: string): void {
    if (s) {
      this.idx[row] = this.intern(s as K);
      this.valid[row] = 1;
    } else {
      this.idx[row] = 0;
      this.valid[row] = 0;
    }
  }
  /** Rows [from, to) get `s` (null when empty). */
  fillString(from: number, to: number, s: string): void {
    if (from >= to) return;
    if (s) {
      this.idx.fill(this.intern(s as K), from, to);
      this.valid.fill(1, from, to);
    } else {
      this.idx.fill(0, from, to);
      this.valid.fill(0, from, to);
    }
  }
  private push(key: K, bytes: Uint8Array | null): void {
    this.appendIndex(this.intern(key, bytes));
  }
  appendString(s: string): void {
    this.push(s as K, null);
  }
  appendBig(v: bigint): void {
    this.push(v as K, null);
  }
  appendBytes(b: Uint8Array): void {
    let key = '';
    for (let i = 0; i < b.length; i++) key += String.fromCharCode(b[i]);
    this.push(key as K, b);
  }
  appendNull(): void {
    if (this.n >= this.idx.length) this.idx = grow(this.idx, this.n + 1, (k) => new Uint32Array(k));
    this.idx[this.n] = 0;
    this.markValid(false);
  }
  /** Dictionary index of the value in row i: equal values share it (used for sorting/equality). */
  indexAt(row: number): number {
    return this.idx[row];
  }
  /** Index that `s` has or would get; lets callers compute sort keys before appending. */
  lookup(key: K): number | undefined {
    return this.map.get(key);
  }
  get size(): number {
    return this.values.length;
  }

  override overflowed(): boolean {
    if (this.width === 0) return false;
    return this.values.length > (this.width === 8 ? 256 : 65536);
  }

  override restart(): void {
    // Keep only the values this batch references, in first-use order.
    const remap = new Int32Array(this.values.length).fill(-1);
    const keep: K[] = [];
    const keepBytes: Uint8Array[] = [];
    for (let r = 0; r < this.n; r++) {
      if (!this.valid[r]) continue;
      const old = this.idx[r];
      let j = remap[old];
      if (j < 0) {
        j = remap[old] = keep.length;
        keep.push(this.values[old]);
        if (this.kind === 'binary') keepBytes.push(this.byteValues[old]);
      }
      this.idx[r] = j;
    }
    this.map.clear();
    this.lastKey = this.prevKey = undefined;
    this.values.length = 0;
    for (let j = 0; j < keep.length; j++) {
      this.values.push(keep[j]);
      this.map.set(keep[j], j);
    }
    this.byteValues = keepBytes;
    this.sent = 0;
    this.width = keep.length <= 256 ? 8 : keep.length <= 65536 ? 16 : 0;
    if (this.width === 0) {
      // Plain from now on in this stream: the dictionary is not needed beyond this batch.
    }
  }

  private valueType(): DataType {
    return this.kind === 'utf8' ? new Utf8() : this.kind === 'binary' ? new Binary() : new Int64();
  }

  field(ctx: SchemaContext): Field {
    if (this.width === 0) return new Field(this.name, this.valueType(), !this.required);
    this.dictId = ctx.nextDictId++;
    const indexType = this.width === 8 ? new Uint8() : new Uint16();
    return new Field(this.name, new Dictionary(this.valueType(), indexType, this.dictId, false), !this.required);
  }

  private valueParts(from: number, to: number): ColumnParts {
    const parts: ColumnParts = { nodes: [new FieldNode(to - from, 0)], buffers: [EMPTY] };
    if (this.kind === 'i64') {
      const a = new BigInt64Array(to - from);
      for (let i = from; i < to; i++) a[i - from] = this.values[i] as bigint;
      parts.buffers.push(bytesOf(a, a.byteLength));
    } else {
      const v = new VarData();
      if (this.kind === 'utf8') for (let i = from; i < to; i++) v.pushString(this.values[i] as string);
      else for (let i = from; i < to; i++) v.pushBytes(this.byteValues[i]);
      parts.buffers.push(...v.parts());
    }
    return parts;
  }

  override dictionaries(out: DictionaryPart[], firstInStream: boolean): void {
    if (this.width === 0) return;
    const total = this.values.length;
    if (total === this.sent && !firstInStream) return;
    out.push({ id: this.dictId, length: total - this.sent, isDelta: this.sent > 0, parts: this.valueParts(this.sent, total) });
    this.sent = total;
  }

  emit(out: ColumnParts): void {
    const n = this.n;
    if (this.width === 0) {
      // Plain layout: materialise the values row by row.
      out.nodes.push(new FieldNode(n, this.nullCount));
      out.buffers.push(bitmap(this.valid, n, this.nullCount));
      if (this.kind === 'i64') {
        const a = new BigInt64Array(n);
        for (let r = 0; r < n; r++) if (this.valid[r]) a[r] = this.values[this.idx[r]] as bigint;
        out.buffers.push(bytesOf(a, a.byteLength));
      } else {
        const v = new VarData();
        for (let r = 0; r < n; r++) {
          if (!this.valid[r]) v.pushEmpty();
          else if (this.kind === 'utf8') v.pushString(this.values[this.idx[r]] as string);
          else v.pushBytes(this.byteValues[this.idx[r]]);
        }
        out.buffers.push(...v.parts());
      }
      return;
    }
    this.node(out);
    const src = this.idx.subarray(0, n);
    if (this.width === 8) {
      const a = new Uint8Array((this.scratch = scratchOf(this.scratch, n)), 0, n);
      a.set(src);
      out.buffers.push(a);
    } else {
      const a = new Uint16Array((this.scratch = scratchOf(this.scratch, 2 * n)), 0, n);
      a.set(src);
      out.buffers.push(bytesOf(a, a.byteLength));
    }
  }
}

/** Struct column; its own validity is always set (OTAP structs are never null as a whole). */
export class StructBuilder extends ColumnBuilder {
  constructor(
    name: string,
    readonly children: ColumnBuilder[],
  ) {
    super(name, false);
  }
  appendValid(): void {
    this.markValid(true);
  }
  /** Direct-write mode for the struct's own validity (all valid); children are reserved apart. */
  reserve(n: number): void {
    this.reserveRows(n, true);
  }
  override seal(): void {
    for (const c of this.children) c.seal();
  }
  override hasValues(): boolean {
    return this.children.some((c) => c.hasValues());
  }
  override wanted(): boolean {
    return this.children.some((c) => c.wanted());
  }
  override reset(): void {
    super.reset();
    for (const c of this.children) c.reset();
  }
  field(ctx: SchemaContext): Field {
    const kids = this.children.filter((c) => c.inSchema).map((c) => c.field(ctx));
    return new Field(this.name, new Struct(kids), true);
  }
  emit(out: ColumnParts): void {
    this.node(out);
    for (const c of this.children) if (c.inSchema) c.emit(out);
  }
  override dictionaries(out: DictionaryPart[], first: boolean): void {
    for (const c of this.children) if (c.inSchema) c.dictionaries(out, first);
  }
  override overflowed(): boolean {
    return this.children.some((c) => c.inSchema && c.overflowed());
  }
  override restart(): void {
    for (const c of this.children) c.restart();
  }
}

/** List<item> column; `item` receives the flattened elements. */
export class ListBuilder<I extends ColumnBuilder> extends ColumnBuilder {
  offsets = new Int32Array(65);
  constructor(
    name: string,
    readonly item: I,
  ) {
    super(name, false);
  }
  /** Call after appending the elements of this row to `item`. */
  closeRow(): void {
    if (this.n + 2 > this.offsets.length) this.offsets = grow(this.offsets, this.n + 2, (k) => new Int32Array(k));
    this.offsets[this.n + 1] = this.item.n;
    this.markValid(true);
  }
  appendNull(): void {
    if (this.n + 2 > this.offsets.length) this.offsets = grow(this.offsets, this.n + 2, (k) => new Int32Array(k));
    this.offsets[this.n + 1] = this.item.n;
    this.markValid(false);
  }
  override reset(): void {
    super.reset();
    this.item.reset();
  }
  field(ctx: SchemaContext): Field {
    return new Field(this.name, new List(this.item.field(ctx)), true);
  }
  emit(out: ColumnParts): void {
    this.node(out);
    out.buffers.push(bytesOf(this.offsets, (this.n + 1) * 4));
    this.item.emit(out);
  }
  override dictionaries(out: DictionaryPart[], first: boolean): void {
    this.item.dictionaries(out, first);
  }
  override overflowed(): boolean {
    return this.item.overflowed();
  }
  override restart(): void {
    this.item.restart();
  }
}

/** Marks nested columns of a struct/list as part of the schema (lists carry their item). */
export function markInSchema(c: ColumnBuilder, on: boolean): void {
  c.inSchema = on;
  if (c instanceof StructBuilder) for (const k of c.children) markInSchema(k, on && k.wanted());
  if (c instanceof ListBuilder) markInSchema(c.item, on);
}
