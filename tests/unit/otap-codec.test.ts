// Model → OTAP → model round trips for traces, logs and metrics, batch by batch over long-lived
// stream state (delta dictionaries), with and without zstd body compression, plus schema resets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Message } from 'apache-arrow/ipc/metadata/message';
import { MessageHeader } from 'apache-arrow';
import { OtapConsumer, OtapProducer, splitBatch } from '../../proto/src/otap/stream.ts';
import { ArrowPayloadType, decodeBatchArrowRecords, encodeBatchArrowRecords, type ArrowPayload } from '../../proto/src/otap/messages.ts';
import { agentTraces } from '../../proto/src/otap/fixtures.ts';
import { countSpans, type SignalData, type SignalType, type TracesData } from '../../proto/src/model.ts';
import { canon, logs, metrics, traces } from './otap-helpers.ts';

function roundTrip<S extends SignalType>(p: OtapProducer, c: OtapConsumer, signal: S, data: SignalData[S]): void {
  const wire = encodeBatchArrowRecords(p.produce(signal, data));
  const out = c.consume(decodeBatchArrowRecords(wire));
  assert.equal(out.signal, signal);
  assert.deepStrictEqual(canon(out.data), canon(data));
}

for (const compression of ['zstd', 'none'] as const) {
  test(`traces round-trip over a stream of batches (${compression})`, () => {
    fc.assert(
      fc.property(fc.array(traces, { minLength: 1, maxLength: 4 }), (batches) => {
        const p = new OtapProducer({ compression });
        const c = new OtapConsumer('traces');
        for (const b of batches) roundTrip(p, c, 'traces', b);
      }),
      { numRuns: 60, seed: 42 },
    );
  });

  test(`logs round-trip over a stream of batches (${compression})`, () => {
    fc.assert(
      fc.property(fc.array(logs, { minLength: 1, maxLength: 4 }), (batches) => {
        const p = new OtapProducer({ compression });
        const c = new OtapConsumer('logs');
        for (const b of batches) roundTrip(p, c, 'logs', b);
      }),
      { numRuns: 60, seed: 43 },
    );
  });

  test(`metrics (gauge, sum, histogram, exponential histogram, summary, exemplars) round-trip (${compression})`, () => {
    fc.assert(
      fc.property(fc.array(metrics, { minLength: 1, maxLength: 4 }), (batches) => {
        const p = new OtapProducer({ compression });
        const c = new OtapConsumer('metrics');
        for (const b of batches) roundTrip(p, c, 'metrics', b);
      }),
      { numRuns: 60, seed: 44 },
    );
  });
}

/** Message types in one payload's IPC bytes, e.g. ['Schema', 'DictionaryBatch(delta)', 'RecordBatch']. */
function messageKinds(record: Uint8Array): string[] {
  const out: string[] = [];
  const dv = new DataView(record.buffer, record.byteOffset, record.byteLength);
  let pos = 0;
  while (pos < record.length) {
    assert.equal(dv.getUint32(pos, true), 0xffffffff, 'continuation marker');
    const len = dv.getInt32(pos + 4, true);
    const m = Message.decode(record.subarray(pos + 8, pos + 8 + len));
    if (m.headerType === MessageHeader.Schema) out.push('Schema');
    else if (m.headerType === MessageHeader.DictionaryBatch) out.push((m.header() as any).isDelta ? 'DictionaryBatch(delta)' : 'DictionaryBatch');
    else out.push('RecordBatch');
    pos += 8 + len + Number(m.bodyLength);
  }
  return out;
}

function spansPayload(ps: ArrowPayload[]): ArrowPayload {
  assert.equal(ps[0].type, ArrowPayloadType.SPANS, 'root payload first');
  return ps[0];
}

function namedSpans(names: string[], seed: number): TracesData {
  const d = agentTraces(names.length, seed);
  let i = 0;
  for (const rs of d.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) {
    s.name = names[i++];
    s.status = { code: 1, message: '' }; // same optional columns in every batch
  }
  return d;
}

test('later batches of a stream send delta dictionaries only, no schema', () => {
  const p = new OtapProducer();
  const c = new OtapConsumer('traces');
  const b1 = p.produce('traces', namedSpans(['a', 'b', 'c', 'a'], 1));
  const b2 = p.produce('traces', namedSpans(['a', 'd', 'e', 'b'], 2));
  const b3 = p.produce('traces', namedSpans(['a', 'b', 'c', 'd'], 3));
  const s1 = spansPayload(b1.arrowPayloads), s2 = spansPayload(b2.arrowPayloads), s3 = spansPayload(b3.arrowPayloads);
  assert.deepEqual([b1.batchId, b2.batchId, b3.batchId], [0n, 1n, 2n]);
  assert.equal(s1.schemaId, s2.schemaId);
  assert.equal(s2.schemaId, s3.schemaId);
  const k1 = messageKinds(s1.record), k2 = messageKinds(s2.record), k3 = messageKinds(s3.record);
  assert.equal(k1[0], 'Schema');
  assert.ok(k1.includes('DictionaryBatch'));
  assert.equal(k1.filter((k) => k === 'RecordBatch').length, 1, 'exactly one record batch per payload');
  assert.ok(!k2.includes('Schema'), 'no schema on the second payload');
  assert.ok(k2.includes('DictionaryBatch(delta)'), `delta dictionary for new names: ${k2}`);
  assert.ok(!k2.includes('DictionaryBatch'), 'no replacement dictionary');
  // nothing new for the name column in batch 3 (only the record batch and other deltas)
  assert.equal(k3.at(-1), 'RecordBatch');
  for (const [b, names] of [[b1, ['a', 'b', 'c', 'a']], [b2, ['a', 'd', 'e', 'b']], [b3, ['a', 'b', 'c', 'd']]] as const) {
    const out = c.consume(decodeBatchArrowRecords(encodeBatchArrowRecords(b))).data as TracesData;
    const got = out.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans.map((x) => x.name)));
    assert.deepEqual(got, names);
  }
});

