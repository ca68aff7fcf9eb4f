// The agent's whole data path after the ring buffer: decode → enrich → signal builders (spans,
// aggregated metrics, logs) → encode → compress, driven from recorded kernel events
// (tests/fixtures/tcp-burst.kscope, re-framed with frameRecords) through AgentPipeline with an
// exporter that encodes and compresses instead of sending.
//   1. throughput: events/s per core (events / CPU time of the process) for four exporters side
//      by side — drop (decode+enrich+signals), OTLP encode, OTLP encode + zstd, and the agent's
//      default exporter's work, OTel Arrow (OTAP) encode with zstd IPC body compression at the
//      agent's level (the full path) — against the anchor, decode-only throughput (EventDecoder
//      over the same batches, visitor reads type and pid), measured in the same run;
//   2. paced: a child process (this script bundled, run with the image's node flags) feeds 10k
//      events/s for 10 s (one batch per ring poll interval, the agent's default) through the
//      default-configured pipeline with its real timers, and reports the CPU share of one core
//      and the RSS (split into node and the agent's modules); the same child first measures the
//      generator with decode only at the same pace, as its anchor.
// Goals: ≥ 500k events/s per core; ≤ 1% of a core and ≤ 100 MB RSS at 10k events/s.
// Run: npx tsx tests/bench/agent-pipeline.bench.ts [--quick]
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { getHeapSpaceStatistics } from 'node:v8';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentPipeline, AgentExporters, SignalExporter } from '../../agent/src/pipeline.ts';
import type { KernelEvent } from '../../agent/src/decode/index.ts';
import type { Enricher } from '../../agent/src/enrich/enricher.ts';
import type { SignalData, SignalType } from '../../proto/src/model.ts';

// Modules load dynamically so the paced child can tell the RSS of node and of the agent's
// modules apart. agent.ts is loaded for its module graph (what a running agent loads): with
// Kubernetes off that must not include @kubernetes/client-node (enrich/index.ts loads it lazily).
const rssAt = { start: process.memoryUsage.rss(), agent: 0 };
await import('../../agent/src/agent.ts');
const { AgentPipeline: Pipeline } = await import('../../agent/src/pipeline.ts');
/** Whether @kubernetes/client-node got loaded: it is ESM, but its CommonJS dependencies land in require.cache. */
const k8sClientLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/stream-buffers/'));
const { parseAgentConfig } = await import('../../agent/src/config.ts');
const { EventDecoder, frameRecords, splitRecords } = await import('../../agent/src/decode/index.ts');
const { EVENT_HEADER } = await import('../../agent/src/decode/layouts.ts');
const { Enricher: EnricherClass, defaultEnricherConfig } = await import('../../agent/src/enrich/enricher.ts');
const { FixtureReader } = await import('../../agent/src/sources/fixture.ts');
const { encodeLogs, encodeMetrics, encodeTraces } = await import('../../proto/src/otlp/index.ts');
const { zstdCompressSync } = await import('../../proto/src/zstd.ts');
const { OtapProducer } = await import('../../proto/src/otap/stream.ts');
const { encodeBatchArrowRecords } = await import('../../proto/src/otap/messages.ts');
const { AGENT_ZSTD_LEVEL } = await import('../../agent/src/agent.ts');
const { silentLogger } = await import('../../lib/log.ts');
rssAt.agent = process.memoryUsage.rss();

const quick = process.argv.includes('--quick');
const paced = process.argv.includes('--paced');
const STAGES = ['drop', 'otlp', 'otlp-zstd', 'otap'] as const;
/** `--only=drop|otlp|otlp-zstd|otap`: one lane and no paced run (for profiling with --cpu-prof). */
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7) as Stage | undefined;
if (only && !STAGES.includes(only)) throw new Error(`--only=${only}: expected ${STAGES.join(', ')}`);
const FIXTURE = fileURLToPath(new URL('../fixtures/tcp-burst.kscope', import.meta.url));
const GOAL_EPS = 500_000;
const GOAL_CPU = 0.01;
const GOAL_RSS_MB = 100;

// ---------------------------------------------------------------- recorded records → fake host

/** Every record of the fixture, copied out of its batches. */
function loadRecords(): Uint8Array[] {
  const r = new FixtureReader(FIXTURE);
  const out: Uint8Array[] = [];
  try {
    for (let f = r.next(); f; f = r.next()) out.push(...splitRecords(f.buf, f.byteLength, f.count));
  } finally {
    r.close();
  }
  return out;
}

