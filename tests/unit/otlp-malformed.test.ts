// Bad input to the OTLP decoders (binary and JSON): malformed, truncated, wrong wire types, oversized
// lengths, deep nesting → ProtoDecodeError (code INVALID_PROTO), never a crash or a hang. Ends with a
// bounded, seeded fuzz run of each decoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtoDecodeError, decodeExportResponse, decodeJson, decodeSignal, encodeJson, encodeSignal, MAX_ANY_DEPTH } from '../../proto/src/otlp/index.ts';
import { agentTraces, prng } from '../../proto/src/otlp/fixtures.ts';
import { arbs } from './otlp-helpers.ts';

function assertInvalid(fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtoDecodeError, `expected ProtoDecodeError, got ${String(err)}`);
    assert.equal(err.code, 'INVALID_PROTO');
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

const SIGNALS = ['traces', 'metrics', 'logs'] as const;

test('truncated input at every byte boundary → ProtoDecodeError (or a valid prefix), never anything else', () => {
  const bytes = encodeSignal('traces', agentTraces(3));
  let errors = 0;
  for (let n = 1; n < bytes.length; n++) {
    try {
      decodeSignal('traces', bytes.subarray(0, n));
    } catch (err) {
      assert.ok(err instanceof ProtoDecodeError, `cut at ${n}: ${String(err)}`);
      errors++;
    }
  }
  assert.ok(errors > bytes.length / 2, `most truncations must be detected (${errors}/${bytes.length})`);
});

test('specific malformations name the problem', () => {
  // ResourceSpans (field 1) with wire type 0 instead of 2.
  assertInvalid(() => decodeSignal('traces', Uint8Array.from([0x08, 0x01])), /field 1 has wire type 0/);
  // Length prefix larger than the rest of the buffer.
  assertInvalid(() => decodeSignal('traces', Uint8Array.from([0x0a, 0x10, 0x00])), /length 16 exceeds/);
  // Length ≥ 2^31.
  assertInvalid(() => decodeSignal('metrics', Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])), /length exceeds 2\^31/);
  // Varint longer than 10 bytes (unknown field 2, varint).
  assertInvalid(() => decodeSignal('logs', Uint8Array.from([0x10, ...new Array(11).fill(0xff), 0x01])), /varint longer than 10 bytes/);
  // Field number 0, invalid wire types 6 / 7, stray end-group.
  assertInvalid(() => decodeSignal('traces', Uint8Array.from([0x02, 0x00])), /field number 0/);
  assertInvalid(() => decodeSignal('traces', Uint8Array.from([0x16])), /invalid wire type 6/);
  assertInvalid(() => decodeSignal('traces', Uint8Array.from([0x17])), /invalid wire type 7/);
  assertInvalid(() => decodeSignal('traces', Uint8Array.from([0x14])), /unexpected end-group/);
  // Unterminated group.
  assertInvalid(() => decodeSignal('traces', Uint8Array.from([0x13, 0x08, 0x01])), /unterminated group/);
  // Packed fixed64 with a length that is not a multiple of 8 (HistogramDataPoint.bucket_counts).
  const dp = [0x32, 0x03, 1, 2, 3];
  const hist = [0x0a, dp.length, ...dp];
  const metric = [0x4a, hist.length, ...hist];
  const sm = [0x12, metric.length, ...metric];
  const rm = [0x12, sm.length, ...sm];
  assertInvalid(() => decodeSignal('metrics', Uint8Array.from([0x0a, rm.length, ...rm])), /not a multiple of 8/);
  // Truncated fixed64 inside a span (start_time with 3 bytes).
  const span = [0x39, 1, 2, 3];
  const ss = [0x12, span.length, ...span];
  const rs = [0x12, ss.length, ...ss];
  assertInvalid(() => decodeSignal('traces', Uint8Array.from([0x0a, rs.length, ...rs])), /truncated fixed64/);
  // Export response with a wrong wire type.
  assertInvalid(() => decodeExportResponse(Uint8Array.from([0x0a, 0x02, 0x0d, 0x00])));
});

