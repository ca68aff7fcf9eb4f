// OTLP protobuf codec: model → encode → decode = model for every signal and metric type
// (property-tested), cross-checked in both directions against protobufjs reflection of our .proto files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeExportResponse,
  decodeLogs,
  decodeMetrics,
  decodeSignal,
  decodeTraces,
  encodeExportResponse,
  encodeLogs,
  encodeMetrics,
  encodeSignal,
  encodeTraces,
} from '../../proto/src/otlp/index.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';
import { KeyValueList, type MetricsData, type SignalType } from '../../proto/src/model.ts';
import { PBJS_OBJECT, arbs, modelToPb, requestType } from './otlp-helpers.ts';

const A = arbs();
const RUNS = { numRuns: 150, seed: 42 };

test('traces round-trip (property)', () => {
  fc.assert(fc.property(A.traces, (d) => assert.deepStrictEqual(decodeTraces(encodeTraces(d)), d)), RUNS);
});

test('metrics round-trip, every metric type (property)', () => {
  fc.assert(fc.property(A.metrics, (d) => assert.deepStrictEqual(decodeMetrics(encodeMetrics(d)), d)), RUNS);
});

test('logs round-trip (property)', () => {
  fc.assert(fc.property(A.logs, (d) => assert.deepStrictEqual(decodeLogs(encodeLogs(d)), d)), RUNS);
});

test('agent-shaped batch of 10k spans round-trips', () => {
  const d = agentTraces(10_000);
  const bytes = encodeTraces(d);
  assert.deepStrictEqual(decodeTraces(bytes), d);
  assert.deepStrictEqual(decodeSignal('traces', encodeSignal('traces', d)), d);
});

test('equal scalar attributes decode to shared KeyValues; cache collisions never return a wrong one', () => {
  const d = agentTraces(3000);
  const spans = decodeTraces(encodeTraces(d)).resourceSpans[0].scopeSpans[0].spans;
  // network.transport=tcp in every span: (nearly) one object, though the byte counts unique to each
  // span pass through the same cache
  assert.ok(new Set(spans.map((s) => s.attributes[0])).size < 5);
  // 20k distinct values of one key all land on 2048 cache slots: each decodes to its own value
  const many = agentTraces(20_000, 7);
  many.resourceSpans[0].scopeSpans[0].spans.forEach((s, i) => (s.attributes[0] = { key: 'k', value: `v${i % 5000}` }));
  const back = decodeTraces(encodeTraces(many));
  assert.deepStrictEqual(back, many);
  // a value that is not a scalar (bytes, arrays, kvlists) is never shared: mutable objects
  const nested = agentTraces(2, 3);
  for (const s of nested.resourceSpans[0].scopeSpans[0].spans) s.attributes[1] = { key: 'arr', value: ['a', 1n] };
  const n2 = decodeTraces(encodeTraces(nested)).resourceSpans[0].scopeSpans[0].spans;
  assert.notEqual(n2[0].attributes[1], n2[1].attributes[1]);
  assert.deepStrictEqual(n2[0].attributes[1], n2[1].attributes[1]);
});

for (const signal of ['traces', 'metrics', 'logs'] as const) {
  const arb = A[signal] as fc.Arbitrary<unknown>;
  test(`${signal}: our encoder's bytes decode in protobufjs to the same message (property)`, () => {
    const T = requestType(signal);
    fc.assert(
      fc.property(arb, (d) => {
        const ours = encodeSignal(signal as SignalType, d as never);
        const expected = T.toObject(T.fromObject(modelToPb(signal, d)), { ...PBJS_OBJECT, defaults: true });
        const actual = T.toObject(T.decode(ours), { ...PBJS_OBJECT, defaults: true });
        assert.deepStrictEqual(actual, expected);
      }),
      RUNS,
    );
  });

  test(`${signal}: protobufjs-encoded bytes decode with our decoder to the model (property)`, () => {
    const T = requestType(signal);
    fc.assert(
      fc.property(arb, (d) => {
        const bytes = T.encode(T.fromObject(modelToPb(signal, d))).finish();
        assert.deepStrictEqual(decodeSignal(signal as SignalType, bytes), d);
      }),
      RUNS,
    );
  });
}

test('edge values: int64 extremes, uint64 max, negative scale/offset, −0, NaN, nested values', () => {
  const d: MetricsData = {
    resourceMetrics: [
      {
        resource: { attributes: [{ key: 'deep', value: [[1n, -1n, new KeyValueList([{ key: 'x', value: null }])], 'é🙂'] }], droppedAttributesCount: 0 },
        scopeMetrics: [
          {
            scope: { name: 's', version: '', attributes: [], droppedAttributesCount: 0 },
            schemaUrl: '',
            metrics: [
              {
                name: 'g',
                description: '',
                unit: '',
                metadata: [],
                data: {
                  type: 'gauge',
                  dataPoints: [
                    { attributes: [], startTimeUnixNano: 0n, timeUnixNano: 2n ** 64n - 1n, value: -(2n ** 63n), exemplars: [], flags: 0 },
                    { attributes: [], startTimeUnixNano: 0n, timeUnixNano: 1n, value: -0, exemplars: [], flags: 1 },
                    { attributes: [], startTimeUnixNano: 0n, timeUnixNano: 1n, value: NaN, exemplars: [], flags: 0 },
                  ],
                },
              },
              {
                name: 'e',
                description: '',
                unit: '',
                metadata: [],
                data: {
                  type: 'exponentialHistogram',
                  aggregationTemporality: 1,
                  dataPoints: [
                    {
                      attributes: [],
                      startTimeUnixNano: 0n,
                      timeUnixNano: 0n,
                      count: 2n ** 63n,
                      sum: undefined,
                      scale: -3,
                      zeroCount: 0n,
                      positive: { offset: -(2 ** 31), bucketCounts: [0n, 2n ** 64n - 1n, 300n] },
                      negative: { offset: 0, bucketCounts: [] },
                      flags: 0,
                      exemplars: [],
                      min: -Infinity,
                      max: undefined,
                      zeroThreshold: 1e-300,
                    },
                  ],
                },
              },
            ],
          },
        ],
        schemaUrl: '',
      },
    ],
  };
  assert.deepStrictEqual(decodeMetrics(encodeMetrics(d)), d);
});

