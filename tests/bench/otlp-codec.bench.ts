// OTLP codec benchmark: 10k agent-shaped spans (~10 attributes, k8s resource) on one core.
// Encode and decode spans/s for our codec vs protobufjs reflection (of our own .proto files) and vs
// the OTel JS SDK serializer (@opentelemetry/otlp-transformer). Each operation runs in a child
// process of its own that holds only its own data, so it pays for its own garbage collection and
// no other's (a 10k-span protobufjs message left in the heap makes every full GC slower); the
// children alternate, REPEATS times each, so machine noise hits all sides alike. A child warms up
// to steady state first (WARMUP_MS), then reports the mean of its timed runs (GC pauses included);
// the figure is the median over the children. The children run with the collector's node flags
// (collector/src/runtime.ts, the process that decodes in production); our encode and decode also
// run with node's defaults, side by side, to show what the flags are worth. Then payload bytes raw
// and with zstd-1/3 at batch 100/1000/10000.
// Run: npx tsx tests/bench/otlp-codec.bench.ts
import { decodeTraces, encodeTraces } from '../../proto/src/otlp/index.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';
import { zstdCompress } from '../../proto/src/zstd.ts';
import type { AnyValue, TracesData } from '../../proto/src/model.ts';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { COLLECTOR_NODE_FLAGS } from '../../collector/src/runtime.ts';

const N = 10_000;
const ROUNDS = Number(process.env.ROUNDS ?? 15);
const WARMUP_MS = Number(process.env.WARMUP_MS ?? 2000);
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

// protobufjs (with our .proto files) and the SDK serializer load only in the children that use
// them, so they do not enlarge the heap the other operations collect.
const pb = () => import('../unit/otlp-helpers.ts');
const sdkSerializer = async () => (await import('@opentelemetry/otlp-transformer')).ProtobufTraceSerializer;
type Op = { name: string; make: () => Promise<() => unknown> };
const ops: Op[] = [
  { name: 'encode: ours (model → bytes)', make: async () => () => encodeTraces(data) },
  {
    name: 'encode: protobufjs reflection (message → bytes)',
    make: async () => {
      const { modelToPb, requestType } = await pb();
      const T = requestType('traces');
      const msg = T.fromObject(modelToPb('traces', data));
      return () => T.encode(msg).finish();
    },
  },
  {
    name: 'encode: otlp-transformer ProtobufTraceSerializer',
    make: async () => {
      const serializer = await sdkSerializer();
      const sdk = sdkSpans(data);
      return () => serializer.serializeRequest(sdk as never);
    },
  },
  {
    name: 'decode: ours (bytes → model)',
    make: async () => {
      const bytes = encodeTraces(data);
      return () => decodeTraces(bytes);
    },
  },
  {
    name: 'decode: protobufjs reflection (bytes → message)',
    make: async () => {
      const { requestType } = await pb();
      const T = requestType('traces');
      const bytes = encodeTraces(data);
      return () => T.decode(bytes);
    },
  },
];

const childOp = process.argv.find((a) => a.startsWith('--op='));
if (childOp) {
  // child: one operation, warmed up, then ROUNDS timed runs; the last result stays referenced
  // until the next run replaces it, as a consumer would hold it
  const run = await ops[Number(childOp.slice(5))]!.make();
  let keep: unknown;
  // Warm-up to steady state, as a long-running collector is: the JIT's later tiers and the first
  // full GCs (which compact the data set) take longer than a few runs to settle.
  const warmUntil = Date.now() + WARMUP_MS;
  for (let i = 0; i < 8 || Date.now() < warmUntil; i++) keep = run();
  const cpu: number[] = [], wall: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    keep = run();
    const c = process.cpuUsage(c0);
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    cpu.push((c.user + c.system) / 1000);
  }
  if (!keep) throw new Error('no result');
  process.stdout.write(`RESULT ${JSON.stringify({ cpu, wall })}\n`);
  process.exit(0);
}

// Sanity: all three produce the same message.
const ours = encodeTraces(data);
{
  const { modelToPb, requestType } = await pb();
  const T = requestType('traces');
  const pbBytes = T.encode(T.fromObject(modelToPb('traces', data))).finish();
  const sdkBytes = (await sdkSerializer()).serializeRequest(sdkSpans(data) as never)!;
  if (decodeTraces(pbBytes).resourceSpans[0].scopeSpans[0].spans.length !== N) throw new Error('protobufjs bytes do not decode');
  if (decodeTraces(sdkBytes).resourceSpans[0].scopeSpans[0].spans.length !== N) throw new Error('SDK bytes do not decode');
}

