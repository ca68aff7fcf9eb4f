// cgroup path → container id, runtime, pod uid and QoS class. Table-driven: each row is tried on
// each path segment, so the systemd driver (`…-pod<uid_>.slice/cri-containerd-<id>.scope`), the
// cgroupfs driver (`/kubepods/<qos>/pod<uid>/<id>`, CRI-O's `…/pod<uid>/crio-<id>`), kind's nested
// `kubelet-` slices and plain docker/podman all go through the same loop.
import type { QosClass } from '../../../lib/k8s/pod-model.ts';

export interface ContainerRule {
  name: string;
  /** Tested on one path segment; group 1 is the container id. */
  re: RegExp;
  runtime: string;
  /** The container monitor (CRI-O conmon) rather than the container: pod only, no container id. */
  monitor?: boolean;
}

export interface PodRule {
  name: string;
  /** Tested on one path segment; group `qos` (optional) and group `uid`. */
  re: RegExp;
  /** systemd slice names escape '-' in the uid as '_'. */
  underscored: boolean;
}

const HEX64 = '([0-9a-f]{64})';

/** Order matters: the first matching row wins for a segment (conmon before plain crio). */
export const CONTAINER_RULES: readonly ContainerRule[] = [
  { name: 'containerd systemd scope', re: new RegExp(`^cri-containerd-${HEX64}\\.scope$`), runtime: 'containerd' },
  // cgroup v1 + containerd with the systemd driver: "kubepods-…-pod<uid>.slice:cri-containerd:<id>"
  { name: 'containerd v1 slice:prefix:id', re: new RegExp(`:cri-containerd:${HEX64}$`), runtime: 'containerd' },
  // CRI-O names the cgroup `crio-<id>.scope` under the systemd driver and `crio-<id>` under cgroupfs.
  { name: 'cri-o conmon scope', re: new RegExp(`^crio-conmon-${HEX64}(?:\\.scope)?$`), runtime: 'cri-o', monitor: true },
  { name: 'cri-o systemd scope', re: new RegExp(`^crio-${HEX64}(?:\\.scope)?$`), runtime: 'cri-o' },
  { name: 'cri-o v1 slice:prefix:id', re: new RegExp(`:crio:${HEX64}$`), runtime: 'cri-o' },
  { name: 'docker systemd scope', re: new RegExp(`^docker-${HEX64}\\.scope$`), runtime: 'docker' },
  { name: 'podman scope', re: new RegExp(`^libpod-${HEX64}\\.scope$`), runtime: 'podman' },
  // cgroupfs driver: the bare id is the leaf; the runtime is told by a parent ("docker", "k8s.io").
  { name: 'cgroupfs bare id', re: new RegExp(`^${HEX64}$`), runtime: '' },
];

export const POD_RULES: readonly PodRule[] = [
  // systemd driver, incl. kind's "kubelet-kubepods-…" nesting; Guaranteed pods have no qos part.
  // Static pods have a 32-hex config-hash uid without dashes.
  {
    name: 'systemd pod slice',
    re: /^(?:[a-z0-9]+-)*kubepods(?:-(?<qos>burstable|besteffort))?-pod(?<uid>[0-9a-f_]{32,36})\.slice(?::|$)/,
    underscored: true,
  },
  { name: 'cgroupfs pod dir', re: /^pod(?<uid>[0-9a-f-]{32,36})$/, underscored: false },
];

export interface CgroupPathInfo {
  /** Container id ('' when the path names no container: host service, pod-level, sandbox parent). */
  containerId: string;
  runtime: string;
  /** Pod uid with dashes ('' when not under kubepods). */
  podUid: string;
  qos: QosClass | '';
  /** Which rows matched, for tests and debugging. */
  containerRule: string;
  podRule: string;
  /** True for a container monitor process (conmon): it belongs to the pod, not the container. */
  monitor: boolean;
}

const EMPTY: CgroupPathInfo = Object.freeze({ containerId: '', runtime: '', podUid: '', qos: '', containerRule: '', podRule: '', monitor: false });

function runtimeFromParent(parent: string): string {
  if (parent === 'docker' || parent === 'docker.service') return 'docker';
  if (parent === 'k8s.io' || parent === 'containerd.service') return 'containerd';
  if (parent === 'crio' || parent === 'crio.service') return 'cri-o';
  return '';
}

/** Parses a cgroup path (relative to a hierarchy root, leading '/' optional). Pure; no I/O. */
export function parseCgroupPath(path: string): CgroupPathInfo {
  if (!path || path === '/') return EMPTY;
  const segs = path.split('/');
  let containerId = '';
  let runtime = '';
  let containerRule = '';
  let monitor = false;
  let podUid = '';
  let podRule = '';
  let qos: QosClass | '' = '';
  let underKubepods = false;
  let qosSeg: QosClass | '' = '';
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === '') continue;
    if (s === 'kubepods' || s === 'kubepods.slice' || /(?:^|-)kubepods\.slice$/.test(s)) underKubepods = true;
    if (s === 'burstable' || s === 'besteffort') qosSeg = s;
    else {
      const q = /^(?:[a-z0-9]+-)*kubepods-(burstable|besteffort)\.slice$/.exec(s);
      if (q) qosSeg = q[1] as QosClass;
    }
    if (!podUid) {
      for (const r of POD_RULES) {
        const m = r.re.exec(s);
        if (!m || !m.groups?.uid) continue;
        podUid = r.underscored ? m.groups.uid.replace(/_/g, '-') : m.groups.uid;
        podRule = r.name;
        if (m.groups.qos) qos = m.groups.qos as QosClass;
        underKubepods ||= r.underscored;
        break;
      }
    }
    for (const r of CONTAINER_RULES) {
      const m = r.re.exec(s);
      if (!m) continue;
      // A deeper match wins: nested runtimes (docker-in-docker, kind nodes) name the inner container last.
      containerRule = r.name;
      monitor = r.monitor === true;
      containerId = monitor ? '' : m[1]!;
      runtime = r.runtime || runtimeFromParent(i > 0 ? segs[i - 1]! : '');
      break;
    }
  }
  if (podUid && !qos) qos = qosSeg || (underKubepods ? 'guaranteed' : '');
  return { containerId, runtime, podUid, qos, containerRule, podRule, monitor };
}

/**
 * Picks the line of /proc/PID/cgroup to parse: the unified ("0::") line when it names a path, else the
 * first v1 line that looks like a container (name=systemd, memory, ...), else the unified line.
 */
export function pathFromProcCgroup(text: string): { unified: string; best: string } {
  let unified = '';
  let v1 = '';
  for (const line of text.split('\n')) {
    if (!line) continue;
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const hid = line.slice(0, a);
    const p = line.slice(b + 1);
    if (hid === '0' && line.slice(a + 1, b) === '') unified = p;
    else if (!v1 && p !== '/' && (p.includes('kubepods') || /[0-9a-f]{64}/.test(p))) v1 = p;
  }
  const unifiedUseful = unified !== '' && unified !== '/';
  const best = unifiedUseful && (parseCgroupPath(unified).containerId || parseCgroupPath(unified).podUid || !v1) ? unified : v1 || unified;
  return { unified, best };
}
