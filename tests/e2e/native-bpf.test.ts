// The native bridge against the kernel with the selftest program: load, attach, ring batches,
// maps, verifier failures, backpressure and close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasBpf, requires } from '../lib/env.ts';
import { BpfObject, possibleCpus, sumPerCpuU64 } from '../../agent/src/bpf/object.ts';
import { BpfLoadError } from '../../agent/src/bpf/errors.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import { SELFTEST_EVENT as E, SYS_getppid, selftestObjectPath, spawnLoadgen } from '../../agent/src/bpf/selftest.ts';
import { kernelCapabilities, probeObject } from '../../agent/src/bpf/probe.ts';
import { main } from '../../agent/src/cli/index.ts';
import { openSelftestFor } from './bpf-live.ts';

const ready = (): boolean => hasBpf() && nativeAvailable();

test('records arrive in batches, complete and in order, with globals applied', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const gen = spawnLoadgen(0.5, 40_000);
  const o = openSelftestFor(gen.pid, (x) => { x.setGlobal('cookie', 0xc0ffee12345678n); x.setGlobal('track_tids', true); });
  try {
    const attach = o.attachAll();
    assert.deepEqual(attach, [{ program: 'emit_sys_enter', ok: true }]);
    assert.equal(o.programs().find((p) => p.name === 'emit_sys_enter')!.attached, true);
    let records = 0, batches = 0, bad = 0;
    const seqByCpu = new Map<number, bigint>();
    let outOfOrder = 0;
    const r = o.openRingBuffer('events', (buf, byteLength, count) => {
      batches++;
      const v = new DataView(buf);
      let off = 0;
      for (let i = 0; i < count; i++) {
        const len = v.getUint32(off, true);
        if (len !== E.size || v.getUint32(off + 4, true) !== 0) bad++;
        const rec = off + 8;
        if (v.getUint32(rec + E.tgid, true) !== gen.pid) bad++;
        if (v.getBigInt64(rec + E.syscall_nr, true) !== BigInt(SYS_getppid)) bad++;
        if (v.getBigUint64(rec + E.cookie, true) !== 0xc0ffee12345678n) bad++;
        const cpu = v.getUint32(rec + E.cpu, true);
        const seq = v.getBigUint64(rec + E.seq, true);
        const prev = seqByCpu.get(cpu);
        if (prev !== undefined && seq !== prev + 1n) outOfOrder++;
        seqByCpu.set(cpu, seq);
        off += 8 + ((len + 7) & ~7);
        records++;
      }
      if (off !== byteLength) bad++;
    });
    gen.go();
    const { calls } = await gen.result;
    await r.stop();
    const st = r.stats();
    assert.equal(bad, 0, 'every record well formed');
    assert.equal(outOfOrder, 0, 'per-CPU sequence numbers have no gaps');
    const emitted = sumPerCpuU64(o.mapLookup('stats', 0)!);
    const failed = sumPerCpuU64(o.mapLookup('stats', 1)!);
    assert.equal(failed, 0n, 'no reserve failures at this rate');
    assert.equal(BigInt(records), emitted, 'every emitted record delivered');
    assert.ok(records >= calls && records <= calls + 5, `records ${records} ~ calls ${calls}`);
    assert.equal(st.records, records);
    assert.equal(st.batches, batches);
    assert.equal(st.deliveredBatches, batches);
    assert.ok(batches < records / 10, 'batched, not one callback per record');
    assert.equal(st.running, false);
    // maps: per-CPU values are concatenated, 8 bytes per CPU
    assert.equal(o.mapLookup('stats', 0)!.length, 8 * possibleCpus());
    const hits = o.mapEntries('tid_hits');
    assert.equal(hits.length, 1, 'the single-threaded generator has one tid');
    assert.equal(hits[0]![0].readUInt32LE(), gen.pid);
    assert.equal(hits[0]![1].readBigUInt64LE(), emitted);
    assert.equal(o.mapLookup('totals', 0)!.readBigUInt64LE(), emitted);
    assert.equal(o.mapLookup('tid_hits', 1), null, 'absent key');
    o.mapUpdate('tid_hits', 1, Buffer.from([9, 0, 0, 0, 0, 0, 0, 0]));
    assert.equal(o.mapLookup('tid_hits', 1)!.readBigUInt64LE(), 9n);
    assert.equal(o.mapDelete('tid_hits', 1), true);
    assert.equal(o.mapDelete('tid_hits', 1), false);
    assert.equal(o.mapEntries('tid_hits', 0).length, 0, 'limit 0');
    assert.throws(() => o.mapLookup('stats', Buffer.alloc(3)), RangeError);
    assert.throws(() => o.mapLookup('events', 0), (e: Error & { code?: string }) => e.code === 'BPF_MAP_TYPE');
  } finally {
    gen.kill();
    o.close();
  }
});

