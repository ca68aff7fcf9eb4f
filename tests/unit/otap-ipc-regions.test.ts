// Arrow IPC buffer regions are untrusted: a record batch whose metadata points many buffers at the
// same (or overlapping, or out-of-order) bytes of its body is refused before any column is read,
// every region's bytes count against the per-batch budget (maxBatchBytes / arrow memory_limit_mib)
// whether compressed or not, an unaligned buffer is copied only as far as its column reads, and
// valid streams from our producer still decode to what went in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  Message,
  RecordBatch as RecordBatchHeader,
  BufferRegion,
  FieldNode,
  BodyCompression,
} from 'apache-arrow/ipc/metadata/message';
import { CompressionType, Field, FixedSizeBinary, Int64, MessageHeader, Schema, Utf8 } from 'apache-arrow';
import { IpcStreamReader, OtapDecodeError } from '../../proto/src/otap/ipc.ts';
import { colBytes } from '../../proto/src/otap/read.ts';
import { OtapConsumer, OtapProducer } from '../../proto/src/otap/stream.ts';
import {
  ArrowPayloadType,
  decodeBatchArrowRecords,
  encodeBatchArrowRecords,
  type BatchArrowRecords,
} from '../../proto/src/otap/messages.ts';
import { errorToBatchStatus } from '../../proto/src/grpc/otap-server.ts';
import { agentTraces } from '../../proto/src/otap/fixtures.ts';
import type { LogsData, SignalData, SignalType } from '../../proto/src/model.ts';
import { canon, logs, metrics, traces } from './otap-helpers.ts';

// ------------------------------------------------------------------ IPC framing helpers

const pad8 = (n: number) => (n + 7) & ~7;

/** One encapsulated IPC message: continuation, padded metadata length, metadata, body. */
function frame(meta: Uint8Array, body: Uint8Array | null): Uint8Array {
  const prefixed = pad8(meta.byteLength + 8);
  const out = new Uint8Array(prefixed + (body?.byteLength ?? 0));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 0xffffffff, true);
  dv.setInt32(4, prefixed - 8, true);
  out.set(meta, 8);
  if (body) out.set(body, prefixed);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

interface Msg {
  message: Message;
  meta: Uint8Array;
  body: Uint8Array;
}

/** Splits one payload's IPC bytes into its messages. */
function messages(record: Uint8Array): Msg[] {
  const out: Msg[] = [];
  const dv = new DataView(record.buffer, record.byteOffset, record.byteLength);
  let pos = 0;
  while (pos < record.byteLength) {
    assert.equal(dv.getUint32(pos, true), 0xffffffff);
    const len = dv.getInt32(pos + 4, true);
    const meta = record.subarray(pos + 8, pos + 8 + len);
    const message = Message.decode(meta);
    const bodyLength = Number(message.bodyLength);
    out.push({ message, meta, body: record.subarray(pos + 8 + len, pos + 8 + len + bodyLength) });
    pos += 8 + len + bodyLength;
  }
  return out;
}

/** The record-batch header of a data message (record batch or dictionary batch). */
function batchHeader(m: Message): RecordBatchHeader | null {
  if (m.headerType === MessageHeader.RecordBatch) return m.header() as RecordBatchHeader;
  if (m.headerType === MessageHeader.DictionaryBatch) return (m.header() as any).data as RecordBatchHeader;
  return null;
}

/** The payload with its record batch's buffer regions replaced by `fn(regions)`. */
function rewriteRegions(record: Uint8Array, fn: (r: BufferRegion[]) => BufferRegion[]): Uint8Array {
  const parts = messages(record).map(({ message, meta, body }) => {
    if (message.headerType !== MessageHeader.RecordBatch) return frame(meta, body);
    const h = message.header() as RecordBatchHeader;
    const rb = new RecordBatchHeader(h.length, h.nodes, fn(h.buffers.map((b) => new BufferRegion(b.offset, b.length))), h.compression);
    return frame(Message.encode(Message.from(rb, body.byteLength)), body);
  });
  return concat(parts);
}

/** Bytes the decoder must charge for a payload: each region raw, or its declared decompressed size. */
function chargedBytes(record: Uint8Array): number {
  let n = 0;
  for (const { message, body } of messages(record)) {
    const h = batchHeader(message);
    if (!h) continue;
    for (const r of h.buffers) {
      if (r.length === 0) continue;
      if (!h.compression) {
        n += r.length;
        continue;
      }
      const declared = new DataView(body.buffer, body.byteOffset + r.offset, 8).getBigInt64(0, true);
      n += declared === -1n ? r.length - 8 : Number(declared);
    }
  }
  return n;
}

