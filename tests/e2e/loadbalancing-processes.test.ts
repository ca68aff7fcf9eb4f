// Two-tier topology as real collector processes on loopback (collector/bin/collector.ts):
// three sampling replicas (otlp receiver → tail_sampling → otlp exporter to a per-replica sink in
// this test) behind two load-balancing collectors whose k8s resolver watches EndpointSlices on a
// fake kube-apiserver served by this test (the real @kubernetes/client-node informer talks to it).
// 10k traces whose spans enter through different load-balancers → every trace released exactly
// once, complete, by one replica. Then one replica is SIGKILLed and its endpoint turns not-ready:
// the rings converge and no trace is split afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as netServer } from 'node:net';
import { mkdtempSync, writeFileSync, rmSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { OtlpGrpcServer } from '../../proto/src/grpc/otlp-server.ts';
import { OtlpGrpcSender } from '../../collector/src/exporters/otlp/index.ts';
import { hex, span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import type { TracesData } from '../../proto/src/model.ts';

const root = new URL('../..', import.meta.url).pathname;
const SPANS_PER_TRACE = 4;
const N = 10_000;

function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ host, port });
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A minimal kube-apiserver: list + watch of one EndpointSlice. */
class FakeApiServer {
  private rv = 1;
  private watchers = new Set<ServerResponse>();
  readonly server = createServer((req, res) => this.handle(req, res));
  port = 0;
  constructor(private addrs: string[], private readyMap = new Map(addrs.map((a) => [a, true]))) {}
  slice() {
    return {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: 'kscope-sampling-x1', namespace: 'obs', uid: 'slice-1', resourceVersion: String(this.rv), labels: { 'kubernetes.io/service-name': 'kscope-sampling' } },
      endpoints: this.addrs.map((a) => ({ addresses: [a], conditions: { ready: this.readyMap.get(a), serving: this.readyMap.get(a), terminating: !this.readyMap.get(a) } })),
      ports: [{ name: 'otlp-grpc', port: 4317, protocol: 'TCP' }],
    };
  }
  private handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url!, 'http://x');
    if (!url.pathname.startsWith('/apis/discovery.k8s.io/v1/namespaces/obs/endpointslices')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404 }));
      return;
    }
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders(); // the client waits for the headers before it reads events
      this.watchers.add(res);
      res.on('close', () => this.watchers.delete(res));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSliceList', metadata: { resourceVersion: String(this.rv) }, items: [this.slice()],
    }));
  }
  setReady(addr: string, ready: boolean) {
    this.readyMap.set(addr, ready);
    this.rv++;
    const ev = JSON.stringify({ type: 'MODIFIED', object: this.slice() }) + '\n';
    for (const w of this.watchers) w.write(ev);
  }
  get watcherCount() { return this.watchers.size; }
  async listen() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  async close() {
    for (const w of this.watchers) w.destroy();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** Receives what one sampling replica exports: trace id → number of requests and spans. */
class Sink {
  readonly got = new Map<string, { requests: number; spans: number }>();
  server = new OtlpGrpcServer({
    signals: ['traces'],
    handler: async (_signal, data) => {
      const seen = new Map<string, number>();
      for (const rs of (data as TracesData).resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) seen.set(hex(s.traceId), (seen.get(hex(s.traceId)) ?? 0) + 1);
      for (const [k, n] of seen) {
        const g = this.got.get(k) ?? { requests: 0, spans: 0 };
        g.requests++;
        g.spans += n;
        this.got.set(k, g);
      }
    },
  });
  port = 0;
  async start() { this.port = await this.server.listen('127.0.0.1:0'); }
}

async function scrape(port: number): Promise<string> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/metrics`);
    return await r.text();
  } catch {
    return '';
  }
}

function metric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name + '{') || line.startsWith(name + ' ')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

test('collector processes: 2 load-balancers × 3 sampling replicas with a k8s resolver; kill one replica', { timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-lb-e2e-'));
  const procs: ChildProcess[] = [];
  const sinks = [new Sink(), new Sink(), new Sink()];
  const addrs = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
  const api = new FakeApiServer(addrs);
  let ok = false;
  try {
    for (const s of sinks) await s.start();
    await api.listen();
    const kubeconfig = join(dir, 'kubeconfig.yaml');
    writeFileSync(kubeconfig, stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'fake',
      clusters: [{ name: 'fake', cluster: { server: `http://127.0.0.1:${api.port}`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: {} }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'u', namespace: 'obs' } }],
    }));
    const samplingPort = await freePort('127.0.0.2');
    const launch = (name: string, cfg: unknown) => {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(file, stringify(cfg));
      const log = openSync(join(dir, `${name}.log`), 'w');
      const p = spawn(process.execPath, ['--import', 'tsx', join(root, 'collector/bin/collector.ts'), '--config', file], { cwd: root, stdio: ['ignore', log, log] });
      procs.push(p);
      return p;
    };
    const replicaTel: number[] = [];
    for (let i = 0; i < 3; i++) {
      const tel = await freePort();
      replicaTel.push(tel);
      launch(`sampling-${i}`, {
        receivers: { otlp: { protocols: { grpc: { endpoint: `${addrs[i]}:${samplingPort}` } } } },
        processors: { tail_sampling: { decision_wait: '3s', tick_interval: '50ms', num_traces: 100000, policies: [{ name: 'all', type: 'always_sample' }] } },
        exporters: { otlp: { endpoint: `127.0.0.1:${sinks[i].port}`, compression: 'none', tls: { insecure: true }, sending_queue: { queue_size: 10000 } } },
        service: { pipelines: { traces: { receivers: ['otlp'], processors: ['tail_sampling'], exporters: ['otlp'] } }, telemetry: { logs: { level: 'warn' }, metrics: { address: `127.0.0.1:${tel}` } } },
      });
    }
    const lbPorts: number[] = [], lbTel: number[] = [];
    for (let i = 0; i < 2; i++) {
      lbPorts.push(await freePort());
      lbTel.push(await freePort());
      launch(`lb-${i}`, {
        receivers: { otlp: { protocols: { grpc: { endpoint: `127.0.0.1:${lbPorts[i]}` } } } },
        exporters: {
          loadbalancing: {
            protocol: { otlp: { compression: 'none' } },
            sending_queue: { queue_size: 10000, num_consumers: 4 },
            retry_on_failure: { initial_interval: '50ms', max_interval: '200ms' },
            resolver: { k8s: { service: 'kscope-sampling.obs', ports: [samplingPort], kubeconfig } },
          },
        },
        service: { pipelines: { traces: { receivers: ['otlp'], exporters: ['loadbalancing'] } }, telemetry: { logs: { level: 'warn' }, metrics: { address: `127.0.0.1:${lbTel[i]}` } } },
      });
    }
    for (const p of procs) p.once('exit', (code, sig) => { if (code !== null && code !== 0) t.diagnostic(`a collector exited with ${code ?? sig}; logs in ${dir}`); });
    await until(async () => (await Promise.all(addrs.map((a) => portOpen(a, samplingPort)))).every(Boolean), 90_000, 'sampling replicas listening');
    await until(async () => (await Promise.all(lbPorts.map((p) => portOpen('127.0.0.1', p)))).every(Boolean), 90_000, 'load-balancers listening');
    await until(async () => (await Promise.all(lbTel.map(async (p) => metric(await scrape(p), 'kscope_loadbalancer_num_backends') === 3))).every(Boolean), 30_000, 'both rings with 3 backends');
    t.diagnostic(`processes up; logs in ${dir}`);

    const clients = lbPorts.map((p) => new OtlpGrpcSender({ endpoint: `127.0.0.1:${p}`, insecure: true, headers: {}, compression: 'none', tenantHeader: '' }, 'traces'));
    const abort = new AbortController().signal;
    async function sendTraces(salt: number) {
      for (let t0 = 0; t0 < N; t0 += 250) {
        const a = [], b = [];
        for (let t = t0; t < t0 + 250; t++) {
          const id = tid(t, salt);
          a.push(span(id, { name: 'root' }), span(id, { name: 'db' }));
          b.push(span(id, { name: 'cache' }), span(id, { name: 'render' }));
        }
        await Promise.all([clients[0].send(traces(a, { 'service.name': 'web' }), {}, abort), clients[1].send(traces(b, { 'service.name': 'api' }), {}, abort)]);
      }
    }
    function check(salt: number, live: Sink[]) {
      for (let t = 0; t < N; t++) {
        const k = hex(tid(t, salt));
        const homes = live.filter((s) => s.got.has(k));
        assert.equal(homes.length, 1, `trace ${t} released by ${homes.length} replicas`);
        const g = homes[0].got.get(k)!;
        assert.equal(g.requests, 1, `trace ${t} released in ${g.requests} requests (decided more than once)`);
        assert.equal(g.spans, SPANS_PER_TRACE, `trace ${t} incomplete`);
      }
    }
    const released = (salt: number, live: Sink[]) => {
      let n = 0;
      for (let t = 0; t < N; t++) if (live.some((s) => s.got.has(hex(tid(t, salt))))) n++;
      return n;
    };

    await sendTraces(1);
    await until(() => released(1, sinks) === N, 60_000, 'all traces released');
    await new Promise((r) => setTimeout(r, 500)); // any duplicate release would show up by now
    check(1, sinks);
    for (const s of sinks) assert.ok(s.got.size > N * 0.2, `each replica took a share (${s.got.size})`);
    let decided = 0;
    for (const p of replicaTel) decided += metric(await scrape(p), 'kscope_tailsampling_traces_total');
    assert.equal(decided, N, 'decision counters across replicas sum to the trace count');

    // Kill replica 3 outright; the fake apiserver then reports its endpoint not ready.
    procs[2].kill('SIGKILL');
    api.setReady(addrs[2], false);
    await until(async () => (await Promise.all(lbTel.map(async (p) => metric(await scrape(p), 'kscope_loadbalancer_num_backends') === 2))).every(Boolean), 30_000, 'rings converged to 2 backends');
    await sendTraces(2);
    await until(() => released(2, sinks.slice(0, 2)) === N, 60_000, 'all traces released after the kill');
    await new Promise((r) => setTimeout(r, 500));
    check(2, sinks.slice(0, 2));
    for (const c of clients) await c.close();
    ok = true;
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => { const k = setTimeout(() => p.kill('SIGKILL'), 15_000); p.once('exit', () => { clearTimeout(k); r(null); }); }))));
    for (const s of sinks) await s.server.shutdown(500);
    await api.close();
    if (ok) rmSync(dir, { recursive: true, force: true });
    else t.diagnostic(`kept collector configs and logs in ${dir}`);
  }
});
