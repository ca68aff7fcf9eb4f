// Live enrichment against a real kube-apiserver (tests/peers) and real cgroups on this host.
// Pod-like cgroups are created under the cgroup2 hierarchy exactly where the kubelet's systemd
// driver puts them, processes are moved into them, and (cgroup id, pid) is resolved through the
// Enricher fed by a PodInformer watching only this "node". Most tests take cgroup ids from the
// filesystem (directory inode = the id bpf_get_current_cgroup_id() reports on cgroup v2); the BPF
// test drives the real proc probe (exec events from inside a pod cgroup) through the decoder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { hasBpf, isRoot, requires } from '../lib/env.ts';
import type { ExecEvent } from '../../agent/src/decode/index.ts';
import { tryEnsurePeer, startKubeApiserver, type KubeApiserverHandle } from '../peers/index.ts';
import { loadKubeConfig, PodInformer, validatePodInformerConfig } from '../../lib/k8s/index.ts';
import { Enricher, defaultEnricherConfig } from '../../agent/src/enrich/enricher.ts';
import { detectCgroup2 } from '../../agent/src/enrich/cgroup-index.ts';
import { attr } from '../../agent/src/enrich/attributes.ts';
import type { Resource } from '../../proto/src/model.ts';

const CGROOT = '/sys/fs/cgroup';
const cg2 = detectCgroup2(CGROOT);
const NODE = `enrich-e2e-${randomBytes(3).toString('hex')}`;
const NS = 'enrich-e2e';

let skipReason = '';
let api: KubeApiserverHandle | undefined;
let informer: PodInformer | undefined;
let enricher: Enricher<unknown> | undefined;
const released: Array<{ item: string; r: Resource; ok: boolean }> = [];
const procs: ChildProcess[] = [];
const createdDirs: string[] = []; // in creation order; removed in reverse

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function mkdirTracked(dir: string): void {
  const parts = dir.slice(cg2.mount!.length).split('/').filter(Boolean);
  let cur = cg2.mount!;
  for (const p of parts) {
    cur = join(cur, p);
    if (!existsSync(cur)) {
      mkdirSync(cur);
      createdDirs.push(cur);
    }
  }
}

/** The kubelet's systemd-driver layout for a burstable pod's container. */
function containerCgroup(podUid: string, containerId: string): string {
  const dir = join(cg2.mount!, 'kubepods.slice', 'kubepods-burstable.slice', `kubepods-burstable-pod${podUid.replace(/-/g, '_')}.slice`, `cri-containerd-${containerId}.scope`);
  mkdirTracked(dir);
  return dir;
}

/** Starts a process and moves it into the cgroup; returns its pid and the cgroup id. */
async function processIn(dir: string): Promise<{ pid: number; cgroupId: number }> {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  procs.push(child);
  await new Promise((r, j) => { child.once('spawn', r); child.once('error', j); });
  writeFileSync(join(dir, 'cgroup.procs'), String(child.pid));
  const rel = dir.slice(cg2.mount!.length);
  assert.ok(readFileSync(`/proc/${child.pid}/cgroup`, 'utf8').includes(`0::${rel}`), 'process moved into the cgroup');
  return { pid: child.pid!, cgroupId: Number(statSync(dir, { bigint: true }).ino) };
}

async function req(method: string, path: string, body?: unknown, contentType?: string): Promise<any> {
  const r = await api!.request(method, path, body, contentType ? { contentType } : undefined);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return r.body ? r.json() : undefined;
}

const cid = () => randomBytes(32).toString('hex');

async function createPod(name: string, opts: { labels?: Record<string, string>; owner?: { apiVersion: string; kind: string; name: string; uid: string }; node?: string; image?: string }): Promise<{ uid: string }> {
  const pod = await req('POST', `/api/v1/namespaces/${NS}/pods`, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, labels: opts.labels ?? {}, ownerReferences: opts.owner ? [{ ...opts.owner, controller: true, blockOwnerDeletion: true }] : undefined },
    spec: { nodeName: opts.node ?? NODE, containers: [{ name: 'main', image: opts.image ?? 'registry.local/shop/app:1.0' }] },
  });
  return { uid: pod.metadata.uid };
}

