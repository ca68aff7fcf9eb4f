// Fixture writer/reader round trip with synthetic batches (no kernel needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FixtureReader, FixtureWriter, type FixtureHeader } from './fixture.ts';
import { ReplaySource } from './replay.ts';
import { forEachRecord } from './types.ts';

function pack(records: Uint8Array[]): { buf: ArrayBuffer; len: number } {
  const len = records.reduce((n, r) => n + 8 + ((r.length + 7) & ~7), 0);
  const buf = new ArrayBuffer(len);
  const v = new DataView(buf);
  let off = 0;
  for (const r of records) {
    v.setUint32(off, r.length, true);
    new Uint8Array(buf, off + 8, r.length).set(r);
    off += 8 + ((r.length + 7) & ~7);
  }
  return { buf, len };
}

const header = (): FixtureHeader => ({
  format: 'kscope-fixture', version: 1, createdAt: new Date(0).toISOString(), kernelRelease: 'test', arch: 'x64',
  hostname: 'h', clock: { monotonicNs: '10', realtimeNs: '110', realtimeMinusMonotonicNs: '100' },
  startMonotonicNs: '0', endMonotonicNs: '5', records: 0, batches: 0, cgroups: [{ id: '1', path: '/' }], processes: [],
  probes: [
    { id: 0, name: 'a', object: 'a.o', sha256: 'x', ringMap: 'events', globals: {}, layout: { struct: 's', size: 5, typeOffset: 0, typeSize: 1 } },
    { id: 1, name: 'b', object: 'b.o', sha256: 'y', ringMap: 'events', globals: {} },
  ],
});

test('frames written are read back in order, with probe ids, times and exact bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-fx-'));
  try {
    const path = join(dir, 'f.kfx');
    // a small chunk forces both the buffered and the direct write path
    const w = new FixtureWriter(path, 64);
    const b1 = pack([Uint8Array.of(1, 2, 3, 4, 5), Uint8Array.of(2, 9)]);
    const b2 = pack([new Uint8Array(100).fill(7)]);
    const b3 = pack([Uint8Array.of(1)]);
    w.writeBatch(0, b1.buf, b1.len, 2, 1000n);
    w.writeBatch(1, b2.buf, b2.len, 1, 2000n);
    w.writeBatch(0, b3.buf, b3.len, 1, 3000n);
    w.finish(header(), 4000n);
    assert.ok(!existsSync(`${path}.body.partial`));
    assert.equal(readFileSync(path).subarray(0, 8).toString('latin1'), 'KSCOPEFX');

    const r = new FixtureReader(path);
    assert.equal(r.header.records, 4);
    assert.equal(r.header.batches, 3);
    const got: [number, number, bigint, string][] = [];
    for (let f = r.next(); f; f = r.next()) {
      got.push([f.probeId, f.count, f.monoNs, Buffer.from(f.buf, 0, f.byteLength).toString('hex')]);
    }
    assert.equal(r.endRecords, 4);
    assert.equal(r.endMonoNs, 4000n);
    r.close();
    assert.deepEqual(got, [
      [0, 2, 1000n, Buffer.from(b1.buf).toString('hex')],
      [1, 1, 2000n, Buffer.from(b2.buf).toString('hex')],
      [0, 1, 3000n, Buffer.from(b3.buf).toString('hex')],
    ]);

    // the replay source walks the same frames with probe metadata attached
    const seen: string[] = [];
    const src = new ReplaySource(path);
    await src.start((buf, byteLength, count, probe) => {
      forEachRecord(new DataView(buf), byteLength, count, (off, len) => {
        seen.push(`${probe.name}:${len}:${new Uint8Array(buf, off, 1)[0]}:${probe.layout?.struct ?? '-'}`);
      });
    });
    assert.deepEqual(seen, ['a:5:1:s', 'a:2:2:s', 'b:100:7:-', 'a:1:1:s']);
    assert.deepEqual(src.stats, { batches: 3, records: 4, handlerErrors: 0 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a throwing replay handler is counted and replay goes on', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-fx-'));
  try {
    const path = join(dir, 'f.kfx');
    const w = new FixtureWriter(path);
    const b = pack([Uint8Array.of(1)]);
    for (let i = 0; i < 5; i++) w.writeBatch(0, b.buf, b.len, 1, BigInt(i));
    w.finish(header(), 9n);
    const errors: unknown[] = [];
    const src = new ReplaySource(path, { onError: (e) => errors.push(e) });
    await src.start(() => { throw new Error('x'); });
    assert.equal(src.stats.handlerErrors, 5);
    assert.equal(errors.length, 5);
    assert.equal(src.stats.records, 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('abort removes the partial body', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-fx-'));
  try {
    const path = join(dir, 'f.kfx');
    const w = new FixtureWriter(path);
    w.abort();
    assert.ok(!existsSync(`${path}.body.partial`));
    assert.ok(!existsSync(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
