// Interop with the reference OpenTelemetry Collector (tests/peers, otelcol v0.145.0):
// 1. our OTLP/gRPC client → its otlp receiver → its file exporter (OTLP/JSON) → our JSON decoder
//    = what we sent, field by field, for traces, metrics (every type) and logs;
// 2. our client → its otlp receiver → its otlp exporter → our OTLP/gRPC server = what we sent;
// 3. its exporter honours our RESOURCE_EXHAUSTED + RetryInfo (retries after our delay, not before).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { requires } from '../lib/env.ts';
import { startOtelcol, tryEnsurePeer } from '../peers/index.ts';
import { OtlpGrpcClient } from '../../proto/src/grpc/otlp-client.ts';
import { OtlpGrpcServer } from '../../proto/src/grpc/otlp-server.ts';
import { decodeJson } from '../../proto/src/otlp/index.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';
import { countItems, type SignalData, type SignalType } from '../../proto/src/model.ts';
import { ThrottledError } from '../../collector/src/component/errors.ts';
import { arbs } from '../unit/otlp-helpers.ts';
import { completeLines } from '../lib/jsonl.ts';
import { waitFor } from '../lib/wait.ts';

const SIGNALS = ['traces', 'metrics', 'logs'] as const;
const TIMEOUT = { timeout: 30 * 60_000 }; // a first peer build takes minutes

/** Generated payloads (every metric type, nested values, extreme integers), non-empty. */
function payloads(): { [S in SignalType]: SignalData[S][] } {
  const A = arbs();
  const pick = <S extends SignalType>(s: S, seed: number) =>
    fc
      .sample(A[s] as fc.Arbitrary<SignalData[S]>, { numRuns: 60, seed })
      .filter((d) => countItems(s, d) > 0)
      .slice(0, 6);
  return { traces: [agentTraces(200), ...pick('traces', 1)], metrics: pick('metrics', 2), logs: pick('logs', 3) };
}

test('our client → reference otlp receiver → file exporter JSON → our JSON decoder = sent', TIMEOUT, async (t) => {
  const peer = await tryEnsurePeer('otelcol');
  if (!requires(t, peer.ok, `otelcol peer (${peer.error})`)) return;
  const col = await startOtelcol(({ ports, dir }) => `
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:${ports[0]} }
exporters:
  file/traces: { path: ${join(dir, 'traces.jsonl')} }
  file/metrics: { path: ${join(dir, 'metrics.jsonl')} }
  file/logs: { path: ${join(dir, 'logs.jsonl')} }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [file/traces] }
    metrics: { receivers: [otlp], exporters: [file/metrics] }
    logs: { receivers: [otlp], exporters: [file/logs] }
`, { ports: 1 });
  const client = new OtlpGrpcClient({ address: `127.0.0.1:${col.ports[0]}` });
  try {
    const sent = payloads();
    for (const s of SIGNALS) {
      for (const d of sent[s]) assert.equal(await client.export(s, d as never), undefined);
      const file = join(col.dir, `${s}.jsonl`);
      const lines = await waitFor(`${sent[s].length} lines in ${s}.jsonl`, () => {
        const l = completeLines(file);
        return l.length >= sent[s].length ? l : undefined;
      });
      assert.equal(lines.length, sent[s].length);
      lines.forEach((line, i) => assert.deepStrictEqual(decodeJson(s, line), sent[s][i], `${s} request ${i}`));
    }
  } finally {
    client.close();
    await col.stop();
  }
});

test('our client → reference receiver → reference otlp exporter → our server = sent; RetryInfo honoured', TIMEOUT, async (t) => {
  const peer = await tryEnsurePeer('otelcol');
  if (!requires(t, peer.ok, `otelcol peer (${peer.error})`)) return;
  const received: { signal: SignalType; data: unknown; at: number }[] = [];
  let throttleNext = 0;
  const server = new OtlpGrpcServer({
    handler: async (signal, data) => {
      received.push({ signal, data, at: Date.now() });
      if (throttleNext > 0) {
        throttleNext--;
        throw new ThrottledError('slow down', 700);
      }
    },
  });
  const ourPort = await server.listen('127.0.0.1:0');
  const col = await startOtelcol(({ ports }) => `
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:${ports[0]} }
exporters:
  otlp:
    endpoint: 127.0.0.1:${ourPort}
    tls: { insecure: true }
    compression: gzip
    retry_on_failure: { enabled: true, initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 20s }
    sending_queue: { enabled: false }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [otlp] }
    metrics: { receivers: [otlp], exporters: [otlp] }
    logs: { receivers: [otlp], exporters: [otlp] }
`, { ports: 1 });
  const client = new OtlpGrpcClient({ address: `127.0.0.1:${col.ports[0]}` });
  try {
    const sent = payloads();
    for (const s of SIGNALS) {
      received.length = 0;
      for (const d of sent[s]) await client.export(s, d as never);
      await waitFor(`${sent[s].length} ${s} requests at our server`, () => (received.length >= sent[s].length ? true : undefined));
      assert.equal(received.length, sent[s].length);
      received.forEach((r, i) => {
        assert.equal(r.signal, s);
        assert.deepStrictEqual(r.data, sent[s][i], `${s} request ${i}`);
      });
    }

    // Throttle once: the reference exporter must wait ≥ our RetryInfo delay (700 ms), not its 50 ms backoff.
    received.length = 0;
    throttleNext = 1;
    const d = agentTraces(3);
    await client.export('traces', d, { timeoutMs: 20_000 });
    await waitFor('the retried request', () => (received.length >= 2 ? true : undefined));
    assert.deepStrictEqual(received[1].data, d);
    const gap = received[1].at - received[0].at;
    assert.ok(gap >= 600, `retried after ${gap} ms; RetryInfo asked for 700 ms`);
  } finally {
    client.close();
    await col.stop();
    await server.shutdown(1000);
  }
});
