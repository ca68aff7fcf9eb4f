// Arrow IPC stream framing for OTAP payloads.
//
// apache-arrow's RecordBatchStreamWriter/Reader work on whole byte streams and Vector objects; OTAP
// needs one long-lived IPC stream per (payload type, schema_id) whose messages arrive one payload at
// a time, exactly one RecordBatch per payload, delta dictionaries, ZSTD body compression with a
// decompression bound, and column access without materialising Vectors. So this module does the
// framing, body assembly, compression and buffer slicing itself and uses apache-arrow only for the
// flatbuffer metadata (Message.encode/decode) and the Schema/Field/DataType classes.
import {
  Message,
  RecordBatch as RecordBatchHeader,
  DictionaryBatch as DictionaryBatchHeader,
  FieldNode,
  BufferRegion,
  BodyCompression,
} from 'apache-arrow/ipc/metadata/message';
import { Schema, Field, DataType, Type, MessageHeader, CompressionType, Int32 } from 'apache-arrow';
import { zstdCompressPrefixed, zstdDecompressBounded } from './zstd-sync.ts';
import { plainBytes } from './messages.ts';

export class OtapDecodeError extends Error {
  constructor(
    message: string,
    readonly resourceExhausted = false,
    /**
     * The gRPC stream cannot go on: its retained state (dictionaries) hit a limit. Rolling the
     * batch back is not enough there, since the sender's encoder already moved on and later
     * deltas would index entries we never kept; the server ends the stream instead.
     */
    readonly streamFatal = false,
  ) {
    super(message);
    this.name = 'OtapDecodeError';
  }
}

// ------------------------------------------------------------------ writer

/** Column data as laid out in an IPC body: one FieldNode per field (depth first) and its buffers. */
export interface ColumnParts {
  nodes: FieldNode[];
  buffers: Uint8Array[];
}

export interface DictionaryPart {
  id: number;
  length: number;
  isDelta: boolean;
  parts: ColumnParts;
}

export type IpcCompression = 'zstd' | 'none';

const CONTINUATION = 0xffffffff;
const EMPTY = new Uint8Array(0);

function pad8(n: number): number {
  return (n + 7) & ~7;
}

/** Accumulates the frames of one payload and concatenates them at the end. */
class FrameSink {
  chunks: Uint8Array[] = [];
  size = 0;
  push(b: Uint8Array): void {
    if (b.byteLength === 0) return;
    this.chunks.push(b);
    this.size += b.byteLength;
  }
  take(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    this.chunks = [];
    this.size = 0;
    return out;
  }
}

function writeMessage(sink: FrameSink, metadata: Uint8Array, body: Uint8Array[] | null): void {
  const prefixed = pad8(metadata.byteLength + 8);
  const head = new Uint8Array(prefixed);
  const dv = new DataView(head.buffer);
  dv.setUint32(0, CONTINUATION, true);
  dv.setInt32(4, prefixed - 8, true);
  head.set(metadata, 8);
  sink.push(head);
  if (body) for (const b of body) sink.push(b);
}

/**
 * Lays out body buffers (8-byte aligned), compressing each with ZSTD when asked. Per the Arrow
 * spec a compressed buffer is an int64 uncompressed length followed by the frame; -1 means the
 * buffer is stored raw because compression did not make it smaller.
 */
function assembleBody(buffers: Uint8Array[], compression: IpcCompression, level: number) {
  const regions: BufferRegion[] = [];
  const out: Uint8Array[] = [];
  let offset = 0;
  for (const raw of buffers) {
    if (raw.byteLength === 0) {
      regions.push(new BufferRegion(offset, 0));
      continue;
    }
    let stored: Uint8Array;
    if (compression === 'zstd') {
      const z = zstdCompressPrefixed(raw, level);
      if (z !== null) stored = z;
      else {
        stored = new Uint8Array(8 + raw.byteLength);
        new DataView(stored.buffer).setBigInt64(0, -1n, true);
        stored.set(raw, 8);
      }
    } else {
      stored = raw;
    }
    regions.push(new BufferRegion(offset, stored.byteLength));
    out.push(stored);
    const padded = pad8(stored.byteLength);
    if (padded > stored.byteLength) out.push(new Uint8Array(padded - stored.byteLength));
    offset += padded;
  }
  return { regions, out, bodyLength: offset };
}

