// Fixture files written by `agent record` and read by the replay source.
//
// Layout (all integers little-endian), version 1:
//
//   0   8 B  magic "KSCOPEFX"
//   8   u32  format version (1)
//   12  u32  header length H (bytes of UTF-8 JSON, space-padded to a multiple of 8)
//   16  H B  header JSON (FixtureHeader: kernel, clocks, probes + object hashes, cgroups, processes)
//   ...      frames, each 24 B + body:
//              u32 magic "BTCH" | u16 probe id | u16 flags (0) | u32 record count | u32 body length
//              u64 CLOCK_MONOTONIC ns when the batch reached user space
//              body: the ring-buffer batch exactly as the bridge delivered it, records packed as
//              [u32 length][u32 0][record bytes][pad to 8]; every record carries the frame's probe id
//   end      a frame with magic "FEND": count = total records, length 0, time = end of recording
//
// A file without its FEND frame is truncated; the reader reports that instead of guessing.
import { closeSync, fstatSync, openSync, readSync, writeSync, unlinkSync, renameSync } from 'node:fs';
import type { CgroupEntry, ProcessInfo } from './host.ts';
import type { RecordLayout } from './types.ts';
import { EVENT_HEADER, PROBE_LAYOUTS, type StructLayout } from '../decode/layouts.ts';

export const FIXTURE_MAGIC = 'KSCOPEFX';
export const FIXTURE_VERSION = 1;
const FRAME_BATCH = 0x48435442; // "BTCH"
const FRAME_END = 0x444e4546; // "FEND"
const FRAME_HEADER = 24;
/** frames bigger than this are refused by the reader (a corrupt length must not allocate GBs) */
export const MAX_FRAME_BYTES = 256 << 20;

export class FixtureFormatError extends Error {
  readonly code = 'FIXTURE_FORMAT' as const;
  constructor(message: string) {
    super(message);
    this.name = 'FixtureFormatError';
  }
}

export interface FixtureProbe {
  id: number;
  name: string;
  /** object path as given to the recorder */
  object: string;
  sha256: string;
  ringMap: string;
  globals: Record<string, string>;
  layout?: RecordLayout;
  decoder?: 'kernel-events';
  /** the probe's own counters at the end (e.g. ring reserve failures), when it has them */
  counters?: Record<string, string>;
}

export interface FixtureHeader {
  format: 'kscope-fixture';
  version: number;
  createdAt: string;
  kernelRelease: string;
  arch: string;
  hostname: string;
  /** CLOCK_MONOTONIC and CLOCK_REALTIME read at the same instant; bpf_ktime_get_ns() is monotonic,
   * so wall time = ktime + realtimeMinusMonotonicNs. Decimal strings (int64). */
  clock: { monotonicNs: string; realtimeNs: string; realtimeMinusMonotonicNs: string };
  startMonotonicNs: string;
  endMonotonicNs: string;
  probes: FixtureProbe[];
  records: number;
  batches: number;
  cgroupRoot?: string;
  cgroups: CgroupEntry[];
  processes: ProcessInfo[];
}

/** Writes frames to `<path>.body` while recording, then the header and the frames to `path`. */
export class FixtureWriter {
  readonly path: string;
  #bodyPath: string;
  #fd: number;
  #chunk: Buffer;
  #used = 0;
  #records = 0;
  #batches = 0;
  #closed = false;

  constructor(path: string, chunkBytes = 4 << 20) {
    this.path = path;
    this.#bodyPath = `${path}.body.partial`;
    this.#fd = openSync(this.#bodyPath, 'w');
    this.#chunk = Buffer.allocUnsafe(chunkBytes);
  }

