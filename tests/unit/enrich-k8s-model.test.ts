import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod, V1OwnerReference } from '@kubernetes/client-node';
import {
  parseImage, podMetaFromV1, serviceNameOf, splitContainerId, containerById, workloadsOf,
} from '../../lib/k8s/pod-model.ts';
import { OwnerResolver, type OwnerLookup } from '../../lib/k8s/owners.ts';
import { PodStore } from '../../lib/k8s/pod-store.ts';
import { validatePodInformerConfig } from '../../lib/k8s/informer.ts';
import { loadKubeConfig } from '../../lib/k8s/kubeconfig.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';

const CID = 'c'.repeat(64);

function pod(over: Partial<{ name: string; uid: string; labels: Record<string, string>; owner: V1OwnerReference; ip: string; hostNetwork: boolean; cid: string; annotations: Record<string, string> }> = {}): V1Pod {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      name: over.name ?? 'web-7d4b9c-abcde', namespace: 'shop', uid: over.uid ?? 'u-1', resourceVersion: '10',
      labels: over.labels ?? { 'pod-template-hash': '7d4b9c' },
      annotations: over.annotations ?? { 'team.example.com/owner': 'alice', 'kubectl.kubernetes.io/last-applied-configuration': '{}', 'prometheus.io/scrape': 'true' },
      ownerReferences: over.owner ? [over.owner] : [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c', uid: 'rs-1', controller: true }],
    },
    spec: {
      nodeName: 'node-a', hostNetwork: over.hostNetwork,
      containers: [{ name: 'app', image: 'registry.local:5000/shop/web:1.4.2@sha256:' + 'f'.repeat(64) }, { name: 'sidecar', image: 'envoy' }],
      initContainers: [{ name: 'init', image: 'busybox:1.36' }],
    },
    status: {
      phase: 'Running', podIP: over.ip ?? '10.1.0.7', podIPs: [{ ip: over.ip ?? '10.1.0.7' }, { ip: 'fd00::7' }], qosClass: 'Burstable',
      containerStatuses: [
        { name: 'app', containerID: `containerd://${over.cid ?? CID}`, image: 'x', imageID: '', ready: true, restartCount: 0 },
        { name: 'sidecar', containerID: '', image: 'envoy', imageID: '', ready: false, restartCount: 0 },
      ],
      initContainerStatuses: [{ name: 'init', containerID: 'cri-o://' + 'd'.repeat(64), image: 'busybox:1.36', imageID: '', ready: false, restartCount: 0 }],
    },
  };
}

test('splitContainerId strips the runtime scheme', () => {
  assert.deepEqual(splitContainerId('containerd://abc'), { runtime: 'containerd', id: 'abc' });
  assert.deepEqual(splitContainerId('cri-o://def'), { runtime: 'cri-o', id: 'def' });
  assert.deepEqual(splitContainerId('docker://0a'), { runtime: 'docker', id: '0a' });
  assert.deepEqual(splitContainerId('bare'), { runtime: '', id: 'bare' });
  assert.deepEqual(splitContainerId(undefined), { runtime: '', id: '' });
});

test('parseImage: registry port, tag, digest, no tag', () => {
  assert.deepEqual(parseImage('registry.local:5000/shop/web:1.4.2@sha256:abc'), { name: 'registry.local:5000/shop/web', tag: '1.4.2' });
  assert.deepEqual(parseImage('registry.local:5000/shop/web'), { name: 'registry.local:5000/shop/web', tag: '' });
  assert.deepEqual(parseImage('nginx:1.25'), { name: 'nginx', tag: '1.25' });
  assert.deepEqual(parseImage('nginx@sha256:abc'), { name: 'nginx', tag: '' });
});

