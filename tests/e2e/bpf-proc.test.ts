// LiveEvents<ProcOrExec> test of bpf/proc/proc.bpf.o: exec, exit, fork and OOM-victim events for processes this
// test starts, including cgroup attribution (a cgroup v2 directory made for the test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { hasBpf, requires } from '../lib/env.ts';
import {
  verifyProbeLayouts, EventType, EventFlag, type ProcEvent, type ExecEvent,
} from '../../agent/src/decode/index.ts';
import { exited, liveEvents, sleep, type LiveEvents } from './bpf-live.ts';

// KSCOPE_BPF_PROC_OBJ runs the same checks against another build (e.g. a deliberately broken one).
const objPath = process.env.KSCOPE_BPF_PROC_OBJ ?? fileURLToPath(new URL('../../bpf/proc/proc.bpf.o', import.meta.url));
const cgroup2Root = '/sys/fs/cgroup/unified';
const memcgRoot = '/sys/fs/cgroup/memory';

type ProcOrExec = ProcEvent | ExecEvent;



async function startProcProbe(globals: Record<string, number | bigint | boolean>, keep: (e: ProcOrExec) => boolean): Promise<LiveEvents<ProcOrExec>> {
  const { BpfObject } = await import('../../agent/src/bpf/object.ts');
  const obj = BpfObject.open(objPath);
  verifyProbeLayouts('proc', obj);
  for (const [k, v] of Object.entries(globals)) obj.setGlobal(k, v);
  obj.load();
  for (const a of obj.attachAll()) assert.ok(a.ok, `attach ${a.program}: ${a.error}`);
  // Other processes on the machine fork and exit too: keep only what the test is about.
  return liveEvents<ProcOrExec>(
    obj,
    (push) => ({
      proc: (v) => { const e = v.toObject(); if (keep(e)) push(e); },
      exec: (v) => { const e = v.toObject(); if (keep(e)) push(e); },
    }),
    5000,
  );
}

const byType = (evs: ProcOrExec[], type: number) => evs.filter((e) => e.typeCode === type);

test('M short processes give M exec and M exit events with their exit codes', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  const live = await startProcProbe({}, (e) => e.ppid === process.pid || e.tgid === process.pid);
  try {
    const M = 8;
    const pids = new Map<number, number>(); // pid -> exit code
    for (let i = 0; i < M; i++) {
      const code = 10 + i;
      const r = spawnSync('/bin/sh', ['-c', `exit ${code}`]);
      assert.equal(r.status, code);
      pids.set(r.pid, code);
    }
    const killed = spawn('/bin/sh', ['-c', 'kill -KILL $$']);
    assert.equal((await exited(killed)).signal, 'SIGKILL');

    const ofChildren = (evs: ProcOrExec[], type: number) => byType(evs, type).filter((e) => pids.has(e.tgid));
    await live.waitFor((evs) => ofChildren(evs, EventType.ProcExit).length >= M &&
      evs.some((e) => e.typeCode === EventType.ProcExit && e.tgid === killed.pid), 'exit events');
    await sleep(100);

    const execs = ofChildren(live.events, EventType.ProcExec) as ExecEvent[];
    const exits = ofChildren(live.events, EventType.ProcExit) as ProcEvent[];
    const forks = byType(live.events, EventType.ProcFork).filter((e) => pids.has((e as ProcEvent).childPid)) as ProcEvent[];
    assert.equal(execs.length, M);
    assert.equal(exits.length, M);
    assert.equal(forks.length, M);
    assert.deepEqual(new Set(execs.map((e) => e.tgid)), new Set(pids.keys()));
    for (const e of execs) {
      assert.equal(e.filename, '/bin/sh');
      assert.equal(e.ppid, process.pid);
      assert.equal(e.comm, 'sh');
      assert.equal(e.tid, e.tgid);
      assert.equal(e.uid, process.getuid!());
    }
    for (const e of exits) {
      assert.equal(e.exitStatus, pids.get(e.tgid), `exit status of ${e.tgid}`);
      assert.equal(e.termSignal, 0);
      assert.equal(e.ppid, process.pid);
      assert.ok(e.durationNs > 0);
      assert.ok(e.durationNs < 60e9);
      assert.equal(e.flags & EventFlag.DurationUnknown, 0);
      const exec = execs.find((x) => x.tgid === e.tgid)!;
      assert.ok(e.tsNs > exec.tsNs, 'exit after exec');
    }
    for (const f of forks) assert.equal(f.tgid, process.pid);
    const k = live.events.find((e) => e.typeCode === EventType.ProcExit && e.tgid === killed.pid) as ProcEvent;
    assert.equal(k.termSignal, 9);
  } finally {
    await live.stop();
  }
});

