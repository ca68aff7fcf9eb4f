import { OtapProducer } from './stream.ts';
import { agentTraces } from './fixtures.ts';
import { encodeBatchArrowRecords } from './messages.ts';
import { encodeTraces } from '../otlp/index.ts';
import { zstdCompressSync } from './zstd-sync.ts';
const N = +(process.argv[2] ?? 1000);
const p = new OtapProducer(); const pn = new OtapProducer({ compression: 'none' });
let a = 0, b = 0, c = 0, d = 0, e = 0; const B = 5;
const per: Record<string, number> = {};
for (let i = 0; i < B; i++) {
  const t = agentTraces(N, i + 10);
  const otlp = encodeTraces(t); a += otlp.length; b += zstdCompressSync(otlp, 3).length;
  const bar = p.produce('traces', t); c += encodeBatchArrowRecords(bar).length;
  for (const x of bar.arrowPayloads) per[x.type] = (per[x.type] ?? 0) + x.record.length;
  const raw = encodeBatchArrowRecords(pn.produce('traces', t)); d += raw.length; e += zstdCompressSync(raw, 3).length;
}
const f = (x: number) => (x / B / N).toFixed(1);
console.log(`B/span: otlp ${f(a)} otlp+zstd ${f(b)} otap+zstd ${f(c)} otap-raw ${f(d)} otap-raw+zstd-whole ${f(e)} ratio ${(c / b).toFixed(3)}`);
console.log(Object.fromEntries(Object.entries(per).map(([k, v]) => [k, f(v)])));
