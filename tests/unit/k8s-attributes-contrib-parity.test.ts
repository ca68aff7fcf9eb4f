// k8s_attributes against contrib's k8sattributesprocessor: `from` other than pod is refused (not
// answered with the Pod's labels), the container is picked from the resource's k8s.container.name /
// container.id whichever rule associated the Pod, and empty string attributes are filled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { K8sAttributesProcessor, validateK8sAttributesConfig } from '../../collector/src/processors/k8s_attributes/index.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';
import { CaptureSink, makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import { PodStore } from '../../lib/k8s/pod-store.ts';
import type { ContainerMeta, PodMeta } from '../../lib/k8s/pod-model.ts';
import { getAttr, type KeyValue } from '../../proto/src/model.ts';

const host = { reportFatal() {} };
const settings = () => ({ id: 'k8s_attributes', logger: testLogger(), telemetry: new SelfTelemetry(new MetricsRegistry()) });

const container = (name: string, id: string, image: string): ContainerMeta => ({
  name, id, runtime: 'containerd', image: `${image}:1.0`, imageName: image, imageTag: '1.0', kind: 'container',
});

/** A two-container Pod (app + sidecar) and a single-container one. */
function store(): PodStore {
  const s = new PodStore();
  const base = { namespace: 'shop', nodeName: 'node-1', podIPs: [], hostNetwork: false, annotations: { owner: 'ana' }, qosClass: 'burstable', phase: 'Running', serviceName: '', resourceVersion: '1' } as const;
  s.upsert({
    ...base, uid: 'uid-cart', name: 'cart-0', podIP: '10.1.0.5', podIPs: ['10.1.0.5'], labels: { team: 'payments', app: 'cart' },
    containers: [container('cart', 'c-cart', 'cart'), container('envoy', 'c-envoy', 'envoy')], workloads: { statefulset: 'cart' },
  } satisfies PodMeta);
  s.upsert({
    ...base, uid: 'uid-web', name: 'web-0', podIP: '10.1.0.6', podIPs: ['10.1.0.6'], labels: { app: 'web' },
    containers: [container('web', 'c-web', 'web')], workloads: { deployment: 'web' },
  } satisfies PodMeta);
  return s;
}

async function enrich(cfgRaw: unknown, attrs: KeyValue[], peerAddress?: string): Promise<KeyValue[]> {
  const sink = new CaptureSink('traces');
  const p = new K8sAttributesProcessor(settings(), validateK8sAttributesConfig(cfgRaw, 'processors.k8s_attributes'), 'traces', sink, store());
  await p.start(host);
  await p.consume(makeTraces(1, attrs), peerAddress ? { peerAddress } : {});
  return sink.batches[0].batch.resourceSpans[0].resource.attributes;
}

const CONTAINER_META = { metadata: ['k8s.pod.name', 'k8s.container.name', 'container.image.name', 'container.image.tag'] };

test('k8s_attributes: labels/annotations `from` other than pod is a ConfigError naming the field', () => {
  for (const from of ['namespace', 'node', 'deployment']) {
    assert.throws(
      () => validateK8sAttributesConfig({ extract: { labels: [{ key: 'app' }, { key: 'team', from, tag_name: 'ns.team' }] } }, 'processors.k8s_attributes'),
      (e: unknown) => e instanceof ConfigError && e.field === 'processors.k8s_attributes.extract.labels[1].from' && e.message.includes(from),
      `labels from: ${from}`,
    );
  }
  assert.throws(
    () => validateK8sAttributesConfig({ extract: { annotations: [{ key: 'owner', from: 'namespace' }] } }, 'processors.k8s_attributes'),
    (e: unknown) => e instanceof ConfigError && e.field === 'processors.k8s_attributes.extract.annotations[0].from',
  );
  // absent or `pod`: accepted
  const cfg = validateK8sAttributesConfig({ extract: { labels: [{ key: 'app', from: 'pod' }, { key: 'team' }], annotations: [{ key: 'owner', from: 'pod' }] } }, 'p');
  assert.deepEqual(cfg.labels.map((l) => l.key), ['app', 'team']);
  assert.deepEqual(cfg.annotations.map((a) => a.tagName), ['k8s.pod.annotations.owner']);
});

test('k8s_attributes: container chosen by the resource container.id when the Pod was found by IP or uid', async () => {
  const byIp = await enrich({ pod_association: [{ sources: [{ from: 'connection' }] }], extract: CONTAINER_META }, [{ key: 'container.id', value: 'c-envoy' }], '10.1.0.5');
  assert.equal(getAttr(byIp, 'k8s.pod.name'), 'cart-0');
  assert.equal(getAttr(byIp, 'k8s.container.name'), 'envoy', 'connection association + container.id → that container');
  assert.equal(getAttr(byIp, 'container.image.name'), 'envoy');
  assert.equal(getAttr(byIp, 'container.image.tag'), '1.0');

  const byUid = await enrich(
    { pod_association: [{ sources: [{ from: 'resource_attribute', name: 'k8s.pod.uid' }] }], extract: CONTAINER_META },
    [{ key: 'k8s.pod.uid', value: 'uid-cart' }, { key: 'container.id', value: 'c-cart' }],
  );
  assert.equal(getAttr(byUid, 'k8s.container.name'), 'cart', 'uid association + container.id → that container');
  assert.equal(getAttr(byUid, 'container.image.name'), 'cart');
});

test('k8s_attributes: container chosen by the resource k8s.container.name (before container.id, as contrib)', async () => {
  const byName = await enrich({ extract: CONTAINER_META }, [{ key: 'k8s.container.name', value: 'envoy' }], '10.1.0.5');
  assert.equal(getAttr(byName, 'container.image.name'), 'envoy', 'pod IP association + k8s.container.name → that container');
  const both = await enrich({ extract: CONTAINER_META }, [{ key: 'k8s.container.name', value: 'cart' }, { key: 'container.id', value: 'c-envoy' }]);
  assert.equal(getAttr(both, 'k8s.pod.name'), 'cart-0', 'associated by container.id');
  assert.equal(getAttr(both, 'container.image.name'), 'cart', 'the name wins over the id');
  const unknown = await enrich({ extract: CONTAINER_META }, [{ key: 'k8s.container.name', value: 'nope' }], '10.1.0.6');
  assert.equal(getAttr(unknown, 'k8s.pod.name'), 'web-0');
  assert.equal(getAttr(unknown, 'container.image.name'), undefined, 'a name the Pod lacks: no container, not the only one');
  // neither given: the only container of a one-container Pod, none of a two-container one
  assert.equal(getAttr(await enrich({ extract: CONTAINER_META }, [], '10.1.0.6'), 'k8s.container.name'), 'web');
  assert.equal(getAttr(await enrich({ extract: CONTAINER_META }, [], '10.1.0.5'), 'k8s.container.name'), undefined);
});

test('k8s_attributes: empty string attributes are filled; non-empty and non-string ones are kept', async () => {
  const keep: KeyValue = { key: 'k8s.namespace.name', value: 'keep-me' };
  const emptyPod: KeyValue = { key: 'k8s.pod.name', value: '' };
  const attrs = await enrich(
    { extract: { metadata: ['k8s.namespace.name', 'k8s.pod.name', 'k8s.node.name', 'k8s.container.name', 'k8s.statefulset.name'], labels: [{ key: 'team', tag_name: 'team' }] } },
    [keep, emptyPod, { key: 'team', value: '' }, { key: 'k8s.node.name', value: 0n }, { key: 'k8s.container.name', value: '' }, { key: 'container.id', value: 'c-envoy' }],
    '10.1.0.5',
  );
  assert.equal(getAttr(attrs, 'k8s.pod.name'), 'cart-0', 'empty pod name filled');
  assert.equal(getAttr(attrs, 'team'), 'payments', 'empty label attribute filled');
  assert.equal(getAttr(attrs, 'k8s.container.name'), 'envoy', 'empty container name filled (container from container.id)');
  assert.equal(getAttr(attrs, 'k8s.namespace.name'), 'keep-me');
  assert.equal(getAttr(attrs, 'k8s.node.name'), 0n, 'a non-string value is not "empty"');
  assert.equal(getAttr(attrs, 'k8s.statefulset.name'), 'cart');
  assert.equal(attrs.filter((a) => a.key === 'k8s.pod.name').length, 1, 'replaced in place, not appended');
  assert.equal(emptyPod.value, '', 'the shared KeyValue object is replaced, not mutated');
});
