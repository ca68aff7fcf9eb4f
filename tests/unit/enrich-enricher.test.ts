// Enricher against a fake cgroup2 tree (a temp dir: the directories' inodes stand in for cgroup ids,
// exactly as on cgroupfs) and a PodStore fed by hand. Processes are real (this test's own pid and
// children), so process attributes come from /proc.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Enricher, validateEnricherConfig, defaultEnricherConfig, type EnricherConfig } from '../../agent/src/enrich/enricher.ts';
import { attr } from '../../agent/src/enrich/attributes.ts';
import { PodStore } from '../../lib/k8s/pod-store.ts';
import { podMetaFromV1 } from '../../lib/k8s/pod-model.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';
import type { V1Pod } from '@kubernetes/client-node';
import type { Resource } from '../../proto/src/model.ts';

const roots: string[] = [];
after(() => { for (const r of roots) rmSync(r, { recursive: true, force: true }); });

function tree(): string {
  const root = mkdtempSync(join(tmpdir(), 'cg2-'));
  roots.push(root);
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu memory\n');
  return root;
}

const hex = (n: number) => n.toString(16).padStart(64, '0');
const uid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

/** Creates the systemd-driver directories for (pod n, container n); returns the container cgroup id. */
function podCgroup(root: string, n: number, qos = 'burstable'): number {
  const dir = join(root, 'kubepods.slice', `kubepods-${qos}.slice`, `kubepods-${qos}-pod${uid(n).replace(/-/g, '_')}.slice`, `cri-containerd-${hex(n)}.scope`);
  mkdirSync(dir, { recursive: true });
  return statSync(dir).ino;
}

function v1pod(n: number, over: { labels?: Record<string, string>; owner?: { kind: string; name: string }; withStatus?: boolean } = {}): V1Pod {
  const owner = over.owner ?? { kind: 'ReplicaSet', name: `web${n}-6f7d` };
  return {
    metadata: { name: `web${n}-6f7d-x${n}`, namespace: 'shop', uid: uid(n), labels: over.labels ?? { 'pod-template-hash': '6f7d' }, resourceVersion: '1',
      ownerReferences: [{ apiVersion: 'v1', kind: owner.kind, name: owner.name, uid: 'o', controller: true }] },
    spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'shop/web:2.1' }] },
    status: over.withStatus === false ? {} : { podIP: `10.0.0.${n}`, containerStatuses: [{ name: 'app', containerID: `containerd://${hex(n)}`, image: '', imageID: '', ready: true, restartCount: 0 }] },
  };
}

function meta(n: number, over: Parameters<typeof v1pod>[1] = {}) {
  const p = v1pod(n, over);
  const parent = p.metadata!.ownerReferences![0]!.kind === 'ReplicaSet' ? { kind: 'Deployment', name: `web${n}` } : undefined;
  return podMetaFromV1(p, { annotations: [] }, parent);
}

