// The Enricher's secondary indexes (pod uid → entries, container id → entries) must only ever point
// at entries still in a primary cache (cgroup entries, pid-keyed path entries): otherwise every
// evicted entry keeps its PodMeta alive and memory grows with pod churn. Driven like
// enrich-enricher.test.ts: a temp dir as the cgroup2 tree (inodes stand in for cgroup ids), a fake
// /proc with <pid>/cgroup files, a PodStore fed by hand, and a fake clock for tombstones and exits.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Enricher, defaultEnricherConfig, type EnricherConfig } from '../../agent/src/enrich/enricher.ts';
import { attr } from '../../agent/src/enrich/attributes.ts';
import { PodStore } from '../../lib/k8s/pod-store.ts';
import { podMetaFromV1 } from '../../lib/k8s/pod-model.ts';
import type { V1Pod } from '@kubernetes/client-node';

const roots: string[] = [];
after(() => { for (const r of roots) rmSync(r, { recursive: true, force: true }); });

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  roots.push(d);
  return d;
}

/** A cgroup2-like tree (cgroup.controllers at its root). */
function tree(): string {
  const root = tempDir('cg2-');
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu memory\n');
  return root;
}

/** A fake host /proc with only <pid>/cgroup files. */
function fakeProc(entries: Record<number, string>): string {
  const root = tempDir('proc-');
  for (const [pid, text] of Object.entries(entries)) {
    mkdirSync(join(root, pid));
    writeFileSync(join(root, pid, 'cgroup'), text);
  }
  return root;
}

const hex = (n: number) => n.toString(16).padStart(64, '0');
const uid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

/** systemd-driver directories for (pod n, container n); returns the container cgroup id. */
function podCgroup(root: string, n: number): number {
  const dir = join(root, 'kubepods.slice', 'kubepods-burstable.slice', `kubepods-burstable-pod${uid(n).replace(/-/g, '_')}.slice`, `cri-containerd-${hex(n)}.scope`);
  mkdirSync(dir, { recursive: true });
  return statSync(dir).ino;
}

/** A container cgroup whose path names no pod (resolved by container id, indexed in byContainer). */
function bareContainerCgroup(root: string, n: number): number {
  const dir = join(root, 'k8s.io', hex(n));
  mkdirSync(dir, { recursive: true });
  return statSync(dir).ino;
}

function meta(n: number, labels: Record<string, string> = { 'pod-template-hash': '6f7d' }) {
  const p: V1Pod = {
    metadata: { name: `web${n}-6f7d-x${n}`, namespace: 'shop', uid: uid(n), labels, resourceVersion: '1',
      ownerReferences: [{ apiVersion: 'v1', kind: 'ReplicaSet', name: `web${n}-6f7d`, uid: 'o', controller: true }] },
    spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'shop/web:2.1' }] },
    status: { podIP: `10.0.${n >> 8}.${n & 255}`, containerStatuses: [{ name: 'app', containerID: `containerd://${hex(n)}`, image: '', imageID: '', ready: true, restartCount: 0 }] },
  };
  return podMetaFromV1(p, { annotations: [] }, { kind: 'Deployment', name: `web${n}` });
}

function cfg(cgroupRoot: string, over: Partial<EnricherConfig> = {}): EnricherConfig {
  return { ...defaultEnricherConfig(), cgroupRoot, nodeName: 'node-a', rescanMinIntervalMs: 10, rescanIntervalMs: 0, ...over };
}

/** The indexes never hold more entries than the caches they index, and the caches keep their limits. */
function assertBounded(e: Enricher, c: EnricherConfig, where: string): void {
  const s = e.indexSizes();
  const entries = e.cgroupCount + s.pathEntries;
  assert.ok(e.cgroupCount <= c.maxCgroups, `${where}: cgroups ${e.cgroupCount} > ${c.maxCgroups}`);
  assert.ok(s.pathEntries <= c.maxCgroups, `${where}: path entries ${s.pathEntries} > ${c.maxCgroups}`);
  assert.ok(s.pidEntries <= c.maxResources, `${where}: pid mappings ${s.pidEntries} > ${c.maxResources}`);
  assert.ok(s.podRefs <= entries, `${where}: byPodUid holds ${s.podRefs} refs for ${entries} cached entries`);
  assert.ok(s.containerRefs <= entries, `${where}: byContainer holds ${s.containerRefs} refs for ${entries} cached entries`);
  assert.ok(s.podUids <= s.podRefs && s.containers <= s.containerRefs, `${where}: empty index sets left behind`);
}

