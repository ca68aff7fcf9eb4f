// Pod informer over @kubernetes/client-node's ListWatch: list + watch (resuming from the last
// resourceVersion, re-listing on 410 Gone), restarted with backoff after errors, converting each
// V1Pod to a PodMeta (owner workload resolved) into a PodStore.
import { CoreV1Api, ListWatch, Watch, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { RateLimitedLog, silentLogger, type Logger } from '../log.ts';
import { kubeOwnerLookup, OwnerResolver, type OwnerLookup } from './owners.ts';
import type { PodInformerConfig } from './informer-config.ts';
export { defaultPodInformerConfig, validatePodInformerConfig, type PodInformerConfig } from './informer-config.ts';
import { controllerRef, podMetaFromV1, type PodMeta } from './pod-model.ts';
import { PodStore } from './pod-store.ts';

/** Equality on what enrichment uses, so status-only churn (readiness, conditions) does not invalidate caches. */
function sameMeta(a: PodMeta, b: PodMeta): boolean {
  return JSON.stringify({ ...a, resourceVersion: '' }) === JSON.stringify({ ...b, resourceVersion: '' });
}

export class PodInformer {
  readonly store: PodStore;
  readonly owners: OwnerResolver;
  readonly counters = { lists: 0, errors: 0, restarts: 0, connects: 0 };
  private readonly lw: ListWatch<V1Pod>;
  private readonly raw = new Map<string, V1Pod>(); // uid → last V1Pod, to recompute after owner lookups
  private readonly log: Logger;
  private readonly rl: RateLimitedLog;
  private backoff: number;
  private restartTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;
  private syncedFlag = false;
  private syncWaiters: Array<() => void> = [];

  constructor(
    kc: KubeConfig,
    readonly cfg: PodInformerConfig,
    deps: { logger?: Logger; lookup?: OwnerLookup | null; store?: PodStore } = {},
  ) {
    this.log = deps.logger ?? silentLogger();
    this.rl = new RateLimitedLog(this.log, 60_000, 1);
    this.store = deps.store ?? new PodStore(cfg.store);
    const lookup = deps.lookup !== undefined ? deps.lookup : cfg.owners.enabled ? kubeOwnerLookup(kc) : null;
    this.owners = new OwnerResolver(lookup, cfg.owners, (err, kind, ns, name) =>
      this.rl.warn(`owner:${kind}`, { err: String(err), kind, namespace: ns, name }, 'owner lookup failed; workload falls back to the controller'),
    );
    this.owners.onResolved((kind, ns, name) => this.recomputeOwned(kind, ns, name));
    this.backoff = cfg.backoffMinMs;

    const core = kc.makeApiClient(CoreV1Api);
    const fieldSelector = cfg.nodeName ? `spec.nodeName=${cfg.nodeName}` : undefined;
    const listFn = async () => {
      const list = await core.listPodForAllNamespaces({ fieldSelector });
      this.counters.lists++;
      this.backoff = cfg.backoffMinMs;
      // ListWatch applies the items right after this promise settles; waiters run after that.
      setImmediate(() => this.markSynced());
      return list;
    };
    this.lw = new ListWatch<V1Pod>('/api/v1/pods', new Watch(kc), listFn, false, undefined, fieldSelector);
    // Any event means the connection works again: the next outage starts from the short backoff.
    this.lw.on('add', (p) => { this.backoff = cfg.backoffMinMs; this.apply(p); });
    this.lw.on('update', (p) => { this.backoff = cfg.backoffMinMs; this.apply(p); });
    this.lw.on('delete', (p) => { this.backoff = cfg.backoffMinMs; this.drop(p); });
    this.lw.on('connect', () => {
      this.counters.connects++;
    });
    this.lw.on('error', (err) => this.onError(err));
  }

  get synced(): boolean {
    return this.syncedFlag;
  }

  /** Starts list+watch in the background. Never rejects: errors are logged and retried. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.lw.start().catch((err: unknown) => this.onError(err));
  }

  /** Resolves true once the first list is applied, false after timeoutMs. */
  waitForSync(timeoutMs: number): Promise<boolean> {
    if (this.syncedFlag) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.syncWaiters = this.syncWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.syncWaiters.push(done);
    });
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.lw.stop();
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private markSynced(): void {
    if (this.syncedFlag) return;
    this.syncedFlag = true;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private onError(err: unknown): void {
    this.counters.errors++;
    if (this.stopped) return;
    this.rl.warn('watch', { err: String((err as Error)?.message ?? err), retryInMs: this.backoff }, 'pod watch failed; retrying');
    if (this.restartTimer) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.cfg.backoffMaxMs);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      this.counters.restarts++;
      // Resumes from the last resourceVersion; ListWatch re-lists if it is gone (410).
      this.lw.start().catch((e: unknown) => this.onError(e));
    }, delay);
    this.restartTimer.unref();
  }

  private convert(p: V1Pod): PodMeta {
    const ns = p.metadata?.namespace ?? '';
    const ctrl = controllerRef(p.metadata?.ownerReferences);
    const ans = this.owners.parentOf(ns, ctrl, p.metadata?.labels ?? {});
    return podMetaFromV1(p, { annotations: this.cfg.annotations }, ans.parent);
  }

  private apply(p: V1Pod): void {
    const uid = p.metadata?.uid;
    if (!uid) return;
    this.raw.set(uid, p);
    const meta = this.convert(p);
    const old = this.store.getByUid(uid);
    if (old && !this.store.isDeleted(uid) && sameMeta(old, meta)) return;
    if (!this.store.upsert(meta)) {
      this.raw.delete(uid);
      this.rl.warn('store-full', { maxPods: this.cfg.store.maxPods }, 'pod store full; pod not indexed');
    }
  }

  private drop(p: V1Pod): void {
    const uid = p.metadata?.uid;
    if (!uid) return;
    // The deleted object carries the final status; keep the richest view for late events.
    const last = this.raw.get(uid);
    this.raw.delete(uid);
    const live = last ? this.store.getByUid(uid) : undefined;
    if (live) {
      const meta = this.convert(p);
      if (meta.containers.some((c) => c.id) && !sameMeta(live, meta)) this.store.upsert(meta);
    }
    this.store.remove(uid);
  }

  private recomputeOwned(kind: string, ns: string, name: string): void {
    for (const p of this.raw.values()) {
      const c = controllerRef(p.metadata?.ownerReferences);
      if (c && c.kind === kind && c.name === name && p.metadata?.namespace === ns) this.apply(p);
    }
  }
}
