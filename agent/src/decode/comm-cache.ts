// Decodes fixed 16-byte NUL-padded comm fields, caching the strings so the common case (the
// same few process names over and over) costs four u32 reads and a compare, no allocation.

const decoder = new TextDecoder('utf-8');

export class CommCache {
  private readonly mask: number;
  private readonly keys: Uint32Array;
  private readonly values: (string | undefined)[];
  hits = 0;
  misses = 0;

  /** `slots` is rounded up to a power of two; the cache never grows beyond it. */
  constructor(slots = 256) {
    let n = 1;
    while (n < slots) n <<= 1;
    this.mask = n - 1;
    this.keys = new Uint32Array(n * 4);
    this.values = new Array<string | undefined>(n).fill(undefined);
  }

  /** Reads the 16-byte field at `off`. */
  get(dv: DataView, off: number): string {
    const w0 = dv.getUint32(off, true), w1 = dv.getUint32(off + 4, true);
    const w2 = dv.getUint32(off + 8, true), w3 = dv.getUint32(off + 12, true);
    let h = Math.imul(w0 ^ 0x9e3779b9, 0x85ebca6b);
    h = Math.imul(h ^ w1, 0xc2b2ae35);
    h = Math.imul(h ^ w2, 0x85ebca6b);
    h = Math.imul(h ^ w3, 0xc2b2ae35);
    const slot = (h ^ (h >>> 15)) & this.mask;
    const k = slot * 4;
    const cached = this.values[slot];
    if (cached !== undefined && this.keys[k] === w0 && this.keys[k + 1] === w1 &&
        this.keys[k + 2] === w2 && this.keys[k + 3] === w3) {
      this.hits++;
      return cached;
    }
    this.misses++;
    const s = decodeFixedString(new Uint8Array(dv.buffer, dv.byteOffset + off, 16));
    this.keys[k] = w0; this.keys[k + 1] = w1; this.keys[k + 2] = w2; this.keys[k + 3] = w3;
    this.values[slot] = s;
    return s;
  }
}

/** Bytes up to the first NUL (or the whole field), as UTF-8. */
export function decodeFixedString(bytes: Uint8Array): string {
  let n = bytes.indexOf(0);
  if (n < 0) n = bytes.length;
  return decoder.decode(bytes.subarray(0, n));
}