// v1-only host (every pid resolved through its own /proc/PID/cgroup) and cgroup id 0 (softirq: the
// pid is whatever process was interrupted) both go through the pid-keyed path entries.
for (const mode of ['v1-only host', 'cgroup id 0 on a cgroup2 host'] as const) {
  test(`pid-keyed entries (${mode}): pod churn past the cache sizes keeps the indexes bounded`, async () => {
    const v1 = mode === 'v1-only host';
    const pods = new PodStore();
    const procEntries: Record<number, string> = {};
    // 40 pods with a pod uid in the path, 20 bare docker containers (10 of them known by container id).
    for (let n = 0; n < 60; n++) {
      const line = n < 40 ? `5:pids:/kubepods/burstable/pod${uid(n)}/${hex(n)}\n` : `5:pids:/docker/${hex(n)}\n`;
      procEntries[6000 + n] = v1 ? line : `${line}0::/\n`;
      if (n < 50) pods.upsert(meta(n));
    }
    const c = cfg(v1 ? tempDir('cg1-') : tree(), { procRoot: fakeProc(procEntries), maxCgroups: 8, maxResources: 16 });
    const e = new Enricher(c, { pods });
    await e.start();
    assert.equal(e.index.layout, v1 ? 'legacy' : 'unified');
    const cg = v1 ? 1 : 0;
    let peakPodRefs = 0;
    let peakContainerRefs = 0;
    for (let round = 0; round < 3; round++) {
      for (let n = 0; n < 60; n++) {
        e.resolve(cg, 6000 + n);
        assertBounded(e, c, `round ${round}, pid ${6000 + n}`);
        const s = e.indexSizes();
        peakPodRefs = Math.max(peakPodRefs, s.podRefs);
        peakContainerRefs = Math.max(peakContainerRefs, s.containerRefs);
      }
    }
    assert.ok(e.counters.evictedPathEntries > 0, 'the path entries were churned past maxCgroups');
    assert.ok(peakPodRefs > 0 && peakContainerRefs > 0, 'both indexes were in use');
    // Eviction leaves resolution correct.
    const r = e.resolve(cg, 6003);
    assert.equal(attr(r, 'k8s.pod.name'), 'web3-6f7d-x3');
    assert.equal(attr(r, 'k8s.container.name'), 'app');
    assert.equal(attr(e.resolve(cg, 6045), 'k8s.pod.name'), 'web45-6f7d-x45', 'bare container found by container id');
    assert.equal(attr(e.resolve(cg, 6055), 'container.id'), hex(55));
    await e.shutdown();
  });
}

test('pid-keyed entries go with their last process; an exec keeps the mapping', async () => {
  let clock = 1_000_000;
  const now = () => clock;
  const procRoot = fakeProc({
    7001: `5:pids:/kubepods/burstable/pod${uid(1)}/${hex(1)}\n`,
    7002: `5:pids:/kubepods/burstable/pod${uid(1)}/${hex(1)}\n`,
    7003: `5:pids:/kubepods/burstable/pod${uid(2)}/${hex(2)}\n`,
  });
  const pods = new PodStore(undefined, now);
  pods.upsert(meta(1));
  pods.upsert(meta(2));
  const c = cfg(tempDir('cg1-'), { procRoot, processExitTtlMs: 1000 });
  const e = new Enricher(c, { pods, now });
  await e.start();
  // The exec events put the processes in the process cache (fake /proc has no stat: facts are used).
  for (const pid of [7001, 7002, 7003]) e.onExec(pid, { comm: 'app', ppid: 1 });
  for (const pid of [7001, 7002, 7003]) assert.equal(attr(e.resolve(1, pid), 'k8s.pod.uid'), uid(pid === 7003 ? 2 : 1));
  assert.deepEqual(e.indexSizes(), { podUids: 2, podRefs: 2, containers: 0, containerRefs: 0, pathEntries: 2, pidEntries: 3 });

  // Re-exec of a cached process: the cache forgets the old image, but the process (and its cgroup) stays.
  e.onExec(7003, { comm: 'app2', ppid: 1 });
  assert.deepEqual(e.indexSizes(), { podUids: 2, podRefs: 2, containers: 0, containerRefs: 0, pathEntries: 2, pidEntries: 3 });
  assert.equal(attr(e.resolve(1, 7003), 'k8s.pod.name'), 'web2-6f7d-x2');

  e.onExit(7001);
  clock += 1000;
  e.sweep();
  assert.deepEqual(e.indexSizes(), { podUids: 2, podRefs: 2, containers: 0, containerRefs: 0, pathEntries: 2, pidEntries: 2 }, 'pod 1 still has 7002');
  e.onExit(7002);
  e.onExit(7003);
  clock += 1000;
  e.sweep();
  assert.deepEqual(e.indexSizes(), { podUids: 0, podRefs: 0, containers: 0, containerRefs: 0, pathEntries: 0, pidEntries: 0 });
  await e.shutdown();
});