/** LogRecord whose body is `depth` nested array values. */
function nestedBody(depth: number): Uint8Array {
  let any: number[] = [0x10, 0x01]; // innermost AnyValue: bool_value (field 2) true
  for (let i = 0; i < depth; i++) {
    const arrayValue = [0x0a, ...varint(any.length), ...any]; // ArrayValue.values
    any = [0x2a, ...varint(arrayValue.length), ...arrayValue]; // AnyValue.array_value
  }
  const log = [0x2a, ...varint(any.length), ...any];
  const sl = [0x12, ...varint(log.length), ...log];
  const rl = [0x12, ...varint(sl.length), ...sl];
  return Uint8Array.from([0x0a, ...varint(rl.length), ...rl]);
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** Logs request with one LogRecord of the given fields. */
function logsWith(log: number[]): Uint8Array {
  const sl = [0x12, ...varint(log.length), ...log];
  const rl = [0x12, ...varint(sl.length), ...sl];
  return Uint8Array.from([0x0a, ...varint(rl.length), ...rl]);
}

test('AnyValue nesting is bounded also where the innermost attribute is in the decode cache', () => {
  const inner = [0x0a, 1, 0x6b, 0x12, 2, 0x10, 0x01]; // KeyValue k = true
  // seen twice at the top level (attributes, field 6): the decoder now holds it
  for (let i = 0; i < 2; i++) decodeSignal('logs', logsWith([0x32, inner.length, ...inner]));
  const kvlistBody = (depth: number) => {
    let kv = inner, any: number[] = [];
    for (let i = 0; i < depth; i++) {
      const list = [0x0a, ...varint(kv.length), ...kv]; // KeyValueList.values
      any = [0x32, ...varint(list.length), ...list]; // AnyValue.kvlist_value
      kv = [0x0a, 1, 0x6b, 0x12, ...varint(any.length), ...any];
    }
    return logsWith([0x2a, ...varint(any.length), ...any]); // LogRecord.body
  };
  assert.ok(decodeSignal('logs', kvlistBody(MAX_ANY_DEPTH)).resourceLogs[0].scopeLogs[0].logRecords[0].body);
  for (let i = 0; i < 2; i++) assertInvalid(() => decodeSignal('logs', kvlistBody(MAX_ANY_DEPTH + 1)), /nested deeper/);
});

test('AnyValue nesting is bounded (binary and JSON)', () => {
  const ok = decodeSignal('logs', nestedBody(MAX_ANY_DEPTH));
  assert.ok(Array.isArray(ok.resourceLogs[0].scopeLogs[0].logRecords[0].body));
  assertInvalid(() => decodeSignal('logs', nestedBody(MAX_ANY_DEPTH + 1)), /nested deeper/);
  assertInvalid(() => decodeSignal('logs', nestedBody(400)), /nested deeper/);

  let body = '{"boolValue":true}';
  for (let i = 0; i < 5000; i++) body = `{"arrayValue":{"values":[${body}]}}`;
  assertInvalid(() => decodeJson('logs', `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":${body}}]}]}]}`), /nested deeper/);
});

test('JSON: malformed text and wrong shapes → ProtoDecodeError naming the path', () => {
  assertInvalid(() => decodeJson('traces', '{"resourceSpans": ['), /invalid OTLP\/JSON/);
  assertInvalid(() => decodeJson('traces', '{"resourceSpans": {}}'), /\$\.resourceSpans: expected an array/);
  assertInvalid(() => decodeJson('traces', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}'), /spans\[0\]\.traceId: expected 32 hex digits/);
  assertInvalid(() => decodeJson('traces', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"12a"}]}]}]}'), /startTimeUnixNano/);
  assertInvalid(() => decodeJson('traces', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"-1"}]}]}]}'), /out of range/);
  assertInvalid(() => decodeJson('metrics', '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"aggregationTemporality":"BOGUS"}}]}]}]}'), /unknown enum name/);
  assertInvalid(() => decodeJson('logs', '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"intValue":1.5}}]}]}]}'), /expected an integer/);
  assertInvalid(() => decodeJson('logs', '[1,2]'), /expected an object/);
});

