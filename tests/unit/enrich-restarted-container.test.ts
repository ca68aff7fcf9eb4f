// A restarted container gets a new id; the kubelet moves the old one to
// status.containerStatuses[].lastState.terminated.containerID. Events still draining from the old
// instance's cgroup must keep k8s.container.name: the pod model keeps that previous id (one per
// container) and the PodStore indexes it like the current one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { Enricher, defaultEnricherConfig } from '../../agent/src/enrich/enricher.ts';
import { attr } from '../../agent/src/enrich/attributes.ts';
import { PodStore } from '../../lib/k8s/pod-store.ts';
import { containerById, podMetaFromV1 } from '../../lib/k8s/pod-model.ts';

const roots: string[] = [];
after(() => { for (const r of roots) rmSync(r, { recursive: true, force: true }); });

const UID = '0d08203e-255a-11e9-8cd9-0007cb0b2cc9';
const id = (n: number) => n.toString(16).repeat(64).slice(0, 64);

/** The pod as the kubelet reports it after `restarts` restarts of container `app` (ids id(1), id(2), ...). */
function v1(restarts: number, uid = UID, labels: Record<string, string> = {}): V1Pod {
  const cur = id(restarts + 1);
  return {
    metadata: { name: 'web-0', namespace: 'shop', uid, labels },
    spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'shop/web:2' }, { name: 'sidecar', image: 'envoy:1' }] },
    status: {
      containerStatuses: [
        {
          name: 'app', containerID: `containerd://${cur}`, image: '', imageID: '', ready: true, restartCount: restarts,
          lastState: restarts > 0 ? { terminated: { exitCode: 137, containerID: `containerd://${id(restarts)}` } } : {},
        },
        { name: 'sidecar', containerID: `containerd://${id(9)}`, image: '', imageID: '', ready: true, restartCount: 0 },
      ],
    },
  };
}
const meta = (restarts: number, labels?: Record<string, string>) => podMetaFromV1(v1(restarts, UID, labels), { annotations: [] });

test('pod model: the previous instance id is kept and matched after the current ones', () => {
  const m = meta(1);
  const app = m.containers.find((c) => c.name === 'app')!;
  assert.equal(app.id, id(2));
  assert.equal(app.previousId, id(1));
  assert.equal(m.containers.find((c) => c.name === 'sidecar')!.previousId, '');
  assert.equal(containerById(m, id(1))?.name, 'app', 'old instance → same container');
  assert.equal(containerById(m, id(2))?.name, 'app');
  assert.equal(containerById(m, ''), undefined);
  assert.equal(meta(0).containers[0]!.previousId, '', 'never restarted');
});

test('PodStore: the previous id finds the pod, one per container, live and deleted', () => {
  let t = 0;
  const s = new PodStore({ maxPods: 10, deletedTtlMs: 1000, maxDeleted: 10 }, () => t);
  s.upsert(meta(0));
  s.upsert(meta(1));
  assert.equal(s.getByContainerId(id(1))?.name, 'web-0', 'old instance');
  assert.equal(s.getByContainerId(id(2))?.name, 'web-0');
  s.upsert(meta(2));
  assert.equal(s.getByContainerId(id(1)), undefined, 'only one previous id per container is kept');
  assert.equal(s.getByContainerId(id(2))?.name, 'web-0');
  s.remove(UID);
  assert.equal(s.getByContainerId(id(2))?.name, 'web-0', 'tombstone keeps the previous id too');
  t = 1000;
  assert.equal(s.getByContainerId(id(2)), undefined);
});

test('enricher: events from the old instance keep k8s.container.name after the restart', async () => {
  const root = mkdtempSync(join(tmpdir(), 'cg2-'));
  roots.push(root);
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu\n');
  const mk = (rel: string) => { mkdirSync(join(root, rel), { recursive: true }); return statSync(join(root, rel)).ino; };
  const oldCg = mk(`kubepods/besteffort/pod${UID}/${id(1)}`);
  const newCg = mk(`kubepods/besteffort/pod${UID}/${id(2)}`);
  const bare = mk(`k8s.io/${id(1)}`); // a path naming the container only: found by container id
  const pods = new PodStore();
  pods.upsert(meta(0));
  const e = new Enricher<string>({ ...defaultEnricherConfig(), cgroupRoot: root, nodeName: 'node-a', holdMs: 5000, retryIntervalMs: 10, rescanIntervalMs: 0 }, { pods });
  await e.start();
  assert.equal(attr(e.resolve(oldCg, process.pid), 'k8s.container.name'), 'app');
  assert.equal(attr(e.resolve(bare, process.pid), 'k8s.container.name'), 'app');

  pods.upsert(meta(1, { app: 'web' })); // restarted (new id, the old one in lastState), and relabelled
  const r = e.resolve(oldCg, process.pid);
  assert.equal(attr(r, 'k8s.container.name'), 'app', 'old instance still named after the update');
  assert.equal(attr(r, 'container.id'), id(1), "container.id is the cgroup's own");
  assert.equal(attr(r, 'service.name'), 'web');
  assert.equal(attr(e.resolve(newCg, process.pid), 'k8s.container.name'), 'app');
  const rb = e.resolve(bare, process.pid);
  assert.equal(attr(rb, 'k8s.container.name'), 'app');
  assert.equal(attr(rb, 'service.name'), 'web', 'the entry filed under the old id was re-opened by the update');
  // First event of the old cgroup only now: resolved at once, not held for a container id that never comes.
  const first = e.enrich(oldCg, 1, 1n, 'first-after-restart');
  assert.ok(first, 'not held');
  assert.equal(attr(first!, 'k8s.container.name'), 'app');
  await e.shutdown();
});

test('enricher: a cgroup seen before its pod, which arrives already restarted, is re-opened by the old id', async () => {
  const root = mkdtempSync(join(tmpdir(), 'cg2-'));
  roots.push(root);
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu\n');
  mkdirSync(join(root, 'k8s.io', id(1)), { recursive: true });
  const bare = statSync(join(root, 'k8s.io', id(1))).ino;
  const pods = new PodStore();
  const e = new Enricher({ ...defaultEnricherConfig(), cgroupRoot: root, nodeName: 'node-a', rescanIntervalMs: 0 }, { pods });
  await e.start();
  assert.equal(attr(e.resolve(bare, process.pid), 'k8s.pod.name'), undefined, 'no pod has that container (yet)');
  pods.upsert(meta(1)); // first seen after its restart: id(1) only in lastState
  const r = e.resolve(bare, process.pid);
  assert.equal(attr(r, 'k8s.pod.name'), 'web-0');
  assert.equal(attr(r, 'k8s.container.name'), 'app');
  await e.shutdown();
});
