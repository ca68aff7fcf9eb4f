// Attribute tables (RESOURCE_ATTRS, SCOPE_ATTRS, SPAN_ATTRS, LOG_ATTRS, *_DP_ATTRS, ...).
// Columns: parent_id, key, type, str, int, double, bool, bytes, ser. Rows are sorted by
// (type, key, value) keeping parent order within equal values, and parent_id is quasi-delta
// encoded: a delta from the previous row when (key, value) equals the previous row's, otherwise
// the absolute id. Type codes follow pcommon.ValueType: 0 empty, 1 str, 2 int, 3 double, 4 bool,
// 5 map, 6 slice, 7 bytes.
import { KeyValueList, type AnyValue, type KeyValue } from '../model.ts';
import { BoolBuilder, DictBuilder, PrimBuilder, VarBuilder } from './columns.ts';
import { TableEncoder, type EncodeOptions, SchemaIdSource } from './table.ts';
import { cborDecode, cborEncode } from './cbor.ts';
import { Type } from 'apache-arrow';
import { Column, OtapDecodeError, type DecodedBatch } from './ipc.ts';
import { colBig, colBool, colBytes, colF64, colStr, colUint, optColumn, reqColumn } from './read.ts';

export const enum ValueType {
  Empty = 0,
  Str = 1,
  Int = 2,
  Double = 3,
  Bool = 4,
  Map = 5,
  Slice = 6,
  Bytes = 7,
}

export function valueTypeOf(v: AnyValue): ValueType {
  switch (typeof v) {
    case 'string':
      return ValueType.Str;
    case 'bigint':
      return ValueType.Int;
    case 'number':
      return ValueType.Double;
    case 'boolean':
      return ValueType.Bool;
  }
  if (v === null) return ValueType.Empty;
  if (v instanceof Uint8Array) return ValueType.Bytes;
  if (Array.isArray(v)) return ValueType.Slice;
  return ValueType.Map;
}


/** Staged attribute rows for one batch; sorted and written out by finish(). */
export class AttrsEncoder {
  readonly table: TableEncoder;
  private readonly parentCol: PrimBuilder;
  private readonly keyCol: DictBuilder<string>;
  private readonly typeCol: PrimBuilder;
  private readonly strCol: DictBuilder<string>;
  private readonly intCol: PrimBuilder;
  private readonly doubleCol: PrimBuilder;
  private readonly boolCol: BoolBuilder;
  private readonly bytesCol: DictBuilder<string>;
  private readonly serCol: VarBuilder;

  // staging (row order = insertion order = ascending parent id)
  private n = 0;
  private parent = new Uint32Array(256);
  private type = new Uint8Array(256);
  private keyRank = new Uint32Array(256);
  private valRank = new Uint32Array(256);
  private vals: AnyValue[] = [];
  private nextValRank = 0;
  // per-attribute-position memo of the last key / string value and their dictionary indices;
  // cleared every batch because a schema reset renumbers the dictionaries
  private memoKey: (string | null)[] = new Array(64).fill(null);
  private readonly memoKeyIdx = new Int32Array(64);
  private memoVal: (string | null)[] = new Array(64).fill(null);
  private readonly memoValIdx = new Int32Array(64);

  constructor(
    payloadType: number,
    readonly parentBits: 16 | 32,
    ids: SchemaIdSource,
    opts: EncodeOptions,
  ) {
    this.parentCol = new PrimBuilder('parent_id', parentBits === 16 ? 'u16' : 'u32', true);
    this.keyCol = new DictBuilder<string>('key', 'utf8', true);
    this.typeCol = new PrimBuilder('type', 'u8', true);
    this.strCol = new DictBuilder<string>('str', 'utf8');
    this.intCol = new PrimBuilder('int', 'i64');
    this.doubleCol = new PrimBuilder('double', 'f64');
    this.boolCol = new BoolBuilder('bool');
    this.bytesCol = new DictBuilder<string>('bytes', 'binary');
    this.serCol = new VarBuilder('ser', true);
    this.table = new TableEncoder(
      payloadType,
      [this.parentCol, this.keyCol, this.typeCol, this.strCol, this.intCol, this.doubleCol, this.boolCol, this.bytesCol, this.serCol],
      ids,
      opts,
    );
  }

