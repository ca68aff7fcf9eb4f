// The native bridge without the kernel: parse the selftest object, configure it, query BTF,
// and refuse bad arguments with exceptions instead of crashing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requires } from '../lib/env.ts';
import { BpfObject } from '../../agent/src/bpf/object.ts';
import { BpfError } from '../../agent/src/bpf/errors.ts';
import { native, nativeAvailable, type ObjectHandle } from '../../agent/src/bpf/native.ts';
import { SELFTEST_EVENT, selftestObjectPath } from '../../agent/src/bpf/selftest.ts';

test('lists programs with section, type and autoload', (t) => {
  if (!requires(t, nativeAvailable(), 'the native addon (npm run build:native)')) return;
  const o = BpfObject.open(selftestObjectPath);
  try {
    const progs = o.programs();
    const byName = new Map(progs.map((p) => [p.name, p]));
    assert.deepEqual([...byName.keys()].sort(),
      ['bad_unchecked_lookup', 'count_sys_enter', 'emit_sys_enter', 'kprobe_getppid', 'tp_enter_getppid']);
    assert.deepEqual(byName.get('emit_sys_enter'),
      { name: 'emit_sys_enter', section: 'raw_tp/sys_enter', type: 'raw_tracepoint', autoload: true, loaded: false, attached: false });
    assert.equal(byName.get('bad_unchecked_lookup')!.autoload, false, '`?` sections start with autoload off');
    assert.equal(byName.get('kprobe_getppid')!.type, 'kprobe');
    o.setAutoload('count_sys_enter', true);
    assert.equal(o.programs().find((p) => p.name === 'count_sys_enter')!.autoload, true);
  } finally {
    o.close();
  }
});

test('lists maps with type, sizes and max entries; max entries can be changed before load', (t) => {
  if (!requires(t, nativeAvailable(), 'the native addon')) return;
  const o = BpfObject.open(selftestObjectPath);
  try {
    const maps = new Map(o.maps().map((m) => [m.name, m]));
    assert.deepEqual(maps.get('events'), { name: 'events', type: 'ringbuf', keySize: 0, valueSize: 0, maxEntries: 1 << 22, internal: false });
    assert.deepEqual(maps.get('stats'), { name: 'stats', type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: 2, internal: false });
    assert.equal(maps.get('tid_hits')!.type, 'hash');
    assert.ok([...maps.values()].some((m) => m.internal && m.name.endsWith('.rodata')));
    o.setMaxEntries('events', 1 << 16);
    assert.equal(o.maps().find((m) => m.name === 'events')!.maxEntries, 1 << 16);
    assert.throws(() => o.setMaxEntries('events', 0), RangeError);
    assert.throws(() => o.setMaxEntries('nope', 4), (e: BpfError) => e.code === 'BPF_NOT_FOUND');
  } finally {
    o.close();
  }
});

test('writes const volatile globals by BTF name, bounds-checked', (t) => {
  if (!requires(t, nativeAvailable(), 'the native addon')) return;
  const o = BpfObject.open(selftestObjectPath);
  try {
    const g = new Map(o.globals().map((v) => [v.name, v]));
    assert.deepEqual(g.get('targ_tgid'), { name: 'targ_tgid', section: '.rodata', offset: 0, size: 4 });
    assert.deepEqual(g.get('cookie'), { name: 'cookie', section: '.rodata', offset: 24, size: 8 });
    o.setGlobal('targ_tgid', 0x01020304);
    o.setGlobal('targ_syscall', -2);
    o.setGlobal('cookie', 0xfedcba9876543210n);
    o.setGlobal('track_tids', true);
    o.setGlobal('wake_every', Buffer.from([7, 0, 0, 0]));
    assert.deepEqual([...o.getGlobal('targ_tgid')], [4, 3, 2, 1]);
    assert.equal(o.getGlobal('targ_syscall').readBigInt64LE(), -2n);
    assert.equal(o.getGlobal('cookie').readBigUInt64LE(), 0xfedcba9876543210n);
    assert.deepEqual([...o.getGlobal('track_tids')], [1]);
    assert.equal(o.getGlobal('wake_every').readUInt32LE(), 7);
    // neighbours untouched
    assert.equal(o.getGlobal('targ_tgid').readUInt32LE(), 0x01020304);
    assert.throws(() => o.setGlobal('targ_tgid', Buffer.alloc(8)), RangeError, 'wrong byte size');
    assert.throws(() => o.setGlobal('targ_tgid', 2 ** 32), RangeError, 'does not fit in u32');
    assert.throws(() => o.setGlobal('track_tids', 1.5), RangeError);
    assert.throws(() => o.setGlobal('no_such_var', 1), (e: BpfError) => e.code === 'BPF_NOT_FOUND');
  } finally {
    o.close();
  }
});