/** What the kubelet does once the container runs: report its id in the status. */
async function reportRunning(name: string, containerId: string, ip: string): Promise<void> {
  await req('PATCH', `/api/v1/namespaces/${NS}/pods/${name}/status`, {
    status: {
      phase: 'Running', podIP: ip, podIPs: [{ ip }],
      containerStatuses: [{ name: 'main', containerID: `containerd://${containerId}`, image: 'registry.local/shop/app:1.0', imageID: '', ready: true, restartCount: 0, started: true, state: { running: {} } }],
    },
  }, 'application/merge-patch+json');
}

before(async () => {
  if (!isRoot()) { skipReason = 'root'; return; }
  if (!cg2.mount) { skipReason = 'a cgroup2 hierarchy'; return; }
  const peer = await tryEnsurePeer('kube-apiserver');
  if (!peer.ok) { skipReason = `the kube-apiserver peer (${peer.error.split('\n')[0]})`; return; }
  api = await startKubeApiserver();
  await req('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  const access = loadKubeConfig({ kubeconfig: api.kubeconfig })!;
  const cfg = validatePodInformerConfig({ nodeName: NODE, backoffMinMs: 200, backoffMaxMs: 1000, store: { deletedTtlMs: 60_000 } });
  informer = new PodInformer(access.kc, cfg);
  informer.start();
  assert.ok(await informer.waitForSync(30_000), 'informer synced');
  enricher = new Enricher<unknown>(
    { ...defaultEnricherConfig(), cgroupRoot: CGROOT, nodeName: NODE, holdMs: 30_000, retryIntervalMs: 50, rescanIntervalMs: 0 },
    { pods: informer.store, onRelease: (item, r, _ts, ok) => released.push({ item: String(item), r, ok }) },
  );
  await enricher.start();
});

after(async () => {
  for (const c of procs) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  await sleep(100);
  await enricher?.shutdown();
  await informer?.shutdown();
  for (const d of createdDirs.reverse()) {
    // Processes are dead (a killed process leaves its cgroup); a cgroup with members cannot go.
    for (let i = 0; i < 20; i++) {
      try { rmdirSync(d); break; } catch { await sleep(50); }
    }
  }
  await api?.stop();
});

// State shared by the ordered tests below.
const web = { name: 'web-5c8d7f9b4-q2x7z', id: cid(), uid: '', pid: 0, cgroupId: 0 };
const db = { name: 'db-0', id: cid(), uid: '', pid: 0, cgroupId: 0 };

test('two pods (Deployment via ReplicaSet, StatefulSet) resolve from (cgroup id, pid)', async (t) => {
  if (!requires(t, !skipReason, skipReason)) return;
  const dep = await req('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' },
    spec: { selector: { matchLabels: { run: 'web' } }, template: { metadata: { labels: { run: 'web' } }, spec: { containers: [{ name: 'main', image: 'registry.local/shop/app:1.0' }] } } },
  });
  const rs = await req('POST', `/apis/apps/v1/namespaces/${NS}/replicasets`, {
    apiVersion: 'apps/v1', kind: 'ReplicaSet',
    metadata: { name: 'web-5c8d7f9b4', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: dep.metadata.uid, controller: true }] },
    spec: { selector: { matchLabels: { run: 'web' } }, template: { metadata: { labels: { run: 'web' } }, spec: { containers: [{ name: 'main', image: 'registry.local/shop/app:1.0' }] } } },
  });
  const ss = await req('POST', `/apis/apps/v1/namespaces/${NS}/statefulsets`, {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db' },
    spec: { serviceName: 'db', selector: { matchLabels: { run: 'db' } }, template: { metadata: { labels: { run: 'db' } }, spec: { containers: [{ name: 'main', image: 'registry.local/shop/db:15' }] } } },
  });
  // No pod-template-hash label: the Deployment can only come from reading the ReplicaSet.
  web.uid = (await createPod(web.name, { labels: { run: 'web' }, owner: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5c8d7f9b4', uid: rs.metadata.uid } })).uid;
  db.uid = (await createPod(db.name, { labels: { run: 'db', 'app.kubernetes.io/name': 'database' }, owner: { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: ss.metadata.uid }, image: 'registry.local/shop/db:15' })).uid;
  await createPod('elsewhere', { node: 'some-other-node' });
  // Containers start (cgroups + processes), then the kubelet reports their ids.
  Object.assign(web, await processIn(containerCgroup(web.uid, web.id)));
  Object.assign(db, await processIn(containerCgroup(db.uid, db.id)));
  assert.equal(enricher!.enrich(web.cgroupId, web.pid, 1n, 'web-early'), undefined, 'held: container not reported yet');
  await reportRunning(web.name, web.id, '10.244.0.10');
  await reportRunning(db.name, db.id, '10.244.0.11');

  await until(() => released.some((x) => x.item === 'web-early'), 15_000, 'held event released');
  const early = released.find((x) => x.item === 'web-early')!;
  assert.equal(early.ok, true);
  assert.equal(attr(early.r, 'k8s.container.name'), 'main');

  await until(() => attr(enricher!.resolve(web.cgroupId, web.pid), 'k8s.deployment.name') === 'web', 10_000, 'ReplicaSet → Deployment lookup');
  const rw = enricher!.resolve(web.cgroupId, web.pid);
  assert.equal(attr(rw, 'k8s.pod.name'), web.name);
  assert.equal(attr(rw, 'k8s.pod.uid'), web.uid);
  assert.equal(attr(rw, 'k8s.namespace.name'), NS);
  assert.equal(attr(rw, 'k8s.node.name'), NODE);
  assert.equal(attr(rw, 'k8s.container.name'), 'main');
  assert.equal(attr(rw, 'container.id'), web.id);
  assert.equal(attr(rw, 'container.image.name'), 'registry.local/shop/app');
  assert.deepEqual(attr(rw, 'container.image.tags'), ['1.0']);
  assert.equal(attr(rw, 'k8s.replicaset.name'), 'web-5c8d7f9b4');
  assert.equal(attr(rw, 'k8s.deployment.name'), 'web');
  assert.equal(attr(rw, 'service.name'), 'web', 'no app labels: top workload');
  assert.equal(attr(rw, 'process.pid'), BigInt(web.pid));
  assert.equal(attr(rw, 'process.executable.name'), 'sleep');
  assert.equal(enricher!.resolve(web.cgroupId, web.pid), rw, 'interned');

  // The db pod's status patch (containerIDs) may reach the informer after web's: wait for it too.
  // (the pod uid in the cgroup path finds the pod even before its status patch: wait for the
  // patch itself, i.e. the container id and the pod IP).
  await until(() => attr(enricher!.resolve(db.cgroupId, db.pid), 'container.id') === db.id && informer!.store.getByIp('10.244.0.11') !== undefined, 10_000, 'db pod status');
  const rd = enricher!.resolve(db.cgroupId, db.pid);
  assert.equal(attr(rd, 'k8s.pod.name'), 'db-0');
  assert.equal(attr(rd, 'k8s.statefulset.name'), 'db');
  assert.equal(attr(rd, 'k8s.deployment.name'), undefined);
  assert.equal(attr(rd, 'container.id'), db.id);
  assert.equal(attr(rd, 'service.name'), 'database');

  // Only this node's pods are watched; the IP index serves the collector.
  assert.equal(informer!.store.list().some((p) => p.name === 'elsewhere'), false);
  assert.equal(informer!.store.getByIp('10.244.0.11')?.name, 'db-0');
});

test('a pod deleted while its events are in flight still gets its metadata', async (t) => {
  if (!requires(t, !skipReason, skipReason)) return;
  const gone = { name: 'batch-worker', id: cid() };
  const job = await req('POST', `/apis/batch/v1/namespaces/${NS}/jobs`, {
    apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'nightly-29123456' },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'busybox' }] } } },
  });
  const { uid } = await createPod(gone.name, { owner: { apiVersion: 'batch/v1', kind: 'Job', name: 'nightly-29123456', uid: job.metadata.uid } });
  const p = await processIn(containerCgroup(uid, gone.id));
  await reportRunning(gone.name, gone.id, '10.244.0.12');
  await until(() => informer!.store.getByUid(uid)?.containers[0]?.id === gone.id, 10_000, 'pod status seen');
  await req('DELETE', `/api/v1/namespaces/${NS}/pods/${gone.name}?gracePeriodSeconds=0`);
  await until(() => informer!.store.isDeleted(uid), 10_000, 'deletion seen by the informer');
  // First event of that cgroup only now comes out of the ring buffer.
  const r = enricher!.enrich(p.cgroupId, p.pid, 5n, 'late');
  assert.ok(r, 'resolved without holding');
  assert.equal(attr(r!, 'k8s.pod.name'), gone.name);
  assert.equal(attr(r!, 'k8s.job.name'), 'nightly-29123456');
  assert.equal(attr(r!, 'k8s.container.name'), 'main');
});

