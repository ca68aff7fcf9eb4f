// zstd codec: async and sync round trips at several levels, and bounded decompression — declared
// sizes over the limit are refused before allocating, undeclared (streamed) frames stop at the limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zstdNapi from 'zstd-napi';
import {
  DecompressionLimitError,
  ZstdDataError,
  zstdCompress,
  zstdCompressSync,
  zstdDeclaredSize,
  zstdDecompress,
  zstdDecompressSync,
} from '../../proto/src/zstd.ts';
import { encodeTraces } from '../../proto/src/otlp/index.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';

const payload = encodeTraces(agentTraces(500));

/** A frame without a content-size header, as streaming compressors write it. */
function streamedFrame(data: Uint8Array): Buffer {
  const c = new zstdNapi.Compressor();
  c.setParameters({ compressionLevel: 3, contentSizeFlag: false });
  return c.compress(data);
}

test('async and sync codecs round-trip and interoperate; level is honoured', async () => {
  const l1 = await zstdCompress(payload, 1);
  const l19 = await zstdCompress(payload, 19);
  assert.ok(l19.length < l1.length, `level 19 (${l19.length}) must beat level 1 (${l1.length})`);
  assert.deepEqual(await zstdDecompress(l1, payload.length), payload);
  assert.deepEqual(zstdDecompressSync(l19, payload.length), payload);
  const s = zstdCompressSync(payload, 3);
  assert.deepEqual(await zstdDecompress(s, payload.length), payload);
  assert.equal(zstdDeclaredSize(s), payload.length);
});

test('declared size over the limit is refused before decompressing', async () => {
  const c = zstdCompressSync(payload); // zstd-napi writes the content size into the frame header
  await assert.rejects(zstdDecompress(c, payload.length - 1), (e: unknown) => e instanceof DecompressionLimitError && e.code === 'RESOURCE_EXHAUSTED' && e.declaredSize === payload.length);
  assert.throws(() => zstdDecompressSync(c, 1000), (e: unknown) => e instanceof DecompressionLimitError && e.declaredSize === payload.length);
  // @mongodb-js/zstd streams without a size header: bounded on the streaming path instead.
  const a = await zstdCompress(payload);
  await assert.rejects(zstdDecompress(a, payload.length - 1), DecompressionLimitError);
});

test('frames without a declared size are bounded while streaming (zip bomb)', async () => {
  const bomb = streamedFrame(Buffer.alloc(64 * 1024 * 1024)); // 64 MiB of zeros → a few KiB
  assert.equal(zstdDeclaredSize(bomb), null);
  assert.ok(bomb.length < 64 * 1024);
  const before = process.memoryUsage().arrayBuffers;
  await assert.rejects(zstdDecompress(bomb, 1024 * 1024), (e: unknown) => e instanceof DecompressionLimitError && e.declaredSize === undefined);
  assert.throws(() => zstdDecompressSync(bomb, 1024 * 1024), DecompressionLimitError);
  assert.ok(process.memoryUsage().arrayBuffers - before < 32 * 1024 * 1024, 'must not have materialised the bomb');
  // Within the limit the same streamed frame decodes exactly.
  const small = streamedFrame(payload);
  assert.deepEqual(await zstdDecompress(small, payload.length), payload);
  assert.throws(() => zstdDecompressSync(small, payload.length - 1), DecompressionLimitError);
});

test('concatenated frames decode in full; their declared sizes add up', async () => {
  const a = zstdCompressSync(payload.subarray(0, 1000));
  const b = zstdCompressSync(payload.subarray(1000));
  const both = Buffer.concat([a, b]);
  assert.equal(zstdDeclaredSize(both), payload.length);
  assert.deepEqual(await zstdDecompress(both, payload.length), payload);
  assert.deepEqual(zstdDecompressSync(Buffer.concat([streamedFrame(payload.subarray(0, 10)), b]), payload.length), Buffer.concat([payload.subarray(0, 10), payload.subarray(1000)]));
});

test('garbage and truncated frames → ZstdDataError', async () => {
  const c = zstdCompressSync(payload);
  await assert.rejects(zstdDecompress(Buffer.from('not zstd at all'), 1 << 20), ZstdDataError);
  await assert.rejects(zstdDecompress(new Uint8Array(0), 1 << 20), ZstdDataError);
  assert.throws(() => zstdDecompressSync(c.subarray(0, c.length - 10), 1 << 20), ZstdDataError);
  const s = streamedFrame(payload);
  assert.throws(() => zstdDecompressSync(s.subarray(0, s.length >> 1), 1 << 20), ZstdDataError);
});
