// pid → process facts (comm, exe, cmdline, ppid). Filled from exec events and, on a miss, from the
// host's /proc; kept for a TTL after exit so events emitted just before exit still resolve. Bounded.
// Replay: a cache built from a fixture's recorded process table answers misses from that table in
// place of /proc (a recorded pid may be reused by an unrelated process on this host).
import { readFileSync, readlinkSync } from 'node:fs';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** Kernel task name (≤ 15 chars). */
  comm: string;
  /** Absolute executable path ('' when unreadable). */
  exe: string;
  /** Basename of exe, else of argv[0], else comm. */
  exeName: string;
  /** argv joined with spaces ('' for kernel threads or when unreadable). */
  cmdline: string;
  /** Start time in clock ticks since boot (/proc/PID/stat field 22): tells a reused pid apart. */
  startTicks: number;
  /** ms timestamp of exit, 0 while running. */
  exitedAt: number;
  /** Bumped on every exec of this pid, so interned resources know to rebuild. */
  generation: number;
}

/** One row of a recorded process table (fixture header `processes`). */
export interface RecordedProcess {
  pid: number;
  ppid: number;
  comm: string;
  exe: string;
  /** argv as recorded (a string is taken as already joined). */
  cmdline: readonly string[] | string;
}

export interface ProcessCacheConfig {
  procRoot: string;
  maxEntries: number;
  /** How long an exited process stays resolvable. */
  exitTtlMs: number;
  /** Longest cmdline kept (bytes); longer ones are cut. */
  maxCmdlineBytes: number;
}

export const defaultProcessCacheConfig: ProcessCacheConfig = { procRoot: '/proc', maxEntries: 16_384, exitTtlMs: 30_000, maxCmdlineBytes: 4096 };

export interface ExecFacts {
  ppid?: number;
  comm?: string;
  /** Filename from the exec event (sched_process_exec). */
  filename?: string;
  /** argv if the event carried it. */
  argv?: string[];
}

function basename(p: string): string {
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}

/** Parses /proc/PID/stat: comm may contain spaces and parentheses, so split at the last ')'. */
export function parseProcStat(text: string): { comm: string; ppid: number; startTicks: number } | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const comm = text.slice(open + 1, close);
  const rest = text.slice(close + 2).split(' ');
  // rest[0] = state (field 3), rest[1] = ppid (4), rest[19] = starttime (22)
  const ppid = Number(rest[1]);
  const startTicks = Number(rest[19]);
  if (!Number.isFinite(ppid)) return undefined;
  return { comm, ppid, startTicks: Number.isFinite(startTicks) ? startTicks : 0 };
}

export class ProcessCache {
  private readonly byPid = new Map<number, ProcessInfo>();
  private readonly exitListeners: Array<(pid: number) => void> = [];
  /** `reused`: entries dropped because their pid was taken by a new process (fork, start time). */
  readonly counters = { procReads: 0, procMisses: 0, execs: 0, exits: 0, evicted: 0, expired: 0, recordedDropped: 0, reused: 0 };
  /** Recorded facts by pid when seeded from a fixture; null when misses go to this host's /proc. */
  private readonly recorded: ReadonlyMap<number, RecordedProcess> | null;

  constructor(
    readonly cfg: ProcessCacheConfig = defaultProcessCacheConfig,
    private readonly now: () => number = Date.now,
    recorded?: Iterable<RecordedProcess>,
  ) {
    if (!recorded) {
      this.recorded = null;
      return;
    }
    // Bounded like the cache itself: rows past maxEntries are counted, not kept.
    const m = new Map<number, RecordedProcess>();
    for (const r of recorded) {
      if (!r || !Number.isSafeInteger(r.pid) || r.pid <= 0) continue;
      if (m.size >= cfg.maxEntries && !m.has(r.pid)) this.counters.recordedDropped++;
      else m.set(r.pid, r);
    }
    this.recorded = m;
  }

  /** A cache answering misses from a recorded process table only (replay); never reads /proc. */
  static fromRecorded(table: Iterable<RecordedProcess>, cfg: Partial<ProcessCacheConfig> = {}, now: () => number = Date.now): ProcessCache {
    return new ProcessCache({ ...defaultProcessCacheConfig, ...cfg }, now, table);
  }

  /** False when seeded from a recorded table: nothing is read from this host's /proc. */
  get hostLookups(): boolean {
    return this.recorded === null;
  }

  get size(): number {
    return this.byPid.size;
  }

  /** Called when an entry leaves the cache (expired after exit, evicted, replaced by a new exec). */
  onForget(cb: (pid: number) => void): void {
    this.exitListeners.push(cb);
  }

  /**
   * Cached entry, else read from /proc (undefined when the process is gone and was never seen). An
   * exited entry is kept for late events, but its pid may have gone to a new process meanwhile: only
   * then (never for a running one) /proc/PID/stat is read to compare start times.
   */
  get(pid: number): ProcessInfo | undefined {
    const e = this.byPid.get(pid);
    if (e !== undefined && (e.exitedAt === 0 || !this.reused(e))) return e;
    const fresh = this.readProc(pid, 0);
    if (fresh) this.put(fresh);
    return fresh;
  }

  peek(pid: number): ProcessInfo | undefined {
    return this.byPid.get(pid);
  }

