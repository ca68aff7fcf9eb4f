// Protobuf codec for the OTel Arrow service messages (proto/otap/arrow_service.proto):
// BatchArrowRecords, ArrowPayload and BatchStatus. Hand-written because the messages are tiny and
// sit on the per-batch path; the payload bytes are passed through as subarrays, not copied.

export const enum ArrowPayloadType {
  UNKNOWN = 0,
  RESOURCE_ATTRS = 1,
  SCOPE_ATTRS = 2,
  UNIVARIATE_METRICS = 10,
  NUMBER_DATA_POINTS = 11,
  SUMMARY_DATA_POINTS = 12,
  HISTOGRAM_DATA_POINTS = 13,
  EXP_HISTOGRAM_DATA_POINTS = 14,
  NUMBER_DP_ATTRS = 15,
  SUMMARY_DP_ATTRS = 16,
  HISTOGRAM_DP_ATTRS = 17,
  EXP_HISTOGRAM_DP_ATTRS = 18,
  NUMBER_DP_EXEMPLARS = 19,
  HISTOGRAM_DP_EXEMPLARS = 20,
  EXP_HISTOGRAM_DP_EXEMPLARS = 21,
  NUMBER_DP_EXEMPLAR_ATTRS = 22,
  HISTOGRAM_DP_EXEMPLAR_ATTRS = 23,
  EXP_HISTOGRAM_DP_EXEMPLAR_ATTRS = 24,
  MULTIVARIATE_METRICS = 25,
  METRIC_ATTRS = 26,
  LOGS = 30,
  LOG_ATTRS = 31,
  SPANS = 40,
  SPAN_ATTRS = 41,
  SPAN_EVENTS = 42,
  SPAN_LINKS = 43,
  SPAN_EVENT_ATTRS = 44,
  SPAN_LINK_ATTRS = 45,
}

export const PAYLOAD_TYPE_NAMES: Record<number, string> = {
  0: 'UNKNOWN', 1: 'RESOURCE_ATTRS', 2: 'SCOPE_ATTRS', 10: 'UNIVARIATE_METRICS', 11: 'NUMBER_DATA_POINTS',
  12: 'SUMMARY_DATA_POINTS', 13: 'HISTOGRAM_DATA_POINTS', 14: 'EXP_HISTOGRAM_DATA_POINTS', 15: 'NUMBER_DP_ATTRS',
  16: 'SUMMARY_DP_ATTRS', 17: 'HISTOGRAM_DP_ATTRS', 18: 'EXP_HISTOGRAM_DP_ATTRS', 19: 'NUMBER_DP_EXEMPLARS',
  20: 'HISTOGRAM_DP_EXEMPLARS', 21: 'EXP_HISTOGRAM_DP_EXEMPLARS', 22: 'NUMBER_DP_EXEMPLAR_ATTRS',
  23: 'HISTOGRAM_DP_EXEMPLAR_ATTRS', 24: 'EXP_HISTOGRAM_DP_EXEMPLAR_ATTRS', 25: 'MULTIVARIATE_METRICS',
  26: 'METRIC_ATTRS', 30: 'LOGS', 31: 'LOG_ATTRS', 40: 'SPANS', 41: 'SPAN_ATTRS', 42: 'SPAN_EVENTS',
  43: 'SPAN_LINKS', 44: 'SPAN_EVENT_ATTRS', 45: 'SPAN_LINK_ATTRS',
};

/** BatchStatus.status_code: the gRPC code numbers. */
export const enum OtapStatusCode {
  OK = 0,
  CANCELED = 1,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  ABORTED = 10,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  UNAUTHENTICATED = 16,
}

export interface ArrowPayload {
  schemaId: string;
  type: number;
  record: Uint8Array;
}

export interface BatchArrowRecords {
  batchId: bigint;
  arrowPayloads: ArrowPayload[];
  headers: Uint8Array;
}

export interface BatchStatus {
  batchId: bigint;
  statusCode: number;
  statusMessage: string;
}

export class ProtoDecodeError extends Error {
  override name = 'ProtoDecodeError';
}

// ------------------------------------------------------------------ writer

