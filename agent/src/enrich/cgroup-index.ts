// cgroup id → cgroup path. On cgroup v2 the id BPF reports (bpf_get_current_cgroup_id) is the kernfs
// id, which stat() shows as the directory's inode. The index learns ids three ways:
//   1. a full walk of the cgroup2 tree at start and then periodically (prunes removed cgroups);
//   2. on a miss, from the event's own pid: /proc/PID/cgroup names the path, stat confirms the inode;
//   3. on a miss that (2) cannot answer, a rate-limited rescan of the tree.
// Hosts: pure v2 (cgroup2 at /sys/fs/cgroup) and hybrid (cgroup2 at /sys/fs/cgroup/unified). On a
// v1-only host there are no ids to map; callers fall back to pathOfPid().
//
// Cgroup namespaces: the kernel shows /proc/PID/cgroup relative to the *reader's* namespace root, so
// an agent in its own cgroup namespace (containerd gives one to every non-privileged container on
// cgroup v2) reads `0::/../../kubepods-burstable.slice/…`. start() finds the host path of that root
// once (the directory whose cgroup.procs lists this process, less this process's own relative
// path), and (2) resolves such paths against it; the inode check still guards every answer.
//
// Replay: an index built from a fixture's recorded table (`new CgroupIndex(cfg, now, table)`) answers
// from that table only. It never reads this host's cgroupfs or /proc: the recorded ids are another
// host's inodes, so anything learned here would describe an unrelated local cgroup or process.
import { existsSync, readFileSync, statSync, type Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pathFromProcCgroup } from './cgroup-paths.ts';

export type CgroupLayout = 'unified' | 'hybrid' | 'legacy';

export interface CgroupIndexConfig {
  /** Where the host's cgroup filesystem is mounted (in a pod: the hostPath mount). */
  cgroupRoot: string;
  /** The host's /proc (kind: /procHost). */
  procRoot: string;
  /** Paths kept at most; the oldest learned are forgotten first. */
  maxEntries: number;
  /** Minimum time between two rescans triggered by misses. */
  rescanMinIntervalMs: number;
  /** Periodic full rescan (prunes removed cgroups); 0 disables. */
  rescanIntervalMs: number;
}

export const defaultCgroupIndexConfig: CgroupIndexConfig = {
  cgroupRoot: '/sys/fs/cgroup',
  procRoot: '/proc',
  maxEntries: 16_384,
  rescanMinIntervalMs: 500,
  rescanIntervalMs: 60_000,
};

/** Finds the cgroup2 mount under a cgroup root: the root itself (v2) or root/unified (hybrid). */
export function detectCgroup2(root: string): { layout: CgroupLayout; mount: string | null } {
  if (existsSync(join(root, 'cgroup.controllers'))) return { layout: 'unified', mount: root };
  const u = join(root, 'unified');
  if (existsSync(join(u, 'cgroup.controllers'))) return { layout: 'hybrid', mount: u };
  return { layout: 'legacy', mount: null };
}

/** One row of a recorded cgroup table (fixture header `cgroups`): id as a decimal string or number. */
export interface RecordedCgroup {
  id: string | number;
  path: string;
}

/** The cgroup id of a cgroup2 directory (its inode). */
export function cgroupIdOf(dir: string): number {
  return Number(statSync(dir, { bigint: true }).ino);
}

export class CgroupIndex {
  readonly layout: CgroupLayout;
  readonly mount: string | null;
  /** False for an index seeded from a recorded table: misses are final, nothing is read from this host. */
  readonly hostLookups: boolean;
  readonly counters = { scans: 0, learnedFromPid: 0, rescansSkipped: 0, evicted: 0, scanErrors: 0 };
  private paths = new Map<number, string>();
  private lastScan = 0;
  private scanning: Promise<number> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(id: number, path: string) => void> = [];
  /**
   * Host path (under the mount) of this process's cgroup-namespace root: '/' outside a namespace,
   * undefined until start() found it (or when it could not).
   */
  private nsRoot: string | undefined;