test('unknown fields (all wire types, incl. groups) are skipped', () => {
  const d = agentTraces(2);
  const known = encodeTraces(d);
  // Top-level unknown fields around the known ones: field 99 varint, fixed64, bytes, fixed32, group.
  const unknown = Buffer.from([
    0x98, 0x06, 0xff, 0xff, 0x01, // 99 varint
    0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, // 99 fixed64
    0x9a, 0x06, 0x03, 0x61, 0x62, 0x63, // 99 bytes
    0x9d, 0x06, 1, 2, 3, 4, // 99 fixed32
    0x9b, 0x06, 0x08, 0x01, 0x9c, 0x06, // 99 start group { field 1 varint } end group
  ]);
  assert.deepStrictEqual(decodeTraces(Buffer.concat([unknown, known, unknown])), d);
});

test('unpacked repeated scalars are accepted (proto3 parsers must accept both)', () => {
  // HistogramDataPoint with bucket_counts (6, fixed64) and explicit_bounds (7, double) unpacked.
  const dp = Buffer.concat([
    Buffer.from([0x31]), Buffer.from(new BigUint64Array([5n]).buffer),
    Buffer.from([0x31]), Buffer.from(new BigUint64Array([7n]).buffer),
    Buffer.from([0x39]), Buffer.from(new Float64Array([2.5]).buffer),
  ]);
  const hist = Buffer.concat([Buffer.from([0x0a, dp.length]), dp]);
  const metric = Buffer.concat([Buffer.from([0x4a, hist.length]), hist]);
  const sm = Buffer.concat([Buffer.from([0x12, metric.length]), metric]);
  const rm = Buffer.concat([Buffer.from([0x12, sm.length]), sm]);
  const req = Buffer.concat([Buffer.from([0x0a, rm.length]), rm]);
  const out = decodeMetrics(req);
  const data = out.resourceMetrics[0].scopeMetrics[0].metrics[0].data;
  assert.equal(data.type, 'histogram');
  if (data.type !== 'histogram') return;
  assert.deepStrictEqual(data.dataPoints[0].bucketCounts, [5n, 7n]);
  assert.deepStrictEqual(data.dataPoints[0].explicitBounds, [2.5]);
});

test('decoded ids are independent copies of the input', () => {
  const d = agentTraces(1);
  const bytes = encodeTraces(d);
  const out = decodeTraces(bytes);
  bytes.fill(0);
  assert.deepStrictEqual(out, d);
});

test('export response partial_success round-trips; empty means full success', () => {
  assert.equal(encodeExportResponse().length, 0);
  assert.equal(decodeExportResponse(new Uint8Array(0)), undefined);
  assert.equal(decodeExportResponse(Uint8Array.from([0x0a, 0x00])), undefined); // empty partial_success
  for (const ps of [
    { rejected: 3n, errorMessage: 'bad spans' },
    { rejected: 0n, errorMessage: 'warning only' },
    { rejected: -1n, errorMessage: '' },
  ]) {
    assert.deepStrictEqual(decodeExportResponse(encodeExportResponse(ps)), ps);
  }
  const T = requestType('traces').parent!.lookupType('ExportTraceServiceResponse');
  const o = T.toObject(T.decode(encodeExportResponse({ rejected: 7n, errorMessage: 'x' })), { longs: String });
  assert.deepStrictEqual(o, { partialSuccess: { rejectedSpans: '7', errorMessage: 'x' } });
});

test('strings: ASCII, 2/3/4-byte UTF-8, long, and lone surrogates (written as U+FFFD)', () => {
  const long = 'ü'.repeat(100) + '🙂'.repeat(50) + 'x'.repeat(300);
  const values = ['plain', 'é', '€uro', '🙂', long, 'k'.repeat(47), 'k'.repeat(48), 'ключ'.repeat(20)];
  const d = agentTraces(1);
  const span = d.resourceSpans[0].scopeSpans[0].spans[0];
  span.attributes = values.map((v, i) => ({ key: `${v.slice(0, 70)}#${i}`, value: v }));
  span.name = long;
  assert.deepStrictEqual(decodeTraces(encodeTraces(d)), d);
  // Same bytes as Node's own UTF-8 encoder, including the replacement of lone surrogates.
  span.attributes = [{ key: 'lone', value: 'a\ud800b\udc00c' }];
  span.name = '\ud83d';
  const out = decodeTraces(encodeTraces(d)).resourceSpans[0].scopeSpans[0].spans[0];
  assert.equal(out.attributes[0].value, Buffer.from('a\ud800b\udc00c', 'utf8').toString('utf8'));
  assert.equal(out.attributes[0].value, 'a\ufffdb\ufffdc');
  assert.equal(out.name, '\ufffd');
});
