// OTLP/JSON codec: model → JSON → model for every signal and metric type (property-tested), the
// spec's encoding choices checked on the text itself, and JSON ↔ protobuf agreement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeJson, decodeSignal, encodeJson, encodeSignal } from '../../proto/src/otlp/index.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';
import { arbs } from './otlp-helpers.ts';

const A = arbs({ noNegativeZero: true });
const RUNS = { numRuns: 150, seed: 11 };

for (const signal of ['traces', 'metrics', 'logs'] as const) {
  test(`${signal}: model → OTLP/JSON → model (property)`, () => {
    fc.assert(
      fc.property(A[signal] as fc.Arbitrary<never>, (d) => {
        const text = encodeJson(signal, d);
        assert.deepStrictEqual(decodeJson(signal, text), d);
        assert.deepStrictEqual(decodeJson(signal, Buffer.from(text)), d); // bytes accepted too
      }),
      RUNS,
    );
  });

  test(`${signal}: JSON and protobuf decode to the same model (property)`, () => {
    fc.assert(
      fc.property(A[signal] as fc.Arbitrary<never>, (d) => {
        assert.deepStrictEqual(decodeJson(signal, encodeJson(signal, d)), decodeSignal(signal, encodeSignal(signal, d)));
      }),
      { numRuns: 60, seed: 12 },
    );
  });
}

test('JSON text follows the OTLP/JSON rules: hex ids, decimal-string int64, integer enums, camelCase', () => {
  const d = agentTraces(1);
  const s = d.resourceSpans[0].scopeSpans[0].spans[0];
  s.attributes.push({ key: 'b', value: Uint8Array.from([1, 2, 3]) }, { key: 'd', value: NaN });
  const o = JSON.parse(encodeJson('traces', d));
  const span = o.resourceSpans[0].scopeSpans[0].spans[0];
  assert.equal(span.traceId, Buffer.from(s.traceId).toString('hex'));
  assert.match(span.traceId, /^[0-9a-f]{32}$/);
  assert.match(span.spanId, /^[0-9a-f]{16}$/);
  assert.equal(span.startTimeUnixNano, s.startTimeUnixNano.toString());
  assert.equal(typeof span.kind, 'number');
  assert.equal(span.kind, 2);
  assert.deepStrictEqual(span.attributes[3], { key: 'network.peer.port', value: { intValue: String(s.attributes[3].value) } });
  assert.deepStrictEqual(span.attributes.at(-2), { key: 'b', value: { bytesValue: 'AQID' } });
  assert.deepStrictEqual(span.attributes.at(-1), { key: 'd', value: { doubleValue: 'NaN' } });
  assert.ok('droppedAttributesCount' in span === false, 'defaults are omitted');
  assert.equal(o.resourceSpans[0].scopeSpans[0].schemaUrl, 'https://opentelemetry.io/schemas/1.26.0');
});
