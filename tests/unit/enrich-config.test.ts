import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Enrichment, validateEnrichmentConfig, attr } from '../../agent/src/enrich/index.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';

test('validateEnrichmentConfig: enricher and k8s sections, field-named errors', () => {
  const c = validateEnrichmentConfig({ procRoot: '/procHost', nodeName: 'n1', k8s: { annotations: ['a/*'] } });
  assert.equal(c.enricher.procRoot, '/procHost');
  assert.equal(c.k8s.enabled, 'auto');
  assert.equal(c.k8s.nodeName, 'n1', 'inherits the enricher node name');
  assert.deepEqual(c.k8s.annotations, ['a/*']);
  const bad = (raw: unknown, field: string) => assert.throws(() => validateEnrichmentConfig(raw), (e: unknown) => e instanceof ConfigError && e.field === field);
  bad({ k8s: { enabled: 'yes' } }, 'enrich.k8s.enabled');
  bad({ k8s: { syncTimeoutMs: -5 } }, 'enrich.k8s.syncTimeoutMs');
  bad({ k8s: { store: { maxPods: 0 } } }, 'enrich.k8s.store.maxPods');
  bad({ holdMs: 'x' }, 'enrich.holdMs');
});

test('no Kubernetes configured: runs with process/container metadata only, no error', async () => {
  const root = mkdtempSync(join(tmpdir(), 'cg-'));
  writeFileSync(join(root, 'cgroup.controllers'), '');
  const e = new Enrichment(validateEnrichmentConfig({ cgroupRoot: root, rescanIntervalMs: 0 }), { env: {} });
  assert.equal(e.informer, null);
  assert.equal(e.k8sSource, 'none');
  await e.start();
  const r = e.enricher.resolve(123456789, process.pid);
  assert.equal(attr(r, 'process.executable.name'), 'node');
  await e.shutdown();
  await e.shutdown();
  rmSync(root, { recursive: true, force: true });
});

test('k8s enabled explicitly without any config, or found without a node name: ConfigError', () => {
  assert.throws(() => new Enrichment(validateEnrichmentConfig({ k8s: { enabled: true } }), { env: {} }), (e: unknown) => e instanceof ConfigError && e.field === 'enrich.k8s.enabled');
  const dir = mkdtempSync(join(tmpdir(), 'kc-'));
  const f = join(dir, 'config');
  writeFileSync(f, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
  const saved = process.env.NODE_NAME;
  delete process.env.NODE_NAME;
  try {
    assert.throws(() => new Enrichment(validateEnrichmentConfig({ nodeName: '', k8s: { kubeconfig: f, nodeName: '' } }), { env: {} }), (e: unknown) => e instanceof ConfigError && e.field === 'enrich.k8s.nodeName');
    const ok = new Enrichment(validateEnrichmentConfig({ k8s: { kubeconfig: f, nodeName: 'n1' } }), { env: {} });
    assert.equal(ok.k8sSource, 'file');
    assert.ok(ok.informer);
  } finally {
    if (saved !== undefined) process.env.NODE_NAME = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});