class Writer {
  buf: Uint8Array;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
  varint(v: number): void {
    while (v > 0x7f) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }
  varint64(v: bigint): void {
    let x = BigInt.asUintN(64, v);
    while (x > 0x7fn) {
      this.buf[this.pos++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.pos++] = Number(x);
  }
  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

function varintSize(v: number): number {
  let n = 1;
  while (v > 0x7f) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

const te = new TextEncoder();
const td = new TextDecoder();

export function encodeBatchArrowRecords(m: BatchArrowRecords): Uint8Array {
  const encoded = m.arrowPayloads.map((p) => {
    const sid = te.encode(p.schemaId);
    let len = 0;
    if (sid.length) len += 1 + varintSize(sid.length) + sid.length;
    if (p.type) len += 1 + varintSize(p.type);
    if (p.record.length) len += 1 + varintSize(p.record.length) + p.record.length;
    return { sid, len, p };
  });
  let total = 11 + (m.headers.length ? 1 + varintSize(m.headers.length) + m.headers.length : 0);
  for (const e of encoded) total += 1 + varintSize(e.len) + e.len;
  const w = new Writer(total);
  if (m.batchId !== 0n) {
    w.buf[w.pos++] = 0x08;
    w.varint64(m.batchId);
  }
  for (const e of encoded) {
    w.buf[w.pos++] = 0x12;
    w.varint(e.len);
    if (e.sid.length) {
      w.buf[w.pos++] = 0x0a;
      w.bytes(e.sid);
    }
    if (e.p.type) {
      w.buf[w.pos++] = 0x10;
      w.varint(e.p.type);
    }
    if (e.p.record.length) {
      w.buf[w.pos++] = 0x1a;
      w.bytes(e.p.record);
    }
  }
  if (m.headers.length) {
    w.buf[w.pos++] = 0x1a;
    w.bytes(m.headers);
  }
  return w.buf.subarray(0, w.pos);
}

export function encodeBatchStatus(s: BatchStatus): Uint8Array {
  const msg = te.encode(s.statusMessage);
  const w = new Writer(11 + 11 + 1 + varintSize(msg.length) + msg.length);
  if (s.batchId !== 0n) {
    w.buf[w.pos++] = 0x08;
    w.varint64(s.batchId);
  }
  if (s.statusCode) {
    w.buf[w.pos++] = 0x10;
    w.varint(s.statusCode);
  }
  if (msg.length) {
    w.buf[w.pos++] = 0x1a;
    w.bytes(msg);
  }
  return w.buf.subarray(0, w.pos);
}

// ------------------------------------------------------------------ reader

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }
  varint64(): bigint {
    let r = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtoDecodeError('truncated varint');
      const b = this.buf[this.pos++];
      r |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asIntN(64, r);
      shift += 7n;
    }
    throw new ProtoDecodeError('varint too long');
  }
  varint(): number {
    let r = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtoDecodeError('truncated varint');
      const b = this.buf[this.pos++];
      r += (b & 0x7f) * mul;
      if (b < 0x80) return r;
      mul *= 128;
    }
    throw new ProtoDecodeError('varint too long');
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.end) throw new ProtoDecodeError('truncated length-delimited field');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint64();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.bytes();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw new ProtoDecodeError(`unsupported wire type ${wire}`);
    }
    if (this.pos > this.end) throw new ProtoDecodeError('truncated fixed field');
  }
}

function decodeArrowPayload(b: Uint8Array): ArrowPayload {
  const r = new Reader(b);
  const p: ArrowPayload = { schemaId: '', type: 0, record: new Uint8Array(0) };
  while (r.pos < r.end) {
    const tag = r.varint();
    const f = Math.floor(tag / 8), wire = tag & 7;
    if (f === 1 && wire === 2) p.schemaId = td.decode(r.bytes());
    else if (f === 2 && wire === 0) p.type = Number(r.varint64());
    else if (f === 3 && wire === 2) p.record = r.bytes();
    else r.skip(wire);
  }
  return p;
}

/** A plain Uint8Array view: Buffer.slice() returns views, and payload bytes must slice as copies. */
export function plainBytes(b: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(b) === Uint8Array.prototype ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function decodeBatchArrowRecords(b: Uint8Array): BatchArrowRecords {
  const r = new Reader(plainBytes(b));
  const m: BatchArrowRecords = { batchId: 0n, arrowPayloads: [], headers: new Uint8Array(0) };
  while (r.pos < r.end) {
    const tag = r.varint();
    const f = Math.floor(tag / 8), wire = tag & 7;
    if (f === 1 && wire === 0) m.batchId = r.varint64();
    else if (f === 2 && wire === 2) m.arrowPayloads.push(decodeArrowPayload(r.bytes()));
    else if (f === 3 && wire === 2) m.headers = r.bytes();
    else r.skip(wire);
  }
  return m;
}

export function decodeBatchStatus(b: Uint8Array): BatchStatus {
  const r = new Reader(b);
  const s: BatchStatus = { batchId: 0n, statusCode: 0, statusMessage: '' };
  while (r.pos < r.end) {
    const tag = r.varint();
    const f = Math.floor(tag / 8), wire = tag & 7;
    if (f === 1 && wire === 0) s.batchId = r.varint64();
    else if (f === 2 && wire === 0) s.statusCode = Number(r.varint64());
    else if (f === 3 && wire === 2) s.statusMessage = td.decode(r.bytes());
    else r.skip(wire);
  }
  return s;
}