test('podMetaFromV1 flattens a pod: containers with ids, IPs, QoS, selected annotations', () => {
  const m = podMetaFromV1(pod(), { annotations: ['team.example.com/*', 'prometheus.io/scrape'] }, { kind: 'Deployment', name: 'web' });
  assert.equal(m.uid, 'u-1');
  assert.equal(m.namespace, 'shop');
  assert.equal(m.nodeName, 'node-a');
  assert.equal(m.podIP, '10.1.0.7');
  assert.deepEqual(m.podIPs, ['10.1.0.7', 'fd00::7']);
  assert.equal(m.qosClass, 'burstable');
  assert.deepEqual(m.annotations, { 'team.example.com/owner': 'alice', 'prometheus.io/scrape': 'true' });
  assert.deepEqual(m.containers.map((c) => [c.name, c.kind, c.id, c.runtime, c.imageName, c.imageTag]), [
    ['app', 'container', CID, 'containerd', 'registry.local:5000/shop/web', '1.4.2'],
    ['sidecar', 'container', '', '', 'envoy', ''],
    ['init', 'init', 'd'.repeat(64), 'cri-o', 'busybox', '1.36'],
  ]);
  assert.deepEqual(m.workloads, { replicaset: 'web-7d4b9c', deployment: 'web', top: { kind: 'Deployment', name: 'web' } });
  assert.equal(m.serviceName, 'web');
  assert.equal(containerById(m, CID)?.name, 'app');
  assert.equal(containerById(m, ''), undefined, 'an unreported id never matches');
});

test('service.name rule: app.kubernetes.io/name, then app, then top workload, then pod name', () => {
  const w = workloadsOf({ kind: 'StatefulSet', name: 'db' });
  assert.equal(serviceNameOf({ 'app.kubernetes.io/name': 'a', app: 'b' }, w, 'db-0'), 'a');
  assert.equal(serviceNameOf({ app: 'b' }, w, 'db-0'), 'b');
  assert.equal(serviceNameOf({}, w, 'db-0'), 'db');
  assert.equal(serviceNameOf({}, {}, 'lonely'), 'lonely');
  // ReplicaSet without a known Deployment: the ReplicaSet is the top workload.
  assert.equal(serviceNameOf({}, workloadsOf({ kind: 'ReplicaSet', name: 'rs-x' }), 'p'), 'rs-x');
  assert.equal(serviceNameOf({}, workloadsOf({ kind: 'Job', name: 'nightly-29000' }, { kind: 'CronJob', name: 'nightly' }), 'p'), 'nightly');
});

test('workloadsOf: every controller kind', () => {
  assert.deepEqual(workloadsOf({ kind: 'DaemonSet', name: 'ds' }), { daemonset: 'ds', top: { kind: 'DaemonSet', name: 'ds' } });
  assert.deepEqual(workloadsOf({ kind: 'StatefulSet', name: 'ss' }), { statefulset: 'ss', top: { kind: 'StatefulSet', name: 'ss' } });
  assert.deepEqual(workloadsOf({ kind: 'Job', name: 'j' }), { job: 'j', top: { kind: 'Job', name: 'j' } });
  assert.deepEqual(workloadsOf({ kind: 'Job', name: 'j-1' }, { kind: 'CronJob', name: 'j' }), { job: 'j-1', cronjob: 'j', top: { kind: 'CronJob', name: 'j' } });
  assert.deepEqual(workloadsOf({ kind: 'Node', name: 'node-a' }), { top: { kind: 'Node', name: 'node-a' } });
  assert.deepEqual(workloadsOf(undefined), {});
});

