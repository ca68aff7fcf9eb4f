// Peer smoke tests for the quick peers (Debian Prometheus and etcd, kustomize) and the helpers.
// The Go-built servers have their own files: peers-otelcol, peers-kube, peers-jaeger.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync, existsSync } from 'node:fs';
import { spawn, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { requires } from '../lib/env.ts';
import { tryEnsurePeer, startPrometheus, kustomizeBuild, ensurePeer, freePorts } from '../peers/index.ts';
import { eventually } from '../peers/wait.ts';

// A first build takes minutes on 2 cores. The runner's --test-timeout (10 min) caps each file,
// which is why every long Go build (otelcol, Kubernetes, Jaeger) has a file of its own.
const BUILD_TIMEOUT = { timeout: 60 * 60_000 };

// Prometheus remote-write WriteRequest, protobuf by hand: enough for one series.
function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  while (v >= 0x80n) { out.push(Number(v & 0x7fn) | 0x80); v >>= 7n; }
  out.push(Number(v));
  return out;
}
function field(num: number, bytes: number[] | Uint8Array): number[] {
  return [...varint((num << 3) | 2), ...varint(bytes.length), ...bytes];
}
function writeRequest(labels: Record<string, string>, value: number, tsMs: number): Uint8Array {
  const enc = new TextEncoder();
  const labelMsgs = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([k, v]) => field(1, [...field(1, enc.encode(k)), ...field(2, enc.encode(v))]));
  const dbl = new Uint8Array(8);
  new DataView(dbl.buffer).setFloat64(0, value, true);
  const sample = [0x09, ...dbl, ...varint(2 << 3), ...varint(tsMs)];
  return Uint8Array.from(field(1, [...labelMsgs, ...field(2, sample)]));
}

test('prometheus: ready, accepts remote write, answers a query', BUILD_TIMEOUT, async (t) => {
  const peer = await tryEnsurePeer('prometheus');
  if (!requires(t, peer.ok, `prometheus (${peer.error})`)) return;
  const prom = await startPrometheus();
  try {
    const snappy = createRequire(import.meta.url)('snappyjs') as { compress(b: Uint8Array): Uint8Array };
    const body = new Uint8Array(snappy.compress(writeRequest({ __name__: 'kscope_smoke', job: 'smoke' }, 42.5, Date.now())));
    const res = await fetch(prom.remoteWriteUrl, {
      method: 'POST', body,
      headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'snappy', 'x-prometheus-remote-write-version': '0.1.0' },
    });
    assert.equal(res.status, 204, await res.text());
    const result = await eventually('series queryable', async () => {
      const r = await prom.query('kscope_smoke');
      return r.length ? r : undefined;
    });
    assert.equal(result[0].metric.job, 'smoke');
    assert.equal(result[0].value[1], '42.5');
  } finally {
    const r = await prom.stop();
    assert.equal(r.forced, false, `prometheus ignored SIGTERM; log: ${prom.logFile}`);
  }
});

test('kustomize: builds a kustomization', BUILD_TIMEOUT, async (t) => {
  const peer = await tryEnsurePeer('kustomize');
  if (!requires(t, peer.ok, `kustomize peer (${peer.error})`)) return;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-kustomize-'));
  try {
    mkdirSync(join(dir, 'base'));
    writeFileSync(join(dir, 'base', 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: "1"\n');
    writeFileSync(join(dir, 'base', 'kustomization.yaml'), 'resources: [cm.yaml]\n');
    writeFileSync(join(dir, 'kustomization.yaml'), 'resources: [base]\nnamePrefix: kscope-\nnamespace: obs\n');
    const out = await kustomizeBuild(dir);
    assert.match(out, /name: kscope-cfg/);
    assert.match(out, /namespace: obs/);
    await assert.rejects(kustomizeBuild(join(dir, 'missing')), /kustomize build .* exited/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ensurePeer: reuses a built peer and reports an unknown one', async () => {
  const etcd = await ensurePeer('etcd');
  assert.equal(etcd, '/usr/bin/etcd');
  await assert.rejects(ensurePeer('nope' as never), /unknown peer/);
  const [a, b] = await freePorts(2);
  assert.notEqual(a, b);
});

const buildScript = join(import.meta.dirname, '..', 'peers', 'build.sh');
function runBuild(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [buildScript, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('build.sh: concurrent builds of one peer build it once; a failed build names its log and leaves nothing', BUILD_TIMEOUT, async (t) => {
  const peer = await tryEnsurePeer('kustomize'); // warms Go's caches so the rebuild below is a relink
  if (!requires(t, peer.ok, `kustomize peer (${peer.error})`)) return;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-peers-build-'));
  try {
    const [a, b] = await Promise.all([runBuild(['kustomize'], { KSCOPE_PEERS_DIR: dir }), runBuild(['kustomize'], { KSCOPE_PEERS_DIR: dir })]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout.trim(), b.stdout.trim());
    assert.ok(a.stdout.trim().startsWith(dir));
    const builds = (a.stderr + b.stderr).match(/build\.sh: building kustomize/g) ?? [];
    assert.equal(builds.length, 1, 'the second caller waits on the lock and reuses the result');
    assert.equal(execFileSync(a.stdout.trim(), ['version'], { encoding: 'utf8' }).includes('v5.'), true);

    // No module source reachable: the build fails, says where its log is, installs nothing.
    const failDir = join(dir, 'fail');
    const bad = await runBuild(['telemetrygen'], { KSCOPE_PEERS_DIR: failDir, GOPROXY: 'off', GOMODCACHE: join(dir, 'emptymod'), GOFLAGS: '' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /building telemetrygen-v[\d.]+ failed \(exit \d+\); last lines of .*telemetrygen-v[\d.]+\.build\.log/);
    assert.equal(existsSync(bad.stdout.trim() || join(failDir, 'none')), false);
    const unknown = await runBuild(['nope'], {});
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown peer 'nope'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
