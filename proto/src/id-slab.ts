// Small byte strings (trace and span ids, two or three per span) as views into shared 64 KiB
// slabs: one ArrayBuffer per few thousand ids instead of one per id (a typed array with its own
// buffer is two heap objects). Used by the OTLP decoder and the agent's id source; both are
// synchronous, so they can share the current slab. A view keeps its slab alive, which is fine for
// ids: they live as long as their batch.
const SLAB_BYTES = 65536;

/** The current slab (live bindings: they change when slabSlot starts a new one). */
export let slabBuffer = new ArrayBuffer(SLAB_BYTES);
export let slab = new Uint8Array(slabBuffer);
let slabPos = 0;

/** Offset in `slab` of `len` (≤ 64 KiB) fresh bytes; write them, then take `slabView(offset, len)`. */
export function slabSlot(len: number): number {
  if (slabPos + len > SLAB_BYTES) {
    slabBuffer = new ArrayBuffer(SLAB_BYTES);
    slab = new Uint8Array(slabBuffer);
    slabPos = 0;
  }
  const o = slabPos;
  slabPos = o + len;
  return o;
}

/** The bytes at [o, o + len) of the current slab as their own Uint8Array. */
export function slabView(o: number, len: number): Uint8Array {
  return new Uint8Array(slabBuffer, o, len);
}