test('API server restarted mid-test: the watch resumes and a pod created after the restart resolves', async (t) => {
  if (!requires(t, !skipReason, skipReason)) return;
  const errorsBefore = informer!.counters.errors;
  const connectsBefore = informer!.counters.connects;
  await api!.restart();
  const late = { name: 'after-restart', id: cid() };
  const { uid } = await createPod(late.name, { labels: { app: 'late-app' } });
  const p = await processIn(containerCgroup(uid, late.id));
  await reportRunning(late.name, late.id, '10.244.0.13');
  const r = enricher!.enrich(p.cgroupId, p.pid, 7n, 'after-restart');
  if (r === undefined) await until(() => released.some((x) => x.item === 'after-restart'), 30_000, 'event released after restart');
  const res = r ?? released.find((x) => x.item === 'after-restart')!.r;
  assert.equal(attr(res, 'k8s.pod.name'), late.name);
  assert.equal(attr(res, 'service.name'), 'late-app');
  assert.ok(informer!.counters.errors > errorsBefore || informer!.counters.connects > connectsBefore, 'the watch noticed the restart');
  // Nothing known before the restart was lost.
  assert.equal(attr(enricher!.resolve(db.cgroupId, db.pid), 'k8s.pod.name'), 'db-0');
  assert.ok(informer!.store.getByUid(web.uid));
});

