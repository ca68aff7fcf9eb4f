// Bad OTAP input: truncated or invalid Arrow IPC, wrong schemas, unknown payload types and
// decompression bombs give a clear OtapDecodeError (INVALID_ARGUMENT or RESOURCE_EXHAUSTED at the
// gRPC layer), and the stream keeps decoding later batches. Plus a bounded, seeded fuzz run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OtapConsumer, OtapProducer } from '../../proto/src/otap/stream.ts';
import { OtapDecodeError } from '../../proto/src/otap/ipc.ts';
import { ArrowPayloadType, type BatchArrowRecords } from '../../proto/src/otap/messages.ts';
import { errorToBatchStatus } from '../../proto/src/grpc/otap-server.ts';
import { agentTraces, rng } from '../../proto/src/otap/fixtures.ts';
import type { LogsData } from '../../proto/src/model.ts';
import { canon } from './otap-helpers.ts';

function withRecord(b: BatchArrowRecords, i: number, record: Uint8Array, type?: number): BatchArrowRecords {
  return {
    ...b,
    arrowPayloads: b.arrowPayloads.map((p, j) => (j === i ? { ...p, record, type: type ?? p.type } : p)),
  };
}

function expectDecodeError(c: OtapConsumer, b: BatchArrowRecords, pattern: RegExp, exhausted = false): void {
  assert.throws(
    () => c.consume(b),
    (e: unknown) => {
      assert.ok(e instanceof OtapDecodeError, `OtapDecodeError expected, got ${e}`);
      assert.match(e.message, pattern);
      assert.equal(e.resourceExhausted, exhausted);
      const status = errorToBatchStatus(b.batchId, e);
      assert.equal(status.statusCode, exhausted ? 8 : 3);
      assert.equal(status.batchId, b.batchId);
      return true;
    },
  );
}

/** A good first batch, then `bad`, then a good second batch (delta on the same IPC streams). */
function badBetweenGood(bad: (good2: BatchArrowRecords) => BatchArrowRecords, pattern: RegExp, exhausted = false) {
  const p = new OtapProducer();
  const c = new OtapConsumer('traces');
  const d1 = agentTraces(50, 1), d2 = agentTraces(50, 2);
  for (const d of [d1, d2]) for (const rs of d.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) s.status.code = 0;
  assert.deepStrictEqual(canon(c.consume(p.produce('traces', d1)).data), canon(d1));
  const good2 = p.produce('traces', d2);
  expectDecodeError(c, bad(good2), pattern, exhausted);
  assert.deepStrictEqual(canon(c.consume(good2).data), canon(d2), 'the stream still decodes after the bad batch');
}

test('truncated IPC payload', () => {
  badBetweenGood((g) => withRecord(g, 0, g.arrowPayloads[0].record.subarray(0, g.arrowPayloads[0].record.length >> 1)), /SPANS.*truncated/);
});

test('garbage instead of IPC', () => {
  badBetweenGood((g) => withRecord(g, 0, new TextEncoder().encode('definitely not arrow ipc bytes, just text')), /SPANS/);
});

test('empty record', () => {
  badBetweenGood((g) => withRecord(g, 0, new Uint8Array(0)), /no record batch/);
});

test('unknown payload type as root and as related table', () => {
  badBetweenGood((g) => withRecord(g, 0, g.arrowPayloads[0].record, 99), /root table.*unknown type 99/);
  badBetweenGood((g) => withRecord(g, 1, g.arrowPayloads[1].record, 77), /unknown payload type 77/);
  badBetweenGood((g) => withRecord(g, 1, g.arrowPayloads[1].record, ArrowPayloadType.LOG_ATTRS), /LOG_ATTRS does not belong to traces/);
});

test('a payload with the wrong schema for its type (spans table sent as SPAN_ATTRS)', () => {
  // A first payload of a new IPC stream (schema included) carrying the SPANS columns.
  const p = new OtapProducer();
  const c = new OtapConsumer('traces');
  const b = p.produce('traces', agentTraces(20, 3));
  const wrong: BatchArrowRecords = {
    batchId: b.batchId,
    headers: b.headers,
    arrowPayloads: [b.arrowPayloads[0], { schemaId: 'x', type: ArrowPayloadType.SPAN_ATTRS, record: b.arrowPayloads[0].record }],
  };
  expectDecodeError(new OtapConsumer('traces'), wrong, /SPAN_ATTRS: missing column parent_id/);
  const d = agentTraces(20, 4);
  assert.deepStrictEqual(canon(c.consume(new OtapProducer().produce('traces', d)).data), canon(d));
});

test('a logs batch on a traces stream is refused', () => {
  const p = new OtapProducer();
  const logs: LogsData = { resourceLogs: [] };
  const b = p.produce('logs', {
    resourceLogs: [
      {
        resource: { attributes: [], droppedAttributesCount: 0 },
        schemaUrl: '',
        scopeLogs: [
          {
            scope: { name: 's', version: '', attributes: [], droppedAttributesCount: 0 },
            schemaUrl: '',
            logRecords: [
              {
                timeUnixNano: 1n, observedTimeUnixNano: 0n, severityNumber: 9, severityText: 'INFO', body: 'hi', attributes: [],
                droppedAttributesCount: 0, flags: 0, traceId: new Uint8Array(0), spanId: new Uint8Array(0), eventName: '',
              },
            ],
          },
        ],
      },
    ],
  });
  void logs;
  expectDecodeError(new OtapConsumer('traces'), b, /logs payload on a traces stream/);
});

