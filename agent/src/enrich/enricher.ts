// (cgroup id, tgid) → interned Resource. The hot path is a last-hit check, then one Map lookup by
// tgid and a cgroup-id compare, returning a shared, immutable Resource; everything else (path
// learning, pod lookup, /proc reads, attribute building) runs once per new cgroup or pid and is
// cached until the pod changes.
//
// Events from a cgroup that is not known yet (new cgroup not in the index, pod not yet seen by the
// informer, container id not yet in the pod status) are held up to `holdMs` in a bounded queue,
// retried every `retryIntervalMs`, then released through `onRelease` — with Pod metadata when it
// arrived in time, else without (counted as `releasedUnresolved`).
import { ConfigError } from '../../../collector/src/component/errors.ts';
import type { KeyValue, Resource } from '../../../proto/src/model.ts';
import { containerById, type ContainerMeta, type PodMeta } from '../../../lib/k8s/pod-model.ts';
import type { PodStore } from '../../../lib/k8s/pod-store.ts';
import { RateLimitedLog, silentLogger, type Logger } from '../../../lib/log.ts';
import { buildResource, cgroupAttributes, type AttributeOptions } from './attributes.ts';
import { CgroupIndex, cgroupIdOf } from './cgroup-index.ts';
import { parseCgroupPath, type CgroupPathInfo } from './cgroup-paths.ts';
import { ProcessCache, type ExecFacts } from './process-cache.ts';

export interface EnricherConfig {
  /** Host /proc (kind: /procHost). */
  procRoot: string;
  /** Host cgroup filesystem root; cgroup2 is found there or at <root>/unified. */
  cgroupRoot: string;
  /** k8s.node.name for processes outside pods; defaults to $NODE_NAME. */
  nodeName: string;
  /** cgroup entries (with their interned resources) kept at most. */
  maxCgroups: number;
  /** Interned (cgroup, pid) resources kept at most. */
  maxResources: number;
  /** cgroup id → path entries kept at most. */
  maxCgroupPaths: number;
  /** How long an event from an unknown cgroup/pod waits for metadata. */
  holdMs: number;
  /** Held events at most; beyond, events are emitted at once with what is known (counted). */
  maxHeld: number;
  retryIntervalMs: number;
  rescanMinIntervalMs: number;
  rescanIntervalMs: number;
  /** Processes kept at most, and how long an exited one stays resolvable. */
  maxProcesses: number;
  processExitTtlMs: number;
  /** Emit process.command_line (opt-in: argv may hold secrets). */
  commandLine: boolean;
  /** Pod label keys emitted as k8s.pod.label.<key>. */
  podLabels: string[];
}

export function defaultEnricherConfig(): EnricherConfig {
  return {
    procRoot: '/proc',
    cgroupRoot: '/sys/fs/cgroup',
    nodeName: process.env.NODE_NAME ?? '',
    maxCgroups: 4096,
    maxResources: 32_768,
    maxCgroupPaths: 16_384,
    holdMs: 2000,
    maxHeld: 10_000,
    retryIntervalMs: 100,
    rescanMinIntervalMs: 500,
    rescanIntervalMs: 60_000,
    maxProcesses: 16_384,
    processExitTtlMs: 30_000,
    commandLine: false,
    podLabels: [],
  };
}

/** Applies defaults; errors name the field (`enrich.holdMs`). */
export function validateEnricherConfig(raw: unknown, path = 'enrich'): EnricherConfig {
  const d = defaultEnricherConfig();
  if (raw === undefined || raw === null) return d;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(path, 'must be an object');
  const r = raw as Record<string, unknown>;
  const out = { ...d } as Record<string, unknown>;
  for (const [k, v] of Object.entries(r)) {
    if (!(k in d)) throw new ConfigError(`${path}.${k}`, 'unknown field');
    const def = (d as unknown as Record<string, unknown>)[k];
    if (typeof def === 'number') {
      const zeroOk = k === 'rescanIntervalMs' || k === 'holdMs';
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || (!zeroOk && v === 0)) throw new ConfigError(`${path}.${k}`, `must be a ${zeroOk ? 'non-negative' : 'positive'} integer`);
    } else if (typeof def === 'boolean') {
      if (typeof v !== 'boolean') throw new ConfigError(`${path}.${k}`, 'must be a boolean');
    } else if (typeof def === 'string') {
      if (typeof v !== 'string') throw new ConfigError(`${path}.${k}`, 'must be a string');
    } else if (Array.isArray(def)) {
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ConfigError(`${path}.${k}`, 'must be a list of strings');
    }
    out[k] = v;
  }
  return out as unknown as EnricherConfig;
}

