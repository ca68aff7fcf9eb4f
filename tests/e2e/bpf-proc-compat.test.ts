// The proc probe on kernels older than this one. No old kernel boots here, so the object's CO-RE
// relocations are resolved against this kernel's BTF reshaped the way 5.x/6.1 kernels have the
// types the probe's guards look at (tests/e2e/btf-shapes.ts): no group_dead in
// sched_process_exit (< 6.16), mark_victim(int pid) (< 6.8), rss_stat as a struct of atomics
// (< 6.2). The object must load against those shapes, and the exit path it then takes (group_dead
// from signal->live, deduplicated) must behave like the real argument: one exit per process,
// none for a thread.
//
// Not testable here: that an old kernel's verifier accepts the program. The verifier checks the
// tracepoint's real prototype (this kernel's, with group_dead), so reading ctx[1] is accepted
// here whatever the guard; what the test shows is that with the old shapes the program takes the
// branch that never reads ctx[1] (exit_seen is only written there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { hasBpf, requires } from '../lib/env.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import type { BpfObject } from '../../agent/src/bpf/object.ts';
import { EventType, verifyProbeLayouts, type ProcEvent, type ExecEvent } from '../../agent/src/decode/index.ts';
import { olderKernelBtf } from './btf-shapes.ts';
import { exited, liveEvents, sleep, type LiveEvents } from './bpf-live.ts';

const objPath = process.env.KSCOPE_BPF_PROC_OBJ ?? fileURLToPath(new URL('../../bpf/proc/proc.bpf.o', import.meta.url));
const srcPath = fileURLToPath(new URL('../../bpf/proc/proc.bpf.c', import.meta.url));

let btfDir: string | undefined;
function oldBtfPath(): string {
  if (!btfDir) {
    btfDir = mkdtempSync(join(tmpdir(), 'kscope-oldbtf-'));
    writeFileSync(join(btfDir, 'vmlinux'), olderKernelBtf());
    process.once('exit', () => rmSync(btfDir!, { recursive: true, force: true }));
  }
  return join(btfDir, 'vmlinux');
}

test('the exit program declares only the task argument (group_dead is read behind a CO-RE check)', () => {
  const src = readFileSync(srcPath, 'utf8');
  const m = /SEC\("tp_btf\/sched_process_exit"\)\s*int BPF_PROG\(ks_sched_process_exit,([^)]*)\)/.exec(src);
  assert.ok(m, 'the program is there');
  assert.deepEqual(m[1]!.split(',').map((a) => a.trim()), ['struct task_struct *p'], 'one declared argument');
  // the only read of the second argument sits under the 6.16 field check
  const body = src.slice(m.index);
  const read = body.indexOf('ctx[1]');
  assert.ok(read > 0);
  assert.match(body.slice(0, read), /if \(bpf_core_field_exists\(struct trace_event_raw_sched_process_exit___v616, group_dead\)\) \{\s*group_dead = \(bool\)$/);
  // mark_victim reads its argument as a pid only under the 6.8 check
  assert.match(src, /if \(!bpf_core_field_exists\(struct trace_event_raw_mark_victim___v68, uid\)\)\s*return mark_victim_pid_only\(\(__s32\)ctx\[0\]\);/);
});

const bpftool = ['/usr/sbin/bpftool', '/usr/bin/bpftool', '/sbin/bpftool'].find((p) => existsSync(p));

/** The kernel types the object's CO-RE relocations match in `btf` (bpftool gen min_core_btf), as
 * bpftool's text dump. A guard whose target is absent matches nothing. */
