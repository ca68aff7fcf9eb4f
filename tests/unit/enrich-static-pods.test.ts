// Static pods: the kubelet runs them under their config hash (a 32-hex uid), which is what their
// cgroup paths carry; the API shows a mirror pod with another uid and the annotation
// `kubernetes.io/config.mirror: <hash>`. The PodStore indexes mirror pods by that hash, and the
// Enricher finds (and re-opens on pod updates) cgroups filed under it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { Enricher, defaultEnricherConfig, type EnricherConfig } from '../../agent/src/enrich/enricher.ts';
import { attr } from '../../agent/src/enrich/attributes.ts';
import { PodStore } from '../../lib/k8s/pod-store.ts';
import { podMetaFromV1 } from '../../lib/k8s/pod-model.ts';
import type { Resource } from '../../proto/src/model.ts';

const roots: string[] = [];
after(() => { for (const r of roots) rmSync(r, { recursive: true, force: true }); });

const HASH = 'd41d8cd98f00b204e9800998ecf8427e'; // the kubelet's uid for the static pod
const MIRROR_UID = '11111111-2222-4333-8444-555555555555'; // the API's uid for its mirror pod
const CID = 'ab'.repeat(32);

function tree(): { root: string; mk: (rel: string) => number } {
  const root = mkdtempSync(join(tmpdir(), 'cg2-'));
  roots.push(root);
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu\n');
  return { root, mk: (rel) => { mkdirSync(join(root, rel), { recursive: true }); return statSync(join(root, rel)).ino; } };
}

const podSlice = `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${HASH}.slice`;

function mirrorPod(over: { labels?: Record<string, string>; uid?: string; annotations?: Record<string, string> } = {}): V1Pod {
  return {
    metadata: {
      name: 'kube-apiserver-node-a', namespace: 'kube-system', uid: over.uid ?? MIRROR_UID, labels: over.labels ?? { component: 'kube-apiserver', tier: 'control-plane' },
      annotations: over.annotations ?? { 'kubernetes.io/config.mirror': HASH, 'kubernetes.io/config.hash': HASH, 'kubernetes.io/config.source': 'file' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: 'node-uid', controller: true }],
    },
    spec: { nodeName: 'node-a', containers: [{ name: 'kube-apiserver', image: 'registry.k8s.io/kube-apiserver:v1.31.0' }] },
    status: { phase: 'Running', containerStatuses: [{ name: 'kube-apiserver', containerID: `containerd://${CID}`, image: '', imageID: '', ready: true, restartCount: 0 }] },
  };
}
const meta = (over?: Parameters<typeof mirrorPod>[0]) => podMetaFromV1(mirrorPod(over), { annotations: [] });

