// k8s_attributes against a real kube-apiserver (peer): the processor's informer (lib/k8s) lists
// Pods, and spans carrying k8s.pod.ip or arriving from the Pod's IP get namespace, pod, node and
// label and annotation attributes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { requires } from '../lib/env.ts';
import { peerBuilt, startKubeApiserver } from '../peers/index.ts';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, captured, sinkOf } from '../../collector/src/testing/components.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import { encodeSignal } from '../../proto/src/otlp/index.ts';
import { getAttr } from '../../proto/src/model.ts';

test('k8s_attributes enriches from a real API server (pod IP association)', { timeout: 180_000 }, async (t) => {
  if (!requires(t, peerBuilt('kube-apiserver'), 'kube-apiserver peer (bash tests/peers/build.sh kube-apiserver)')) return;
  const kube = await startKubeApiserver();
  let col: Collector | undefined;
  try {
    assert.equal((await kube.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } })).status, 201);
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'cart-0', namespace: 'shop', labels: { app: 'cart', team: 'payments' }, annotations: { 'example.com/owner': 'ana', 'example.com/other': 'x' } }, spec: { nodeName: 'node-7', containers: [{ name: 'cart', image: 'cart:1.4' }] } };
    const created = await kube.request('POST', '/api/v1/namespaces/shop/pods', pod);
    assert.equal(created.status, 201, created.body);
    const status = await kube.request('PATCH', '/api/v1/namespaces/shop/pods/cart-0/status', { status: { phase: 'Running', podIP: '10.42.0.17', podIPs: [{ ip: '10.42.0.17' }] } }, { contentType: 'application/merge-patch+json' });
    assert.equal(status.status, 200, status.body);
    // a two-container Pod: the container comes from the resource's k8s.container.name
    const two = await kube.request('POST', '/api/v1/namespaces/shop/pods', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'cart-1', namespace: 'shop' }, spec: { nodeName: 'node-7', containers: [{ name: 'cart', image: 'cart:1.4' }, { name: 'sidecar', image: 'envoy:1.30' }] } });
    assert.equal(two.status, 201, two.body);
    const twoStatus = await kube.request('PATCH', '/api/v1/namespaces/shop/pods/cart-1/status', { status: { phase: 'Running', podIP: '10.42.0.18', podIPs: [{ ip: '10.42.0.18' }] } }, { contentType: 'application/merge-patch+json' });
    assert.equal(twoStatus.status, 200, twoStatus.body);

    const cfg = parseConfig(parseYaml(`
receivers: { otlp: { protocols: { http: { endpoint: "127.0.0.1:0" } } } }
processors:
  k8s_attributes:
    kubeconfig: ${kube.kubeconfig}
    wait_for_metadata_timeout: 30s
    pod_association:
      - sources: [{ from: resource_attribute, name: k8s.pod.ip }]
      - sources: [{ from: connection }]
    extract:
      metadata: [k8s.namespace.name, k8s.pod.name, k8s.pod.uid, k8s.node.name, k8s.container.name, container.image.name]
      labels: [{ key: team, tag_name: team }]
      annotations: [{ key: example.com/owner }]
exporters: { capture/k8s: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { traces: { receivers: [otlp], processors: [k8s_attributes], exporters: [capture/k8s] } }
`));
    col = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
    await col.start();
    const port = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver).server.http!.port;
    const r = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeSignal('traces', makeTraces(2, [{ key: 'k8s.pod.ip', value: '10.42.0.17' }])) as never });
    assert.equal(r.status, 200);
    const attrs = sinkOf('capture/k8s', 'traces').batches[0].batch.resourceSpans[0].resource.attributes;
    assert.equal(getAttr(attrs, 'k8s.namespace.name'), 'shop');
    assert.equal(getAttr(attrs, 'k8s.pod.name'), 'cart-0');
    assert.equal(getAttr(attrs, 'k8s.pod.uid'), created.json().metadata.uid);
    assert.equal(getAttr(attrs, 'k8s.node.name'), 'node-7');
    assert.equal(getAttr(attrs, 'k8s.container.name'), 'cart');
    assert.equal(getAttr(attrs, 'container.image.name'), 'cart');
    assert.equal(getAttr(attrs, 'team'), 'payments');
    assert.equal(getAttr(attrs, 'k8s.pod.annotations.example.com/owner'), 'ana');
    assert.equal(getAttr(attrs, 'k8s.pod.annotations.example.com/other'), undefined, 'only the selected annotations');

    // through the real decoder: an empty k8s.namespace.name is filled, and the sidecar named by
    // k8s.container.name is the container (the Pod was found by its IP)
    const r2 = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeSignal('traces', makeTraces(1, [{ key: 'k8s.pod.ip', value: '10.42.0.18' }, { key: 'k8s.container.name', value: 'sidecar' }, { key: 'k8s.namespace.name', value: '' }])) as never });
    assert.equal(r2.status, 200);
    const attrs2 = sinkOf('capture/k8s', 'traces').batches[1].batch.resourceSpans[0].resource.attributes;
    assert.equal(getAttr(attrs2, 'k8s.pod.name'), 'cart-1');
    assert.equal(getAttr(attrs2, 'k8s.namespace.name'), 'shop', 'empty value filled');
    assert.equal(getAttr(attrs2, 'container.image.name'), 'envoy', 'container chosen by k8s.container.name');
    assert.equal(getAttr(attrs2, 'k8s.container.name'), 'sidecar');
  } finally {
    await col?.shutdown();
    await kube.stop();
  }
});
