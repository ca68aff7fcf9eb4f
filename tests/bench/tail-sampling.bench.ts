// Tail sampling hot path: spans/s per core at 10k and 100k live traces (decision_wait 1 s, driven
// by a virtual clock so "live traces" is exact), and memory per buffered span vs its OTLP wire size.
// Spans come from the real OTLP decoder (encode → decode), as the receiver would hand them over.
// Run: npx tsx tests/bench/tail-sampling.bench.ts [--quick]
import v8 from 'node:v8';
import vm from 'node:vm';
import os from 'node:os';
import { validateConfig } from '../../collector/src/processors/tail_sampling/config.ts';
import { TailSamplingProcessor } from '../../collector/src/processors/tail_sampling/processor.ts';
import { realisticSpan, resourceSpans, tid } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import { encodeTraces } from '../../proto/src/otlp/encode.ts';
import { decodeTraces } from '../../proto/src/otlp/decode.ts';
import type { TracesData } from '../../proto/src/model.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const quick = process.argv.includes('--quick');

const SPANS_PER_TRACE = 5;
const TRACES_PER_BATCH = 20; // 100 spans per batch
const GOAL = 100_000; // spans/s per core at 10k live traces (project goal)
// Anchor: otelcol core docs/performance.md (v0.1.3): ≈9k spans/s on 1 CPU with tail sampling.
const ANCHOR = 9_000;

const policies = [
  { name: 'one-percent', type: 'probabilistic', probabilistic: { sampling_percentage: 1 } },
  { name: 'errors', type: 'status_code', status_code: { status_codes: ['ERROR'] } },
  { name: 'slow', type: 'latency', latency: { threshold_ms: 500 } },
  { name: 'drop-health', type: 'drop', drop: { drop_sub_policy: [{ name: 'h', type: 'string_attribute', string_attribute: { key: 'http.route', values: ['/healthz'] } }] } },
];

const sink = { spans: 0, async consume(b: TracesData) { for (const rs of b.resourceSpans) for (const ss of rs.scopeSpans) this.spans += ss.spans.length; } };

/** Batch b: span s of every trace that started s*gap batches earlier (spans of a trace spread over ~0.15 s). */
function makeBatch(b: number, gap: number): TracesData {
  const spans = [];
  for (let s = 0; s < SPANS_PER_TRACE; s++) {
    const start = b - s * gap;
    if (start < 0) continue;
    for (let k = 0; k < TRACES_PER_BATCH; k++) {
      const t = start * TRACES_PER_BATCH + k;
      spans.push(realisticSpan(tid(t, 0x5eed), t * SPANS_PER_TRACE + s));
    }
  }
  // Through the real codec so the objects look exactly like a receiver's.
  return decodeTraces(encodeTraces({ resourceSpans: [resourceSpans(spans, { 'service.name': 'orders', 'k8s.namespace.name': 'shop' })] }));
}

type Storage = 'objects' | 'encoded';

function throughput(storage: Storage, live: number, measureSpans: number): { spansPerSec: number; wallPerSec: number; liveAvg: number; sampled: number } {
  const cfg = validateConfig({ decision_wait: '1s', num_traces: live * 2, max_buffered_bytes: '8GiB', span_storage: storage, policies }, 'bench');
  let now = 0;
  const p = new TailSamplingProcessor(cfg, sink, undefined, { now: () => now, autoTick: false });
  const dt = (TRACES_PER_BATCH / live) * 1000; // ms of virtual time per batch: `live` new traces per second
  const gap = Math.max(1, Math.floor(150 / dt));
  const warm = Math.ceil((1500 / dt));
  const total = warm + Math.ceil(measureSpans / (SPANS_PER_TRACE * TRACES_PER_BATCH));
  let spent = 0, wall = 0, spans = 0, nextTick = 100, liveSum = 0, liveN = 0;
  const sampled0 = () => p.metrics().tracesSampled;
  let s0 = 0;
  for (let b = 0; b < total; b++) {
    const batch = makeBatch(b, gap);
    const measuring = b >= warm;
    if (b === warm) s0 = sampled0();
    // CPU time, not wall: the machine is shared and wall time includes being descheduled.
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    void p.consume(batch, {});
    now += dt;
    while (now >= nextTick) { p.tick(now); nextTick += 100; }
    const t1 = performance.now();
    const c1 = process.cpuUsage(c0);
    if (measuring) {
      spent += (c1.user + c1.system) / 1000;
      wall += t1 - t0;
      for (const rs of batch.resourceSpans) for (const ss of rs.scopeSpans) spans += ss.spans.length;
      if (b % 50 === 0) { liveSum += p.metrics().liveTraces; liveN++; }
    }
  }
  const sampled = sampled0() - s0;
  void p.shutdown();
  return { spansPerSec: spans / (spent / 1000), wallPerSec: spans / (wall / 1000), liveAvg: liveSum / liveN, sampled };
}

