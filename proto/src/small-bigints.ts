// Shared bigints for small non-negative int64 values (counts, flags, well-known ports). Decoding
// is bound by the garbage collector and a bigint is a heap object; bigints are immutable, so
// equal decoded values may be the same primitive. The table is filled whole on first use
// (filling it lazily would keep every young bigint it met alive into the old space) and kept
// small (a 65536-entry table cost more in cache misses than it saved in allocations).
export const SMALL_BIGINTS = 1 << 14;
let table: bigint[] | null = null;

/** The shared bigint for 0 ≤ v < SMALL_BIGINTS (the caller checks the range). */
export function smallBigInt(v: number): bigint {
  if (table === null) {
    const t: bigint[] = [];
    for (let k = 0; k < SMALL_BIGINTS; k++) t.push(BigInt(k));
    table = t;
  }
  return table[v]!;
}
