// The committed fixtures (tests/fixtures, recorded on a real kernel by tests/fixtures/record.ts):
// replaying them through the EventDecoder reproduces the golden output exactly, and what they
// hold matches what the scripted workload did (ports, pids, exit codes, pod cgroup). Pure replay:
// no root, no BPF.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EventDecoder } from '../../agent/src/decode/index.ts';
import { ReplaySource } from '../../agent/src/sources/replay.ts';
import { podCgroupPath, runWorkload } from '../lib/workload.ts';
import { fileSha256, fixturesDir, toPlainJson, type Golden, type WorkloadManifest } from '../fixtures/golden.ts';

interface Ev {
  kind: string; type: string; tgid: number; tid: number; comm: string; cgroupId: string; flags: number; ownerKnown: boolean;
  sport?: number; dport?: number; saddr?: string; daddr?: string; error?: number; errorName?: string;
  bytesAcked?: number; bytesReceived?: number; newState?: string;
  ppid?: number; childPid?: number; exitCode?: number; exitStatus?: number; termSignal?: number; filename?: string;
}

const loopback = join(fixturesDir, 'tcp-proc-loopback.kscope');
const burst = join(fixturesDir, 'tcp-burst.kscope');
const readJson = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

/** Replays at max speed through one EventDecoder; every view copied with toObject(). */
async function replayDecoded(path: string): Promise<{ events: Ev[]; src: ReplaySource; decoder: EventDecoder }> {
  const events: Ev[] = [];
  const keep = (e: { toObject(): object }): void => { events.push(toPlainJson(e.toObject()) as Ev); };
  const decoder = new EventDecoder({ tcp: keep, proc: keep, exec: keep });
  const src = new ReplaySource(path, { speed: 'max' });
  await src.start((buf, byteLength, count, probe) => {
    assert.equal(probe.decoder, 'kernel-events', `probe ${probe.name} decodes as kernel events`);
    decoder.decodeBatch(buf, byteLength, count);
  });
  return { events, src, decoder };
}

function assertCleanDecode(decoder: EventDecoder, src: ReplaySource): void {
  const s = decoder.stats;
  assert.deepEqual({ unknownType: s.unknownType, tooShort: s.tooShort, badFrames: s.badFrames }, { unknownType: 0, tooShort: 0, badFrames: 0 });
  assert.equal(s.records, src.stats.records, 'every replayed record decoded');
  assert.equal(src.stats.records, src.header.records, 'replay delivered the records the header announces');
  assert.equal(src.stats.handlerErrors, 0);
}

const byType = (events: Ev[], type: string): Ev[] => events.filter((e) => e.type === type);