/**
 * Called for each held event once it resolves or its hold expires. `resolved` is false when the
 * event goes out without the metadata it waited for (cgroup never found, pod never seen).
 */
export type ReleaseHandler<T> = (item: T, resource: Resource, timestampNs: bigint, resolved: boolean) => void;

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

function removeFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (s && s.delete(v) && s.size === 0) m.delete(k);
}

const PENDING = 0;
const READY = 1;
const STALE = 2; // was ready, pod changed: rebuild on next use, never hold again
/** Id of entries kept in byPath (resolved per pid), not in the cgroup map. */
const PID_KEYED = -1;

class CgroupEntry {
  state = PENDING;
  path: string | undefined;
  info: CgroupPathInfo | undefined;
  pod: PodMeta | undefined;
  container: ContainerMeta | undefined;
  /** Pod/container attributes shared by every pid of this cgroup. */
  base: KeyValue[] = [];
  /** Released without full metadata: path never found, or the path names a pod the API did not give us. */
  unresolved = false;
  readonly byPid = new Map<number, Resource>();
  ref = false;
  held = 0;
  /** While pending, the next time a lookup may run (a burst from one new cgroup costs one lookup per retry). */
  nextTry = 0;
  /** Keys this entry is filed under in byPodUid / byContainer: removal must find every one. */
  podKey: string | undefined = undefined;
  containerKey: string | undefined = undefined;
  /** Pid-keyed entries only: the pids pidEntry maps here (the entry goes with its last pid). */
  pids: Set<number> | undefined = undefined;
  /** For entries keyed by pid (v1 hosts, cgroup id of the root): the path this entry stands for. */
  constructor(
    readonly id: number,
    readonly deadline: number,
  ) {}
}

/** The pid's current interned resource: one Map lookup and one compare on the hot path. */
interface HotSlot {
  cg: number;
  res: Resource;
  entry: CgroupEntry;
  /** The entry of `cg` (differs from `entry` for pid-keyed resolution): holds the held count. */
  owner: CgroupEntry;
}

interface Held<T> {
  cg: number;
  tgid: number;
  ts: bigint;
  item: T;
  deadline: number;
}

export interface EnricherDeps<T> {
  logger?: Logger;
  /** Pod metadata; null/absent when Kubernetes is not configured. */
  pods?: PodStore | null;
  onRelease?: ReleaseHandler<T>;
  now?: () => number;
  /** Supplied for tests; built from the config otherwise. */
  index?: CgroupIndex;
  processes?: ProcessCache;
}

export class Enricher<T = unknown> {
  readonly index: CgroupIndex;
  readonly processes: ProcessCache;
  readonly counters = {
    slowPath: 0,
    /** cgroup resolution attempts (path, pod, container lookups). */
    lookups: 0,
    cgroupsResolved: 0,
    resourcesBuilt: 0,
    held: 0,
    releasedResolved: 0,
    releasedUnresolved: 0,
    holdOverflow: 0,
    invalidations: 0,
    evictedCgroups: 0,
    evictedResources: 0,
    unknownCgroups: 0,
    /** Pid-keyed (byPath) entries evicted at maxCgroups. */
    evictedPathEntries: 0,
    /** Entries dropped because their pod left the PodStore (tombstone expired or evicted). */
    prunedPodEntries: 0,
  };
  private readonly cgroups = new Map<number, CgroupEntry>();
  /** Entries for pid-keyed resolution (v1-only hosts, processes whose cgroup id is the v2 root). */
  private readonly byPath = new Map<string, CgroupEntry>();
  private readonly pidEntry = new Map<number, CgroupEntry>();
  /**
   * Secondary indexes over `cgroups` and `byPath` only: an entry is filed under at most one key of
   * each (CgroupEntry.podKey/containerKey) and unfiled whenever it leaves its primary cache, so they
   * never outgrow those caches nor keep a removed entry's PodMeta alive.
   */
  private readonly byPodUid = new Map<string, Set<CgroupEntry>>();
  /** Entries whose path names a container but no pod: a pod reporting that container id re-opens them. */
  private readonly byContainer = new Map<string, Set<CgroupEntry>>();
  private readonly hot = new Map<number, HotSlot>();
  private resourceCount = 0;
  private lastCg = -1;
  private lastPid = -1;
  private lastRes: Resource | undefined;
  private held: Array<Held<T>> = [];
  private timer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly attrOpts: AttributeOptions;
  private readonly pods: PodStore | null;
  private readonly log: Logger;
  private readonly rl: RateLimitedLog;
  private readonly now: () => number;
  private onRelease: ReleaseHandler<T>;
  private rootId = -1;
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  /** The pid whose exec is being recorded: the process cache forgetting its old image is no exit. */
  private execPid = -1;

