// One probe that cannot load must not take the others down: LiveSource reports it in `failures`
// (which the agent turns into log lines and OTel log records) and runs the rest; only when no
// probe loads does it throw, and `strict` restores all-or-nothing (the recorder's mode).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hasBpf, requires } from '../lib/env.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import { LayoutMismatchError, TCP_EVENT, PROC_EVENT, EventDecoder, EventType, type StructLayout } from '../../agent/src/decode/index.ts';
import { LiveSource } from '../../agent/src/sources/live.ts';
import { knownProbes } from '../../agent/src/sources/probes.ts';

const ready = (): boolean => hasBpf() && nativeAvailable();
const shifted = (l: StructLayout, field: string): StructLayout => ({
  ...l, fields: { ...l.fields, [field]: { ...(l.fields as Record<string, { offset: number; size: number }>)[field]!, offset: 1000 } },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a probe that fails is reported and the other one runs', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const src = new LiveSource([knownProbes.tcp!, knownProbes.proc!], { layouts: { tcp: [shifted(TCP_EVENT, 'sport')] } });
  try {
    assert.deepEqual(src.probes.map((p) => [p.id, p.name]), [[0, 'proc']], 'proc loaded, with the first id');
    assert.equal(src.failures.length, 1);
    const f = src.failures[0]!;
    assert.equal(f.probe, 'tcp');
    assert.ok(f.error instanceof LayoutMismatchError);
    assert.match(f.message, /^probe tcp: event layout mismatch in struct ks_tcp_event field sport/);
    assert.equal(f.verifierLog, '');
    // and proc really works
    const exits: number[] = [];
    const dec = new EventDecoder({ proc: (v) => { if (v.typeCode === EventType.ProcExit) exits.push(v.tgid); }, exec: () => {} });
    await src.start((buf, len, count) => dec.decodeBatch(buf, len, count));
    assert.ok(src.probes[0]!.attach.every((a) => a.ok));
    const child = spawnSync('/bin/true');
    const deadline = Date.now() + 5000;
    while (!exits.includes(child.pid) && Date.now() < deadline) await sleep(20);
    assert.ok(exits.includes(child.pid), 'the proc probe reported the exit');
  } finally {
    await src.stop();
  }
});

test('no probe loads: the first failure is thrown, carrying all of them; strict throws on the first', (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const layouts = { tcp: [shifted(TCP_EVENT, 'sport')], proc: [shifted(PROC_EVENT, 'ppid')] };
  assert.throws(() => new LiveSource([knownProbes.tcp!, knownProbes.proc!], { layouts }), (e: unknown) => {
    assert.ok(e instanceof LayoutMismatchError);
    assert.equal(e.struct, 'ks_tcp_event');
    const all = (e as { probeFailures?: { probe: string }[] }).probeFailures!;
    assert.deepEqual(all.map((f) => f.probe), ['tcp', 'proc']);
    return true;
  });
  assert.throws(() => new LiveSource([knownProbes.proc!, knownProbes.tcp!], { layouts: { tcp: layouts.tcp }, strict: true }),
    (e: unknown) => e instanceof LayoutMismatchError && e.struct === 'ks_tcp_event');
});
