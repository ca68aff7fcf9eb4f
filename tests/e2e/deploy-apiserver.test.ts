// Applies every overlay to a real kube-apiserver: server-side dry run with strict field
// validation, then for real; then checks what the agent's ServiceAccount may and may not do.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { tryEnsurePeer, startKubeApiserver, type KubeApiserverHandle } from '../peers/index.ts';
import { requires } from '../lib/env.ts';
import { render, type K8sObject } from '../lib/deploy.ts';
import { loadKubeConfig, PodInformer, validatePodInformerConfig, type PodMeta } from '../../lib/k8s/index.ts';

let api: KubeApiserverHandle | undefined;
after(async () => { await api?.stop(); });

async function apiserver(t: import('node:test').TestContext): Promise<KubeApiserverHandle | undefined> {
  const peers = await Promise.all([tryEnsurePeer('kube-apiserver'), tryEnsurePeer('kubectl'), tryEnsurePeer('kustomize')]);
  const missing = peers.filter((p) => !p.ok).map((p) => p.error);
  if (!requires(t, missing.length === 0, `kube-apiserver, kubectl and kustomize peers (${missing.join('; ')})`)) return undefined;
  api ??= await startKubeApiserver();
  return api;
}

/**
 * Overlays share one API server; a StatefulSet's volumeClaimTemplates are immutable, so remove
 * the previous overlay's StatefulSets first (no controllers run here, deletion is immediate).
 */
async function clearStatefulSets(k: KubeApiserverHandle): Promise<void> {
  const r = await k.kubectl(['delete', 'statefulsets', '--all', '-n', 'kscope', '--ignore-not-found', '--wait=false']);
  assert.equal(r.code, 0, r.stderr);
}

function yamlOf(objs: K8sObject[]): string {
  return objs.map((o) => stringify(o)).join('---\n');
}

/** Namespaces first so namespaced objects have somewhere to go. */
function ordered(objs: K8sObject[]): K8sObject[] {
  return [...objs.filter((o) => o.kind === 'Namespace'), ...objs.filter((o) => o.kind !== 'Namespace')];
}

for (const dir of ['overlays/kind', 'overlays/minikube', 'overlays/production']) {
  test(`${dir}: the API server accepts every object (dry run, strict validation, then for real)`, async (t) => {
    const k = await apiserver(t);
    if (!k) return;
    const objs = ordered(await render(dir));
    // Namespaces must exist for a namespaced dry run; create them for real first.
    const nsYaml = yamlOf(objs.filter((o) => o.kind === 'Namespace'));
    const ns = await k.kubectl(['apply', '--server-side', '--field-manager=kscope-test', '-f', '-'], { input: nsYaml });
    assert.equal(ns.code, 0, ns.stderr);
    const rest = yamlOf(objs.filter((o) => o.kind !== 'Namespace'));
    await clearStatefulSets(k);
    const dry = await k.kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '--field-manager=kscope-test', '-f', '-'], { input: rest });
    assert.equal(dry.code, 0, `dry run refused:\n${dry.stderr}\n${dry.stdout}`);
    const real = await k.kubectl(['apply', '--server-side', '--validate=strict', '--field-manager=kscope-test', '--force-conflicts', '-f', '-'], { input: rest });
    assert.equal(real.code, 0, `apply refused:\n${real.stderr}`);
    // Read one object back: the API defaulted and stored it.
    const ds = await k.request('GET', '/apis/apps/v1/namespaces/kscope/daemonsets/kscope-agent');
    assert.equal(ds.status, 200);
    assert.equal(ds.json().spec.template.spec.containers[0].securityContext.privileged, false);
  });
}

