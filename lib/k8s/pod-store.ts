// Pods indexed by uid, container id (current and previous instance), pod IP and — for mirror pods —
// the static pod's own uid, plus a bounded cache of recently deleted pods so events still in flight
// after a deletion resolve. Fed by PodInformer (or directly, in tests and in the collector's
// processor).
import type { PodMeta } from './pod-model.ts';

export type PodChange = 'add' | 'update' | 'delete';
export type PodListener = (pod: PodMeta, change: PodChange) => void;

export interface PodStoreOptions {
  /** Live pods kept at most (a node runs ≤ 110 by default; a cluster-wide collector needs more). */
  maxPods: number;
  /** How long a deleted pod still resolves. */
  deletedTtlMs: number;
  /** Deleted pods kept at most. */
  maxDeleted: number;
}

export const defaultPodStoreOptions: PodStoreOptions = { maxPods: 10_000, deletedTtlMs: 120_000, maxDeleted: 1024 };

function ipsOf(pod: PodMeta): string[] {
  const out = pod.podIP ? [pod.podIP] : [];
  for (const ip of pod.podIPs) if (ip && ip !== pod.podIP) out.push(ip);
  return out;
}

interface Tomb {
  pod: PodMeta;
  expires: number;
}

export class PodStore {
  private readonly byUid = new Map<string, PodMeta>();
  private readonly byContainer = new Map<string, PodMeta>();
  private readonly byIp = new Map<string, PodMeta>();
  private readonly byMirror = new Map<string, PodMeta>(); // static pod uid (config hash) → mirror pod
  private readonly deleted = new Map<string, Tomb>();
  private readonly deletedByMirror = new Map<string, string>(); // static pod uid → mirror pod uid
  private readonly deletedByContainer = new Map<string, string>(); // container id → pod uid
  private readonly deletedByIp = new Map<string, string>(); // pod IP → pod uid
  private readonly listeners: PodListener[] = [];
  readonly counters = { adds: 0, updates: 0, deletes: 0, overflow: 0, deletedExpired: 0 };

  constructor(
    readonly opts: PodStoreOptions = defaultPodStoreOptions,
    private readonly now: () => number = Date.now,
  ) {}