test('cgroup entries: churn stays bounded; deleted pods resolve until their tombstone expires, then leave the caches and indexes', async () => {
  let clock = 1_000_000;
  const now = () => clock;
  const root = tree();
  const pods = new PodStore({ maxPods: 10_000, deletedTtlMs: 1000, maxDeleted: 1024 }, now);
  const ids: number[] = [];
  for (let n = 100; n < 130; n++) {
    ids.push(podCgroup(root, n));
    pods.upsert(meta(n));
  }
  for (let n = 300; n < 310; n++) {
    ids.push(bareContainerCgroup(root, n));
    pods.upsert(meta(n));
  }
  const c = cfg(root, { maxCgroups: 8 });
  const e = new Enricher(c, { pods, now });
  await e.start();
  for (let round = 0; round < 3; round++) {
    for (const id of ids) {
      e.resolve(id, process.pid);
      assertBounded(e, c, `round ${round}, cgroup ${id}`);
    }
  }
  assert.ok(e.counters.evictedCgroups > 0);

  // The cache now holds the last 8: pods 302..309 (bare containers, indexed by container and by pod).
  const last = Array.from({ length: 8 }, (_, i) => 302 + i);
  assert.equal(e.cgroupCount, 8);
  assert.deepEqual(e.indexSizes(), { podUids: 8, podRefs: 8, containers: 8, containerRefs: 8, pathEntries: 0, pidEntries: 0 });

  for (const n of last.slice(0, 4)) pods.remove(uid(n));
  // Tombstones live: events in flight still get the pod, nothing is dropped.
  assert.equal(attr(e.resolve(ids[ids.length - 8]!, process.pid), 'k8s.pod.name'), 'web302-6f7d-x302');
  assert.equal(e.cgroupCount, 8);
  assert.equal(e.indexSizes().podRefs, 8);

  clock += 1000; // the four tombstones expire
  pods.remove(uid(last[4]!)); // the next delete event prunes them
  assert.equal(e.counters.prunedPodEntries, 4);
  assert.equal(e.cgroupCount, 4);
  assert.deepEqual(e.indexSizes(), { podUids: 4, podRefs: 4, containers: 4, containerRefs: 4, pathEntries: 0, pidEntries: 0 });

  for (const n of last.slice(5)) pods.remove(uid(n));
  clock += 1000;
  e.sweep(); // no delete event this time: the periodic sweep prunes
  assert.equal(e.counters.prunedPodEntries, 8);
  assert.equal(e.cgroupCount, 0);
  assert.deepEqual(e.indexSizes(), { podUids: 0, podRefs: 0, containers: 0, containerRefs: 0, pathEntries: 0, pidEntries: 0 });

  // A late event from a pruned cgroup is resolved again, from the path alone.
  const r = e.resolve(ids[ids.length - 1]!, process.pid);
  assert.equal(attr(r, 'container.id'), hex(309));
  assert.equal(attr(r, 'k8s.pod.name'), undefined);
  // Live pods are never pruned.
  assert.equal(attr(e.resolve(ids[0]!, process.pid), 'k8s.pod.name'), 'web100-6f7d-x100');
  e.sweep();
  assert.equal(e.indexSizes().podRefs, 1);
  await e.shutdown();
});

test('an unknown cgroup read through different pids is re-filed, not filed twice', async () => {
  const root = tree();
  const procRoot = fakeProc({
    7101: `5:pids:/kubepods/burstable/pod${uid(11)}/${hex(11)}\n0::/\n`,
    7102: `5:pids:/kubepods/burstable/pod${uid(12)}/${hex(12)}\n0::/\n`,
  });
  const pods = new PodStore();
  pods.upsert(meta(11));
  pods.upsert(meta(12));
  const e = new Enricher(cfg(root, { procRoot }), { pods });
  await e.start();
  const unknown = 987654321;
  assert.equal(attr(e.resolve(unknown, 7101), 'k8s.pod.uid'), uid(11));
  assert.deepEqual(e.indexSizes(), { podUids: 1, podRefs: 1, containers: 0, containerRefs: 0, pathEntries: 0, pidEntries: 0 });
  pods.upsert(meta(11, { app: 'changed' })); // invalidates the entry: the next lookup uses the next pid
  assert.equal(attr(e.resolve(unknown, 7102), 'k8s.pod.uid'), uid(12));
  assert.deepEqual(e.indexSizes(), { podUids: 1, podRefs: 1, containers: 0, containerRefs: 0, pathEntries: 0, pidEntries: 0 });
  await e.shutdown();
});