test('a verifier rejection is a BpfLoadError with program, errno and verifier log', (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const o = BpfObject.open(selftestObjectPath);
  try {
    o.setAutoload('bad_unchecked_lookup', true);
    assert.throws(() => o.load(), (e: unknown) => {
      assert.ok(e instanceof BpfLoadError);
      assert.equal(e.code, 'BPF_LOAD');
      assert.equal(e.program, 'bad_unchecked_lookup');
      assert.equal(e.errno, 13, 'EACCES from the verifier');
      assert.match(e.verifierLog, /invalid mem access 'map_value_or_null'/);
      assert.match(e.log, /BEGIN PROG LOAD LOG/);
      return true;
    });
    // a failed object stays usable for queries and refuses a second load cleanly
    assert.equal(o.programs().length, 5);
    assert.throws(() => o.load(), (e: Error & { code?: string }) => e.code === 'BPF_STATE');
  } finally {
    o.close();
  }
});

test('attach failures are results, not exceptions', (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const caps = kernelCapabilities();
  const o = BpfObject.open(selftestObjectPath);
  try {
    o.setAutoload('emit_sys_enter', false);
    o.setAutoload('kprobe_getppid', true);
    o.load();
    const r = o.attach('kprobe_getppid');
    if (caps.kprobes) {
      assert.equal(r.ok, true);
    } else {
      assert.equal(r.ok, false);
      assert.equal(typeof r.errno, 'number');
      assert.ok(r.error && r.error.length > 0);
      assert.match(r.log ?? '', /kprobe/);
    }
    const notLoaded = o.attach('emit_sys_enter');
    assert.equal(notLoaded.ok, false, 'autoload off: not loaded, so not attachable');
    assert.match(notLoaded.error!, /not loaded/);
  } finally {
    o.close();
  }
});

test('capability probe reports per program, with reasons', (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const caps = kernelCapabilities();
  assert.equal(caps.tracefs.mounted, true, 'tracefs mounted (or mounted by the probe)');
  const res = probeObject(selftestObjectPath, { caps });
  const by = new Map(res.programs.map((p) => [p.program, p]));
  assert.equal(by.get('emit_sys_enter')!.load.ok, true);
  assert.equal(by.get('emit_sys_enter')!.attach!.ok, true);
  assert.equal(by.get('bad_unchecked_lookup')!.load.ok, false);
  assert.match(by.get('bad_unchecked_lookup')!.reason!, /verifier/);
  assert.match(by.get('bad_unchecked_lookup')!.load.verifierLog!, /map_value_or_null/);
  if (!caps.kprobes) assert.match(by.get('kprobe_getppid')!.reason!, /kprobes are not available/);
  assert.deepEqual(res.defaultSet, { loaded: true, attached: ['emit_sys_enter'], failedAttach: [] });
});

test('agent probe prints per-program results (text and JSON)', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  assert.equal(await main(['probe', '--object', selftestObjectPath, '--json'], io), 0);
  const res = JSON.parse(lines.join('\n'));
  assert.equal(res.kernel.btf, true);
  const progs = res.objects[0].programs as { program: string; load: { ok: boolean } }[];
  assert.equal(progs.length, 5);
  assert.equal(progs.find((p) => p.program === 'bad_unchecked_lookup')!.load.ok, false);
  lines.length = 0;
  assert.equal(await main(['probe', '--object', selftestObjectPath], io), 0);
  const text = lines.join('\n');
  assert.match(text, /emit_sys_enter +raw_tp\/sys_enter +ok +ok/);
  assert.match(text, /bad_unchecked_lookup \(opt\) +raw_tp\/sys_enter +FAIL +- +rejected by the verifier/);
  assert.match(text, /default set: loads; attached emit_sys_enter/);
  lines.length = 0;
  assert.equal(await main(['probe', '--object', '/nonexistent.bpf.o'], io), 1, 'an unreadable object fails the probe');
  assert.match(lines.join('\n'), /cannot open/);
});