test('a zstd buffer that would decompress beyond the limit → RESOURCE_EXHAUSTED, stream goes on', () => {
  const big = 'x'.repeat(4 << 20); // 4 MiB of one byte compresses to a few hundred bytes
  const mk = (body: string): LogsData => ({
    resourceLogs: [
      {
        resource: { attributes: [], droppedAttributesCount: 0 },
        schemaUrl: '',
        scopeLogs: [
          {
            scope: { name: 's', version: '', attributes: [], droppedAttributesCount: 0 },
            schemaUrl: '',
            logRecords: [
              {
                timeUnixNano: 1n, observedTimeUnixNano: 2n, severityNumber: 9, severityText: 'INFO', body, attributes: [],
                droppedAttributesCount: 0, flags: 0, traceId: new Uint8Array(0), spanId: new Uint8Array(0), eventName: '',
              },
            ],
          },
        ],
      },
    ],
  });
  const p = new OtapProducer();
  const c = new OtapConsumer('logs', { maxBatchBytes: 1 << 20 });
  const first = mk('small');
  assert.deepStrictEqual(canon(c.consume(p.produce('logs', first)).data), canon(first));
  // The bomb comes from another producer on a new IPC stream id (as a hostile or broken sender
  // would send it); the refused stream is never committed, the live one carries on.
  const other = new OtapProducer().produce('logs', mk(big));
  const bomb: BatchArrowRecords = { ...other, batchId: 1n, arrowPayloads: other.arrowPayloads.map((x) => ({ ...x, schemaId: `bomb-${x.schemaId}` })) };
  assert.ok(bomb.arrowPayloads[0].record.length < 64 * 1024, `compressed payload is small (${bomb.arrowPayloads[0].record.length} B)`);
  expectDecodeError(c, bomb, /decompress to \d+ bytes, over the/, true);
  const after = mk('after');
  assert.deepStrictEqual(canon(c.consume(p.produce('logs', after)).data), canon(after));
});

test('a zstd frame that expands past the size its buffer declares is refused', () => {
  const p = new OtapProducer();
  const c = new OtapConsumer('traces');
  const b = p.produce('traces', agentTraces(50, 5));
  const rec = Uint8Array.from(b.arrowPayloads[0].record);
  // Lower every declared uncompressed length (int64 prefix of compressed buffers) by scanning for
  // zstd frame magic 28 B5 2F FD and shrinking the 8 bytes before it.
  let patched = 0;
  for (let i = 8; i + 4 <= rec.length; i++) {
    if (rec[i] === 0x28 && rec[i + 1] === 0xb5 && rec[i + 2] === 0x2f && rec[i + 3] === 0xfd) {
      const dv = new DataView(rec.buffer, i - 8, 8);
      const n = dv.getBigInt64(0, true);
      if (n > 1n) {
        dv.setBigInt64(0, n - 1n, true);
        patched++;
      }
    }
  }
  assert.ok(patched > 0);
  expectDecodeError(c, withRecord(b, 0, rec), /zstd/);
});

const FUZZ_ITERATIONS = 1500;

test('fuzz: mutated payloads never crash the decoder (seeded, bounded)', () => {
  const r = rng(20261122);
  const p = new OtapProducer();
  const d1 = agentTraces(40, 7);
  const b1 = p.produce('traces', d1);
  const b2 = p.produce('traces', agentTraces(40, 8));
  const seeds = [b1, b2];
  let errors = 0, ok = 0;
  // a fixed count, not a deadline: the same inputs on every machine, however loaded
  for (let iterations = 0; iterations < FUZZ_ITERATIONS; iterations++) {
    const c = new OtapConsumer('traces', { maxBatchBytes: 8 << 20, maxDictionaryEntries: 1 << 16 });
    const second = r() < 0.5;
    if (second) c.consume(b1);
    const base = second ? b2 : b1;
    const pi = (r() * base.arrowPayloads.length) | 0;
    const rec = Uint8Array.from(base.arrowPayloads[pi].record);
    const kind = r();
    let mutated: Uint8Array;
    if (kind < 0.6) {
      const flips = 1 + ((r() * 8) | 0);
      for (let f = 0; f < flips; f++) rec[(r() * rec.length) | 0] ^= 1 << ((r() * 8) | 0);
      mutated = rec;
    } else if (kind < 0.8) {
      mutated = rec.subarray(0, (r() * rec.length) | 0);
    } else {
      const at = (r() * rec.length) | 0;
      const junk = Uint8Array.from({ length: 1 + ((r() * 16) | 0) }, () => (r() * 256) | 0);
      mutated = new Uint8Array(rec.length + junk.length);
      mutated.set(rec.subarray(0, at));
      mutated.set(junk, at);
      mutated.set(rec.subarray(at), at + junk.length);
    }
    try {
      c.consume(withRecord(base, pi, mutated));
      ok++;
    } catch (e) {
      assert.ok(e instanceof OtapDecodeError, `unexpected ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
      errors++;
    }
  }
  assert.ok(errors > 0 && ok > 0, `both outcomes expected (decoded ${ok}, rejected ${errors})`);
  // after all that, a fresh stream still works
  const c = new OtapConsumer('traces');
  assert.deepStrictEqual(canon(c.consume(b1).data), canon(d1));
  void seeds;
});