  onChange(l: PodListener): () => void {
    this.listeners.push(l);
    return () => {
      const i = this.listeners.indexOf(l);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  get size(): number {
    return this.byUid.size;
  }

  get deletedSize(): number {
    return this.deleted.size;
  }

  /** Adds or replaces a pod. Returns false when refused because the store is full. */
  upsert(pod: PodMeta): boolean {
    const old = this.byUid.get(pod.uid);
    if (!old && this.byUid.size >= this.opts.maxPods) {
      this.counters.overflow++;
      return false;
    }
    if (old) this.unindex(old);
    this.byUid.set(pod.uid, pod);
    this.index(pod);
    // A pod that comes back (relist after a missed delete) is live again.
    this.forgetDeleted(pod.uid);
    if (old) this.counters.updates++;
    else this.counters.adds++;
    this.emit(pod, old ? 'update' : 'add');
    return true;
  }

  /** Removes a live pod, keeping it resolvable for deletedTtlMs. */
  remove(uid: string): void {
    const pod = this.byUid.get(uid);
    if (!pod) return;
    this.byUid.delete(uid);
    this.unindex(pod);
    this.sweepDeleted();
    while (this.deleted.size >= this.opts.maxDeleted) {
      const oldest = this.deleted.keys().next().value;
      if (oldest === undefined) break;
      this.forgetDeleted(oldest);
    }
    this.deleted.set(uid, { pod, expires: this.now() + this.opts.deletedTtlMs });
    for (const c of pod.containers) {
      if (c.id) this.deletedByContainer.set(c.id, uid);
      if (c.previousId) this.deletedByContainer.set(c.previousId, uid);
    }
    if (!pod.hostNetwork) for (const ip of ipsOf(pod)) this.deletedByIp.set(ip, uid);
    if (pod.mirrorUid) this.deletedByMirror.set(pod.mirrorUid, uid);
    this.counters.deletes++;
    this.emit(pod, 'delete');
  }

  /** Live pod, else a recently deleted one. */
  getByUid(uid: string): PodMeta | undefined {
    return this.byUid.get(uid) ?? this.liveTomb(uid);
  }

  /**
   * The mirror pod of the static pod the kubelet runs under `uid` (its config hash: what cgroup
   * paths carry), live else recently deleted.
   */
  getByMirrorUid(uid: string): PodMeta | undefined {
    const p = this.byMirror.get(uid);
    if (p) return p;
    const mirror = this.deletedByMirror.get(uid);
    return mirror ? this.liveTomb(mirror) : undefined;
  }

  getByContainerId(id: string): PodMeta | undefined {
    const p = this.byContainer.get(id);
    if (p) return p;
    const uid = this.deletedByContainer.get(id);
    return uid ? this.liveTomb(uid) : undefined;
  }

  /** Pod by IP. Host-network pods are not indexed (they share the node's IP). */
  getByIp(ip: string): PodMeta | undefined {
    const p = this.byIp.get(ip);
    if (p) return p;
    // An IP is reused quickly; only fall back to a deleted pod when no live pod holds it.
    const uid = this.deletedByIp.get(ip);
    return uid ? this.liveTomb(uid) : undefined;
  }

  isDeleted(uid: string): boolean {
    return !this.byUid.has(uid) && this.liveTomb(uid) !== undefined;
  }

  list(): PodMeta[] {
    return [...this.byUid.values()];
  }

  /** Drops expired tombstones (also done on every remove). */
  sweepDeleted(): void {
    const t = this.now();
    for (const [uid, tomb] of this.deleted) {
      if (tomb.expires <= t) {
        this.forgetDeleted(uid);
        this.counters.deletedExpired++;
      }
    }
  }

  private liveTomb(uid: string): PodMeta | undefined {
    const t = this.deleted.get(uid);
    if (!t) return undefined;
    if (t.expires <= this.now()) {
      this.forgetDeleted(uid);
      this.counters.deletedExpired++;
      return undefined;
    }
    return t.pod;
  }

  private forgetDeleted(uid: string): void {
    const t = this.deleted.get(uid);
    if (!t) return;
    this.deleted.delete(uid);
    for (const c of t.pod.containers) {
      if (c.id && this.deletedByContainer.get(c.id) === uid) this.deletedByContainer.delete(c.id);
      if (c.previousId && this.deletedByContainer.get(c.previousId) === uid) this.deletedByContainer.delete(c.previousId);
    }
    for (const ip of ipsOf(t.pod)) if (this.deletedByIp.get(ip) === uid) this.deletedByIp.delete(ip);
    if (t.pod.mirrorUid && this.deletedByMirror.get(t.pod.mirrorUid) === uid) this.deletedByMirror.delete(t.pod.mirrorUid);
  }

  private index(pod: PodMeta): void {
    // A restarted container's previous id too: its cgroup may still be draining events.
    for (const c of pod.containers) {
      if (c.previousId) this.byContainer.set(c.previousId, pod);
      if (c.id) this.byContainer.set(c.id, pod);
    }
    if (!pod.hostNetwork) for (const ip of ipsOf(pod)) this.byIp.set(ip, pod);
    if (pod.mirrorUid) this.byMirror.set(pod.mirrorUid, pod);
  }

  private unindex(pod: PodMeta): void {
    for (const c of pod.containers) {
      if (c.id && this.byContainer.get(c.id)?.uid === pod.uid) this.byContainer.delete(c.id);
      if (c.previousId && this.byContainer.get(c.previousId)?.uid === pod.uid) this.byContainer.delete(c.previousId);
    }
    for (const ip of ipsOf(pod)) if (this.byIp.get(ip)?.uid === pod.uid) this.byIp.delete(ip);
    if (pod.mirrorUid && this.byMirror.get(pod.mirrorUid)?.uid === pod.uid) this.byMirror.delete(pod.mirrorUid);
  }

  private emit(pod: PodMeta, change: PodChange): void {
    for (const l of this.listeners) l(pod, change);
  }
}
