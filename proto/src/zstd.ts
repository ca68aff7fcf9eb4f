// zstd for the wire layer: an async codec (@mongodb-js/zstd, runs in libuv's thread pool) for
// request bodies, and a synchronous one (zstd-napi) for code that cannot await (Arrow IPC
// compression). Decompression is always bounded: a configured maximum output size is checked against
// the frame headers before any output is allocated, and frames without a declared size are
// decompressed in chunks that stop as soon as the limit is passed — a zip bomb costs at most the limit.
import { createRequire } from 'node:module';
import * as zstdNapi from 'zstd-napi';

const require = createRequire(import.meta.url);

interface ZstdNapiBinding {
  getFrameContentSize(frame: Uint8Array): number | null;
  findFrameCompressedSize(frame: Uint8Array): number;
  dStreamOutSize(): number;
  DCtx: new () => { decompressStream(dst: Uint8Array, src: Uint8Array): [number, number, number] };
}
// The package's top-level API has no bounded decompression; its binding exposes the primitives.
const binding = require('zstd-napi/binding') as ZstdNapiBinding;
// @mongodb-js/zstd 1.2.2's index.js drops the level argument; its native binding honours it.
// Loaded on first use: the agent's default path (OTel Arrow) only compresses synchronously, and
// each native zstd copy is ~5 MB of RSS.
type AsyncZstd = { compress(data: Buffer, level?: number): Promise<Buffer>; decompress(data: Buffer): Promise<Buffer> };
let asyncZstd: AsyncZstd | undefined;
const asyncBinding = (): AsyncZstd => (asyncZstd ??= require('@mongodb-js/zstd/bindings') as AsyncZstd);

/** Output would exceed the configured maximum (maps to gRPC RESOURCE_EXHAUSTED / HTTP 413). */
export class DecompressionLimitError extends Error {
  readonly code = 'RESOURCE_EXHAUSTED' as const;
  constructor(readonly limit: number, readonly declaredSize?: number) {
    super(
      declaredSize !== undefined
        ? `zstd: declared content size ${declaredSize} bytes exceeds the limit of ${limit} bytes`
        : `zstd: decompressed size exceeds the limit of ${limit} bytes`,
    );
    this.name = 'DecompressionLimitError';
  }
}

/** The input is not valid zstd (maps to gRPC INVALID_ARGUMENT / HTTP 400). */
export class ZstdDataError extends Error {
  readonly code = 'INVALID_ZSTD' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(`zstd: ${message}`, options);
    this.name = 'ZstdDataError';
  }
}

export const DEFAULT_ZSTD_LEVEL = 3;
const STREAM_CHUNK = binding.dStreamOutSize();

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Sum of the content sizes the frames declare, or null when a frame does not declare one.
 * Throws ZstdDataError for input that is not a sequence of zstd frames.
 */
export function zstdDeclaredSize(data: Uint8Array): number | null {
  let total = 0;
  let frame = data;
  try {
    while (frame.length > 0) {
      const size = binding.getFrameContentSize(frame);
      if (size === null) return null;
      total += size;
      frame = frame.subarray(binding.findFrameCompressedSize(frame));
    }
  } catch (err) {
    throw new ZstdDataError((err as Error).message, { cause: err });
  }
  if (data.length === 0) throw new ZstdDataError('empty input');
  return total;
}

/** Compress with level 1..19 (default 3) off the event loop. */
export async function zstdCompress(data: Uint8Array, level = DEFAULT_ZSTD_LEVEL): Promise<Buffer> {
  return asyncBinding().compress(asBuffer(data), level);
}

/** Synchronous compress (Arrow IPC's codec registry needs sync). */
export function zstdCompressSync(data: Uint8Array, level = DEFAULT_ZSTD_LEVEL): Buffer {
  return zstdNapi.compress(data, { compressionLevel: level });
}

/**
 * Decompress at most `maxOutputBytes`. Frames that declare their size are checked before anything is
 * allocated and decompressed off the event loop; others go through the bounded streaming path.
 * Throws DecompressionLimitError or ZstdDataError.
 */
export async function zstdDecompress(data: Uint8Array, maxOutputBytes: number): Promise<Buffer> {
  const declared = zstdDeclaredSize(data);
  if (declared === null) return zstdDecompressSync(data, maxOutputBytes);
  if (declared > maxOutputBytes) throw new DecompressionLimitError(maxOutputBytes, declared);
  let out: Buffer;
  try {
    out = await asyncBinding().decompress(asBuffer(data));
  } catch (err) {
    throw new ZstdDataError((err as Error).message, { cause: err });
  }
  if (out.length > maxOutputBytes) throw new DecompressionLimitError(maxOutputBytes);
  return out;
}

/** Synchronous bounded decompression (see zstdDecompress). */
export function zstdDecompressSync(data: Uint8Array, maxOutputBytes: number): Buffer {
  const declared = zstdDeclaredSize(data);
  if (declared !== null && declared > maxOutputBytes) throw new DecompressionLimitError(maxOutputBytes, declared);
  const dctx = new binding.DCtx();
  const chunks: Buffer[] = [];
  let total = 0;
  let input = data;
  // With a declared size one exact buffer suffices; otherwise chunks no larger than what is left of
  // the budget (+1 byte, so crossing the limit is detected without decompressing further).
  let dst = Buffer.allocUnsafe(declared !== null ? Math.max(declared, 1) : Math.min(STREAM_CHUNK, maxOutputBytes + 1));
  try {
    for (;;) {
      const [hint, produced, consumed] = dctx.decompressStream(dst, input);
      input = input.subarray(consumed);
      total += produced;
      if (total > maxOutputBytes) throw new DecompressionLimitError(maxOutputBytes);
      if (hint === 0 && input.length === 0) {
        if (produced > 0) chunks.push(dst.subarray(0, produced));
        break; // every frame decoded and flushed
      }
      if (produced === 0 && consumed === 0) throw new ZstdDataError(input.length === 0 ? 'truncated frame' : 'no progress decompressing');
      if (produced > 0) {
        chunks.push(dst.subarray(0, produced));
        dst = Buffer.allocUnsafe(Math.min(STREAM_CHUNK, maxOutputBytes - total + 1));
      }
    }
  } catch (err) {
    if (err instanceof DecompressionLimitError || err instanceof ZstdDataError) throw err;
    throw new ZstdDataError((err as Error).message, { cause: err });
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
}
