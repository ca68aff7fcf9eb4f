// Every test peer builds (or is found), starts on loopback, answers and stops cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { requires } from '../lib/env.ts';
import {
  tryEnsurePeer, startOtelcol, startKubeApiserver, startJaeger, startPrometheus, telemetrygen, kustomizeBuild,
  ensurePeer, freePorts,
} from '../peers/index.ts';

// A first build can take many minutes on 2 cores; the runner's default timeout would cut it.
const BUILD_TIMEOUT = { timeout: 90 * 60_000 };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

function hex(n: number): string {
  return Array.from({ length: n }, (_, i) => ((i * 37 + 11) & 0xff).toString(16).padStart(2, '0')).join('');
}

test('otelcol: has the expected components, takes OTLP/HTTP JSON and writes it with the file exporter', BUILD_TIMEOUT, async (t) => {
  const peer = await tryEnsurePeer('otelcol');
  if (!requires(t, peer.ok, `otelcol peer (${peer.error})`)) return;

  // The build must carry every component the interop tests rely on.
  const { execFileSync } = await import('node:child_process');
  const components = execFileSync(peer.path!, ['components'], { encoding: 'utf8' });
  for (const name of ['otlp', 'otelarrow', 'otlp_grpc', 'otlp_http', 'file', 'debug', 'batch']) {
    assert.match(components, new RegExp(`name: ${name}\\b`), `component ${name} missing from otelcol build`);
  }

  // Two paths: OTLP straight to a file, and OTLP → otelarrow exporter → otelarrow receiver → file,
  // which proves the OTel Arrow pair in this build talks to itself.
  const col = await startOtelcol(({ ports, dir }) => `
receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:${ports[0]} }
      grpc: { endpoint: 127.0.0.1:${ports[1]} }
  otelarrow:
    protocols:
      grpc: { endpoint: 127.0.0.1:${ports[2]} }
processors:
  batch: { timeout: 100ms }
exporters:
  file/direct: { path: ${join(dir, 'traces.jsonl')} }
  file/arrow: { path: ${join(dir, 'arrow.jsonl')} }
  otelarrow: { endpoint: 127.0.0.1:${ports[2]}, tls: { insecure: true } }
  debug: {}
service:
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [file/direct, otelarrow, debug] }
    traces/arrow: { receivers: [otelarrow], exporters: [file/arrow] }
`, { ports: 3 });
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
      const f = join(col.dir, 'arrow.jsonl');
      if (!existsSync(f)) return undefined;
      const text = readFileSync(f, 'utf8');
      return text.includes('smoke-span') ? text : undefined;
    });
    const arrowSpan = JSON.parse(viaArrow.trim().split('\n')[0]!).resourceSpans[0].scopeSpans[0].spans[0];
    assert.equal(arrowSpan.traceId, traceId);
    assert.equal(arrowSpan.endTimeUnixNano, '1700000000500000000');
  } finally {
    const r = await col.stop();
    assert.equal(r.forced, false, `otelcol ignored SIGTERM; log: ${col.logFile}`);
  }
  assert.equal(existsSync(col.dir), false, 'temp dir removed on stop');
});