test('unknown cgroup: emitted without Pod metadata after the hold, counted, no crash', async (t) => {
  if (!requires(t, !skipReason, skipReason)) return;
  const out: Array<{ r: Resource; ok: boolean }> = [];
  const short = new Enricher<string>(
    { ...defaultEnricherConfig(), cgroupRoot: CGROOT, nodeName: NODE, holdMs: 400, retryIntervalMs: 50, rescanIntervalMs: 0 },
    { pods: informer!.store, onRelease: (_i, r, _ts, ok) => out.push({ r, ok }) },
  );
  await short.start();
  // A pod-shaped cgroup whose pod the API server never heard of, and an id that exists nowhere.
  const orphan = await processIn(containerCgroup('0badc0de-0000-4000-8000-000000000001', cid()));
  assert.equal(short.enrich(orphan.cgroupId, orphan.pid, 1n, 'orphan'), undefined);
  assert.equal(short.enrich(0x7ffffff0, orphan.pid, 2n, 'nowhere'), undefined);
  await until(() => out.length === 2, 5000, 'released after hold');
  assert.deepEqual(out.map((x) => x.ok), [false, false]);
  assert.equal(attr(out[0]!.r, 'k8s.pod.name'), undefined);
  assert.equal(attr(out[0]!.r, 'k8s.pod.uid'), '0badc0de-0000-4000-8000-000000000001', 'the uid from the path is kept');
  assert.equal(short.counters.releasedUnresolved, 2);
  assert.equal(short.counters.unknownCgroups, 1);
  await short.shutdown();
});

