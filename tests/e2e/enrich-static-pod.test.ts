// Static pods against a real kube-apiserver (tests/peers) and real cgroups on this host. The kubelet
// runs a static pod under its config hash — the uid its cgroups carry — and shows it in the API as a
// mirror pod with another uid and the annotation `kubernetes.io/config.mirror: <hash>`. Here the
// mirror pod is created as the kubelet would, a process is moved into a cgroup named with the hash,
// and (cgroup id, pid) must resolve to the mirror pod through a PodInformer-fed Enricher.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { isRoot, requires } from '../lib/env.ts';
import { tryEnsurePeer, startKubeApiserver, type KubeApiserverHandle } from '../peers/index.ts';
import { loadKubeConfig, PodInformer, validatePodInformerConfig } from '../../lib/k8s/index.ts';
import { Enricher, defaultEnricherConfig } from '../../agent/src/enrich/enricher.ts';
import { detectCgroup2 } from '../../agent/src/enrich/cgroup-index.ts';
import { attr } from '../../agent/src/enrich/attributes.ts';
import type { Resource } from '../../proto/src/model.ts';

const cg2 = detectCgroup2('/sys/fs/cgroup');
const NODE = `static-e2e-${randomBytes(3).toString('hex')}`;
const NS = 'kube-system';

let skipReason = '';
let api: KubeApiserverHandle | undefined;
let informer: PodInformer | undefined;
let enricher: Enricher<string> | undefined;
const released: Array<{ item: string; r: Resource; ok: boolean }> = [];
const procs: ChildProcess[] = [];
const created: string[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

async function req(method: string, path: string, body?: unknown, contentType?: string): Promise<any> {
  const r = await api!.request(method, path, body, contentType ? { contentType } : undefined);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return r.body ? r.json() : undefined;
}

before(async () => {
  if (!isRoot()) { skipReason = 'root'; return; }
  if (!cg2.mount) { skipReason = 'a cgroup2 hierarchy'; return; }
  const peer = await tryEnsurePeer('kube-apiserver');
  if (!peer.ok) { skipReason = `the kube-apiserver peer (${peer.error.split('\n')[0]})`; return; }
  api = await startKubeApiserver();
  const access = loadKubeConfig({ kubeconfig: api.kubeconfig })!;
  informer = new PodInformer(access.kc, validatePodInformerConfig({ nodeName: NODE, backoffMinMs: 200, backoffMaxMs: 1000 }));
  informer.start();
  assert.ok(await informer.waitForSync(30_000), 'informer synced');
  enricher = new Enricher<string>(
    { ...defaultEnricherConfig(), cgroupRoot: '/sys/fs/cgroup', nodeName: NODE, holdMs: 30_000, retryIntervalMs: 50, rescanIntervalMs: 0 },
    { pods: informer.store, onRelease: (item, r, _ts, ok) => released.push({ item, r, ok }) },
  );
  await enricher.start();
});

after(async () => {
  for (const c of procs) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  await sleep(100);
  await enricher?.shutdown();
  await informer?.shutdown();
  for (const d of created.reverse()) {
    for (let i = 0; i < 20; i++) {
      try { rmdirSync(d); break; } catch { await sleep(50); }
    }
  }
  await api?.stop();
});

test('static pod: the config-hash cgroup resolves to the mirror pod; status and label updates reach it', async (t) => {
  if (!requires(t, !skipReason, skipReason)) return;
  const hash = randomBytes(16).toString('hex'); // the kubelet's md5 config hash: 32 hex, no dashes
  const containerId = randomBytes(32).toString('hex');
  const name = `etcd-${NODE}`;
  // The kubelet's systemd-driver layout for the static pod: the hash is the pod uid in the path.
  const base = `ks-static-${randomBytes(3).toString('hex')}`;
  let dir = cg2.mount!;
  for (const p of [base, 'kubepods.slice', 'kubepods-burstable.slice', `kubepods-burstable-pod${hash}.slice`, `cri-containerd-${containerId}.scope`]) {
    dir = join(dir, p);
    if (!existsSync(dir)) { mkdirSync(dir); created.push(dir); }
  }
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  procs.push(child);
  await new Promise((r, j) => { child.once('spawn', r); child.once('error', j); });
  writeFileSync(join(dir, 'cgroup.procs'), String(child.pid));
  assert.ok(readFileSync(`/proc/${child.pid}/cgroup`, 'utf8').includes(`pod${hash}.slice`));
  const cgroupId = Number(statSync(dir, { bigint: true }).ino);
  const pid = child.pid!;

  // The mirror pod, as the kubelet creates it: annotations config.mirror/hash/source, owned by the Node.
  const mirror = await req('POST', `/api/v1/namespaces/${NS}/pods`, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      name, labels: { component: 'etcd', tier: 'control-plane' },
      annotations: { 'kubernetes.io/config.mirror': hash, 'kubernetes.io/config.hash': hash, 'kubernetes.io/config.source': 'file' },
    },
    spec: { nodeName: NODE, containers: [{ name: 'etcd', image: 'registry.k8s.io/etcd:3.5.15-0' }] },
  });
  const mirrorUid: string = mirror.metadata.uid;
  assert.notEqual(mirrorUid, hash);
  await until(() => informer!.store.getByUid(mirrorUid) !== undefined, 10_000, 'mirror pod seen by the informer');

  // Container running, id not reported yet: held, then released once the kubelet patches the status.
  assert.equal(enricher!.enrich(cgroupId, pid, 1n, 'early'), undefined, 'held: container id not reported yet');
  await req('PATCH', `/api/v1/namespaces/${NS}/pods/${name}/status`, {
    status: {
      phase: 'Running', podIP: '10.244.9.9', podIPs: [{ ip: '10.244.9.9' }],
      containerStatuses: [{ name: 'etcd', containerID: `containerd://${containerId}`, image: 'registry.k8s.io/etcd:3.5.15-0', imageID: '', ready: true, restartCount: 0, started: true, state: { running: {} } }],
    },
  }, 'application/merge-patch+json');
  await until(() => released.some((x) => x.item === 'early'), 15_000, 'held event released');
  const early = released.find((x) => x.item === 'early')!;
  assert.equal(early.ok, true, 'released with its metadata');
  assert.equal(attr(early.r, 'k8s.pod.name'), name);
  assert.equal(attr(early.r, 'k8s.container.name'), 'etcd');

  const r = enricher!.resolve(cgroupId, pid);
  assert.equal(attr(r, 'k8s.pod.name'), name);
  assert.equal(attr(r, 'k8s.pod.uid'), mirrorUid, "the API's uid");
  assert.equal(attr(r, 'k8s.namespace.name'), NS);
  assert.equal(attr(r, 'k8s.container.name'), 'etcd');
  assert.equal(attr(r, 'container.id'), containerId);
  assert.equal(attr(r, 'container.image.name'), 'registry.k8s.io/etcd');

  // A label update on the mirror pod reaches the entry filed under the hash.
  await req('PATCH', `/api/v1/namespaces/${NS}/pods/${name}`, { metadata: { labels: { app: 'etcd-main' } } }, 'application/merge-patch+json');
  await until(() => attr(enricher!.resolve(cgroupId, pid), 'service.name') === 'etcd-main', 10_000, 'label update applied');
});