  private stage(): void {
    if (this.n < this.parent.length) return;
    const size = this.parent.length * 2;
    const p = new Uint32Array(size);
    p.set(this.parent);
    this.parent = p;
    const t = new Uint8Array(size);
    t.set(this.type);
    this.type = t;
    const k = new Uint32Array(size);
    k.set(this.keyRank);
    this.keyRank = k;
    const v = new Uint32Array(size);
    v.set(this.valRank);
    this.valRank = v;
  }

  /**
   * Appends the attributes of one parent; parents must be added in ascending id order.
   * Strings and bytes are interned into their dictionaries right away and the dictionary index
   * serves as sort rank (equal values group together); other scalars keep parent order within
   * their key and are compared by value.
   */
  add(parentId: number, attrs: KeyValue[]): void {
    for (let i = 0; i < attrs.length; i++) {
      const kv = attrs[i];
      this.stage();
      const j = this.n++;
      this.parent[j] = parentId;
      // Consecutive parents mostly carry the same keys in the same order (and often the same
      // string values): a per-position memo saves most dictionary (Map) lookups.
      const key = kv.key;
      let kr: number;
      if (i < 64 && this.memoKey[i] === key) kr = this.memoKeyIdx[i];
      else {
        kr = this.keyCol.intern(key);
        if (i < 64) {
          this.memoKey[i] = key;
          this.memoKeyIdx[i] = kr;
        }
      }
      this.keyRank[j] = kr;
      const v = kv.value;
      const t = valueTypeOf(v);
      this.type[j] = t;
      this.vals[j] = v;
      switch (t) {
        case ValueType.Str: {
          let vr: number;
          if (i < 64 && this.memoVal[i] === v) vr = this.memoValIdx[i];
          else {
            vr = this.strCol.intern(v as string);
            if (i < 64) {
              this.memoVal[i] = v as string;
              this.memoValIdx[i] = vr;
            }
          }
          this.valRank[j] = vr;
          break;
        }
        case ValueType.Bool:
          this.valRank[j] = v ? 1 : 0;
          break;
        case ValueType.Bytes:
          this.valRank[j] = this.bytesCol.internBytes(v as Uint8Array);
          break;
        default:
          this.valRank[j] = 0;
      }
      if (this.valRank[j] >= this.nextValRank) this.nextValRank = this.valRank[j] + 1;
    }
  }

  /** Stable two-pass counting sort: by value rank, then by (type, key rank). */
  private order(): Uint32Array {
    const n = this.n;
    let idx = new Uint32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    const maxV = this.nextValRank + 1;
    let out = new Uint32Array(n);
    const cv = new Uint32Array(maxV + 1);
    for (let i = 0; i < n; i++) cv[this.valRank[i] + 1]++;
    for (let i = 1; i <= maxV; i++) cv[i] += cv[i - 1];
    for (let i = 0; i < n; i++) out[cv[this.valRank[idx[i]]]++] = idx[i];
    [idx, out] = [out, idx];
    const nk = this.keyCol.size;
    const groups = 8 * nk;
    const cg = new Uint32Array(groups + 1);
    for (let i = 0; i < n; i++) cg[this.type[i] * nk + this.keyRank[i] + 1]++;
    for (let i = 1; i <= groups; i++) cg[i] += cg[i - 1];
    for (let i = 0; i < n; i++) {
      const r = idx[i];
      out[cg[this.type[r] * nk + this.keyRank[r]]++] = r;
    }
    return out;
  }

