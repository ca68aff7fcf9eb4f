// Live source: opens each probe's object, configures, loads, attaches, and reads its ring buffer.
import { BpfObject, type AttachResult, type RingReader, type RingBufferOptions } from '../bpf/object.ts';
import { layoutOf, objectPath, ringMapOf, type ProbeSpec } from './probes.ts';
import type { BatchSource, SourceBatchHandler, SourceProbe } from './types.ts';

export interface LiveProbe extends SourceProbe {
  spec: ProbeSpec;
  object: BpfObject;
  ringMap: string;
  attach: AttachResult[];
}

export interface LiveSourceOptions {
  /** user-space reader options (batch size, pool, poll timeout) */
  ring?: Omit<RingBufferOptions, 'onError'>;
  /** kernel ring buffer size in bytes for every probe (power of two, page multiple; libbpf rounds
   * up); default: the object's own size */
  ringBytes?: number;
  /** extra globals per probe name, applied after the spec's */
  globals?: Record<string, Record<string, number | bigint | boolean>>;
  /** called when a batch handler throws (the batch is dropped and counted by the reader) */
  onError?: (err: unknown, probe: SourceProbe) => void;
}

export class LiveSource implements BatchSource {
  readonly probes: LiveProbe[] = [];
  #readers: RingReader[] = [];
  #stopped: Promise<void> | undefined;
  #drained: Promise<void> | undefined;

  /** Opens and loads every probe (throws BpfLoadError if one is rejected; opened ones are closed). */
  constructor(specs: ProbeSpec[], readonly opts: LiveSourceOptions = {}) {
    try {
      specs.forEach((spec, id) => {
        const object = BpfObject.open(objectPath(spec));
        // registered before configuring, so a failure below still closes it
        const probe: LiveProbe = { id, name: spec.name, spec, object, ringMap: '', attach: [], ...(spec.decoder ? { decoder: spec.decoder } : {}) };
        this.probes.push(probe);
        for (const p of spec.enable ?? []) object.setAutoload(p, true);
        const globals = { ...spec.globals, ...opts.globals?.[spec.name] };
        for (const [k, v] of Object.entries(globals)) object.setGlobal(k, v);
        probe.ringMap = ringMapOf(object, spec);
        if (opts.ringBytes !== undefined) object.setMaxEntries(probe.ringMap, opts.ringBytes);
        probe.layout = layoutOf(object, spec);
        object.load();
      });
    } catch (err) {
      for (const p of this.probes) p.object.close();
      throw err;
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
