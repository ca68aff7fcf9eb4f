// PodInformer wiring against a scripted list/watch server (plain HTTP on loopback): field selector
// on list and watch, resume from the last resourceVersion (bookmarks included), re-list after
// 410 Gone with deletions of what vanished meanwhile, retry with backoff after a failing list.
// The live test against a real kube-apiserver is tests/e2e/enrich-k8s.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { PodInformer, validatePodInformerConfig } from '../../lib/k8s/informer.ts';

function pod(name: string, rv: string): V1Pod {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: 'ns', uid: `uid-${name}`, resourceVersion: rv, labels: { app: name } },
    spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'img:1' }] },
    status: { podIP: `10.0.0.${name.length}`, containerStatuses: [{ name: 'c', containerID: `containerd://${name.padEnd(64, '0')}`, image: '', imageID: '', ready: true, restartCount: 0 }] },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

test('list/watch: field selector, bookmark resume, 410 re-list with deletions, retry after errors', async () => {
  const seen: Array<{ kind: 'list' | 'watch'; fieldSelector: string | null; resourceVersion: string | null }> = [];
  let lists = 0;
  let watches = 0;
  const open: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.pathname !== '/api/v1/pods') { res.statusCode = 404; res.end(); return; }
    const isWatch = u.searchParams.get('watch') === 'true';
    seen.push({ kind: isWatch ? 'watch' : 'list', fieldSelector: u.searchParams.get('fieldSelector'), resourceVersion: u.searchParams.get('resourceVersion') });
    res.setHeader('content-type', 'application/json');
    if (!isWatch) {
      lists++;
      if (lists === 1) { res.statusCode = 500; res.end('{"kind":"Status","code":500}'); return; }
      const items = lists === 2 ? [pod('a', '5')] : [pod('b', '6')];
      res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: lists === 2 ? '5' : '20' }, items }));
      return;
    }
    watches++;
    const line = (o: unknown) => res.write(JSON.stringify(o) + '\n');
    if (watches === 1) {
      line({ type: 'ADDED', object: pod('b', '6') });
      line({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: '7' } } });
      res.end(); // server-side watch timeout: the client resumes from 7
    } else if (watches === 2) {
      line({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 } });
      res.end();
    } else {
      open.push(res); // stays open
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  const inf = new PodInformer(kc, validatePodInformerConfig({ nodeName: 'n1', backoffMinMs: 50, backoffMaxMs: 100, owners: { enabled: false } }));
  const changes: string[] = [];
  inf.store.onChange((p, c) => changes.push(`${c}:${p.name}`));
  inf.start();
  try {
    assert.ok(await inf.waitForSync(5000), 'synced after the failed first list');
    assert.ok(inf.counters.errors >= 1, 'the 500 was counted');
    await until(() => watches >= 3 && inf.store.isDeleted('uid-a'));
    assert.deepEqual(changes, ['add:a', 'add:b', 'delete:a']);
    assert.equal(inf.store.getByUid('uid-b')?.serviceName, 'b');
    assert.equal(inf.store.getByContainerId('b'.padEnd(64, '0'))?.name, 'b');
    assert.equal(inf.store.getByUid('uid-a')?.name, 'a', 'deleted pod still resolvable');
    for (const s of seen.filter((x) => x.kind === 'list' || x.kind === 'watch')) assert.equal(s.fieldSelector, 'spec.nodeName=n1');
    const w = seen.filter((x) => x.kind === 'watch').map((x) => x.resourceVersion);
    assert.deepEqual(w.slice(0, 3), ['5', '7', '20'], 'watch from list RV, resumed from the bookmark, re-listed after 410');
    assert.equal(lists, 3);
  } finally {
    await inf.shutdown();
    for (const r of open) r.destroy();
    await new Promise((r) => server.close(r));
  }
});
