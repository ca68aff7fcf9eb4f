// k8s_attributes: adds Pod metadata to each resource. The Pod is found by association rules tried
// in order (first match wins): the connection's peer IP (ctx.peerAddress; only meaningful when the
// agent sends directly, so put this before anything that re-batches), or a resource attribute
// k8s.pod.ip, k8s.pod.uid or container.id. Metadata comes from the shared Pod store of lib/k8s
// (one informer on the API server, bounded store); attributes already present are never overwritten,
// except empty strings, which are filled (as contrib's setResourceAttribute does).
import type { KeyValue, LogsData, MetricsData, SignalData, SignalType, TracesData } from '../../../../proto/src/model.ts';
import { getAttr } from '../../../../proto/src/model.ts';
import { ConfigError } from '../../component/errors.ts';
import type { Component, Consumer, CreateSettings, Host, ProcessorFactory, RequestContext } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import type { ContainerMeta, PodMeta } from '../../../../lib/k8s/pod-model.ts';

/** What the processor needs from a Pod source (lib/k8s PodStore implements it). */
export interface PodLookup {
  getByIp(ip: string): PodMeta | undefined;
  getByUid(uid: string): PodMeta | undefined;
  getByContainerId(id: string): PodMeta | undefined;
}

export type AssociationSource = 'connection' | 'k8s.pod.ip' | 'k8s.pod.uid' | 'container.id';

export const METADATA_KEYS = [
  'k8s.namespace.name', 'k8s.pod.name', 'k8s.pod.uid', 'k8s.pod.ip', 'k8s.node.name',
  'k8s.deployment.name', 'k8s.replicaset.name', 'k8s.statefulset.name', 'k8s.daemonset.name',
  'k8s.job.name', 'k8s.cronjob.name', 'k8s.container.name', 'container.image.name', 'container.image.tag', 'service.name',
] as const;
export type MetadataKey = (typeof METADATA_KEYS)[number];

export interface K8sAttributesConfig {
  /** Rules tried in order; each rule is one source here (the common case). */
  podAssociation: AssociationSource[];
  metadata: MetadataKey[];
  labels: Array<{ key: string; tagName: string }>;
  annotations: Array<{ key: string; tagName: string }>;
  /** Kubeconfig file; empty: in-cluster service account or $KUBECONFIG. */
  kubeconfig: string;
  /** Block start until the first list completed (bounded by this timeout); 0 = don't wait. */
  waitForMetadataMs: number;
  maxPods: number;
}

export function validateK8sAttributesConfig(raw: unknown, path: string): K8sAttributesConfig {
  const r = new ConfigReader(raw, path);
  const podAssociation: AssociationSource[] = [];
  for (const rule of r.list('pod_association')) {
    const sources = rule.list('sources');
    if (sources.length !== 1) throw new ConfigError(rule.field('sources'), 'exactly one source per rule is supported');
    const s = sources[0];
    const from = s.oneOf('from', ['connection', 'resource_attribute'] as const, 'resource_attribute');
    if (from === 'connection') podAssociation.push('connection');
    else podAssociation.push(s.oneOf('name', ['k8s.pod.ip', 'k8s.pod.uid', 'container.id'] as const, 'k8s.pod.ip'));
    s.done();
    rule.done();
  }
  if (podAssociation.length === 0) podAssociation.push('k8s.pod.uid', 'container.id', 'k8s.pod.ip', 'connection');
  const ex = r.sub('extract');
  const metadata = ex.strList('metadata', ['k8s.namespace.name', 'k8s.pod.name', 'k8s.pod.uid', 'k8s.deployment.name', 'k8s.node.name']);
  metadata.forEach((m, i) => {
    if (!(METADATA_KEYS as readonly string[]).includes(m)) throw new ConfigError(`${ex.field('metadata')}[${i}]`, `unknown metadata ${JSON.stringify(m)} (known: ${METADATA_KEYS.join(', ')})`);
  });
  const tagList = (key: 'labels' | 'annotations', prefix: string) =>
    ex.list(key).map((lr) => {
      const k = lr.str('key');
      if (!k) throw new ConfigError(lr.field('key'), 'is required');
      const tagName = lr.str('tag_name', `${prefix}.${k}`);
      // Only the Pod's own labels/annotations are in the store; namespace, node or workload ones
      // would need informers of their own. Refused rather than silently answered with the Pod's.
      const from = lr.str('from', 'pod');
      if (from !== 'pod') throw new ConfigError(lr.field('from'), `only "pod" is supported, got ${JSON.stringify(from)} (namespace, node and workload ${key} are not extracted)`);
      lr.done();
      return { key: k, tagName };
    });
  const labels = tagList('labels', 'k8s.pod.labels');
  const annotations = tagList('annotations', 'k8s.pod.annotations');
  ex.done();
  const cfg: K8sAttributesConfig = {
    podAssociation,
    metadata: metadata as MetadataKey[],
    labels,
    annotations,
    kubeconfig: r.str('kubeconfig', ''),
    waitForMetadataMs: r.duration('wait_for_metadata_timeout', 0),
    maxPods: r.num('max_pods', 50_000, { min: 1, integer: true }),
  };
  r.done();
  return cfg;
}