  get records(): number { return this.#records; }
  get batches(): number { return this.#batches; }

  /** Copies one batch (the bridge's buffer is only valid during its callback). */
  writeBatch(probeId: number, buf: ArrayBuffer, byteLength: number, count: number, monoNs: bigint): void {
    if (this.#closed) throw new Error('fixture writer is closed');
    this.#frame(FRAME_BATCH, probeId, count, byteLength, monoNs);
    this.#append(new Uint8Array(buf, 0, byteLength));
    this.#records += count;
    this.#batches++;
  }

  #frame(magic: number, probeId: number, count: number, length: number, monoNs: bigint): void {
    if (this.#used + FRAME_HEADER > this.#chunk.length) this.#flush();
    const c = this.#chunk;
    let o = this.#used;
    c.writeUInt32LE(magic, o); o += 4;
    c.writeUInt16LE(probeId, o); o += 2;
    c.writeUInt16LE(0, o); o += 2;
    c.writeUInt32LE(count, o); o += 4;
    c.writeUInt32LE(length, o); o += 4;
    c.writeBigUInt64LE(monoNs, o);
    this.#used += FRAME_HEADER;
  }

  #append(bytes: Uint8Array): void {
    if (bytes.length > this.#chunk.length - this.#used) {
      this.#flush();
      if (bytes.length > this.#chunk.length) {
        writeSync(this.#fd, bytes);
        return;
      }
    }
    this.#chunk.set(bytes, this.#used);
    this.#used += bytes.length;
  }

  #flush(): void {
    if (this.#used > 0) writeSync(this.#fd, this.#chunk, 0, this.#used);
    this.#used = 0;
  }

  /** Ends the body, then writes the final file: magic, version, header, frames. */
  finish(header: FixtureHeader, endMonoNs: bigint): void {
    if (this.#closed) return;
    this.#frame(FRAME_END, 0, this.#records, 0, endMonoNs);
    this.#flush();
    closeSync(this.#fd);
    this.#closed = true;
    const json = Buffer.from(JSON.stringify({ ...header, records: this.#records, batches: this.#batches }), 'utf8');
    const padded = Buffer.alloc((json.length + 7) & ~7, 0x20);
    json.copy(padded);
    const pre = Buffer.alloc(16);
    pre.write(FIXTURE_MAGIC, 0, 'latin1');
    pre.writeUInt32LE(FIXTURE_VERSION, 8);
    pre.writeUInt32LE(padded.length, 12);
    const tmp = `${this.path}.partial`;
    const out = openSync(tmp, 'w');
    try {
      writeSync(out, pre);
      writeSync(out, padded);
      const body = openSync(this.#bodyPath, 'r');
      try {
        const buf = Buffer.allocUnsafe(1 << 20);
        for (;;) {
          const n = readSync(body, buf, 0, buf.length, null);
          if (n <= 0) break;
          writeSync(out, buf, 0, n);
        }
      } finally {
        closeSync(body);
      }
    } finally {
      closeSync(out);
    }
    renameSync(tmp, this.path);
    unlinkSync(this.#bodyPath);
  }

  /** Abandons the recording (removes the partial body). */
  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#fd);
    try { unlinkSync(this.#bodyPath); } catch { /* already gone */ }
  }
}

export interface FixtureFrame {
  probeId: number;
  count: number;
  byteLength: number;
  monoNs: bigint;
  /** where the frame starts in the file (for error messages) */
  offset: number;
  /** the body; valid until the next frame is read */
  buf: ArrayBuffer;
}

const DECIMAL = /^\d{1,20}$/;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks the header's shape (a hand-edited or foreign file must fail here, naming the field, not
 * later as a TypeError) and that its record layouts are the ones this decoder reads.
 */
function checkHeader(path: string, h: FixtureHeader): void {
  const bad = (field: string, why: string): never => { throw new FixtureFormatError(`${path}: header ${field} ${why}`); };
  if (h.version !== FIXTURE_VERSION) bad('version', `is ${JSON.stringify(h.version)}, this agent reads ${FIXTURE_VERSION}`);
  for (const f of ['startMonotonicNs', 'endMonotonicNs'] as const) if (typeof h[f] !== 'string' || !DECIMAL.test(h[f])) bad(f, `must be a decimal string, got ${JSON.stringify(h[f])}`);
  if (BigInt(h.endMonotonicNs) < BigInt(h.startMonotonicNs)) bad('endMonotonicNs', 'is before startMonotonicNs');
  for (const f of ['cgroups', 'processes'] as const) if (!Array.isArray(h[f])) bad(f, 'must be a list');
  h.cgroups.forEach((c, i) => { if (!isObj(c) || typeof c.id !== 'string' || typeof c.path !== 'string') bad(`cgroups[${i}]`, 'must be {id, path} strings'); });
  h.processes.forEach((p, i) => { if (!isObj(p) || !Number.isInteger(p.pid)) bad(`processes[${i}]`, 'must have an integer pid'); });
  const ids = new Set<number>();
  h.probes.forEach((p, i) => {
    const at = `probes[${i}]`;
    if (!isObj(p) || !Number.isInteger(p.id) || p.id < 0 || p.id > 0xffff || typeof p.name !== 'string') bad(at, 'must have an integer id (0-65535) and a name');
    if (ids.has(p.id)) bad(`${at}.id`, `${p.id} is used twice`);
    ids.add(p.id);
    if (p.layout !== undefined) {
      const l = p.layout as unknown as Record<string, unknown>;
      if (!isObj(l) || typeof l.struct !== 'string' || !Number.isInteger(l.size)) bad(`${at}.layout`, 'must have a struct name and an integer size');
      for (const k of ['pidOffset', 'typeOffset', 'typeSize'] as const) if (l[k] !== undefined && !Number.isInteger(l[k])) bad(`${at}.layout.${k}`, 'must be an integer');
    }
    if (p.decoder === 'kernel-events' && p.layout) checkLayout(path, at, p.name, p.layout);
  });
}

/** A kernel-events probe's recorded layout must match the decoder's (PROBE_LAYOUTS): otherwise
 * the fixture was recorded with other probe objects and would decode as garbage. */
function checkLayout(path: string, at: string, probe: string, l: RecordLayout): void {
  const known: readonly StructLayout[] = (PROBE_LAYOUTS as Record<string, readonly StructLayout[]>)[probe] ?? [EVENT_HEADER];
  const s = known.find((k) => k.name === l.struct);
  const hdr = s === EVENT_HEADER ? { pidOffset: EVENT_HEADER.fields.tgid.offset, typeOffset: EVENT_HEADER.fields.type.offset, typeSize: EVENT_HEADER.fields.type.size } : {};
  const want = s ? { struct: s.name, size: s.size, ...hdr } : undefined;
  const diff = !want ? `struct ${l.struct} is not one of ${known.map((k) => k.name).join(', ')}`
    : (Object.keys(want) as (keyof RecordLayout)[]).filter((k) => l[k] !== want[k]).map((k) => `${k} ${l[k]} (expected ${want[k]})`).join(', ');
  if (diff) throw new FixtureFormatError(`${path}: ${at} (${probe}) layout differs from this agent's decoder: ${diff}`);
}

/** Reads a fixture file frame by frame, with one reusable body buffer. */
export class FixtureReader {
  readonly header: FixtureHeader;
  readonly path: string;
  #fd: number;
  #pos: number;
  #size: number;
  #hdr = Buffer.alloc(FRAME_HEADER);
  #body: Buffer;
  #ended = false;
  /** records in the batch frames read so far (checked against the end frame's count) */
  #records = 0;
  endRecords: number | undefined;
  endMonoNs: bigint | undefined;

  constructor(path: string) {
    this.path = path;
    this.#fd = openSync(path, 'r');
    try {
      this.#size = fstatSync(this.#fd).size;
      const pre = Buffer.alloc(16);
      if (readSync(this.#fd, pre, 0, 16, 0) !== 16 || pre.toString('latin1', 0, 8) !== FIXTURE_MAGIC) {
        throw new FixtureFormatError(`${path}: not a kscope fixture (bad magic)`);
      }
      const version = pre.readUInt32LE(8);
      if (version !== FIXTURE_VERSION) throw new FixtureFormatError(`${path}: unsupported fixture version ${version}`);
      const hlen = pre.readUInt32LE(12);
      if (hlen > this.#size - 16 || hlen > 64 << 20) throw new FixtureFormatError(`${path}: header length ${hlen} out of range`);
      const h = Buffer.alloc(hlen);
      readSync(this.#fd, h, 0, hlen, 16);
      try {
        this.header = JSON.parse(h.toString('utf8')) as FixtureHeader;
      } catch (err) {
        throw new FixtureFormatError(`${path}: header is not valid JSON (${(err as Error).message})`);
      }
      if (this.header?.format !== 'kscope-fixture' || !Array.isArray(this.header.probes)) {
        throw new FixtureFormatError(`${path}: header is not a kscope fixture header`);
      }
      checkHeader(path, this.header);
      this.#pos = 16 + hlen;
      this.#body = Buffer.allocUnsafe(1 << 20);
    } catch (err) {
      closeSync(this.#fd);
      throw err;
    }
  }

  /** The next batch frame, or undefined at the end. Throws FixtureFormatError on corruption. */
  next(): FixtureFrame | undefined {
    if (this.#ended) return undefined;
    if (this.#pos + FRAME_HEADER > this.#size) throw new FixtureFormatError(`${this.path}: truncated (no end frame)`);
    readSync(this.#fd, this.#hdr, 0, FRAME_HEADER, this.#pos);
    const h = this.#hdr;
    const magic = h.readUInt32LE(0);
    const probeId = h.readUInt16LE(4);
    const count = h.readUInt32LE(8);
    const byteLength = h.readUInt32LE(12);
    const monoNs = h.readBigUInt64LE(16);
    this.#pos += FRAME_HEADER;
    if (magic === FRAME_END) {
      // the end frame counts every record written: a mismatch means lost or corrupt frames
      if (count !== this.#records) throw new FixtureFormatError(`${this.path}: end frame says ${count} records, the frames hold ${this.#records}`);
      this.#ended = true;
      this.endRecords = count;
      this.endMonoNs = monoNs;
      return undefined;
    }
    if (magic !== FRAME_BATCH) throw new FixtureFormatError(`${this.path}: bad frame magic at ${this.#pos - FRAME_HEADER}`);
    if (byteLength <= MAX_FRAME_BYTES && byteLength % 8 === 0 && this.#pos + byteLength > this.#size) {
      throw new FixtureFormatError(`${this.path}: truncated (frame at ${this.#pos - FRAME_HEADER} runs past the end of the file)`);
    }
    if (byteLength > MAX_FRAME_BYTES || this.#pos + byteLength > this.#size || byteLength % 8 !== 0) {
      throw new FixtureFormatError(`${this.path}: bad frame length ${byteLength} at ${this.#pos - FRAME_HEADER}`);
    }
    if (byteLength > this.#body.length) this.#body = Buffer.allocUnsafe(byteLength);
    readSync(this.#fd, this.#body, 0, byteLength, this.#pos);
    this.#pos += byteLength;
    this.#records += count;
    // hand out an ArrayBuffer whose offset 0 is the batch start, like the live bridge
    const ab = this.#body.byteOffset === 0 && this.#body.buffer.byteLength >= byteLength
      ? this.#body.buffer as ArrayBuffer
      : this.#copyOut(byteLength);
    return { probeId, count, byteLength, monoNs, offset: this.#pos - byteLength - FRAME_HEADER, buf: ab };
  }

  #own: ArrayBuffer | undefined;
  #copyOut(n: number): ArrayBuffer {
    if (!this.#own || this.#own.byteLength < n) this.#own = new ArrayBuffer(Math.max(n, 1 << 20));
    new Uint8Array(this.#own).set(this.#body.subarray(0, n));
    return this.#own;
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}
