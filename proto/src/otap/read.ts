// Typed cell accessors over received columns. Any column may arrive plain or dictionary-encoded
// (Go dictionary-encodes columns the spec calls plain, and falls back to plain on overflow), so
// every accessor handles both. A type that cannot hold the expected value is a decode error that
// names the column.
import { Type } from 'apache-arrow';
import { Column, OtapDecodeError, type DictValue } from './ipc.ts';

const td = new TextDecoder('utf-8', { fatal: false });

function mismatch(col: Column, want: string): never {
  throw new OtapDecodeError(`column ${col.name}: expected ${want}, got ${col.valueType}`);
}

export function reqColumn(cols: Map<string, Column>, name: string, what: string): Column {
  const c = cols.get(name);
  if (!c) throw new OtapDecodeError(`${what}: missing column ${name}`);
  return c;
}

export function optColumn(cols: Map<string, Column> | undefined, name: string): Column | undefined {
  return cols?.get(name);
}

function dictCell(col: Column, i: number): DictValue {
  return col.dict![col.indices![i]];
}

export function colStr(col: Column, i: number): string {
  if (col.indices !== null) {
    const v = dictCell(col, i);
    if (typeof v === 'string') return v;
    if (v === null) return '';
    mismatch(col, 'utf8');
  }
  if (col.type.typeId !== Type.Utf8) mismatch(col, 'utf8');
  const o = col.offsets!;
  return td.decode(col.data!.subarray(o[i], o[i + 1]));
}

export function colUint(col: Column, i: number): number {
  if (col.indices !== null) {
    const v = dictCell(col, i);
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
    if (v === null) return 0;
    mismatch(col, 'integer');
  }
  const t = col.type.typeId;
  if (t !== Type.Int) mismatch(col, 'integer');
  const v = (col.values as any)[i];
  return typeof v === 'bigint' ? Number(v) : v;
}

export function colBig(col: Column, i: number): bigint {
  if (col.indices !== null) {
    const v = dictCell(col, i);
    if (typeof v === 'bigint') return v;
    if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
    if (v === null) return 0n;
    mismatch(col, '64-bit integer');
  }
  const t = col.type.typeId;
  if (t !== Type.Int && t !== Type.Timestamp && t !== Type.Duration) mismatch(col, '64-bit integer');
  const v = (col.values as any)[i];
  return typeof v === 'bigint' ? BigInt.asIntN(64, v) : BigInt(v);
}

/** Unsigned 64-bit read (counts): u64 columns above 2^63 stay positive. */
export function colU64(col: Column, i: number): bigint {
  const v = colBig(col, i);
  return v < 0n ? BigInt.asUintN(64, v) : v;
}

export function colF64(col: Column, i: number): number {
  if (col.indices !== null) {
    const v = dictCell(col, i);
    if (typeof v === 'number') return v;
    if (v === null) return 0;
    mismatch(col, 'float64');
  }
  if (col.type.typeId !== Type.Float) mismatch(col, 'float64');
  return (col.values as Float64Array)[i];
}

export function colBool(col: Column, i: number): boolean {
  if (col.indices !== null) {
    const v = dictCell(col, i);
    if (typeof v === 'boolean') return v;
    if (v === null) return false;
    mismatch(col, 'bool');
  }
  if (col.type.typeId !== Type.Bool) mismatch(col, 'bool');
  return (col.data![i >> 3] & (1 << (i & 7))) !== 0;
}

/**
 * Bytes of a binary / fixed-size-binary cell. The column's data is copied once and cells are
 * views into that copy (one ArrayBuffer per column, not per id): decoded byte arrays may share
 * memory and are to be treated as immutable, like the rest of the model.
 */
export function colBytes(col: Column, i: number): Uint8Array {
  if (col.indices !== null) {
    const v = dictCell(col, i);
    if (v instanceof Uint8Array) return v;
    if (v === null) return new Uint8Array(0);
    mismatch(col, 'binary');
  }
  const t = col.type.typeId;
  const data = (col.owned ??= col.data!.slice());
  // the constructor makes the view faster than subarray() (no species lookup)
  if (t === Type.FixedSizeBinary) return new Uint8Array(data.buffer, data.byteOffset + i * col.width, col.width);
  if (t !== Type.Binary) mismatch(col, 'binary');
  const o = col.offsets!;
  return new Uint8Array(data.buffer, data.byteOffset + o[i], o[i + 1] - o[i]);
}

/**
 * Signed 64-bit view of a plain 64-bit integer / timestamp / duration column (u64 read as its
 * two's-complement bits, as colBig does), or null for other layouts.
 */
export function int64View(col: Column | undefined): BigInt64Array | null {
  if (!col || col.indices !== null) return null;
  const v = col.values;
  if (v instanceof BigInt64Array) return v;
  if (v instanceof BigUint64Array) return new BigInt64Array(v.buffer, v.byteOffset, v.length);
  return null;
}

/**
 * Running prefix sum for delta-encoded id columns: a null leaves the running id unchanged and
 * yields -1 (no id for this row).
 */
export class DeltaIds {
  private last = 0;
  next(col: Column | undefined, i: number): number {
    if (!col || !col.isValid(i)) return -1;
    this.last = (this.last + colUint(col, i)) >>> 0;
    return this.last;
  }
}

const EMPTY_ID = new Uint8Array(0);

/** Optional id column cell: null or all-zero (pdata's "unset") → empty. */
export function optId(col: Column | undefined, i: number): Uint8Array {
  if (!col || !col.isValid(i)) return EMPTY_ID;
  const b = colBytes(col, i);
  for (let k = 0; k < b.length; k++) if (b[k] !== 0) return b;
  return EMPTY_ID;
}
