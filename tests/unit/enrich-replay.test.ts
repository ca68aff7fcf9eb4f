// Replay enrichment answers from a fixture's recorded cgroup and process tables only. Each test
// builds a fake host (a /proc and a cgroup root in a temp dir) whose entries for the recorded pids
// describe an "impostor": the live Enricher on that host picks the impostor up (so the fake host is
// real enough to catch a leak), the replay one never does.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CgroupIndex } from '../../agent/src/enrich/cgroup-index.ts';
import { ProcessCache } from '../../agent/src/enrich/process-cache.ts';
import { Enricher, defaultEnricherConfig, type EnricherConfig } from '../../agent/src/enrich/enricher.ts';
import { attr } from '../../agent/src/enrich/attributes.ts';
import { Enrichment, validateEnrichmentConfig, createReplayEnricher, recordedHostOf, type RecordedHost } from '../../agent/src/enrich/index.ts';
import type { Resource } from '../../proto/src/model.ts';

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const POD_UID = 'c450b82e-017f-427e-b9e8-c2bc612f7411';
const CID = '8b543746ec07726f7238bd773473c7c402507f532ab597450a654c2226177f29';
const POD_PATH = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_UID.replace(/-/g, '_')}.slice`;
const CONTAINER_PATH = `${POD_PATH}/cri-containerd-${CID}.scope`;
const IMPOSTOR_CID = 'f'.repeat(64);

const recorded: RecordedHost = {
  cgroupRoot: '/sys/fs/cgroup/unified',
  cgroups: [
    { id: '1', path: '/' },
    { id: '1545', path: POD_PATH },
    { id: '1564', path: CONTAINER_PATH },
  ],
  processes: [
    { pid: 29732, ppid: 29641, comm: 'ks-wl-client', exe: '/usr/bin/node', cmdline: ['/usr/bin/node', '/tmp/client.mjs'] },
    { pid: 29743, ppid: 29732, comm: 'sh', exe: '/usr/bin/dash', cmdline: ['/bin/sh', '-c', 'exit 3'] },
    { pid: 29750, ppid: 1, comm: 'kworker', exe: '', cmdline: [] },
  ],
};

/** A fake host: every given pid is an "impostor" process in a docker container; v1-only cgroups. */
function fakeHost(pids: number[]): { procRoot: string; cgroupRoot: string } {
  const root = mkdtempSync(join(tmpdir(), 'ks-replay-host-'));
  dirs.push(root);
  const procRoot = join(root, 'proc');
  const cgroupRoot = join(root, 'cgroup'); // no cgroup.controllers: legacy, containers from /proc/PID/cgroup
  mkdirSync(cgroupRoot, { recursive: true });
  for (const pid of pids) {
    const d = join(procRoot, String(pid));
    mkdirSync(d, { recursive: true });
    const fields = ['S', '4242', ...Array.from({ length: 18 }, () => '0'), '777'];
    writeFileSync(join(d, 'stat'), `${pid} (impostor) ${fields.join(' ')} 0 0\n`);
    symlinkSync('/opt/impostor/bin/impostor', join(d, 'exe'));
    writeFileSync(join(d, 'cmdline'), '/opt/impostor/bin/impostor\0--secret\0');
    writeFileSync(join(d, 'cgroup'), `1:name=systemd:/system.slice/docker-${IMPOSTOR_CID}.scope\n0::/system.slice/docker-${IMPOSTOR_CID}.scope\n`);
  }
  return { procRoot, cgroupRoot };
}

function cfgFor(host: { procRoot: string; cgroupRoot: string }, over: Partial<EnricherConfig> = {}): EnricherConfig {
  return { ...defaultEnricherConfig(), ...host, nodeName: 'local-node', holdMs: 5000, retryIntervalMs: 20, rescanIntervalMs: 0, ...over };
}

const attrs = (r: Resource) => Object.fromEntries(r.attributes.map((kv) => [kv.key, typeof kv.value === 'bigint' ? Number(kv.value) : kv.value]));

test('the fake host is picked up by the live enricher (the leak the replay one must not have)', async () => {
  const host = fakeHost([29732]);
  const live = new Enricher(cfgFor(host));
  await live.start();
  try {
    const r = live.resolve(1564, 29732);
    assert.equal(attr(r, 'process.executable.name'), 'impostor');
    assert.equal(attr(r, 'container.id'), IMPOSTOR_CID);
    assert.equal(attr(r, 'k8s.node.name'), 'local-node');
  } finally {
    await live.shutdown();
  }
});

test('CgroupIndex.fromRecorded answers from the table only', async () => {
  const host = fakeHost([29732]);
  const idx = new CgroupIndex({ cgroupRoot: host.cgroupRoot, procRoot: host.procRoot, maxEntries: 100, rescanMinIntervalMs: 0, rescanIntervalMs: 0 }, Date.now, recorded.cgroups);
  await idx.start();
  assert.equal(idx.hostLookups, false);
  assert.equal(idx.canLearn, false);
  assert.equal(idx.layout, 'unified');
  assert.equal(idx.mount, null);
  assert.equal(idx.size, 3);
  assert.equal(idx.pathOf(1564), CONTAINER_PATH);
  assert.equal(idx.pathOf(1), '/');
  assert.equal(idx.pathOf(9999), undefined);
  // the fake /proc names a docker container for this pid: a recorded index never reads it
  assert.equal(idx.pathOfPid(29732), undefined);
  assert.equal(idx.learnFromPid(29732, 9999), undefined);
  assert.equal(idx.requestRescan(), false);
  assert.equal(await idx.rescan(), 0);
  assert.equal(idx.counters.scans, 0);
  // a live index on the same fake host does read it
  const liveIdx = new CgroupIndex({ cgroupRoot: host.cgroupRoot, procRoot: host.procRoot, maxEntries: 100, rescanMinIntervalMs: 0, rescanIntervalMs: 0 });
  assert.equal(liveIdx.hostLookups, true);
  assert.equal(liveIdx.pathOfPid(29732), `/system.slice/docker-${IMPOSTOR_CID}.scope`);

  // bounded, ids as strings or numbers, junk rows skipped; an empty table is a v1-only recording
  const small = CgroupIndex.fromRecorded([{ id: 5, path: '/a' }, { id: 'x', path: '/b' }, { id: '6', path: '/c' }, { id: '7', path: '/d' }], { maxEntries: 2 });
  assert.equal(small.size, 2);
  assert.equal(small.pathOf(5), undefined, 'oldest row dropped past maxEntries');
  assert.deepEqual([small.pathOf(6), small.pathOf(7)], ['/c', '/d']);
  assert.equal(CgroupIndex.fromRecorded([]).layout, 'legacy');
});

test('ProcessCache.fromRecorded: misses go to the table, never to /proc', () => {
  // this test's own pid is alive in the real /proc: a recorded cache must not see it
  const c = ProcessCache.fromRecorded(recorded.processes, { maxCmdlineBytes: 20 });
  assert.equal(c.hostLookups, false);
  assert.equal(c.get(process.pid), undefined);
  const client = c.get(29732)!;
  assert.deepEqual(
    { ppid: client.ppid, comm: client.comm, exe: client.exe, exeName: client.exeName, cmdline: client.cmdline, startTicks: client.startTicks },
    { ppid: 29641, comm: 'ks-wl-client', exe: '/usr/bin/node', exeName: 'node', cmdline: '/usr/bin/node /tmp/c', startTicks: 0 },
    'same derivations as a /proc read: exeName from exe, argv joined and cut at maxCmdlineBytes',
  );
  assert.equal(c.get(29750)!.exeName, 'kworker', 'no exe, no argv: comm');
  assert.equal(c.counters.procMisses, 1);
  assert.equal(c.counters.procReads, 2);

  // exec of a recorded pid: the recorded (post-exec) facts, generation bumped
  const sh = c.onExec(29743, { comm: 'sh', filename: '/bin/sh', ppid: 29732 });
  assert.equal(sh.exe, '/usr/bin/dash');
  assert.equal(sh.exeName, 'dash');
  assert.equal(sh.generation, 1);
  // exec of a pid the table lacks: only the event's facts (and never the live process with that pid)
  const other = c.onExec(process.pid, { comm: 'sh', filename: '/bin/sh', ppid: 29732 });
  assert.deepEqual({ exe: other.exe, exeName: other.exeName, ppid: other.ppid, comm: other.comm }, { exe: '/bin/sh', exeName: 'sh', ppid: 29732, comm: 'sh' });

  // the seed is bounded like the cache
  const tiny = ProcessCache.fromRecorded(recorded.processes, { maxEntries: 2 });
  assert.equal(tiny.counters.recordedDropped, 1);
  assert.equal(tiny.get(29750), undefined);

  // a live cache on a fake /proc reads it (the leak the recorded cache avoids)
  const host = fakeHost([29732]);
  const live = new ProcessCache({ procRoot: host.procRoot, maxEntries: 10, exitTtlMs: 1000, maxCmdlineBytes: 4096 });
  assert.equal(live.hostLookups, true);
  assert.equal(live.get(29732)!.exeName, 'impostor');
});

test('replay enricher: recorded container, pod uid and process facts; nothing from the fake host', async () => {
  const host = fakeHost([29732, 29743, 29744, 29750]);
  const released: Resource[] = [];
  const e = createReplayEnricher<string>(cfgFor(host, { commandLine: true }), recorded, { onRelease: (_item, r) => released.push(r) });
  await e.start();
  try {
    const client = e.enrich(1564, 29732, 1n, 'a');
    assert.ok(client, 'a recorded cgroup resolves at once (nothing to wait for)');
    assert.deepEqual(attrs(client), {
      'service.name': 'unknown_service:node',
      'k8s.pod.uid': POD_UID,
      'container.id': CID,
      'process.pid': 29732,
      'process.parent_pid': 29641,
      'process.executable.name': 'node',
      'process.executable.path': '/usr/bin/node',
      'process.command_line': '/usr/bin/node /tmp/client.mjs',
    });
    assert.equal(attr(client, 'k8s.node.name'), undefined, "this host's node name is not the recording host's");

    // a pid the table lacks, in the pod cgroup: pod/container from the table, no process facts
    const unknownPid = e.enrich(1564, 29744, 2n, 'b')!;
    assert.deepEqual(attrs(unknownPid), { 'service.name': 'unknown_service', 'k8s.pod.uid': POD_UID, 'container.id': CID, 'process.pid': 29744 });
    // ... until its recorded exec event says what it runs
    e.onExec(29744, { comm: 'sh', filename: '/bin/sh', ppid: 29732 });
    assert.equal(attr(e.enrich(1564, 29744, 3n, 'c')!, 'process.executable.name'), 'sh');

    // the recorded root cgroup: no container, and the pid's own cgroup is not looked up here
    const root = e.enrich(1, 29750, 4n, 'd')!;
    assert.equal(attr(root, 'container.id'), undefined);
    assert.equal(attr(root, 'process.executable.name'), 'kworker');

    // an id the fixture never recorded: resolved at once without container facts, never held
    const unknownCg = e.enrich(424242, 29743, 5n, 'e');
    assert.ok(unknownCg, 'not held: a recorded table cannot learn the id later');
    assert.equal(attr(unknownCg, 'container.id'), undefined);
    assert.equal(attr(unknownCg, 'process.executable.name'), 'dash');
    assert.equal(e.heldCount, 0);
    assert.equal(e.counters.held, 0);
    assert.equal(e.counters.unknownCgroups, 1);

    for (const r of [client, unknownPid, root, unknownCg]) {
      const text = JSON.stringify(r.attributes, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
      assert.doesNotMatch(text, /impostor|ffffffff|4242|local-node/);
    }
    assert.equal(e.processes.counters.procReads + e.processes.counters.procMisses > 0, true);
  } finally {
    await e.shutdown();
  }
  assert.equal(released.length, 0);
});

test('Enrichment with recorded tables: no informer even when enrich.k8s.enabled is true', async () => {
  const host = fakeHost([29732]);
  const cfg = validateEnrichmentConfig({ procRoot: host.procRoot, cgroupRoot: host.cgroupRoot, nodeName: 'local-node', k8s: { enabled: true } });
  // live: no kubeconfig → a config error (the replay path must not get here)
  assert.throws(() => new Enrichment(cfg, { env: {} }), /no kubeconfig/);
  const en = new Enrichment(cfg, { env: {}, recorded });
  assert.equal(en.informer, null);
  assert.equal(en.k8sSource, 'none');
  await en.start();
  try {
    const r = en.enricher.resolve(1564, 29732);
    assert.equal(attr(r, 'container.id'), CID);
    assert.equal(attr(r, 'process.executable.name'), 'node');
    assert.equal(en.enricher.index.hostLookups, false);
    assert.equal(en.enricher.processes.hostLookups, false);
  } finally {
    await en.shutdown();
  }
});

test('recordedHostOf takes the tables from a fixture header and tolerates their absence', () => {
  const fx = new URL('../fixtures/tcp-proc-loopback.kscope', import.meta.url).pathname;
  const buf = readFileSync(fx);
  const header = JSON.parse(buf.subarray(16, 16 + buf.readUInt32LE(12)).toString('utf8')) as Record<string, unknown>;
  const h = recordedHostOf(header);
  assert.equal(h.cgroups.length, (header.cgroups as unknown[]).length);
  assert.equal(h.processes.length, (header.processes as unknown[]).length);
  assert.equal(h.cgroupRoot, header.cgroupRoot);
  assert.deepEqual(recordedHostOf({}), { cgroups: [], processes: [] });
  assert.deepEqual(recordedHostOf({ cgroups: 'x', processes: [null, { pid: 1, ppid: 0, comm: 'a', exe: '', cmdline: [] }] }).processes.length, 1);
});