test('the agent ServiceAccount can watch pods and nothing more (SubjectAccessReview)', async (t) => {
  const k = await apiserver(t);
  if (!k) return;
  const objs = ordered(await render('overlays/production'));
  await clearStatefulSets(k);
  const res = await k.kubectl(['apply', '--server-side', '--field-manager=kscope-test', '--force-conflicts', '-f', '-'], { input: yamlOf(objs) });
  assert.equal(res.code, 0, res.stderr);
  const user = 'system:serviceaccount:kscope:kscope-agent';
  async function can(verb: string, resource: string, group = '', namespace = 'default'): Promise<boolean> {
    const r = await k!.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
      spec: { user, groups: ['system:serviceaccounts', 'system:serviceaccounts:kscope', 'system:authenticated'], resourceAttributes: { verb, resource, group, namespace } },
    });
    assert.equal(r.status, 201, r.body);
    return r.json().status.allowed === true;
  }
  // exactly what lib/k8s does: list+watch pods (informer), get one owner by name (owners.ts)
  for (const verb of ['list', 'watch']) assert.equal(await can(verb, 'pods'), true, `may ${verb} pods`);
  assert.equal(await can('get', 'replicasets', 'apps'), true, 'may get replicasets');
  assert.equal(await can('get', 'jobs', 'batch'), true, 'may get jobs'); // a Job owner names the CronJob
  for (const [verb, resource, group] of [
    ['get', 'pods', ''], ['list', 'replicasets', 'apps'], ['watch', 'replicasets', 'apps'],
    ['create', 'pods', ''], ['delete', 'pods', ''], ['patch', 'pods', ''], ['get', 'secrets', ''], ['list', 'configmaps', ''],
    ['get', 'nodes', ''], ['create', 'pods/exec', ''], ['update', 'replicasets', 'apps'], ['list', 'deployments', 'apps'],
  ] as const) assert.equal(await can(verb, resource, group), false, `must not ${verb} ${group}/${resource}`);
  // The same through kubectl's own check, with the agent's real token.
  const token = await k.serviceAccountToken('kscope', 'kscope-agent');
  const kc = k.kubeconfigFor(token, 'agent');
  const yes = await k.kubectl(['auth', 'can-i', 'watch', 'pods', '--all-namespaces'], { kubeconfig: kc });
  assert.equal(yes.stdout.trim(), 'yes');
  const no = await k.kubectl(['auth', 'can-i', 'get', 'secrets', '-n', 'kscope'], { kubeconfig: kc });
  assert.equal(no.stdout.trim(), 'no');

  // And it is enough: the agent's and the collector's own pod informer (lib/k8s), each with its
  // ServiceAccount's real token, lists a node's pods and names the Deployment through the
  // ReplicaSet that owns the pod.
  const ns = 'rbac-e2e';
  const admin = async (path: string, body: object) => {
    const r = await k.request('POST', path, body);
    assert.ok(r.status === 201 || r.status === 409, `${path}: ${r.status} ${r.body}`);
    return r.status === 201 ? r.json() : undefined;
  };
  await admin('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  const template = { metadata: { labels: { run: 'web' } }, spec: { containers: [{ name: 'main', image: 'web:1' }] } };
  const dep = await admin(`/apis/apps/v1/namespaces/${ns}/deployments`, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { selector: { matchLabels: { run: 'web' } }, template } });
  const rs = await admin(`/apis/apps/v1/namespaces/${ns}/replicasets`, {
    apiVersion: 'apps/v1', kind: 'ReplicaSet',
    metadata: { name: 'web-6b7f', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: dep.metadata.uid, controller: true }] },
    spec: { selector: { matchLabels: { run: 'web' } }, template },
  });
  await admin(`/api/v1/namespaces/${ns}/pods`, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: 'web-6b7f-abcde', labels: { run: 'web' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-6b7f', uid: rs.metadata.uid, controller: true }] },
    spec: { nodeName: 'rbac-node', containers: [{ name: 'main', image: 'web:1' }] },
  });
  for (const [sa, nodeName] of [['kscope-agent', 'rbac-node'], ['kscope-collector', '']] as const) {
    const token: string = await k.serviceAccountToken('kscope', sa);
    const access = loadKubeConfig({ kubeconfig: k.kubeconfigFor(token, sa) })!;
    const informer: PodInformer = new PodInformer(access.kc, validatePodInformerConfig({ nodeName }, sa), {});
    informer.start();
    try {
      assert.ok(await informer.waitForSync(20_000), `${sa}: the pod list synced`);
      const deadline = Date.now() + 10_000;
      let pod: PodMeta | undefined = informer.store.list().find((p) => p.name === 'web-6b7f-abcde');
      while (pod?.workloads.deployment !== 'web' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        pod = informer.store.list().find((p) => p.name === 'web-6b7f-abcde');
      }
      assert.equal(pod?.workloads.deployment, 'web', `${sa}: Deployment named through the ReplicaSet`);
    } finally {
      await informer.shutdown();
    }
  }
});
