// A flood against a collector whose backend is down: the memory limiter starts refusing (503),
// peak RSS (VmHWM) stays near the configured limit, and once the backend is back and the queue has
// drained, the collector accepts again (GC forced via --expose-gc).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { freePorts } from '../peers/index.ts';
import { spawnCollector, ToggleProxy } from '../../collector/src/testing/process.ts';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import { encodeSignal } from '../../proto/src/otlp/index.ts';

const MiB = 1024 * 1024;

function procStatus(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function metric(telPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${telPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

test('flood: memory limiter refuses, RSS stays bounded, throughput recovers', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-e2e-mem-'));
  // Backend: an in-process collector with a null sink, behind a proxy that starts "down".
  const backend = new Collector(parseConfig(parseYaml(`
receivers: { otlp: { protocols: { grpc: { endpoint: "127.0.0.1:0", max_recv_msg_size: 64MiB } } } }
exporters: { nop: {} }
service: { telemetry: { metrics: { address: "" } }, pipelines: { traces: { receivers: [otlp], exporters: [nop] } } }
`)), { registry: defaultRegistry(), logger: testLogger() });
  await backend.start();
  const backendPort = (backend.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver).server.grpc!.port;
  const proxy = new ToggleProxy(backendPort);
  const proxyPort = await proxy.listen();
  const [httpPort, telPort] = await freePorts(2);
  const limitMib = 400;
  const col = await spawnCollector(dir, `
receivers:
  otlp: { protocols: { http: { endpoint: "127.0.0.1:${httpPort}", max_request_body_size: 16MiB } } }
processors:
  memory_limiter: { limit_mib: ${limitMib}, spike_limit_mib: 100, check_interval: 50ms, min_gc_interval: 500ms, min_gc_interval_when_soft_limited: 1s }
exporters:
  otlp:
    endpoint: "127.0.0.1:${proxyPort}"
    tls: { insecure: true }
    compression: none
    retry_on_failure: { initial_interval: 100ms, max_interval: 500ms, max_elapsed_time: 0 }
    sending_queue: { queue_size: 100000, num_consumers: 4 }
service:
  telemetry: { logs: { level: warn }, metrics: { address: "127.0.0.1:${telPort}" } }
  pipelines: { traces: { receivers: [otlp], processors: [memory_limiter], exporters: [otlp] } }
`, telPort, { nodeArgs: ['--expose-gc'], name: 'flood' });
  try {
    const body = encodeSignal('traces', makeTraces(2000));
    t.diagnostic(`request body ${Math.round(body.length / 1024)} KiB, baseline RSS ${Math.round(procStatus(col.proc.pid!, 'VmRSS') / MiB)} MiB`);
    const post = async () => {
      try {
        const r = await fetch(`http://127.0.0.1:${httpPort}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: body as never });
        await r.arrayBuffer();
        return r.status;
      } catch {
        return 0;
      }
    };
    // Flood with 8 concurrent senders until refusals dominate, for at most 60 s.
    const counts = new Map<number, number>();
    const end = Date.now() + 60_000;
    let refusedInARow = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (Date.now() < end && refusedInARow < 200) {
        const s = await post();
        counts.set(s, (counts.get(s) ?? 0) + 1);
        refusedInARow = s === 503 ? refusedInARow + 1 : 0;
      }
    }));
    const peak = procStatus(col.proc.pid!, 'VmHWM');
    t.diagnostic(`flood statuses ${JSON.stringify([...counts])}, peak RSS ${Math.round(peak / MiB)} MiB (limit ${limitMib} MiB)`);
    assert.ok((counts.get(503) ?? 0) >= 200, 'the memory limiter refused with 503');
    assert.ok((counts.get(200) ?? 0) > 0, 'data was accepted before the limit');
    assert.ok(peak < (limitMib + 100) * MiB, `peak RSS ${Math.round(peak / MiB)} MiB bounded near the ${limitMib} MiB limit`);
    assert.ok((await metric(telPort, 'kscope_collector_refused_items_total{kind="receiver"')) > 0);

    // Backend back: the queue drains, GC frees, intake recovers.
    proxy.setUp(true);
    const rEnd = Date.now() + 90_000;
    let status = 0;
    while (Date.now() < rEnd) {
      status = await post();
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    t.diagnostic(`recovered: RSS ${Math.round(procStatus(col.proc.pid!, 'VmRSS') / MiB)} MiB, queue ${await metric(telPort, 'kscope_exporter_queue_size')}`);
    assert.equal(status, 200, 'accepting again after the backend drained the queue');
    // The first request can be let in while the queue still drains (RSS just under the soft
    // limit); sustained intake is measured once it has drained.
    for (const qEnd = Date.now() + 60_000; Date.now() < qEnd && (await metric(telPort, 'kscope_exporter_queue_size')) > 0;) await new Promise((r) => setTimeout(r, 250));
    let ok = 0;
    for (let i = 0; i < 10; i++) if ((await post()) === 200) ok++;
    assert.ok(ok >= 8, `sustained throughput after recovery (${ok}/10)`);
    assert.equal((await col.stop('SIGTERM')).code, 0);
  } finally {
    await col.stop('SIGKILL').catch(() => {});
    await proxy.close();
    await backend.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
});
