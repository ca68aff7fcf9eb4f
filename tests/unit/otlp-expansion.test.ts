// Input built to expand in memory: each nested message becomes objects of ~100-200 B, and an
// empty one is 2 bytes of protobuf, so `0a 00` repeated would decode a few MiB into hundreds of MB.
// The decoder allows one nested message per 4 bytes of input (plus a small floor): such input is
// refused with ProtoDecodeError (INVALID_ARGUMENT / 400), real telemetry is not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtoDecodeError, decodeLogs, decodeMetrics, decodeTraces, encodeLogs, encodeMetrics, encodeTraces } from '../../proto/src/otlp/index.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';
import { makeGaugeMetrics, makeLogs } from '../../collector/src/testing/fixtures.ts';

test('empty nested messages repeated are refused; the same count of real ones decodes', () => {
  const empties = Buffer.alloc(2 * 200_000);
  for (let i = 0; i < empties.length; i += 2) empties[i] = 0x0a; // ResourceSpans {} × 200k
  for (const decode of [decodeTraces, decodeMetrics, decodeLogs]) {
    assert.throws(() => decode(empties), (e: unknown) => e instanceof ProtoDecodeError && /nested messages/.test((e as Error).message));
  }
  // a few of them are fine (a floor for tiny requests)
  assert.equal(decodeTraces(empties.subarray(0, 2 * 500)).resourceSpans.length, 500);
});

test('real telemetry of every signal stays under the budget', () => {
  const t = agentTraces(10_000);
  assert.equal(decodeTraces(encodeTraces(t)).resourceSpans.reduce((n, r) => n + r.scopeSpans[0]!.spans.length, 0), 10_000);
  assert.equal(decodeMetrics(encodeMetrics(makeGaugeMetrics(20_000))).resourceMetrics.length, 1);
  assert.equal(decodeLogs(encodeLogs(makeLogs(20_000))).resourceLogs[0]!.scopeLogs[0]!.logRecords.length, 20_000);
});