/** A copy of `b` starting `shift` bytes past an 8-aligned address. */
function atOffset(b: Uint8Array, shift: number): Uint8Array {
  const out = new Uint8Array(new ArrayBuffer(b.byteLength + 8), shift, b.byteLength);
  out.set(b);
  return out;
}

// ------------------------------------------------------------------ the attack

/**
 * A payload whose schema declares `fields` Utf8 columns and whose record batch points all 3·F
 * buffer regions (validity, offsets, data) at the same `regionBytes` of an otherwise zero body,
 * at a 4-byte (unaligned) offset. Each column claims regionBytes/4 - 1 rows (all-zero offsets are
 * valid), so the old reader scanned and copied the region once per column.
 */
function overlappingPayload(fields: number, regionBytes: number, compression: BodyCompression | null = null): Uint8Array {
  const schema = new Schema(Array.from({ length: fields }, (_, i) => new Field(`f${i}`, new Utf8(), true)));
  const rows = regionBytes / 4 - 1;
  const body = new Uint8Array(pad8(regionBytes + 4));
  const nodes = Array.from({ length: fields }, () => new FieldNode(rows, 0));
  const regions = Array.from({ length: 3 * fields }, () => new BufferRegion(4, regionBytes));
  const rb = new RecordBatchHeader(rows, nodes, regions, compression);
  return concat([frame(Message.encode(Message.from(schema)), null), frame(Message.encode(Message.from(rb, body.byteLength)), body)]);
}

function logsBatch(record: Uint8Array, schemaId = 'attack'): BatchArrowRecords {
  return { batchId: 7n, headers: new Uint8Array(0), arrowPayloads: [{ schemaId, type: ArrowPayloadType.LOGS, record }] };
}

function isInvalidArgument(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof OtapDecodeError, `OtapDecodeError expected, got ${e}`);
    assert.match(e.message, pattern);
    assert.equal(e.resourceExhausted, false);
    assert.equal(errorToBatchStatus(1n, e).statusCode, 3, 'INVALID_ARGUMENT');
    return true;
  };
}

function isExhausted(e: unknown): boolean {
  assert.ok(e instanceof OtapDecodeError, `OtapDecodeError expected, got ${e}`);
  assert.match(e.message, /over the \d+-byte limit/);
  assert.equal(e.resourceExhausted, true);
  assert.equal(errorToBatchStatus(1n, e).statusCode, 8, 'RESOURCE_EXHAUSTED');
  return true;
}

// Small enough that the pre-fix reader (F×L scan, one L-byte copy per column) stays harmless here.
const F = 64;
const L = 256 * 1024;

test('a LOGS batch whose columns all point at one body region is refused before any column is read', () => {
  const record = overlappingPayload(F, L);
  assert.ok(record.byteLength < L + 16 * 1024, `payload is about one region (${record.byteLength} B)`);
  const reader = new IpcStreamReader('attack', { maxPayloadBytes: 128 << 20, maxDictionaryEntries: 1 << 20 });
  assert.throws(() => reader.readPayload(record), isInvalidArgument(/buffer 1 region .*overlaps/));

  // Through the consumer, as the gRPC server calls it. No copy of the region is made: the error
  // comes from the metadata check (nothing but the GC could lower arrayBuffers in between, and the
  // pre-fix reader had made F copies of L bytes by the time it threw).
  const c = new OtapConsumer('logs');
  const before = process.memoryUsage().arrayBuffers;
  assert.throws(() => c.consume(logsBatch(record)), isInvalidArgument(/LOGS \(schema attack\): IPC buffer 1 region .*overlaps/));
  const grew = process.memoryUsage().arrayBuffers - before;
  assert.ok(grew < L, `decoding the refused batch allocated ${grew} bytes of array buffers`);
});

test('repeated regions under ZSTD body compression are refused before anything is decompressed', () => {
  const record = overlappingPayload(F, 4096, new BodyCompression(CompressionType.ZSTD));
  const reader = new IpcStreamReader('attack', { maxPayloadBytes: 128 << 20, maxDictionaryEntries: 1 << 20 });
  assert.throws(() => reader.readPayload(record), isInvalidArgument(/overlaps/));
});

/** One logs batch from our producer: a dozen generated LogsData merged. */
function producedLogs(compression: 'zstd' | 'none'): { data: LogsData; batch: BatchArrowRecords } {
  const data = fc
    .sample(logs, { seed: 7, numRuns: 12 })
    .reduce<LogsData>((acc, d) => ({ resourceLogs: [...acc.resourceLogs, ...d.resourceLogs] }), { resourceLogs: [] });
  return { data, batch: new OtapProducer({ compression }).produce('logs', data) };
}