test('OwnerResolver: cached lookups, pending then resolved, hash guess only for ReplicaSets', async () => {
  const calls: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const lookup: OwnerLookup = {
    async ownerRefs(kind, ns, name) {
      calls.push(`${kind}/${ns}/${name}`);
      await gate;
      if (kind === 'ReplicaSet') return [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd', controller: true }];
      if (name === 'gone') return null;
      return [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly', uid: 'c', controller: true }];
    },
  };
  let t = 0;
  const r = new OwnerResolver(lookup, { ttlMs: 1000, errorTtlMs: 100, maxEntries: 10 }, () => {}, () => t);
  const resolved: string[] = [];
  r.onResolved((k, ns, n) => resolved.push(`${k}/${ns}/${n}`));
  const a = r.parentOf('shop', { kind: 'ReplicaSet', name: 'web-7d4b9c' }, { 'pod-template-hash': '7d4b9c' });
  assert.deepEqual(a, { parent: { kind: 'Deployment', name: 'web' }, pending: true }, 'hash guess while the lookup runs');
  const j = r.parentOf('shop', { kind: 'Job', name: 'nightly-290001' }, {});
  assert.deepEqual(j, { parent: undefined, pending: true }, 'no guess for Jobs');
  r.parentOf('shop', { kind: 'ReplicaSet', name: 'web-7d4b9c' }, {});
  assert.equal(calls.length, 2, 'in-flight lookups are shared');
  release();
  await new Promise((res) => setImmediate(res));
  assert.deepEqual(resolved.sort(), ['Job/shop/nightly-290001', 'ReplicaSet/shop/web-7d4b9c']);
  assert.deepEqual(r.parentOf('shop', { kind: 'Job', name: 'nightly-290001' }, {}), { parent: { kind: 'CronJob', name: 'nightly' }, pending: false });
  assert.equal(calls.length, 2, 'answered from cache');
  t = 2000; // expired: looked up again
  r.parentOf('shop', { kind: 'Job', name: 'nightly-290001' }, {});
  assert.equal(calls.length, 3);
  assert.deepEqual(r.parentOf('shop', { kind: 'StatefulSet', name: 'db' }, {}), { pending: false });
});

test('OwnerResolver: lookup errors are reported and remembered for errorTtlMs; no lookup → guesses only', async () => {
  const errs: unknown[] = [];
  let n = 0;
  const failing: OwnerLookup = { async ownerRefs() { n++; throw new Error('forbidden'); } };
  let t = 0;
  const r = new OwnerResolver(failing, { ttlMs: 1000, errorTtlMs: 50, maxEntries: 10 }, (e) => errs.push(e), () => t);
  r.parentOf('ns', { kind: 'Job', name: 'j' }, {});
  await new Promise((res) => setImmediate(res));
  assert.equal(errs.length, 1);
  assert.equal(r.parentOf('ns', { kind: 'Job', name: 'j' }, {}).pending, false);
  assert.equal(n, 1);
  t = 60;
  assert.equal(r.parentOf('ns', { kind: 'Job', name: 'j' }, {}).pending, true, 'retried after errorTtlMs');
  const none = new OwnerResolver(null);
  assert.deepEqual(none.parentOf('ns', { kind: 'ReplicaSet', name: 'api-5f6d' }, { 'pod-template-hash': '5f6d' }), { parent: { kind: 'Deployment', name: 'api' }, pending: false });
  assert.deepEqual(none.parentOf('ns', { kind: 'ReplicaSet', name: 'api-5f6d' }, { 'pod-template-hash': 'other' }), { parent: undefined, pending: false });
});

test('PodStore: indexes by uid, container id, IP; deleted pods resolve until their TTL', () => {
  let t = 0;
  const s = new PodStore({ maxPods: 10, deletedTtlMs: 1000, maxDeleted: 2 }, () => t);
  const changes: string[] = [];
  s.onChange((p, c) => changes.push(`${c}:${p.name}`));
  const m = podMetaFromV1(pod(), { annotations: [] });
  s.upsert(m);
  assert.equal(s.getByUid('u-1'), m);
  assert.equal(s.getByContainerId(CID), m);
  assert.equal(s.getByIp('10.1.0.7'), m);
  assert.equal(s.getByIp('fd00::7'), m);
  s.remove('u-1');
  assert.equal(s.size, 0);
  assert.equal(s.getByUid('u-1'), m, 'deleted pod still resolves');
  assert.equal(s.getByContainerId(CID), m);
  assert.equal(s.getByIp('10.1.0.7'), m);
  assert.ok(s.isDeleted('u-1'));
  // IP reused by a new pod: the live pod wins.
  const m2 = podMetaFromV1(pod({ name: 'other', uid: 'u-2', cid: 'e'.repeat(64) }), { annotations: [] });
  s.upsert(m2);
  assert.equal(s.getByIp('10.1.0.7'), m2);
  t = 1000;
  assert.equal(s.getByUid('u-1'), undefined, 'gone after TTL');
  assert.equal(s.getByContainerId(CID), undefined);
  assert.deepEqual(changes, ['add:web-7d4b9c-abcde', 'delete:web-7d4b9c-abcde', 'add:other']);
});

test('PodStore: bounded live and deleted sets; host-network pods not indexed by IP', () => {
  const s = new PodStore({ maxPods: 2, deletedTtlMs: 1000, maxDeleted: 1 });
  const mk = (i: number, hostNetwork = false) => podMetaFromV1(pod({ name: `p${i}`, uid: `u${i}`, ip: `10.0.0.${i}`, cid: String(i).repeat(64).slice(0, 64), hostNetwork }), { annotations: [] });
  assert.ok(s.upsert(mk(1)));
  assert.ok(s.upsert(mk(2, true)));
  assert.equal(s.upsert(mk(3)), false, 'refused when full');
  assert.equal(s.counters.overflow, 1);
  assert.equal(s.getByIp('10.0.0.2'), undefined, 'host-network pod not in the IP index');
  s.remove('u1');
  s.remove('u2');
  assert.equal(s.deletedSize, 1);
  assert.equal(s.getByUid('u1'), undefined, 'oldest tombstone dropped');
  assert.ok(s.getByUid('u2'));
});

test('validatePodInformerConfig: defaults and field-named errors', () => {
  const d = validatePodInformerConfig(undefined);
  assert.equal(d.owners.enabled, true);
  const c = validatePodInformerConfig({ nodeName: 'n1', annotations: ['a/*'], store: { deletedTtlMs: 5 } });
  assert.equal(c.nodeName, 'n1');
  assert.equal(c.store.deletedTtlMs, 5);
  assert.throws(() => validatePodInformerConfig({ store: { maxPods: -1 } }), (e: unknown) => e instanceof ConfigError && e.field === 'k8s.store.maxPods');
  assert.throws(() => validatePodInformerConfig({ annotations: 'x' }), (e: unknown) => e instanceof ConfigError && e.field === 'k8s.annotations');
  assert.throws(() => validatePodInformerConfig({ backoffMinMs: 100, backoffMaxMs: 10 }), (e: unknown) => e instanceof ConfigError && e.field === 'k8s.backoffMaxMs');
  // a typo is an error naming the field, at every level, not a silently ignored setting
  assert.throws(() => validatePodInformerConfig({ nodename: 'n1' }), (e: unknown) => e instanceof ConfigError && e.field === 'k8s.nodename');
  assert.throws(() => validatePodInformerConfig({ store: { maxPod: 5 } }), (e: unknown) => e instanceof ConfigError && e.field === 'k8s.store.maxPod');
  assert.throws(() => validatePodInformerConfig({ owners: { ttl: 5 } }), (e: unknown) => e instanceof ConfigError && e.field === 'k8s.owners.ttl');
  assert.throws(() => validatePodInformerConfig({ owners: [] }), (e: unknown) => e instanceof ConfigError && e.field === 'k8s.owners');
});

test('loadKubeConfig: nothing configured → null (no error); explicit env file is used', async () => {
  assert.equal(loadKubeConfig({ env: {} }), null);
  assert.equal(loadKubeConfig({ env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, tokenPath: '/nonexistent/token' }), null);
  assert.equal(loadKubeConfig({ env: { KUBECONFIG: '/nonexistent/kubeconfig' } }), null);
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'kc-'));
  const f = join(dir, 'config');
  writeFileSync(f, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
  const a = loadKubeConfig({ env: { KUBECONFIG: f } });
  assert.equal(a?.source, 'env');
  assert.equal(a?.kc.getCurrentCluster()?.server, 'https://127.0.0.1:1');
});
