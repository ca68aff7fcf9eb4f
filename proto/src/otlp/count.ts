// Items in an encoded OTLP export request, counted without decoding it: a receiver that refuses a
// request before decoding (memory limiter above its soft limit) still counts what it refused, and
// the count equals countItems() of the decoded request. Field numbers from the OTLP protos:
//   Export*ServiceRequest: resource_* = 1; Resource*: scope_* = 2; Scope*: spans / metrics / log_records = 2
//   Metric: gauge = 5, sum = 7, histogram = 9, exponential_histogram = 10, summary = 11 (a oneof:
//   the last one present wins); each of those: data_points = 1.
// Malformed input gives -1; the receiver then counts nothing it cannot see.
import type { SignalType } from '../model.ts';

const LEN = 2;

/** Position after the varint read by varint(). */
let after = 0;

/** The varint at b[p] (at most 5 bytes: tags and lengths), or -1 when it runs past `end`; sets `after`. */
function varint(b: Uint8Array, p: number, end: number): number {
  let v = 0, shift = 0, byte: number;
  do {
    if (p >= end || shift > 28) return -1;
    byte = b[p++]!;
    v += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  after = p;
  return v;
}

/** Walks the fields of `b[start, end)`; calls `onLen(field, from, to)` for length-delimited ones. False when malformed. */
function fields(b: Uint8Array, start: number, end: number, onLen: (field: number, from: number, to: number) => boolean): boolean {
  let p = start;
  while (p < end) {
    const tag = varint(b, p, end);
    if (tag < 0) return false;
    p = after;
    const wire = tag & 7, field = Math.floor(tag / 8);
    if (wire === 0) {
      let n = 0;
      while (p < end && b[p]! & 0x80 && n < 9) { p++; n++; }
      if (p >= end) return false;
      p++;
    } else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else if (wire === LEN) {
      const len = varint(b, p, end);
      if (len < 0) return false;
      p = after;
      if (p + len > end) return false;
      if (!onLen(field, p, p + len)) return false;
      p += len;
    } else return false;
    if (p > end) return false;
  }
  return true;
}

const METRIC_DATA_FIELDS = new Set([5, 7, 9, 10, 11]);

/** Spans, metric data points or log records in an encoded export request; -1 when it is not valid protobuf. */
export function countEncodedItems(signal: SignalType, b: Uint8Array): number {
  let n = 0;
  const leaf = signal === 'metrics'
    ? (from: number, to: number) => {
        // one Metric: data points of its last data field, as our decoder keeps (it replaces a
        // repeated data field rather than merging it)
        let points = 0;
        const ok = fields(b, from, to, (f, s, e) => {
          if (!METRIC_DATA_FIELDS.has(f)) return true;
          points = 0;
          return fields(b, s, e, (g) => {
            if (g === 1) points++;
            return true;
          });
        });
        n += points;
        return ok;
      }
    : () => {
        n++;
        return true;
      };
  const ok = fields(b, 0, b.length, (f, s, e) =>
    f !== 1 || fields(b, s, e, (g, s2, e2) =>
      g !== 2 || fields(b, s2, e2, (h, s3, e3) => h !== 2 || leaf(s3, e3))));
  return ok ? n : -1;
}
