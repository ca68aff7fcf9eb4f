// A pid is reused once its process is gone. Within processExitTtlMs the exited process stays
// resolvable for its late events, but a new process with that pid must get its own exe, ppid and
// cgroup — on cgroup v2 (process facts), on v1-only hosts and root-cgroup ids (the pid → path
// mapping), and on the hot path (a fork reaching the enricher through the agent pipeline).
// Driven with a fake host /proc (procRoot) and a fake cgroup2 tree (directory inodes = cgroup ids).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Enricher, defaultEnricherConfig, type EnricherConfig } from '../../agent/src/enrich/enricher.ts';
import { ProcessCache } from '../../agent/src/enrich/process-cache.ts';
import { attr } from '../../agent/src/enrich/attributes.ts';
import { PodStore } from '../../lib/k8s/pod-store.ts';
import { podMetaFromV1 } from '../../lib/k8s/pod-model.ts';
import { AgentPipeline, type AgentExporters } from '../../agent/src/pipeline.ts';
import { parseAgentConfig } from '../../agent/src/config.ts';
import { EVENT_HEADER, PROC_EVENT, EventType, frameRecords, type KernelEvent } from '../../agent/src/decode/index.ts';
import { silentLogger } from '../../lib/log.ts';
import type { Resource } from '../../proto/src/model.ts';

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const temp = (p: string) => { const d = mkdtempSync(join(tmpdir(), p)); dirs.push(d); return d; };

const hex = (n: number) => n.toString(16).padStart(64, '0');
const uid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

/** Writes (or rewrites) a process into the fake /proc: stat (start time is field 22), exe, cmdline, cgroup. */
function proc(root: string, pid: number, p: { exe: string; ppid: number; start: number; cgroup: string }): void {
  const d = join(root, String(pid));
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'stat'), `${pid} (${p.exe}) S ${p.ppid} ${pid} ${pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 ${p.start} 0 0\n`);
  symlinkSync(`/usr/bin/${p.exe}`, join(d, 'exe'));
  writeFileSync(join(d, 'cmdline'), `${p.exe}\0`);
  writeFileSync(join(d, 'cgroup'), p.cgroup);
}

function cgroup2(): { root: string; mk: (rel: string) => number } {
  const root = temp('cg2-');
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu\n');
  return { root, mk: (rel) => { mkdirSync(join(root, rel), { recursive: true }); return statSync(join(root, rel)).ino; } };
}

function cfg(cgroupRoot: string, procRoot: string, over: Partial<EnricherConfig> = {}): EnricherConfig {
  return { ...defaultEnricherConfig(), cgroupRoot, procRoot, nodeName: 'node-a', holdMs: 50, retryIntervalMs: 10, rescanMinIntervalMs: 0, rescanIntervalMs: 0, ...over };
}

function pod(n: number, labels: Record<string, string> = {}) {
  return podMetaFromV1({
    metadata: { name: `web${n}`, namespace: 'shop', uid: uid(n), labels },
    spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'shop/web:1' }] },
    status: { containerStatuses: [{ name: 'app', containerID: `containerd://${hex(n)}`, image: '', imageID: '', ready: true, restartCount: 0 }] },
  }, { annotations: [] });
}

const exeOf = (r: Resource) => attr(r, 'process.executable.name');
const ppidOf = (r: Resource) => attr(r, 'process.parent_pid');

