// BpfObject: a libbpf object through the native bridge, in the spirit of cilium/ebpf.
//
// Lifecycle: open(path) → configure (setGlobal, setAutoload, setMaxEntries) → load() → attach(...)
// → openRingBuffer / map access → close(). close() detaches every link, then stops the ring
// readers (their last drain sees everything the programs submitted) and frees the object; it is
// idempotent and also happens at process exit. Links belong to the object: closing it detaches them.
import { BpfError, BpfLoadError, failedProgram } from './errors.ts';
import {
  native, type NativeBtfStruct, type NativeGlobalInfo, type NativeMapInfo,
  type NativeOpenOptions, type NativeProgramInfo, type NativeReaderStats, type ObjectHandle, type ReaderHandle,
} from './native.ts';

export { BpfError, BpfLoadError } from './errors.ts';

export type ProgramInfo = NativeProgramInfo;
export type MapInfo = NativeMapInfo;
export type GlobalInfo = NativeGlobalInfo;
export type BtfStruct = NativeBtfStruct;
export type OpenOptions = NativeOpenOptions;
export type ReaderStats = NativeReaderStats & { userCallbackErrors: number };

/** Result of one attach; an attach failure is a result, never an exception. */
export interface AttachResult {
  program: string;
  ok: boolean;
  /** strerror text of the failure */
  error?: string;
  errno?: number;
  /** libbpf's output for this attach (explains e.g. a missing tracepoint) */
  log?: string;
}

/**
 * Called once per batch. `buf` holds `count` records packed as
 * [u32 length][u32 0][record bytes][pad to 8], `byteLength` bytes in all. The buffer belongs to a
 * recycled pool: it is valid only until the callback returns (copy what you keep).
 */
export type BatchCallback = (buf: ArrayBuffer, byteLength: number, count: number) => void;

export interface RingBufferOptions {
  /** bytes per batch buffer (multiple of 8, 4 KiB–64 MiB); default 1 MiB */
  batchBytes?: number;
  /** number of batch buffers; when all are waiting for JS, the worker stops draining. Default 16 */
  poolSize?: number;
  /** ring poll timeout: the longest a record waits before it is handed over. Default 10 ms */
  pollTimeoutMs?: number;
  /** called when onBatch throws; the batch is dropped and counted (default: ignore) */
  onError?: (err: unknown) => void;
}

const defaultRingOptions = { batchBytes: 1 << 20, poolSize: 16, pollTimeoutMs: 10 };

/** Reads one ring buffer map on a native thread and hands batches to JS. */
export class RingReader {
  #handle: ReaderHandle;
  #userErrors = 0;
  #stopped: Promise<void> | undefined;
  #onStop: (r: RingReader) => void;
  readonly map: string;

  /** @internal created by BpfObject.openRingBuffer */
  constructor(h: ObjectHandle, map: string, onBatch: BatchCallback, opts: RingBufferOptions,
    onStop: (r: RingReader) => void) {
    const o = { ...defaultRingOptions, ...opts };
    const onError = opts.onError;
    // one closure per reader (not per batch): shields the process from a throwing consumer
    const guarded = (buf: ArrayBuffer, byteLength: number, count: number): void => {
      try {
        onBatch(buf, byteLength, count);
      } catch (err) {
        this.#userErrors++;
        if (onError) { try { onError(err); } catch { /* nothing left to report to */ } }
      }
    };
    this.map = map;
    this.#onStop = onStop;
    this.#handle = wrap(() => native().openRingBuffer(h, map, guarded, o.batchBytes, o.poolSize, o.pollTimeoutMs));
  }

  /**
   * Stops the reader thread after a last drain of the ring. The promise resolves once every batch
   * already handed over was delivered to onBatch. Idempotent.
   */
  stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = new Promise<void>((resolve) => native().readerStop(this.#handle, resolve));
      this.#onStop(this);
    }
    return this.#stopped;
  }

