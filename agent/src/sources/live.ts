// Live source: opens each probe's object, configures, checks its record layouts, loads, attaches,
// and reads its ring buffer. A probe that cannot load is reported in `failures` and the others run.
import { BpfObject, sumPerCpuU64, type AttachResult, type RingReader, type RingBufferOptions } from '../bpf/object.ts';
import { EVENT_HEADER, PROBE_LAYOUTS, type StructLayout } from '../decode/layouts.ts';
import { verifyLayout } from '../decode/verify.ts';
import { layoutOf, objectPath, ringMapOf, type ProbeSpec } from './probes.ts';
import type { BatchSource, SourceBatchHandler, SourceProbe } from './types.ts';

export interface LiveProbe extends SourceProbe {
  spec: ProbeSpec;
  object: BpfObject;
  ringMap: string;
  attach: AttachResult[];
}

/** A probe that did not load (open, configuration, layout check or kernel load failed). */
export interface ProbeFailure {
  probe: string;
  /** the rejected program, when libbpf named one */
  program?: string;
  message: string;
  /** verifier log tail (BpfLoadError), else '' */
  verifierLog: string;
  error: unknown;
}

/** The tcp probe's socket-owner table (`sockets` LRU map) and its counters (`socket_stats`). */
export interface SocketTableStats {
  probe: string;
  /** max entries of `sockets` (probes.max_sockets) */
  capacity: number;
  /** new entries added */
  inserted: bigint;
  /** entries removed; inserted − deleted is the table's size until it fills, and past capacity
   * at least the number of owners the LRU evicted */
  deleted: bigint;
  /** owners that could not be recorded (map update failed) */
  insertFailed: bigint;
}

export interface LiveSourceOptions {
  /** user-space reader options (batch size, pool, poll timeout) */
  ring?: Omit<RingBufferOptions, 'onError'>;
  /** kernel ring buffer size in bytes for every probe (power of two, page multiple; libbpf rounds
   * up); default: the object's own size */
  ringBytes?: number;
  /** extra globals per probe name, applied after the spec's */
  globals?: Record<string, Record<string, number | bigint | boolean>>;
  /** map sizes (max entries) per probe name, e.g. `{ tcp: { sockets: 131072 } }`, set before load */
  maxEntries?: Record<string, Record<string, number>>;
  /** record layouts checked against each object's BTF before load, per probe name; default: the
   * decoder's tables (PROBE_LAYOUTS) for probes with the kernel-events decoder */
  layouts?: Record<string, readonly StructLayout[]>;
  /** true: the first probe that fails closes the others and throws (all or nothing). Default
   * false: failed probes are listed in `failures`; the constructor throws only if none loaded. */
  strict?: boolean;
  /** called when a batch handler throws (the batch is dropped and counted by the reader) */
  onError?: (err: unknown, probe: SourceProbe) => void;
}

/** The layouts a probe's records must have: the decoder's, for kernel-events probes. */
export function expectedLayouts(spec: ProbeSpec, override?: Record<string, readonly StructLayout[]>): readonly StructLayout[] {
  const own = override?.[spec.name];
  if (own) return own;
  if (spec.decoder !== 'kernel-events') return [];
  return (PROBE_LAYOUTS as Record<string, readonly StructLayout[]>)[spec.name] ?? [EVENT_HEADER];
}

export class LiveSource implements BatchSource {
  readonly probes: LiveProbe[] = [];
  /** probes that did not load (empty in strict mode: it throws instead) */
  readonly failures: ProbeFailure[] = [];
  #readers: RingReader[] = [];
  #stopped: Promise<void> | undefined;
  #drained: Promise<void> | undefined;