  constructor(
    readonly cfg: EnricherConfig,
    deps: EnricherDeps<T> = {},
  ) {
    this.now = deps.now ?? Date.now;
    this.log = deps.logger ?? silentLogger();
    this.rl = new RateLimitedLog(this.log, 60_000, 1);
    this.pods = deps.pods ?? null;
    this.onRelease = deps.onRelease ?? (() => {});
    this.index =
      deps.index ??
      new CgroupIndex(
        {
          cgroupRoot: cfg.cgroupRoot,
          procRoot: cfg.procRoot,
          maxEntries: cfg.maxCgroupPaths,
          rescanMinIntervalMs: cfg.rescanMinIntervalMs,
          rescanIntervalMs: cfg.rescanIntervalMs,
        },
        this.now,
      );
    this.processes =
      deps.processes ??
      new ProcessCache({ procRoot: cfg.procRoot, maxEntries: cfg.maxProcesses, exitTtlMs: cfg.processExitTtlMs, maxCmdlineBytes: 4096 }, this.now);
    this.attrOpts = { nodeName: cfg.nodeName, podLabels: cfg.podLabels, commandLine: cfg.commandLine };
    this.processes.onForget((pid) => this.dropPid(pid, pid !== this.execPid));
    this.index.onLearn((id) => {
      // A cgroup given up on (released without a path) may be resolvable now.
      const e = this.cgroups.get(id);
      if (e && e.path === undefined) {
        if (e.state === READY) this.invalidate(e);
        else e.nextTry = 0;
      }
    });
    if (this.pods) this.unsubscribe = this.pods.onChange((pod, change) => this.onPodChange(pod, change));
  }

  setReleaseHandler(h: ReleaseHandler<T>): void {
    this.onRelease = h;
  }

  /** Scans the cgroup tree and starts the process-cache sweeper. */
  async start(): Promise<void> {
    await this.index.start();
    if (this.index.mount) {
      try {
        this.rootId = cgroupIdOf(this.index.mount);
      } catch {
        this.rootId = -1;
      }
    }
    if (this.index.layout === 'legacy' && this.index.hostLookups) this.rl.info('layout', { cgroupRoot: this.cfg.cgroupRoot }, 'no cgroup2 hierarchy: resolving containers from /proc/PID/cgroup');
    if (this.index.canLearn) {
      const nsRoot = this.index.namespaceRoot;
      if (nsRoot === undefined) this.rl.warn('cgroupns', { cgroupRoot: this.cfg.cgroupRoot }, 'own cgroup not found under the cgroup2 mount: /proc/PID/cgroup paths relative to a cgroup namespace cannot be resolved (new cgroups wait for a rescan)');
      else if (nsRoot !== '/') this.rl.info('cgroupns', { namespaceRoot: nsRoot }, 'in a cgroup namespace: /proc/PID/cgroup paths are resolved against its root');
    }
    if (!this.sweepTimer) {
      this.sweepTimer = setInterval(() => this.sweep(), Math.max(1000, Math.floor(this.cfg.processExitTtlMs / 4)));
      this.sweepTimer.unref();
    }
  }