test('a multi-threaded process exits once, with the process exit code', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  const live = await startProcProbe({}, (e) => e.ppid === process.pid);
  try {
    // node runs several threads; the worker thread exits before the process does.
    const child = spawn(process.execPath, ['-e',
      "const { Worker } = require('worker_threads'); new Worker('1', { eval: true }).on('exit', () => setTimeout(() => process.exit(43), 50));"]);
    assert.equal((await exited(child)).code, 43);
    await live.waitFor((evs) => evs.some((e) => e.typeCode === EventType.ProcExit && e.tgid === child.pid), 'exit event');
    await sleep(100);
    const exits = byType(live.events, EventType.ProcExit).filter((e) => e.tgid === child.pid) as ProcEvent[];
    assert.equal(exits.length, 1, 'one exit event for the whole process');
    assert.equal(exits[0].exitStatus, 43);
    // A worker thread is not a process: no fork event names it.
    const forks = byType(live.events, EventType.ProcFork).filter((e) => e.tgid === child.pid);
    assert.equal(forks.length, 0);
  } finally {
    await live.stop();
  }
});

test('processes in a test cgroup carry its id, and target_cgroup_id filters on it', async (t) => {
  if (!requires(t, hasBpf() && existsSync(`${cgroup2Root}/cgroup.procs`), 'root, BPF and cgroup2 at /sys/fs/cgroup/unified')) return;
  const dir = `${cgroup2Root}/kscope-test-${randomBytes(4).toString('hex')}`;
  mkdirSync(dir);
  let child: ChildProcess | undefined;
  let live: LiveEvents<ProcOrExec> | undefined;
  try {
    const cgid = BigInt(statSync(dir).ino);
    live = await startProcProbe({ target_cgroup_id: cgid }, () => true);
    child = spawn('/bin/sh', ['-c', 'read x; /bin/true; exit 5'], { stdio: ['pipe', 'ignore', 'inherit'] });
    writeFileSync(`${dir}/cgroup.procs`, String(child.pid));
    child.stdin!.end('go\n');
    assert.equal((await exited(child)).code, 5);
    const sh = child.pid!;
    await live.waitFor((evs) => evs.some((e) => e.typeCode === EventType.ProcExit && e.tgid === sh), 'exit of the shell');
    await sleep(100);

    assert.ok(live.events.length >= 4, 'fork, exec, exit of /bin/true and exit of sh');
    for (const e of live.events) assert.equal(e.cgroupId, cgid, `${e.type} of ${e.tgid} is in the test cgroup`);
    const fork = live.events.find((e) => e.typeCode === EventType.ProcFork && e.tgid === sh) as ProcEvent;
    assert.ok(fork, 'sh forked');
    const exec = live.events.find((e) => e.typeCode === EventType.ProcExec && e.tgid === fork.childPid) as ExecEvent;
    assert.equal(exec.filename, '/bin/true');
    assert.equal(exec.ppid, sh);
    const trueExit = live.events.find((e) => e.typeCode === EventType.ProcExit && e.tgid === fork.childPid) as ProcEvent;
    assert.equal(trueExit.exitStatus, 0);
    const shExit = live.events.find((e) => e.typeCode === EventType.ProcExit && e.tgid === sh) as ProcEvent;
    assert.equal(shExit.exitStatus, 5);
    assert.equal(shExit.ppid, process.pid);
    // Nothing from outside the cgroup got through (the test process itself forks nothing here).
    assert.equal(live.events.filter((e) => e.tgid === process.pid).length, 0);
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited(child); }
    await live?.stop();
    rmdirSync(dir);
  }
});

test('an OOM kill in a memory-limited cgroup gives an OOM-victim event for the victim', async (t) => {
  if (!requires(t, hasBpf() && existsSync(`${memcgRoot}/memory.limit_in_bytes`), 'root, BPF and the v1 memory controller')) return;
  const dir = `${memcgRoot}/kscope-oom-${randomBytes(4).toString('hex')}`;
  mkdirSync(dir);
  let live: LiveEvents<ProcOrExec> | undefined;
  let child: ChildProcess | undefined;
  try {
    writeFileSync(`${dir}/memory.limit_in_bytes`, String(96 << 20));
    live = await startProcProbe({}, (e) => e.ppid === process.pid || e.tgid === child?.pid);
    // The shell moves itself into the cgroup, then becomes node (same pid) and allocates until killed.
    child = spawn('/bin/sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec "${process.execPath}" -e ` +
      `"const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));"`], { stdio: 'ignore' });
    const r = await exited(child);
    assert.equal(r.signal, 'SIGKILL', 'the memcg OOM killer ended the child');
    const pid = child.pid!;
    await live.waitFor((evs) => evs.some((e) => e.typeCode === EventType.ProcOomVictim && e.tgid === pid) &&
      evs.some((e) => e.typeCode === EventType.ProcExit && e.tgid === pid), 'oom victim and exit');
    const oom = live.events.find((e) => e.typeCode === EventType.ProcOomVictim && e.tgid === pid) as ProcEvent;
    assert.equal(oom.comm, 'node');
    assert.equal(oom.ppid, process.pid);
    assert.ok(oom.rssPages > (32 << 20) / 4096, `rss ${oom.rssPages} pages`);
    assert.ok(oom.totalVmPages >= oom.rssPages);
    const exit = live.events.find((e) => e.typeCode === EventType.ProcExit && e.tgid === pid) as ProcEvent;
    assert.equal(exit.termSignal, 9);
    assert.ok(exit.tsNs >= oom.tsNs);
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited(child); }
    await live?.stop();
    rmdirSync(dir);
  }
});
