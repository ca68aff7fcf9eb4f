// Our Arrow IPC framing checked against an independent implementation (apache-arrow's own
// stream reader and writer), with ZSTD body compression and delta dictionaries both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  CompressionType,
  Dictionary,
  Field,
  RecordBatchStreamReader,
  RecordBatchStreamWriter,
  Schema,
  Uint16,
  Uint8,
  Utf8,
  compressionRegistry,
  makeData,
  makeVector,
  RecordBatch,
  Struct,
  vectorFromArray,
  Vector,
} from 'apache-arrow';
import { OtapProducer } from '../../proto/src/otap/stream.ts';
import { byNameThenStart } from './otap-helpers.ts';
import { ArrowPayloadType } from '../../proto/src/otap/messages.ts';
import { IpcStreamReader } from '../../proto/src/otap/ipc.ts';
import { decodeAttrs } from '../../proto/src/otap/attrs.ts';
import { zstdCompressSync } from '../../proto/src/otap/zstd-sync.ts';
import { agentTraces } from '../../proto/src/otap/fixtures.ts';

const require = createRequire(import.meta.url);
const zstd = require('zstd-napi') as { decompress(b: Uint8Array): Uint8Array };
compressionRegistry.set(CompressionType.ZSTD, {
  encode: (b: Uint8Array) => zstdCompressSync(b, 3),
  decode: (b: Uint8Array) => zstd.decompress(b),
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

for (const compression of ['zstd', 'none'] as const) {
  test(`apache-arrow reads our SPANS IPC stream (delta dictionaries, ${compression})`, () => {
    const p = new OtapProducer({ compression });
    const batches = [agentTraces(300, 1), agentTraces(300, 2), agentTraces(300, 3)];
    for (const b of batches) for (const rs of b.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) s.status = { code: 0, message: '' };
    const records: Uint8Array[] = [];
    const ids = new Set<string>();
    for (const b of batches) {
      const spans = p.produce('traces', b).arrowPayloads[0];
      assert.equal(spans.type, ArrowPayloadType.SPANS);
      ids.add(spans.schemaId);
      records.push(spans.record);
    }
    assert.equal(ids.size, 1, 'one IPC stream');
    const stream = concat([...records, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])]);
    const reader = RecordBatchStreamReader.from(stream);
    let i = 0;
    for (const rb of reader) {
      // rows come grouped by name, then by start time, per scope
      const want = batches[i++].resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => [...s.spans].sort(byNameThenStart)));
      assert.equal(rb.numRows, want.length);
      const names = rb.getChild('name')!;
      const traceIds = rb.getChild('trace_id')!;
      const start = rb.getChild('start_time_unix_nano')!;
      for (let r = 0; r < want.length; r++) {
        assert.equal(names.get(r), want[r].name);
        assert.deepEqual(Array.from(traceIds.get(r) as Uint8Array), Array.from(want[r].traceId));
        // get() converts timestamps to ms; compare the raw nanoseconds
        assert.equal((start.data[0].values as BigInt64Array)[r], want[r].startTimeUnixNano);
      }
    }
    assert.equal(i, 3);
  });
}

// An attributes-shaped table (parent_id, dictionary-encoded key and str, type) as apache-arrow
// writes it, for reading with our IPC reader.
const attrKeyType = new Dictionary(new Utf8(), new Uint8(), 0, false);
const attrStrType = new Dictionary(new Utf8(), new Uint16(), 1, false);
const attrSchema = new Schema([
  new Field('parent_id', new Uint16(), false),
  new Field('key', attrKeyType, false),
  new Field('type', new Uint8(), false),
  new Field('str', attrStrType, true),
]);
function attrsBatch(parents: number[], keys: number[], types: number[], strs: number[], keyDict: Vector, strDict: Vector): RecordBatch {
  return new RecordBatch(
    attrSchema,
    makeData({
      type: new Struct(attrSchema.fields),
      length: parents.length,
      children: [
        makeVector(Uint16Array.from(parents)).data[0],
        makeData({ type: attrKeyType, length: keys.length, data: Uint8Array.from(keys), dictionary: keyDict }),
        makeData({ type: new Uint8(), length: keys.length, data: Uint8Array.from(types) }),
        makeData({ type: attrStrType, length: strs.length, data: Uint16Array.from(strs), dictionary: strDict }),
      ],
    }),
  );
}