function relocatedTypes(btf: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-mincore-'));
  try {
    execFileSync(bpftool!, ['gen', 'min_core_btf', btf, join(dir, 'min'), objPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    return execFileSync(bpftool!, ['btf', 'dump', 'file', join(dir, 'min')], { encoding: 'utf8' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('CO-RE relocations pick each kernel\'s shapes (bpftool gen min_core_btf)', (t) => {
  if (!requires(t, bpftool !== undefined && existsSync('/sys/kernel/btf/vmlinux'), 'bpftool and kernel BTF')) return;
  const now = relocatedTypes('/sys/kernel/btf/vmlinux');
  assert.match(now, /STRUCT 'trace_event_raw_sched_process_exit'[^\n]*\n\t'group_dead'/, 'this kernel: group_dead argument');
  assert.match(now, /STRUCT 'trace_event_raw_mark_victim'[^\n]*\n\t'uid'/, 'this kernel: mark_victim(task, uid)');
  assert.match(now, /STRUCT 'percpu_counter'[^\n]*\n\t'count'/, 'this kernel: rss_stat[] of percpu_counter');
  assert.doesNotMatch(now, /'mm_rss_stat'/);
  const old = relocatedTypes(oldBtfPath());
  assert.doesNotMatch(old, /trace_event_raw_sched_process_exit/, 'old: no group_dead, the signal->live path');
  assert.doesNotMatch(old, /trace_event_raw_mark_victim/, 'old: mark_victim(int pid)');
  assert.match(old, /STRUCT 'mm_rss_stat' size=32 vlen=1\n\t'count'/, 'old: rss_stat.count[] of atomic_long_t');
  assert.doesNotMatch(old, /'percpu_counter'/);
});


async function startProc(btfCustomPath?: string): Promise<LiveEvents<ProcEvent | ExecEvent>> {
  const { BpfObject } = await import('../../agent/src/bpf/object.ts');
  const obj = BpfObject.open(objPath, btfCustomPath ? { btfCustomPath } : {});
  verifyProbeLayouts('proc', obj);
  obj.load();
  for (const a of obj.attachAll()) assert.ok(a.ok, `attach ${a.program}: ${a.error}`);
  return liveEvents<ProcEvent | ExecEvent>(obj, (push) => ({ proc: (v) => push(v.toObject()), exec: (v) => push(v.toObject()) }), 5000);
}

const exitsOf = (live: LiveEvents<ProcEvent | ExecEvent>, pid: number) => live.events.filter((e) => e.typeCode === EventType.ProcExit && e.tgid === pid) as ProcEvent[];

/** exit_seen keys (struct exit_key: u32 tgid, u32 pad, u64 start_time) → tgids */
function exitSeen(obj: BpfObject): number[] {
  return obj.mapEntries('exit_seen').map(([k]) => k.readUInt32LE(0));
}

/**
 * A node process (several threads of its own) whose worker thread exits while the process goes
 * on; the process exits with `code` when told to. Checks: no exit event after the thread's exit,
 * exactly one after the process's.
 */
async function threadThenProcess(live: LiveEvents<ProcEvent | ExecEvent>, code: number): Promise<number> {
  const child = spawn(process.execPath, ['-e', `
    const { Worker } = require('worker_threads');
    new Worker('1', { eval: true }).on('exit', () => {
      process.stdout.write('thread-gone\\n');
      process.stdin.once('data', () => process.exit(${code}));
    });`], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((r) => child.stdout!.once('data', () => r()));
  await sleep(300); // the worker thread's exit has long reached the ring
  assert.deepEqual(exitsOf(live, child.pid!), [], 'a thread exit is not a process exit');
  child.stdin!.end('go\n');
  assert.equal((await exited(child)).code, code);
  await live.waitFor(() => exitsOf(live, child.pid!).length > 0, `exit of ${child.pid}`);
  await sleep(150);
  const exits = exitsOf(live, child.pid!);
  assert.equal(exits.length, 1, 'the last thread reports the process exit, once');
  assert.equal(exits[0]!.exitStatus, code);
  return child.pid!;
}

test('against older kernels\' type shapes the proc object loads, attaches, and reports exits from signal->live', async (t) => {
  if (!requires(t, hasBpf() && nativeAvailable(), 'root, BPF and the native addon')) return;
  const live = await startProc(oldBtfPath());
  try {
    const pid = await threadThenProcess(live, 41);
    assert.ok(exitSeen(live.obj).includes(pid), 'the signal->live path ran (it alone writes exit_seen)');
    // exit_group: every thread of each node process dies at once; each process exits once
    const pids: number[] = [];
    for (let i = 0; i < 8; i++) {
      const c = spawn(process.execPath, ['-e', `setTimeout(() => process.exit(${20 + i}), 20)`], { stdio: 'ignore' });
      pids.push(c.pid!);
      assert.equal((await exited(c)).code, 20 + i);
    }
    await live.waitFor(() => pids.every((p) => exitsOf(live, p).length > 0), 'exits of the node processes');
    await sleep(150);
    for (const [i, p] of pids.entries()) {
      const exits = exitsOf(live, p);
      assert.equal(exits.length, 1, `process ${p}: one exit event, got ${exits.length}`);
      assert.equal(exits[0]!.exitStatus, 20 + i);
    }
  } finally {
    await live.stop();
  }
});

test('on this kernel the exit program uses the tracepoint\'s group_dead (and never the fallback)', async (t) => {
  if (!requires(t, hasBpf() && nativeAvailable(), 'root, BPF and the native addon')) return;
  const live = await startProc();
  try {
    const pid = await threadThenProcess(live, 42);
    assert.ok(!exitSeen(live.obj).includes(pid), 'exit_seen untouched: group_dead came from ctx[1]');
  } finally {
    await live.stop();
  }
});