test('JSON decoder accepts the spec variants: ints as numbers, enum names, "NaN", unknown keys', () => {
  const d = decodeJson(
    'metrics',
    JSON.stringify({
      resourceMetrics: [
        {
          unknownKey: 1,
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'm',
                  sum: {
                    aggregationTemporality: 'AGGREGATION_TEMPORALITY_CUMULATIVE',
                    isMonotonic: true,
                    dataPoints: [{ timeUnixNano: 1700000000000000000, asInt: 5 }, { timeUnixNano: '1', asDouble: 'NaN' }],
                  },
                },
              ],
            },
          ],
        },
      ],
    }),
  );
  const m = d.resourceMetrics[0].scopeMetrics[0].metrics[0];
  assert.equal(m.data.type, 'sum');
  if (m.data.type !== 'sum') return;
  assert.equal(m.data.aggregationTemporality, 2);
  assert.equal(m.data.dataPoints[0].value, 5n);
  assert.equal(m.data.dataPoints[0].timeUnixNano, 1700000000000000000n);
  assert.ok(Number.isNaN(m.data.dataPoints[1].value as number));
});

test('fuzz: mutated valid messages and random bytes never escape as anything but ProtoDecodeError (binary)', () => {
  const A = arbs();
  const seeds = SIGNALS.map((s) => fc.sample(A[s] as fc.Arbitrary<never>, { numRuns: 20, seed: 3 }).map((d) => encodeSignal(s, d)));
  const rnd = prng(12345);
  let decoded = 0;
  let rejected = 0;
  for (let i = 0; i < 20000; i++) { // a fixed count: the same inputs however loaded the machine
    const si = i % 3;
    const pool = seeds[si];
    const base = pool[(rnd() * pool.length) | 0];
    let input: Uint8Array;
    if (i % 10 === 0 || base.length === 0) {
      input = new Uint8Array((rnd() * 64) | 0).map(() => (rnd() * 256) | 0);
    } else {
      input = Uint8Array.from(base);
      const flips = 1 + ((rnd() * 4) | 0);
      for (let f = 0; f < flips; f++) input[(rnd() * input.length) | 0] = (rnd() * 256) | 0;
      if (rnd() < 0.3) input = input.subarray(0, (rnd() * input.length) | 0);
    }
    try {
      decodeSignal(SIGNALS[si], input);
      decoded++;
    } catch (err) {
      if (!(err instanceof ProtoDecodeError)) throw new Error(`non-ProtoDecodeError on fuzz input ${Buffer.from(input).toString('hex')}: ${String(err)}`);
      rejected++;
    }
  }
  assert.ok(decoded > 0 && rejected > 0, `both outcomes expected (decoded ${decoded}, rejected ${rejected})`);
});

test('fuzz: mutated valid JSON never escapes as anything but ProtoDecodeError', () => {
  const A = arbs({ noNegativeZero: true });
  const seeds = SIGNALS.map((s) => fc.sample(A[s] as fc.Arbitrary<never>, { numRuns: 10, seed: 5 }).map((d) => encodeJson(s, d)));
  const rnd = prng(999);
  const alphabet = '{}[]":,0123456789-.eE aAtrufnlsVv\\';
  let decoded = 0;
  let rejected = 0;
  for (let i = 0; i < 5000; i++) { // a fixed count: the same inputs however loaded the machine
    const si = i % 3;
    const base = seeds[si][(rnd() * seeds[si].length) | 0];
    const chars = base.split('');
    const edits = 1 + ((rnd() * 3) | 0);
    for (let e = 0; e < edits; e++) chars[(rnd() * chars.length) | 0] = alphabet[(rnd() * alphabet.length) | 0];
    try {
      decodeJson(SIGNALS[si], chars.join(''));
      decoded++;
    } catch (err) {
      if (!(err instanceof ProtoDecodeError)) throw new Error(`non-ProtoDecodeError on ${chars.join('')}: ${String(err)}`);
      rejected++;
    }
  }
  assert.ok(decoded > 0 && rejected > 0, `both outcomes expected (decoded ${decoded}, rejected ${rejected})`);
});