test('regions out of order, overlapping by one byte, or beyond the body are refused; empty regions may sit anywhere', () => {
  const { data, batch } = producedLogs('none');
  const rec = batch.arrowPayloads[0].record;
  const nonEmpty = (r: BufferRegion[]) => r.map((x, i) => [x, i] as const).filter(([x]) => x.length > 0).map(([, i]) => i);
  const fresh = () => new IpcStreamReader('x', { maxPayloadBytes: 128 << 20, maxDictionaryEntries: 1 << 20 });

  const swapped = rewriteRegions(rec, (r) => {
    const [a, b] = nonEmpty(r);
    [r[a], r[b]] = [r[b], r[a]];
    return r;
  });
  assert.throws(() => fresh().readPayload(swapped), isInvalidArgument(/overlaps or precedes/));

  const overlapByOne = rewriteRegions(rec, (r) => {
    const [a, b] = nonEmpty(r);
    r[b] = new BufferRegion(r[a].offset + r[a].length - 1, r[b].length);
    return r;
  });
  assert.throws(() => fresh().readPayload(overlapByOne), isInvalidArgument(/overlaps or precedes/));

  const beyond = rewriteRegions(rec, (r) => {
    const last = nonEmpty(r).at(-1)!;
    r[last] = new BufferRegion(r[last].offset, r[last].length + 1024);
    return r;
  });
  assert.throws(() => fresh().readPayload(beyond), isInvalidArgument(/beyond message body/));

  // Writers differ on where an empty buffer sits (Go and ours: at the running offset); it reads no bytes.
  let empties = 0;
  const emptyAtZero = rewriteRegions(rec, (r) =>
    r.map((x) => {
      if (x.length > 0) return x;
      empties++;
      return new BufferRegion(0, 0);
    }),
  );
  assert.ok(empties > 0, 'the payload has empty buffers');
  const c = new OtapConsumer('logs');
  const moved = { ...batch, arrowPayloads: batch.arrowPayloads.map((p, i) => (i === 0 ? { ...p, record: emptyAtZero } : p)) };
  assert.deepStrictEqual(canon(c.consume(moved).data), canon(data));
});

for (const compression of ['none', 'zstd'] as const) {
  test(`every region counts against the batch budget (${compression})`, () => {
    const { batch } = producedLogs(compression);
    const rec = batch.arrowPayloads[0].record;
    const need = chargedBytes(rec);
    const bodies = messages(rec).reduce((n, m) => n + m.body.byteLength, 0);
    assert.ok(need > 0);
    if (compression === 'none') assert.ok(need <= bodies && need > bodies - 8 * 64, 'uncompressed: about the body size');
    const reader = () => new IpcStreamReader('x', { maxPayloadBytes: 128 << 20, maxDictionaryEntries: 1 << 20 });
    assert.equal(reader().readPayload(rec, need).used, need, 'used = the bytes of all regions');
    assert.throws(() => reader().readPayload(rec, need - 1), isExhausted);

    // The whole batch (all its payloads) against maxBatchBytes, as the server sees it.
    const total = batch.arrowPayloads.reduce((n, p) => n + chargedBytes(p.record), 0);
    assert.doesNotThrow(() => new OtapConsumer('logs', { maxBatchBytes: total }).consume(batch));
    assert.throws(() => new OtapConsumer('logs', { maxBatchBytes: total - 1 }).consume(batch), isExhausted);
  });
}

test('in-order regions that together exceed the budget are refused with resourceExhausted', () => {
  // F columns, each with its own L-byte region (valid layout): F·L bytes over a budget of L.
  const fields = 16, region = 64 * 1024, rows = region / 4 - 1;
  const schema = new Schema(Array.from({ length: fields }, (_, i) => new Field(`f${i}`, new Utf8(), true)));
  const regions: BufferRegion[] = [];
  for (let i = 0; i < fields; i++) {
    regions.push(new BufferRegion(i * 2 * region, 0), new BufferRegion(i * 2 * region, region), new BufferRegion((i * 2 + 1) * region, region));
  }
  const body = new Uint8Array(fields * 2 * region);
  const rb = new RecordBatchHeader(rows, Array.from({ length: fields }, () => new FieldNode(rows, 0)), regions, null);
  const record = concat([frame(Message.encode(Message.from(schema)), null), frame(Message.encode(Message.from(rb, body.byteLength)), body)]);
  assert.throws(() => new OtapConsumer('logs', { maxBatchBytes: 4 * region }).consume(logsBatch(record)), isExhausted);
  // With room for it, the same payload decodes (its unknown columns are ignored).
  assert.equal(new OtapConsumer('logs', { maxBatchBytes: fields * 2 * region }).consume(logsBatch(record), false).items, rows);
});