  /** Releases every held event (with what is known) and stops timers. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.timer = this.sweepTimer = undefined;
    this.index.stop();
    this.unsubscribe?.();
    this.flushHeld(true);
  }

  /**
   * Hot path, never holds: the interned Resource for (cgroup, tgid). The same object is returned
   * until the pod's metadata changes or the process execs. While a cgroup is still pending, a
   * best-effort resource is built (not interned).
   */
  resolve(cgroupId: number, tgid: number): Resource {
    if (cgroupId === this.lastCg && tgid === this.lastPid) return this.lastRes!;
    const s = this.hot.get(tgid);
    if (s !== undefined && s.cg === cgroupId) {
      s.entry.ref = true;
      this.lastCg = cgroupId;
      this.lastPid = tgid;
      this.lastRes = s.res;
      return s.res;
    }
    return this.slowResolve(cgroupId, tgid);
  }

  /**
   * Like resolve(), but an event from a cgroup still pending is held: returns undefined and later
   * calls the release handler with (item, resource, timestampNs, resolved).
   */
  enrich(cgroupId: number, tgid: number, timestampNs: bigint, item: T): Resource | undefined {
    if (cgroupId === this.lastCg && tgid === this.lastPid) return this.lastRes!;
    const s = this.hot.get(tgid);
    if (s !== undefined && s.cg === cgroupId && s.owner.held === 0) {
      s.entry.ref = true;
      this.lastCg = cgroupId;
      this.lastPid = tgid;
      this.lastRes = s.res;
      return s.res;
    }
    return this.slowEnrich(cgroupId, tgid, timestampNs, item);
  }

  /**
   * Replaces the item of the most recently held event that is `placeholder`: a caller passing a
   * short-lived view to enrich() swaps in a copy only when the event really was held.
   */
  replaceHeld(placeholder: T, item: T): boolean {
    for (let i = this.held.length - 1; i >= 0; i--) {
      if (this.held[i].item === placeholder) {
        this.held[i].item = item;
        return true;
      }
    }
    return false;
  }

  /** Feed from exec events: refreshes the process and drops its interned resource. */
  onExec(tgid: number, facts?: ExecFacts): void {
    this.dropPid(tgid, false); // also when the cache never knew the pid (its resource lacks process facts)
    // A pid-keyed mapping is rechecked: exec is where a process lands in its container (runc joins
    // the cgroup, then execs) and where a reused pid shows first. Unchanged, it stays.
    const mapped = this.pidEntry.get(tgid);
    if (mapped !== undefined && (this.index.pathOfPid(tgid) ?? '/') !== mapped.path) this.unmapPid(tgid);
    this.execPid = tgid;
    try {
      this.processes.onExec(tgid, facts);
    } finally {
      this.execPid = -1;
    }
  }

  /**
   * Feed from fork events (the child's pid): anything known under that pid is an earlier process's,
   * even where the hot path would still hit (a reused pid in the same cgroup).
   */
  onFork(childPid: number): void {
    this.processes.onFork(childPid); // a cached process is forgotten: dropPid through onForget
    this.dropPid(childPid, true);
  }

  /** Feed from exit events: the process stays resolvable for processExitTtlMs. */
  onExit(tgid: number): void {
    // Nothing cached keeps a pid the cache never had (gone before /proc was read): forget its
    // mapping now, or the next process with this pid would inherit it.
    if (this.processes.peek(tgid) === undefined) this.dropPid(tgid, true);
    this.processes.onExit(tgid);
  }

  get heldCount(): number {
    return this.held.length;
  }

  get cgroupCount(): number {
    return this.cgroups.size;
  }

  get resourceTotal(): number {
    return this.resourceCount;
  }

  /** Sizes of the secondary indexes and pid-keyed caches (tests, debugging; walks the indexes). */
  indexSizes(): { podUids: number; podRefs: number; containers: number; containerRefs: number; pathEntries: number; pidEntries: number } {
    let podRefs = 0;
    for (const s of this.byPodUid.values()) podRefs += s.size;
    let containerRefs = 0;
    for (const s of this.byContainer.values()) containerRefs += s.size;
    return { podUids: this.byPodUid.size, podRefs, containers: this.byContainer.size, containerRefs, pathEntries: this.byPath.size, pidEntries: this.pidEntry.size };
  }

