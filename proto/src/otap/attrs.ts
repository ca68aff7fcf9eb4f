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
import { SMALL_BIGINTS, smallBigInt } from '../small-bigints.ts';

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

  // staging (row order = insertion order = ascending parent id); typed arrays only, values by type:
  // ints as int64 (compared as 32-bit halves), doubles as f64, strings/bytes/bools by rank
  private n = 0;
  private parent = new Uint32Array(256);
  private type = new Uint8Array(256);
  private keyRank = new Uint32Array(256);
  private valRank = new Uint32Array(256);
  private ints = new BigInt64Array(256);
  private intHalves = new Int32Array(this.ints.buffer);
  private doubles = new Float64Array(256);
  /** Map and slice values (rare) by staging row. */
  private readonly complex = new Map<number, AnyValue>();
  // sort scratch, kept across batches
  private sortA = new Uint32Array(0);
  private sortB = new Uint32Array(0);
  private counts = new Uint32Array(0);
  private groupEnds = new Uint32Array(0);
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

  private ensure(need: number): void {
    if (need <= this.parent.length) return;
    let size = this.parent.length * 2;
    while (size < need) size *= 2;
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
    const ints = new BigInt64Array(size);
    ints.set(this.ints);
    this.ints = ints;
    this.intHalves = new Int32Array(ints.buffer);
    const d = new Float64Array(size);
    d.set(this.doubles);
    this.doubles = d;
  }

  /**
   * Appends the attributes of one parent; parents must be added in ascending id order.
   * Strings and bytes are interned into their dictionaries right away and the dictionary index
   * serves as sort rank (equal values group together); other scalars keep parent order within
   * their key and are compared by value.
   */
  add(parentId: number, attrs: KeyValue[]): void {
    const count = attrs.length;
    const from = this.n;
    this.ensure(from + count);
    this.n = from + count;
    // Fields in locals: nothing called below touches them.
    const parent = this.parent, type = this.type, keyRank = this.keyRank, valRank = this.valRank;
    const memoKey = this.memoKey, memoKeyIdx = this.memoKeyIdx, memoVal = this.memoVal, memoValIdx = this.memoValIdx;
    for (let i = 0; i < count; i++) {
      const kv = attrs[i];
      const j = from + i;
      parent[j] = parentId;
      // Consecutive parents mostly carry the same keys in the same order (and often the same
      // string values): a per-position memo saves most dictionary (Map) lookups.
      const key = kv.key;
      let kr: number;
      if (i < 64 && memoKey[i] === key) kr = memoKeyIdx[i];
      else {
        kr = this.keyCol.intern(key);
        if (i < 64) {
          memoKey[i] = key;
          memoKeyIdx[i] = kr;
        }
      }
      keyRank[j] = kr;
      const v = kv.value;
      let vr = 0;
      let t: ValueType;
      switch (typeof v) {
        case 'string':
          t = ValueType.Str;
          if (i < 64 && memoVal[i] === v) vr = memoValIdx[i];
          else {
            vr = this.strCol.intern(v);
            if (i < 64) {
              memoVal[i] = v;
              memoValIdx[i] = vr;
            }
          }
          break;
        case 'bigint':
          t = ValueType.Int;
          this.ints[j] = v; // u64 above 2^63 wraps to the same bits
          break;
        case 'number':
          t = ValueType.Double;
          this.doubles[j] = v;
          break;
        case 'boolean':
          t = ValueType.Bool;
          vr = v ? 1 : 0;
          break;
        default:
          t = valueTypeOf(v);
          if (t === ValueType.Bytes) vr = this.bytesCol.internBytes(v as Uint8Array);
          else if (t === ValueType.Map || t === ValueType.Slice) this.complex.set(j, v);
      }
      type[j] = t;
      valRank[j] = vr;
    }
  }

  /**
   * Row order: (type, key rank) groups ascending, rows of a group in value-rank order, ties in
   * insertion (parent) order. A stable counting sort by group, then a counting sort by rank
   * inside each string / bytes / bool group that holds more than one value (ints and doubles
   * keep parent order, their rank is 0).
   */
  private order(): Uint32Array {
    const n = this.n;
    if (this.sortA.length < n) {
      this.sortA = new Uint32Array(this.parent.length);
      this.sortB = new Uint32Array(this.parent.length);
    }
    const valRank = this.valRank, type = this.type, keyRank = this.keyRank;
    const nk = this.keyCol.size;
    const groups = 8 * nk;
    // value ranks are dictionary indices (strings, bytes) or 0/1 (bools)
    const need = Math.max(this.strCol.size, this.bytesCol.size, 2, groups) + 1;
    if (this.counts.length < need) this.counts = new Uint32Array(Math.max(need, this.counts.length * 2));
    if (this.groupEnds.length < groups) this.groupEnds = new Uint32Array(Math.max(groups, this.groupEnds.length * 2));
    const c = this.counts;
    const out = this.sortA;
    c.fill(0, 0, groups + 1);
    for (let i = 0; i < n; i++) c[type[i] * nk + keyRank[i] + 1]++;
    for (let g = 1; g <= groups; g++) c[g] += c[g - 1];
    for (let i = 0; i < n; i++) out[c[type[i] * nk + keyRank[i]]++] = i;
    // c[g] is now the end of group g
    const ends = this.groupEnds;
    ends.set(c.subarray(0, groups));
    const tmp = this.sortB;
    for (let g = 0; g < groups; g++) {
      const t = (g / nk) | 0;
      if (t !== ValueType.Str && t !== ValueType.Bytes && t !== ValueType.Bool) continue;
      const from = g === 0 ? 0 : ends[g - 1], to = ends[g];
      if (to - from < 2) continue;
      let lo = valRank[out[from]], hi = lo;
      for (let k = from + 1; k < to; k++) {
        const v = valRank[out[k]];
        if (v < lo) lo = v;
        else if (v > hi) hi = v;
      }
      if (lo === hi) continue;
      const range = hi - lo + 1;
      c.fill(0, 0, range + 1);
      for (let k = from; k < to; k++) c[valRank[out[k]] - lo + 1]++;
      for (let v = 1; v <= range; v++) c[v] += c[v - 1];
      for (let k = from; k < to; k++) {
        const r = out[k];
        tmp[from + c[valRank[r] - lo]++] = r;
      }
      out.set(tmp.subarray(from, to), from);
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
    // Required columns are written for every row; value columns start all-null and get the rows
    // of their type.
    this.parentCol.reserve(n, true);
    this.keyCol.reserve(n, true);
    this.typeCol.reserve(n, true);
    this.strCol.bulk(n);
    this.intCol.bulk(n);
    this.doubleCol.bulk(n);
    this.boolCol.bulk(n);
    this.bytesCol.bulk(n);
    this.serCol.bulk(n);
    const rowsOfType = this.rowsOfType;
    rowsOfType.fill(0);
    this.writeRows(order, n, rowsOfType);
    this.strCol.nullCount = n - rowsOfType[ValueType.Str];
    this.intCol.nullCount = n - rowsOfType[ValueType.Int];
    this.doubleCol.nullCount = n - rowsOfType[ValueType.Double];
    this.boolCol.nullCount = n - rowsOfType[ValueType.Bool];
    this.bytesCol.nullCount = n - rowsOfType[ValueType.Bytes];
    const payload = this.table.finish();
    this.clear();
    return payload;
  }

  /** Rows written per value type by writeRows(). */
  private readonly rowsOfType = new Uint32Array(8);

  // The row loop is a method of its own that ends with the loop: on a large first batch V8
  // optimizes it on-stack mid-loop, and code after the loop would then have no type feedback;
  // in one function with finish() that optimized code deoptimized at every loop exit, batch
  // after batch, and finish() never got a regular optimized version.
  private writeRows(order: Uint32Array, n: number, rowsOfType: Uint32Array): void {
    const parentOut = this.parentCol.num, keyOut = this.keyCol.idx, typeOut = this.typeCol.num;
    const strOut = this.strCol.idx, strValid = this.strCol.valid;
    const intOut = new Int32Array(this.intCol.big.buffer, this.intCol.big.byteOffset, 2 * n), intValid = this.intCol.valid;
    const dblOut = this.doubleCol.num, dblValid = this.doubleCol.valid;
    const boolOut = this.boolCol.bits, boolValid = this.boolCol.valid;
    const bytesOut = this.bytesCol.idx, bytesValid = this.bytesCol.valid;
    const type = this.type, keyRank = this.keyRank, valRank = this.valRank, parent = this.parent;
    const ih = this.intHalves, dbl = this.doubles;
    let prevGroup = -1, prevRank = -1, prevParent = 0, prevRow = -1;
    for (let i = 0; i < n; i++) {
      const r = order[i];
      const t = type[r];
      const kr = keyRank[r];
      const group = t * 0x1000000 + kr;
      const rank = valRank[r];
      const p = parent[r];
      // Map, slice and empty never compare equal on the decoding side; NaN !== NaN does the rest.
      let same = false;
      if (group === prevGroup && rank === prevRank) {
        if (t === ValueType.Str || t === ValueType.Bytes || t === ValueType.Bool) same = true;
        else if (t === ValueType.Int) same = ih[2 * r] === ih[2 * prevRow] && ih[2 * r + 1] === ih[2 * prevRow + 1];
        else if (t === ValueType.Double) same = dbl[r] === dbl[prevRow];
      }
      parentOut[i] = same ? p - prevParent : p;
      prevGroup = group;
      prevRank = rank;
      prevParent = p;
      prevRow = r;
      keyOut[i] = kr;
      typeOut[i] = t;
      rowsOfType[t]++;
      switch (t) {
        case ValueType.Str:
          strOut[i] = rank;
          strValid[i] = 1;
          break;
        case ValueType.Int:
          intOut[2 * i] = ih[2 * r];
          intOut[2 * i + 1] = ih[2 * r + 1];
          intValid[i] = 1;
          break;
        case ValueType.Double:
          dblOut[i] = dbl[r];
          dblValid[i] = 1;
          break;
        case ValueType.Bool:
          boolOut[i] = rank;
          boolValid[i] = 1;
          break;
        case ValueType.Bytes:
          bytesOut[i] = rank;
          bytesValid[i] = 1;
          break;
        case ValueType.Map:
        case ValueType.Slice:
          this.serCol.setBytesAt(i, cborEncode(this.complex.get(r)!));
          break;
      }
    }
  }

  /** Drops staged rows (after a failed batch); finish() does this itself. */
  discard(): void {
    this.clear();
  }

  private clear(): void {
    this.complex.clear();
    this.n = 0;
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


/** The attribute table's columns with the typed views the common layouts allow (null otherwise). */
class AttrCols {
  readonly keyDict: Column | null;
  readonly strDict: Column | null;
  readonly typeVals: ArrayLike<number> | null;
  readonly parentVals: ArrayLike<number> | null;
  /** Plain 64-bit int column as 32-bit halves (little endian) and as signed int64. */
  readonly intHalves: Int32Array | null = null;
  readonly intSigned: BigInt64Array | null = null;
  readonly dblVals: Float64Array | null;
  constructor(
    readonly parent: Column,
    readonly key: Column,
    readonly type: Column,
    readonly str: Column | undefined,
    readonly int: Column | undefined,
    readonly dbl: Column | undefined,
    readonly bool: Column | undefined,
    readonly bytes: Column | undefined,
    readonly ser: Column | undefined,
    readonly what: string,
  ) {
    this.keyDict = key.indices !== null && key.valueType.typeId === Type.Utf8 ? key : null;
    this.strDict = str && str.indices !== null && str.valueType.typeId === Type.Utf8 ? str : null;
    this.typeVals = type.indices === null && type.type.typeId === Type.Int && (type.type as any).bitWidth <= 32 ? (type.values as ArrayLike<number>) : null;
    this.parentVals =
      parent.indices === null && parent.type.typeId === Type.Int && (parent.type as any).bitWidth <= 32 ? (parent.values as ArrayLike<number>) : null;
    if (int && int.indices === null && int.type.typeId === Type.Int && (int.type as any).bitWidth === 64) {
      const v = int.values as BigInt64Array | BigUint64Array;
      this.intHalves = new Int32Array(v.buffer, v.byteOffset, 2 * v.length);
      this.intSigned = new BigInt64Array(v.buffer, v.byteOffset, v.length);
    }
    this.dblVals = dbl && dbl.indices === null && dbl.values instanceof Float64Array ? dbl.values : null;
  }

  keyAt(i: number): string {
    const d = this.keyDict;
    return d !== null ? ((d.dict![d.indices![i]] as string | null) ?? '') : colStr(this.key, i);
  }

  typeAt(i: number): number {
    return this.typeVals !== null ? this.typeVals[i] : colUint(this.type, i);
  }

  valueAt(t: number, i: number): AnyValue {
    if (t === ValueType.Str) {
      const d = this.strDict;
      if (d !== null) return d.isValid(i) ? ((d.dict![d.indices![i]] as string | null) ?? '') : '';
    } else if (t === ValueType.Int) {
      const h = this.intHalves;
      if (h !== null) {
        if (!this.int!.isValid(i)) return 0n;
        const lo = h[2 * i], hi = h[2 * i + 1];
        return hi === 0 && lo >= 0 && lo < SMALL_BIGINTS ? smallBigInt(lo) : this.intSigned![i];
      }
    }
    return anyValueAt(t, i, this.str, this.int, this.dbl, this.bool, this.bytes, this.ser, this.what);
  }

  /** Whether rows i and j of type t hold equal values (the quasi-delta test), without allocating on the common layouts. */
  sameValue(t: number, i: number, j: number): boolean {
    switch (t) {
      case ValueType.Str: {
        const d = this.strDict;
        if (d !== null) {
          const vi = d.isValid(i), vj = d.isValid(j);
          if (vi && vj && d.indices![i] === d.indices![j]) return true;
          return this.valueAt(t, i) === this.valueAt(t, j);
        }
        break;
      }
      case ValueType.Int: {
        const h = this.intHalves;
        if (h !== null) {
          const c = this.int!;
          const vi = c.isValid(i), vj = c.isValid(j);
          const loI = vi ? h[2 * i] : 0, hiI = vi ? h[2 * i + 1] : 0;
          const loJ = vj ? h[2 * j] : 0, hiJ = vj ? h[2 * j + 1] : 0;
          return loI === loJ && hiI === hiJ;
        }
        break;
      }
      case ValueType.Double: {
        const d = this.dblVals;
        if (d !== null) {
          const c = this.dbl!;
          return (c.isValid(i) ? d[i] : 0) === (c.isValid(j) ? d[j] : 0);
        }
        break;
      }
      case ValueType.Empty:
      case ValueType.Map:
      case ValueType.Slice:
        return false;
    }
    return sameValue(t, this.valueAt(t, i), this.valueAt(t, j));
  }
}

// Per-row working arrays of decodeAttrs, kept between calls (decoding is synchronous and never
// re-entered), so a batch of 100k attribute rows does not allocate ~2.4 MB of them each time.
// Batches beyond SCRATCH_ROWS rows get arrays of their own, so at most ~3 MB stays pinned.
const SCRATCH_ROWS = 1 << 17;
let scratchIds = new Float64Array(1024);
let scratchHead = new Int32Array(1024);
let scratchPerm = new Uint32Array(1024);
let scratchKv: (KeyValue | undefined)[] = new Array(1024);
/** Rows of scratchKv still filled by a batch that threw midway. */
let scratchKvDirty = 0;

/** Attributes grouped by (absolute) parent id. */
export function decodeAttrs(batch: DecodedBatch, what: string): AttrLists {
  const cols = batch.columns;
  const c = new AttrCols(
    reqColumn(cols, 'parent_id', what),
    reqColumn(cols, 'key', what),
    reqColumn(cols, 'type', what),
    optColumn(cols, 'str'),
    optColumn(cols, 'int'),
    optColumn(cols, 'double'),
    optColumn(cols, 'bool'),
    optColumn(cols, 'bytes'),
    optColumn(cols, 'ser'),
    what,
  );
  const n = batch.length;
  // Pass 1 resolves the quasi-delta ids from the raw columns (no objects); the lists are then
  // sized exactly and pass 2 creates each KeyValue straight into its parent's list.
  if (n > scratchIds.length && n <= SCRATCH_ROWS) {
    const cap = Math.min(SCRATCH_ROWS, Math.max(n, scratchIds.length * 2));
    scratchIds = new Float64Array(cap);
    scratchHead = new Int32Array(cap);
    scratchPerm = new Uint32Array(cap);
    scratchKv = new Array(cap);
    scratchKvDirty = 0;
  }
  const own = n > scratchIds.length;
  const ids = own ? new Float64Array(n) : scratchIds;
  // Rows are sorted by (type, key, value), so equal attributes sit in runs: each row's run head.
  // Rows of a run with a scalar value share one KeyValue (see decode.ts on sharing).
  const head = own ? new Int32Array(n) : scratchHead;
  const parentVals = c.parentVals;
  let prevKey: string | null = null;
  let prevType = -1;
  let prevRow = -1;
  let prevParent = 0;
  let maxDense = -1;
  // Keys as dictionary indices: an equal index is an equal key, whatever the dictionary holds.
  const keyDict = c.keyDict, keyIdx = keyDict !== null ? keyDict.indices! : null;
  let prevKeyIdx = -1;
  for (let i = 0; i < n; i++) {
    let k: string | null = prevKey;
    if (keyIdx === null || keyIdx[i] !== prevKeyIdx) {
      k = c.keyAt(i);
      if (keyIdx !== null) prevKeyIdx = keyIdx[i];
    }
    const t = c.typeAt(i);
    const raw = parentVals !== null ? parentVals[i] : colUint(c.parent, i);
    let id: number;
    if (prevKey === k && prevType === t && c.sameValue(t, i, prevRow)) {
      id = (prevParent + raw) >>> 0;
      head[i] = t === ValueType.Bytes ? i : head[prevRow];
    } else {
      id = raw;
      prevKey = k;
      prevType = t;
      head[i] = i;
    }
    prevRow = i;
    prevParent = id;
    ids[i] = id;
    if (id >= 0 && id < DENSE_IDS && id > maxDense) maxDense = id;
  }
  // Rows in parent order (counting sort by id): each list is then filled in one go and a
  // parent's KeyValues are allocated side by side; the column reads become a few sequential streams.
  const counts = new Uint32Array(maxDense + 2);
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (id >= 0 && id < DENSE_IDS) counts[id + 1]++;
  }
  for (let id = 1; id <= maxDense + 1; id++) counts[id] += counts[id - 1];
  const denseRows = counts[maxDense + 1];
  const perm = own ? new Uint32Array(denseRows) : scratchPerm;
  const next = counts.slice(0, maxDense + 1);
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (id >= 0 && id < DENSE_IDS) perm[next[id]++] = i;
  }
  const dense: (KeyValue[] | undefined)[] = new Array(maxDense + 1);
  const byHead: (KeyValue | undefined)[] = own ? new Array(n) : scratchKv;
  if (!own) {
    // a batch that threw below (a bad cell) left its entries: the next must not see them
    if (scratchKvDirty > 0) scratchKv.fill(undefined, 0, scratchKvDirty);
    scratchKvDirty = n;
  }
  for (let id = 0; id <= maxDense; id++) {
    const from = counts[id], to = counts[id + 1];
    if (from === to) continue;
    const list: KeyValue[] = new Array(to - from);
    for (let k = from; k < to; k++) {
      const r = perm[k];
      const h = head[r];
      let kv = byHead[h];
      if (kv === undefined) {
        kv = { key: c.keyAt(r), value: c.valueAt(c.typeAt(r), r) };
        // Map and slice values never start a run (sameValue is false for them), Bytes never joins one
        if (h !== r || (r + 1 < n && head[r + 1] === r)) byHead[h] = kv;
      }
      list[k - from] = kv;
    }
    dense[id] = list;
  }
  if (!own) {
    byHead.fill(undefined, 0, n); // nor keep them alive
    scratchKvDirty = 0;
  }
  // Rows of hostile ids (negative, or too large to index) keep their row order and still decode,
  // so a bad cell fails the batch wherever it sits.
  let sparse: Map<number, KeyValue[]> | null = null;
  if (denseRows < n) {
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      if (id >= 0 && id < DENSE_IDS) continue;
      const kv: KeyValue = { key: c.keyAt(i), value: c.valueAt(c.typeAt(i), i) };
      if (id < 0) continue;
      sparse ??= new Map();
      let list = sparse.get(id);
      if (list === undefined) sparse.set(id, (list = []));
      list.push(kv);
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
