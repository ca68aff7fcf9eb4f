// Peer smoke test: etcd + kube-apiserver (+ kubectl) on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { requires } from '../lib/env.ts';
import { tryEnsurePeer, startKubeApiserver } from '../peers/index.ts';
import { eventually } from '../peers/wait.ts';

// A first build takes minutes on 2 cores. The runner's --test-timeout (10 min) caps each file,
// which is why every long Go build (otelcol, Kubernetes, Jaeger) has a file of its own.
const BUILD_TIMEOUT = { timeout: 60 * 60_000 };

test('kube-apiserver: namespace and pod round trip, RBAC with a ServiceAccount token, restart, kubectl', BUILD_TIMEOUT, async (t) => {
  const peer = await tryEnsurePeer('kube-apiserver');
  if (!requires(t, peer.ok, `kube-apiserver peer (${peer.error})`)) return;
  const kube = await startKubeApiserver();
  try {
    const ready = await kube.request('GET', '/readyz');
    assert.equal(ready.status, 200);
    const ns = await kube.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'smoke' } });
    assert.equal(ns.status, 201, ns.body);
    const pod = await kube.request('POST', '/api/v1/namespaces/smoke/pods', {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'web', labels: { app: 'web' } },
      spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'example.invalid/web:1' }] },
    });
    assert.equal(pod.status, 201, pod.body);
    const got = await kube.request('GET', '/api/v1/namespaces/smoke/pods/web');
    assert.equal(got.status, 200);
    const p = got.json();
    assert.equal(p.metadata.labels.app, 'web');
    assert.equal(p.spec.nodeName, 'node-a');
    assert.equal(p.status.phase, 'Pending');
    // No kubelet: status is set by hand.
    const patched = await kube.request('PATCH', '/api/v1/namespaces/smoke/pods/web/status',
      { status: { phase: 'Running', podIP: '10.1.2.3', podIPs: [{ ip: '10.1.2.3' }] } }, { contentType: 'application/merge-patch+json' });
    assert.equal(patched.status, 200, patched.body);
    assert.equal(patched.json().status.podIP, '10.1.2.3');

    // A ServiceAccount without bindings is denied; the admin is not.
    const saToken = await kube.serviceAccountToken('smoke', 'reader');
    const denied = await kube.request('GET', '/api/v1/namespaces/smoke/pods', undefined, { token: saToken });
    assert.equal(denied.status, 403, denied.body);
    const role = await kube.request('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/smoke/roles', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'pod-reader' },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
    });
    assert.equal(role.status, 201, role.body);
    const binding = await kube.request('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/smoke/rolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'reader' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: 'smoke' }],
    });
    assert.equal(binding.status, 201, binding.body);
    const allowed = await eventually('RBAC binding to take effect', async () => {
      const r = await kube.request('GET', '/api/v1/namespaces/smoke/pods', undefined, { token: saToken });
      return r.status === 200 ? r : undefined;
    });
    assert.equal(allowed.json().items.length, 1);

    // Data survives an apiserver restart (etcd keeps running), same URL.
    const pidBefore = kube.pid();
    await kube.restart();
    assert.notEqual(kube.pid(), pidBefore);
    const again = await kube.request('GET', '/api/v1/namespaces/smoke/pods/web');
    assert.equal(again.status, 200);

    const kubectl = await tryEnsurePeer('kubectl');
    if (!requires(t, kubectl.ok, `kubectl peer (${kubectl.error})`)) return;
    const saConfig = kube.kubeconfigFor(saToken, 'reader');
    const can = await kube.kubectl(['auth', 'can-i', 'list', 'pods', '-n', 'smoke'], { kubeconfig: saConfig });
    assert.equal(can.stdout.trim(), 'yes', can.stderr);
    const cannot = await kube.kubectl(['auth', 'can-i', 'delete', 'pods', '-n', 'smoke'], { kubeconfig: saConfig });
    assert.equal(cannot.stdout.trim(), 'no', cannot.stderr);
    const dry = await kube.kubectl(['apply', '--dry-run=server', '-o', 'name', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dry', namespace: 'smoke' }, data: { a: '1' } }),
    });
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(dry.stdout.trim(), 'configmap/dry');
    const notCreated = await kube.request('GET', '/api/v1/namespaces/smoke/configmaps/dry');
    assert.equal(notCreated.status, 404);
  } finally {
    await kube.stop();
  }
  assert.equal(existsSync(kube.dir), false, 'temp dir removed on stop');
});
