// The agent's disk spool (the otlp exporter's persistent sending_queue) across a collector outage
// and across an agent restart: nothing the workload caused is lost; duplicates (at-least-once) are
// counted and reported. Spans are identified by their span id, metric points by
// (pid, metric, attributes, start, time).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasBpf, requires } from '../lib/env.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import { Agent } from '../../agent/src/agent.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { freePorts } from '../peers/index.ts';
import { runWorkload, type WorkloadResult } from '../lib/workload.ts';
import {
  TRANSPORTS, agentConfig, attrOf, flatPoints, flatSpans, readOutput, startFileCollector, sumOf, waitFor, type Output,
} from './agent-harness.ts';

const ready = (): boolean => hasBpf() && nativeAvailable();

/** Spans a workload run causes: client connect ×N + refused connect + connection ×N, server accept ×N + connection ×N. */
const expectedSpans = (w: WorkloadResult) => 4 * w.connections.length + (w.refused ? 1 : 0);

interface Tally {
  expected: number;
  unique: number;
  received: number;
  duplicates: number;
  bytesSent: { expected: number; got: number; duplicatePoints: number };
}

/** Workload spans (by pid and ports) and the client's bytes-sent metric, deduplicated. */
function tally(o: Output, runs: WorkloadResult[]): Tally {
  const spans = flatSpans(o);
  let expected = 0;
  let received = 0;
  const ids = new Set<string>();
  for (const w of runs) {
    expected += expectedSpans(w);
    const ports = new Set(w.connections.map((c) => c.clientPort));
    for (const s of spans) {
      if (s.pid !== w.clientPid && s.pid !== w.serverPid) continue;
      const a = s.span.attributes;
      const mine = ports.has(Number(attrOf(a, 'client.port'))) || (w.refused && attrOf(a, 'server.port') === BigInt(w.ports.refused!));
      if (!mine) continue;
      received++;
      ids.add(s.id);
    }
  }
  const seen = new Set<string>();
  let bytes = 0;
  let dupPoints = 0;
  let want = 0;
  for (const w of runs) {
    want += w.connections.reduce((n, c) => n + c.sent, 0);
    for (const p of flatPoints(o)) {
      if (p.pid !== w.clientPid || p.metric !== 'kscope.tcp.bytes.sent' || attrOf(p.point.attributes, 'server.port') !== BigInt(w.ports.server)) continue;
      const key = `${p.pid}|${p.point.startTimeUnixNano}|${p.point.timeUnixNano}`;
      if (seen.has(key)) { dupPoints++; continue; }
      seen.add(key);
      bytes += sumOf([p]);
    }
  }
  return { expected, unique: ids.size, received, duplicates: received - ids.size, bytesSent: { expected: want, got: bytes, duplicatePoints: dupPoints } };
}

function report(t: TestContext, label: string, x: Tally): void {
  t.diagnostic(`${label}: spans expected ${x.expected}, unique ${x.unique}, received ${x.received}, duplicates ${x.duplicates} (at-least-once), lost ${x.expected - x.unique}; ` +
    `bytes.sent expected ${x.bytesSent.expected}, got ${x.bytesSent.got} (duplicate points ${x.bytesSent.duplicatePoints})`);
}

function spoolBytes(dir: string): number {
  let n = 0;
  if (!existsSync(dir)) return 0;
  for (const sig of readdirSync(dir)) {
    const d = join(dir, sig);
    if (!statSync(d).isDirectory()) continue;
    for (const f of readdirSync(d)) if (f.endsWith('.seg')) n += statSync(join(d, f)).size;
  }
  return n;
}

