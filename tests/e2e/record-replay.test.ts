// Record live selftest records into a fixture, then replay it: same bytes, same counts, header
// facts (clocks, object hash, processes, cgroups) present. Also the CLI round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasBpf, requires } from '../lib/env.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import { SELFTEST_EVENT as E, SYS_getppid, selftestObjectPath, spawnLoadgen } from '../../agent/src/bpf/selftest.ts';
import { record } from '../../agent/src/sources/recorder.ts';
import { ReplaySource } from '../../agent/src/sources/replay.ts';
import { LiveSource } from '../../agent/src/sources/live.ts';
import { FixtureFormatError, FixtureReader } from '../../agent/src/sources/fixture.ts';
import { knownProbes } from '../../agent/src/sources/probes.ts';
import { cgroup2Root } from '../../agent/src/sources/host.ts';
import { main } from '../../agent/src/cli/index.ts';

const ready = (): boolean => hasBpf() && nativeAvailable();

function digest(buf: ArrayBuffer, len: number): string {
  return createHash('sha256').update(new Uint8Array(buf, 0, len)).digest('hex');
}

test('record → replay round trip keeps every batch byte for byte', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-rr-'));
  const out = join(dir, 'selftest.kfx');
  // a cgroup of our own, to find in the fixture's cgroup table under its inode (= cgroup id)
  const cgRoot = cgroup2Root();
  if (!requires(t, cgRoot !== undefined, 'a cgroup2 mount')) return;
  const gen = spawnLoadgen(0.4, 25_000);
  const cgName = `kscope-rr-${process.pid}`;
  const cgDir = join(cgRoot!, cgName);
  mkdirSync(cgDir);
  try {
    const live: string[] = [];
    const summary = await record({
      out,
      probes: [knownProbes.selftest!],
      durationMs: 700,
      globals: { selftest: { targ_tgid: gen.pid, targ_syscall: SYS_getppid } },
      tap: (buf, len) => { live.push(digest(buf, len)); },
      onAttached: () => gen.go(),
    });
    const { calls } = await gen.result;
    assert.ok(summary.records >= calls, `recorded ${summary.records} of ${calls} calls`);
    assert.deepEqual(summary.perProbe.selftest!.attached, ['emit_sys_enter']);
    assert.ok(!existsSync(`${out}.body.partial`), 'temporary body removed');

    const src = new ReplaySource(out, { speed: 'max' });
    const h = src.header;
    assert.equal(h.format, 'kscope-fixture');
    assert.equal(h.version, 1);
    assert.equal(h.records, summary.records);
    assert.equal(h.probes.length, 1);
    const p = h.probes[0]!;
    assert.equal(p.name, 'selftest');
    assert.equal(p.sha256, createHash('sha256').update(readFileSync(selftestObjectPath)).digest('hex'));
    assert.deepEqual(p.layout, { struct: 'selftest_event', size: 64, pidOffset: E.tgid });
    assert.equal(p.globals.targ_tgid, String(gen.pid));
    assert.equal(p.counters?.['stats[0]'], String(summary.records), 'probe counters: emitted');
    assert.equal(p.counters?.['stats[1]'], '0', 'probe counters: no reserve failures');
    const offset = BigInt(h.clock.realtimeMinusMonotonicNs);
    assert.equal(BigInt(h.clock.realtimeNs) - BigInt(h.clock.monotonicNs), offset);
    assert.ok(Math.abs(Number(offset + BigInt(h.clock.monotonicNs)) / 1e6 - Date.now()) < 60_000, 'realtime is now');
    const proc = h.processes.find((x) => x.pid === gen.pid);
    assert.ok(proc, 'the load generator is described');
    assert.equal(proc.comm, 'loadgen');
    assert.match(proc.exe, /loadgen$/);
    assert.equal(proc.ppid, process.pid);
    assert.ok(h.cgroups.length >= 1 && h.cgroups.some((c) => c.path === '/'), 'cgroup table has the root');
    const ino = statSync(cgDir, { bigint: true }).ino.toString();
    assert.deepEqual(h.cgroups.find((c) => c.path === `/${cgName}`), { id: ino, path: `/${cgName}` });
    assert.equal(h.cgroupRoot, cgRoot);

    // replay: the same record shape, every record from the generator, wall-clock convertible
    let replayed = 0, bad = 0;
    const replayedDigests: string[] = [];
    const wallStart = BigInt(h.clock.realtimeNs) - 60_000_000_000n;
    await src.start((buf, byteLength, count, probe) => {
      assert.equal(probe.name, 'selftest');
      const v = new DataView(buf);
      let off = 0;
      for (let i = 0; i < count; i++) {
        const len = v.getUint32(off, true);
        const rec = off + 8;
        if (len !== 64 || v.getUint32(rec + E.tgid, true) !== gen.pid) bad++;
        const wall = v.getBigUint64(rec + E.ts_ns, true) + offset;
        if (wall < wallStart) bad++;
        off += 8 + ((len + 7) & ~7);
      }
      if (off !== byteLength) bad++;
      replayed += count;
      replayedDigests.push(digest(buf, byteLength));
    });
    assert.equal(bad, 0);
    assert.equal(replayed, summary.records);
    assert.equal(src.stats.batches, summary.batches);
    assert.equal(live.length, summary.batches);
    assert.deepEqual(replayedDigests, live, 'replayed batches are the live batches, byte for byte');
  } finally {
    gen.kill();
    rmdirSync(cgDir);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('replay at recorded speed takes about as long as the recording', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-rr-'));
  const out = join(dir, 'paced.kfx');
  const gen = spawnLoadgen(0.5, 5_000);
  try {
    await record({
      out, probes: [knownProbes.selftest!], durationMs: 600,
      globals: { selftest: { targ_tgid: gen.pid } }, onAttached: () => gen.go(),
    });
    await gen.result;
    const frames: bigint[] = [];
    const r = new FixtureReader(out);
    for (let f = r.next(); f; f = r.next()) frames.push(f.monoNs);
    r.close();
    const span = Number(frames.at(-1)! - frames[0]!) / 1e6;
    const t0 = performance.now();
    await new ReplaySource(out, { speed: 'recorded' }).start(() => {});
    const took = performance.now() - t0;
    assert.ok(span > 200, `recorded span ${span} ms`);
    assert.ok(took >= span * 0.9, `paced replay took ${took} ms for a ${span} ms recording`);
  } finally {
    gen.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agent record / agent replay on the command line', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-rr-'));
  const out = join(dir, 'cli.kfx');
  const gen = spawnLoadgen(0.3, 10_000);
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(`E ${l}`) };
  try {
    setTimeout(() => gen.go(), 150);
    const rc = await main(['record', '--out', out, '--duration', '0.6', '--probe', 'selftest',
      '--set', `selftest.targ_tgid=${gen.pid}`, '--set', `selftest.targ_syscall=${SYS_getppid}`], io);
    assert.equal(rc, 0, lines.join('\n'));
    const { calls } = await gen.result;
    const m = /wrote .*: (\d+) records/.exec(lines.join('\n'));
    assert.ok(m, lines.join('\n'));
    const recorded = Number(m[1]);
    assert.ok(recorded >= calls * 0.5, `recorded ${recorded}, calls ${calls}`);
    lines.length = 0;
    assert.equal(await main(['replay', out, '--json'], io), 0);
    const s = JSON.parse(lines.join('\n'));
    assert.equal(s.records, recorded);
    assert.deepEqual(s.probes, [{ id: 0, name: 'selftest', records: recorded, byLength: { 64: recorded } }]);
    lines.length = 0;
    assert.equal(await main(['record', '--out', out], io), 2, 'usage error without --duration');
    assert.match(lines.join('\n'), /--duration must be/);
    lines.length = 0;
    assert.equal(await main(['replay', '--help'], io), 0);
    assert.match(lines.join('\n'), /Usage: agent replay FILE/);
  } finally {
    gen.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt or truncated fixtures are refused with FixtureFormatError', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-rr-'));
  try {
    const f = join(dir, 'bad.kfx');
    writeFileSync(f, 'not a fixture at all');
    assert.throws(() => new FixtureReader(f), FixtureFormatError);
    const header = Buffer.from(JSON.stringify({ format: 'kscope-fixture', version: 1, probes: [], startMonotonicNs: '0', endMonotonicNs: '0', cgroups: [], processes: [] }).padEnd(128));
    const pre = Buffer.alloc(16);
    pre.write('KSCOPEFX', 0, 'latin1');
    pre.writeUInt32LE(1, 8);
    pre.writeUInt32LE(header.length, 12);
    // a frame claiming a huge body
    const frame = Buffer.alloc(24);
    frame.writeUInt32LE(0x48435442, 0);
    frame.writeUInt32LE(1, 8);
    frame.writeUInt32LE(0x7ffffff8, 12);
    writeFileSync(f, Buffer.concat([pre, header, frame]));
    const r = new FixtureReader(f);
    assert.throws(() => r.next(), /bad frame length/);
    r.close();
    // no end frame
    writeFileSync(f, Buffer.concat([pre, header]));
    const r2 = new FixtureReader(f);
    assert.throws(() => r2.next(), /truncated/);
    r2.close();
    pre.writeUInt32LE(99, 8);
    writeFileSync(f, Buffer.concat([pre, header]));
    assert.throws(() => new FixtureReader(f), /unsupported fixture version 99/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('live source: globals and ring size applied, batches carry their probe, stop drains and closes', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const gen = spawnLoadgen(0.3, 10_000);
  const src = new LiveSource([knownProbes.selftest!], {
    ringBytes: 1 << 20,
    globals: { selftest: { targ_tgid: gen.pid, targ_syscall: SYS_getppid } },
  });
  try {
    const p = src.probes[0]!;
    assert.equal(p.object.maps().find((m) => m.name === 'events')!.maxEntries, 1 << 20);
    assert.equal(p.object.getGlobal('targ_tgid').readUInt32LE(), gen.pid);
    assert.deepEqual(p.layout, { struct: 'selftest_event', size: 64, pidOffset: E.tgid });
    let records = 0;
    const names = new Set<string>();
    await src.start((_buf, _len, count, probe) => { records += count; names.add(probe.name); });
    assert.deepEqual(src.probes[0]!.attach, [{ program: 'emit_sys_enter', ok: true }]);
    gen.go();
    const { calls } = await gen.result;
    await src.stop();
    assert.ok(records >= calls, `${records} records for ${calls} calls`);
    assert.deepEqual([...names], ['selftest']);
    assert.equal(p.object.closed, true);
    await src.stop();
  } finally {
    gen.kill();
    await src.stop();
  }
});

test('live source: a probe the verifier rejects fails construction with BpfLoadError naming the program', (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  assert.throws(() => new LiveSource([{ ...knownProbes.selftest!, enable: ['bad_unchecked_lookup'] }]),
    (e: Error & { code?: string; program?: string }) => e.code === 'BPF_LOAD' && e.program === 'bad_unchecked_lookup');
});