  finish() {
    const n = this.n;
    if (n === 0) {
      this.clear();
      return null;
    }
    const order = this.order();
    this.parentCol.bulk(n);
    this.keyCol.bulk(n);
    this.typeCol.bulk(n);
    this.strCol.bulk(n);
    this.intCol.bulk(n);
    this.doubleCol.bulk(n);
    this.boolCol.bulk(n);
    this.bytesCol.bulk(n);
    this.serCol.bulk(n);
    let prevGroup = -1, prevRank = -1, prevParent = 0;
    let prevVal: AnyValue = null;
    for (let i = 0; i < n; i++) {
      const r = order[i];
      const t = this.type[r];
      const group = t * 0x1000000 + this.keyRank[r];
      const rank = this.valRank[r];
      const v = this.vals[r];
      const parent = this.parent[r];
      // Map, slice and empty never compare equal on the decoding side; NaN !== NaN does the rest.
      let same = false;
      if (group === prevGroup && rank === prevRank) {
        if (t === ValueType.Str || t === ValueType.Bytes || t === ValueType.Bool) same = true;
        else if (t === ValueType.Int || t === ValueType.Double) same = v === prevVal;
      }
      this.parentCol.setAt(i, same ? parent - prevParent : parent);
      prevGroup = group;
      prevRank = rank;
      prevVal = v;
      prevParent = parent;
      this.keyCol.setIndexAt(i, this.keyRank[r]);
      this.typeCol.setAt(i, t);
      switch (t) {
        case ValueType.Str:
          this.strCol.setIndexAt(i, rank);
          break;
        case ValueType.Int:
          this.intCol.setBigAt(i, v as bigint);
          break;
        case ValueType.Double:
          this.doubleCol.setAt(i, v as number);
          break;
        case ValueType.Bool:
          this.boolCol.setAt(i, v as boolean);
          break;
        case ValueType.Bytes:
          this.bytesCol.setIndexAt(i, rank);
          break;
        case ValueType.Map:
        case ValueType.Slice:
          this.serCol.setBytesAt(i, cborEncode(v));
          break;
      }
    }
    const p = this.table.finish();
    this.clear();
    return p;
  }

  /** Drops staged rows (after a failed batch); finish() does this itself. */
  discard(): void {
    this.clear();
  }

  private clear(): void {
    // Keep the values array's backing store across batches (refilling it from empty re-grew it
    // every batch); null the used slots so old values can be collected.
    this.vals.fill(null, 0, this.n);
    this.n = 0;
    this.nextValRank = 0;
    this.memoKey.fill(null);
    this.memoVal.fill(null);
    this.table.reset();
  }
}

// ------------------------------------------------------------------ decoding

/** Cell value of an attribute-shaped row (attributes and log bodies share the type-tagged layout). */
export function anyValueAt(
  t: number,
  i: number,
  str: Column | undefined,
  int: Column | undefined,
  dbl: Column | undefined,
  bool: Column | undefined,
  bytes: Column | undefined,
  ser: Column | undefined,
  what: string,
): AnyValue {
  switch (t) {
    case ValueType.Empty:
      return null;
    case ValueType.Str:
      return str && str.isValid(i) ? colStr(str, i) : '';
    case ValueType.Int:
      return int && int.isValid(i) ? colBig(int, i) : 0n;
    case ValueType.Double:
      return dbl && dbl.isValid(i) ? colF64(dbl, i) : 0;
    case ValueType.Bool:
      return bool && bool.isValid(i) ? colBool(bool, i) : false;
    case ValueType.Bytes:
      return bytes && bytes.isValid(i) ? colBytes(bytes, i) : new Uint8Array(0);
    case ValueType.Map:
    case ValueType.Slice: {
      if (!ser || !ser.isValid(i)) return t === ValueType.Map ? new KeyValueList([]) : [];
      try {
        return cborDecode(colBytes(ser, i));
      } catch (e) {
        throw new OtapDecodeError(`${what}: ser column row ${i}: ${(e as Error).message}`);
      }
    }
    default:
      throw new OtapDecodeError(`${what}: unknown value type ${t} in row ${i}`);
  }
}

/** Attribute lists by parent id (what decodeAttrs returns; Map-compatible for the lookups callers do). */
export interface AttrLists {
  get(id: number): KeyValue[] | undefined;
}

// Parent ids below this index a dense array (they count rows of the parent table, so real ids are
// small); larger ones, which only hostile input carries, go to a Map instead of a huge array.
const DENSE_IDS = 1 << 17;

class DenseAttrLists implements AttrLists {
  constructor(
    private readonly dense: (KeyValue[] | undefined)[],
    private readonly sparse: Map<number, KeyValue[]> | null,
  ) {}
  get(id: number): KeyValue[] | undefined {
    return id < DENSE_IDS ? this.dense[id] : this.sparse?.get(id);
  }
}