  /** Expires exited processes and drops entries of pods gone from the PodStore (run by a timer). */
  sweep(): void {
    this.processes.sweep();
    this.pruneDeletedPods();
  }

  // ------------------------------------------------------------------ slow path

  private slowResolve(cg: number, tgid: number): Resource {
    this.counters.slowPath++;
    this.processes.revalidate(tgid); // a reused pid drops its old facts and mapping before target() uses them
    const e = this.target(cg, tgid, false);
    if (e.state === READY) return this.intern(e, tgid, cg);
    return this.transient(e, tgid);
  }

  private slowEnrich(cg: number, tgid: number, ts: bigint, item: T): Resource | undefined {
    this.counters.slowPath++;
    this.processes.revalidate(tgid); // as in slowResolve
    const owner = this.entryOf(cg);
    const e = this.target(cg, tgid, true);
    if (e.state === READY) {
      // Keep per-cgroup order: release what waits before this event.
      if (owner.held > 0) this.processHeld();
      if (owner.held === 0) return this.intern(e, tgid, cg);
    }
    if (this.held.length >= this.cfg.maxHeld || this.stopped) {
      this.counters.holdOverflow++;
      this.rl.warn('hold-overflow', { maxHeld: this.cfg.maxHeld }, 'hold queue full; emitting events without waiting for metadata');
      return this.transient(e, tgid);
    }
    this.held.push({ cg, tgid, ts, item, deadline: Math.max(e.deadline, this.now() + 1) });
    owner.held++;
    this.counters.held++;
    this.schedule();
    return undefined;
  }

  private entryOf(cg: number): CgroupEntry {
    let e = this.cgroups.get(cg);
    if (e === undefined) {
      e = new CgroupEntry(cg, this.now() + this.cfg.holdMs);
      // No cgroup2 tree: ids carry nothing, every pid resolves through its own /proc/PID/cgroup.
      // Id 0 is no cgroup at all (a socket the kernel made or handles without one, seen in
      // softirq context): never in the tree, so it resolves the same way, with no rescan or warning.
      if (this.index.layout === 'legacy' || cg === 0) e.path = '/';
      this.insertEntry(cg, e);
    }
    return e;
  }

  /** The entry an event resolves through: its cgroup's, or a pid-keyed one when the id is the root. */
  private target(cg: number, tgid: number, mayHold: boolean): CgroupEntry {
    const e = this.entryOf(cg);
    this.refresh(e, tgid, mayHold);
    if (e.path !== '/') return e;
    const t = this.pidKeyed(tgid, e);
    this.refresh(t, tgid, mayHold);
    return t;
  }

  /** v1-only hosts and root-cgroup ids carry no container: resolve the pid's own (v1) path. */
  private pidKeyed(tgid: number, owner: CgroupEntry): CgroupEntry {
    const known = this.pidEntry.get(tgid);
    if (known) return known;
    const p = this.index.pathOfPid(tgid) ?? '/';
    let e = this.byPath.get(p);
    if (!e) {
      // Evict before inserting, so the new entry is never the victim.
      if (this.byPath.size >= this.cfg.maxCgroups) this.evictPathEntry();
      e = new CgroupEntry(PID_KEYED, owner.deadline);
      e.path = p;
      e.pids = new Set();
      this.byPath.set(p, e);
    }
    this.pidEntry.set(tgid, e);
    e.pids!.add(tgid);
    // Oldest mapping first; tgid was just appended, and e still has it, so e survives.
    if (this.pidEntry.size > this.cfg.maxResources) this.unmapPid(this.pidEntry.keys().next().value!);
    return e;
  }

