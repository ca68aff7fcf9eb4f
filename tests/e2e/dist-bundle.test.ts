// The bundled build (scripts/build-dist.mjs → dist/) is what scripts/start.sh and the images run:
// plain node, no tsx. These tests build it and drive the main job and the collector through it:
// `agent up --replay` starts the bundled collector as its child and replays the bundled fixture, and
// the spans the collector writes must be the fixture's golden spans. Needs no root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dist = join(root, 'dist');

function build(): void {
  const r = spawnSync(process.execPath, [join(root, 'scripts/build-dist.mjs')], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `build-dist failed: ${r.stderr}`);
}

test('build-dist bundles the agent, the collector and the lazily required Kubernetes module', () => {
  build();
  for (const f of ['agent.mjs', 'collector.mjs', 'k8s.mjs']) assert.ok(existsSync(join(dist, f)), `dist/${f} missing`);
  const check = spawnSync(process.execPath, [join(root, 'scripts/build-dist.mjs'), '--check'], { cwd: root });
  assert.equal(check.status, 0, 'a fresh build must pass --check');
  // No TypeScript loader is needed: the bundled collector validates a real config in plain node.
  const v = spawnSync(process.execPath, [join(dist, 'collector.mjs'), 'validate', '--config', join(root, 'collector/testdata/collector.yaml')], { cwd: root, encoding: 'utf8' });
  assert.equal(v.status, 0, `bundled collector validate failed: ${v.stderr}`);
  const bad = spawnSync(process.execPath, [join(dist, 'collector.mjs'), 'validate', '--config', join(root, 'package.json')], { cwd: root, encoding: 'utf8' });
  assert.equal(bad.status, 2, 'an invalid config exits 2 from the bundle too');
  // The Kubernetes module is required synchronously by the enricher when enabled.
  const k = spawnSync(process.execPath, ['-e', `const m = require(${JSON.stringify(join(dist, 'k8s.mjs'))}); if (typeof m.PodInformer !== 'function') process.exit(3);`], { encoding: 'utf8' });
  assert.equal(k.status, 0, `dist/k8s.mjs does not load with require(): ${k.stderr}`);
});

test('bundled `agent up --replay` runs the main job end to end: agent → bundled collector → files = golden spans', { timeout: 120_000 }, () => {
  if (!existsSync(join(dist, 'agent.mjs'))) build();
  const out = mkdtempSync(join(tmpdir(), 'kscope-dist-up-'));
  try {
    const r = spawnSync(process.execPath, [join(dist, 'agent.mjs'), 'up', '--replay', '--no-workload', '--duration', '4', '--out', out], { cwd: root, encoding: 'utf8', timeout: 90_000 });
    assert.equal(r.status, 0, `agent up failed (${r.status}): ${r.stderr}\n${r.stdout.slice(-2000)}`);
    assert.match(r.stdout, /REPLAY/i, 'the summary says loudly that it is a replay');
    const golden = JSON.parse(readFileSync(join(root, 'tests/fixtures/tcp-proc-loopback.golden-otlp.json'), 'utf8')) as { counts: { spans: number }; spans: { name: string }[] };
    const names: string[] = [];
    for (const line of readFileSync(join(out, 'traces.jsonl'), 'utf8').split('\n')) {
      if (!line) continue;
      for (const rs of JSON.parse(line).resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) names.push(s.name);
    }
    assert.equal(names.length, golden.counts.spans);
    assert.deepEqual(names.sort(), golden.spans.map((s) => s.name).sort());
    const metrics = new Set<string>();
    for (const line of readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n')) {
      if (!line) continue;
      for (const rm of JSON.parse(line).resourceMetrics) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) metrics.add(m.name);
    }
    for (const name of ['kscope.tcp.connect.duration', 'kscope.tcp.connections.opened', 'kscope.process.starts']) assert.ok(metrics.has(name), `metric ${name} missing`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('the quick start (scripts/start.sh) runs the agent bundle with the image\'s node flags and malloc arenas', async () => {
  const { agentImageRuntime } = await import('../../scripts/image-runtime.mjs');
  const image = agentImageRuntime();
  assert.ok(image.nodeArgs.length > 0 && image.env.MALLOC_ARENA_MAX, 'the image sets node flags and MALLOC_ARENA_MAX');
  const start = readFileSync(join(root, 'scripts/start.sh'), 'utf8');
  const exec = start.match(/^exec node (.*?) ?dist\/agent\.mjs /m);
  assert.ok(exec, 'start.sh execs node on dist/agent.mjs');
  assert.deepEqual(exec[1]!.split(/\s+/).filter(Boolean), image.nodeArgs, 'start.sh node flags = the image ENTRYPOINT flags');
  assert.match(start, new RegExp(`^export MALLOC_ARENA_MAX="\\$\\{MALLOC_ARENA_MAX:-${image.env.MALLOC_ARENA_MAX}\\}"$`, 'm'), 'start.sh MALLOC_ARENA_MAX default = the image ENV');
});

test('every collector process runs with the image\'s node flags (collector/src/runtime.ts = collector.Dockerfile ENTRYPOINT)', async () => {
  const { collectorImageRuntime } = await import('../../scripts/image-runtime.mjs');
  const { COLLECTOR_NODE_FLAGS } = await import('../../collector/src/runtime.ts');
  assert.ok(COLLECTOR_NODE_FLAGS.length > 0, 'the collector sets node flags');
  assert.deepEqual(collectorImageRuntime().nodeArgs, [...COLLECTOR_NODE_FLAGS]);
});