/** One IPC stream: the schema message goes out with the first payload, dictionaries as deltas after. */
export class IpcStreamWriter {
  private started = false;
  private readonly sink = new FrameSink();
  private readonly bodyCompression: BodyCompression | null;

  constructor(
    readonly schema: Schema,
    private readonly compression: IpcCompression = 'zstd',
    private readonly level = 3,
  ) {
    this.bodyCompression = compression === 'zstd' ? new BodyCompression(CompressionType.ZSTD) : null;
  }

  /** Bytes of one OTAP payload: [schema] + dictionary batches + exactly one record batch. */
  writePayload(length: number, columns: ColumnParts, dictionaries: DictionaryPart[]): Uint8Array {
    if (!this.started) {
      writeMessage(this.sink, Message.encode(Message.from(this.schema)), null);
      this.started = true;
    }
    for (const d of dictionaries) {
      const { regions, out, bodyLength } = assembleBody(d.parts.buffers, this.compression, this.level);
      const rb = new RecordBatchHeader(d.length, d.parts.nodes, regions, this.bodyCompression);
      const header = new DictionaryBatchHeader(rb, d.id, d.isDelta);
      writeMessage(this.sink, Message.encode(Message.from(header, bodyLength)), out);
    }
    const { regions, out, bodyLength } = assembleBody(columns.buffers, this.compression, this.level);
    const rb = new RecordBatchHeader(length, columns.nodes, regions, this.bodyCompression);
    writeMessage(this.sink, Message.encode(Message.from(rb, bodyLength)), out);
    return this.sink.take();
  }
}


// ------------------------------------------------------------------ metadata sanity check
// apache-arrow decodes flatbuffer vectors with Array.from({ length }) before any bounds check, so a
// corrupted length (2^31 fields, say) would allocate without limit. This walk checks every vector
// length and offset the decoder will follow against the metadata size first.

class FbCheck {
  private visited = 0;
  private readonly dv: DataView;
  constructor(private readonly b: Uint8Array) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  private fail(what: string): never {
    throw new OtapDecodeError(`invalid IPC message metadata (${what})`);
  }
  private u32(pos: number): number {
    if (pos < 0 || pos + 4 > this.b.length) this.fail('offset out of range');
    return this.dv.getUint32(pos, true);
  }
  /** Position of field `i` of the table at `t`, or 0 when absent. */
  private field(t: number, i: number): number {
    const vt = t - this.dv.getInt32(this.checkPos(t, 4), true);
    const vtSize = this.dv.getUint16(this.checkPos(vt, 4), true);
    if (4 + 2 * i + 2 > vtSize) return 0;
    const off = this.dv.getUint16(this.checkPos(vt + 4 + 2 * i, 2), true);
    return off ? this.checkPos(t + off, 1) : 0;
  }
  private checkPos(pos: number, n: number): number {
    if (pos < 0 || pos + n > this.b.length) this.fail('offset out of range');
    return pos;
  }
  private table(fieldPos: number): number {
    return this.checkPos(fieldPos + this.u32(fieldPos), 4);
  }
  /** Element count of the vector at field position, bounded by the bytes available. */
  private vector(fieldPos: number, elemSize: number): [number, number] {
    const v = this.checkPos(fieldPos + this.u32(fieldPos), 4);
    const n = this.u32(v);
    if (n * elemSize > this.b.length - v - 4) this.fail(`vector of ${n} elements`);
    return [v + 4, n];
  }
  private tables(fieldPos: number, each: (t: number) => void): void {
    if (!fieldPos) return;
    const [start, n] = this.vector(fieldPos, 4);
    for (let k = 0; k < n; k++) each(this.table(start + 4 * k));
  }
  private string(fieldPos: number): void {
    if (fieldPos) this.vector(fieldPos, 1);
  }
  private keyValues(fieldPos: number): void {
    this.tables(fieldPos, (kv) => {
      this.string(this.field(kv, 0));
      this.string(this.field(kv, 1));
    });
  }
  private fieldTable(t: number, depth: number): void {
    if (depth > 32) this.fail('fields nested too deeply');
    if (++this.visited > 4096) this.fail('too many fields');
    this.string(this.field(t, 0));
    const typeType = this.field(t, 2), type = this.field(t, 3);
    if (typeType && type && this.b[typeType] === 14 /* Union */) {
      const ids = this.field(this.table(type), 1);
      if (ids) this.vector(ids, 4);
    }
    const dict = this.field(t, 4);
    if (dict) {
      const d = this.table(dict);
      const idx = this.field(d, 1);
      if (idx) this.table(idx);
    }
    this.tables(this.field(t, 5), (c) => this.fieldTable(c, depth + 1));
    this.keyValues(this.field(t, 6));
  }
  private recordBatch(t: number): void {
    const nodes = this.field(t, 1);
    if (nodes) this.vector(nodes, 16);
    const bufs = this.field(t, 2);
    if (bufs) this.vector(bufs, 16);
    const comp = this.field(t, 3);
    if (comp) this.table(comp);
    const variadic = this.field(t, 4);
    if (variadic) this.vector(variadic, 8);
  }
  message(): void {
    const root = this.table(0);
    const headerType = this.field(root, 1);
    const header = this.field(root, 2);
    this.keyValues(this.field(root, 4));
    if (!header || !headerType) this.fail('no header');
    const h = this.table(header);
    switch (this.b[headerType]) {
      case MessageHeader.Schema:
        this.tables(this.field(h, 1), (f) => this.fieldTable(f, 0));
        this.keyValues(this.field(h, 2));
        if (this.field(h, 3)) this.vector(this.field(h, 3), 8);
        break;
      case MessageHeader.RecordBatch:
        this.recordBatch(h);
        break;
      case MessageHeader.DictionaryBatch: {
        const data = this.field(h, 1);
        if (data) this.recordBatch(this.table(data));
        break;
      }
      default:
        this.fail(`message header type ${this.b[headerType]}`);
    }
  }
}

