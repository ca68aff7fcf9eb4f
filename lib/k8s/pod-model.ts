// The Pod as the agent and the collector see it: only what enrichment needs, flattened from a V1Pod,
// with container ids stripped of their runtime scheme and the owning workload resolved.
import type { V1Pod, V1OwnerReference, V1ContainerStatus } from '@kubernetes/client-node';

export type QosClass = 'guaranteed' | 'burstable' | 'besteffort';

/** Set by the kubelet on the mirror pod of a static pod; the value is the static pod's own uid. */
export const MIRROR_ANNOTATION = 'kubernetes.io/config.mirror';

export interface ContainerMeta {
  name: string;
  /** Runtime container id without the scheme (`containerd://`), '' until the kubelet reports it. */
  id: string;
  /**
   * The id of the instance before the last restart (`lastState.terminated.containerID`), '' when
   * none: events of the old instance still draining from its cgroup keep the container's name.
   * Optional only for hand-built metas; podMetaFromV1 always sets it.
   */
  previousId?: string;
  /** Runtime from the id scheme: containerd, cri-o, docker... ('' when unknown). */
  runtime: string;
  /** Image reference as in the spec. */
  image: string;
  /** Image name without tag or digest (container.image.name). */
  imageName: string;
  /** Tag, '' when the reference has none (container.image.tags). */
  imageTag: string;
  kind: 'container' | 'init' | 'ephemeral';
}

/** The workload chain above the Pod; each set member is the name of that object. */
export interface Workloads {
  deployment?: string;
  replicaset?: string;
  statefulset?: string;
  daemonset?: string;
  job?: string;
  cronjob?: string;
  /** The top-most owner, used by the service.name rule. */
  top?: { kind: string; name: string };
}

export interface PodMeta {
  uid: string;
  /**
   * Mirror pods (a static pod as the API shows it): the uid the kubelet runs the pod under — its
   * config hash, annotation `kubernetes.io/config.mirror` — which the pod's cgroup paths carry
   * instead of `uid`. '' for other pods. Optional only for hand-built metas; podMetaFromV1 sets it.
   */
  mirrorUid?: string;
  name: string;
  namespace: string;
  nodeName: string;
  /** Primary pod IP ('' while pending). */
  podIP: string;
  podIPs: string[];
  hostNetwork: boolean;
  labels: Readonly<Record<string, string>>;
  /** Only the annotations selected by configuration. */
  annotations: Readonly<Record<string, string>>;
  qosClass: QosClass | '';
  phase: string;
  containers: ContainerMeta[];
  /** The direct controller owner reference, if any. */
  controller?: { kind: string; name: string; uid: string };
  workloads: Workloads;
  serviceName: string;
  resourceVersion: string;
}

export interface PodModelOptions {
  /**
   * Annotation keys to keep. An entry ending in '*' keeps every key with that prefix. Empty: none.
   */
  annotations: readonly string[];
}

/** `containerd://abc` → { runtime: 'containerd', id: 'abc' }. A bare id keeps runtime ''. */
export function splitContainerId(raw: string | undefined): { runtime: string; id: string } {
  if (!raw) return { runtime: '', id: '' };
  const i = raw.indexOf('://');
  if (i < 0) return { runtime: '', id: raw };
  return { runtime: raw.slice(0, i), id: raw.slice(i + 3) };
}

/**
 * Splits an image reference into name and tag: `reg:5000/ns/app:1.2@sha256:…` → name `reg:5000/ns/app`,
 * tag `1.2`. The port colon is told apart from the tag colon by being before the last '/'.
 */
export function parseImage(ref: string): { name: string; tag: string } {
  let s = ref;
  const at = s.indexOf('@');
  if (at >= 0) s = s.slice(0, at);
  const slash = s.lastIndexOf('/');
  const colon = s.lastIndexOf(':');
  if (colon > slash) return { name: s.slice(0, colon), tag: s.slice(colon + 1) };
  return { name: s, tag: '' };
}

/**
 * service.name rule: label `app.kubernetes.io/name`, then label `app`, then the top-most owner
 * workload's name, then the pod name.
 */
export function serviceNameOf(labels: Readonly<Record<string, string>>, workloads: Workloads, podName: string): string {
  const a = labels['app.kubernetes.io/name'];
  if (a) return a;
  const b = labels['app'];
  if (b) return b;
  if (workloads.top?.name) return workloads.top.name;
  return podName;
}

export function controllerRef(refs: V1OwnerReference[] | undefined): V1OwnerReference | undefined {
  if (!refs || refs.length === 0) return undefined;
  return refs.find((r) => r.controller) ?? refs[0];
}

/**
 * Workloads that can be told from the Pod alone. A ReplicaSet's Deployment and a Job's CronJob need
 * their owner's owner (see OwnerResolver); `parents` carries what it found.
 */
