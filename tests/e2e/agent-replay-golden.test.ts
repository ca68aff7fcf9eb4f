// Replay of the committed fixture through the agent (replay mode, speed max) → normalised OTLP
// output equals the committed golden (tests/fixtures/tcp-proc-loopback.golden-otlp.json, made by
// tests/fixtures/golden-otlp.ts, which documents what is normalised and why). Needs no root.
// Beyond the golden, the output is checked against the fixture's workload manifest, so a golden
// regenerated from a broken agent would not pass either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatGolden, goldenPathOf, normalise, replayThroughAgent, type GoldenOtlp } from '../fixtures/golden-otlp.ts';

const root = new URL('../../', import.meta.url).pathname;
const fixture = join(root, 'tests/fixtures/tcp-proc-loopback.kscope');
const manifest = JSON.parse(readFileSync(join(root, 'tests/fixtures/tcp-proc-loopback.workload.json'), 'utf8')) as {
  workload: {
    serverPid: number; clientPid: number; ports: { server: number; refused: number };
    connections: { clientPort: number; sent: number; clientReceived: number }[];
    procs: { pid: number; exitCode: number }[];
  };
};

test('replaying tcp-proc-loopback through the agent gives the golden OTLP output', { timeout: 60_000 }, async () => {
  const golden = JSON.parse(readFileSync(goldenPathOf(fixture), 'utf8')) as GoldenOtlp;
  assert.equal(golden.fixtureSha256, createHash('sha256').update(readFileSync(fixture)).digest('hex'),
    'the golden was generated from the committed fixture (regenerate: npx tsx tests/fixtures/golden-otlp.ts tests/fixtures/tcp-proc-loopback.kscope)');
  const got = normalise(fixture, await replayThroughAgent(fixture));
  assert.deepEqual(got.counts, golden.counts, 'span, metric point and log counts');
  assert.deepEqual(got.spans.map((s) => s.name).sort(), golden.spans.map((s) => s.name).sort(), 'span names');
  assert.deepEqual(got.metrics.map((m) => m.metric), golden.metrics.map((m) => m.metric), 'metric names');
  assert.deepEqual(got.spans, golden.spans, 'spans: names, kinds, status, attributes, resources, timing, links');
  assert.deepEqual(got.metrics, golden.metrics, 'metric points');
  assert.deepEqual(got.logs, golden.logs, 'logs');
  assert.equal(formatGolden(got), readFileSync(goldenPathOf(fixture), 'utf8'), 'byte-identical golden file');
});

test('the golden agrees with what the recorded workload did', () => {
  const g = JSON.parse(readFileSync(goldenPathOf(fixture), 'utf8')) as GoldenOtlp;
  const w = manifest.workload;
  const i = (n: number) => `i:${n}`;
  const of = (pid: number, name: string) => g.spans.filter((s) => s.resource['process.pid'] === i(pid) && s.name === name);
  const ok = (xs: GoldenOtlp['spans']) => xs.filter((s) => s.status.code !== 2);
  assert.equal(ok(of(w.clientPid, 'tcp connect')).length, w.connections.length);
  assert.equal(of(w.serverPid, 'tcp accept').length, w.connections.length);
  assert.equal(of(w.clientPid, 'tcp connection').length, w.connections.length);
  assert.equal(of(w.serverPid, 'tcp connection').length, w.connections.length);
  const refused = of(w.clientPid, 'tcp connect').filter((s) => s.status.code === 2);
  assert.equal(refused.length, 1);
  assert.equal(refused[0]!.status.message, 'ECONNREFUSED');
  assert.equal(refused[0]!.attributes['server.port'], i(w.ports.refused));
  // every connection span is linked to the connect/accept span of its socket
  for (const s of g.spans.filter((x) => x.name === 'tcp connection')) {
    const parent = g.spans.find((p) => p.span === s.parent);
    assert.ok(parent && parent.trace === s.trace && parent.attributes['client.port'] === s.attributes['client.port']);
  }
  const point = (pid: number, metric: string) => g.metrics.filter((m) => m.resource['process.pid'] === i(pid) && m.metric === metric);
  const sent = w.connections.reduce((n, c) => n + c.sent, 0);
  assert.equal(point(w.clientPid, 'kscope.tcp.bytes.sent')[0]!.value, String(sent));
  assert.equal(point(w.clientPid, 'kscope.tcp.connect.duration')[0]!.histogram!.count, String(w.connections.length));
  for (const p of w.procs) {
    assert.equal(point(p.pid, 'kscope.process.starts')[0]!.value, '1');
    const exit = g.logs.find((l) => l.eventName === 'kscope.process.exit' && l.attributes['process.pid'] === i(p.pid));
    assert.equal(exit?.attributes['process.exit.code'], i(p.exitCode));
    assert.equal(exit?.body, `exit sh status ${p.exitCode}`);
  }
});
