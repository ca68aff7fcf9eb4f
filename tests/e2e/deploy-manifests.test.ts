// Renders every deploy/ overlay with kustomize and checks the objects: against the Kubernetes
// OpenAPI models, against our deployment policy, and the configs inside the ConfigMaps against
// the real agent and collector config loaders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { tryEnsurePeer } from '../peers/index.ts';
import { render, type K8sObject } from '../lib/deploy.ts';
import { requires } from '../lib/env.ts';
import { parseAgentConfig } from '../../agent/src/config.ts';
import { parseConfig } from '../../collector/src/config/load.ts';
import { validateConfig } from '../../collector/src/pipeline/service.ts';
import { validateK8sAttributesConfig } from '../../collector/src/processors/k8s_attributes/index.ts';
import { fullRegistry } from '../../collector/src/registry-full.ts';

const OVERLAYS = ['base', 'overlays/kind', 'overlays/minikube', 'overlays/production', 'examples'];

function podSpecOf(o: K8sObject): any | undefined {
  if (['Deployment', 'DaemonSet', 'StatefulSet'].includes(o.kind)) return o.spec.template.spec;
  return undefined;
}

/** kubernetes-models class for an object, by group/version/kind. */
async function modelFor(o: K8sObject): Promise<(new (x: unknown) => { validate(): void }) | undefined> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const groupPath = group === '' ? '' : `${group}/`;
  const mod = await import(`kubernetes-models/${groupPath}${version}/${o.kind}`).catch(() => undefined);
  return mod?.[o.kind] ?? mod?.default;
}

async function get(t: import('node:test').TestContext, dir: string): Promise<K8sObject[] | undefined> {
  const k = await tryEnsurePeer('kustomize');
  if (!requires(t, k.ok, `kustomize peer (${k.error ?? ''})`)) return undefined;
  return render(dir);
}

for (const dir of OVERLAYS) {
  test(`${dir}: every object is valid against the Kubernetes OpenAPI models`, async (t) => {
    const objs = await get(t, dir);
    if (!objs) return;
    assert.ok(objs.length > 0);
    for (const o of objs) {
      const Model = await modelFor(o);
      assert.ok(Model, `no OpenAPI model for ${o.apiVersion} ${o.kind}`);
      assert.doesNotThrow(() => new Model(o).validate(), `${o.kind}/${o.metadata.name} invalid`);
    }
  });
}

