// Peer smoke test: the reference collector (ocb build) has its components, takes OTLP/HTTP JSON,
// writes it with the file exporter, and its OTel Arrow exporter/receiver pair round-trips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { requires } from '../lib/env.ts';
import { tryEnsurePeer, startOtelcol } from '../peers/index.ts';
import { eventually } from '../peers/wait.ts';

// A first build takes minutes on 2 cores. The runner's --test-timeout (10 min) caps each file,
// which is why every long Go build (otelcol, Kubernetes, Jaeger) has a file of its own.
const BUILD_TIMEOUT = { timeout: 60 * 60_000 };

function hex(n: number): string {
  return Array.from({ length: n }, (_, i) => ((i * 37 + 11) & 0xff).toString(16).padStart(2, '0')).join('');
}

test('otelcol: has the expected components, takes OTLP/HTTP JSON and writes it with the file exporter', BUILD_TIMEOUT, async (t) => {
  const peer = await tryEnsurePeer('otelcol');
  if (!requires(t, peer.ok, `otelcol peer (${peer.error})`)) return;

  // The build must carry every component the interop tests rely on.
  const components = execFileSync(peer.path!, ['components'], { encoding: 'utf8' });
  for (const name of ['otlp', 'otelarrow', 'otlp_grpc', 'otlp_http', 'file', 'debug', 'batch']) {
    assert.match(components, new RegExp(`name: ${name}\\b`), `component ${name} missing from otelcol build`);
  }

  // Two paths: OTLP straight to a file, and OTLP → otelarrow exporter → a second collector's
  // otelarrow receiver → file, which proves the OTel Arrow pair in this build interoperates.
  const sink = await startOtelcol(({ ports, dir }) => `
receivers:
  otelarrow:
    protocols:
      grpc: { endpoint: 127.0.0.1:${ports[0]} }
exporters:
  file: { path: ${join(dir, 'arrow.jsonl')} }
service:
  pipelines:
    traces: { receivers: [otelarrow], exporters: [file] }
`, { ports: 1 });
  const col = await startOtelcol(({ ports, dir }) => `
receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:${ports[0]} }
      grpc: { endpoint: 127.0.0.1:${ports[1]} }
processors:
  batch: { timeout: 100ms }
exporters:
  file: { path: ${join(dir, 'traces.jsonl')} }
  otelarrow: { endpoint: 127.0.0.1:${sink.ports[0]}, tls: { insecure: true } }
  debug: {}
service:
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [file, otelarrow, debug] }
`);
  try {
    const traceId = hex(16);
    const body = {
      resourceSpans: [{
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'peers-smoke' } }] },
        scopeSpans: [{ scope: { name: 'smoke' }, spans: [{
          traceId, spanId: hex(8), name: 'smoke-span', kind: 2,
          startTimeUnixNano: '1700000000000000000', endTimeUnixNano: '1700000000500000000',
        }] }],
      }],
    };
    const res = await fetch(`http://127.0.0.1:${col.ports[0]}/v1/traces`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    assert.equal(res.status, 200, await res.text());
    const out = join(col.dir, 'traces.jsonl');
    const line = await eventually('file exporter output', async () => {
      if (!existsSync(out)) return undefined;
      const text = readFileSync(out, 'utf8');
      return text.includes('smoke-span') ? text : undefined;
    });
    const written = JSON.parse(line.trim().split('\n')[0]!);
    const span = written.resourceSpans[0].scopeSpans[0].spans[0];
    assert.equal(span.name, 'smoke-span');
    assert.equal(span.traceId, traceId);
    const viaArrow = await eventually('otelarrow hop output', async () => {
      const f = join(sink.dir, 'arrow.jsonl');
      if (!existsSync(f)) return undefined;
      const text = readFileSync(f, 'utf8');
      return text.includes('smoke-span') ? text : undefined;
    });
    const arrowSpan = JSON.parse(viaArrow.trim().split('\n')[0]!).resourceSpans[0].scopeSpans[0].spans[0];
    assert.equal(arrowSpan.traceId, traceId);
    assert.equal(arrowSpan.endTimeUnixNano, '1700000000500000000');
  } finally {
    const r = await col.stop();
    const r2 = await sink.stop();
    assert.equal(r.forced, false, `otelcol ignored SIGTERM; log: ${col.logFile}`);
    assert.equal(r2.forced, false, `otelcol (arrow sink) ignored SIGTERM; log: ${sink.logFile}`);
  }
  assert.equal(existsSync(col.dir), false, 'temp dir removed on stop');
});