test('our reader reads an apache-arrow stream with compressed delta dictionaries', () => {
  // An attributes-shaped table written by apache-arrow, two record batches whose `key` and `str`
  // dictionaries grow by delta between them.
  const keyDict1 = vectorFromArray(['host.name', 'k8s.pod.name'], new Utf8());
  const strDict1 = vectorFromArray(['node-a', 'pod-1'], new Utf8());
  const keyDict2 = keyDict1.concat(vectorFromArray(['zone'], new Utf8()));
  const strDict2 = strDict1.concat(vectorFromArray(['eu-1'], new Utf8()));
  const writer = new RecordBatchStreamWriter({ compressionType: CompressionType.ZSTD });
  writer.write(attrsBatch([0, 0], [0, 1], [1, 1], [0, 1], keyDict1, strDict1)); // type 1: string
  const first = writer.toUint8Array(true);
  writer.write(attrsBatch([0, 1, 2], [0, 2, 1], [1, 1, 1], [0, 2, 1], keyDict2, strDict2));
  writer.finish();
  const all = writer.toUint8Array(true);
  assert.ok(all.length > 0 && first.length > 0);
  // Split the byte stream into payloads: each ends with a record batch message.
  const payloads = splitAtRecordBatches(all.length > first.length ? all : concat([first, all]));
  assert.equal(payloads.length, 2);
  const reader = new IpcStreamReader('0', { maxPayloadBytes: 1 << 20, maxDictionaryEntries: 1000 });
  const a1 = decodeAttrs(reader.readPayload(payloads[0]).batch, 'test');
  assert.deepEqual(a1.get(0), [
    { key: 'host.name', value: 'node-a' },
    { key: 'k8s.pod.name', value: 'pod-1' },
  ]);
  const a2 = decodeAttrs(reader.readPayload(payloads[1]).batch, 'test');
  // quasi-delta: every row starts a new (key, value), so parent ids are absolute
  assert.deepEqual(a2.get(0), [{ key: 'host.name', value: 'node-a' }]);
  assert.deepEqual(a2.get(1), [{ key: 'zone', value: 'eu-1' }]);
  assert.deepEqual(a2.get(2), [{ key: 'k8s.pod.name', value: 'pod-1' }]);
});

test('a bad cell in one attributes batch leaves nothing behind for the next (shared KeyValues)', () => {
  // Rows 0 and 1 are one run (a=x, shared KeyValue); row 2 has an unknown value type, so the
  // first batch fails after the run's KeyValue was made. The second batch has a run at the same
  // row index with another value, which must decode as itself.
  const keyDict = vectorFromArray(['a', 'b'], new Utf8());
  const strDict = vectorFromArray(['x', 'y'], new Utf8());
  const writer = new RecordBatchStreamWriter();
  writer.write(attrsBatch([0, 1, 2], [0, 0, 1], [1, 1, 99], [0, 0, 0], keyDict, strDict)); // parent 1 is a delta: 0 + 1
  writer.write(attrsBatch([0, 1], [0, 0], [1, 1], [1, 1], keyDict, strDict));
  writer.finish();
  const [bad, good] = splitAtRecordBatches(writer.toUint8Array(true));
  const reader = new IpcStreamReader('0', { maxPayloadBytes: 1 << 20, maxDictionaryEntries: 1000 });
  assert.throws(() => decodeAttrs(reader.readPayload(bad!).batch, 'test'), /unknown value type 99/);
  const a = decodeAttrs(reader.readPayload(good!).batch, 'test');
  assert.deepEqual(a.get(0), [{ key: 'a', value: 'y' }]);
  assert.deepEqual(a.get(1), [{ key: 'a', value: 'y' }]);
});

import { Message } from 'apache-arrow/ipc/metadata/message';
import { MessageHeader } from 'apache-arrow';

function splitAtRecordBatches(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0, start = 0;
  while (pos + 8 <= bytes.length) {
    const len = dv.getInt32(pos + 4, true);
    if (len === 0) break; // end of stream
    const m = Message.decode(bytes.subarray(pos + 8, pos + 8 + len));
    pos += 8 + len + Number(m.bodyLength);
    if (m.headerType === MessageHeader.RecordBatch) {
      out.push(bytes.subarray(start, pos));
      start = pos;
    }
  }
  return out;
}
