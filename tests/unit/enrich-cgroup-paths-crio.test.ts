// CRI-O with the cgroupfs driver names container cgroups `crio-<id>` and the monitor `crio-conmon-<id>`
// (no `.scope`: that suffix is the systemd driver's). Both must be recognised under /kubepods.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCgroupPath } from '../../agent/src/enrich/cgroup-paths.ts';

const ID = '63425c4a8b4291744a79dd9011fddc7a1f8ffda61f65d72196aa01d00cae2e2e';
const UID = 'a48c12e8-255a-11e9-8cd9-0007cb0b2cc8';

test('cri-o, cgroupfs driver: /kubepods/burstable/pod<uid>/crio-<id> is the container', () => {
  const got = parseCgroupPath(`/kubepods/burstable/pod${UID}/crio-${ID}`);
  assert.equal(got.containerId, ID);
  assert.equal(got.runtime, 'cri-o');
  assert.equal(got.podUid, UID);
  assert.equal(got.qos, 'burstable');
  assert.equal(got.monitor, false);
});

test('cri-o, cgroupfs driver, guaranteed pod: /kubepods/pod<uid>/crio-<id>', () => {
  const got = parseCgroupPath(`/kubepods/pod${UID}/crio-${ID}`);
  assert.equal(got.containerId, ID);
  assert.equal(got.runtime, 'cri-o');
  assert.equal(got.qos, 'guaranteed');
});

test('cri-o, cgroupfs driver: crio-conmon-<id> is the pod, not the container', () => {
  const got = parseCgroupPath(`/kubepods/burstable/pod${UID}/crio-conmon-${ID}`);
  assert.equal(got.containerRule, 'cri-o conmon scope', 'the conmon row, not the container row');
  assert.equal(got.monitor, true);
  assert.equal(got.containerId, '');
  assert.equal(got.runtime, 'cri-o');
  assert.equal(got.podUid, UID);
  assert.equal(got.qos, 'burstable');
});

test('cri-o, systemd driver is unchanged (scope suffix), and a suffix other than .scope is no container', () => {
  const uidu = UID.replace(/-/g, '_');
  const sd = parseCgroupPath(`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uidu}.slice/crio-${ID}.scope/container`);
  assert.equal(sd.containerId, ID);
  assert.equal(sd.runtime, 'cri-o');
  assert.equal(parseCgroupPath(`/kubepods/burstable/pod${UID}/crio-${ID}.slice`).containerId, '');
  assert.equal(parseCgroupPath(`/kubepods/burstable/pod${UID}/crio-${ID.slice(1)}`).containerId, '', 'a 63-hex id');
});