  constructor(
    readonly cfg: CgroupIndexConfig,
    private readonly now: () => number = Date.now,
    recorded?: readonly RecordedCgroup[],
  ) {
    if (recorded) {
      // No mount: start/rescan/learnFromPid are no-ops. An empty table (recorded on a v1-only
      // host) carries no usable ids, like a live legacy host.
      this.hostLookups = false;
      this.mount = null;
      this.layout = recorded.length > 0 ? 'unified' : 'legacy';
      for (const r of recorded) {
        const id = Number(r.id);
        if (Number.isSafeInteger(id) && id >= 0 && typeof r.path === 'string') this.paths.set(id, r.path);
      }
      this.enforceBound();
      return;
    }
    this.hostLookups = true;
    const d = detectCgroup2(cfg.cgroupRoot);
    this.layout = d.layout;
    this.mount = d.mount;
  }

  /** An index answering only from a recorded id → path table (replay); never touches this host. */
  static fromRecorded(table: readonly RecordedCgroup[], cfg: Partial<CgroupIndexConfig> = {}, now: () => number = Date.now): CgroupIndex {
    return new CgroupIndex({ ...defaultCgroupIndexConfig, ...cfg }, now, table);
  }

  /** Whether a miss may still be answered later (by a rescan or a live pid); false for a recorded table. */
  get canLearn(): boolean {
    return this.hostLookups && this.mount !== null;
  }

  get size(): number {
    return this.paths.size;
  }

  /** Called for each id learned after the first scan. */
  onLearn(cb: (id: number, path: string) => void): void {
    this.listeners.push(cb);
  }

  /** Host path of the cgroup namespace /proc paths are relative to ('/' for none; undefined: unknown). */
  get namespaceRoot(): string | undefined {
    return this.nsRoot;
  }