/** Checks a decoded fixture against the workload that produced it. */
function assertMatchesWorkload(events: Ev[], header: ReplaySource['header'], m: WorkloadManifest): void {
  const w = m.workload;
  const n = w.expected.connects;
  assert.notEqual(w.serverPid, w.clientPid);

  // N connects from the client to the workload's server port, one per recorded client port
  const connects = byType(events, 'TcpConnect').filter((e) => e.dport === w.ports.server);
  assert.equal(connects.length, n, 'connect events to the server port');
  for (const e of connects) {
    assert.equal(e.tgid, w.clientPid, 'connect owned by the client');
    assert.equal(e.daddr, w.host);
    assert.equal(e.newState, 'ESTABLISHED');
    assert.ok(e.ownerKnown);
  }
  assert.deepEqual(connects.map((e) => e.sport).sort(), w.connections.map((c) => c.clientPort).sort());

  // accepts: the server's process, never the client's
  const accepts = byType(events, 'TcpAccept').filter((e) => e.sport === w.ports.server);
  assert.equal(accepts.length, w.expected.accepts, 'accept events on the server port');
  for (const e of accepts) {
    assert.equal(e.tgid, w.serverPid, 'accept owned by the server');
    assert.notEqual(e.tgid, connects[0]!.tgid, 'accept and connect attributed to different pids');
  }
  assert.deepEqual(accepts.map((e) => e.dport).sort(), w.connections.map((c) => c.clientPort).sort());

  // both ends close with payload byte counts as the workload sent them
  const closes = byType(events, 'TcpClose').filter((e) => e.sport === w.ports.server || e.dport === w.ports.server);
  assert.equal(closes.length, w.expected.closes, 'close events of the workload connections');
  for (const c of w.connections) {
    const client = closes.find((e) => e.sport === c.clientPort && e.dport === w.ports.server);
    const server = closes.find((e) => e.dport === c.clientPort && e.sport === w.ports.server);
    assert.ok(client && server, `both ends of port ${c.clientPort} closed`);
    assert.equal(client.tgid, w.clientPid);
    assert.equal(server.tgid, w.serverPid);
    assert.deepEqual([client.bytesAcked, client.bytesReceived], [c.sent, c.clientReceived], 'client bytes');
    assert.deepEqual([server.bytesAcked, server.bytesReceived], [c.clientReceived, c.serverReceived], 'server bytes');
  }

  // the refused connect
  assert.ok(w.refused && w.ports.refused);
  const fails = byType(events, 'TcpConnectFail');
  assert.equal(fails.length, w.expected.connectFailures);
  assert.equal(fails[0]!.dport, w.ports.refused);
  assert.equal(fails[0]!.errorName, 'ECONNREFUSED');
  assert.equal(fails[0]!.error, 111);
  assert.equal(fails[0]!.tgid, w.clientPid);

  // M short processes: forked by the client, exec /bin/sh, exit with their recorded codes
  assert.equal(w.procs.length, w.expected.execs);
  assert.equal(new Set(w.procs.map((p) => p.exitCode)).size, w.procs.length, 'distinct exit codes');
  const pids = new Set(w.procs.map((p) => p.pid));
  const execs = byType(events, 'ProcExec').filter((e) => pids.has(e.tgid));
  const exits = byType(events, 'ProcExit').filter((e) => pids.has(e.tgid));
  const forks = byType(events, 'ProcFork').filter((e) => pids.has(e.childPid!));
  assert.equal(execs.length, w.expected.execs, 'exec events of the short processes');
  assert.equal(exits.length, w.expected.exits, 'exit events of the short processes');
  assert.equal(forks.length, w.expected.forks, 'fork events of the short processes');
  for (const p of w.procs) {
    const exec = execs.find((e) => e.tgid === p.pid)!;
    assert.equal(exec.filename, '/bin/sh');
    assert.equal(exec.ppid, w.clientPid);
    const exit = exits.find((e) => e.tgid === p.pid)!;
    assert.deepEqual([exit.exitStatus, exit.termSignal, exit.exitCode], [p.exitCode, 0, p.exitCode << 8], `exit of ${p.pid}`);
    assert.equal(forks.find((e) => e.childPid === p.pid)!.tgid, w.clientPid);
  }

  // the pod-like cgroup: in the header's table, and carried by every event of the workload
  assert.ok(w.cgroup, 'the workload ran in a pod cgroup');
  assert.match(w.cgroup.path,
    /^\/kubepods\.slice\/kubepods-burstable\.slice\/kubepods-burstable-pod[0-9a-f_]{36}\.slice\/cri-containerd-[0-9a-f]{64}\.scope$/);
  assert.ok(w.cgroup.path.includes(`pod${w.cgroup.podUid.replaceAll('-', '_')}.slice`));
  assert.deepEqual(header.cgroups.find((c) => c.path === w.cgroup!.path), { id: w.cgroup.id, path: w.cgroup.path },
    'the cgroup table maps the pod path to its id');
  const workloadPids = new Set([w.serverPid, w.clientPid, ...pids]);
  const own = events.filter((e) => workloadPids.has(e.tgid));
  assert.ok(own.length >= 4 * n + 3 * w.procs.length);
  for (const e of own) assert.equal(e.cgroupId, w.cgroup.id, `${e.type} of ${e.tgid} carries the pod cgroup id`);
  // recorded with target_cgroup_id: nothing from elsewhere on the host
  for (const p of header.probes) assert.equal(p.globals.target_cgroup_id, w.cgroup.id, `probe ${p.name} filtered on the pod`);
  for (const e of events) assert.equal(e.cgroupId, w.cgroup.id);
}

test('tcp-proc-loopback: replay through the EventDecoder reproduces the golden events exactly', async () => {
  const golden = readJson<Golden>(join(fixturesDir, 'tcp-proc-loopback.golden.json'));
  assert.equal(golden.fixtureSha256, fileSha256(loopback), 'golden was generated from the committed fixture');
  const { events, src, decoder } = await replayDecoded(loopback);
  assertCleanDecode(decoder, src);
  assert.equal(src.stats.batches, golden.batches);
  assert.equal(src.stats.records, golden.records);
  assert.equal(events.length, golden.events.length);
  assert.deepEqual(events, golden.events);
});

test('tcp-proc-loopback: the golden holds what the workload did', () => {
  const golden = readJson<Golden>(join(fixturesDir, 'tcp-proc-loopback.golden.json'));
  const manifest = readJson<WorkloadManifest>(join(fixturesDir, 'tcp-proc-loopback.workload.json'));
  const src = new ReplaySource(loopback);
  try {
    assertMatchesWorkload(golden.events as unknown as Ev[], src.header, manifest);
    assert.equal(manifest.record.records, src.header.records);
    // no ring-buffer losses while recording
    for (const p of src.header.probes) assert.equal(p.counters?.['lost_events[0]'], '0', `${p.name} lost nothing`);
    assert.ok(statSync(loopback).size < 64 << 10, 'small enough to commit');
  } finally {
    void src.stop();
  }
});

