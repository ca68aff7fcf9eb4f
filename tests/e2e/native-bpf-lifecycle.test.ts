// The native bridge's edges: a long verifier log keeps its end (the rejection), a batch buffer the
// callback transfers away is replaced (never written again), close() detaches before the readers'
// last drain (nothing is lost uncounted), and stop/close wake readers at once instead of waiting
// out their poll timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { hasBpf, requires } from '../lib/env.ts';
import { BpfObject, sumPerCpuU64 } from '../../agent/src/bpf/object.ts';
import { BpfLoadError } from '../../agent/src/bpf/errors.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import { SELFTEST_EVENT as E, spawnLoadgen } from '../../agent/src/bpf/selftest.ts';
import { openSelftestFor } from './bpf-live.ts';

const verifierTailObject = fileURLToPath(new URL('../../bpf/selftest/verifier_tail.bpf.o', import.meta.url));
const ready = (): boolean => hasBpf() && nativeAvailable();
const bpftool = ['/usr/sbin/bpftool', '/usr/bin/bpftool', '/sbin/bpftool'].find((p) => existsSync(p));

test('a verifier log longer than 2 KiB keeps its end: the rejection and the instruction count', (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const o = BpfObject.open(verifierTailObject);
  try {
    assert.throws(() => o.load(), (e: unknown) => {
      assert.ok(e instanceof BpfLoadError);
      assert.equal(e.program, 'rejected_after_long_path');
      assert.ok(e.log.length > 8192, `the log is long (${e.log.length} bytes), libbpf prints it in one call`);
      assert.match(e.log, /-- END PROG LOAD LOG --/);
      assert.match(e.verifierLog, /R0 invalid mem access 'map_value_or_null'/);
      assert.match(e.verifierLog, /processed \d+ insns/);
      // the tail is the end of the log, not its first instructions
      assert.doesNotMatch(e.verifierLog, /^0: R1=ctx\(\)/m);
      return true;
    });
  } finally {
    o.close();
  }
});

test('a batch buffer transferred away by the callback is replaced; its memory is never written again', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const gen = spawnLoadgen(1, 20_000);
  const o = openSelftestFor(gen.pid, (x) => x.setGlobal('cookie', 0x5eed5eedn));
  try {
    const moved: { ab: ArrayBuffer; copy: Uint8Array }[] = [];
    let records = 0, bad = 0;
    // 2 small buffers: each is handed out again many times after it was transferred
    const r = o.openRingBuffer('events', (buf, byteLength, count) => {
      const v = new DataView(buf);
      let off = 0;
      for (let i = 0; i < count; i++) {
        const len = v.getUint32(off, true);
        if (len !== E.size || v.getUint32(off + 8 + E.tgid, true) !== gen.pid ||
          v.getBigUint64(off + 8 + E.cookie, true) !== 0x5eed5eedn) bad++;
        off += 8 + ((len + 7) & ~7);
        records++;
      }
      if (off !== byteLength) bad++;
      if (moved.length < 4) {
        const copy = new Uint8Array(buf.slice(0, byteLength));
        const ab = structuredClone(buf, { transfer: [buf] });
        assert.equal(buf.byteLength, 0, 'the pool buffer is detached');
        moved.push({ ab, copy: copy });
      }
    }, { batchBytes: 4096, poolSize: 2, pollTimeoutMs: 5 });
    o.attachAll();
    gen.go();
    await gen.result;
    await r.stop();
    const st = r.stats();
    assert.equal(moved.length, 4);
    assert.equal(st.userCallbackErrors, 0, 'no callback saw a detached (empty) buffer');
    assert.equal(bad, 0, 'every record well formed');
    assert.equal(st.renewedBuffers, 4, 'each transferred buffer was replaced');
    assert.equal(st.lostBuffers, 0);
    assert.ok(st.deliveredBatches > 20, `the two slots were reused many times (${st.deliveredBatches} batches)`);
    assert.equal(BigInt(records), sumPerCpuU64(o.mapLookup('stats', 0)!), 'every record delivered');
    for (const [i, m] of moved.entries()) {
      assert.deepEqual(new Uint8Array(m.ab, 0, m.copy.length), m.copy, `transferred buffer ${i} unchanged`);
    }
  } finally {
    gen.kill();
    o.close();
  }
});

test('close() detaches before the readers\' last drain: every record emitted is delivered or counted', async (t) => {
  if (!requires(t, ready() && bpftool !== undefined && existsSync('/sys/fs/bpf'), 'root, BPF, the addon, bpftool and bpffs')) return;
  for (let round = 0; round < 3; round++) {
    const gen = spawnLoadgen(3, 0); // as fast as it can: records arrive during close
    const o = openSelftestFor(gen.pid);
    // the stats map outlives the object through a pin, so the final count is readable after close
    const pin = `/sys/fs/bpf/kscope-test-stats-${process.pid}-${randomBytes(4).toString('hex')}`;
    execFileSync(bpftool!, ['map', 'pin', 'id', String(o.mapId('stats')), pin]);
    try {
      let delivered = 0;
      const r = o.openRingBuffer('events', (_b, _l, count) => { delivered += count; }, { pollTimeoutMs: 5 });
      o.attachAll();
      gen.go();
      await sleep(200);
      o.close();
      await r.stop();
      // raw bytes, little-endian hex strings: [{key: ['0x00', …], values: [{cpu, value: ['0x..', …]}]}]
      const dump = JSON.parse(execFileSync(bpftool!, ['-j', 'map', 'dump', 'pinned', pin], { encoding: 'utf8' })) as
        { key: string[]; values: { cpu: number; value: string[] }[] }[];
      const le = (hex: string[]) => Buffer.from(hex.map((h) => parseInt(h, 16)));
      const sum = (k: number) => Number(dump.find((e) => le(e.key).readUInt32LE(0) === k)!.values
        .reduce((a, v) => a + le(v.value).readBigUInt64LE(0), 0n));
      const emitted = sum(0);
      assert.equal(sum(1), 0, 'no reserve failures');
      assert.ok(emitted > 1000, `the generator was running (${emitted} records)`);
      assert.equal(delivered + r.stats().droppedOnStop, emitted, `round ${round}: emitted = delivered + counted drops`);
    } finally {
      gen.kill();
      o.close();
      rmSync(pin, { force: true });
    }
  }
});

test('stop() and close() wake polling readers at once, whatever their poll timeout', async (t) => {
  if (!requires(t, ready(), 'root, BPF and the native addon')) return;
  const o = openSelftestFor(2 ** 31 - 1); // a pid that does not exist: the readers just poll
  try {
    o.attachAll();
    const readers = [0, 1].map(() => o.openRingBuffer('events', () => {}, { pollTimeoutMs: 2000 }));
    const lone = o.openRingBuffer('events', () => {}, { pollTimeoutMs: 2000 });
    await sleep(100); // all three are inside their 2 s wait
    let t0 = performance.now();
    await lone.stop();
    assert.ok(performance.now() - t0 < 500, `stop() took ${(performance.now() - t0).toFixed(0)} ms`);
    t0 = performance.now();
    o.close();
    const dt = performance.now() - t0;
    assert.ok(dt < 500, `close() with 2 readers polling at 2000 ms took ${dt.toFixed(0)} ms`);
    for (const r of readers) assert.equal(r.running, false);
  } finally {
    o.close();
  }
});
