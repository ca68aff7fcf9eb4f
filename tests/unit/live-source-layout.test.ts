// LiveSource checks each probe's record layouts against the object's BTF before loading it: an
// object that disagrees with the decoder's tables is refused with an error naming the struct and
// the field (needs the native addon, not root: the check runs before any kernel work).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { requires } from '../lib/env.ts';
import { LayoutMismatchError, PROBE_LAYOUTS, TCP_EVENT, EVENT_HEADER, type StructLayout } from '../../agent/src/decode/index.ts';
import { knownProbes } from '../../agent/src/sources/probes.ts';

const addon = fileURLToPath(new URL('../../agent/native/build/Release/bpf_bridge.node', import.meta.url));

/** TCP_EVENT with `dport` moved by two bytes, as if the C struct had changed without the decoder. */
const movedDport: StructLayout = {
  ...TCP_EVENT,
  fields: { ...TCP_EVENT.fields, dport: { offset: TCP_EVENT.fields.dport.offset + 2, size: 2 } },
};

test('expected layouts: the decoder tables for kernel-events probes, nothing for others, overrides win', async () => {
  const { expectedLayouts } = await import('../../agent/src/sources/live.ts');
  assert.deepEqual(expectedLayouts(knownProbes.tcp!), PROBE_LAYOUTS.tcp);
  assert.deepEqual(expectedLayouts(knownProbes.proc!), PROBE_LAYOUTS.proc);
  assert.deepEqual(expectedLayouts(knownProbes.selftest!), []);
  assert.deepEqual(expectedLayouts({ ...knownProbes.tcp!, name: 'tcp2' }), [EVENT_HEADER], 'an unknown kernel-events probe has the header at least');
  assert.deepEqual(expectedLayouts(knownProbes.tcp!, { tcp: [movedDport] }), [movedDport]);
});

test('LiveSource refuses a probe whose BTF disagrees with the decoder, naming struct and field', async (t) => {
  if (!requires(t, existsSync(addon), 'native addon built (npm run build:native)')) return;
  const { LiveSource } = await import('../../agent/src/sources/live.ts');
  assert.throws(() => new LiveSource([knownProbes.tcp!], { layouts: { tcp: [EVENT_HEADER, movedDport] } }), (e: unknown) => {
    assert.ok(e instanceof LayoutMismatchError, String(e));
    assert.equal(e.struct, 'ks_tcp_event');
    assert.equal(e.field, 'dport');
    assert.match(e.message, /event layout mismatch in struct ks_tcp_event field dport: offset is 96 in BTF, decoder expects 98/);
    const all = (e as { probeFailures?: { probe: string; message: string }[] }).probeFailures;
    assert.equal(all?.length, 1);
    assert.equal(all![0]!.probe, 'tcp');
    assert.match(all![0]!.message, /^probe tcp: event layout mismatch in struct ks_tcp_event field dport/);
    return true;
  });
  // a struct the object does not carry at all
  const ghost: StructLayout = { name: 'ks_no_such_event', size: 8, fields: { a: { offset: 0, size: 8 } } };
  assert.throws(() => new LiveSource([knownProbes.proc!], { layouts: { proc: [ghost] } }),
    /struct ks_no_such_event: struct not found in the object BTF/);
});