test('tcp-proc-loopback: the sanity checks notice a wrong golden', () => {
  const golden = readJson<Golden>(join(fixturesDir, 'tcp-proc-loopback.golden.json'));
  const manifest = readJson<WorkloadManifest>(join(fixturesDir, 'tcp-proc-loopback.workload.json'));
  const src = new ReplaySource(loopback);
  try {
    const events = golden.events as unknown as Ev[];
    const without = (pred: (e: Ev) => boolean): Ev[] => events.filter((e) => !pred(e));
    const swapped = (pred: (e: Ev) => boolean, patch: Partial<Ev>): Ev[] => events.map((e) => (pred(e) ? { ...e, ...patch } : e));
    const w = manifest.workload;
    const cases: [string, Ev[]][] = [
      ['a connect missing', without((e) => e.type === 'TcpConnect' && e.sport === w.connections[0]!.clientPort)],
      ['accept attributed to the client', swapped((e) => e.type === 'TcpAccept', { tgid: w.clientPid })],
      ['refused connect gone', without((e) => e.type === 'TcpConnectFail')],
      ['wrong exit code', swapped((e) => e.type === 'ProcExit' && e.tgid === w.procs[0]!.pid, { exitStatus: 99 })],
      ['an exec missing', without((e) => e.type === 'ProcExec' && e.tgid === w.procs[1]!.pid)],
      ['another cgroup', swapped((e) => e.tgid === w.clientPid, { cgroupId: '1' })],
    ];
    for (const [what, evs] of cases) {
      assert.throws(() => assertMatchesWorkload(evs, src.header, manifest), assert.AssertionError, what);
    }
    const noPod = { ...src.header, cgroups: src.header.cgroups.filter((c) => c.path !== w.cgroup!.path) };
    assert.throws(() => assertMatchesWorkload(events, noPod, manifest), assert.AssertionError, 'pod path missing from the table');
  } finally {
    void src.stop();
  }
});

test('tcp-burst: replays cleanly and holds every connection of the higher-volume workload', async () => {
  const manifest = readJson<WorkloadManifest>(join(fixturesDir, 'tcp-burst.workload.json'));
  assert.ok(statSync(burst).size <= 1 << 20, 'at most 1 MB');
  const { events, src, decoder } = await replayDecoded(burst);
  assertCleanDecode(decoder, src);
  assert.equal(manifest.record.records, src.header.records);
  assert.ok(manifest.workload.expected.connects >= 1000, 'benchmark volume');
  for (const p of src.header.probes) assert.equal(p.counters?.['lost_events[0]'], '0', `${p.name} lost nothing`);
  assertMatchesWorkload(events, src.header, manifest);
});

// The workload the fixtures come from (tests/lib/workload.ts); without the pod cgroup it needs no root.
test('workload helper: server and client are child processes and report what they did', async () => {
  const w = await runWorkload({ connects: 3, bytes: 2000, replyBytes: 10, concurrency: 2, exitCodes: [5, 6] });
  assert.ok(w.serverPid > 0 && w.clientPid > 0);
  assert.equal(new Set([w.serverPid, w.clientPid, process.pid]).size, 3, 'pids differ from each other and from the caller');
  assert.equal(w.connections.length, 3);
  assert.equal(new Set(w.connections.map((c) => c.clientPort)).size, 3, 'one client port per connection');
  for (const c of w.connections) assert.deepEqual([c.sent, c.serverReceived, c.clientReceived], [2000, 2000, 10]);
  assert.ok(w.ports.server > 0 && w.ports.refused! > 0 && w.ports.server !== w.ports.refused);
  assert.deepEqual(w.refused, { port: w.ports.refused, code: 'ECONNREFUSED' });
  assert.deepEqual(w.procs.map((p) => p.exitCode), [5, 6]);
  assert.equal(new Set(w.procs.map((p) => p.pid)).size, 2);
  assert.deepEqual(w.expected, { connects: 3, connectFailures: 1, accepts: 3, closes: 6, execs: 2, exits: 2, forks: 2 });
  assert.equal(w.cgroup, undefined);
  for (const pid of [w.serverPid, w.clientPid]) {
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `child ${pid} has exited`);
  }
});

test('workload helper: rejects bad options before starting anything', async () => {
  await assert.rejects(runWorkload({ exitCodes: [7, 7] }), RangeError);
  await assert.rejects(runWorkload({ exitCodes: [0] }), RangeError);
  await assert.rejects(runWorkload({ connects: -1 }), RangeError);
  await assert.rejects(runWorkload({ bytes: 0 }), RangeError);
});

test('workload helper: pod cgroup path in the systemd driver layout', () => {
  const uid = '0123abcd-4567-89ab-cdef-0123456789ab';
  const id = 'ab'.repeat(32);
  assert.equal(podCgroupPath(uid, id),
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0123abcd_4567_89ab_cdef_0123456789ab.slice/cri-containerd-${id}.scope`);
  assert.throws(() => podCgroupPath(uid.toUpperCase(), id), /not a lowercase UUID/);
  assert.throws(() => podCgroupPath(uid, 'abc'), /64 hex/);
});