function cfg(root: string, over: Partial<EnricherConfig> = {}): EnricherConfig {
  return { ...defaultEnricherConfig(), cgroupRoot: root, nodeName: 'node-a', holdMs: 300, retryIntervalMs: 20, rescanMinIntervalMs: 10, rescanIntervalMs: 0, ...over };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

test('resolves a pod cgroup to OTel resource attributes and interns the result', async () => {
  const root = tree();
  const cg = podCgroup(root, 1);
  const pods = new PodStore();
  pods.upsert(meta(1));
  const e = new Enricher(cfg(root), { pods });
  await e.start();
  const r = e.resolve(cg, process.pid);
  assert.equal(attr(r, 'k8s.pod.name'), 'web1-6f7d-x1');
  assert.equal(attr(r, 'k8s.pod.uid'), uid(1));
  assert.equal(attr(r, 'k8s.namespace.name'), 'shop');
  assert.equal(attr(r, 'k8s.container.name'), 'app');
  assert.equal(attr(r, 'k8s.node.name'), 'node-a');
  assert.equal(attr(r, 'k8s.deployment.name'), 'web1');
  assert.equal(attr(r, 'k8s.replicaset.name'), 'web1-6f7d');
  assert.equal(attr(r, 'container.id'), hex(1));
  assert.equal(attr(r, 'container.image.name'), 'shop/web');
  assert.deepEqual(attr(r, 'container.image.tags'), ['2.1']);
  assert.equal(attr(r, 'service.name'), 'web1', 'no app labels: the Deployment name');
  assert.equal(attr(r, 'process.pid'), BigInt(process.pid));
  assert.equal(attr(r, 'process.executable.name'), 'node');
  assert.equal(attr(r, 'process.command_line'), undefined, 'command line is opt-in');
  assert.equal(r.attributes[0]!.key, 'service.name');
  assert.equal(e.resolve(cg, process.pid), r, 'same object on repeat');
  e.resolve(cg, 1); // another pid in between defeats the last-hit shortcut
  assert.equal(e.resolve(cg, process.pid), r, 'same object from the map');
  const r1 = e.resolve(cg, 1);
  assert.notEqual(r1, r);
  assert.equal(attr(r1, 'process.pid'), 1n);
  assert.equal(attr(r1, 'k8s.pod.name'), 'web1-6f7d-x1');
  await e.shutdown();
});

test('pod metadata change invalidates the interned resource; exec invalidates the process part', async () => {
  const root = tree();
  const cg = podCgroup(root, 2);
  const pods = new PodStore();
  pods.upsert(meta(2));
  const e = new Enricher(cfg(root, { commandLine: true }), { pods });
  await e.start();
  const r = e.resolve(cg, process.pid);
  assert.ok(String(attr(r, 'process.command_line')).includes('node'));
  pods.upsert(meta(2, { labels: { 'pod-template-hash': '6f7d', app: 'checkout' } }));
  const r2 = e.resolve(cg, process.pid);
  assert.notEqual(r2, r);
  assert.equal(attr(r2, 'service.name'), 'checkout');
  assert.equal(e.resolve(cg, process.pid), r2);
  pods.upsert(meta(2, { labels: { 'app.kubernetes.io/name': 'checkout-svc', app: 'checkout' } }));
  assert.equal(attr(e.resolve(cg, process.pid), 'service.name'), 'checkout-svc');
  const before = e.resolve(cg, process.pid);
  e.onExec(process.pid, { filename: '/usr/bin/other' });
  const after = e.resolve(cg, process.pid);
  assert.notEqual(after, before, 'exec drops the interned resource');
  await e.shutdown();
});

test('events for a pod not yet known are held, then released with metadata when it arrives', async () => {
  const root = tree();
  const cg = podCgroup(root, 3);
  const pods = new PodStore();
  const released: Array<{ item: string; r: Resource; ts: bigint; ok: boolean }> = [];
  const e = new Enricher<string>(cfg(root, { holdMs: 5000 }), { pods, onRelease: (item, r, ts, ok) => released.push({ item, r, ts, ok }) });
  await e.start();
  assert.equal(e.enrich(cg, process.pid, 11n, 'ev1'), undefined);
  assert.equal(e.enrich(cg, process.pid, 12n, 'ev2'), undefined);
  assert.equal(e.heldCount, 2);
  await sleep(50);
  assert.equal(released.length, 0, 'still waiting');
  pods.upsert(meta(3));
  await until(() => released.length === 2);
  assert.deepEqual(released.map((x) => [x.item, x.ts, x.ok]), [['ev1', 11n, true], ['ev2', 12n, true]]);
  assert.equal(attr(released[0]!.r, 'k8s.pod.name'), 'web3-6f7d-x3');
  assert.equal(released[0]!.r, released[1]!.r, 'interned');
  assert.equal(e.enrich(cg, process.pid, 13n, 'ev3'), released[0]!.r, 'now resolved synchronously');
  assert.equal(e.counters.releasedResolved, 2);
  await e.shutdown();
});

test('container id not yet in the pod status: held until the status patch arrives', async () => {
  const root = tree();
  const cg = podCgroup(root, 4);
  const pods = new PodStore();
  pods.upsert(meta(4, { withStatus: false }));
  const released: Resource[] = [];
  const e = new Enricher<number>(cfg(root, { holdMs: 5000 }), { pods, onRelease: (_i, r) => released.push(r) });
  await e.start();
  assert.equal(e.enrich(cg, process.pid, 1n, 1), undefined);
  pods.upsert(meta(4));
  await until(() => released.length === 1);
  assert.equal(attr(released[0]!, 'k8s.container.name'), 'app');
  await e.shutdown();
});

test('cgroup id 0 (a socket without a cgroup, softirq context) resolves by the pid at once: not held, not an unknown cgroup', async () => {
  const root = tree();
  const e = new Enricher<string>(cfg(root, { holdMs: 5_000 }), { pods: new PodStore() });
  await e.start();
  const r = e.enrich(0, process.pid, 1n, 'x');
  assert.ok(r, 'resolved at once, not held for the cgroup tree');
  assert.equal(attr(r, 'process.pid'), BigInt(process.pid));
  assert.equal(e.counters.unknownCgroups, 0);
  await e.shutdown();
});

test('unknown cgroup: released without pod metadata after the hold, counted, no crash', async () => {
  const root = tree();
  const pods = new PodStore();
  const released: Array<{ r: Resource; ok: boolean }> = [];
  const e = new Enricher<string>(cfg(root, { holdMs: 150 }), { pods, onRelease: (_i, r, _t, ok) => released.push({ r, ok }) });
  await e.start();
  const t0 = Date.now();
  assert.equal(e.enrich(987654321, process.pid, 1n, 'x'), undefined);
  await until(() => released.length === 1);
  assert.ok(Date.now() - t0 >= 140, 'waited for the hold');
  assert.equal(released[0]!.ok, false);
  assert.equal(attr(released[0]!.r, 'k8s.pod.name'), undefined);
  assert.equal(attr(released[0]!.r, 'process.pid'), BigInt(process.pid));
  assert.equal(e.counters.releasedUnresolved, 1);
  assert.equal(e.counters.unknownCgroups, 1);
  // Later events from that cgroup are not held again.
  assert.ok(e.enrich(987654321, process.pid, 2n, 'y'));
  await e.shutdown();
});

test('a burst from one pending cgroup costs one lookup per retry interval, not one per event', async () => {
  const root = tree();
  const cg = podCgroup(root, 9);
  const pods = new PodStore();
  let released = 0;
  const e = new Enricher<number>(cfg(root, { holdMs: 10_000, retryIntervalMs: 1000 }), { pods, onRelease: () => released++ });
  await e.start();
  for (let i = 0; i < 1000; i++) assert.equal(e.enrich(cg, process.pid, BigInt(i), i), undefined);
  assert.equal(e.heldCount, 1000);
  assert.ok(e.counters.lookups <= 2, `lookups ${e.counters.lookups}`);
  pods.upsert(meta(9)); // the pod arriving re-opens the lookup at once
  await until(() => released === 1000);
  await e.shutdown();
});

test('a cgroup created after start is learned by a rescan on miss', async () => {
  const root = tree();
  const pods = new PodStore();
  pods.upsert(meta(5));
  const released: Array<{ r: Resource; ok: boolean }> = [];
  const e = new Enricher<string>(cfg(root, { holdMs: 3000 }), { pods, onRelease: (_i, r, _t, ok) => released.push({ r, ok }) });
  await e.start();
  const cg = podCgroup(root, 5); // appears after the initial scan
  assert.equal(e.enrich(cg, process.pid, 1n, 'a'), undefined);
  await until(() => released.length === 1);
  assert.equal(released[0]!.ok, true);
  assert.equal(attr(released[0]!.r, 'k8s.pod.name'), 'web5-6f7d-x5');
  assert.ok(e.index.counters.scans >= 2);
  await e.shutdown();
});

test('a deleted pod still resolves (events in flight)', async () => {
  const root = tree();
  const cg = podCgroup(root, 6);
  const pods = new PodStore();
  pods.upsert(meta(6, { owner: { kind: 'StatefulSet', name: 'db' } }));
  pods.remove(uid(6));
  const e = new Enricher(cfg(root), { pods });
  await e.start();
  const r = e.resolve(cg, process.pid);
  assert.equal(attr(r, 'k8s.pod.name'), 'web6-6f7d-x6');
  assert.equal(attr(r, 'k8s.statefulset.name'), 'db');
  await e.shutdown();
});

test('a path with a container id but no pod uid resolves by container id, also when the pod comes later', async () => {
  const root = tree();
  const dir = join(root, 'k8s.io', hex(30));
  mkdirSync(dir, { recursive: true });
  const cg = statSync(dir).ino;
  const pods = new PodStore();
  const e = new Enricher(cfg(root), { pods });
  await e.start();
  const before = e.resolve(cg, process.pid);
  assert.equal(attr(before, 'container.id'), hex(30));
  assert.equal(attr(before, 'k8s.pod.name'), undefined);
  pods.upsert(meta(30));
  const r = e.resolve(cg, process.pid);
  assert.equal(attr(r, 'k8s.pod.name'), 'web30-6f7d-x30');
  assert.equal(attr(r, 'k8s.container.name'), 'app');
  await e.shutdown();
});

test('without Kubernetes: container and process metadata only, nothing held', async () => {
  const root = tree();
  const cg = podCgroup(root, 7);
  const dockerDir = join(root, 'system.slice', `docker-${hex(70)}.scope`);
  mkdirSync(dockerDir, { recursive: true });
  const e = new Enricher<string>(cfg(root), { pods: null });
  await e.start();
  const r = e.enrich(cg, process.pid, 1n, 'a');
  assert.ok(r, 'not held');
  assert.equal(attr(r!, 'container.id'), hex(7));
  assert.equal(attr(r!, 'k8s.pod.uid'), uid(7), 'the uid from the path is certain');
  assert.equal(attr(r!, 'k8s.pod.name'), undefined);
  assert.equal(attr(r!, 'service.name'), 'unknown_service:node');
  const d = e.resolve(statSync(dockerDir).ino, process.pid);
  assert.equal(attr(d, 'container.id'), hex(70));
  assert.equal(attr(d, 'k8s.pod.uid'), undefined);
  await e.shutdown();
});

test('caches are bounded: cgroups, resources, held events', async () => {
  const root = tree();
  const ids = Array.from({ length: 12 }, (_, i) => podCgroup(root, 100 + i));
  const e = new Enricher<number>(cfg(root, { maxCgroups: 4, maxResources: 8, maxHeld: 3, holdMs: 10_000 }), { pods: null });
  await e.start();
  for (const id of ids) for (let p = 1; p <= 3; p++) e.resolve(id, p);
  assert.ok(e.cgroupCount <= 4, `cgroups ${e.cgroupCount}`);
  assert.ok(e.resourceTotal <= 8, `resources ${e.resourceTotal}`);
  assert.ok(e.counters.evictedCgroups > 0);
  // Still correct after eviction.
  assert.equal(attr(e.resolve(ids[0]!, 1), 'container.id'), hex(100));
  await e.shutdown();

  const pods = new PodStore();
  const released: boolean[] = [];
  const h = new Enricher<number>(cfg(root, { maxHeld: 3, holdMs: 10_000 }), { pods, onRelease: (_i, _r, _t, ok) => released.push(ok) });
  await h.start();
  for (let i = 0; i < 3; i++) assert.equal(h.enrich(ids[5]!, 1, BigInt(i), i), undefined);
  const over = h.enrich(ids[5]!, 1, 9n, 9);
  assert.ok(over, 'queue full: emitted at once');
  assert.equal(attr(over!, 'container.id'), hex(105));
  assert.equal(h.counters.holdOverflow, 1);
  await h.shutdown();
  assert.deepEqual(released, [false, false, false], 'shutdown flushes what was held');
});

test('process cache: exited processes resolve for the TTL, then go', async () => {
  const root = tree();
  const cg = podCgroup(root, 8);
  const e = new Enricher(cfg(root, { processExitTtlMs: 1 }), { pods: null });
  await e.start();
  const child = spawn('sleep', ['30']);
  await new Promise((r) => child.once('spawn', r));
  const pid = child.pid!;
  const r = e.resolve(cg, pid);
  assert.equal(attr(r, 'process.executable.name'), 'sleep');
  assert.equal(attr(r, 'process.parent_pid'), BigInt(process.pid));
  child.kill('SIGKILL');
  await new Promise((res) => child.once('exit', res));
  e.onExit(pid);
  assert.equal(e.resolve(cg, pid), r, 'still resolvable right after exit');
  await sleep(5);
  e.processes.sweep();
  const r2 = e.resolve(cg, pid);
  assert.notEqual(r2, r);
  assert.equal(attr(r2, 'process.executable.name'), undefined, 'gone from /proc and from the cache');
  await e.shutdown();
});

/** A fake host /proc with only <pid>/cgroup files. */
function fakeProc(entries: Record<number, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'proc-'));
  roots.push(root);
  for (const [pid, text] of Object.entries(entries)) {
    mkdirSync(join(root, pid));
    writeFileSync(join(root, pid, 'cgroup'), text);
  }
  return root;
}