test('process cache: an exited entry whose pid has a new start time is dropped for the new process; a zombie keeps it', () => {
  const p = temp('procHost-');
  proc(p, 4000, { exe: 'oldprog', ppid: 1, start: 100, cgroup: '0::/\n' });
  const c = new ProcessCache({ procRoot: p, maxEntries: 10, exitTtlMs: 60_000, maxCmdlineBytes: 64 });
  const forgotten: number[] = [];
  c.onForget((pid) => forgotten.push(pid));
  assert.equal(c.get(4000)?.exeName, 'oldprog');
  c.onExit(4000);
  assert.equal(c.get(4000)?.exeName, 'oldprog', 'exited, /proc still shows it (zombie, same start time): kept');
  proc(p, 4000, { exe: 'newprog', ppid: 77, start: 999, cgroup: '0::/\n' });
  const fresh = c.get(4000)!;
  assert.equal(fresh.exeName, 'newprog', 'pid reused: the new process, not the exited one');
  assert.equal(fresh.ppid, 77);
  assert.equal(fresh.startTicks, 999);
  assert.equal(fresh.exitedAt, 0);
  assert.deepEqual(forgotten, [4000], 'only the reuse forgot the entry (not the zombie check)');
  assert.equal(c.counters.reused, 1);
  rmSync(join(p, '4000'), { recursive: true });
  c.onExit(4000);
  assert.equal(c.get(4000)?.exeName, 'newprog', 'exited and gone from /proc: the exited entry still answers');
  const reads = c.counters.procReads;
  proc(p, 4001, { exe: 'running', ppid: 1, start: 5, cgroup: '0::/\n' });
  c.get(4001);
  c.get(4001);
  assert.equal(c.counters.procReads, reads + 1, 'a running entry is served without reading /proc');
});

test('process cache: a fork of a cached pid forgets the earlier process', () => {
  const p = temp('procHost-');
  proc(p, 4100, { exe: 'oldprog', ppid: 1, start: 100, cgroup: '0::/\n' });
  const c = new ProcessCache({ procRoot: p, maxEntries: 10, exitTtlMs: 60_000, maxCmdlineBytes: 64 });
  assert.equal(c.get(4100)?.exeName, 'oldprog');
  proc(p, 4100, { exe: 'newprog', ppid: 77, start: 999, cgroup: '0::/\n' });
  c.onFork(4100); // exit event lost: the fork still tells
  assert.equal(c.peek(4100), undefined);
  assert.equal(c.get(4100)?.exeName, 'newprog');
  c.onFork(4242); // unknown pid: nothing to do
  assert.equal(c.counters.reused, 1);
});

test('cgroup v2: pid 4000 exits, a new process takes pid 4000 in another pod → its own exe and ppid', async () => {
  const { root, mk } = cgroup2();
  const p = temp('procHost-');
  const a = mk(`kubepods/besteffort/pod${uid(1)}/${hex(1)}`);
  const b = mk(`kubepods/besteffort/pod${uid(2)}/${hex(2)}`);
  const pods = new PodStore();
  pods.upsert(pod(1));
  pods.upsert(pod(2));
  proc(p, 4000, { exe: 'oldprog', ppid: 1, start: 100, cgroup: '0::/x\n' });
  const e = new Enricher(cfg(root, p), { pods });
  await e.start();
  const first = e.resolve(a, 4000);
  assert.equal(exeOf(first), 'oldprog');
  assert.equal(attr(first, 'k8s.pod.name'), 'web1');
  e.onExit(4000);
  assert.equal(exeOf(e.resolve(a, 4000)), 'oldprog', 'late events of the exited process still resolve');
  proc(p, 4000, { exe: 'newprog', ppid: 77, start: 999, cgroup: '0::/x\n' });
  const reused = e.resolve(b, 4000);
  assert.equal(attr(reused, 'k8s.pod.name'), 'web2');
  assert.equal(exeOf(reused), 'newprog', 'the new process, not the exited one');
  assert.equal(ppidOf(reused), 77n);
  assert.equal(e.resolve(b, 4000), reused, 'interned again');
  await e.shutdown();
});

test('cgroup v2, same cgroup: a fork of the reused pid (onFork) beats the hot path', async () => {
  const { root, mk } = cgroup2();
  const p = temp('procHost-');
  const a = mk(`kubepods/besteffort/pod${uid(1)}/${hex(1)}`);
  const pods = new PodStore();
  pods.upsert(pod(1));
  proc(p, 4000, { exe: 'oldprog', ppid: 1, start: 100, cgroup: '0::/x\n' });
  const e = new Enricher(cfg(root, p), { pods });
  await e.start();
  assert.equal(exeOf(e.resolve(a, 4000)), 'oldprog');
  e.resolve(a, 1); // defeat the last-hit shortcut
  e.onExit(4000);
  proc(p, 4000, { exe: 'newprog', ppid: 77, start: 999, cgroup: '0::/x\n' });
  e.onFork(4000);
  const r = e.resolve(a, 4000);
  assert.equal(exeOf(r), 'newprog');
  assert.equal(ppidOf(r), 77n);
  assert.equal(attr(r, 'k8s.pod.name'), 'web1');
  await e.shutdown();
});