test('an unaligned buffer is copied only as far as its column reads', () => {
  const fields = [new Field('i', new Int64(), true), new Field('s', new Utf8(), true), new Field('b', new FixedSizeBinary(8), true)];
  const schema = new Schema(fields);
  // Two rows; every region is 4 KiB (far more than the column needs) and starts 2 bytes past an
  // 8-byte boundary, so the int64 and int32 offset views need copies.
  const big = 4096;
  const body = new Uint8Array(pad8(2 + 6 * big));
  const dv = new DataView(body.buffer);
  const at = (k: number) => 2 + k * big;
  dv.setBigInt64(at(0), 42n, true);
  dv.setBigInt64(at(0) + 8, -7n, true);
  dv.setInt32(at(2), 0, true);
  dv.setInt32(at(2) + 4, 2, true);
  dv.setInt32(at(2) + 8, 5, true);
  body.set(new TextEncoder().encode('hello'), at(3));
  body.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], at(5));
  const regions = [
    new BufferRegion(at(0), 0), new BufferRegion(at(0), big), // i: validity, values
    new BufferRegion(at(1), 0), new BufferRegion(at(2), big), new BufferRegion(at(3), big), // s
    new BufferRegion(at(4), 0), new BufferRegion(at(5), big), // b
  ];
  const rb = new RecordBatchHeader(2, fields.map(() => new FieldNode(2, 0)), regions, null);
  const record = concat([frame(Message.encode(Message.from(schema)), null), frame(Message.encode(Message.from(rb, body.byteLength)), body)]);
  const { batch, used } = new IpcStreamReader('x', { maxPayloadBytes: 1 << 20, maxDictionaryEntries: 100 }).readPayload(record);
  assert.equal(used, 4 * big);
  const i = batch.columns.get('i')!, s = batch.columns.get('s')!, b = batch.columns.get('b')!;
  assert.deepEqual(Array.from(i.values as BigInt64Array), [42n, -7n]);
  assert.equal((i.values as BigInt64Array).buffer.byteLength, 16, 'int64 copy: width × length');
  assert.equal(s.offsets!.buffer.byteLength, 12, 'offsets copy: 4 × (length + 1)');
  assert.equal(s.data!.byteLength, 5, 'utf8 data: as far as the last offset');
  assert.equal(b.data!.byteLength, 16, 'fixed-size binary: width × length');
  assert.deepEqual(Array.from(colBytes(b, 1)), [9, 10, 11, 12, 13, 14, 15, 16]);
  assert.equal(b.owned!.buffer.byteLength, 16, 'the private copy of the bytes column: width × length');
});

// ------------------------------------------------------------------ valid streams still decode

function samples<S extends SignalType>(signal: S, seed: number): SignalData[S][] {
  const arb = signal === 'traces' ? traces : signal === 'logs' ? logs : metrics;
  const out = fc.sample(arb as fc.Arbitrary<SignalData[S]>, { seed, numRuns: 6 });
  if (signal === 'traces') {
    const d = agentTraces(300, seed);
    for (const rs of d.resourceSpans) for (const ss of rs.scopeSpans) for (const sp of ss.spans) sp.status = { code: 0, message: '' };
    out.push(d as SignalData[S]);
  }
  return out;
}

for (const compression of ['zstd', 'none'] as const) {
  for (const [signal, seed] of [['traces', 101], ['logs', 102], ['metrics', 103]] as const) {
    test(`${signal} from our producer decode unchanged, at any alignment (${compression})`, () => {
      const batches = samples(signal, seed);
      // over the wire (payloads at whatever offset protobuf decoding leaves them) …
      {
        const p = new OtapProducer({ compression }), c = new OtapConsumer(signal);
        for (const d of batches) {
          const out = c.consume(decodeBatchArrowRecords(encodeBatchArrowRecords(p.produce(signal, d))));
          assert.deepStrictEqual(canon(out.data), canon(d));
        }
      }
      // … and with every payload placed 0, 1, 2 or 4 bytes past an 8-byte boundary
      for (const shift of [0, 1, 2, 4]) {
        const p = new OtapProducer({ compression }), c = new OtapConsumer(signal);
        for (const d of batches) {
          const b = p.produce(signal, d);
          const moved = { ...b, arrowPayloads: b.arrowPayloads.map((x) => ({ ...x, record: atOffset(x.record, shift) })) };
          assert.deepStrictEqual(canon(c.consume(moved).data), canon(d), `shift ${shift}`);
        }
      }
    });
  }
}