test('v1-only host (no cgroup2): containers resolved from /proc/PID/cgroup, per pid', async () => {
  const cgroupRoot = mkdtempSync(join(tmpdir(), 'cg1-')); // no cgroup.controllers anywhere
  roots.push(cgroupRoot);
  const procRoot = fakeProc({
    4001: `5:pids:/kubepods/burstable/pod${uid(20)}/${hex(20)}\n4:memory:/kubepods/burstable/pod${uid(20)}/${hex(20)}\n`,
    4002: `5:pids:/kubepods/burstable/pod${uid(20)}/${hex(20)}\n`,
    4003: `5:pids:/docker/${hex(21)}\n`,
  });
  const pods = new PodStore();
  pods.upsert(meta(20));
  const e = new Enricher(cfg(cgroupRoot, { procRoot }), { pods });
  await e.start();
  assert.equal(e.index.layout, 'legacy');
  // On v1 the BPF cgroup id carries nothing (it is the same for every task): the pid decides.
  const a = e.resolve(1, 4001);
  assert.equal(attr(a, 'k8s.pod.name'), 'web20-6f7d-x20');
  assert.equal(attr(a, 'k8s.container.name'), 'app');
  assert.equal(e.resolve(1, 4001), a, 'interned');
  assert.equal(attr(e.resolve(1, 4002), 'k8s.pod.uid'), uid(20));
  const d = e.resolve(1, 4003);
  assert.equal(attr(d, 'container.id'), hex(21));
  assert.equal(attr(d, 'k8s.pod.name'), undefined);
  await e.shutdown();
});