/**
 * A cgroup2 tree in a temp dir with one pod-like scope per recorded cgroup id; the records'
 * cgroup ids are rewritten to those directories' inodes so enrichment takes its normal cached
 * path (the recording host's cgroups don't exist here). /proc lookups go to an empty dir.
 */
function fakeHost(records: Uint8Array[]): { root: string; newEnricher: () => Enricher<KernelEvent> } {
  const root = mkdtempSync(join(tmpdir(), 'kscope-agent-bench-'));
  writeFileSync(join(root, 'cgroup.controllers'), '');
  mkdirSync(join(root, 'noproc'));
  const remap = new Map<bigint, bigint>();
  const off = EVENT_HEADER.fields.cgroup_id.offset;
  for (const rec of records) {
    const dv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
    const id = dv.getBigUint64(off, true);
    let to = remap.get(id);
    if (to === undefined) {
      const n = remap.size;
      const uid = `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
      const dir = join(root, 'kubepods.slice', 'kubepods-burstable.slice', `kubepods-burstable-pod${uid.replaceAll('-', '_')}.slice`,
        `cri-containerd-${n.toString(16).padStart(64, '0')}.scope`);
      mkdirSync(dir, { recursive: true });
      to = BigInt(statSync(dir).ino);
      remap.set(id, to);
    }
    dv.setBigUint64(off, to, true);
  }
  const newEnricher = () => new EnricherClass<KernelEvent>({
    ...defaultEnricherConfig(), cgroupRoot: root, procRoot: join(root, 'noproc'), nodeName: 'bench-node', rescanIntervalMs: 0,
  }, { pods: null });
  return { root, newEnricher };
}

function batchesOf(records: Uint8Array[], size: number): { buf: ArrayBuffer; count: number }[] {
  const out: { buf: ArrayBuffer; count: number }[] = [];
  for (let i = 0; i < records.length; i += size) {
    const slice = records.slice(i, i + size);
    out.push({ buf: frameRecords(slice), count: slice.length });
  }
  return out;
}

// ---------------------------------------------------------------- exporters that stop short of sending

interface Totals { calls: number; rawBytes: number; zstdBytes: number }
/**
 * 'drop': the batch is discarded (decode+enrich+signals only); 'otlp': OTLP protobuf encode;
 * 'otlp-zstd': encode + zstd; 'otap': what the default exporter does before sending — OTAP encode
 * on a per-signal stream with zstd IPC body compression at the agent's level, then the
 * BatchArrowRecords message bytes.
 */
type Stage = (typeof STAGES)[number];

function stageExporter<S extends SignalType>(signal: S, stage: Stage, totals: Totals): SignalExporter<S> {
  const encode = (signal === 'traces' ? encodeTraces : signal === 'metrics' ? encodeMetrics : encodeLogs) as (d: SignalData[S]) => Buffer;
  const producer = stage === 'otap' ? new OtapProducer({ compression: 'zstd', zstdLevel: AGENT_ZSTD_LEVEL }) : undefined;
  return {
    async start() {},
    async shutdown() {},
    async consume(batch: SignalData[S]) {
      totals.calls++;
      if (stage === 'drop') return;
      if (producer) {
        totals.zstdBytes += encodeBatchArrowRecords(producer.produce(signal, batch)).length;
        return;
      }
      const raw = encode(batch);
      totals.rawBytes += raw.length;
      if (stage === 'otlp-zstd') totals.zstdBytes += zstdCompressSync(raw, AGENT_ZSTD_LEVEL).length;
    },
  };
}

function makePipeline(enricher: Enricher<KernelEvent>, stage: Stage, totals: Totals): AgentPipeline {
  // the agent's defaults (batch 1000 spans / 5 s, metrics every 10 s, delta)
  const cfg = parseAgentConfig({}, {});
  const exporters: AgentExporters = {
    traces: stageExporter('traces', stage, totals),
    metrics: stageExporter('metrics', stage, totals),
    logs: stageExporter('logs', stage, totals),
  };
  const offset = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return new Pipeline({ signals: cfg.signals, batch: cfg.batch, enricher, exporters, toUnixNano: (m) => m + offset, logger: silentLogger() });
}

const host = { reportFatal: (err: Error) => { throw err; } };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cpuNs = () => { const u = process.cpuUsage(); return (u.user + u.system) * 1000; };

// ---------------------------------------------------------------- 1. throughput

async function throughput(): Promise<void> {
  const records = loadRecords();
  const { root, newEnricher } = fakeHost(records);
  try {
    const batches = batchesOf(records, 256);
    const perPass = records.length;
    const passes = quick ? 20 : 60;
    const rounds = quick ? 3 : 5;
    const events = passes * perPass;

    const stages: Stage[] = only ? [only] : [...STAGES];
    const lanes: { stage: Stage; pipeline: AgentPipeline; totals: Totals; cpu: number[]; wall: number[] }[] = [];
    for (const stage of stages) {
      const enricher = newEnricher();
      await enricher.start();
      const totals: Totals = { calls: 0, rawBytes: 0, zstdBytes: 0 };
      const pipeline = makePipeline(enricher, stage, totals);
      await pipeline.start(host);
      // the loop below drives flushing and metric collection itself
      const timers = pipeline as unknown as { flushTimer: NodeJS.Timeout; metricsTimer: NodeJS.Timeout };
      clearInterval(timers.flushTimer);
      clearInterval(timers.metricsTimer);
      lanes.push({ stage, pipeline, totals, cpu: [] as number[], wall: [] as number[] });
    }

    async function runFull(pipeline: AgentPipeline, passCount = passes): Promise<{ wall: number; cpu: number }> {
      const c0 = cpuNs();
      const t0 = process.hrtime.bigint();
      for (let p = 0; p < passCount; p++) {
        for (let b = 0; b < batches.length; b++) {
          const x = batches[b]!;
          pipeline.onBatch(x.buf, x.buf.byteLength, x.count);
          // the ring-buffer callback returns to the event loop between batches: let exports settle
          if ((b & 7) === 7) await pipeline.settle();
        }
        pipeline.flush();
        pipeline.exportMetrics(); // one metrics interval per pass
        await pipeline.settle();
      }
      return { wall: Number(process.hrtime.bigint() - t0), cpu: cpuNs() - c0 };
    }

    let sink = 0;
    const decoder = new EventDecoder({
      tcp: (v) => { sink += v.typeCode + v.tgid; },
      proc: (v) => { sink += v.typeCode + v.tgid; },
      exec: (v) => { sink += v.typeCode + v.tgid; },
    });
    async function runDecode(): Promise<{ wall: number; cpu: number }> {
      const c0 = cpuNs();
      const t0 = process.hrtime.bigint();
      for (let p = 0; p < passes; p++) {
        for (let b = 0; b < batches.length; b++) {
          const x = batches[b]!;
          decoder.decodeBatch(x.buf, x.buf.byteLength, x.count);
          if ((b & 7) === 7) await Promise.resolve();
        }
      }
      return { wall: Number(process.hrtime.bigint() - t0), cpu: cpuNs() - c0 };
    }

    console.log(`agent pipeline bench: ${perPass} recorded events (tcp-burst.kscope) × ${passes} passes = ${events} events/round, ${batches.length} batches of ≤256, ${rounds} rounds, side by side (median); rates per core = events / CPU time of the process`);
    // JIT warm-up, a full round's worth even in --quick: the Arrow IPC writer's code keeps being
    // compiled for a few hundred batches, and a shorter warm-up shows it in the figure
    for (const l of lanes) await runFull(l.pipeline, 60);
    await runDecode();
    const dec: number[] = [];
    const before = lanes.map((l) => ({ ...l.totals }));
    for (let r = 0; r < rounds; r++) {
      const d = await runDecode();
      dec.push(events / (d.cpu / 1e9));
      for (const l of lanes) {
        const f = await runFull(l.pipeline);
        l.cpu.push(events / (f.cpu / 1e9));
        l.wall.push(events / (f.wall / 1e9));
      }
    }
    if (sink === 0) throw new Error('unreachable');
    const de = median(dec);
    const evTotal = rounds * events;
    console.log(`  anchor  decode only                      ${(de / 1e6).toFixed(2)} M events/s per core (${(1e9 / de).toFixed(0)} ns/event)`);
    const label: Record<Stage, string> = { drop: 'decode+enrich+signals', otlp: '  + OTLP encode', 'otlp-zstd': '  + OTLP encode + zstd', otap: '  + OTAP encode+zstd (default, full)' };
    let full = 0;
    for (const l of lanes) {
      const c = l.pipeline.counters;
      if (c.droppedBatches || c.exportFailures) throw new Error(`${l.stage}: pipeline dropped ${c.droppedBatches} batches, ${c.exportFailures} export failures`);
      const fe = median(l.cpu);
      if (l.stage === 'otap') full = fe;
      console.log(`  ${label[l.stage].padEnd(38)} ${(fe / 1e3).toFixed(0).padStart(5)} k events/s per core, ${(1e9 / fe).toFixed(0).padStart(5)} ns/event (wall ${(median(l.wall) / 1e3).toFixed(0)} k/s), ratio to anchor ${(fe / de).toFixed(4)}`);
    }
    const delta = (stage: Stage) => {
      const l = lanes.find((x) => x.stage === stage);
      if (!l) return undefined;
      const b0 = before[lanes.indexOf(l)]!;
      return { raw: (l.totals.rawBytes - b0.rawBytes) / evTotal, z: (l.totals.zstdBytes - b0.zstdBytes) / evTotal, c: l.pipeline.counters };
    };
    const oz = delta('otlp-zstd'), oa = delta('otap');
    if (oz) console.log(`  output per event: OTLP ${oz.raw.toFixed(0)} B → ${oz.z.toFixed(1)} B with zstd-${AGENT_ZSTD_LEVEL}; exported ${oz.c.spansExported} spans, ${oz.c.pointsExported} metric points, ${oz.c.logsExported} logs`);
    if (oa) console.log(`  output per event: OTAP+zstd-${AGENT_ZSTD_LEVEL} ${oa.z.toFixed(1)} B (BatchArrowRecords message bytes)`);
    if (!oa) { for (const l of lanes) await l.pipeline.shutdown(); return; }
    console.log(`  goal ≥ ${GOAL_EPS / 1e3}k events/s per core (full path): ${full >= GOAL_EPS ? 'MET' : 'NOT MET'} (${(full / GOAL_EPS).toFixed(2)}× the goal)`);
    for (const l of lanes) await l.pipeline.shutdown();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- 2. paced (child process)

async function pacedRun(): Promise<void> {
  const RATE = Number(process.env.PACED_RATE ?? 10_000);
  if (!(RATE >= 100)) throw new Error(`PACED_RATE=${process.env.PACED_RATE}: expected events/s ≥ 100`);
  const TICK_MS = Number(process.env.PACED_TICK_MS ?? parseAgentConfig({}, {}).probes.pollIntervalMs); // the ring reader's poll interval
  const PER_TICK = (RATE * TICK_MS) / 1000;
  const WINDOW_MS = Number(process.env.PACED_WINDOW_MS ?? (quick ? 5_000 : 10_000));
  const WARMUP_MS = Number(process.env.PACED_WARMUP_MS ?? 2_000);
  const records = loadRecords();
  const { root, newEnricher } = fakeHost(records);
  try {
    const enricher = newEnricher();
    await enricher.start();
    const batches = batchesOf(records, PER_TICK);
    const totals: Totals = { calls: 0, rawBytes: 0, zstdBytes: 0 };

    /** Feeds one batch per tick for the window; returns CPU fraction of one core and RSS peak. */
    async function feed(onBatch: (buf: ArrayBuffer, len: number, count: number) => void, ms: number): Promise<{ cpu: number; events: number; rssPeak: number; rate: number }> {
      let i = 0, events = 0, rssPeak = 0;
      const c0 = cpuNs();
      const t0 = Date.now();
      let ticks = 0;
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          // hand over what is due by now (catches up when a tick came late, so the rate holds)
          const due = (RATE * (Date.now() - t0)) / 1000;
          while (events + PER_TICK / 2 <= due) {
            const b = batches[i++ % batches.length]!;
            onBatch(b.buf, b.buf.byteLength, b.count);
            events += b.count;
          }
          ticks++;
          if ((ticks & 63) === 0) rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
          if (Date.now() - t0 >= ms) { clearInterval(timer); resolve(); }
        }, TICK_MS);
      });
      const wall = (Date.now() - t0) * 1e6;
      rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
      return { cpu: (cpuNs() - c0) / wall, events, rssPeak, rate: events / (wall / 1e9) };
    }

    let sink = 0;
    const decoder = new EventDecoder({ tcp: (v) => { sink += v.tgid; }, proc: (v) => { sink += v.tgid; }, exec: (v) => { sink += v.tgid; } });
    const base = await feed((buf, len, count) => decoder.decodeBatch(buf, len, count), Math.min(WINDOW_MS, 5_000));
    if (sink === 0) throw new Error('unreachable');

    // PACED_STAGE=otlp-zstd etc. measures another exporter's work at the same pace (default: the agent's, otap)
    const stage = (process.env.PACED_STAGE ?? 'otap') as Stage;
    if (!STAGES.includes(stage)) throw new Error(`PACED_STAGE=${stage}: expected ${STAGES.join(', ')}`);
    const pipeline = makePipeline(enricher, stage, totals);
    await pipeline.start(host);
    await feed(pipeline.onBatch, WARMUP_MS); // warm-up (JIT, caches, first metrics series)
    const rss0 = process.memoryUsage.rss();
    const run = await feed(pipeline.onBatch, WINDOW_MS);
    await pipeline.shutdown();
    const m = process.memoryUsage();
    const mb = (x: number) => x / 2 ** 20;
    const space = (name: string) => getHeapSpaceStatistics().find((x) => x.space_name === name)?.space_size ?? 0;
    const out = {
      rate: run.rate, windowMs: WINDOW_MS, cpu: run.cpu, baseCpu: base.cpu, rssPeakMb: mb(run.rssPeak), rssStartMb: mb(rss0),
      rssNodeMb: mb(rssAt.start), rssAgentModulesMb: mb(rssAt.agent - rssAt.start),
      heapUsedMb: mb(m.heapUsed), externalMb: mb(m.external),
      newSpaceMb: mb(space('new_space')), oldSpaceMb: mb(space('old_space')), k8sClientLoaded: k8sClientLoaded() ? 1 : 0, dropped: pipeline.counters.droppedItems, exported: pipeline.counters.spansExported,
    };
    process.stdout.write(`PACED ${JSON.stringify(out)}\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (paced) {
  await pacedRun();
} else if (only) {
  await throughput();
} else {
  await throughput();
  // a fresh process, so the RSS is the agent path's and not the throughput run's garbage; it runs
  // this script bundled as the agent ships (dist/, plain node, no tsx loader)
  const self = fileURLToPath(import.meta.url);
  // @ts-expect-error -- plain .mjs build script without types
  const { bundleScript } = (await import('../../scripts/build-dist.mjs')) as { bundleScript: (entry: string, out: string) => Promise<void> };
  const bundled = fileURLToPath(new URL('../../dist/bench/agent-pipeline.mjs', import.meta.url));
  await bundleScript(self, bundled);
  // node flags and environment (malloc arenas) as the image runs the agent (deploy/docker/agent.Dockerfile)
  const { agentImageRuntime } = await import('../../scripts/image-runtime.mjs');
  const image = agentImageRuntime();
  const r = spawnSync(process.execPath, [...image.nodeArgs, bundled, '--paced', ...(quick ? ['--quick'] : [])], { encoding: 'utf8', env: { ...process.env, ...image.env } });
  const line = r.stdout.split('\n').find((l) => l.startsWith('PACED '));
  if (!line) throw new Error(`paced child failed (${r.status}): ${r.stderr}`);
  const p = JSON.parse(line.slice(6)) as Record<string, number>;
  const f = (x: number, d = 0) => x.toFixed(d);
  console.log(`paced: ${f(p.rate!)} events/s for ${p.windowMs! / 1000} s in a fresh process (bundled like dist/agent.mjs, with the image's node flags ${image.nodeArgs.join(' ')} and environment ${Object.entries(image.env).map(([k, v]) => `${k}=${v}`).join(' ')}), default agent config, full path (OTAP encode + zstd, the default exporter's work)`);
  console.log(`  anchor  generator + decode only  ${f(p.baseCpu! * 100, 2)} % of a core`);
  console.log(`  full    pipeline                 ${f(p.cpu! * 100, 2)} % of a core (ratio to anchor ${f(p.cpu! / p.baseCpu!, 2)}), ${p.exported} spans exported, ${p.dropped} dropped`);
  console.log(`          RSS                      peak ${f(p.rssPeakMb!)} MB (window start ${f(p.rssStartMb!)} MB) = node ${f(p.rssNodeMb!)} MB + agent modules ${f(p.rssAgentModulesMb!)} MB (@kubernetes/client-node ${p.k8sClientLoaded ? 'LOADED' : 'not loaded'}) + data; heap used ${f(p.heapUsedMb!)} MB (spaces: new ${f(p.newSpaceMb!)}, old ${f(p.oldSpaceMb!)}), external ${f(p.externalMb!)} MB`);
  console.log(`  goal ≤ ${GOAL_CPU * 100}% of a core: ${p.cpu! <= GOAL_CPU ? 'MET' : 'NOT MET'} (${f(p.cpu! / GOAL_CPU, 2)}× the budget); ` +
    `goal ≤ ${GOAL_RSS_MB} MB RSS: ${p.rssPeakMb! <= GOAL_RSS_MB ? 'MET' : 'NOT MET'} (${f(p.rssPeakMb! / GOAL_RSS_MB, 2)}×)`);
}
