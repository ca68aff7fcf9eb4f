// Pod informer and owner-resolver configuration: types, defaults and validation. Kept free of
// @kubernetes/client-node so config parsing does not load the client (~130 MB) when Kubernetes is
// not used.
import { ConfigError } from '../../collector/src/component/errors.ts';
import { defaultPodStoreOptions, type PodStoreOptions } from './pod-store.ts';

export interface OwnerResolverOptions {
  /** How long a found parent stays cached. */
  ttlMs: number;
  /** How long a failed lookup is remembered before another try. */
  errorTtlMs: number;
  maxEntries: number;
}

export const defaultOwnerResolverOptions: OwnerResolverOptions = { ttlMs: 10 * 60_000, errorTtlMs: 30_000, maxEntries: 4096 };

export interface PodInformerConfig {
  /** Watch only pods scheduled here (fieldSelector spec.nodeName). '' watches every pod (collector). */
  nodeName: string;
  /** Annotation keys copied into PodMeta ('prefix*' allowed). */
  annotations: string[];
  store: PodStoreOptions;
  owners: OwnerResolverOptions & { /** Read ReplicaSets/Jobs to find Deployments/CronJobs. */ enabled: boolean };
  backoffMinMs: number;
  backoffMaxMs: number;
}

export function defaultPodInformerConfig(): PodInformerConfig {
  return {
    nodeName: process.env.NODE_NAME ?? '',
    annotations: [],
    store: { ...defaultPodStoreOptions },
    owners: { ...defaultOwnerResolverOptions, enabled: true },
    backoffMinMs: 500,
    backoffMaxMs: 30_000,
  };
}

function posInt(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(field, `must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** `v` as a plain object whose keys are all in `known` (a typo fails at startup, naming the field). */
function section(v: unknown, path: string, known: readonly string[]): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(path, 'must be an object');
  for (const k of Object.keys(v)) if (!known.includes(k)) throw new ConfigError(`${path}.${k}`, 'unknown field');
  return v as Record<string, unknown>;
}

/** Applies defaults and checks types; errors name the field, unknown fields are errors. */
export function validatePodInformerConfig(raw: unknown, path = 'k8s'): PodInformerConfig {
  const d = defaultPodInformerConfig();
  if (raw === undefined || raw === null) return d;
  const r = section(raw, path, ['nodeName', 'annotations', 'store', 'owners', 'backoffMinMs', 'backoffMaxMs']);
  const out: PodInformerConfig = { ...d, store: { ...d.store }, owners: { ...d.owners } };
  if (r.nodeName !== undefined) {
    if (typeof r.nodeName !== 'string') throw new ConfigError(`${path}.nodeName`, 'must be a string');
    out.nodeName = r.nodeName;
  }
  if (r.annotations !== undefined) {
    if (!Array.isArray(r.annotations) || r.annotations.some((a) => typeof a !== 'string')) throw new ConfigError(`${path}.annotations`, 'must be a list of strings');
    out.annotations = r.annotations as string[];
  }
  const s = section(r.store, `${path}.store`, ['maxPods', 'deletedTtlMs', 'maxDeleted']);
  if (s.maxPods !== undefined) out.store.maxPods = posInt(s.maxPods, `${path}.store.maxPods`);
  if (s.deletedTtlMs !== undefined) out.store.deletedTtlMs = posInt(s.deletedTtlMs, `${path}.store.deletedTtlMs`);
  if (s.maxDeleted !== undefined) out.store.maxDeleted = posInt(s.maxDeleted, `${path}.store.maxDeleted`);
  const o = section(r.owners, `${path}.owners`, ['enabled', 'ttlMs', 'errorTtlMs', 'maxEntries']);
  if (o.enabled !== undefined) {
    if (typeof o.enabled !== 'boolean') throw new ConfigError(`${path}.owners.enabled`, 'must be a boolean');
    out.owners.enabled = o.enabled;
  }
  if (o.ttlMs !== undefined) out.owners.ttlMs = posInt(o.ttlMs, `${path}.owners.ttlMs`);
  if (o.errorTtlMs !== undefined) out.owners.errorTtlMs = posInt(o.errorTtlMs, `${path}.owners.errorTtlMs`);
  if (o.maxEntries !== undefined) out.owners.maxEntries = posInt(o.maxEntries, `${path}.owners.maxEntries`);
  if (r.backoffMinMs !== undefined) out.backoffMinMs = posInt(r.backoffMinMs, `${path}.backoffMinMs`);
  if (r.backoffMaxMs !== undefined) out.backoffMaxMs = posInt(r.backoffMaxMs, `${path}.backoffMaxMs`);
  if (out.backoffMaxMs < out.backoffMinMs) throw new ConfigError(`${path}.backoffMaxMs`, 'must be ≥ backoffMinMs');
  return out;
}