  /** An exec event: the pid now runs a new image. /proc is re-read; event facts fill gaps. */
  onExec(pid: number, facts: ExecFacts = {}): ProcessInfo {
    this.counters.execs++;
    const old = this.byPid.get(pid);
    const gen = (old?.generation ?? 0) + 1;
    const fromProc = this.readProc(pid, gen);
    const info: ProcessInfo = fromProc ?? {
      pid,
      ppid: facts.ppid ?? 0,
      comm: facts.comm ?? '',
      exe: facts.filename ?? '',
      exeName: '',
      cmdline: facts.argv ? facts.argv.join(' ').slice(0, this.cfg.maxCmdlineBytes) : '',
      startTicks: 0,
      exitedAt: 0,
      generation: gen,
    };
    if (!info.exe && facts.filename) info.exe = facts.filename;
    if (!info.cmdline && facts.argv) info.cmdline = facts.argv.join(' ').slice(0, this.cfg.maxCmdlineBytes);
    if (!info.comm && facts.comm) info.comm = facts.comm;
    if (facts.ppid && !info.ppid) info.ppid = facts.ppid;
    info.exeName = basename(info.exe) || basename(info.cmdline.split(' ')[0] ?? '') || info.comm;
    if (old) this.forget(pid);
    this.put(info);
    return info;
  }

  /**
   * Drops an exited entry whose pid went to a new process (see get()); true when it did. A running
   * or unknown pid costs one Map lookup, nothing read.
   */
  revalidate(pid: number): boolean {
    const e = this.byPid.get(pid);
    return e !== undefined && e.exitedAt !== 0 && this.reused(e);
  }

  /** A fork event created `pid`: whatever is cached under it belongs to an earlier process. */
  onFork(pid: number): void {
    if (!this.byPid.has(pid)) return;
    this.counters.reused++;
    this.forget(pid);
  }

  /** An exit event: keep the entry for exitTtlMs. */
  onExit(pid: number): void {
    this.counters.exits++;
    const e = this.byPid.get(pid);
    if (e) e.exitedAt = this.now() || 1;
  }

  /** Drops exited entries past their TTL. Returns how many went. */
  sweep(): number {
    const t = this.now();
    let n = 0;
    for (const [pid, e] of this.byPid) {
      if (e.exitedAt !== 0 && t - e.exitedAt >= this.cfg.exitTtlMs) {
        this.forget(pid);
        this.counters.expired++;
        n++;
      }
    }
    return n;
  }

  private put(info: ProcessInfo): void {
    while (this.byPid.size >= this.cfg.maxEntries) {
      const oldest = this.byPid.keys().next().value;
      if (oldest === undefined) break;
      this.forget(oldest);
      this.counters.evicted++;
    }
    this.byPid.set(info.pid, info);
  }

  /** Whether an exited entry's pid now runs another process (forgotten if so). Not for replay. */
  private reused(e: ProcessInfo): boolean {
    if (this.recorded) return false;
    let st: ReturnType<typeof parseProcStat>;
    try {
      st = parseProcStat(readFileSync(`${this.cfg.procRoot}/${e.pid}/stat`, 'utf8'));
    } catch {
      return false; // gone: the exited entry is all there is
    }
    // Same start time: still the exited process (a zombie not yet reaped). startTicks 0 (facts from
    // an exec event, /proc already gone then) never matches a live process: that one is new.
    if (!st || st.startTicks === e.startTicks) return false;
    this.counters.reused++;
    this.forget(e.pid);
    return true;
  }

  private forget(pid: number): void {
    if (!this.byPid.delete(pid)) return;
    for (const l of this.exitListeners) l(pid);
  }

  private readProc(pid: number, generation: number): ProcessInfo | undefined {
    if (this.recorded) return this.readRecorded(pid, generation);
    const base = `${this.cfg.procRoot}/${pid}`;
    let st: ReturnType<typeof parseProcStat>;
    try {
      st = parseProcStat(readFileSync(`${base}/stat`, 'utf8'));
    } catch {
      this.counters.procMisses++;
      return undefined;
    }
    if (!st) return undefined;
    this.counters.procReads++;
    let exe = '';
    try {
      exe = readlinkSync(`${base}/exe`);
      if (exe.endsWith(' (deleted)')) exe = exe.slice(0, -10);
    } catch {
      // kernel thread, or no ptrace access to the process
    }
    let cmdline = '';
    try {
      const buf = readFileSync(`${base}/cmdline`);
      let end = Math.min(buf.length, this.cfg.maxCmdlineBytes);
      while (end > 0 && buf[end - 1] === 0) end--;
      cmdline = buf.subarray(0, end).toString('utf8').replace(/\0/g, ' ');
    } catch {
      // exited between reads
    }
    const exeName = basename(exe) || basename(cmdline.split(' ')[0] ?? '') || st.comm;
    return { pid, ppid: st.ppid, comm: st.comm, exe, exeName, cmdline, startTicks: st.startTicks, exitedAt: 0, generation };
  }

  /** The recorded table standing in for /proc: same derivations (exeName, cmdline cut) as readProc. */
  private readRecorded(pid: number, generation: number): ProcessInfo | undefined {
    const r = this.recorded!.get(pid);
    if (!r) {
      this.counters.procMisses++;
      return undefined;
    }
    this.counters.procReads++;
    const comm = typeof r.comm === 'string' ? r.comm : '';
    const exe = typeof r.exe === 'string' ? r.exe : '';
    const argv = typeof r.cmdline === 'string' ? r.cmdline : Array.isArray(r.cmdline) ? r.cmdline.join(' ') : '';
    const cmdline = argv.slice(0, this.cfg.maxCmdlineBytes);
    const exeName = basename(exe) || basename(cmdline.split(' ')[0] ?? '') || comm;
    const ppid = Number.isSafeInteger(r.ppid) && r.ppid > 0 ? r.ppid : 0;
    return { pid, ppid, comm, exe, exeName, cmdline, startTicks: 0, exitedAt: 0, generation };
  }
}