test('dictionary overflow resets the schema (new schema_id) and decoding goes on', () => {
  const p = new OtapProducer();
  const c = new OtapConsumer('traces');
  const batches: TracesData[] = [];
  // 200 names fit a u8 dictionary; 200 more overflow it across batches → reset.
  batches.push(namedSpans(Array.from({ length: 200 }, (_, i) => `n${i}`), 5));
  batches.push(namedSpans(Array.from({ length: 200 }, (_, i) => `m${i}`), 6));
  batches.push(namedSpans(Array.from({ length: 50 }, (_, i) => `m${i}`), 7));
  const sent = batches.map((b) => p.produce('traces', b));
  const schemaIds = sent.map((b) => spansPayload(b.arrowPayloads).schemaId);
  assert.notEqual(schemaIds[1], schemaIds[0], 'overflow of the u8 name dictionary starts a new IPC stream');
  assert.equal(schemaIds[2], schemaIds[1], 'the new stream continues');
  assert.equal(messageKinds(spansPayload(sent[1].arrowPayloads).record)[0], 'Schema');
  assert.ok(p.schemaResets() >= 1);
  for (let i = 0; i < sent.length; i++) {
    const out = c.consume(decodeBatchArrowRecords(encodeBatchArrowRecords(sent[i])));
    assert.deepStrictEqual(canon(out.data), canon(batches[i]));
  }
});

test('a batch with more distinct strings than a u16 dictionary holds falls back to plain columns', () => {
  const p = new OtapProducer();
  const c = new OtapConsumer('traces');
  const d = agentTraces(8, 9);
  const span = d.resourceSpans[0].scopeSpans[0].spans[0];
  span.attributes = Array.from({ length: 70_000 }, (_, i) => ({ key: `k${i}`, value: `v${i}` }));
  const out = c.consume(decodeBatchArrowRecords(encodeBatchArrowRecords(p.produce('traces', d))));
  assert.deepStrictEqual(canon(out.data), canon(d));
  const again = agentTraces(8, 10);
  const out2 = c.consume(p.produce('traces', again));
  assert.deepStrictEqual(canon(out2.data), canon(again));
});

test('agent-shaped traces round-trip at batch 10000 over several batches', () => {
  const p = new OtapProducer();
  const c = new OtapConsumer('traces');
  for (let i = 0; i < 3; i++) {
    const d = agentTraces(10_000, 100 + i);
    const out = c.consume(decodeBatchArrowRecords(encodeBatchArrowRecords(p.produce('traces', d))));
    assert.equal(out.items, 10_000);
    assert.deepStrictEqual(canon(out.data), canon(d));
  }
});

test('equal scalar attributes of a batch decode to one shared KeyValue; bytes values never share', () => {
  const d = agentTraces(500, 4);
  const spans = d.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
  for (const s of spans) s.attributes.push({ key: 'blob', value: new Uint8Array([1, 2, 3]) });
  const out = new OtapConsumer('traces').consume(decodeBatchArrowRecords(encodeBatchArrowRecords(new OtapProducer().produce('traces', d))));
  assert.deepStrictEqual(canon(out.data), canon(d));
  const got = (out.data as TracesData).resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
  const find = (i: number, key: string) => got[i].attributes.find((a) => a.key === key)!;
  assert.equal(find(0, 'network.transport'), find(got.length - 1, 'network.transport'));
  assert.notEqual(find(0, 'blob'), find(1, 'blob'));
});

test('more than 65536 spans in one batch is refused with a clear error', () => {
  const p = new OtapProducer();
  assert.throws(() => p.produce('traces', agentTraces(65_537, 1)), /more than 65536 spans/);
  // the producer stays usable
  const c = new OtapConsumer('traces');
  const d = agentTraces(10, 2);
  assert.deepStrictEqual(canon(c.consume(p.produce('traces', d)).data), canon(d));
});

test('splitBatch cuts oversized batches into OTAP-sized ones that keep resource/scope grouping', () => {
  const d = agentTraces(70_000, 3);
  const parts = splitBatch('traces', d);
  assert.equal(parts.length, 2);
  assert.ok(parts.every((p) => countSpans(p) <= 65_536));
  assert.equal(parts.reduce((n, p) => n + countSpans(p), 0), 70_000);
  const p = new OtapProducer();
  const c = new OtapConsumer('traces');
  const back = parts.map((x) => c.consume(p.produce('traces', x)).data as TracesData);
  const spans = (t: TracesData) => t.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans.map((x) => [r.resource.attributes[1].value, x.spanId])));
  const sorted = (x: unknown[]) => x.map((v) => JSON.stringify(v)).sort(); // span order within a scope is not kept
  assert.deepStrictEqual(sorted(canon(back.flatMap(spans)) as unknown[]), sorted(canon(spans(d)) as unknown[]));
  assert.deepEqual(splitBatch('traces', agentTraces(10, 1)).length, 1);
});