for (const dir of OVERLAYS.filter((d) => d !== 'examples')) {
  test(`${dir}: deployment policy`, async (t) => {
    const objs = await get(t, dir);
    if (!objs) return;
    const ds = objs.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'kscope-agent')!;
    assert.ok(ds, 'agent DaemonSet present');
    const agent = ds.spec.template.spec.containers[0];
    const sc = agent.securityContext;
    assert.equal(sc.privileged, false, 'agent not privileged');
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    for (const cap of ['BPF', 'PERFMON']) assert.ok(sc.capabilities.add.includes(cap), `agent has ${cap}`);
    assert.equal(sc.capabilities.add.includes('SYS_ADMIN'), false, 'no SYS_ADMIN');
    assert.equal(sc.appArmorProfile?.type, 'Unconfined', 'AppArmor would deny /proc/<pid>/exe of other pods');
    assert.equal(ds.spec.template.spec.hostPID, true);
    assert.ok(ds.spec.template.spec.tolerations.some((x: any) => x.operator === 'Exists'), 'runs on every node');
    const env = agent.env.find((e: any) => e.name === 'NODE_NAME');
    assert.equal(env.valueFrom.fieldRef.fieldPath, 'spec.nodeName');
    // Read-only host mounts the agent needs.
    const vols = new Map(ds.spec.template.spec.volumes.map((v: any) => [v.name, v]));
    const mounts = new Map(agent.volumeMounts.map((m: any) => [m.mountPath, m]));
    for (const path of ['/sys/kernel/btf', '/sys/kernel/tracing', '/sys/fs/cgroup', '/host/proc']) {
      const m: any = mounts.get(path);
      assert.ok(m, `mount ${path}`);
      assert.equal(m.readOnly, true, `${path} read-only`);
      assert.ok((vols.get(m.name) as any).hostPath, `${path} is a hostPath`);
    }
    const procVol: any = vols.get((mounts.get('/host/proc') as any).name);
    assert.equal(procVol.hostPath.path, dir === 'overlays/kind' ? '/procHost' : '/proc');

    // Every container: limits set, image pinned (a version tag or digest, never latest).
    for (const o of objs) {
      const spec = podSpecOf(o);
      if (!spec) continue;
      for (const c of spec.containers) {
        assert.ok(c.resources?.limits?.cpu && c.resources?.limits?.memory, `${o.metadata.name}/${c.name} has limits`);
        assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${o.metadata.name}/${c.name} has requests`);
        assert.match(c.image, /(@sha256:[0-9a-f]{64}|:v?\d+\.\d+\.\d+[^:]*)$/, `${c.image} pinned`);
        assert.doesNotMatch(c.image, /:latest$/);
        // Probes point at ports the container declares.
        for (const probe of [c.livenessProbe, c.readinessProbe]) {
          assert.ok(probe?.httpGet, `${o.metadata.name}/${c.name} has http probes`);
          const port = probe.httpGet.port;
          assert.ok(c.ports.some((p: any) => p.name === port || p.containerPort === port), `probe port ${port} declared`);
        }
      }
      if (o.metadata.name.startsWith('kscope-collector')) {
        assert.equal(spec.securityContext.runAsNonRoot, true, 'collector non-root');
        assert.deepEqual(spec.containers[0].securityContext.capabilities.drop, ['ALL']);
      }
    }

    // RBAC of the agent: read-only on pods, namespaces, replicasets. Nothing more.
    const role = objs.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'kscope-agent')!;
    const allowed = new Set(['pods', 'replicasets', 'jobs']); // what lib/k8s reads: pods, and their owners
    for (const rule of role.rules) {
      for (const v of rule.verbs) assert.ok(['get', 'list', 'watch'].includes(v), `agent verb ${v} is read-only`);
      for (const r of rule.resources) assert.ok(allowed.has(r), `agent resource ${r} allowed`);
    }
    for (const o of objs.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role'))
      for (const rule of o.rules) for (const v of rule.verbs) assert.ok(['get', 'list', 'watch'].includes(v), `${o.metadata.name}: ${v}`);

    // Configs in the ConfigMaps load and validate with the real loaders; probes hit the ports
    // those configs serve.
    const agentCm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'kscope-agent')!;
    const agentCfg = parseAgentConfig(parseYaml(agentCm.data['agent.yaml']), { NODE_NAME: 'node-1' });
    assert.equal(agentCfg.nodeName, 'node-1');
    const agentPort = Number(agentCfg.server.address.split(':').pop());
    assert.equal(agent.ports.find((p: any) => p.name === 'http').containerPort, agentPort, 'agent probes hit the configured server port');
    assert.equal(agentCfg.enrich.enricher.procRoot, '/host/proc', 'agent reads the mounted host /proc');
    for (const name of ['kscope-collector-lb', 'kscope-collector-sampling']) {
      const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name)!;
      const cfg = parseConfig(parseYaml(cm.data['collector.yaml']), { POD_NAMESPACE: 'kscope' });
      validateConfig(cfg, fullRegistry());
      const wl: K8sObject = objs.find((o) => (o.kind === 'Deployment' || o.kind === 'StatefulSet') && o.metadata.name === name)!;
      const c: any = wl.spec.template.spec.containers[0];
      const telemetryPort = Number(cfg.telemetry.metricsAddress.split(':').pop());
      assert.equal(c.ports.find((p: any) => p.name === 'telemetry').containerPort, telemetryPort, `${name} probes hit the telemetry port`);
      assert.match(cfg.telemetry.metricsAddress, /^0\.0\.0\.0:/, `${name} telemetry reachable by the kubelet`);
      // Behind the load-balancing tier every sender is one of its pods: associating by the
      // connection's IP would give host processes that pod's namespace and name.
      for (const [id, raw] of Object.entries(cfg.processors))
        if (name === 'kscope-collector-sampling' && id.split('/')[0] === 'k8s_attributes')
          assert.ok(!validateK8sAttributesConfig(raw, `processors.${id}`).podAssociation.includes('connection'), `${name}: ${id} associates by connection`);
    }
  });
}

test('the Grafana dashboard queries only metrics the agent and collector really produce', async () => {
  const { readFileSync, readdirSync, statSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { promName } = await import('../../collector/src/exporters/prometheus_common/translate.ts');
  const { METRICS } = await import('../../agent/src/signals/metrics.ts');
  const root = new URL('../../', import.meta.url).pathname;
  // Self-metric names registered in code, and the Prometheus names of the agent's OTel metrics.
  const known = new Set<string>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) for (const m of readFileSync(p, 'utf8').matchAll(/'(kscope_[a-z_]+)'/g)) known.add(m[1]);
    }
  };
  for (const d of ['agent/src', 'collector/src']) walk(join(root, d));
  for (const m of Object.values(METRICS)) {
    const base = promName(m.name, m.unit, m.kind === 'sum' ? 'counter' : 'other');
    known.add(base);
    // The deployed remote write sends exponential histograms as native histograms: one series
    // under the base name, no _bucket/_sum/_count.
    if (m.kind !== 'exphist') for (const suffix of ['_bucket', '_sum', '_count']) known.add(base + suffix);
  }
  const dash = JSON.parse(readFileSync(join(root, 'deploy/examples/kernelscope-dashboard.json'), 'utf8'));
  const used = new Set<string>();
  for (const p of dash.panels) for (const t of p.targets) for (const m of String(t.expr).replace(/\b(by|without) \([^)]*\)/g, "").matchAll(/\b(kscope_[a-z_]+)/g)) used.add(m[1]);
  assert.ok(used.size >= 10);
  for (const name of used) assert.ok(known.has(name), `dashboard queries ${name}, which nothing produces`);
});