  /** A running reader keeps the event loop alive, like a listening socket; unref() lets the
   * process exit while it runs (ref() undoes that). */
  unref(): this {
    native().readerRef(this.#handle, false);
    return this;
  }

  ref(): this {
    native().readerRef(this.#handle, true);
    return this;
  }

  get running(): boolean {
    return this.#stopped === undefined;
  }

  stats(): ReaderStats {
    return { ...native().readerStats(this.#handle), userCallbackErrors: this.#userErrors };
  }
}

export class BpfObject {
  #h: ObjectHandle;
  #closed = false;
  #readers = new Set<RingReader>();
  readonly path: string;

  private constructor(path: string, h: ObjectHandle) {
    this.path = path;
    this.#h = h;
  }

  /** Parses the ELF object (no kernel work yet). `btfCustomPath` makes CO-RE relocations use that
   * BTF instead of the running kernel's (tests of other kernels' type shapes). */
  static open(path: string, opts: OpenOptions = {}): BpfObject {
    if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string');
    const o: NativeOpenOptions = opts.btfCustomPath !== undefined ? { btfCustomPath: opts.btfCustomPath } : {};
    return new BpfObject(path, wrap(() => native().open(path, o)));
  }

  get closed(): boolean {
    return this.#closed;
  }

  programs(): ProgramInfo[] {
    return this.#call(() => native().programs(this.#h));
  }

  maps(): MapInfo[] {
    return this.#call(() => native().maps(this.#h));
  }

  /** Variables of the object's data sections (.rodata, .data, .bss) as BTF describes them. */
  globals(): GlobalInfo[] {
    return this.#call(() => native().globals(this.#h));
  }

  /**
   * Writes a global (typically a `const volatile` filter in .rodata) before load. Numbers and
   * bigints are written little-endian in the variable's size; booleans as 0/1; bytes must have
   * exactly the variable's size.
   */
  setGlobal(name: string, value: Buffer | Uint8Array | number | bigint | boolean): void {
    const g = this.globals().find((v) => v.name === name);
    if (!g) throw new BpfError('BPF_NOT_FOUND', `${this.path}: no global variable named '${name}'`);
    const bytes = value instanceof Uint8Array ? value : encodeScalar(name, value, g.size);
    this.#call(() => native().setGlobal(this.#h, name, bytes));
  }

  /** The bytes load() will use for a global. */
  getGlobal(name: string): Buffer {
    return this.#call(() => native().getGlobal(this.#h, name));
  }

  setAutoload(program: string, on: boolean): void {
    this.#call(() => native().setAutoload(this.#h, program, on));
  }

  /** Map size before load; for a ring buffer this is its size in bytes (rounded to a power of 2). */
  setMaxEntries(map: string, n: number): void {
    this.#call(() => native().setMaxEntries(this.#h, map, n));
  }

  /** Loads maps and programs into the kernel. A rejection throws BpfLoadError with the verifier log. */
  load(): void {
    this.#call(() => native().load(this.#h));
  }

  /** Attaches one program; failures come back as `{ok: false, error, errno}`. */
  attach(program: string): AttachResult {
    return this.#call(() => native().attach(this.#h, program));
  }

  /** Attaches every loaded program, in object order. */
  attachAll(): AttachResult[] {
    return this.programs().filter((p) => p.loaded).map((p) => this.attach(p.name));
  }

  /** Destroys a program's link; returns whether it was attached. */
  detach(program: string): boolean {
    return this.#call(() => native().detach(this.#h, program));
  }

  openRingBuffer(map: string, onBatch: BatchCallback, opts: RingBufferOptions = {}): RingReader {
    this.#assertOpen();
    if (typeof onBatch !== 'function') throw new TypeError('onBatch must be a function');
    // the object keeps its readers reachable: a reader nobody references keeps reading
    const r = new RingReader(this.#h, map, onBatch, opts, (rr) => this.#readers.delete(rr));
    this.#readers.add(r);
    return r;
  }

  /** The kernel's id of a map of the loaded object (what `bpftool map show` lists). */
  mapId(map: string): number {
    return this.#call(() => native().mapId(this.#h, map));
  }

  /** The value for `key` (a Buffer, or a number for u32 keys); per-CPU maps return every CPU's
   * value, each padded to 8 bytes, concatenated. null when absent. */
  mapLookup(map: string, key: Buffer | Uint8Array | number): Buffer | null {
    return this.#call(() => native().mapLookup(this.#h, map, keyBytes(key)));
  }

  mapUpdate(map: string, key: Buffer | Uint8Array | number, value: Buffer | Uint8Array): void {
    this.#call(() => native().mapUpdate(this.#h, map, keyBytes(key), value));
  }

  mapDelete(map: string, key: Buffer | Uint8Array | number): boolean {
    return this.#call(() => native().mapDelete(this.#h, map, keyBytes(key)));
  }

  /** Every [key, value] pair (at most `limit`, default the map's max entries). */
  mapEntries(map: string, limit?: number): [Buffer, Buffer][] {
    return this.#call(() => native().mapEntries(this.#h, map, limit));
  }

  /** A struct or union from the object's BTF, to check decoder layouts; null when absent. */
  btfStruct(name: string): BtfStruct | null {
    return this.#call(() => native().btfStruct(this.#h, name));
  }

  /** Detaches links, then stops readers (after a last drain), frees the object. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // native close detaches before it stops the readers; stop() afterwards only settles their
    // promises (readerStop of a stopped reader is a no-op that still reports delivery)
    native().close(this.#h);
    for (const r of [...this.#readers]) void r.stop();
  }

  #assertOpen(): void {
    if (this.#closed) throw new BpfError('BPF_CLOSED', `${this.path}: BPF object is closed`);
  }

  #call<T>(fn: () => T): T {
    this.#assertOpen();
    return wrap(fn, this.path);
  }
}

/** Reads CLOCK_MONOTONIC and CLOCK_REALTIME at the same instant, in ns. */
export function clockPair(): { monotonicNs: bigint; realtimeNs: bigint } {
  const [m, r] = native().clocks();
  return { monotonicNs: m, realtimeNs: r };
}

/** Number of possible CPUs: the count of values a per-CPU map returns. */
export function possibleCpus(): number {
  return native().numPossibleCpus();
}

/** Sums the u64 of every CPU in a per-CPU map value (as returned by mapLookup). */
export function sumPerCpuU64(value: Buffer): bigint {
  let total = 0n;
  for (let off = 0; off + 8 <= value.length; off += 8) total += value.readBigUInt64LE(off);
  return total;
}

function keyBytes(key: Buffer | Uint8Array | number): Uint8Array {
  if (typeof key !== 'number') return key;
  if (!Number.isInteger(key) || key < 0 || key > 0xffffffff) throw new RangeError('numeric key must be a u32');
  const b = Buffer.alloc(4);
  b.writeUInt32LE(key);
  return b;
}

function encodeScalar(name: string, value: number | bigint | boolean, size: number): Buffer {
  const b = Buffer.alloc(size);
  if (typeof value === 'boolean') {
    if (size > 0) b[0] = value ? 1 : 0;
    return b;
  }
  if (typeof value === 'number' && !Number.isInteger(value)) {
    throw new RangeError(`global '${name}': ${value} is not an integer`);
  }
  if (typeof value !== 'number' && typeof value !== 'bigint') {
    throw new TypeError(`global '${name}': value must be a Buffer, number, bigint or boolean`);
  }
  const v = BigInt(value);
  const bits = BigInt(size * 8);
  const min = -(1n << (bits - 1n));
  const max = (1n << bits) - 1n;
  if (size < 1 || size > 8 || v < min || v > max) {
    throw new RangeError(`global '${name}': ${value} does not fit in ${size} bytes`);
  }
  let u = BigInt.asUintN(size * 8, v);
  for (let i = 0; i < size; i++) {
    b[i] = Number(u & 0xffn);
    u >>= 8n;
  }
  return b;
}

/** Maps native errors to typed ones, adding the object path. Argument errors pass through. */
function wrap<T>(fn: () => T, path?: string): T {
  try {
    return fn();
  } catch (err) {
    const e = err as Error & { code?: string; errno?: number; log?: string };
    if (e && e.code === 'BPF_LOAD') {
      const log = e.log ?? '';
      throw new BpfLoadError(e.message, { program: failedProgram(log), errno: e.errno ?? 0, log, cause: err });
    }
    if (e && typeof e.code === 'string' && (e.code.startsWith('BPF_') || e.code === 'ENOMEM')) {
      const msg = path && !e.message.includes(path) ? `${path}: ${e.message}` : e.message;
      throw new BpfError(e.code, msg, e.errno, { cause: err });
    }
    throw err;
  }
}