/** Decodes IPC message metadata after checking it cannot make the decoder allocate without bound. */
function decodeMessage(meta: Uint8Array): Message {
  try {
    new FbCheck(meta).message();
    const m = Message.decode(meta);
    // Header decoding is lazy; force it here so failures surface as decode errors.
    m.header();
    return m;
  } catch (e) {
    if (e instanceof OtapDecodeError) throw e;
    throw new OtapDecodeError(`invalid IPC message metadata: ${(e as Error).message}`);
  }
}

// ------------------------------------------------------------------ reader

/** Decoded values of one dictionary, appended to by delta batches. */
export type DictValue = string | bigint | number | Uint8Array | boolean | null;

/**
 * A column of a received record batch: typed views over the (decompressed) body. Dictionary
 * columns carry `indices` and the stream's decoded dictionary `dict`.
 */
export class Column {
  validity: Uint8Array | null = null;
  values: ArrayLike<number> | ArrayLike<bigint> | null = null;
  offsets: Int32Array | null = null;
  data: Uint8Array | null = null;
  /** A private copy of `data` that decoded byte values are views into (made on first use). */
  owned: Uint8Array | null = null;
  width = 0;
  children: Column[] = [];
  childByName = new Map<string, Column>();
  indices: ArrayLike<number> | null = null;
  dict: DictValue[] | null = null;
  constructor(
    readonly name: string,
    readonly type: DataType,
    readonly length: number,
    readonly nullCount: number,
  ) {}

  /** The value type (the dictionary's value type for dictionary columns). */
  get valueType(): DataType {
    return this.type.typeId === Type.Dictionary ? (this.type as any).dictionary : this.type;
  }

  isValid(i: number): boolean {
    const v = this.validity;
    if (v !== null && (v[i >> 3] & (1 << (i & 7))) === 0) return false;
    return true;
  }

  child(name: string): Column | undefined {
    return this.childByName.get(name);
  }
}

export interface DecodedBatch {
  schemaId: string;
  length: number;
  columns: Map<string, Column>;
}

export interface ReaderLimits {
  /** Upper bound of decompressed body bytes for one payload. */
  maxPayloadBytes: number;
  /** Upper bound of dictionary entries per dictionary id for the life of one IPC stream. */
  maxDictionaryEntries: number;
}

