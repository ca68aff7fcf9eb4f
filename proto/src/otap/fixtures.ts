// Deterministic telemetry shaped like the agent's output, for tests and benchmarks: TCP
// connection spans with network.* attributes under a k8s resource (~10 attributes per span).
import type { KeyValue, ResourceSpans, Span, TracesData } from '../model.ts';
import { prng } from '../otlp/fixtures.ts';

/** Small seeded PRNG (the OTLP fixtures' mulberry32) so fixtures are reproducible. */
export const rng: (seed: number) => () => number = prng;

function randomBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
  return b;
}

const PODS = ['checkout', 'cart', 'payments', 'frontend', 'search', 'inventory', 'shipping', 'auth'];
const STATES = ['ESTABLISHED', 'CLOSE_WAIT', 'TIME_WAIT', 'SYN_SENT'];

/**
 * `n` spans of one node: a handful of pods (resources), each connection a CLIENT or SERVER span
 * with peer address/port, bytes and retransmits.
 */
export function agentTraces(n: number, seed = 1, baseTime = 1_700_000_000_000_000_000n): TracesData {
  const r = rng(seed);
  const resources: ResourceSpans[] = [];
  const perPod = Math.ceil(n / PODS.length);
  let made = 0;
  for (let p = 0; p < PODS.length && made < n; p++) {
    const pod = PODS[p];
    const resAttrs: KeyValue[] = [
      { key: 'k8s.namespace.name', value: 'shop' },
      { key: 'k8s.pod.name', value: `${pod}-7d9f8b6c5-${(seed * 31 + p).toString(36).padStart(5, 'x')}` },
      { key: 'k8s.pod.uid', value: `0b1c2d3e-${p}f5a-4b6c-8d9e-0f1a2b3c4d5e` },
      { key: 'k8s.node.name', value: 'node-a-1' },
      { key: 'k8s.deployment.name', value: pod },
      { key: 'service.name', value: pod },
      { key: 'host.name', value: 'node-a-1' },
    ];
    const spans: Span[] = [];
    const count = Math.min(perPod, n - made);
    for (let i = 0; i < count; i++) {
      const client = r() < 0.6;
      const start = baseTime + BigInt(made + i) * 1_000_000n + BigInt((r() * 1000) | 0);
      const dur = BigInt(50_000 + ((r() * 5_000_000) | 0));
      const peer = `10.42.${(r() * 8) | 0}.${(r() * 250) | 0}`;
      const attrs: KeyValue[] = [
        { key: 'network.transport', value: 'tcp' },
        { key: 'network.type', value: 'ipv4' },
        { key: 'network.peer.address', value: peer },
        { key: 'network.peer.port', value: BigInt(client ? [80, 443, 5432, 6379, 8080][(r() * 5) | 0] : 30000 + ((r() * 20000) | 0)) },
        { key: 'network.local.address', value: `10.42.0.${10 + p}` },
        { key: 'network.local.port', value: BigInt(client ? 30000 + ((r() * 20000) | 0) : 8080) },
        { key: 'network.io.bytes_sent', value: BigInt((r() * 100_000) | 0) },
        { key: 'network.io.bytes_received', value: BigInt((r() * 1_000_000) | 0) },
        { key: 'tcp.retransmits', value: BigInt(r() < 0.9 ? 0 : (r() * 5) | 0) },
        { key: 'tcp.state', value: STATES[(r() * STATES.length) | 0] },
      ];
      spans.push({
        traceId: randomBytes(r, 16),
        spanId: randomBytes(r, 8),
        traceState: '',
        parentSpanId: new Uint8Array(0),
        flags: 1,
        name: client ? 'tcp.connect' : 'tcp.accept',
        kind: client ? 3 : 2,
        startTimeUnixNano: start,
        endTimeUnixNano: start + dur,
        attributes: attrs,
        droppedAttributesCount: 0,
        events: [],
        droppedEventsCount: 0,
        links: [],
        droppedLinksCount: 0,
        status: { code: r() < 0.05 ? 2 : 0, message: '' },
      });
    }
    made += count;
    resources.push({
      resource: { attributes: resAttrs, droppedAttributesCount: 0 },
      scopeSpans: [{ scope: { name: 'kernelscope.tcp', version: '0.1.0', attributes: [], droppedAttributesCount: 0 }, spans, schemaUrl: '' }],
      schemaUrl: 'https://opentelemetry.io/schemas/1.26.0',
    });
  }
  return { resourceSpans: resources };
}
