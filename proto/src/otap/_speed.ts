import { OtapProducer, OtapConsumer } from './stream.ts';
import { agentTraces } from './fixtures.ts';
const N = 10000;
const data = Array.from({ length: 8 }, (_, i) => agentTraces(N, i + 1));
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
for (const comp of ['none', 'zstd'] as const) {
  const p = new OtapProducer({ compression: comp }); const c = new OtapConsumer('traces');
  let te = 0, td = 0;
  for (let r = 0; r < 8; r++) {
    const t0 = cpu(); const bar = p.produce('traces', data[r]); const t1 = cpu();
    c.consume(bar); const t2 = cpu();
    if (r >= 3) { te += t1 - t0; td += t2 - t1; }
  }
  console.log(comp, 'encode', (5 * N / te * 1000 / 1e6).toFixed(2), 'M spans/s-cpu', 'decode', (5 * N / td * 1000 / 1e6).toFixed(2));
}