/**
 * The retained-dictionary byte budget a payload is checked against: `max` for the whole gRPC
 * stream, of which `others` is held by its other IPC streams.
 */
export interface DictionaryByteLimit {
  others: number;
  max: number;
  /** The setting that sets `max`, named in the error. */
  setting?: string;
}

// Estimated heap cost of one dictionary entry beyond its value bytes: the array slot plus a V8
// string / bigint header. Byte values are each a Uint8Array with its own ArrayBuffer, far larger.
const DICT_ENTRY_OVERHEAD = 32;
const DICT_BYTES_ENTRY_OVERHEAD = 160;

const int32Type = new Int32();
const FIXED_WIDTH_BYTES: Record<number, number> = {};

function fixedWidthOf(t: DataType): number {
  switch (t.typeId) {
    case Type.Int:
      return (t as any).bitWidth / 8;
    case Type.Float:
      return (t as any).precision === 2 ? 8 : (t as any).precision === 1 ? 4 : 2;
    case Type.Timestamp:
    case Type.Duration:
    case Type.Date:
      return 8;
    case Type.Time:
      return (t as any).bitWidth / 8;
    default:
      return FIXED_WIDTH_BYTES[t.typeId] ?? 0;
  }
}

function typedView(t: DataType, bytes: Uint8Array, length: number): ArrayLike<number> | ArrayLike<bigint> {
  const width = fixedWidthOf(t);
  if (bytes.byteLength < width * length) throw new OtapDecodeError(`buffer too short for ${length} values of ${t}`);
  // Copy when unaligned for the element type (decompressed buffers are fresh and aligned; a raw
  // body is wherever the payload sits in the gRPC message). Only the bytes the column reads are
  // copied, never the rest of the region.
  const src = (bytes.byteOffset & (width - 1)) === 0 ? bytes : bytes.slice(0, width * length);
  const buf = src.buffer, off = src.byteOffset;
  switch (t.typeId) {
    case Type.Int: {
      const signed = (t as any).isSigned as boolean;
      switch (width) {
        case 1:
          return signed ? new Int8Array(buf, off, length) : new Uint8Array(buf, off, length);
        case 2:
          return signed ? new Int16Array(buf, off, length) : new Uint16Array(buf, off, length);
        case 4:
          return signed ? new Int32Array(buf, off, length) : new Uint32Array(buf, off, length);
        default:
          return signed ? new BigInt64Array(buf, off, length) : new BigUint64Array(buf, off, length);
      }
    }
    case Type.Float:
      if (width === 8) return new Float64Array(buf, off, length);
      if (width === 4) return new Float32Array(buf, off, length);
      throw new OtapDecodeError('half floats are not supported');
    case Type.Timestamp:
    case Type.Duration:
    case Type.Date:
      return new BigInt64Array(buf, off, length);
    default:
      throw new OtapDecodeError(`unsupported fixed-width type ${t}`);
  }
}

/** Reads body buffers and field nodes in depth-first order, with bounds checks. */
class BodyCursor {
  nodeIndex = 0;
  bufferIndex = 0;
  constructor(
    private readonly nodes: FieldNode[],
    private readonly buffers: Uint8Array[],
    /** Buffers decompressed into memory of their own (decoded byte values may view them without a copy). */
    private readonly own: Set<Uint8Array> | null = null,
  ) {}
  owns(b: Uint8Array): boolean {
    return this.own !== null && this.own.has(b);
  }
  node(): FieldNode {
    const n = this.nodes[this.nodeIndex++];
    if (!n) throw new OtapDecodeError('record batch has fewer field nodes than the schema has fields');
    return n;
  }
  buffer(): Uint8Array {
    const b = this.buffers[this.bufferIndex++];
    if (!b) throw new OtapDecodeError('record batch has fewer buffers than the schema needs');
    return b;
  }
}

