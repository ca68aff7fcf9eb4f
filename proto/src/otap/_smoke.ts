import { OtapProducer, OtapConsumer } from './stream.ts';
import { agentTraces } from './fixtures.ts';
import { encodeBatchArrowRecords, decodeBatchArrowRecords } from './messages.ts';
import assert from 'node:assert';
const p = new OtapProducer();
const c = new OtapConsumer('traces');
for (let b = 0; b < 3; b++) {
  const d = agentTraces(1000, b + 1);
  const bar = p.produce('traces', d);
  const bytes = encodeBatchArrowRecords(bar);
  console.log('batch', b, bytes.length, bar.arrowPayloads.map(x => `${x.type}:${x.schemaId}:${x.record.length}`).join(' '));
  const out = c.consume(decodeBatchArrowRecords(bytes));
  const norm = (t: any) => JSON.stringify(t, (k, v) => typeof v === 'bigint' ? v.toString() + 'n' : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v);
  const sortAttrs = (d: any) => { for (const rs of d.resourceSpans) { rs.resource.attributes.sort((a: any, b: any) => a.key < b.key ? -1 : 1); for (const ss of rs.scopeSpans) for (const s of ss.spans) s.attributes.sort((a: any, b: any) => a.key < b.key ? -1 : 1); } return d; };
  assert.equal(norm(sortAttrs(out.data)), norm(sortAttrs(d)));
}
console.log('ok');
