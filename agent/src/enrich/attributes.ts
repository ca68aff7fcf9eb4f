// Resource attributes (OpenTelemetry semantic conventions) built from a cgroup's pod/container facts
// and a process's facts. Built once per (cgroup, pid) and interned by the Enricher.
import {
  ATTR_CONTAINER_ID,
  ATTR_CONTAINER_IMAGE_NAME,
  ATTR_CONTAINER_IMAGE_TAGS,
  ATTR_K8S_CONTAINER_NAME,
  ATTR_K8S_CRONJOB_NAME,
  ATTR_K8S_DAEMONSET_NAME,
  ATTR_K8S_DEPLOYMENT_NAME,
  ATTR_K8S_JOB_NAME,
  ATTR_K8S_NAMESPACE_NAME,
  ATTR_K8S_NODE_NAME,
  ATTR_K8S_POD_ANNOTATION,
  ATTR_K8S_POD_LABEL,
  ATTR_K8S_POD_NAME,
  ATTR_K8S_POD_UID,
  ATTR_K8S_REPLICASET_NAME,
  ATTR_K8S_STATEFULSET_NAME,
  ATTR_PROCESS_COMMAND_LINE,
  ATTR_PROCESS_EXECUTABLE_NAME,
  ATTR_PROCESS_EXECUTABLE_PATH,
  ATTR_PROCESS_PARENT_PID,
  ATTR_PROCESS_PID,
} from '@opentelemetry/semantic-conventions/incubating';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { KeyValue, Resource } from '../../../proto/src/model.ts';
import type { ContainerMeta, PodMeta } from '../../../lib/k8s/pod-model.ts';
import type { CgroupPathInfo } from './cgroup-paths.ts';
import type { ProcessInfo } from './process-cache.ts';

export interface AttributeOptions {
  /** k8s.node.name for processes outside pods (and pods whose spec lacks it). */
  nodeName: string;
  /** Pod label keys copied as k8s.pod.label.<key>. */
  podLabels: readonly string[];
  /** process.command_line is opt-in: argv may carry secrets. */
  commandLine: boolean;
}

/** Pod and container attributes of a cgroup (everything but the process and service.name). */
export function cgroupAttributes(info: CgroupPathInfo, pod: PodMeta | undefined, container: ContainerMeta | undefined, o: AttributeOptions): KeyValue[] {
  const a: KeyValue[] = [];
  if (pod) {
    a.push({ key: ATTR_K8S_NAMESPACE_NAME, value: pod.namespace });
    a.push({ key: ATTR_K8S_POD_NAME, value: pod.name });
    a.push({ key: ATTR_K8S_POD_UID, value: pod.uid });
    const w = pod.workloads;
    if (w.deployment) a.push({ key: ATTR_K8S_DEPLOYMENT_NAME, value: w.deployment });
    if (w.replicaset) a.push({ key: ATTR_K8S_REPLICASET_NAME, value: w.replicaset });
    if (w.statefulset) a.push({ key: ATTR_K8S_STATEFULSET_NAME, value: w.statefulset });
    if (w.daemonset) a.push({ key: ATTR_K8S_DAEMONSET_NAME, value: w.daemonset });
    if (w.cronjob) a.push({ key: ATTR_K8S_CRONJOB_NAME, value: w.cronjob });
    if (w.job) a.push({ key: ATTR_K8S_JOB_NAME, value: w.job });
    for (const k of o.podLabels) {
      const v = pod.labels[k];
      if (v !== undefined) a.push({ key: ATTR_K8S_POD_LABEL(k), value: v });
    }
    for (const [k, v] of Object.entries(pod.annotations)) a.push({ key: ATTR_K8S_POD_ANNOTATION(k), value: v });
  } else if (info.podUid) {
    // The path names the pod even when the API does not (yet): keep what is certain.
    a.push({ key: ATTR_K8S_POD_UID, value: info.podUid });
  }
  const node = pod?.nodeName || o.nodeName;
  if (node) a.push({ key: ATTR_K8S_NODE_NAME, value: node });
  if (container) a.push({ key: ATTR_K8S_CONTAINER_NAME, value: container.name });
  if (info.containerId) a.push({ key: ATTR_CONTAINER_ID, value: info.containerId });
  if (container?.imageName) {
    a.push({ key: ATTR_CONTAINER_IMAGE_NAME, value: container.imageName });
    if (container.imageTag) a.push({ key: ATTR_CONTAINER_IMAGE_TAGS, value: [container.imageTag] });
  }
  return a;
}

/** The full resource: service.name first, then cgroup attributes, then process attributes. */
export function buildResource(base: readonly KeyValue[], pod: PodMeta | undefined, pid: number, proc: ProcessInfo | undefined, o: AttributeOptions): Resource {
  const attributes: KeyValue[] = [];
  const svc = pod ? pod.serviceName : proc?.exeName ? `unknown_service:${proc.exeName}` : 'unknown_service';
  attributes.push({ key: ATTR_SERVICE_NAME, value: svc });
  for (const kv of base) attributes.push(kv);
  attributes.push({ key: ATTR_PROCESS_PID, value: BigInt(pid) });
  if (proc) {
    if (proc.ppid) attributes.push({ key: ATTR_PROCESS_PARENT_PID, value: BigInt(proc.ppid) });
    if (proc.exeName) attributes.push({ key: ATTR_PROCESS_EXECUTABLE_NAME, value: proc.exeName });
    if (proc.exe) attributes.push({ key: ATTR_PROCESS_EXECUTABLE_PATH, value: proc.exe });
    if (o.commandLine && proc.cmdline) attributes.push({ key: ATTR_PROCESS_COMMAND_LINE, value: proc.cmdline });
  }
  return { attributes, droppedAttributesCount: 0 };
}

/** Attribute lookup for tests and debugging (not for hot paths). */
export function attr(r: Resource, key: string): KeyValue['value'] | undefined {
  return r.attributes.find((kv) => kv.key === key)?.value;
}
