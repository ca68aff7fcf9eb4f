// Child of tests/e2e/enrich-cgroupns.test.ts, started under `unshare -C` (its own cgroup namespace,
// rooted at the cgroup it was moved into): resolves the target's cgroup id as the agent would, and
// prints what it saw as one JSON line. Not a test file on its own.
import { readFileSync } from 'node:fs';
import { CgroupIndex, defaultCgroupIndexConfig } from '../../agent/src/enrich/cgroup-index.ts';
import { Enricher, defaultEnricherConfig } from '../../agent/src/enrich/enricher.ts';
import { attr } from '../../agent/src/enrich/attributes.ts';
import { PodStore } from '../../lib/k8s/pod-store.ts';
import { podMetaFromV1 } from '../../lib/k8s/pod-model.ts';

const args = JSON.parse(process.argv[2]!) as { pid: number; cgroupId: number; podUid: string; containerId: string; maxPaths: number };

const seen = readFileSync(`/proc/${args.pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))?.slice(3) ?? '';

// The index alone: a tiny maxEntries, so the tree walk cannot have the target (only the pid can).
const index = new CgroupIndex({ ...defaultCgroupIndexConfig, cgroupRoot: '/sys/fs/cgroup', maxEntries: args.maxPaths, rescanIntervalMs: 0 });
await index.start();
const walked = index.pathOf(args.cgroupId);
const learned = index.learnFromPid(args.pid, args.cgroupId);
const pathOfPid = index.pathOfPid(args.pid);

// The Enricher: the first event of the target's cgroup resolves from the pid, no rescan needed.
const pods = new PodStore();
pods.upsert(podMetaFromV1({
  metadata: { name: 'web-0', namespace: 'shop', uid: args.podUid },
  spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'shop/web:1' }] },
  status: { containerStatuses: [{ name: 'app', containerID: `containerd://${args.containerId}`, image: '', imageID: '', ready: true, restartCount: 0 }] },
}, { annotations: [] }));
let released: { resolved: boolean; podName: unknown } | undefined;
const e = new Enricher<string>(
  { ...defaultEnricherConfig(), nodeName: 'node-a', maxCgroupPaths: args.maxPaths, holdMs: 1000, rescanIntervalMs: 0 },
  { pods, onRelease: (_i, res, _ts, resolved) => { released = { resolved, podName: attr(res, 'k8s.pod.name') }; } },
);
await e.start();
const r = e.enrich(args.cgroupId, args.pid, 1n, 'first');
if (!r) await new Promise((done) => setTimeout(done, 1500)); // held: what the hold ends with
const out = {
  seen,
  namespaceRoot: index.namespaceRoot ?? null,
  walked: walked ?? null,
  learned: learned ?? null,
  pathOfPid: pathOfPid ?? null,
  held: r === undefined,
  released: released ?? null,
  podName: r ? attr(r, 'k8s.pod.name') ?? null : null,
  containerName: r ? attr(r, 'k8s.container.name') ?? null : null,
  learnedFromPid: e.index.counters.learnedFromPid,
  unknownCgroups: e.counters.unknownCgroups,
};
await e.shutdown();
process.stdout.write(JSON.stringify(out) + '\n');
