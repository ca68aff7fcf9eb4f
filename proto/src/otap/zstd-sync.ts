// Synchronous ZSTD for Arrow IPC body buffers (apache-arrow's codec contract and our own IPC
// writer/reader are synchronous; @mongodb-js/zstd is async only). zstd-napi wraps libzstd.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const binding = require('zstd-napi/binding.js') as {
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number };
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  compressBound(n: number): number;
};

let cctx: InstanceType<typeof binding.CCtx> | null = null;
let dctx: InstanceType<typeof binding.DCtx> | null = null;

let scratch = new Uint8Array(1 << 16);

/** Compresses into a reused scratch buffer and returns a right-sized copy. */
export function zstdCompressSync(src: Uint8Array, level = 3): Uint8Array {
  cctx ??= new binding.CCtx();
  const bound = binding.compressBound(src.byteLength);
  if (bound > scratch.length) scratch = new Uint8Array(Math.max(bound, scratch.length * 2));
  const n = cctx.compress(scratch, src, level);
  return scratch.slice(0, n);
}

/**
 * Arrow IPC compressed-buffer layout in one copy: int64 LE uncompressed length, then the zstd
 * frame. Null when the frame would not be smaller than `src` (the caller stores it raw).
 */
export function zstdCompressPrefixed(src: Uint8Array, level = 3): Uint8Array | null {
  cctx ??= new binding.CCtx();
  const bound = binding.compressBound(src.byteLength) + 8;
  if (bound > scratch.length) scratch = new Uint8Array(Math.max(bound, scratch.length * 2));
  const n = cctx.compress(scratch.subarray(8), src, level);
  if (n >= src.byteLength) return null;
  new DataView(scratch.buffer, scratch.byteOffset, 8).setBigInt64(0, BigInt(src.byteLength), true);
  return scratch.slice(0, 8 + n);
}

/**
 * Decompresses into a buffer of exactly `expected` bytes: libzstd refuses to write past it, so a
 * frame that would expand beyond what the sender declared (and we accepted) fails instead of
 * allocating. A frame that yields fewer bytes than declared is rejected too.
 */
export function zstdDecompressBounded(src: Uint8Array, expected: number): Uint8Array {
  dctx ??= new binding.DCtx();
  const dst = new Uint8Array(expected);
  let n: number;
  try {
    n = dctx.decompress(dst, src);
  } catch (e) {
    throw new ZstdFrameError(`zstd: ${(e as Error).message}`);
  }
  if (n !== expected) throw new ZstdFrameError(`zstd: frame holds ${n} bytes, ${expected} declared`);
  return dst;
}

export class ZstdFrameError extends Error {
  override name = 'ZstdFrameError';
}