/** A fork record (parent → child) built with the decoder's layout. */
function forkRecord(parent: number, child: number, cgroup: number): Uint8Array {
  const u8 = new Uint8Array(PROC_EVENT.size);
  const dv = new DataView(u8.buffer);
  const H = EVENT_HEADER.fields;
  dv.setBigUint64(H.ts_ns.offset, 1_000_000n, true);
  dv.setBigUint64(H.cgroup_id.offset, BigInt(cgroup), true);
  dv.setUint32(H.tgid.offset, parent, true);
  dv.setUint32(H.tid.offset, parent, true);
  dv.setUint16(H.type.offset, EventType.ProcFork, true);
  dv.setUint32(PROC_EVENT.fields.ppid.offset, 1, true);
  dv.setUint32(PROC_EVENT.fields.child_pid.offset, child, true);
  return u8;
}

test('agent pipeline: a fork event reaches the enricher, so the reused pid in the same cgroup gets the new process', async () => {
  const { root, mk } = cgroup2();
  const p = temp('procHost-');
  const a = mk(`kubepods/besteffort/pod${uid(1)}/${hex(1)}`);
  const pods = new PodStore();
  pods.upsert(pod(1));
  proc(p, 4000, { exe: 'oldprog', ppid: 1, start: 100, cgroup: '0::/x\n' });
  const enricher = new Enricher<KernelEvent>(cfg(root, p, { holdMs: 0 }), { pods });
  await enricher.start();
  const noop = { async start() {}, async shutdown() {}, async consume() {} };
  const ac = parseAgentConfig({}, {});
  const pipeline = new AgentPipeline({ signals: ac.signals, batch: ac.batch, enricher, exporters: { traces: noop, metrics: noop, logs: noop } as unknown as AgentExporters, toUnixNano: (m) => m, logger: silentLogger() });
  await pipeline.start({ reportFatal: (err: Error) => { throw err; } });
  try {
    assert.equal(exeOf(enricher.resolve(a, 4000)), 'oldprog');
    enricher.resolve(a, 1);
    enricher.onExit(4000);
    proc(p, 4000, { exe: 'newprog', ppid: 77, start: 999, cgroup: '0::/x\n' });
    const buf = frameRecords([forkRecord(77, 4000, a)]);
    pipeline.onBatch(buf, buf.byteLength, 1);
    const r = enricher.resolve(a, 4000);
    assert.equal(exeOf(r), 'newprog', 'the fork told the enricher the pid is a new process');
    assert.equal(ppidOf(r), 77n);
  } finally {
    await pipeline.shutdown();
  }
});

test('v1-only host: a short-lived pid mapped to "/" is unmapped at exit even though the cache never had it', async () => {
  const v1 = temp('cg1-');
  const p = temp('procHost-');
  const pods = new PodStore();
  pods.upsert(pod(22));
  const e = new Enricher(cfg(v1, p), { pods });
  await e.start();
  // Gone before /proc was read: resolved as a host process, mapped to '/'.
  assert.equal(attr(e.resolve(1, 7000), 'k8s.pod.name'), undefined);
  e.onExit(7000);
  assert.deepEqual({ path: e.indexSizes().pathEntries, pids: e.indexSizes().pidEntries }, { path: 0, pids: 0 }, 'mapping dropped at exit');
  proc(p, 7000, { exe: 'app', ppid: 1, start: 500, cgroup: `4:memory:/kubepods/besteffort/pod${uid(22)}/${hex(22)}\n` });
  const r = e.resolve(1, 7000);
  assert.equal(attr(r, 'k8s.pod.name'), 'web22', 'the reused pid is looked up again');
  assert.equal(attr(r, 'k8s.container.name'), 'app');
  await e.shutdown();
});

