// Applies every overlay to a real kube-apiserver: server-side dry run with strict field
// validation, then for real; then checks what the agent's ServiceAccount may and may not do.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { tryEnsurePeer, startKubeApiserver, type KubeApiserverHandle } from '../peers/index.ts';
import { requires } from '../lib/env.ts';
import { render, type K8sObject } from '../lib/deploy.ts';

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
  for (const verb of ['get', 'list', 'watch']) {
    assert.equal(await can(verb, 'pods'), true, `may ${verb} pods`);
    assert.equal(await can(verb, 'replicasets', 'apps'), true, `may ${verb} replicasets`);
  }
  // a Job owner names the CronJob (lib/k8s/owners.ts reads it)
  assert.equal(await can('get', 'jobs', 'batch'), true, 'may get jobs');
  for (const [verb, resource, group] of [
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
});