  /** Moves an entry towards READY: learn its path, parse it, look the pod up. */
  private refresh(e: CgroupEntry, tgid: number, mayHold: boolean): void {
    if (e.state === READY) return;
    const now = this.now();
    const expired = now >= e.deadline || e.state === STALE || !mayHold;
    if (!expired && now < e.nextTry) return;
    e.nextTry = now + this.cfg.retryIntervalMs;
    this.counters.lookups++;
    if (e.path === undefined) {
      e.path = this.index.pathOf(e.id) ?? this.index.learnFromPid(tgid, e.id);
      if (e.path === undefined) {
        this.index.requestRescan();
        // A recorded (replay) table cannot learn the id later: waiting would only delay the event.
        if (!expired && this.index.canLearn) return;
        // Give up for now (index.onLearn re-opens it): resolve by the pid's own view.
        this.counters.unknownCgroups++;
        this.rl.warn('unknown-cgroup', { cgroupId: e.id, pid: tgid }, 'cgroup id not found in the cgroup2 tree');
      } else if (e.path === '/' || e.id === this.rootId) {
        e.path = '/';
      }
    }
    const p = e.path ?? this.index.pathOfPid(tgid) ?? '';
    const info = parseCgroupPath(p);
    let pod: PodMeta | undefined;
    let container: ContainerMeta | undefined;
    let complete = true;
    let podKey: string | undefined;
    let containerKey: string | undefined;
    if (this.pods) {
      if (info.podUid) {
        pod = this.podOfUid(info.podUid);
        podKey = info.podUid; // a static pod's stays its config hash: onPodChange looks under both
        if (!pod) complete = false;
        else if (info.containerId) {
          container = containerById(pod, info.containerId);
          if (!container) complete = false; // kubelet has not reported the container id yet
        }
      } else if (info.containerId) {
        pod = this.pods.getByContainerId(info.containerId);
        containerKey = info.containerId;
        if (pod) {
          container = containerById(pod, info.containerId);
          podKey = pod.uid;
        }
      }
    }
    // The keys can change between lookups (an unknown cgroup is read through each pid's own path).
    this.reindex(e, podKey, containerKey);
    if (!complete && !expired) {
      e.info = info;
      return;
    }
    e.info = info;
    e.pod = pod;
    e.container = container;
    e.unresolved = e.path === undefined || (!!info.podUid && !pod);
    e.base = cgroupAttributes(info, pod, container, this.attrOpts);
    this.clearResources(e);
    e.state = READY;
    this.counters.cgroupsResolved++;
  }

  /** The interned resource of (entry, pid); `cg` is the event's cgroup id (for the hot slot). */
  private intern(e: CgroupEntry, tgid: number, cg: number): Resource {
    let r = e.byPid.get(tgid);
    if (r === undefined) {
      if (this.resourceCount >= this.cfg.maxResources) this.evictResources();
      r = buildResource(e.base, e.pod, tgid, this.processes.get(tgid), this.attrOpts);
      e.byPid.set(tgid, r);
      this.resourceCount++;
      this.counters.resourcesBuilt++;
    }
    e.ref = true;
    const s = this.hot.get(tgid);
    if (s !== undefined && s.cg === cg && s.entry === e) s.res = r;
    else this.hot.set(tgid, { cg, res: r, entry: e, owner: this.cgroups.get(cg) ?? e });
    this.lastCg = cg;
    this.lastPid = tgid;
    this.lastRes = r;
    return r;
  }

  /**
   * The pod a cgroup path's uid names. Static pods run under their config hash, not the uid of the
   * mirror pod the API shows; the mirror pod carries the hash (kubernetes.io/config.mirror).
   */
  private podOfUid(uid: string): PodMeta | undefined {
    return this.pods!.getByUid(uid) ?? this.pods!.getByMirrorUid(uid);
  }

  /** A resource with what is known now, not interned (pending cgroup, overflow). */
  private transient(e: CgroupEntry, tgid: number): Resource {
    const info = e.info ?? parseCgroupPath(e.path ?? '');
    const pod = info.podUid && this.pods ? this.podOfUid(info.podUid) : undefined;
    const container = pod && info.containerId ? containerById(pod, info.containerId) : undefined;
    return buildResource(cgroupAttributes(info, pod, container, this.attrOpts), pod, tgid, this.processes.get(tgid), this.attrOpts);
  }

