import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCgroupPath, pathFromProcCgroup, CONTAINER_RULES, POD_RULES } from '../../agent/src/enrich/cgroup-paths.ts';

const ID = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef0123456789abcdef01234567';
const UID = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const UIDU = UID.replace(/-/g, '_');
const STATIC = 'd41d8cd98f00b204e9800998ecf8427e';

interface Row {
  name: string;
  path: string;
  containerId: string;
  runtime: string;
  podUid: string;
  qos: string;
  containerRule?: string;
  podRule?: string;
}

// One row per driver/runtime combination; each names the rule it exercises.
const rows: Row[] = [
  { name: 'containerd, systemd driver, burstable', path: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UIDU}.slice/cri-containerd-${ID}.scope`, containerId: ID, runtime: 'containerd', podUid: UID, qos: 'burstable', containerRule: 'containerd systemd scope', podRule: 'systemd pod slice' },
  { name: 'containerd, systemd driver, besteffort', path: `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UIDU}.slice/cri-containerd-${ID}.scope`, containerId: ID, runtime: 'containerd', podUid: UID, qos: 'besteffort' },
  { name: 'containerd, systemd driver, guaranteed (no qos slice)', path: `/kubepods.slice/kubepods-pod${UIDU}.slice/cri-containerd-${ID}.scope`, containerId: ID, runtime: 'containerd', podUid: UID, qos: 'guaranteed' },
  { name: 'containerd, cgroupfs driver', path: `/kubepods/burstable/pod${UID}/${ID}`, containerId: ID, runtime: '', podUid: UID, qos: 'burstable', containerRule: 'cgroupfs bare id', podRule: 'cgroupfs pod dir' },
  { name: 'cgroupfs driver, guaranteed', path: `/kubepods/pod${UID}/${ID}`, containerId: ID, runtime: '', podUid: UID, qos: 'guaranteed' },
  { name: 'cgroupfs driver, besteffort', path: `/kubepods/besteffort/pod${UID}/${ID}`, containerId: ID, runtime: '', podUid: UID, qos: 'besteffort' },
  { name: 'cri-o scope', path: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UIDU}.slice/crio-${ID}.scope`, containerId: ID, runtime: 'cri-o', podUid: UID, qos: 'burstable', containerRule: 'cri-o systemd scope' },
  { name: 'cri-o conmon: pod only', path: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UIDU}.slice/crio-conmon-${ID}.scope`, containerId: '', runtime: 'cri-o', podUid: UID, qos: 'burstable', containerRule: 'cri-o conmon scope' },
  { name: 'docker scope under kubepods', path: `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UIDU}.slice/docker-${ID}.scope`, containerId: ID, runtime: 'docker', podUid: UID, qos: 'besteffort', containerRule: 'docker systemd scope' },
  { name: 'plain docker, cgroupfs', path: `/docker/${ID}`, containerId: ID, runtime: 'docker', podUid: '', qos: '' },
  { name: 'plain docker, systemd', path: `/system.slice/docker-${ID}.scope`, containerId: ID, runtime: 'docker', podUid: '', qos: '' },
  { name: 'containerd namespace k8s.io', path: `/k8s.io/${ID}`, containerId: ID, runtime: 'containerd', podUid: '', qos: '' },
  { name: 'podman', path: `/machine.slice/libpod-${ID}.scope`, containerId: ID, runtime: 'podman', podUid: '', qos: '' },
  { name: 'kind node, systemd driver nested', path: `/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod${UIDU}.slice/cri-containerd-${ID}.scope`, containerId: ID, runtime: 'containerd', podUid: UID, qos: 'burstable' },
  { name: 'kind node, cgroupfs nested', path: `/kubelet/kubepods/besteffort/pod${UID}/${ID}`, containerId: ID, runtime: '', podUid: UID, qos: 'besteffort' },
  { name: 'kind node seen from the host (docker scope around the node)', path: `/system.slice/docker-${'b'.repeat(64)}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod${UIDU}.slice/cri-containerd-${ID}.scope`, containerId: ID, runtime: 'containerd', podUid: UID, qos: 'guaranteed' },
  { name: 'containerd v1 with systemd driver (slice:prefix:id)', path: `/system.slice/containerd.service/kubepods-besteffort-pod${UIDU}.slice:cri-containerd:${ID}`, containerId: ID, runtime: 'containerd', podUid: UID, qos: 'besteffort', containerRule: 'containerd v1 slice:prefix:id' },
  { name: 'cri-o v1 (slice:crio:id)', path: `/kubepods-burstable-pod${UIDU}.slice:crio:${ID}`, containerId: ID, runtime: 'cri-o', podUid: UID, qos: 'burstable', containerRule: 'cri-o v1 slice:prefix:id' },
  { name: 'static pod uid (32 hex, no dashes)', path: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${STATIC}.slice/cri-containerd-${ID}.scope`, containerId: ID, runtime: 'containerd', podUid: STATIC, qos: 'burstable' },
  { name: 'pod-level slice (no container)', path: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UIDU}.slice`, containerId: '', runtime: '', podUid: UID, qos: 'burstable' },
  { name: 'host service', path: '/system.slice/sshd.service', containerId: '', runtime: '', podUid: '', qos: '' },
  { name: 'root', path: '/', containerId: '', runtime: '', podUid: '', qos: '' },
  { name: 'too short id is not a container', path: `/system.slice/docker-${ID.slice(0, 12)}.scope`, containerId: '', runtime: '', podUid: '', qos: '' },
  { name: 'uppercase hex is not an id', path: `/docker/${ID.toUpperCase()}`, containerId: '', runtime: '', podUid: '', qos: '' },
];

for (const r of rows) {
  test(`cgroup path: ${r.name}`, () => {
    const got = parseCgroupPath(r.path);
    assert.equal(got.containerId, r.containerId, 'containerId');
    assert.equal(got.runtime, r.runtime, 'runtime');
    assert.equal(got.podUid, r.podUid, 'podUid');
    assert.equal(got.qos, r.qos, 'qos');
    if (r.containerRule) assert.equal(got.containerRule, r.containerRule);
    if (r.podRule) assert.equal(got.podRule, r.podRule);
  });
}

test('every rule of both tables is exercised by some row', () => {
  const cr = new Set(rows.map((r) => parseCgroupPath(r.path).containerRule));
  for (const rule of CONTAINER_RULES) assert.ok(cr.has(rule.name), `container rule '${rule.name}' has no row`);
  const pr = new Set(rows.map((r) => parseCgroupPath(r.path).podRule));
  for (const rule of POD_RULES) assert.ok(pr.has(rule.name), `pod rule '${rule.name}' has no row`);
});

test('/proc/PID/cgroup: hybrid host prefers the unified line when it names a container', () => {
  const p = `/kubepods.slice/kubepods-pod${UIDU}.slice/cri-containerd-${ID}.scope`;
  const text = `12:memory:/kubepods/pod${UID}/${ID}\n1:name=systemd:${p}\n0::${p}\n`;
  assert.deepEqual(pathFromProcCgroup(text), { unified: p, best: p });
});

test('/proc/PID/cgroup: unified line "/" on a hybrid host falls back to a v1 line', () => {
  const v1 = `/kubepods/besteffort/pod${UID}/${ID}`;
  const text = `4:memory:${v1}\n3:cpuset:/\n0::/\n`;
  const got = pathFromProcCgroup(text);
  assert.equal(got.unified, '/');
  assert.equal(got.best, v1);
  assert.equal(parseCgroupPath(got.best).podUid, UID);
});

test('/proc/PID/cgroup: pure v1 host without unified line', () => {
  const text = `5:pids:/docker/${ID}\n4:memory:/docker/${ID}\n`;
  assert.equal(pathFromProcCgroup(text).best, `/docker/${ID}`);
});
