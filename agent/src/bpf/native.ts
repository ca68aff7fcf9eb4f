// Loads the N-API addon (agent/native, built by `npm run build:native`) and types its surface.
// Only agent/src/bpf talks to it directly; everything else uses BpfObject.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

declare const nativeHandle: unique symbol;
/** Opaque handle to an open libbpf object. */
export type ObjectHandle = { readonly [nativeHandle]: 'object' };
/** Opaque handle to a ring reader. */
export type ReaderHandle = { readonly [nativeHandle]: 'reader' };

export interface NativeProgramInfo {
  name: string;
  section: string;
  type: string;
  autoload: boolean;
  loaded: boolean;
  attached: boolean;
}

export interface NativeMapInfo {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  internal: boolean;
}

export interface NativeGlobalInfo {
  name: string;
  section: string;
  offset: number;
  size: number;
}

export interface NativeAttachResult {
  program: string;
  ok: boolean;
  errno?: number;
  error?: string;
  log?: string;
}

export interface NativeBtfStruct {
  name: string;
  kind: 'struct' | 'union';
  size: number;
  members: { name: string; offsetBits: number; sizeBits: number }[];
}

export interface NativeReaderStats {
  records: number;
  bytes: number;
  batches: number;
  deliveredBatches: number;
  backpressureWaits: number;
  backpressureNs: number;
  droppedOnStop: number;
  oversize: number;
  pollErrors: number;
  callbackErrors: number;
  /** batch ArrayBuffers the callback detached (transferred) and the reader replaced */
  renewedBuffers: number;
  /** detached batch buffers that could not be replaced (the pool shrank) */
  lostBuffers: number;
  poolSize: number;
  batchBytes: number;
  running: boolean;
}

export type NativeBatchCallback = (buf: ArrayBuffer, byteLength: number, count: number) => void;

export interface NativeOpenOptions {
  /** resolve CO-RE relocations against this BTF file instead of the running kernel's */
  btfCustomPath?: string;
}

export interface NativeBridge {
  open(path: string, opts?: NativeOpenOptions): ObjectHandle;
  close(h: ObjectHandle): void;
  programs(h: ObjectHandle): NativeProgramInfo[];
  maps(h: ObjectHandle): NativeMapInfo[];
  globals(h: ObjectHandle): NativeGlobalInfo[];
  setGlobal(h: ObjectHandle, name: string, value: Uint8Array): void;
  getGlobal(h: ObjectHandle, name: string): Buffer;
  setAutoload(h: ObjectHandle, prog: string, on: boolean): void;
  setMaxEntries(h: ObjectHandle, map: string, n: number): void;
  load(h: ObjectHandle): void;
  attach(h: ObjectHandle, prog: string): NativeAttachResult;
  detach(h: ObjectHandle, prog: string): boolean;
  mapId(h: ObjectHandle, map: string): number;
  mapLookup(h: ObjectHandle, map: string, key: Uint8Array): Buffer | null;
  mapUpdate(h: ObjectHandle, map: string, key: Uint8Array, value: Uint8Array): void;
  mapDelete(h: ObjectHandle, map: string, key: Uint8Array): boolean;
  mapEntries(h: ObjectHandle, map: string, limit?: number): [Buffer, Buffer][];
  btfStruct(h: ObjectHandle, name: string): NativeBtfStruct | null;
  openRingBuffer(h: ObjectHandle, map: string, onBatch: NativeBatchCallback, batchBytes: number,
    poolSize: number, pollTimeoutMs: number): ReaderHandle;
  readerStop(r: ReaderHandle, onDone?: () => void): void;
  readerStats(r: ReaderHandle): NativeReaderStats;
  readerRef(r: ReaderHandle, on: boolean): void;
  clocks(): [bigint, bigint];
  libbpfLog(): string;
  numPossibleCpus(): number;
}

const here = dirname(fileURLToPath(import.meta.url));
/** Where node-gyp puts the addon. */
export const addonPath = resolve(here, '../../native/build/Release/bpf_bridge.node');

let cached: NativeBridge | undefined;
let loadError: Error | undefined;

/** The addon, loaded once. Throws a clear error when it has not been built. */
export function native(): NativeBridge {
  if (cached) return cached;
  if (loadError) throw loadError;
  if (!existsSync(addonPath)) {
    loadError = new Error(`native addon not built: ${addonPath} is missing (run \`npm run build:native\`)`);
    throw loadError;
  }
  try {
    cached = createRequire(import.meta.url)(addonPath) as NativeBridge;
    return cached;
  } catch (err) {
    loadError = new Error(`cannot load native addon ${addonPath}: ${(err as Error).message}`, { cause: err });
    throw loadError;
  }
}

/** True when the addon is built and loads. */
export function nativeAvailable(): boolean {
  try {
    native();
    return true;
  } catch {
    return false;
  }
}