test('kube-apiserver: namespace and pod round trip, RBAC with a ServiceAccount token, restart, kubectl', BUILD_TIMEOUT, async (t) => {
  const peer = await tryEnsurePeer('kube-apiserver');
  if (!requires(t, peer.ok, `kube-apiserver peer (${peer.error})`)) return;
  const kube = await startKubeApiserver();
  try {
    const ready = await kube.request('GET', '/readyz');
    assert.equal(ready.status, 200);
    const ns = await kube.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'smoke' } });
    assert.equal(ns.status, 201, ns.body);
    const pod = await kube.request('POST', '/api/v1/namespaces/smoke/pods', {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'web', labels: { app: 'web' } },
      spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'example.invalid/web:1' }] },
    });
    assert.equal(pod.status, 201, pod.body);
    const got = await kube.request('GET', '/api/v1/namespaces/smoke/pods/web');
    assert.equal(got.status, 200);
    const p = got.json();
    assert.equal(p.metadata.labels.app, 'web');
    assert.equal(p.spec.nodeName, 'node-a');
    assert.equal(p.status.phase, 'Pending');
    // No kubelet: status is set by hand.
    const patched = await kube.request('PATCH', '/api/v1/namespaces/smoke/pods/web/status',
      { status: { phase: 'Running', podIP: '10.1.2.3', podIPs: [{ ip: '10.1.2.3' }] } }, { contentType: 'application/merge-patch+json' });
    assert.equal(patched.status, 200, patched.body);
    assert.equal(patched.json().status.podIP, '10.1.2.3');

    // A ServiceAccount without bindings is denied; the admin is not.
    const saToken = await kube.serviceAccountToken('smoke', 'reader');
    const denied = await kube.request('GET', '/api/v1/namespaces/smoke/pods', undefined, { token: saToken });
    assert.equal(denied.status, 403, denied.body);
    const role = await kube.request('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/smoke/roles', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'pod-reader' },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
    });
    assert.equal(role.status, 201, role.body);
    const binding = await kube.request('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/smoke/rolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'reader' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: 'smoke' }],
    });
    assert.equal(binding.status, 201, binding.body);
    const allowed = await eventually('RBAC binding to take effect', async () => {
      const r = await kube.request('GET', '/api/v1/namespaces/smoke/pods', undefined, { token: saToken });
      return r.status === 200 ? r : undefined;
    });
    assert.equal(allowed.json().items.length, 1);

    // Data survives an apiserver restart (etcd keeps running), same URL.
    const pidBefore = kube.pid();
    await kube.restart();
    assert.notEqual(kube.pid(), pidBefore);
    const again = await kube.request('GET', '/api/v1/namespaces/smoke/pods/web');
    assert.equal(again.status, 200);

    const kubectl = await tryEnsurePeer('kubectl');
    if (!requires(t, kubectl.ok, `kubectl peer (${kubectl.error})`)) return;
    const saConfig = kube.kubeconfigFor(saToken, 'reader');
    const can = await kube.kubectl(['auth', 'can-i', 'list', 'pods', '-n', 'smoke'], { kubeconfig: saConfig });
    assert.equal(can.stdout.trim(), 'yes', can.stderr);
    const cannot = await kube.kubectl(['auth', 'can-i', 'delete', 'pods', '-n', 'smoke'], { kubeconfig: saConfig });
    assert.equal(cannot.stdout.trim(), 'no', cannot.stderr);
    const dry = await kube.kubectl(['apply', '--dry-run=server', '-o', 'name', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dry', namespace: 'smoke' }, data: { a: '1' } }),
    });
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(dry.stdout.trim(), 'configmap/dry');
    const notCreated = await kube.request('GET', '/api/v1/namespaces/smoke/configmaps/dry');
    assert.equal(notCreated.status, 404);
  } finally {
    await kube.stop();
  }
  assert.equal(existsSync(kube.dir), false, 'temp dir removed on stop');
});

test('jaeger + telemetrygen: OTLP in, traces out of the query API', BUILD_TIMEOUT, async (t) => {
  const jaegerPeer = await tryEnsurePeer('jaeger');
  if (!requires(t, jaegerPeer.ok, `jaeger peer (${jaegerPeer.error})`)) return;
  const tg = await tryEnsurePeer('telemetrygen');
  if (!requires(t, tg.ok, `telemetrygen peer (${tg.error})`)) return;
  const jaeger = await startJaeger();
  try {
    assert.deepEqual(await jaeger.services(), []);
    await telemetrygen(['traces', '--otlp-endpoint', `127.0.0.1:${jaeger.otlpGrpcPort}`, '--otlp-insecure',
      '--traces', '3', '--child-spans', '1', '--service', 'smoke-grpc']);
    // OTLP/HTTP as well (telemetrygen's HTTP mode).
    await telemetrygen(['traces', '--otlp-endpoint', `127.0.0.1:${jaeger.otlpHttpPort}`, '--otlp-http', '--otlp-insecure',
      '--traces', '2', '--service', 'smoke-http']);
    const traces = await eventually('traces in jaeger', async () => {
      const tr = await jaeger.traces('smoke-grpc');
      return tr.length >= 3 ? tr : undefined;
    });
    assert.equal(traces.length, 3);
    // Each telemetrygen trace: one parent and one child span.
    for (const tr of traces) assert.equal(tr.spans.length, 2);
    const services = await eventually('both services', async () => {
      const s = await jaeger.services();
      return s.includes('smoke-http') ? s : undefined;
    });
    assert.ok(services.includes('smoke-grpc'));
  } finally {
    const r = await jaeger.stop();
    assert.equal(r.forced, false, `jaeger ignored SIGTERM; log: ${jaeger.logFile}`);
  }
});

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