function readColumn(field: Field, cur: BodyCursor, dicts: Map<number, DictValue[]>): Column {
  const node = cur.node();
  const length = Number(node.length);
  const nullCount = Number(node.nullCount);
  if (!(length >= 0) || length > 1 << 28) throw new OtapDecodeError(`field ${field.name}: bad length ${length}`);
  const col = new Column(field.name, field.type, length, nullCount);
  const validityBuf = cur.buffer();
  if (nullCount > 0 && validityBuf.byteLength > 0) {
    if (validityBuf.byteLength < (length + 7) >> 3) throw new OtapDecodeError(`field ${field.name}: validity bitmap too short`);
    col.validity = validityBuf;
  }
  let t: DataType = field.type;
  if (t.typeId === Type.Dictionary) {
    const dt = t as any;
    const values = dicts.get(Number(dt.id));
    if (!values) throw new OtapDecodeError(`field ${field.name}: dictionary ${dt.id} was never sent`);
    const idx = typedView(dt.indices, cur.buffer(), length) as ArrayLike<number>;
    if (typeof (idx as any)[0] === 'bigint') throw new OtapDecodeError(`field ${field.name}: 64-bit dictionary indices`);
    const limit = values.length;
    const validity = col.validity;
    for (let i = 0; i < length; i++) {
      const x = idx[i];
      if ((x < 0 || x >= limit) && (validity === null || (validity[i >> 3] & (1 << (i & 7))) !== 0)) {
        throw new OtapDecodeError(`field ${field.name}: dictionary index ${x} out of range (${limit})`);
      }
    }
    col.indices = idx;
    col.dict = values;
    return col;
  }
  readValueBuffers(col, t, cur, dicts);
  return col;
}

function readValueBuffers(col: Column, t: DataType, cur: BodyCursor, dicts: Map<number, DictValue[]>): void {
  const length = col.length;
  switch (t.typeId) {
    case Type.Null:
      return;
    case Type.Bool: {
      const b = cur.buffer();
      if (b.byteLength < (length + 7) >> 3) throw new OtapDecodeError(`field ${col.name}: bool buffer too short`);
      col.data = b;
      return;
    }
    case Type.Int:
    case Type.Float:
    case Type.Timestamp:
    case Type.Duration:
    case Type.Date:
    case Type.Time:
      col.values = typedView(t, cur.buffer(), length);
      return;
    case Type.Utf8:
    case Type.Binary: {
      const offs = cur.buffer();
      const data = cur.buffer();
      if (length > 0) {
        const o = typedView(int32Type, offs, length + 1) as Int32Array;
        for (let i = 0; i < length; i++) if (o[i + 1] < o[i]) throw new OtapDecodeError(`field ${col.name}: offsets decrease`);
        if (o[0] < 0 || o[length] > data.byteLength) throw new OtapDecodeError(`field ${col.name}: offsets beyond data`);
        col.offsets = o;
        // Only the bytes the offsets reach: a private copy made later (colBytes) copies no more.
        col.data = data.subarray(0, o[length]);
      } else {
        col.offsets = new Int32Array(1);
        col.data = data.subarray(0, 0);
      }
      return;
    }
    case Type.FixedSizeBinary: {
      const w = (t as any).byteWidth as number;
      const data = cur.buffer();
      if (data.byteLength < w * length) throw new OtapDecodeError(`field ${col.name}: fixed-size binary buffer too short`);
      col.width = w;
      col.data = data.subarray(0, w * length);
      if (cur.owns(data)) col.owned = col.data;
      return;
    }
    case Type.Struct: {
      for (const f of t.children) {
        const c = readColumn(f, cur, dicts);
        if (c.length < length) throw new OtapDecodeError(`field ${col.name}.${f.name}: shorter than its struct`);
        col.children.push(c);
        col.childByName.set(f.name, c);
      }
      return;
    }
    case Type.List: {
      const offs = cur.buffer();
      const o = typedView(int32Type, offs, length + 1) as Int32Array;
      const c = readColumn(t.children[0], cur, dicts);
      if (length > 0) {
        for (let i = 0; i < length; i++) if (o[i + 1] < o[i]) throw new OtapDecodeError(`field ${col.name}: offsets decrease`);
        if (o[0] < 0 || o[length] > c.length) throw new OtapDecodeError(`field ${col.name}: list offsets beyond child`);
      }
      col.offsets = o;
      col.children.push(c);
      return;
    }
    default:
      throw new OtapDecodeError(`field ${col.name}: unsupported Arrow type ${t}`);
  }
}


