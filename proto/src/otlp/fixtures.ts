// Deterministic agent-shaped telemetry for tests and benchmarks: TCP connection spans with
// network.* attributes under a resource with k8s.* attributes (what the kernelscope agent emits).
import type { KeyValue, Span, TracesData } from '../model.ts';

/** Small seeded PRNG (mulberry32) so fixtures are identical run to run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(rnd: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (rnd() * 256) | 0;
  return b;
}

/** `spans` spans of 10 attributes each, in one resource / one scope. */
export function agentTraces(spans: number, seed = 1): TracesData {
  const rnd = prng(seed);
  const start = 1_763_770_000_000_000_000n;
  const peers = ['10.0.3.17', '10.0.7.4', '10.0.12.99', '172.16.0.5', '10.0.1.250'];
  const out: Span[] = [];
  for (let i = 0; i < spans; i++) {
    const t0 = start + BigInt(i) * 1_000_000n;
    const dur = BigInt((rnd() * 50_000_000) | 0);
    const attributes: KeyValue[] = [
      { key: 'network.transport', value: 'tcp' },
      { key: 'network.type', value: 'ipv4' },
      { key: 'network.peer.address', value: peers[i % peers.length] },
      { key: 'network.peer.port', value: BigInt(1024 + ((rnd() * 60000) | 0)) },
      { key: 'network.local.address', value: '10.0.2.31' },
      { key: 'network.local.port', value: 8080n },
      { key: 'network.io.bytes_sent', value: BigInt((rnd() * 1e6) | 0) },
      { key: 'network.io.bytes_received', value: BigInt((rnd() * 1e6) | 0) },
      { key: 'kscope.tcp.srtt_us', value: BigInt((rnd() * 5000) | 0) },
      { key: 'kscope.tcp.retransmits', value: BigInt((rnd() * 3) | 0) },
    ];
    out.push({
      traceId: randomBytes(rnd, 16),
      spanId: randomBytes(rnd, 8),
      traceState: '',
      parentSpanId: new Uint8Array(0),
      flags: 0x101,
      name: i % 3 === 0 ? 'tcp.accept' : 'tcp.connect',
      kind: i % 3 === 0 ? 2 : 3,
      startTimeUnixNano: t0,
      endTimeUnixNano: t0 + dur,
      attributes,
      droppedAttributesCount: 0,
      events: [],
      droppedEventsCount: 0,
      links: [],
      droppedLinksCount: 0,
      status: { code: i % 50 === 0 ? 2 : 0, message: i % 50 === 0 ? 'connection reset' : '' },
    });
  }
  return {
    resourceSpans: [
      {
        resource: {
          attributes: [
            { key: 'service.name', value: 'kernelscope-agent' },
            { key: 'k8s.cluster.name', value: 'prod-eu-1' },
            { key: 'k8s.namespace.name', value: 'payments' },
            { key: 'k8s.pod.name', value: 'checkout-7c9f8d6b5-x2k4q' },
            { key: 'k8s.pod.uid', value: '4f1c2a9e-7b3d-4e8f-9a61-2c5d8e0f3b17' },
            { key: 'k8s.node.name', value: 'node-a-03' },
            { key: 'k8s.deployment.name', value: 'checkout' },
            { key: 'k8s.container.name', value: 'app' },
          ],
          droppedAttributesCount: 0,
        },
        scopeSpans: [
          {
            scope: { name: 'kernelscope/tcp', version: '0.1.0', attributes: [], droppedAttributesCount: 0 },
            spans: out,
            schemaUrl: 'https://opentelemetry.io/schemas/1.26.0',
          },
        ],
        schemaUrl: '',
      },
    ],
  };
}