/** Attributes grouped by (absolute) parent id. */
export function decodeAttrs(batch: DecodedBatch, what: string): AttrLists {
  const cols = batch.columns;
  const parent = reqColumn(cols, 'parent_id', what);
  const key = reqColumn(cols, 'key', what);
  const type = reqColumn(cols, 'type', what);
  const str = optColumn(cols, 'str'), int = optColumn(cols, 'int'), dbl = optColumn(cols, 'double');
  const bool = optColumn(cols, 'bool'), bytes = optColumn(cols, 'bytes'), ser = optColumn(cols, 'ser');
  // Fast paths for the common layouts (dictionary keys and strings, plain u8 type, plain parent).
  const keyDict = key.indices !== null && key.valueType.typeId === Type.Utf8 ? key : null;
  const strDict = str && str.indices !== null && str.valueType.typeId === Type.Utf8 ? str : null;
  const typeVals = type.indices === null && type.type.typeId === Type.Int && (type.type as any).bitWidth <= 32 ? (type.values as ArrayLike<number>) : null;
  const parentVals = parent.indices === null && parent.type.typeId === Type.Int && (parent.type as any).bitWidth <= 32 ? (parent.values as ArrayLike<number>) : null;
  const n = batch.length;
  // Pass 1 resolves the quasi-delta ids and counts rows per parent, so pass 2 fills exact-size lists
  // found by array index (rows are sorted by key, so consecutive rows hit different parents).
  const ids = new Float64Array(n);
  const kvs: KeyValue[] = new Array(n);
  const counts: number[] = [];
  let sparseCounts: Map<number, number> | null = null;
  let prevKey: string | null = null;
  let prevType = -1;
  let prevVal: AnyValue = null;
  let prevParent = 0;
  for (let i = 0; i < n; i++) {
    const k = keyDict !== null ? ((keyDict.dict![keyDict.indices![i]] as string | null) ?? '') : colStr(key, i);
    const t = typeVals !== null ? typeVals[i] : colUint(type, i);
    let v: AnyValue;
    if (t === ValueType.Str && strDict !== null) v = strDict.isValid(i) ? ((strDict.dict![strDict.indices![i]] as string | null) ?? '') : '';
    else v = anyValueAt(t, i, str, int, dbl, bool, bytes, ser, what);
    const raw = parentVals !== null ? parentVals[i] : colUint(parent, i);
    let id: number;
    if (prevKey === k && prevType === t && sameValue(t, prevVal, v)) {
      id = (prevParent + raw) >>> 0;
    } else {
      id = raw;
      prevKey = k;
      prevType = t;
      prevVal = v;
    }
    prevParent = id;
    ids[i] = id;
    kvs[i] = { key: k, value: v };
    if (id < DENSE_IDS) {
      while (counts.length <= id) counts.push(0);
      counts[id]++;
    } else {
      sparseCounts ??= new Map();
      sparseCounts.set(id, (sparseCounts.get(id) ?? 0) + 1);
    }
  }
  const dense: (KeyValue[] | undefined)[] = new Array(counts.length);
  const fill = new Int32Array(counts.length);
  let sparse: Map<number, KeyValue[]> | null = null;
  let sparseFill: Map<number, number> | null = null;
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    const kv = kvs[i];
    if (id < DENSE_IDS) {
      let list = dense[id];
      if (list === undefined) dense[id] = list = new Array(counts[id]);
      list[fill[id]++] = kv;
    } else {
      sparse ??= new Map();
      sparseFill ??= new Map();
      let list = sparse.get(id);
      if (list === undefined) sparse.set(id, (list = new Array(sparseCounts!.get(id)!)));
      const f = sparseFill.get(id) ?? 0;
      list[f] = kv;
      sparseFill.set(id, f + 1);
    }
  }
  return new DenseAttrLists(dense, sparse);
}

function sameValue(t: number, a: AnyValue, b: AnyValue): boolean {
  switch (t) {
    case ValueType.Str:
    case ValueType.Int:
    case ValueType.Bool:
      return a === b;
    case ValueType.Double:
      return a === b; // NaN !== NaN, as on the Go side
    case ValueType.Bytes: {
      const x = a as Uint8Array, y = b as Uint8Array;
      if (x.length !== y.length) return false;
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
      return true;
    }
    default:
      return false;
  }
}