test('btfStruct describes the record so decoders can check their layout', (t) => {
  if (!requires(t, nativeAvailable(), 'the native addon')) return;
  const o = BpfObject.open(selftestObjectPath);
  try {
    const s = o.btfStruct('selftest_event');
    assert.ok(s);
    assert.equal(s.size, SELFTEST_EVENT.size);
    assert.equal(s.kind, 'struct');
    const off = Object.fromEntries(s.members.map((m) => [m.name, m.offsetBits / 8]));
    for (const k of ['ts_ns', 'tgid', 'tid', 'seq', 'syscall_nr', 'comm', 'cookie', 'cpu'] as const) {
      assert.equal(off[k], SELFTEST_EVENT[k], `offset of ${k}`);
    }
    assert.equal(s.members.find((m) => m.name === 'comm')!.sizeBits, 128);
    assert.equal(s.members.find((m) => m.name === 'tgid')!.sizeBits, 32);
    assert.equal(o.btfStruct('no_such_struct'), null);
  } finally {
    o.close();
  }
});

test('bad arguments throw; nothing crashes', (t) => {
  if (!requires(t, nativeAvailable(), 'the native addon')) return;
  const n = native();
  assert.throws(() => BpfObject.open('/nonexistent/x.bpf.o'), (e: BpfError) => e.code === 'BPF_ERRNO' && e.errno === 2);
  assert.throws(() => BpfObject.open(__filename_or(import.meta.url)), (e: BpfError) => e.code === 'BPF_ERRNO', 'not an ELF file');
  assert.throws(() => BpfObject.open(''), TypeError);
  assert.throws(() => n.open(42 as unknown as string), TypeError);
  assert.throws(() => n.open('x'.repeat(10_000)), RangeError);
  assert.throws(() => n.programs({} as ObjectHandle), TypeError);
  assert.throws(() => n.programs(undefined as unknown as ObjectHandle), TypeError);
  assert.throws(() => (n.close as (h?: unknown) => void)(), TypeError);
  const o = BpfObject.open(selftestObjectPath);
  const h = n.open(selftestObjectPath);
  try {
    assert.throws(() => n.setGlobal(h, 'targ_tgid', 'abcd' as unknown as Uint8Array), TypeError);
    assert.throws(() => n.setAutoload(h, 'emit_sys_enter', 'yes' as unknown as boolean), TypeError);
    assert.throws(() => n.setMaxEntries(h, 'events', -1), RangeError);
    assert.throws(() => n.setMaxEntries(h, 'events', 1.5), RangeError);
    assert.throws(() => n.openRingBuffer(h, 'events', 'nope' as unknown as () => void, 1 << 20, 4, 10), TypeError);
    assert.throws(() => n.readerStats(h as never), TypeError, 'an object handle is not a reader handle');
    assert.throws(() => n.btfStruct(h, 7 as unknown as string), TypeError);
    assert.throws(() => o.attach('emit_sys_enter'), (e: BpfError) => e.code === 'BPF_STATE', 'attach before load');
    assert.throws(() => o.mapLookup('stats', 0), (e: BpfError) => e.code === 'BPF_STATE', 'lookup before load');
    assert.throws(() => o.openRingBuffer('events', () => {}), (e: BpfError) => e.code === 'BPF_STATE', 'ring before load');
    assert.throws(() => o.attach('no_such_prog'), (e: BpfError) => e.code === 'BPF_NOT_FOUND');
    assert.throws(() => o.mapLookup('stats', -1), RangeError);
  } finally {
    n.close(h);
    o.close();
  }
});

test('close is idempotent and later calls fail cleanly', (t) => {
  if (!requires(t, nativeAvailable(), 'the native addon')) return;
  const o = BpfObject.open(selftestObjectPath);
  o.close();
  o.close();
  assert.equal(o.closed, true);
  assert.throws(() => o.programs(), (e: BpfError) => e.code === 'BPF_CLOSED');
  const n = native();
  const h = n.open(selftestObjectPath);
  n.close(h);
  n.close(h);
  assert.throws(() => n.maps(h), (e: Error & { code?: string }) => e.code === 'BPF_CLOSED');
});

function __filename_or(url: string): string {
  return new URL(url).pathname;
}

test('every native function survives junk arguments (throws or returns, never crashes)', (t) => {
  if (!requires(t, nativeAvailable(), 'the native addon')) return;
  const n = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
  const h = native().open(selftestObjectPath);
  // as root the junk may load this object: keep every program out of the kernel
  native().setAutoload(h, 'emit_sys_enter', false);
  const closed = native().open(selftestObjectPath);
  native().close(closed);
  const junk: unknown[] = [undefined, null, 0, -1, 2 ** 53, NaN, Infinity, 1.5, '', 'events', 'x'.repeat(5000), {}, [],
    Buffer.alloc(0), Buffer.alloc(4), new Uint16Array(2), new ArrayBuffer(8), () => {}, Symbol('s'), 10n, true, h, closed];
  const fns = Object.keys(n).filter((k) => typeof n[k] === 'function' && k !== 'close');
  let calls = 0;
  try {
    for (const name of fns) {
      for (const a of junk) {
        for (const b of [undefined, 'events', 'emit_sys_enter', 'targ_tgid', 'selftest_event', a]) {
          for (const c of [undefined, a, Buffer.alloc(4), 4096]) {
            calls++;
            try {
              n[name]!(a, b, c, 4, 10, 10);
            } catch (e) {
              assert.ok(e instanceof Error, `${name} threw a non-Error`);
            }
          }
        }
      }
    }
  } finally {
    native().close(h);
  }
  assert.ok(calls > 1000);
  // still healthy afterwards
  const o = BpfObject.open(selftestObjectPath);
  assert.equal(o.programs().length, 5);
  o.close();
});