test('hybrid host, task in the cgroup2 root: the v1 lines name the container', async () => {
  const root = tree();
  const rootId = statSync(root).ino;
  const procRoot = fakeProc({ 5001: `4:memory:/kubepods/besteffort/pod${uid(22)}/${hex(22)}\n0::/\n` });
  const pods = new PodStore();
  pods.upsert(meta(22));
  const e = new Enricher(cfg(root, { procRoot }), { pods });
  await e.start();
  const r = e.resolve(rootId, 5001);
  assert.equal(attr(r, 'k8s.pod.name'), 'web22-6f7d-x22');
  assert.equal(attr(r, 'container.id'), hex(22));
  assert.equal(e.resolve(rootId, 5001), r);
  await e.shutdown();
});

test('validateEnricherConfig: defaults, field-named errors', () => {
  assert.equal(validateEnricherConfig(undefined).holdMs, 2000);
  assert.equal(validateEnricherConfig({ holdMs: 0, procRoot: '/procHost' }).procRoot, '/procHost');
  const bad = (raw: unknown, field: string) => assert.throws(() => validateEnricherConfig(raw), (err: unknown) => err instanceof ConfigError && err.field === field);
  bad({ maxCgroups: 0 }, 'enrich.maxCgroups');
  bad({ holdMs: -1 }, 'enrich.holdMs');
  bad({ commandLine: 'yes' }, 'enrich.commandLine');
  bad({ podLabels: [1] }, 'enrich.podLabels');
  bad({ nope: 1 }, 'enrich.nope');
  bad([], 'enrich');
});