const REPEATS = Number(process.env.REPEATS ?? 5);
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
/** Every operation with the collector's flags; ours (ops 0 and 3) also with node's defaults. */
const runs = [
  ...ops.map((op, i) => ({ op: i, name: op.name, flags: [...COLLECTOR_NODE_FLAGS] })),
  ...[0, 3].map((i) => ({ op: i, name: `${ops[i]!.name}, node defaults`, flags: [] as string[] })),
];
const wall = runs.map(() => [] as number[]);
const cpu = runs.map(() => [] as number[]);
const self = fileURLToPath(import.meta.url);
for (let rep = 0; rep < REPEATS; rep++) {
  runs.forEach((run, i) => {
    const r = spawnSync(process.execPath, [...run.flags, '--import', 'tsx', self, `--op=${run.op}`], { encoding: 'utf8', env: { ...process.env, ROUNDS: String(ROUNDS) } });
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`child for ${run.name} failed (${r.status}): ${r.stderr}`);
    const res = JSON.parse(line.slice(7)) as { cpu: number[]; wall: number[] };
    // a process's figure is its mean over all timed runs (total spans / total time): its GC pauses,
    // which land on some runs only, are part of the cost
    cpu[i]!.push(mean(res.cpu));
    wall[i]!.push(mean(res.wall));
  });
}
const wallMs = wall.map(median);
const cpuMs = cpu.map(median);
const k = (ms: number) => `${((N / ms) * 1000 / 1000).toFixed(0)} k`;
console.log(`OTLP codec, ${N} spans × 10 attributes, ${ours.length} bytes (${(ours.length / N).toFixed(0)} B/span); each operation in its own process (warmed up ${WARMUP_MS / 1000} s, then ${ROUNDS} timed runs: mean per process, median of ${REPEATS} processes), node flags ${COLLECTOR_NODE_FLAGS.join(' ')} (the collector's) unless marked; load average ${(await import('node:os')).loadavg()[0].toFixed(1)}`);
console.log('| operation | CPU ms | spans/s (CPU) | wall ms | spans/s (wall) | CPU time vs ours |');
console.log('|---|---|---|---|---|---|');
runs.forEach((run, i) => {
  const anchor = run.name.startsWith('encode') ? cpuMs[0]! : cpuMs[3]!;
  console.log(`| ${run.name} | ${cpuMs[i]!.toFixed(1)} | ${k(cpuMs[i]!)} | ${wallMs[i]!.toFixed(1)} | ${k(wallMs[i]!)} | ${(cpuMs[i]! / anchor).toFixed(2)}× |`);
});
const dflt = ops.length; // the node-defaults runs follow the collector-flag runs: encode, decode
console.log(`ours vs protobufjs: encode ${(cpuMs[1]! / cpuMs[0]!).toFixed(1)}× faster, decode ${(cpuMs[4]! / cpuMs[3]!).toFixed(1)}× faster; vs SDK serializer: encode ${(cpuMs[2]! / cpuMs[0]!).toFixed(1)}× faster (CPU time)`);
console.log(`collector flags vs node defaults: encode ${(cpuMs[dflt]! / cpuMs[0]!).toFixed(2)}×, decode ${(cpuMs[dflt + 1]! / cpuMs[3]!).toFixed(2)}× the speed`);
console.log(`goals per core: encode ≥ 1000 k spans/s → ${k(cpuMs[0]!)} (node defaults ${k(cpuMs[dflt]!)}); decode ≥ 500 k spans/s → ${k(cpuMs[3]!)} (node defaults ${k(cpuMs[dflt + 1]!)}) (CPU time)`);

console.log('\n| batch | OTLP raw B | B/span | zstd-1 B | B/span | zstd-3 B | B/span |');
console.log('|---|---|---|---|---|---|---|');
for (const batch of [100, 1000, 10_000]) {
  const raw = encodeTraces(agentTraces(batch, 7));
  const z1 = await zstdCompress(raw, 1);
  const z3 = await zstdCompress(raw, 3);
  const per = (b: number) => (b / batch).toFixed(0);
  console.log(`| ${batch} | ${raw.length} | ${per(raw.length)} | ${z1.length} | ${per(z1.length)} | ${z3.length} | ${per(z3.length)} |`);
}