  /**
   * Opens, checks and loads every probe. A failure (BpfLoadError, LayoutMismatchError, …) only
   * drops that probe (see `failures`) unless `strict`; if no probe loads, the first failure is
   * thrown, with every failure in its `probeFailures` property. Opened objects are closed on throw.
   */
  constructor(specs: ProbeSpec[], readonly opts: LiveSourceOptions = {}) {
    for (const spec of specs) {
      let object: BpfObject | undefined;
      try {
        object = BpfObject.open(objectPath(spec));
        for (const p of spec.enable ?? []) object.setAutoload(p, true);
        const globals = { ...spec.globals, ...opts.globals?.[spec.name] };
        for (const [k, v] of Object.entries(globals)) object.setGlobal(k, v);
        const ringMap = ringMapOf(object, spec);
        if (opts.ringBytes !== undefined) object.setMaxEntries(ringMap, opts.ringBytes);
        for (const [map, n] of Object.entries(opts.maxEntries?.[spec.name] ?? {})) object.setMaxEntries(map, n);
        // The decoder reads records through hand-mirrored offsets: refuse an object whose BTF
        // disagrees (names the struct and field) instead of decoding garbage.
        for (const layout of expectedLayouts(spec, opts.layouts)) verifyLayout(layout, object.btfStruct(layout.name));
        const layout = layoutOf(object, spec);
        object.load();
        // ids are dense over the loaded probes (fixtures and recorder index by them)
        this.probes.push({
          id: this.probes.length, name: spec.name, spec, object, ringMap, attach: [],
          ...(layout ? { layout } : {}), ...(spec.decoder ? { decoder: spec.decoder } : {}),
        });
      } catch (err) {
        object?.close();
        const e = err as Error & { program?: string; verifierLog?: string };
        this.failures.push({
          probe: spec.name,
          ...(e?.program ? { program: e.program } : {}),
          message: `probe ${spec.name}: ${e?.message ?? String(err)}`,
          verifierLog: e?.verifierLog ?? '',
          error: err,
        });
        if (opts.strict) {
          for (const p of this.probes) p.object.close();
          throw err;
        }
      }
    }
    if (this.probes.length === 0 && this.failures.length > 0) {
      const first = this.failures[0]!.error;
      if (first && typeof first === 'object') {
        Object.defineProperty(first, 'probeFailures', { value: [...this.failures], enumerable: false, configurable: true });
      }
      throw first;
    }
  }

  /** Opens the ring readers first (nothing is lost between attach and read), then attaches. */
  async start(onBatch: SourceBatchHandler): Promise<void> {
    for (const p of this.probes) {
      this.#readers.push(p.object.openRingBuffer(p.ringMap, (buf, len, count) => onBatch(buf, len, count, p), {
        ...this.opts.ring,
        onError: (err) => this.opts.onError?.(err, p),
      }));
    }
    for (const p of this.probes) p.attach = p.object.attachAll();
  }

  /** Socket table counters of every loaded probe that has one (tcp); summed over CPUs. */
  socketTables(): SocketTableStats[] {
    const out: SocketTableStats[] = [];
    for (const p of this.probes) {
      if (p.object.closed) continue;
      const maps = p.object.maps();
      const table = maps.find((m) => m.name === 'sockets');
      if (!table || !maps.some((m) => m.name === 'socket_stats')) continue;
      const at = (i: number): bigint => sumPerCpuU64(p.object.mapLookup('socket_stats', i) ?? Buffer.alloc(0));
      out.push({ probe: p.name, capacity: table.maxEntries, inserted: at(0), deleted: at(1), insertFailed: at(2) });
    }
    return out;
  }

  readerStats(): ReturnType<RingReader['stats']>[] {
    return this.#readers.map((r) => r.stats());
  }

  /** Detaches and drains the rings, delivering what is queued; the objects stay open (maps readable). */
  drain(): Promise<void> {
    this.#drained ??= (async () => {
      for (const p of this.probes) for (const a of p.attach) if (a.ok) p.object.detach(a.program);
      await Promise.all(this.#readers.map((r) => r.stop()));
    })();
    return this.#drained;
  }

  /** drain(), then closes the objects. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= this.drain().finally(() => {
      for (const p of this.probes) p.object.close();
    });
    return this.#stopped;
  }
}