function cfg(root: string, over: Partial<EnricherConfig> = {}): EnricherConfig {
  return { ...defaultEnricherConfig(), cgroupRoot: root, nodeName: 'node-a', holdMs: 2000, retryIntervalMs: 10, rescanMinIntervalMs: 0, rescanIntervalMs: 0, ...over };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('podMetaFromV1 keeps the mirror annotation as mirrorUid; PodStore finds the mirror pod by it, live and deleted', () => {
  let t = 0;
  const m = meta();
  assert.equal(m.mirrorUid, HASH);
  assert.equal(podMetaFromV1({ metadata: { name: 'x', uid: 'u' } }, { annotations: [] }).mirrorUid, '', 'not a mirror pod');
  const s = new PodStore({ maxPods: 10, deletedTtlMs: 1000, maxDeleted: 10 }, () => t);
  s.upsert(m);
  assert.equal(s.getByMirrorUid(HASH), m);
  assert.equal(s.getByUid(HASH), undefined, 'getByUid stays exact');
  assert.equal(s.getByMirrorUid(MIRROR_UID), undefined);
  s.remove(MIRROR_UID);
  assert.equal(s.getByMirrorUid(HASH), m, 'deleted mirror pod resolves until its tombstone expires');
  // The kubelet recreates a deleted mirror pod (new API uid, same hash): the live one wins.
  const again = meta({ uid: '99999999-2222-4333-8444-555555555555' });
  s.upsert(again);
  assert.equal(s.getByMirrorUid(HASH), again);
  s.remove(again.uid);
  t = 1000;
  assert.equal(s.getByMirrorUid(HASH), undefined, 'gone after the TTL');
});

test('static pod: a cgroup path with the config-hash uid resolves to the mirror pod and its container', async () => {
  const { root, mk } = tree();
  const container = mk(`${podSlice}/cri-containerd-${CID}.scope`);
  const pause = mk(podSlice); // pod-level cgroup (the sandbox's parent): no container id
  const pods = new PodStore();
  pods.upsert(meta());
  const e = new Enricher(cfg(root), { pods });
  await e.start();
  const r = e.resolve(container, process.pid);
  assert.equal(attr(r, 'k8s.pod.name'), 'kube-apiserver-node-a');
  assert.equal(attr(r, 'k8s.pod.uid'), MIRROR_UID, "the API's uid, as the collector knows the pod");
  assert.equal(attr(r, 'k8s.namespace.name'), 'kube-system');
  assert.equal(attr(r, 'k8s.container.name'), 'kube-apiserver');
  assert.equal(attr(r, 'container.id'), CID);
  assert.equal(attr(r, 'container.image.name'), 'registry.k8s.io/kube-apiserver');
  assert.equal(attr(e.resolve(pause, process.pid), 'k8s.pod.name'), 'kube-apiserver-node-a', 'pod-level cgroup, no container id');
  await e.shutdown();
});

test('static pod: an event held until the mirror pod shows up is released with its metadata; updates re-open the entry', async () => {
  const { root, mk } = tree();
  const container = mk(`${podSlice}/cri-containerd-${CID}.scope`);
  const pods = new PodStore();
  const out: Array<{ item: string; r: Resource; ok: boolean }> = [];
  const e = new Enricher<string>(cfg(root), { pods, onRelease: (item, r, _ts, ok) => out.push({ item, r, ok }) });
  await e.start();
  assert.equal(e.enrich(container, process.pid, 1n, 'early'), undefined, 'held: the kubelet has not created the mirror pod yet');
  pods.upsert(meta());
  for (let i = 0; i < 100 && out.length === 0; i++) await sleep(10);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.ok, true);
  assert.equal(attr(out[0]!.r, 'k8s.pod.name'), 'kube-apiserver-node-a');
  assert.equal(attr(out[0]!.r, 'k8s.container.name'), 'kube-apiserver');

  const before = e.resolve(container, process.pid);
  assert.notEqual(attr(before, 'service.name'), 'apiserver');
  pods.upsert(meta({ labels: { app: 'apiserver' } }));
  const afterUpdate = e.resolve(container, process.pid);
  assert.notEqual(afterUpdate, before, 'the mirror pod update invalidated the entry filed under the hash');
  assert.equal(attr(afterUpdate, 'service.name'), 'apiserver');
  await e.shutdown();
});

test('static pod: a deleted mirror pod resolves until its tombstone expires, then its entries are pruned', async () => {
  let clock = 1_000_000;
  const now = () => clock;
  const { root, mk } = tree();
  const container = mk(`${podSlice}/cri-containerd-${CID}.scope`);
  const pods = new PodStore({ maxPods: 100, deletedTtlMs: 1000, maxDeleted: 10 }, now);
  pods.upsert(meta());
  const e = new Enricher(cfg(root), { pods, now });
  await e.start();
  assert.equal(attr(e.resolve(container, process.pid), 'k8s.pod.name'), 'kube-apiserver-node-a');
  pods.remove(MIRROR_UID);
  e.sweep();
  assert.equal(e.counters.prunedPodEntries, 0, 'tombstone live: the entry stays');
  assert.equal(attr(e.resolve(container, process.pid), 'k8s.pod.name'), 'kube-apiserver-node-a');
  clock += 1000;
  e.sweep();
  assert.equal(e.counters.prunedPodEntries, 1);
  await e.shutdown();
});
