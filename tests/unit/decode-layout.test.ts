// Layout check against BTF: the checker itself (on doubles), then the decoder's tables against the
// committed prebuilt objects (needs the native addon, not root: opening parses the ELF only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  verifyLayout, verifyProbeLayouts, LayoutMismatchError, TCP_EVENT, EVENT_HEADER, PROBE_LAYOUTS,
  type BtfStructInfo,
} from '../../agent/src/decode/index.ts';
import { requires } from '../lib/env.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const addon = `${root}agent/native/build/Release/bpf_bridge.node`;

function btfOf(layout: typeof TCP_EVENT | typeof EVENT_HEADER): BtfStructInfo {
  return {
    size: layout.size,
    members: Object.entries(layout.fields).map(([name, f]) => ({ name, offsetBits: f.offset * 8, sizeBits: f.size * 8 })),
  };
}

test('a matching BTF struct passes', () => {
  verifyLayout(TCP_EVENT, btfOf(TCP_EVENT));
  verifyLayout(EVENT_HEADER, btfOf(EVENT_HEADER));
});

test('mismatches name the struct and the field', () => {
  const moved = btfOf(TCP_EVENT);
  moved.members = moved.members.map((m) => (m.name === 'dport' ? { ...m, offsetBits: m.offsetBits + 16 } : m));
  assert.throws(() => verifyLayout(TCP_EVENT, moved), (e: unknown) =>
    e instanceof LayoutMismatchError && e.code === 'LAYOUT_MISMATCH' && e.struct === 'ks_tcp_event' && e.field === 'dport' &&
    /offset is 98 in BTF, decoder expects 96/.test(e.message));

  const resized = btfOf(TCP_EVENT);
  resized.members = resized.members.map((m) => (m.name === 'srtt_us' ? { ...m, sizeBits: 64 } : m));
  assert.throws(() => verifyLayout(TCP_EVENT, resized), /field srtt_us: size is 8/);

  const extra = btfOf(TCP_EVENT);
  extra.members = [...extra.members, { name: 'new_field', offsetBits: 136 * 8, sizeBits: 32 }];
  assert.throws(() => verifyLayout(TCP_EVENT, extra), /field new_field: member present in BTF but unknown/);

  const missing = btfOf(TCP_EVENT);
  missing.members = missing.members.filter((m) => m.name !== 'error');
  assert.throws(() => verifyLayout(TCP_EVENT, missing), /field error: member expected by the decoder is missing/);

  assert.throws(() => verifyLayout(TCP_EVENT, { ...btfOf(TCP_EVENT), size: 144 }), /ks_tcp_event: size is 144 bytes/);
  assert.throws(() => verifyLayout(TCP_EVENT, null), /ks_tcp_event: struct not found/);
});

for (const probe of Object.keys(PROBE_LAYOUTS) as (keyof typeof PROBE_LAYOUTS)[]) {
  test(`decoder layouts match the BTF of the prebuilt bpf/${probe}/${probe}.bpf.o`, async (t) => {
    if (!requires(t, existsSync(addon), 'native addon built (npm run build:native)')) return;
    const { BpfObject } = await import('../../agent/src/bpf/object.ts');
    const obj = BpfObject.open(`${root}bpf/${probe}/${probe}.bpf.o`);
    try {
      verifyProbeLayouts(probe, obj);
      // The check is not vacuous: the object really carries the structs.
      for (const l of PROBE_LAYOUTS[probe]) assert.equal(obj.btfStruct(l.name)?.size, l.size);
    } finally {
      obj.close();
    }
  });
}
