// The reference collector's otlphttp exporter (tests/peers, otelcol v0.145.0, core confighttp) with
// each `compression` it offers → our OTLP/HTTP receiver = what was sent. Its Go encoders (klauspost
// zstd, golang/snappy block and framed, compress/zlib) are the ones a real deployment sends; lz4
// is not supported by our receiver and must be refused with 415.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { requires } from '../lib/env.ts';
import { startOtelcol, tryEnsurePeer } from '../peers/index.ts';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, sinkOf } from '../../collector/src/testing/components.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import { encodeSignal } from '../../proto/src/otlp/index.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';
import { waitFor } from '../lib/wait.ts';

const TIMEOUT = { timeout: 30 * 60_000 }; // a first peer build takes minutes
const ACCEPTED = ['gzip', 'deflate', 'zlib', 'zstd', 'snappy', 'x-snappy-framed'] as const;
const ALL = [...ACCEPTED, 'lz4'] as const;

test('reference otlphttp exporter with every compression → our OTLP/HTTP receiver = sent (lz4: 415)', TIMEOUT, async (t) => {
  const peer = await tryEnsurePeer('otelcol');
  if (!requires(t, peer.ok, `otelcol peer (${peer.error})`)) return;
  const ours = new Collector(parseConfig(parseYaml(`
receivers: { otlp: { protocols: { http: { endpoint: "127.0.0.1:0", max_request_body_size: 4MiB } }, metadata_keys: [content-encoding] } }
exporters: { capture/peer: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { traces: { receivers: [otlp], exporters: [capture/peer] } }
`)), { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await ours.start();
  const ourPort = (ours.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver).server.http!.port;
  // one otlp receiver → otlphttp exporter pipeline per compression, no queue and no retries so
  // that the exporter's outcome is the answer to our request
  const col = await startOtelcol(({ ports }) => `
receivers:
${ALL.map((c, i) => `  otlp/${c}: { protocols: { http: { endpoint: 127.0.0.1:${ports[i]} } } }`).join('\n')}
exporters:
${ALL.map((c) => `  otlphttp/${c}: { endpoint: http://127.0.0.1:${ourPort}, compression: ${c}, retry_on_failure: { enabled: false }, sending_queue: { enabled: false } }`).join('\n')}
service:
  pipelines:
${ALL.map((c) => `    traces/${c}: { receivers: [otlp/${c}], exporters: [otlphttp/${c}] }`).join('\n')}
`, { ports: ALL.length });
  try {
    const sink = sinkOf('capture/peer', 'traces');
    const sent = agentTraces(1000); // ~370 KB: several 64 KiB snappy frames
    const body = encodeSignal('traces', sent);
    for (const [i, c] of ALL.entries()) {
      const before = sink.batches.length;
      const r = await fetch(`http://127.0.0.1:${col.ports[i]}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: body as never });
      const text = await r.text();
      if (c === 'lz4') {
        assert.notEqual(r.status, 200, 'lz4 is refused');
        continue;
      }
      assert.equal(r.status, 200, `${c}: ${text}`);
      const got = await waitFor(`the ${c} request at our receiver`, () => sink.batches[before]);
      assert.equal(got.ctx.metadata?.['content-encoding'], c, `the exporter sent Content-Encoding: ${c}`);
      assert.deepStrictEqual(got.batch, sent, `${c}: what arrived is what was sent`);
    }
    const reqs = ours.telemetry.registry.get('kscope_receiver_requests_total')!;
    assert.equal(reqs.get({ receiver: 'otlp', transport: 'http', code: '200' }), ACCEPTED.length);
    assert.equal(reqs.get({ receiver: 'otlp', transport: 'http', code: '415' }), 1, 'lz4 answered 415');
  } finally {
    await col.stop();
    await ours.shutdown();
  }
});