test('v1-only host: exec rechecks the pid-keyed mapping (runc joins the container cgroup, then execs)', async () => {
  const v1 = temp('cg1-');
  const p = temp('procHost-');
  const pods = new PodStore();
  pods.upsert(pod(23));
  proc(p, 5000, { exe: 'runc', ppid: 1, start: 10, cgroup: '4:memory:/system.slice/containerd.service\n1:name=systemd:/system.slice/containerd.service\n' });
  const e = new Enricher(cfg(v1, p), { pods });
  await e.start();
  assert.equal(attr(e.resolve(1, 5000), 'k8s.pod.name'), undefined);
  const inPod = `/kubepods/besteffort/pod${uid(23)}/${hex(23)}`;
  proc(p, 5000, { exe: 'app', ppid: 1, start: 10, cgroup: `4:memory:${inPod}\n1:name=systemd:${inPod}\n` });
  e.onExec(5000, { comm: 'app', filename: '/usr/bin/app' });
  const r = e.resolve(1, 5000);
  assert.equal(attr(r, 'k8s.pod.name'), 'web23', 'the moved process resolves to its pod after exec');
  assert.equal(exeOf(r), 'app');
  assert.equal(e.indexSizes().pathEntries, 1, 'the old path entry went with its last pid');
  // A re-exec in the same cgroup keeps the mapping (and its entry).
  e.onExec(5000, { comm: 'app2', filename: '/usr/bin/app2' });
  assert.deepEqual({ path: e.indexSizes().pathEntries, pids: e.indexSizes().pidEntries }, { path: 1, pids: 1 });
  assert.equal(attr(e.resolve(1, 5000), 'k8s.pod.name'), 'web23');
  await e.shutdown();
});

test('cgroup v2, root cgroup id (pid-keyed): an exited pid with no cache entry is unmapped too', async () => {
  const { root } = cgroup2();
  const p = temp('procHost-');
  const pods = new PodStore();
  pods.upsert(pod(24));
  const e = new Enricher(cfg(root, p), { pods });
  await e.start();
  const rootId = statSync(root).ino;
  assert.equal(attr(e.resolve(rootId, 7100), 'k8s.pod.name'), undefined);
  e.onExit(7100);
  proc(p, 7100, { exe: 'app', ppid: 1, start: 600, cgroup: `4:memory:/kubepods/besteffort/pod${uid(24)}/${hex(24)}\n0::/\n` });
  assert.equal(attr(e.resolve(rootId, 7100), 'k8s.pod.name'), 'web24');
  await e.shutdown();
});

test('v1-only host: a reused pid (exit seen, fork lost) is rechecked before its old mapping is used', async () => {
  const v1 = temp('cg1-');
  const p = temp('procHost-');
  const pods = new PodStore();
  pods.upsert(pod(31));
  pods.upsert(pod(32));
  const inPod = (n: number) => `4:memory:/kubepods/besteffort/pod${uid(n)}/${hex(n)}\n`;
  proc(p, 4300, { exe: 'oldprog', ppid: 1, start: 100, cgroup: inPod(31) });
  const e = new Enricher(cfg(v1, p), { pods });
  await e.start();
  assert.equal(attr(e.resolve(1, 4300), 'k8s.pod.name'), 'web31');
  e.onExit(4300); // cached: stays resolvable, mapping kept
  proc(p, 4300, { exe: 'newprog', ppid: 77, start: 999, cgroup: inPod(32) });
  pods.upsert(pod(31, { app: 'x' })); // a pod update drops web31's interned resources: no hot hit
  const r = e.resolve(1, 4300);
  assert.equal(attr(r, 'k8s.pod.name'), 'web32', 'the new process is looked up, not the old mapping');
  assert.equal(exeOf(r), 'newprog');
  assert.equal(e.resolve(1, 4300), r, 'interned');
  await e.shutdown();
});