test('BPF: exec events from inside a pod cgroup (real proc probe → decoder → enricher)', async (t) => {
  if (!requires(t, !skipReason, skipReason)) return;
  const objPath = fileURLToPath(new URL('../../bpf/proc/proc.bpf.o', import.meta.url));
  if (!requires(t, hasBpf() && existsSync(objPath), 'root, BTF and bpf/proc/proc.bpf.o')) return;
  const { BpfObject } = await import('../../agent/src/bpf/object.ts');
  const { EventDecoder, verifyProbeLayouts } = await import('../../agent/src/decode/index.ts');
  const obj = BpfObject.open(objPath);
  const tmp = mkdtempSync(join(tmpdir(), 'enrich-bpf-'));
  const marker = join(tmp, `marker-${randomBytes(4).toString('hex')}`);
  symlinkSync('/bin/sleep', marker); // a unique execve path tells our exec apart from the machine's
  const got: Array<{ ev: ExecEvent; r: Resource }> = [];
  let reader: { stop(): Promise<void> } | undefined;
  try {
    verifyProbeLayouts('proc', obj);
    obj.load();
    for (const a of obj.attachAll()) assert.ok(a.ok, `attach ${a.program}: ${a.error}`);
    const pending = new Map<ExecEvent, true>();
    enricher!.setReleaseHandler((item, r, _ts, ok) => {
      released.push({ item: String(item), r, ok });
      const ev = item as unknown as ExecEvent;
      if (pending.delete(ev)) got.push({ ev, r });
    });
    const dec = new EventDecoder({
      exec: (v) => {
        const ev = v.toObject();
        if (ev.filename !== marker) return;
        // What the agent pipeline does per exec record: feed the process cache, then enrich.
        enricher!.onExec(ev.tgid, { ppid: ev.ppid, comm: ev.comm, filename: ev.filename });
        const r = enricher!.enrich(Number(ev.cgroupId), ev.tgid, ev.tsNs, ev);
        if (r) got.push({ ev, r });
        else pending.set(ev, true);
      },
    });
    reader = obj.openRingBuffer('events', (buf, len, count) => { dec.decodeBatch(buf, len, count); });
    const webDir = join(cg2.mount!, 'kubepods.slice', 'kubepods-burstable.slice', `kubepods-burstable-pod${web.uid.replace(/-/g, '_')}.slice`, `cri-containerd-${web.id}.scope`);
    const dbDir = join(cg2.mount!, 'kubepods.slice', 'kubepods-burstable.slice', `kubepods-burstable-pod${db.uid.replace(/-/g, '_')}.slice`, `cri-containerd-${db.id}.scope`);
    // The shell moves itself into the pod's cgroup, then execs: that exec happens inside the pod.
    for (const dir of [webDir, dbDir]) {
      const c = spawn('sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec ${marker} 0.3`], { stdio: 'ignore' });
      procs.push(c);
    }
    await until(() => got.length >= 2, 10_000, 'two enriched exec events');
    const webEv = got.find((g) => Number(g.ev.cgroupId) === web.cgroupId);
    const dbEv = got.find((g) => Number(g.ev.cgroupId) === db.cgroupId);
    assert.ok(webEv && dbEv, `BPF cgroup ids ${got.map((g) => g.ev.cgroupId).join(',')} match the directory inodes ${web.cgroupId},${db.cgroupId}`);
    assert.equal(attr(webEv.r, 'k8s.pod.name'), web.name);
    assert.equal(attr(webEv.r, 'k8s.deployment.name'), 'web');
    assert.equal(attr(webEv.r, 'k8s.container.name'), 'main');
    assert.equal(attr(webEv.r, 'process.pid'), BigInt(webEv.ev.tgid));
    assert.equal(attr(dbEv.r, 'k8s.pod.name'), 'db-0');
    assert.equal(attr(dbEv.r, 'k8s.statefulset.name'), 'db');
    assert.equal(attr(dbEv.r, 'service.name'), 'database');
  } finally {
    await reader?.stop();
    obj.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});