/** "ipv4:10.0.0.1:1234", "::ffff:10.0.0.1", "[fd00::1]:80", "10.0.0.1" → bare IP. */
export function peerIp(addr: string | undefined): string | undefined {
  if (!addr) return undefined;
  let a = addr;
  if (a.startsWith('ipv4:')) a = a.slice(5);
  else if (a.startsWith('ipv6:')) a = a.slice(5);
  if (a.startsWith('[')) a = a.slice(1, a.indexOf(']'));
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(a)) a = a.slice(0, a.lastIndexOf(':'));
  if (a.startsWith('::ffff:') && a.includes('.')) a = a.slice(7);
  return a;
}

/**
 * The container the resource belongs to, as contrib's addContainerAttributes picks it: by the
 * resource's k8s.container.name, else its container.id (whatever the Pod was associated by), else
 * the Pod's only container. A name or id the Pod does not have: none.
 */
function pickContainer(pod: PodMeta, attrs: KeyValue[]): ContainerMeta | undefined {
  const name = getAttr(attrs, 'k8s.container.name');
  if (typeof name === 'string' && name) return pod.containers.find((x) => x.name === name);
  const id = getAttr(attrs, 'container.id');
  if (typeof id === 'string' && id) return pod.containers.find((x) => x.id === id);
  return pod.containers.length === 1 ? pod.containers[0] : undefined;
}

function metadataValue(pod: PodMeta, key: MetadataKey, c: ContainerMeta | undefined): string | undefined {
  switch (key) {
    case 'k8s.namespace.name': return pod.namespace;
    case 'k8s.pod.name': return pod.name;
    case 'k8s.pod.uid': return pod.uid;
    case 'k8s.pod.ip': return pod.podIP || undefined;
    case 'k8s.node.name': return pod.nodeName || undefined;
    case 'k8s.deployment.name': return pod.workloads.deployment;
    case 'k8s.replicaset.name': return pod.workloads.replicaset;
    case 'k8s.statefulset.name': return pod.workloads.statefulset;
    case 'k8s.daemonset.name': return pod.workloads.daemonset;
    case 'k8s.job.name': return pod.workloads.job;
    case 'k8s.cronjob.name': return pod.workloads.cronjob;
    case 'k8s.container.name': return c?.name;
    case 'container.image.name': return c?.imageName;
    case 'container.image.tag': return c?.imageTag || undefined;
    case 'service.name': return pod.serviceName || undefined;
  }
}

type ResourceList = Array<{ resource: { attributes: KeyValue[] } }>;

export class K8sAttributesProcessor<S extends SignalType> implements Component, Consumer<S> {
  private lookup?: PodLookup;
  private informer?: { shutdown(): Promise<void> };
  readonly stats = { associated: 0, unassociated: 0 };

  /** `lookup` injects a Pod source (tests, or the agent sharing its own store). */
  constructor(private readonly settings: CreateSettings, readonly cfg: K8sAttributesConfig, private readonly signal: S, private readonly next: Consumer<S>, lookup?: PodLookup) {
    this.lookup = lookup;
  }

