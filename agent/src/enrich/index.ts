// Agent enrichment: PID → cgroup → container → Pod. `createEnrichment` wires the Enricher to a
// PodInformer when Kubernetes is configured, and runs without it (process and container metadata
// only) when it is not.
import { ConfigError } from '../../../collector/src/component/errors.ts';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { PodInformer, PodInformerConfig } from '../../../lib/k8s/index.ts';
import { validatePodInformerConfig } from '../../../lib/k8s/informer-config.ts';
import { silentLogger, type Logger } from '../../../lib/log.ts';
import { Enricher, validateEnricherConfig, type EnricherConfig, type ReleaseHandler } from './enricher.ts';

export * from './enricher.ts';
export * from './cgroup-paths.ts';
export { CgroupIndex, detectCgroup2, cgroupIdOf, type CgroupIndexConfig, type CgroupLayout } from './cgroup-index.ts';
export { ProcessCache, parseProcStat, type ProcessInfo, type ExecFacts, type ProcessCacheConfig } from './process-cache.ts';
export { attr } from './attributes.ts';
export { type RecordedCgroup } from './cgroup-index.ts';
export { type RecordedProcess } from './process-cache.ts';
export { createReplayEnricher, recordedHostOf, replayEnricherConfig, type RecordedHost } from './recorded.ts';
import { createReplayEnricher, type RecordedHost } from './recorded.ts';

// ------------------------------------------------------------------ lazy Kubernetes client
// @kubernetes/client-node costs ~120 MB of RSS and seconds of start-up, and most agents without a
// cluster never need it: lib/k8s is loaded on first use only. The load is synchronous
// (require of the ES module, Node ≥ 20.19) so Enrichment keeps its synchronous constructor.
type K8sModule = typeof import('../../../lib/k8s/index.ts');
let k8sModule: K8sModule | undefined;
function k8s(): K8sModule {
  return (k8sModule ??= createRequire(import.meta.url)('../../../lib/k8s/index.ts') as K8sModule);
}

const SA_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** The same places lib/k8s loadKubeConfig looks, checked without loading the client. */
function kubeConfigPresent(kubeconfig: string, env: NodeJS.ProcessEnv): boolean {
  if (kubeconfig) return true;
  if (env.KUBERNETES_SERVICE_HOST && existsSync(SA_TOKEN)) return true;
  return !!env.KUBECONFIG && env.KUBECONFIG.split(':').some((f) => f !== '' && existsSync(f));
}

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
    deps: {
      logger?: Logger;
      onRelease?: ReleaseHandler<T>;
      env?: NodeJS.ProcessEnv;
      /** Replay: enrich from these recorded tables only (no /proc, cgroupfs or Kubernetes API). */
      recorded?: RecordedHost;
    } = {},
  ) {
    const log = deps.logger ?? silentLogger();
    if (deps.recorded) {
      // The recording host's pods are not this cluster's: no informer, whatever enrich.k8s says.
      if (cfg.k8s.enabled === true) log.warn('replay: enrich.k8s.enabled is ignored (recorded pods are not in this cluster)');
      this.informer = null;
      this.k8sSource = 'none';
      this.enricher = createReplayEnricher<T>(cfg.enricher, deps.recorded, { logger: log.child({ component: 'enrich' }), onRelease: deps.onRelease });
      return;
    }
    let informer: PodInformer | null = null;
    let source = 'none';
    if (cfg.k8s.enabled !== false) {
      // lib/k8s (and @kubernetes/client-node, ~120 MB RSS) loads only when a cluster is configured.
      const access = kubeConfigPresent(cfg.k8s.kubeconfig, deps.env ?? process.env) ? k8s().loadKubeConfig({ kubeconfig: cfg.k8s.kubeconfig || undefined, env: deps.env }) : null;
      if (!access && cfg.k8s.enabled === true) throw new ConfigError('enrich.k8s.enabled', 'true, but no kubeconfig or in-cluster service account was found');
      if (access) {
        if (!cfg.k8s.nodeName) throw new ConfigError('enrich.k8s.nodeName', 'required to watch only this node\'s pods (set NODE_NAME from the downward API)');
        informer = new (k8s().PodInformer)(access.kc, cfg.k8s, { logger: log.child({ component: 'pod-informer' }) });
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
