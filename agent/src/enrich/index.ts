// Agent enrichment: PID → cgroup → container → Pod. `createEnrichment` wires the Enricher to a
// PodInformer when Kubernetes is configured, and runs without it (process and container metadata
// only) when it is not.
import { ConfigError } from '../../../collector/src/component/errors.ts';
import { loadKubeConfig, PodInformer, validatePodInformerConfig, type PodInformerConfig } from '../../../lib/k8s/index.ts';
import { silentLogger, type Logger } from '../../../lib/log.ts';
import { Enricher, validateEnricherConfig, type EnricherConfig, type ReleaseHandler } from './enricher.ts';

export * from './enricher.ts';
export * from './cgroup-paths.ts';
export { CgroupIndex, detectCgroup2, cgroupIdOf, type CgroupIndexConfig, type CgroupLayout } from './cgroup-index.ts';
export { ProcessCache, parseProcStat, type ProcessInfo, type ExecFacts, type ProcessCacheConfig } from './process-cache.ts';
export { attr } from './attributes.ts';

export interface K8sEnrichmentConfig extends PodInformerConfig {
  /** 'auto': on when a kubeconfig or in-cluster service account is found. */
  enabled: 'auto' | boolean;
  /** Explicit kubeconfig file ('' = in-cluster, then $KUBECONFIG). */
  kubeconfig: string;
  /** How long start() waits for the first pod list before going on (events are held meanwhile). */
  syncTimeoutMs: number;
}

export interface EnrichmentConfig {
  enricher: EnricherConfig;
  k8s: K8sEnrichmentConfig;
}

/** `raw` is `{ ...EnricherConfig fields, k8s: { enabled, kubeconfig, syncTimeoutMs, ...PodInformerConfig } }`. */
export function validateEnrichmentConfig(raw: unknown, path = 'enrich'): EnrichmentConfig {
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) throw new ConfigError(path, 'must be an object');
  const { k8s: rawK8s, ...rest } = (raw ?? {}) as Record<string, unknown>;
  const enricher = validateEnricherConfig(rest, path);
  const { enabled, kubeconfig, syncTimeoutMs, ...informerRaw } = (rawK8s ?? {}) as Record<string, unknown>;
  if (enabled !== undefined && enabled !== 'auto' && typeof enabled !== 'boolean') throw new ConfigError(`${path}.k8s.enabled`, "must be 'auto', true or false");
  if (kubeconfig !== undefined && typeof kubeconfig !== 'string') throw new ConfigError(`${path}.k8s.kubeconfig`, 'must be a string');
  if (syncTimeoutMs !== undefined && (typeof syncTimeoutMs !== 'number' || !Number.isInteger(syncTimeoutMs) || syncTimeoutMs < 0)) {
    throw new ConfigError(`${path}.k8s.syncTimeoutMs`, 'must be a non-negative integer');
  }
  const informer = validatePodInformerConfig(informerRaw, `${path}.k8s`);
  if (!informer.nodeName && enricher.nodeName) informer.nodeName = enricher.nodeName;
  return {
    enricher,
    k8s: { ...informer, enabled: (enabled as K8sEnrichmentConfig['enabled'] | undefined) ?? 'auto', kubeconfig: (kubeconfig as string | undefined) ?? '', syncTimeoutMs: (syncTimeoutMs as number | undefined) ?? 10_000 },
  };
}

export class Enrichment<T = unknown> {
  readonly enricher: Enricher<T>;
  readonly informer: PodInformer | null;
  /** Where pod metadata comes from: 'in-cluster' | 'file' | 'env' | 'none'. */
  readonly k8sSource: string;
  private started = false;
  private stopped = false;

  constructor(
    readonly cfg: EnrichmentConfig,
    deps: { logger?: Logger; onRelease?: ReleaseHandler<T>; env?: NodeJS.ProcessEnv } = {},
  ) {
    const log = deps.logger ?? silentLogger();
    let informer: PodInformer | null = null;
    let source = 'none';
    if (cfg.k8s.enabled !== false) {
      const access = loadKubeConfig({ kubeconfig: cfg.k8s.kubeconfig || undefined, env: deps.env });
      if (!access && cfg.k8s.enabled === true) throw new ConfigError('enrich.k8s.enabled', 'true, but no kubeconfig or in-cluster service account was found');
      if (access) {
        if (!cfg.k8s.nodeName) throw new ConfigError('enrich.k8s.nodeName', 'required to watch only this node\'s pods (set NODE_NAME from the downward API)');
        informer = new PodInformer(access.kc, cfg.k8s, { logger: log.child({ component: 'pod-informer' }) });
        source = access.source;
      }
    }
    if (!informer) log.info({ enabled: cfg.k8s.enabled }, 'Kubernetes not configured: process and container metadata only');
    this.informer = informer;
    this.k8sSource = source;
    this.enricher = new Enricher<T>(cfg.enricher, { logger: log.child({ component: 'enrich' }), pods: informer?.store ?? null, onRelease: deps.onRelease });
  }

  /** Starts the informer (waiting up to syncTimeoutMs for the first list) and the cgroup scan. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.informer?.start();
    await Promise.all([this.enricher.start(), this.informer ? this.informer.waitForSync(this.cfg.k8s.syncTimeoutMs) : Promise.resolve(true)]);
  }

  /** Releases held events, stops the watch. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.enricher.shutdown();
    await this.informer?.shutdown();
  }
}
