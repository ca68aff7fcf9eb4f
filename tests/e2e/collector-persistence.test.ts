// Backend down for 30 s, collector SIGKILLed and restarted meanwhile → every span arrives once the
// backend is back (persistent queue + retry). The backend is Jaeger (OTLP in, /api/traces out) when
// the peer is built, else a second kscope collector acting as OTLP backend (reported as a diagnostic;
// in CI a missing Jaeger fails the test).
// "Down" is a TCP proxy in front of the backend that closes every connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { freePorts, peerBuilt, startJaeger } from '../peers/index.ts';
import { inCI } from '../lib/env.ts';
import { spawnCollector, ToggleProxy } from '../../collector/src/testing/process.ts';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, captured, sinkOf } from '../../collector/src/testing/components.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import { encodeSignal } from '../../proto/src/otlp/index.ts';
import { emptyScope, type Span, type TracesData } from '../../proto/src/model.ts';

interface Backend {
  kind: string;
  grpcPort: number;
  spanIds(service: string): Promise<Set<string>>;
  stop(): Promise<unknown>;
}

async function startBackend(): Promise<Backend> {
  // CI builds the peers first (.ci/run): there the fallback would hide a missing Jaeger
  if (inCI && !peerBuilt('jaeger')) throw new Error('prerequisite missing in CI: the Jaeger peer (tests/peers)');
  if (peerBuilt('jaeger')) {
    const j = await startJaeger();
    return {
      kind: 'jaeger',
      grpcPort: j.otlpGrpcPort,
      async spanIds(service) {
        const ids = new Set<string>();
        for (const tr of await j.traces(service, 1000)) for (const s of tr.spans) ids.add(s.spanID);
        return ids;
      },
      stop: () => j.stop(),
    };
  }
  const cfg = parseConfig(parseYaml(`
receivers: { otlp: { protocols: { grpc: { endpoint: "127.0.0.1:0" } } } }
exporters: { capture/backend: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { traces: { receivers: [otlp], exporters: [capture/backend] } }
`));
  const col = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await col.start();
  const port = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver).server.grpc!.port;
  return {
    kind: 'kscope collector (Jaeger peer not built)',
    grpcPort: port,
    async spanIds(service) {
      const ids = new Set<string>();
      for (const { batch } of (captured.has('capture/backend:traces') ? sinkOf('capture/backend', 'traces').batches : []))
        for (const rs of batch.resourceSpans) {
          if (!rs.resource.attributes.some((a) => a.key === 'service.name' && a.value === service)) continue;
          for (const ss of rs.scopeSpans) for (const s of ss.spans) ids.add(Buffer.from(s.spanId).toString('hex'));
        }
      return ids;
    },
    stop: () => col.shutdown(),
  };
}

let seq = 0;
function traces(service: string, nTraces: number, spansPer: number): TracesData {
  const spans: Span[] = [];
  const now = BigInt(Date.now()) * 1_000_000n;
  for (let t = 0; t < nTraces; t++) {
    const traceId = Buffer.alloc(16);
    traceId.writeUInt32BE(process.pid, 0);
    traceId.writeUInt32BE(++seq, 12);
    for (let s = 0; s < spansPer; s++) {
      const spanId = Buffer.alloc(8);
      spanId.writeUInt32BE(seq, 0);
      spanId.writeUInt32BE(s + 1, 4);
      spans.push({ traceId: new Uint8Array(traceId), spanId: new Uint8Array(spanId), traceState: '', parentSpanId: new Uint8Array(0), flags: 1, name: `op-${s}`, kind: 2, startTimeUnixNano: now, endTimeUnixNano: now + 1_000_000n, attributes: [], droppedAttributesCount: 0, events: [], droppedEventsCount: 0, links: [], droppedLinksCount: 0, status: { code: 0, message: '' } });
    }
  }
  return { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: service }], droppedAttributesCount: 0 }, schemaUrl: '', scopeSpans: [{ scope: emptyScope(), schemaUrl: '', spans }] }] };
}

test('backend down 30 s + collector SIGKILL/restart: all spans arrive (persistent queue, retry)', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-e2e-pq-'));
  const backend = await startBackend();
  t.diagnostic(`backend: ${backend.kind}`);
  const proxy = new ToggleProxy(backend.grpcPort);
  const proxyPort = await proxy.listen();
  proxy.setUp(false);
  const downSince = Date.now();
  const [httpPort, telPort] = await freePorts(2);
  const service = `kscope-e2e-${process.pid}-${Date.now() % 100000}`;
  const config = `
receivers:
  otlp: { protocols: { http: { endpoint: "127.0.0.1:${httpPort}" } } }
exporters:
  otlp:
    endpoint: "127.0.0.1:${proxyPort}"
    tls: { insecure: true }
    compression: none
    timeout: 2s
    retry_on_failure: { initial_interval: 200ms, max_interval: 1s, max_elapsed_time: 0 }
    sending_queue: { num_consumers: 2, storage: { directory: "${join(dir, 'queue')}", max_bytes: 64MiB, segment_bytes: 64KiB } }
service:
  telemetry: { metrics: { address: "127.0.0.1:${telPort}" } }
  pipelines: { traces: { receivers: [otlp], exporters: [otlp] } }
`;
  const send = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = await fetch(`http://127.0.0.1:${httpPort}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeSignal('traces', traces(service, 5, 5)) as never });
      assert.equal(r.status, 200);
    }
  };
  let col = await spawnCollector(dir, config, telPort, { name: 'first' });
  try {
    await send(20); // 500 spans, acknowledged = on disk
    await new Promise((r) => setTimeout(r, 1500));
    const killed = await col.stop('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    assert.ok(readdirSync(join(dir, 'queue')).some((f) => f.endsWith('.seg')), 'queued data on disk');
    col = await spawnCollector(dir, config, telPort, { name: 'second' });
    await send(10); // 250 more
    const wait = 30_000 - (Date.now() - downSince);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    proxy.setUp(true);
    t.diagnostic(`backend up after ${Math.round((Date.now() - downSince) / 1000)} s down`);
    const end = Date.now() + 60_000;
    let ids = new Set<string>();
    while (Date.now() < end) {
      ids = await backend.spanIds(service);
      if (ids.size >= 750) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(ids.size, 750, 'every span arrived (duplicates allowed, loss not)');
    const stopped = await col.stop('SIGTERM');
    assert.equal(stopped.code, 0, 'clean exit on SIGTERM');
  } finally {
    await col.stop('SIGKILL').catch(() => {});
    await proxy.close();
    await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
