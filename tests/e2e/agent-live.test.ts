// Scripted workload → live agent (eBPF) → our collector (child process, OTLP/gRPC → OTLP/JSON
// files) → read back: spans, metrics and logs of the workload's own pids. The agent is not
// filtered (the workload's server and client are children with their own pids, which
// probes.target_tgid could not name before they exist); assertions select the workload's pids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasBpf, requires } from '../lib/env.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import { Agent } from '../../agent/src/agent.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { SpanKind, StatusCode } from '../../proto/src/model.ts';
import { runWorkload } from '../lib/workload.ts';
import {
  TRANSPORTS, agentConfig, attrOf, flatLogs, flatPoints, flatSpans, histCount, readOutput, startFileCollector, sumOf, waitFor,
} from './agent-harness.ts';

for (const transport of TRANSPORTS) test(`live agent → collector (${transport}) → files: the workload's spans, metrics and logs`, { timeout: 120_000 }, async (t) => {
  if (!requires(t, hasBpf() && nativeAvailable(), 'root, BPF and the native addon')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-agent-live-'));
  const col = await startFileCollector(dir, { transport });
  const agent = new Agent({ config: agentConfig(col.grpcPort, { transport, metricsInterval: '1s' }), registry: defaultRegistry() });
  let stopped = false;
  try {
    await agent.start();
    assert.equal(agent.mode, 'live', 'the agent attached to the kernel (no fixture fallback)');
    const ready = await fetch(`http://127.0.0.1:${agent.serverPort}/readyz`);
    assert.equal(ready.status, 200);

    const w = await runWorkload({ connects: 5, bytes: 1000, replyBytes: 64, exitCodes: [3, 42, 200], refused: true });
    t.diagnostic(`workload: server ${w.serverPid}:${w.ports.server}, client ${w.clientPid}, refused port ${w.ports.refused}, sh ${w.procs.map((p) => p.pid).join(',')}`);
    assert.equal((await fetch(`http://127.0.0.1:${agent.serverPort}/healthz`)).status, 200);
    // Records reach user space within the ring poll interval (200 ms by default): poll for them.
    let self = '';
    const decoded = (kind: string) => Number(new RegExp(`^kscope_agent_events_total\\{kind="${kind}"\\} (\\d+)`, 'm').exec(self)?.[1] ?? 0);
    for (const end = Date.now() + 5000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
      self = await (await fetch(`http://127.0.0.1:${agent.serverPort}/metrics`)).text();
      if (decoded('tcp') >= 21 && decoded('proc') >= 6) break;
    }
    assert.ok(decoded('tcp') >= 21 && decoded('proc') >= 6, `self-metrics count decoded events:\n${self.slice(0, 600)}`);
    // the exporters' own counters (queue, retries, drops) are served there too
    for (const signal of ['traces', 'metrics', 'logs'])
      assert.match(self, new RegExp(`^kscope_exporter_sent_items_total\\{[^}]*exporter="[a-z]+/${signal}"`, 'm'), `exporter counters for ${signal} on /metrics`);
    // no grace period: stop() itself must drain the rings and flush what the pipeline holds
    await agent.stop();
    stopped = true;

    const pids = new Set([w.serverPid, w.clientPid, ...w.procs.map((p) => p.pid)]);
    const clientPorts = new Set(w.connections.map((c) => c.clientPort));
    // the collector writes asynchronously: wait for what the agent flushed at stop
    const complete = () => {
      const o = readOutput(col.out);
      const spans = flatSpans(o).filter((s) => s.pid !== undefined && pids.has(s.pid));
      const exits = flatPoints(o).filter((p) => p.metric === 'kscope.process.exits' && p.pid !== undefined && pids.has(p.pid));
      return spans.length >= 5 * 4 + 1 && sumOf(exits) >= 5;
    };
    assert.ok(await waitFor(complete, 20_000), 'the collector wrote the workload\'s telemetry');
    const o = readOutput(col.out);
    const spans = flatSpans(o);

    // ---- spans
    const client = spans.filter((s) => s.pid === w.clientPid);
    const server = spans.filter((s) => s.pid === w.serverPid);
    const connects = client.filter((s) => s.span.name === 'tcp connect' && s.span.status.code !== StatusCode.Error);
    const failed = client.filter((s) => s.span.name === 'tcp connect' && s.span.status.code === StatusCode.Error);
    const clientConns = client.filter((s) => s.span.name === 'tcp connection' && attrOf(s.span.attributes, 'server.port') === BigInt(w.ports.server));
    const accepts = server.filter((s) => s.span.name === 'tcp accept' && clientPorts.has(Number(attrOf(s.span.attributes, 'client.port'))));
    const serverConns = server.filter((s) => s.span.name === 'tcp connection' && clientPorts.has(Number(attrOf(s.span.attributes, 'client.port'))));
    t.diagnostic(`spans: ${spans.length} total; workload client ${client.length}, server ${server.length}`);

    assert.equal(connects.length, 5, 'one tcp connect span per connect');
    for (const s of connects) {
      const a = s.span.attributes;
      assert.equal(s.span.kind, SpanKind.Client);
      assert.equal(attrOf(a, 'network.transport'), 'tcp');
      assert.equal(attrOf(a, 'network.type'), 'ipv4');
      assert.equal(attrOf(a, 'network.peer.address'), '127.0.0.1');
      assert.equal(attrOf(a, 'network.peer.port'), BigInt(w.ports.server));
      assert.equal(attrOf(a, 'server.address'), '127.0.0.1');
      assert.equal(attrOf(a, 'server.port'), BigInt(w.ports.server));
      assert.equal(attrOf(a, 'client.address'), '127.0.0.1');
      assert.ok(clientPorts.has(Number(attrOf(a, 'client.port'))), 'client.port is one of the workload\'s ephemeral ports');
      assert.ok(s.span.endTimeUnixNano > s.span.startTimeUnixNano, 'connect span has a duration');
      assert.equal(attrOf(s.resource.attributes, 'process.pid'), BigInt(w.clientPid));
    }
    assert.deepEqual(new Set(connects.map((s) => Number(attrOf(s.span.attributes, 'client.port')))), clientPorts);

    assert.equal(failed.length, 1, 'one failed connect');
    const f = failed[0]!.span;
    assert.equal(f.kind, SpanKind.Client);
    assert.equal(f.status.message, 'ECONNREFUSED');
    assert.equal(attrOf(f.attributes, 'error.type'), 'ECONNREFUSED');
    assert.equal(attrOf(f.attributes, 'server.port'), BigInt(w.ports.refused!));

    assert.equal(accepts.length, 5, 'one tcp accept span per accepted connection');
    for (const s of accepts) {
      assert.equal(s.span.kind, SpanKind.Server);
      assert.equal(attrOf(s.span.attributes, 'server.port'), BigInt(w.ports.server));
      assert.equal(attrOf(s.span.attributes, 'network.peer.port'), attrOf(s.span.attributes, 'client.port'));
    }

    assert.equal(clientConns.length, 5, 'client side: one tcp connection span per connection');
    for (const s of clientConns) {
      assert.equal(s.span.kind, SpanKind.Internal);
      assert.equal(attrOf(s.span.attributes, 'kscope.tcp.bytes_sent'), 1000n);
      assert.equal(attrOf(s.span.attributes, 'kscope.tcp.bytes_received'), 64n);
      // the connection span is the child of the connect span of the same socket
      const parent = connects.find((c) => Buffer.from(c.span.spanId).equals(Buffer.from(s.span.parentSpanId)));
      assert.ok(parent, 'tcp connection span\'s parent is its tcp connect span');
      assert.deepEqual(parent.span.traceId, s.span.traceId);
    }
    assert.equal(serverConns.length, 5, 'server side: one tcp connection span per connection');
    for (const s of serverConns) {
      assert.equal(attrOf(s.span.attributes, 'server.port'), BigInt(w.ports.server), 'inbound connection: server.* is the local end');
      assert.equal(attrOf(s.span.attributes, 'kscope.tcp.bytes_sent'), 64n);
      assert.equal(attrOf(s.span.attributes, 'kscope.tcp.bytes_received'), 1000n);
    }

    // ---- metrics (delta temporality: every exported interval adds up)
    const points = flatPoints(o);
    const peerIs = (port: number) => (p: (typeof points)[number]) =>
      attrOf(p.point.attributes, 'server.address') === '127.0.0.1' && attrOf(p.point.attributes, 'server.port') === BigInt(port);
    const of = (pid: number, name: string) => points.filter((p) => p.pid === pid && p.metric === name);

    const dur = of(w.clientPid, 'kscope.tcp.connect.duration').filter(peerIs(w.ports.server));
    assert.ok(dur.every((p) => p.type === 'exponentialHistogram'));
    assert.equal(histCount(dur), 5, 'connect duration histogram count = connects to the server');
    const durSum = dur.reduce((s, p) => s + ((p.point as { sum?: number }).sum ?? 0), 0);
    assert.ok(durSum > 0 && durSum < 5, `connect durations are seconds (sum ${durSum})`);

    assert.equal(sumOf(of(w.clientPid, 'kscope.tcp.bytes.sent').filter(peerIs(w.ports.server))), 5000, 'bytes sent by the client');
    assert.equal(sumOf(of(w.clientPid, 'kscope.tcp.bytes.received').filter(peerIs(w.ports.server))), 5 * 64, 'bytes received by the client');
    assert.equal(sumOf(of(w.serverPid, 'kscope.tcp.bytes.received').filter(peerIs(w.ports.server))), 5000, 'bytes received by the server (peer = its service port)');
    const opened = (pid: number, dir: string) => sumOf(of(pid, 'kscope.tcp.connections.opened').filter((p) => attrOf(p.point.attributes, 'kscope.tcp.direction') === dir));
    assert.equal(opened(w.clientPid, 'outbound'), 5);
    assert.equal(opened(w.serverPid, 'inbound'), 5);
    assert.equal(sumOf(of(w.clientPid, 'kscope.tcp.connections.closed')), 5);
    assert.equal(sumOf(of(w.serverPid, 'kscope.tcp.connections.closed')), 5);
    const fails = of(w.clientPid, 'kscope.tcp.connections.failed').filter(peerIs(w.ports.refused!));
    assert.equal(sumOf(fails), 1);
    assert.equal(attrOf(fails[0]!.point.attributes, 'error.type'), 'ECONNREFUSED');

    for (const p of w.procs) assert.equal(sumOf(of(p.pid, 'kscope.process.starts')), 1, `process start of sh ${p.pid}`);
    for (const p of w.procs) {
      const e = of(p.pid, 'kscope.process.exits');
      assert.equal(sumOf(e), 1, `process exit of sh ${p.pid}`);
      assert.equal(attrOf(e[0]!.point.attributes, 'kscope.process.exit_status'), 'error', 'non-zero exit code');
    }
    for (const pid of [w.serverPid, w.clientPid]) {
      const e = of(pid, 'kscope.process.exits');
      assert.equal(sumOf(e), 1, `exit of workload node process ${pid}`);
      assert.equal(attrOf(e[0]!.point.attributes, 'kscope.process.exit_status'), 'ok');
    }

    // ---- logs (exec/exit opt-in in this config)
    const logs = flatLogs(o);
    for (const p of w.procs) {
      const exec = logs.filter((l) => l.pid === p.pid && l.log.eventName === 'kscope.process.exec');
      const exit = logs.filter((l) => l.pid === p.pid && l.log.eventName === 'kscope.process.exit');
      assert.equal(exec.length, 1, `exec log of ${p.pid}`);
      assert.equal(attrOf(exec[0]!.log.attributes, 'process.executable.path'), '/bin/sh');
      assert.equal(attrOf(exec[0]!.log.attributes, 'process.parent_pid'), BigInt(w.clientPid));
      assert.equal(exit.length, 1, `exit log of ${p.pid}`);
      assert.equal(attrOf(exit[0]!.log.attributes, 'process.exit.code'), BigInt(p.exitCode));
      assert.equal(exit[0]!.log.severityText, 'WARN');
    }
    // the refused connect is answered by a RST: a reset log and metric on the client
    const resets = logs.filter((l) => l.pid === w.clientPid && l.log.eventName === 'kscope.tcp.reset');
    assert.equal(resets.length, 1, 'one reset log (received) for the refused connect');
    assert.equal(attrOf(resets[0]!.log.attributes, 'kscope.tcp.direction'), 'received');
  } finally {
    if (!stopped) await agent.stop().catch(() => undefined);
    await col.proc.stop('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});