export function workloadsOf(
  ctrl: { kind: string; name: string } | undefined,
  parent?: { kind: string; name: string },
): Workloads {
  const w: Workloads = {};
  if (!ctrl) return w;
  switch (ctrl.kind) {
    case 'ReplicaSet':
      w.replicaset = ctrl.name;
      if (parent?.kind === 'Deployment') {
        w.deployment = parent.name;
        w.top = parent;
      } else w.top = ctrl;
      return w;
    case 'Job':
      w.job = ctrl.name;
      if (parent?.kind === 'CronJob') {
        w.cronjob = parent.name;
        w.top = parent;
      } else w.top = ctrl;
      return w;
    case 'StatefulSet':
      w.statefulset = ctrl.name;
      break;
    case 'DaemonSet':
      w.daemonset = ctrl.name;
      break;
    case 'Deployment':
      w.deployment = ctrl.name;
      break;
    case 'CronJob':
      w.cronjob = ctrl.name;
      break;
    default:
      break; // Node (static pods), custom controllers: top only
  }
  w.top = { kind: ctrl.kind, name: ctrl.name };
  return w;
}

function selectAnnotations(all: Record<string, string> | undefined, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (!all || keys.length === 0) return out;
  for (const k of keys) {
    if (k.endsWith('*')) {
      const p = k.slice(0, -1);
      for (const [ak, av] of Object.entries(all)) if (ak.startsWith(p)) out[ak] = av;
    } else if (all[k] !== undefined) out[k] = all[k];
  }
  return out;
}

function qosOf(s: string | undefined): QosClass | '' {
  switch (s) {
    case 'Guaranteed':
      return 'guaranteed';
    case 'Burstable':
      return 'burstable';
    case 'BestEffort':
      return 'besteffort';
    default:
      return '';
  }
}

/** Flattens a V1Pod. `parent` is the controller's own controller when known (Deployment, CronJob). */
export function podMetaFromV1(pod: V1Pod, opts: PodModelOptions, parent?: { kind: string; name: string }): PodMeta {
  const md = pod.metadata ?? {};
  const spec = pod.spec;
  const st = pod.status ?? {};
  const labels = { ...(md.labels ?? {}) };
  const ctrl = controllerRef(md.ownerReferences);
  const controller = ctrl ? { kind: ctrl.kind, name: ctrl.name, uid: ctrl.uid } : undefined;
  const workloads = workloadsOf(controller, parent);

  const statusByName = new Map<string, V1ContainerStatus>();
  for (const s of st.containerStatuses ?? []) statusByName.set('c/' + s.name, s);
  for (const s of st.initContainerStatuses ?? []) statusByName.set('i/' + s.name, s);
  for (const s of st.ephemeralContainerStatuses ?? []) statusByName.set('e/' + s.name, s);

  const containers: ContainerMeta[] = [];
  const add = (kind: ContainerMeta['kind'], prefix: string, name: string, image: string | undefined) => {
    const s = statusByName.get(prefix + name);
    const { runtime, id } = splitContainerId(s?.containerID);
    const prev = splitContainerId(s?.lastState?.terminated?.containerID).id;
    const img = image ?? s?.image ?? '';
    const { name: imageName, tag: imageTag } = parseImage(img);
    containers.push({ name, id, previousId: prev !== id ? prev : '', runtime, image: img, imageName, imageTag, kind });
  };
  for (const c of spec?.containers ?? []) add('container', 'c/', c.name, c.image);
  for (const c of spec?.initContainers ?? []) add('init', 'i/', c.name, c.image);
  for (const c of spec?.ephemeralContainers ?? []) add('ephemeral', 'e/', c.name, c.image);

  const name = md.name ?? '';
  return {
    uid: md.uid ?? '',
    mirrorUid: md.annotations?.[MIRROR_ANNOTATION] ?? '',
    name,
    namespace: md.namespace ?? '',
    nodeName: spec?.nodeName ?? '',
    podIP: st.podIP ?? '',
    podIPs: (st.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => !!ip),
    hostNetwork: spec?.hostNetwork === true,
    labels,
    annotations: selectAnnotations(md.annotations, opts.annotations),
    qosClass: qosOf(st.qosClass),
    phase: st.phase ?? '',
    containers,
    controller,
    workloads,
    serviceName: serviceNameOf(labels, workloads, name),
    resourceVersion: md.resourceVersion ?? '',
  };
}

/**
 * Finds the container a runtime id belongs to (ids compared without scheme): its current instance,
 * else the one before its last restart.
 */
export function containerById(pod: PodMeta, id: string): ContainerMeta | undefined {
  if (id === '') return undefined;
  let previous: ContainerMeta | undefined;
  for (const c of pod.containers) {
    if (c.id === id) return c;
    if (previous === undefined && c.previousId === id) previous = c;
  }
  return previous;
}