  /** Initial scan and periodic rescans. */
  async start(): Promise<void> {
    if (!this.mount) return;
    if (this.nsRoot === undefined) this.nsRoot = await this.findNamespaceRoot(this.mount);
    await this.rescan();
    if (this.cfg.rescanIntervalMs > 0 && !this.timer) {
      this.timer = setInterval(() => void this.rescan(), this.cfg.rescanIntervalMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  pathOf(id: number): string | undefined {
    return this.paths.get(id);
  }

  /**
   * Learns `id` from a live process: reads its unified cgroup path and checks the inode. Returns the
   * path, or undefined when the process is gone, is in another cgroup now, or the host is v1-only.
   */
  learnFromPid(pid: number, id: number): string | undefined {
    if (!this.mount) return undefined;
    let text: string;
    try {
      text = readFileSync(`${this.cfg.procRoot}/${pid}/cgroup`, 'utf8');
    } catch {
      return undefined;
    }
    const { unified } = pathFromProcCgroup(text);
    const path = unified ? this.hostPath(unified) : undefined;
    if (path === undefined) return undefined;
    try {
      if (cgroupIdOf(join(this.mount, path)) !== id) return undefined;
    } catch {
      return undefined; // already removed (or relative to a namespace root we could not find)
    }
    this.put(id, path);
    this.counters.learnedFromPid++;
    return path;
  }

  /** v1 / unknown-id fallback: the most container-like path in /proc/PID/cgroup. */
  pathOfPid(pid: number): string | undefined {
    if (!this.hostLookups) return undefined;
    try {
      const { unified, best } = pathFromProcCgroup(readFileSync(`${this.cfg.procRoot}/${pid}/cgroup`, 'utf8'));
      // A relative v2 path that cannot be resolved still names its pod and container segments.
      return (best === unified ? this.hostPath(best) ?? best : best) || undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * A v2 path from /proc/PID/cgroup as a path under the mount: resolved against our namespace root.
   * Undefined when it climbs out of a namespace root that is not known.
   */
  private hostPath(p: string): string | undefined {
    const r = this.nsRoot;
    if (r !== undefined && r !== '/') return posix.join(r, p); // normalises the '..' segments
    return p === '/..' || p.startsWith('/../') ? undefined : p;
  }

  /**
   * The host path of our cgroup-namespace root. Outside a namespace /proc/self/cgroup names our own
   * cgroup, whose cgroup.procs lists us: one read. Inside one it names a path relative to the root
   * ('/', usually): walk the tree (once, unbounded by maxEntries) for the directory listing our pid
   * and strip that relative part. cgroup.procs shows pids in the reader's pid namespace, so our own
   * pid matches with or without hostPID.
   */
  private async findNamespaceRoot(mount: string): Promise<string | undefined> {
    let self: string;
    try {
      self = pathFromProcCgroup(await readFile('/proc/self/cgroup', 'utf8')).unified;
    } catch {
      return undefined;
    }
    if (!self || self === '/..' || self.startsWith('/../')) return undefined; // moved out of its own root: no way to tell
    const pid = String(process.pid);
    const lists = async (rel: string): Promise<boolean> => {
      try {
        return (await readFile(join(mount, rel, 'cgroup.procs'), 'utf8')).split('\n').includes(pid);
      } catch {
        return false;
      }
    };
    if (await lists(self)) return '/';
    const selfDepth = self.split('/').filter(Boolean).length;
    const stack: string[] = ['/'];
    while (stack.length > 0) {
      const rel = stack.pop()!;
      if (rel !== '/' && (await lists(rel))) {
        // A process is in one cgroup: this is ours. Its path must end with what we see as our own.
        const segs = rel.split('/').filter(Boolean);
        if (selfDepth > 0 && segs.slice(-selfDepth).join('/') !== self.slice(1)) return undefined; // moved meanwhile
        return '/' + segs.slice(0, segs.length - selfDepth).join('/');
      }
      let entries: Dirent[];
      try {
        entries = await readdir(rel === '/' ? mount : mount + rel, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) if (e.isDirectory()) stack.push(rel === '/' ? '/' + e.name : rel + '/' + e.name);
    }
    return undefined;
  }

  /** Asks for a rescan; ignored (false) within rescanMinIntervalMs of the last one. */
  requestRescan(): boolean {
    if (!this.mount) return false;
    if (this.scanning || this.now() - this.lastScan < this.cfg.rescanMinIntervalMs) {
      this.counters.rescansSkipped++;
      return false;
    }
    void this.rescan();
    return true;
  }

  /** Walks the whole cgroup2 tree; concurrent calls share one walk. Resolves to the number of new ids. */
  rescan(): Promise<number> {
    if (!this.mount) return Promise.resolve(0);
    if (this.scanning) return this.scanning;
    this.lastScan = this.now();
    this.scanning = this.walk(this.mount).finally(() => {
      this.scanning = undefined;
      this.lastScan = this.now();
    });
    return this.scanning;
  }

  private async walk(mount: string): Promise<number> {
    this.counters.scans++;
    const seen = new Map<number, string>();
    const stack: string[] = ['/'];
    while (stack.length > 0 && seen.size < this.cfg.maxEntries) {
      const rel = stack.pop()!;
      const abs = rel === '/' ? mount : mount + rel;
      let ino: number;
      let entries: Dirent[];
      try {
        ino = Number((await stat(abs, { bigint: true })).ino);
        entries = await readdir(abs, { withFileTypes: true });
      } catch {
        continue; // removed while walking
      }
      seen.set(ino, rel);
      for (const e of entries) if (e.isDirectory()) stack.push(rel === '/' ? '/' + e.name : rel + '/' + e.name);
    }
    let added = 0;
    const fresh = this.paths.size > 0;
    for (const [id, p] of seen) {
      if (!this.paths.has(id)) {
        added++;
        if (fresh) for (const l of this.listeners) l(id, p);
      }
    }
    // Ids learned from a pid during the walk stay; removed cgroups go.
    for (const id of this.paths.keys()) if (!seen.has(id) && seen.size < this.cfg.maxEntries) this.paths.delete(id);
    for (const [id, p] of seen) this.paths.set(id, p);
    this.enforceBound();
    return added;
  }

  private put(id: number, path: string): void {
    const had = this.paths.has(id);
    this.paths.set(id, path);
    if (!had) {
      this.enforceBound();
      for (const l of this.listeners) l(id, path);
    }
  }

  private enforceBound(): void {
    while (this.paths.size > this.cfg.maxEntries) {
      const oldest = this.paths.keys().next().value;
      if (oldest === undefined) break;
      this.paths.delete(oldest);
      this.counters.evicted++;
    }
  }
}