/**
 * Bytes the decoded values of a dictionary batch will retain, from its offsets and widths alone:
 * known before any value is decoded, so a batch over the limit allocates nothing.
 */
function dictionaryBatchBytes(col: Column): number {
  const n = col.length;
  switch (col.type.typeId) {
    case Type.Utf8:
      // UTF-8 length is at least V8's one- or two-byte string size for the same text.
      return n * DICT_ENTRY_OVERHEAD + (n > 0 ? col.offsets![n] - col.offsets![0] : 0);
    case Type.Binary:
      return n * DICT_BYTES_ENTRY_OVERHEAD + (n > 0 ? col.offsets![n] - col.offsets![0] : 0);
    case Type.FixedSizeBinary:
      return n * (DICT_BYTES_ENTRY_OVERHEAD + col.width);
    default:
      return n * DICT_ENTRY_OVERHEAD;
  }
}

function decodeDictionaryValues(col: Column, out: DictValue[], limit: number): void {
  if (out.length + col.length > limit) {
    throw new OtapDecodeError(`dictionary exceeds ${limit} entries (max_dictionary_entries)`, true, true);
  }
  for (let i = 0; i < col.length; i++) out.push(col.isValid(i) ? valueAt(col, i) : null);
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Generic cell read; hot paths in the table decoders use the typed accessors instead. */
export function valueAt(col: Column, i: number): DictValue {
  if (col.indices !== null) return col.dict![col.indices[i]];
  const t = col.type;
  switch (t.typeId) {
    case Type.Utf8:
      return utf8.decode(col.data!.subarray(col.offsets![i], col.offsets![i + 1]));
    case Type.Binary:
      return col.data!.slice(col.offsets![i], col.offsets![i + 1]);
    case Type.FixedSizeBinary:
      return col.data!.slice(i * col.width, (i + 1) * col.width);
    case Type.Bool:
      return (col.data![i >> 3] & (1 << (i & 7))) !== 0;
    case Type.Int:
    case Type.Float:
    case Type.Timestamp:
    case Type.Duration:
      return (col.values as any)[i];
    default:
      throw new OtapDecodeError(`field ${col.name}: no scalar value for ${t}`);
  }
}

/** Rollback record of one dictionary batch: id, previous values and their length and bytes. */
type DictUndo = [number, DictValue[] | undefined, number, number];

/**
 * The receiving end of one IPC stream (one payload type and schema_id within a gRPC stream).
 * Keeps the schema and the dictionaries that later payloads extend with deltas.
 */
export class IpcStreamReader {
  schema: Schema | null = null;
  private readonly dicts = new Map<number, DictValue[]>();
  /** Estimated retained bytes per dictionary id, and their sum. */
  private readonly dictBytesById = new Map<number, number>();
  private dictBytes = 0;

  constructor(
    readonly schemaId: string,
    private readonly limits: ReaderLimits,
  ) {}

  /** Estimated bytes this IPC stream's dictionaries retain (values plus per-entry overhead). */
  get dictionaryBytes(): number {
    return this.dictBytes;
  }

  /**
   * Decodes one payload: schema (first only), dictionary batches, then exactly one record batch.
   * `budget` bounds the decompressed bytes; the bytes used are returned. `dictLimit` bounds the
   * bytes the dictionaries retain afterwards (default: no bound beyond the entry count). On
   * failure the stream state (schema, dictionaries) is rolled back so the next payload of this
   * stream still decodes.
   */
  readPayload(
    bytes: Uint8Array,
    budget = this.limits.maxPayloadBytes,
    dictLimit?: DictionaryByteLimit,
  ): { batch: DecodedBatch; used: number } {
    bytes = plainBytes(bytes);
    const hadSchema = this.schema !== null;
    const bytesBefore = this.dictBytes;
    const undo: DictUndo[] = [];
    try {
      return this.readPayloadUnsafe(bytes, Math.min(budget, this.limits.maxPayloadBytes), undo, dictLimit);
    } catch (e) {
      if (!hadSchema) this.schema = null;
      for (let i = undo.length - 1; i >= 0; i--) {
        const [id, prev, len, prevBytes] = undo[i];
        if (prev === undefined) {
          this.dicts.delete(id);
          this.dictBytesById.delete(id);
        } else {
          prev.length = len;
          this.dicts.set(id, prev);
          this.dictBytesById.set(id, prevBytes);
        }
      }
      this.dictBytes = bytesBefore;
      throw e instanceof OtapDecodeError ? e : new OtapDecodeError(`invalid Arrow IPC payload: ${(e as Error).message}`);
    }
  }

  /** Drops the dictionaries (the stream is over); the reader must not be used afterwards. */
  release(): void {
    this.dicts.clear();
    this.dictBytesById.clear();
    this.dictBytes = 0;
  }

  private readPayloadUnsafe(
    bytes: Uint8Array,
    budget: number,
    undo: DictUndo[],
    dictLimit: DictionaryByteLimit | undefined,
  ): { batch: DecodedBatch; used: number } {
    const total = budget;
    let pos = 0;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let batch: DecodedBatch | null = null;
    while (pos < bytes.byteLength) {
      if (batch) throw new OtapDecodeError('payload holds more than one record batch');
      if (pos + 8 > bytes.byteLength) throw new OtapDecodeError('truncated IPC message prefix');
      let metaLen = dv.getInt32(pos, true);
      pos += 4;
      if (metaLen === -1) {
        metaLen = dv.getInt32(pos, true);
        pos += 4;
      }
      if (metaLen === 0) throw new OtapDecodeError('unexpected end-of-stream marker in payload');
      if (metaLen < 0 || pos + metaLen > bytes.byteLength) throw new OtapDecodeError('truncated IPC message metadata');
      const message = decodeMessage(bytes.subarray(pos, pos + metaLen));
      pos += metaLen;
      const bodyLength = Number(message.bodyLength);
      if (!(bodyLength >= 0) || pos + bodyLength > bytes.byteLength) throw new OtapDecodeError('truncated IPC message body');
      const body = bytes.subarray(pos, pos + bodyLength);
      pos += bodyLength;
      switch (message.headerType) {
        case MessageHeader.Schema:
          if (this.schema) throw new OtapDecodeError('second schema message in one IPC stream');
          this.schema = message.header() as Schema;
          break;
        case MessageHeader.DictionaryBatch: {
          if (!this.schema) throw new OtapDecodeError('dictionary batch before schema');
          const h = message.header() as DictionaryBatchHeader;
          const id = Number(h.id);
          const type = this.schema.dictionaries.get(id);
          if (!type) throw new OtapDecodeError(`dictionary batch for unknown id ${id}`);
          const { cur, used } = this.bodyCursor(h.data, body, budget, total);
          budget -= used;
          const col = readColumn(new Field('dictionary', type, true), cur, this.dicts);
          let values = this.dicts.get(id);
          const prevBytes = this.dictBytesById.get(id) ?? 0;
          const replace = !values || !h.isDelta;
          // A replacement (non-delta) batch frees what the id held; a delta adds to it.
          const idBytes = (replace ? 0 : prevBytes) + dictionaryBatchBytes(col);
          const mine = this.dictBytes - prevBytes + idBytes;
          if (dictLimit && dictLimit.others + mine > dictLimit.max) {
            throw new OtapDecodeError(
              `dictionary ${id} batch of ${col.length} entries would make this stream's dictionaries retain ` +
                `${dictLimit.others + mine} bytes, over the ${dictLimit.max}-byte limit (${dictLimit.setting ?? 'max_dictionary_bytes'})`,
              true,
              true,
            );
          }
          undo.push([id, values, values?.length ?? 0, prevBytes]);
          if (replace) {
            values = [];
            this.dicts.set(id, values);
          }
          decodeDictionaryValues(col, values!, this.limits.maxDictionaryEntries);
          this.dictBytesById.set(id, idBytes);
          this.dictBytes = mine;
          break;
        }
        case MessageHeader.RecordBatch: {
          if (!this.schema) throw new OtapDecodeError('record batch before schema');
          const h = message.header() as RecordBatchHeader;
          const { cur, used } = this.bodyCursor(h, body, budget, total);
          budget -= used;
          const columns = new Map<string, Column>();
          const length = Number(h.length);
          if (!(length >= 0)) throw new OtapDecodeError(`bad record batch length ${length}`);
          for (const f of this.schema.fields) {
            const c = readColumn(f, cur, this.dicts);
            if (c.length < length) throw new OtapDecodeError(`column ${f.name} shorter than the record batch`);
            columns.set(f.name, c);
          }
          batch = { schemaId: this.schemaId, length, columns };
          break;
        }
        default:
          throw new OtapDecodeError(`unexpected IPC message type ${message.headerType}`);
      }
    }
    if (!batch) throw new OtapDecodeError('payload holds no record batch');
    return { batch, used: total - budget };
  }

  /**
   * Checks a record batch's buffer regions and slices (decompressing) its body. Regions must lie
   * inside the body in increasing offset order without overlapping, as every Arrow writer lays
   * them out (sequentially, 8-byte padded; empty regions may sit anywhere): so no byte of the body
   * is read by two buffers. Every region is charged against `budget` before anything is
   * decompressed or copied: its length when stored raw, its declared size when compressed. The
   * bytes a batch makes the decoder touch are thus bounded by the budget, not by how often its
   * metadata repeats one region.
   */
  private bodyCursor(h: RecordBatchHeader, body: Uint8Array, budget: number, total: number): { cur: BodyCursor; used: number } {
    const compressed = h.compression != null;
    if (compressed && h.compression!.type !== CompressionType.ZSTD) {
      throw new OtapDecodeError(`unsupported IPC body compression ${h.compression!.type} (only ZSTD)`);
    }
    const regions = h.buffers;
    const n = regions.length;
    const bodyView = new DataView(body.buffer, body.byteOffset, body.byteLength);
    // Pass 1: layout and cost, from the metadata and the 8-byte length prefixes alone.
    let end = 0; // end of the previous non-empty region
    let used = 0;
    for (let i = 0; i < n; i++) {
      const r = regions[i];
      const offset = Number(r.offset), length = Number(r.length);
      if (!(offset >= 0) || !(length >= 0) || offset + length > body.byteLength) {
        throw new OtapDecodeError(`IPC buffer ${i} region (offset ${offset}, length ${length}) beyond message body of ${body.byteLength} bytes`);
      }
      if (length === 0) continue;
      if (offset < end) {
        throw new OtapDecodeError(
          `IPC buffer ${i} region (offset ${offset}, length ${length}) overlaps or precedes the previous buffer (ending at ${end}): ` +
            'buffer regions must be in increasing offset order without overlap',
        );
      }
      end = offset + length;
      let size = length;
      if (compressed) {
        if (length < 8) throw new OtapDecodeError('compressed IPC buffer shorter than its length prefix');
        const declared = bodyView.getBigInt64(offset, true);
        if (declared === -1n) size = length - 8;
        else if (declared < 0n) throw new OtapDecodeError(`compressed IPC buffer declares ${declared} bytes`);
        else if (declared > BigInt(budget - used)) {
          throw new OtapDecodeError(
            `IPC buffer would decompress to ${declared} bytes, over the ${total}-byte limit for this batch`,
            true,
          );
        } else size = Number(declared);
      }
      used += size;
      if (used > budget) {
        throw new OtapDecodeError(
          `IPC buffers take at least ${total - budget + used} bytes, over the ${total}-byte limit for this batch`,
          true,
        );
      }
    }
    // Pass 2: slice, and decompress into buffers of exactly the declared size.
    const out: Uint8Array[] = new Array(n);
    let own: Set<Uint8Array> | null = null;
    for (let i = 0; i < n; i++) {
      const r = regions[i];
      const offset = Number(r.offset), length = Number(r.length);
      const raw = body.subarray(offset, offset + length);
      if (!compressed || length === 0) {
        out[i] = raw;
        continue;
      }
      const declared = bodyView.getBigInt64(offset, true);
      const frame = raw.subarray(8);
      if (declared === -1n) {
        out[i] = frame;
        continue;
      }
      let plain: Uint8Array;
      try {
        plain = zstdDecompressBounded(frame, Number(declared));
      } catch (e) {
        throw new OtapDecodeError(`invalid compressed IPC buffer: ${(e as Error).message}`);
      }
      out[i] = plain;
      (own ??= new Set()).add(plain);
    }
    return { cur: new BodyCursor(h.nodes, out, own), used };
  }
}