for (const transport of TRANSPORTS) test(`${transport}: collector down 10 s during a workload: everything arrives after it returns (0 lost)`, { timeout: 180_000 }, async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-agent-outage-'));
  const spool = join(dir, 'spool');
  let col = await startFileCollector(dir, { name: 'first', transport });
  const agent = new Agent({ config: agentConfig(col.grpcPort, { transport, spoolDir: spool, metricsInterval: '1s' }), registry: defaultRegistry() });
  let agentStopped = false;
  try {
    await agent.start();
    const runs: WorkloadResult[] = [];
    runs.push(await runWorkload({ connects: 10, exitCodes: [5], refused: true }));
    await new Promise((r) => setTimeout(r, 1500));
    const before = tally(readOutput(col.out), runs);
    report(t, 'before the outage', before);
    assert.equal(before.unique, before.expected, 'the first run arrived while the collector was up');

    const stopped = await col.proc.stop('SIGTERM');
    assert.equal(stopped.code, 0, 'collector stopped cleanly');
    const downSince = Date.now();
    runs.push(await runWorkload({ connects: 30, concurrency: 4, exitCodes: [6, 7], refused: true }));
    await new Promise((r) => setTimeout(r, 1500));
    const spooled = spoolBytes(spool);
    t.diagnostic(`spool during the outage: ${spooled} bytes on disk`);
    assert.ok(spooled > 0, 'the agent spooled to disk while the collector was down');
    const wait = 10_000 - (Date.now() - downSince);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    col = await startFileCollector(dir, { grpcPort: col.grpcPort, name: 'second', transport });
    t.diagnostic(`collector back after ${((Date.now() - downSince) / 1000).toFixed(1)} s`);
    runs.push(await runWorkload({ connects: 10, exitCodes: [8], refused: true }));

    const done = await waitFor(() => {
      const x = tally(readOutput(col.out), runs);
      return x.unique >= x.expected && x.bytesSent.got >= x.bytesSent.expected;
    }, 90_000, 500);
    await agent.stop();
    agentStopped = true;
    await new Promise((r) => setTimeout(r, 1000));
    const x = tally(readOutput(col.out), runs);
    report(t, 'after the outage', x);
    assert.ok(done, 'spooled data delivered after the collector returned');
    assert.equal(x.unique, x.expected, 'no span lost');
    assert.equal(x.bytesSent.got, x.bytesSent.expected, 'bytes.sent over all intervals (deduplicated) = bytes the client sent');
  } finally {
    if (!agentStopped) await agent.stop().catch(() => undefined);
    await col.proc.stop('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const transport of TRANSPORTS) test(`${transport}: agent restarted with a non-empty spool: the spooled batches are delivered`, { timeout: 180_000 }, async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-agent-restart-'));
  const spool = join(dir, 'spool');
  const [port] = await freePorts(1);
  // nobody listens on `port` yet: the collector is down from the start
  const cfg = agentConfig(port!, { transport, spoolDir: spool, metricsInterval: '1s' });
  (cfg.exporter.config as { sending_queue: Record<string, unknown> }).sending_queue.drain_timeout = '1s';
  const first = new Agent({ config: cfg, registry: defaultRegistry() });
  let second: Agent | undefined;
  let col: Awaited<ReturnType<typeof startFileCollector>> | undefined;
  try {
    await first.start();
    const w = await runWorkload({ connects: 15, concurrency: 3, exitCodes: [9, 10], refused: true });
    await new Promise((r) => setTimeout(r, 500));
    await first.stop();
    const spooled = spoolBytes(spool);
    t.diagnostic(`first agent stopped with ${spooled} bytes spooled`);
    assert.ok(spooled > 0, 'data left in the persistent queue');

    col = await startFileCollector(dir, { grpcPort: port, transport });
    second = new Agent({ config: agentConfig(port!, { transport, spoolDir: spool, metricsInterval: '1s' }), registry: defaultRegistry() });
    await second.start();
    const c = col;
    const done = await waitFor(() => {
      const x = tally(readOutput(c.out), [w]);
      return x.unique >= x.expected && x.bytesSent.got >= x.bytesSent.expected;
    }, 60_000, 500);
    await second.stop();
    await new Promise((r) => setTimeout(r, 1000));
    const x = tally(readOutput(col.out), [w]);
    report(t, 'after the restart', x);
    assert.ok(done, 'the new agent delivered what the first one spooled');
    assert.equal(x.unique, x.expected, 'no span lost');
    assert.equal(x.bytesSent.got, x.bytesSent.expected);
    // process exits of the short processes also came out of the spool (metrics signal)
    const exits = flatPoints(readOutput(col.out)).filter((p) => p.metric === 'kscope.process.exits' && w.procs.some((q) => q.pid === p.pid));
    assert.equal(sumOf(exits), w.procs.length);
  } finally {
    await first.stop().catch(() => undefined);
    await second?.stop().catch(() => undefined);
    await col?.proc.stop('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});
