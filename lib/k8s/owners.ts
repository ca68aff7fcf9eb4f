// Owner resolution above the Pod's controller: ReplicaSet → Deployment and Job → CronJob need a
// read of the intermediate object. Lookups are cached (bounded, TTL), deduplicated while in flight,
// and never block: callers get the cached answer now and a callback when a lookup lands.
import { AppsV1Api, BatchV1Api, type KubeConfig, type V1OwnerReference } from '@kubernetes/client-node';
import { controllerRef } from './pod-model.ts';

export type IntermediateKind = 'ReplicaSet' | 'Job';

export interface OwnerLookup {
  /** Owner references of the object; null when it does not exist. Throws on transport/authz errors. */
  ownerRefs(kind: IntermediateKind, namespace: string, name: string): Promise<V1OwnerReference[] | null>;
}

export { defaultOwnerResolverOptions, type OwnerResolverOptions } from './informer-config.ts';
import { defaultOwnerResolverOptions, type OwnerResolverOptions } from './informer-config.ts';

export interface ParentAnswer {
  /** The controller's controller (Deployment / CronJob), when known or guessed safely. */
  parent?: { kind: string; name: string };
  /** True when a lookup is in flight; `onResolved` listeners fire when it lands. */
  pending: boolean;
}

interface Entry {
  parent: { kind: string; name: string } | null;
  expires: number;
}

/** A Deployment names its ReplicaSets `<deployment>-<pod-template-hash>`; the label carries the hash. */
function deploymentFromHash(rsName: string, labels: Readonly<Record<string, string>>): string | undefined {
  const h = labels['pod-template-hash'];
  if (!h || !rsName.endsWith('-' + h)) return undefined;
  return rsName.slice(0, rsName.length - h.length - 1);
}

export class OwnerResolver {
  private readonly cache = new Map<string, Entry>();
  private readonly inflight = new Set<string>();
  private readonly listeners: Array<(kind: IntermediateKind, namespace: string, name: string) => void> = [];
  readonly counters = { lookups: 0, lookupErrors: 0, cacheHits: 0 };

  constructor(
    private readonly lookup: OwnerLookup | null,
    private readonly opts: OwnerResolverOptions = defaultOwnerResolverOptions,
    private readonly onError: (err: unknown, kind: IntermediateKind, namespace: string, name: string) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** Called after a lookup lands with an answer different from "unknown". */
  onResolved(cb: (kind: IntermediateKind, namespace: string, name: string) => void): void {
    this.listeners.push(cb);
  }

  parentOf(namespace: string, ctrl: { kind: string; name: string } | undefined, podLabels: Readonly<Record<string, string>>): ParentAnswer {
    if (!ctrl || (ctrl.kind !== 'ReplicaSet' && ctrl.kind !== 'Job')) return { pending: false };
    const kind = ctrl.kind as IntermediateKind;
    const key = `${kind}/${namespace}/${ctrl.name}`;
    const e = this.cache.get(key);
    const t = this.now();
    if (e && e.expires > t) {
      this.counters.cacheHits++;
      if (e.parent) return { parent: e.parent, pending: false };
      return { parent: this.guess(kind, ctrl.name, podLabels), pending: false };
    }
    const pending = this.start(kind, namespace, ctrl.name, key);
    return { parent: e?.parent ?? this.guess(kind, ctrl.name, podLabels), pending };
  }

  /** Only the ReplicaSet guess is safe (the hash label is set by the Deployment controller alone). */
  private guess(kind: IntermediateKind, name: string, labels: Readonly<Record<string, string>>): { kind: string; name: string } | undefined {
    if (kind !== 'ReplicaSet') return undefined;
    const d = deploymentFromHash(name, labels);
    return d ? { kind: 'Deployment', name: d } : undefined;
  }

  private start(kind: IntermediateKind, namespace: string, name: string, key: string): boolean {
    if (!this.lookup) return false;
    if (this.inflight.has(key)) return true;
    this.inflight.add(key);
    this.counters.lookups++;
    this.lookup.ownerRefs(kind, namespace, name).then(
      (refs) => {
        this.inflight.delete(key);
        const c = refs ? controllerRef(refs) : undefined;
        this.put(key, { parent: c ? { kind: c.kind, name: c.name } : null, expires: this.now() + this.opts.ttlMs });
        for (const l of this.listeners) l(kind, namespace, name);
      },
      (err: unknown) => {
        this.inflight.delete(key);
        this.counters.lookupErrors++;
        const old = this.cache.get(key);
        this.put(key, { parent: old?.parent ?? null, expires: this.now() + this.opts.errorTtlMs });
        this.onError(err, kind, namespace, name);
      },
    );
    return true;
  }

  private put(key: string, e: Entry): void {
    this.cache.delete(key);
    while (this.cache.size >= this.opts.maxEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
    this.cache.set(key, e);
  }

  get size(): number {
    return this.cache.size;
  }
}

/** An OwnerLookup reading ReplicaSets and Jobs through the API (RBAC: get on replicasets, jobs). */
export function kubeOwnerLookup(kc: KubeConfig): OwnerLookup {
  const apps = kc.makeApiClient(AppsV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  return {
    async ownerRefs(kind, namespace, name) {
      try {
        const obj =
          kind === 'ReplicaSet'
            ? await apps.readNamespacedReplicaSet({ name, namespace })
            : await batch.readNamespacedJob({ name, namespace });
        return obj.metadata?.ownerReferences ?? [];
      } catch (err) {
        if ((err as { code?: number }).code === 404) return null;
        throw err;
      }
    },
  };
}