  async start(_host: Host): Promise<void> {
    if (this.lookup) return;
    const { loadKubeConfig, PodInformer, validatePodInformerConfig } = await import('../../../../lib/k8s/index.ts');
    const access = loadKubeConfig(this.cfg.kubeconfig ? { kubeconfig: this.cfg.kubeconfig } : {});
    if (!access) {
      this.settings.logger.warn('no Kubernetes access (no kubeconfig, not in a cluster): k8s_attributes passes data through unchanged');
      return;
    }
    const icfg = validatePodInformerConfig(
      // the store keeps only the annotations asked for (pod metadata stays small)
      { nodeName: '', store: { maxPods: this.cfg.maxPods }, annotations: this.cfg.annotations.map((a) => a.key) },
      `processors.${this.settings.id}`,
    );
    const informer = new PodInformer(access.kc, icfg, { logger: this.settings.logger as never });
    informer.start();
    this.informer = informer;
    this.lookup = informer.store;
    if (this.cfg.waitForMetadataMs > 0 && !(await informer.waitForSync(this.cfg.waitForMetadataMs)))
      this.settings.logger.warn({ timeoutMs: this.cfg.waitForMetadataMs }, 'pod metadata not synced in time; starting anyway');
  }

  async shutdown(): Promise<void> {
    await this.informer?.shutdown();
    this.informer = undefined;
  }

  private findPod(attrs: KeyValue[], ctx: RequestContext): PodMeta | undefined {
    const l = this.lookup!;
    for (const src of this.cfg.podAssociation) {
      let pod: PodMeta | undefined;
      if (src === 'connection') {
        const ip = peerIp(ctx.peerAddress);
        if (ip) pod = l.getByIp(ip);
      } else {
        const v = getAttr(attrs, src);
        if (typeof v !== 'string' || !v) continue;
        if (src === 'k8s.pod.ip') pod = l.getByIp(v);
        else if (src === 'k8s.pod.uid') pod = l.getByUid(v);
        else pod = l.getByContainerId(v);
      }
      if (pod) return pod;
    }
    return undefined;
  }

  consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    if (!this.lookup) return this.next.consume(batch, ctx);
    const list: ResourceList =
      this.signal === 'traces' ? (batch as TracesData).resourceSpans : this.signal === 'metrics' ? (batch as MetricsData).resourceMetrics : (batch as LogsData).resourceLogs;
    for (const res of list) {
      const attrs = res.resource.attributes;
      const pod = this.findPod(attrs, ctx);
      if (!pod) {
        this.stats.unassociated++;
        continue;
      }
      this.stats.associated++;
      const container = pickContainer(pod, attrs);
      // key → index of a present attribute that may still be filled (an empty string: contrib's
      // setResourceAttribute writes when the attribute is absent or empty), or -1: keep it
      const present = new Map<string, number>();
      attrs.forEach((a, i) => present.has(a.key) || present.set(a.key, a.value === '' ? i : -1)); // first wins, as in getAttr
      const put = (key: string, value: string | undefined) => {
        if (value === undefined || value === '') return;
        const at = present.get(key);
        if (at === undefined) attrs.push({ key, value });
        else if (at >= 0) attrs[at] = { key, value }; // a new KeyValue: decoders share them (model.ts)
        else return;
        present.set(key, -1);
      };
      for (const k of this.cfg.metadata) put(k, metadataValue(pod, k, container));
      for (const lb of this.cfg.labels) put(lb.tagName, pod.labels[lb.key]);
      for (const an of this.cfg.annotations) put(an.tagName, pod.annotations[an.key]);
    }
    return this.next.consume(batch, ctx);
  }
}

export const k8sAttributesFactory: ProcessorFactory<K8sAttributesConfig> = {
  type: 'k8s_attributes',
  kind: 'processor',
  signals: ['traces', 'metrics', 'logs'],
  mutatesData: true,
  defaultConfig: () => validateK8sAttributesConfig({}, 'processors.k8s_attributes'),
  validate: validateK8sAttributesConfig,
  create: (settings, cfg, signal, next) => new K8sAttributesProcessor(settings, cfg, signal, next),
};
