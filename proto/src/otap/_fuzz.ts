import { OtapConsumer, OtapProducer } from './stream.ts';
import { agentTraces, rng } from './fixtures.ts';
import { writeFileSync } from 'node:fs';
const r = rng(20261122);
const p = new OtapProducer();
const b1 = p.produce('traces', agentTraces(40, 7));
const b2 = p.produce('traces', agentTraces(40, 8));
for (let it = 0; it < 20000; it++) {
  const c = new OtapConsumer('traces', { maxBatchBytes: 8 << 20, maxDictionaryEntries: 1 << 16 });
  const second = r() < 0.5;
  if (second) c.consume(b1);
  const base = second ? b2 : b1;
  const pi = (r() * base.arrowPayloads.length) | 0;
  const rec = Uint8Array.from(base.arrowPayloads[pi].record);
  const kind = r();
  let mutated: Uint8Array;
  if (kind < 0.6) { const flips = 1 + ((r() * 8) | 0); for (let f = 0; f < flips; f++) rec[(r() * rec.length) | 0] ^= 1 << ((r() * 8) | 0); mutated = rec; }
  else if (kind < 0.8) mutated = rec.subarray(0, (r() * rec.length) | 0);
  else { const at = (r() * rec.length) | 0; const junk = Uint8Array.from({ length: 1 + ((r() * 16) | 0) }, () => (r() * 256) | 0); mutated = new Uint8Array(rec.length + junk.length); mutated.set(rec.subarray(0, at)); mutated.set(junk, at); mutated.set(rec.subarray(at), at + junk.length); }
  writeFileSync('/tmp/kscope-otap-fuzzcase.bin', mutated); writeFileSync('/tmp/kscope-otap-fuzzcase.txt', `${it} ${second} ${pi}`);
  const t0 = Date.now();
  try { c.consume({ ...base, arrowPayloads: base.arrowPayloads.map((x, j) => j === pi ? { ...x, record: mutated } : x) }); } catch (e) { if (!(e as any).resourceExhausted && !(e as Error).message) console.log(e); }
  if (Date.now() - t0 > 200) console.log('slow', it, Date.now() - t0);
}
console.log('done');
