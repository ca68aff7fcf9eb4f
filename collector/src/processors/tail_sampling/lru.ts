// Bounded set of trace keys with least-recently-used eviction (a Map keeps insertion order; a hit
// re-inserts the key at the young end).
export class LruSet {
  private readonly m = new Map<string, true>();
  evictions = 0;
  constructor(readonly capacity: number) {}

  get size(): number {
    return this.m.size;
  }

  add(key: string): void {
    if (this.capacity === 0) return;
    if (this.m.has(key)) this.m.delete(key);
    else if (this.m.size >= this.capacity) {
      this.m.delete(this.m.keys().next().value as string);
      this.evictions++;
    }
    this.m.set(key, true);
  }

  /** Membership test that refreshes the key's recency. */
  touch(key: string): boolean {
    if (!this.m.has(key)) return false;
    this.m.delete(key);
    this.m.set(key, true);
    return true;
  }

  has(key: string): boolean {
    return this.m.has(key);
  }

  delete(key: string): void {
    this.m.delete(key);
  }
}
