// Consistent hash ring: each endpoint owns `virtualNodes` points on a 32-bit circle; a key
// belongs to the first point clockwise from its hash. Every instance that sees the same member
// list builds the same ring, so all load-balancers route a trace id to the same backend, and a
// membership change moves only the keys of the arcs that changed owner (≈1/N on adding the Nth).

/** murmur3 fmix32: final avalanche so close inputs land far apart. */
function fmix32(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// Seeded, and unlike tail sampling's probabilistic policy (64-bit FNV-1a, contrib's), so which
// backend a trace lands on is independent of whether a probabilistic policy keeps it.
const RING_SEED = 0x9747b28c;

/** 32-bit hash of bytes (FNV-1a core, seeded, murmur finaliser). No allocation. */
export function hashBytes(b: Uint8Array, seed = RING_SEED): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < b.length; i++) { h ^= b[i]; h = Math.imul(h, 0x01000193); }
  return fmix32(h);
}

/** 32-bit hash of a string's UTF-16 code units (keys such as service names). */
export function hashString(s: string, seed = RING_SEED): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h ^= c & 0xff; h = Math.imul(h, 0x01000193);
    h ^= c >>> 8; h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

export class HashRing {
  /** Sorted point positions. */
  private readonly points: Uint32Array;
  /** owner[i] indexes `members` for points[i]. */
  private readonly owner: Uint16Array;
  /** Sorted, de-duplicated endpoints. */
  readonly members: readonly string[];

  constructor(endpoints: readonly string[], readonly virtualNodes = 150) {
    const members = [...new Set(endpoints)].sort();
    if (members.length > 65535) throw new RangeError('at most 65535 ring members');
    this.members = members;
    const n = members.length * virtualNodes;
    const pos = new Uint32Array(n);
    const own = new Uint16Array(n);
    let k = 0;
    for (let m = 0; m < members.length; m++) {
      for (let v = 0; v < virtualNodes; v++) {
        pos[k] = hashString(`${members[m]}#${v}`);
        own[k] = m;
        k++;
      }
    }
    // Sort point indexes by position; ties (rare) broken by member order so every instance agrees.
    const idx = Array.from({ length: n }, (_, i) => i);
    idx.sort((a, b) => pos[a] - pos[b] || own[a] - own[b]);
    this.points = new Uint32Array(n);
    this.owner = new Uint16Array(n);
    for (let i = 0; i < n; i++) { this.points[i] = pos[idx[i]]; this.owner[i] = own[idx[i]]; }
  }

  get size(): number {
    return this.members.length;
  }

  /** Index into `members` owning the hash `h`; -1 if the ring is empty. */
  ownerIndexOfHash(h: number): number {
    const pts = this.points;
    const n = pts.length;
    if (n === 0) return -1;
    let lo = 0, hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pts[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owner[lo === n ? 0 : lo];
  }

  /** Endpoint owning a byte key (a trace id); undefined if the ring is empty. */
  locateBytes(key: Uint8Array): string | undefined {
    const i = this.ownerIndexOfHash(hashBytes(key));
    return i < 0 ? undefined : this.members[i];
  }

  locateString(key: string): string | undefined {
    const i = this.ownerIndexOfHash(hashString(key));
    return i < 0 ? undefined : this.members[i];
  }
}
