// SIGTERM on the collector binary: receivers stop, queues drain into the exporter, exit code 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../peers/index.ts';
import { spawnCollector } from '../../collector/src/testing/process.ts';
import { makeTraces } from '../../collector/src/testing/fixtures.ts';
import { decodeJson, encodeSignal } from '../../proto/src/otlp/index.ts';

test('SIGTERM flushes queued data to the exporter before exit', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-e2e-stop-'));
  const [httpPort, telPort] = await freePorts(2);
  const out = join(dir, 'out.jsonl');
  const col = await spawnCollector(dir, `
receivers: { otlp: { protocols: { http: { endpoint: "127.0.0.1:${httpPort}" } } } }
exporters:
  file:
    path: ${out}
    sending_queue: { queue_size: 10000, num_consumers: 1 }
service:
  telemetry: { metrics: { address: "127.0.0.1:${telPort}" } }
  pipelines: { traces: { receivers: [otlp], exporters: [file] } }
`, telPort, { name: 'stop' });
  try {
    const body = encodeSignal('traces', makeTraces(100));
    await Promise.all(Array.from({ length: 50 }, () => fetch(`http://127.0.0.1:${httpPort}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: body as never }).then((r) => assert.equal(r.status, 200))));
    const r = await col.stop('SIGTERM');
    assert.equal(r.code, 0);
    let spans = 0;
    for (const line of readFileSync(out, 'utf8').trim().split('\n')) spans += decodeJson('traces', line).resourceSpans[0].scopeSpans[0].spans.length;
    assert.equal(spans, 5000, 'every accepted span was written before exit');
  } finally {
    await col.stop('SIGKILL').catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});
