// Records live ring-buffer batches into a fixture file (see fixture.ts for the format).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { arch, hostname, release } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { clockPair, sumPerCpuU64 } from '../bpf/object.ts';
import { FixtureWriter, type FixtureHeader, type FixtureProbe } from './fixture.ts';
import { cgroup2Root, cgroupTable, processInfo, type ProcessInfo } from './host.ts';
import { LiveSource } from './live.ts';
import { objectPath, type ProbeSpec } from './probes.ts';
import type { SourceBatchHandler, SourceProbe } from './types.ts';

export interface RecordOptions {
  out: string;
  probes: ProbeSpec[];
  durationMs: number;
  /** extra globals per probe name */
  globals?: Record<string, Record<string, number | bigint | boolean>>;
  /** most processes described in the header */
  maxProcesses?: number;
  /** resolves early when this signal aborts (SIGINT in the CLI) */
  signal?: AbortSignal;
  /** sees every live batch right after it was written (same contract as the source callback) */
  tap?: SourceBatchHandler;
  /** called once the probes are attached (tests start their load here) */
  onAttached?: (source: LiveSource) => void | Promise<void>;
}

export interface RecordSummary {
  out: string;
  records: number;
  batches: number;
  perProbe: Record<string, { records: number; attached: string[]; failedAttach: { program: string; error?: string }[] }>;
  processes: number;
  cgroups: number;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The probe's own counters (e.g. ring reserve failures): every small u32 → u64 array, summed over CPUs. */
function probeCounters(src: LiveSource, probe: SourceProbe): Record<string, string> | undefined {
  const lp = src.probes[probe.id];
  if (!lp) return undefined;
  const out: Record<string, string> = {};
  for (const m of lp.object.maps()) {
    if (m.internal || m.keySize !== 4 || m.valueSize !== 8 || m.maxEntries > 64) continue;
    if (m.type !== 'percpu_array' && m.type !== 'array') continue;
    for (let i = 0; i < Math.min(m.maxEntries, 64); i++) {
      const v = lp.object.mapLookup(m.name, i);
      if (v) out[`${m.name}[${i}]`] = sumPerCpuU64(v).toString();
    }
  }
  return Object.keys(out).length ? out : undefined;
}

export async function record(opts: RecordOptions): Promise<RecordSummary> {
  const maxProcesses = opts.maxProcesses ?? 65_536;
  // all or nothing: a fixture silently missing a probe would mislead whoever replays it
  const src = new LiveSource(opts.probes, { globals: opts.globals, strict: true });
  const writer = new FixtureWriter(opts.out);
  const processes = new Map<number, ProcessInfo | null>();
  const clock = clockPair();
  const counts = new Map<number, number>();
  try {
    const start = process.hrtime.bigint();
    await src.start((buf, byteLength, count, probe) => {
      writer.writeBatch(probe.id, buf, byteLength, count, process.hrtime.bigint());
      counts.set(probe.id, (counts.get(probe.id) ?? 0) + count);
      opts.tap?.(buf, byteLength, count, probe);
      const pidOff = probe.layout?.pidOffset;
      if (pidOff === undefined || processes.size >= maxProcesses) return;
      // describe each process the first time it shows up, while it most likely still runs
      const v = new DataView(buf);
      let off = 0;
      for (let i = 0; i < count; i++) {
        const len = v.getUint32(off, true);
        if (pidOff + 4 <= len) {
          const pid = v.getUint32(off + 8 + pidOff, true);
          if (!processes.has(pid) && processes.size < maxProcesses) processes.set(pid, processInfo(pid) ?? null);
        }
        off += 8 + ((len + 7) & ~7);
      }
    });
    await opts.onAttached?.(src);
    try {
      await sleep(opts.durationMs, undefined, { signal: opts.signal });
    } catch { /* aborted: stop early and keep what was recorded */ }
    const probeMeta: FixtureProbe[] = src.probes.map((p) => ({
      id: p.id,
      name: p.name,
      object: p.spec.object,
      sha256: sha256(objectPath(p.spec)),
      ringMap: p.ringMap,
      globals: Object.fromEntries(Object.entries({ ...p.spec.globals, ...opts.globals?.[p.name] }).map(([k, v]) => [k, String(v)])),
      ...(p.layout ? { layout: p.layout } : {}),
      ...(p.spec.decoder ? { decoder: p.spec.decoder } : {}),
    }));
    await src.drain();
    const end = process.hrtime.bigint();
    for (const p of probeMeta) {
      const c = probeCounters(src, p);
      if (c) p.counters = c;
    }
    await src.stop();
    const root = cgroup2Root();
    const cgroups = cgroupTable();
    const header: FixtureHeader = {
      format: 'kscope-fixture',
      version: 1,
      createdAt: new Date(Number(clock.realtimeNs / 1_000_000n)).toISOString(),
      kernelRelease: release(),
      arch: arch(),
      hostname: hostname(),
      clock: {
        monotonicNs: clock.monotonicNs.toString(),
        realtimeNs: clock.realtimeNs.toString(),
        realtimeMinusMonotonicNs: (clock.realtimeNs - clock.monotonicNs).toString(),
      },
      startMonotonicNs: start.toString(),
      endMonotonicNs: end.toString(),
      probes: probeMeta,
      records: 0,
      batches: 0,
      ...(root ? { cgroupRoot: root } : {}),
      cgroups,
      processes: [...processes.values()].filter((p): p is ProcessInfo => p !== null),
    };
    writer.finish(header, end);
    return {
      out: opts.out,
      records: writer.records,
      batches: writer.batches,
      perProbe: Object.fromEntries(src.probes.map((p) => [p.name, {
        records: counts.get(p.id) ?? 0,
        attached: p.attach.filter((a) => a.ok).map((a) => a.program),
        failedAttach: p.attach.filter((a) => !a.ok).map((a) => ({ program: a.program, error: a.error })),
      }])),
      processes: header.processes.length,
      cgroups: cgroups.length,
    };
  } catch (err) {
    writer.abort();
    await src.stop().catch(() => undefined);
    throw err;
  }
}
