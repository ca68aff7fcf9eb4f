import { OtapProducer, OtapConsumer } from './stream.ts';
import { agentTraces } from './fixtures.ts';
const mode = process.argv[2];
const data = [agentTraces(10000, 1), agentTraces(10000, 2)];
const p = new OtapProducer();
const bars = data.map(d => p.produce('traces', d));
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
for (let i = 0; i < 4; i++) { if (mode === 'enc') p.produce('traces', data[i & 1]); else { const c2 = new OtapConsumer('traces'); c2.consume(bars[0]); c2.consume(bars[1]); } }
const t0 = cpu(); let n = 0;
for (let i = 0; i < 20; i++) {
  if (mode === 'enc') p.produce('traces', data[i & 1]);
  else { const c2 = new OtapConsumer('traces'); c2.consume(bars[0]); c2.consume(bars[1]); i++; n += 10000; }
  n += 10000;
}
console.log(mode, (n / (cpu() - t0) * 1000).toFixed(0), 'spans/cpu-s');