function memory(storage: Storage, nTraces: number): { heapPerSpan: number; wirePerSpan: number; accountedPerSpan: number; accountedWirePerSpan: number } {
  const cfg = validateConfig({ decision_wait: '1h', num_traces: nTraces * 2, max_buffered_bytes: '8GiB', span_storage: storage, policies }, 'bench');
  const p = new TailSamplingProcessor(cfg, sink, undefined, { now: () => 0, autoTick: false });
  let wire = 0, n = 0;
  const batches: Uint8Array[] = [];
  for (let t = 0; t < nTraces; t += TRACES_PER_BATCH) {
    const spans = [];
    for (let k = 0; k < TRACES_PER_BATCH; k++) for (let s = 0; s < SPANS_PER_TRACE; s++) spans.push(realisticSpan(tid(t + k, 0xfeed), (t + k) * SPANS_PER_TRACE + s));
    const bytes = encodeTraces({ resourceSpans: [resourceSpans(spans, { 'service.name': 'orders', 'k8s.namespace.name': 'shop' })] });
    wire += bytes.length;
    n += spans.length;
    batches.push(bytes);
  }
  gc(); gc();
  const before = process.memoryUsage();
  for (let i = 0; i < batches.length; i++) { void p.consume(decodeTraces(batches[i]), {}); }
  gc(); gc();
  const after = process.memoryUsage();
  // The encoded requests stay alive across both snapshots so only what buffering holds is counted;
  // ArrayBuffers (id slabs) live outside the V8 heap: count both.
  const delta = (after.heapUsed - before.heapUsed) + (after.arrayBuffers - before.arrayBuffers);
  if (batches.length === 0) throw new Error('unreachable');
  const m = p.metrics();
  if (m.bufferedSpans !== n) throw new Error(`expected ${n} buffered spans, got ${m.bufferedSpans}`);
  void p.shutdown();
  return { heapPerSpan: delta / n, wirePerSpan: wire / n, accountedPerSpan: m.bufferedHeapBytes / n, accountedWirePerSpan: m.bufferedWireBytes / n };
}

const runs = quick ? 1 : 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const storageArg = process.argv.find((a) => a.startsWith('--storage='))?.slice(10);
const storages: Storage[] = storageArg === 'objects' || storageArg === 'encoded' ? [storageArg] : ['objects', 'encoded'];
for (const storage of storages) {
  for (const live of [10_000, 100_000]) {
    const rs: number[] = [], ws: number[] = [];
    let last!: ReturnType<typeof throughput>;
    for (let r = 0; r < runs; r++) { last = throughput(storage, live, quick ? 200_000 : 300_000); rs.push(last.spansPerSec); ws.push(last.wallPerSec); gc(); }
    const v = median(rs);
    console.log(`tail_sampling [${storage}] ${live / 1000}k live traces (avg ${Math.round(last.liveAvg)}): ${Math.round(v).toLocaleString('en')} spans/s per core (CPU time; ` +
      `runs ${rs.map((x) => Math.round(x / 1000) + 'k').join(', ')}) — ${(v / GOAL).toFixed(2)}× goal ${GOAL / 1000}k, ${(v / ANCHOR).toFixed(1)}× anchor ${ANCHOR / 1000}k; ` +
      `sampled ${last.sampled} traces; wall-clock ${Math.round(median(ws) / 1000)}k spans/s (load ${os.loadavg()[0].toFixed(1)})`);
  }
  const mem = memory(storage, quick ? 10_000 : 20_000);
  console.log(`tail_sampling [${storage}] memory per buffered span: ${Math.round(mem.heapPerSpan)} B held (heap + ArrayBuffers, measured) vs ${Math.round(mem.wirePerSpan)} B OTLP wire → ` +
    `${(mem.heapPerSpan / mem.wirePerSpan).toFixed(2)}× wire (goal ≤ 2×); accounted ${Math.round(mem.accountedPerSpan)} B (${(mem.accountedPerSpan / mem.heapPerSpan).toFixed(2)}× measured)`);
}
