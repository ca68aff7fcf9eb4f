// OTLP codec benchmark: 10k agent-shaped spans (~10 attributes, k8s resource) on one core.
// Encode and decode spans/s for our codec vs protobufjs reflection (of our own .proto files) and vs
// the OTel JS SDK serializer (@opentelemetry/otlp-transformer), measured interleaved so machine noise
// hits all sides alike; then payload bytes raw and with zstd-1/3 at batch 100/1000/10000.
// Run: npx tsx tests/bench/otlp-codec.bench.ts
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { decodeTraces, encodeTraces } from '../../proto/src/otlp/index.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';
import { zstdCompress } from '../../proto/src/zstd.ts';
import type { AnyValue, TracesData } from '../../proto/src/model.ts';
import { modelToPb, requestType } from '../unit/otlp-helpers.ts';

const N = 10_000;
const ROUNDS = Number(process.env.ROUNDS ?? 9);
const data = agentTraces(N);

// ReadableSpan-shaped objects for the SDK serializer (what an SDK exporter holds).
function sdkSpans(d: TracesData) {
  const rs = d.resourceSpans[0];
  const toJs = (v: AnyValue) => (typeof v === 'bigint' ? Number(v) : v);
  const resource = { attributes: Object.fromEntries(rs.resource.attributes.map((a) => [a.key, toJs(a.value)])) };
  const scope = { name: rs.scopeSpans[0].scope.name, version: rs.scopeSpans[0].scope.version, schemaUrl: rs.scopeSpans[0].schemaUrl };
  const hr = (ns: bigint): [number, number] => [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
  return rs.scopeSpans[0].spans.map((s) => {
    const ctx = { traceId: Buffer.from(s.traceId).toString('hex'), spanId: Buffer.from(s.spanId).toString('hex'), traceFlags: 1 };
    return {
      spanContext: () => ctx,
      parentSpanContext: undefined,
      name: s.name,
      kind: s.kind - 1,
      startTime: hr(s.startTimeUnixNano),
      endTime: hr(s.endTimeUnixNano),
      attributes: Object.fromEntries(s.attributes.map((a) => [a.key, toJs(a.value)])),
      droppedAttributesCount: 0,
      events: [],
      links: [],
      droppedEventsCount: 0,
      droppedLinksCount: 0,
      status: s.status,
      resource,
      instrumentationScope: scope,
      duration: [0, 0],
      ended: true,
    };
  });
}

const T = requestType('traces');
const pbMessage = T.fromObject(modelToPb('traces', data));
const ours = encodeTraces(data);
const sdk = sdkSpans(data);

// Sanity: all three produce the same message.
const pbBytes = T.encode(pbMessage).finish();
const sdkBytes = ProtobufTraceSerializer.serializeRequest(sdk as never)!;
if (decodeTraces(pbBytes).resourceSpans[0].scopeSpans[0].spans.length !== N) throw new Error('protobufjs bytes do not decode');
if (decodeTraces(sdkBytes).resourceSpans[0].scopeSpans[0].spans.length !== N) throw new Error('SDK bytes do not decode');

type Op = { name: string; run: () => unknown };
const ops: Op[] = [
  { name: 'encode: ours (model → bytes)', run: () => encodeTraces(data) },
  { name: 'encode: protobufjs reflection (message → bytes)', run: () => T.encode(pbMessage).finish() },
  { name: 'encode: otlp-transformer ProtobufTraceSerializer', run: () => ProtobufTraceSerializer.serializeRequest(sdk as never) },
  { name: 'decode: ours (bytes → model)', run: () => decodeTraces(ours) },
  { name: 'decode: protobufjs reflection (bytes → message)', run: () => T.decode(ours) },
];

for (const op of ops) for (let i = 0; i < 3; i++) op.run(); // warm up / JIT
// Wall time and this process's CPU time per run: the machine is shared, so wall time includes
// waiting for a core; CPU time is the closer estimate of single-core cost (both are printed).
const wall = ops.map(() => [] as number[]);
const cpu = ops.map(() => [] as number[]);
for (let r = 0; r < ROUNDS; r++) {
  ops.forEach((op, i) => {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    op.run();
    const c = process.cpuUsage(c0);
    wall[i].push(Number(process.hrtime.bigint() - t0) / 1e6);
    cpu[i].push((c.user + c.system) / 1000);
  });
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const wallMs = wall.map(median);
const cpuMs = cpu.map(median);
const k = (ms: number) => `${((N / ms) * 1000 / 1000).toFixed(0)} k`;
console.log(`OTLP codec, ${N} spans × 10 attributes, ${ours.length} bytes (${(ours.length / N).toFixed(0)} B/span); medians of ${ROUNDS} interleaved rounds; load average ${(await import('node:os')).loadavg()[0].toFixed(1)}`);
console.log('| operation | CPU ms | spans/s (CPU) | wall ms | spans/s (wall) | CPU time vs ours |');
console.log('|---|---|---|---|---|---|');
ops.forEach((op, i) => {
  const anchor = op.name.startsWith('encode') ? cpuMs[0] : cpuMs[3];
  console.log(`| ${op.name} | ${cpuMs[i].toFixed(1)} | ${k(cpuMs[i])} | ${wallMs[i].toFixed(1)} | ${k(wallMs[i])} | ${(cpuMs[i] / anchor).toFixed(2)}× |`);
});
console.log(`ours vs protobufjs: encode ${(cpuMs[1] / cpuMs[0]).toFixed(1)}× faster, decode ${(cpuMs[4] / cpuMs[3]).toFixed(1)}× faster; vs SDK serializer: encode ${(cpuMs[2] / cpuMs[0]).toFixed(1)}× faster (CPU time)`);
console.log(`goals per core: encode ≥ 1000 k spans/s → ${k(cpuMs[0])}; decode ≥ 500 k spans/s → ${k(cpuMs[3])} (CPU time)`);

console.log('\n| batch | OTLP raw B | B/span | zstd-1 B | B/span | zstd-3 B | B/span |');
console.log('|---|---|---|---|---|---|---|');
for (const batch of [100, 1000, 10_000]) {
  const raw = encodeTraces(agentTraces(batch, 7));
  const z1 = await zstdCompress(raw, 1);
  const z3 = await zstdCompress(raw, 3);
  const per = (b: number) => (b / batch).toFixed(0);
  console.log(`| ${batch} | ${raw.length} | ${per(raw.length)} | ${z1.length} | ${per(z1.length)} | ${z3.length} | ${per(z3.length)} |`);
}