  // ------------------------------------------------------------------ holding

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.processHeld();
      if (this.held.length > 0) this.schedule();
    }, this.cfg.retryIntervalMs);
  }

  /** Releases held events whose cgroup is ready or whose hold expired, in arrival order. */
  private processHeld(): void {
    if (this.held.length === 0) return;
    const now = this.now();
    const keep: Array<Held<T>> = [];
    const blocked = new Set<number>();
    for (const h of this.held) {
      let e = this.cgroups.get(h.cg);
      if (e === undefined) {
        e = new CgroupEntry(h.cg, h.deadline);
        this.insertEntry(h.cg, e);
      }
      // Later events of a cgroup never overtake earlier ones that still wait.
      if (blocked.has(h.cg)) {
        keep.push(h);
        continue;
      }
      this.processes.revalidate(h.tgid); // as in slowResolve
      const target = this.target(h.cg, h.tgid, now < h.deadline);
      if (target.state !== READY) {
        blocked.add(h.cg);
        keep.push(h);
        continue;
      }
      e.held--;
      this.release(h, this.intern(target, h.tgid, h.cg), !target.unresolved);
    }
    this.held = keep;
  }

  private flushHeld(force: boolean): void {
    const all = this.held;
    this.held = [];
    for (const h of all) {
      const e = this.cgroups.get(h.cg);
      if (e) e.held = Math.max(0, e.held - 1);
      const target = e ?? new CgroupEntry(h.cg, 0);
      if (force && target.state !== READY) {
        this.release(h, this.transient(target, h.tgid), false);
      } else this.release(h, this.intern(target, h.tgid, h.cg), !target.unresolved);
    }
  }

  private release(h: Held<T>, r: Resource, resolved: boolean): void {
    if (resolved) this.counters.releasedResolved++;
    else this.counters.releasedUnresolved++;
    try {
      this.onRelease(h.item, r, h.ts, resolved);
    } catch (err) {
      this.rl.error('release', { err: String(err) }, 'release handler threw');
    }
  }

  // ------------------------------------------------------------------ invalidation and bounds

  private onPodChange(pod: PodMeta, change: string): void {
    // A deletion keeps the last metadata resolvable (PodStore tombstone): nothing to rebuild, but
    // earlier deletions' tombstones may have expired since the last sweep.
    if (change === 'delete') {
      this.pruneDeletedPods();
      return;
    }
    const set = this.byPodUid.get(pod.uid);
    if (set) for (const e of set) this.invalidate(e);
    // A static pod's cgroups are filed under its config hash (the mirror pod's mirrorUid).
    const mirror = pod.mirrorUid ? this.byPodUid.get(pod.mirrorUid) : undefined;
    if (mirror) for (const e of mirror) this.invalidate(e);
    for (const c of pod.containers) {
      const byC = c.id ? this.byContainer.get(c.id) : undefined;
      if (byC) for (const e of byC) if (!set?.has(e) && !mirror?.has(e)) this.invalidate(e);
      // A restarted container's old cgroup, if it was filed by container id.
      const byPrev = c.previousId ? this.byContainer.get(c.previousId) : undefined;
      if (byPrev) for (const e of byPrev) if (!set?.has(e) && !mirror?.has(e)) this.invalidate(e);
    }
    if (this.held.length > 0) setImmediate(() => this.processHeld());
  }

  private invalidate(e: CgroupEntry): void {
    this.counters.invalidations++;
    this.clearResources(e);
    if (e.state === READY) e.state = STALE;
    e.nextTry = 0;
  }

  private clearResources(e: CgroupEntry): void {
    if (e.byPid.size > 0) {
      for (const pid of e.byPid.keys()) if (this.hot.get(pid)?.entry === e) this.hot.delete(pid);
      this.resourceCount -= e.byPid.size;
      e.byPid.clear();
    }
    this.lastCg = -1;
    this.lastPid = -1;
    this.lastRes = undefined;
  }

  /** `forget`: the process left the process cache (exit, eviction), so the pid may be reused. */
  private dropPid(pid: number, forget: boolean): void {
    if (forget) this.unmapPid(pid);
    const s = this.hot.get(pid);
    if (s === undefined) return;
    this.hot.delete(pid);
    if (s.entry.byPid.delete(pid)) this.resourceCount--;
    if (this.lastPid === pid) {
      this.lastCg = -1;
      this.lastPid = -1;
      this.lastRes = undefined;
    }
  }

  /** Files `e` under exactly these keys, unfiling it from any others. */
  private reindex(e: CgroupEntry, podKey: string | undefined, containerKey: string | undefined): void {
    if (e.podKey !== podKey) {
      if (e.podKey !== undefined) removeFrom(this.byPodUid, e.podKey, e);
      if (podKey !== undefined) addTo(this.byPodUid, podKey, e);
      e.podKey = podKey;
    }
    if (e.containerKey !== containerKey) {
      if (e.containerKey !== undefined) removeFrom(this.byContainer, e.containerKey, e);
      if (containerKey !== undefined) addTo(this.byContainer, containerKey, e);
      e.containerKey = containerKey;
    }
  }

  /** Takes an entry out of its primary cache and everything that refers to it. */
  private removeEntry(e: CgroupEntry): void {
    if (e.id === PID_KEYED) {
      if (this.byPath.get(e.path!) === e) this.byPath.delete(e.path!);
      for (const pid of e.pids!) if (this.pidEntry.get(pid) === e) this.pidEntry.delete(pid);
      e.pids!.clear();
    } else if (this.cgroups.get(e.id) === e) this.cgroups.delete(e.id);
    this.clearResources(e);
    this.reindex(e, undefined, undefined);
  }

  /** Forgets which entry `pid` resolves through; the entry goes with its last pid. */
  private unmapPid(pid: number): void {
    const e = this.pidEntry.get(pid);
    if (e === undefined) return;
    this.pidEntry.delete(pid);
    e.pids!.delete(pid);
    if (e.pids!.size === 0) this.removeEntry(e);
    else if (this.hot.get(pid)?.entry === e) this.dropPid(pid, false); // a reused pid must look its cgroup up again
  }

  /** CLOCK over the pid-keyed entries (they hold no events: their owner does). */
  private evictPathEntry(): void {
    if (this.clockEvict(this.byPath)) this.counters.evictedPathEntries++;
  }

  /**
   * CLOCK: skip (and clear) recently used entries, remove the first cold one with nothing held.
   * Returns whether one was removed.
   */
  private clockEvict(entries: Map<unknown, CgroupEntry>): boolean {
    for (let pass = 0; pass < 2; pass++) {
      for (const e of entries.values()) {
        if (e.held > 0) continue;
        if (e.ref && pass === 0) {
          e.ref = false;
          continue;
        }
        this.removeEntry(e);
        return true;
      }
    }
    return false;
  }

  /**
   * Drops entries still holding the metadata of a pod the store no longer has (tombstone expired or
   * evicted). Entries that never had metadata stay: they wait for their pod to be added.
   */
  private pruneDeletedPods(): void {
    if (!this.pods) return;
    for (const [uid, set] of this.byPodUid) {
      if (this.podOfUid(uid) !== undefined) continue;
      for (const e of set) {
        // Held events decrement their entry's count on release: keep it until then.
        if (e.pod === undefined || e.held > 0) continue;
        this.removeEntry(e);
        this.counters.prunedPodEntries++;
      }
    }
  }

  private insertEntry(cg: number, e: CgroupEntry): void {
    if (this.cgroups.size >= this.cfg.maxCgroups) this.evictCgroup();
    this.cgroups.set(cg, e);
  }

  private evictCgroup(): void {
    if (this.clockEvict(this.cgroups)) this.counters.evictedCgroups++;
  }

  /** Frees interned resources of cold cgroups until under a quarter below the bound. */
  private evictResources(): void {
    const target = Math.floor(this.cfg.maxResources * 0.75);
    for (let pass = 0; pass < 2 && this.resourceCount > target; pass++) {
      for (const e of this.cgroups.values()) {
        if (this.resourceCount <= target) break;
        if (e.ref && pass === 0) {
          e.ref = false;
          continue;
        }
        this.counters.evictedResources += e.byPid.size;
        this.clearResources(e);
      }
      for (const e of this.byPath.values()) {
        if (this.resourceCount <= target) break;
        this.counters.evictedResources += e.byPid.size;
        this.clearResources(e);
      }
    }
  }
}
