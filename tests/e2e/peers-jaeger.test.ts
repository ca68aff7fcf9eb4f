// Peer smoke test: Jaeger v2 takes OTLP (gRPC and HTTP, sent by telemetrygen) and serves it back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requires } from '../lib/env.ts';
import { tryEnsurePeer, startJaeger, telemetrygen } from '../peers/index.ts';
import { eventually } from '../peers/wait.ts';

// A first build takes minutes on 2 cores. The runner's --test-timeout (10 min) caps each file,
// which is why every long Go build (otelcol, Kubernetes, Jaeger) has a file of its own.
const BUILD_TIMEOUT = { timeout: 60 * 60_000 };

test('jaeger + telemetrygen: OTLP in, traces out of the query API', BUILD_TIMEOUT, async (t) => {
  const jaegerPeer = await tryEnsurePeer('jaeger');
  if (!requires(t, jaegerPeer.ok, `jaeger peer (${jaegerPeer.error})`)) return;
  const tg = await tryEnsurePeer('telemetrygen');
  if (!requires(t, tg.ok, `telemetrygen peer (${tg.error})`)) return;
  const jaeger = await startJaeger();
  try {
    assert.deepEqual(await jaeger.services(), []);
    await telemetrygen(['traces', '--otlp-endpoint', `127.0.0.1:${jaeger.otlpGrpcPort}`, '--otlp-insecure',
      '--traces', '3', '--child-spans', '1', '--service', 'smoke-grpc']);
    // OTLP/HTTP as well (telemetrygen's HTTP mode).
    await telemetrygen(['traces', '--otlp-endpoint', `127.0.0.1:${jaeger.otlpHttpPort}`, '--otlp-http', '--otlp-insecure',
      '--traces', '2', '--service', 'smoke-http']);
    const traces = await eventually('traces in jaeger', async () => {
      const tr = await jaeger.traces('smoke-grpc');
      return tr.length >= 3 ? tr : undefined;
    });
    assert.equal(traces.length, 3);
    // Each telemetrygen trace: one parent and one child span.
    for (const tr of traces) assert.equal(tr.spans.length, 2);
    const services = await eventually('both services', async () => {
      const s = await jaeger.services();
      return s.includes('smoke-http') ? s : undefined;
    });
    assert.ok(services.includes('smoke-grpc'));
  } finally {
    const r = await jaeger.stop();
    assert.equal(r.forced, false, `jaeger ignored SIGTERM; log: ${jaeger.logFile}`);
  }
});