test('backpressure: a slow consumer stops the drain, the BPF side counts reserve failures, memory stays bounded', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const gen = spawnLoadgen(0.4, 0);
  // 16 KiB ring, 2 × 4 KiB batches: the ring overflows while the callback is slow
  const o = openSelftestFor(gen.pid, (x) => x.setMaxEntries('events', 16 * 1024));
  try {
    let delivered = 0;
    const r = o.openRingBuffer('events', (_buf, _len, count) => {
      delivered += count;
      const until = Date.now() + 20;
      while (Date.now() < until) { /* a consumer that falls behind */ }
    }, { batchBytes: 4096, poolSize: 2, pollTimeoutMs: 5 });
    o.attachAll();
    gen.go();
    const { calls } = await gen.result;
    await r.stop();
    const st = r.stats();
    const emitted = sumPerCpuU64(o.mapLookup('stats', 0)!);
    const failed = sumPerCpuU64(o.mapLookup('stats', 1)!);
    assert.ok(st.backpressureWaits > 0, 'the worker waited for free batches');
    assert.ok(failed > 0n, 'the kernel side counted reserve failures');
    assert.ok(emitted + failed >= BigInt(calls), 'every call either emitted or counted as lost');
    assert.equal(BigInt(delivered + st.droppedOnStop), emitted, 'everything emitted was delivered (or counted at stop)');
    assert.equal(st.poolSize, 2);
  } finally {
    gen.kill();
    o.close();
  }
});

test('a throwing consumer is counted, reported and does not stop the reader', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const gen = spawnLoadgen(0.2, 20_000);
  const o = openSelftestFor(gen.pid);
  try {
    const errors: unknown[] = [];
    let calls = 0;
    const r = o.openRingBuffer('events', () => {
      calls++;
      throw new Error('consumer bug');
    }, { onError: (e) => errors.push(e), batchBytes: 4096 }); // small batches: several calls even on a busy machine
    o.attachAll();
    gen.go();
    await gen.result;
    await r.stop();
    assert.ok(calls > 1, 'kept delivering after the first throw');
    assert.equal(r.stats().userCallbackErrors, calls);
    assert.equal(errors.length, calls);
    assert.equal(r.stats().callbackErrors, 0, 'the wrapper caught them before the native layer');
  } finally {
    gen.kill();
    o.close();
  }
});

test('close stops running readers and detaches; idempotent', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const gen = spawnLoadgen(0.6, 20_000);
  const o = openSelftestFor(gen.pid);
  let records = 0;
  const r = o.openRingBuffer('events', (_b, _l, count) => { records += count; });
  o.attachAll();
  gen.go();
  await sleep(200);
  o.close();
  o.close();
  assert.equal(r.running, false, 'close stopped the reader');
  await r.stop();
  const atClose = records;
  await gen.result;
  await sleep(50);
  assert.ok(atClose > 0, 'records arrived before close');
  assert.equal(records, atClose, 'nothing after close: detached and stopped');
  assert.throws(() => o.mapLookup('stats', 0), (e: Error & { code?: string }) => e.code === 'BPF_CLOSED');
});

test('process exit with a running reader is clean (exit, exit inside the callback, uncaught throw, unref)', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-exit-'));
  const script = join(dir, 'exit.mts');
  writeFileSync(script, `
import { BpfObject } from ${JSON.stringify(new URL('../../agent/src/bpf/object.ts', import.meta.url).pathname)};
const o = BpfObject.open(${JSON.stringify(selftestObjectPath)});
o.setGlobal('targ_tgid', process.pid);
o.load(); o.attachAll();
let n = 0;
const mode = process.argv[2];
const r = o.openRingBuffer('events', (_b, _l, c) => { n += c; if (mode === 'in-callback' && n > 100) process.exit(3); });
if (mode === 'unref') r.unref();
const iv = setInterval(() => { for (let i = 0; i < 1000; i++) process.ppid; }, 1);
setTimeout(() => {
  if (mode === 'exit') process.exit(4);
  if (mode === 'throw') throw new Error('boom');
  if (mode === 'unref') { clearInterval(iv); process.exitCode = n > 0 ? 0 : 5; }
}, 300);
`);
  try {
    for (const [mode, want] of [['exit', 4], ['in-callback', 3], ['throw', 1], ['unref', 0]] as const) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', script, mode], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.signal, null, `${mode}: no crash signal (stderr: ${r.stderr})`);
      assert.equal(r.status, want, `${mode}: exit code (stderr: ${r.stderr})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
