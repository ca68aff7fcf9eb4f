// OTAP codec benchmark on agent-shaped traces, stream mode (one producer per batch size, delta
// dictionaries across batches), on two data sets: (a) the synthetic fixture (TCP connection spans,
// uniformly random ids and peers, 8 pods) and (b) recorded agent traces: the real kernel events of
// tests/fixtures/tcp-burst.kscope replayed through the agent's EventDecoder and SignalBuilder (ids
// derived per socket cookie, network.* / server.* / client.* / kscope.tcp.* attributes) under
// enricher-shaped resources (k8s.* + process.* per process), drained every `batch` spans as the
// agent's batcher does. Prints bytes per batch for OTLP, OTLP+zstd, OTAP and
// OTAP+zstd (Arrow IPC body compression), the ratio against OTLP+zstd, and encode/decode spans
// per CPU-second next to the OTLP protobuf codec (the anchor), measured side by side, plus (as
// detail) OTAP encode/decode without IPC body compression in a separate run.
// With --go, the same batches also go through the reference collector's otelarrow exporter
// (tests/peers, if built) into our server, giving the Go encoder's bytes per batch to compare.
//   npx tsx tests/bench/otap-codec.bench.ts [--quick] [--go]
import { OtapConsumer, OtapProducer } from '../../proto/src/otap/stream.ts';
import { decodeBatchArrowRecords, encodeBatchArrowRecords } from '../../proto/src/otap/messages.ts';
import { agentTraces } from '../../proto/src/otap/fixtures.ts';
import { zstdCompressSync } from '../../proto/src/otap/zstd-sync.ts';
import { decodeTraces, encodeTraces } from '../../proto/src/otlp/index.ts';
import type { TracesData } from '../../proto/src/model.ts';
import { EventDecoder } from '../../agent/src/decode/index.ts';
import { FixtureReader } from '../../agent/src/sources/fixture.ts';
import { SignalBuilder, defaultSignalsConfig } from '../../agent/src/signals/builder.ts';
import { cookieIds } from '../../agent/src/signals/spans.ts';
import type { Resource } from '../../proto/src/model.ts';
import { addOtapServices } from '../../proto/src/grpc/otap-server.ts';
import { bindServer, createGrpcServer } from '../../proto/src/grpc/common.ts';

const quick = process.argv.includes('--quick');
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

interface SizeRow {
  batch: number;
  otlp: number;
  otlpZstd: number;
  otap: number;
  otapZstd: number;
}

const FIXTURE = new URL('../fixtures/tcp-burst.kscope', import.meta.url).pathname;

/**
 * `batches` batches of `batch` spans from the recorded fixture, replayed as often as needed; each
 * pass is a later stretch of time on the same node with new sockets (a new id salt). Resources are
 * what the enricher attaches to a pod process: service.name, k8s.*, container.id, process.*.
 */
function recordedAgentTraces(batch: number, batches: number): TracesData[] {
  const out: TracesData[] = [];
  const resources = new Map<number, Resource>();
  const resourceOf = (tgid: number, comm: string): Resource => {
    let r = resources.get(tgid);
    if (!r) {
      r = {
        attributes: [
          { key: 'service.name', value: 'checkout' },
          { key: 'k8s.namespace.name', value: 'shop' },
          { key: 'k8s.pod.name', value: 'checkout-7d9f8b6c5-x2k4q' },
          { key: 'k8s.pod.uid', value: '0b1c2d3e-4f5a-4b6c-8d9e-0f1a2b3c4d5e' },
          { key: 'k8s.node.name', value: 'node-a-1' },
          { key: 'k8s.container.name', value: 'app' },
          { key: 'container.id', value: '3f9a1c7e5b2d4a6c8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d' },
          { key: 'process.pid', value: BigInt(tgid) },
          { key: 'process.executable.name', value: comm },
          { key: 'process.executable.path', value: `/usr/local/bin/${comm}` },
        ],
        droppedAttributesCount: 0,
      };
      resources.set(tgid, r);
    }
    return r;
  };
  // One builder for all passes (a batch may span passes); each pass shifts time and salts the ids.
  let offset = 0n;
  let ids = cookieIds(1n);
  const builder = new SignalBuilder(defaultSignalsConfig(), (mono) => mono + offset, {
    traceId: (cookie) => ids.traceId(cookie),
    spanId: (cookie, role) => ids.spanId(cookie, role),
  });
  const decoder = new EventDecoder({
    tcp: (ev) => {
      builder.onTcp(ev, resourceOf(ev.tgid, ev.comm));
      if (builder.spanCount >= batch && out.length < batches) out.push(builder.drainSpans());
    },
  });
  for (let pass = 0; out.length < batches; pass++) {
    if (pass === 1 && out.length === 0 && builder.spanCount === 0) throw new Error('recorded fixture yields no spans');
    offset = 1_763_770_000_000_000_000n + BigInt(pass) * 60_000_000_000n;
    ids = cookieIds(0x9e3779b97f4a7c15n * BigInt(pass + 1));
    const reader = new FixtureReader(FIXTURE);
    try {
      for (let f = reader.next(); f && out.length < batches; f = reader.next()) decoder.decodeBatch(f.buf, f.byteLength, f.count);
    } finally {
      reader.close();
    }
  }
  return out;
}

function sizes(batch: number, batches: number, recorded: boolean): SizeRow {
  const plain = new OtapProducer({ compression: 'none' });
  const zstd = new OtapProducer({ compression: 'zstd' });
  const row: SizeRow = { batch, otlp: 0, otlpZstd: 0, otap: 0, otapZstd: 0 };
  const data = recorded ? recordedAgentTraces(batch, batches) : [];
  for (let i = 0; i < batches; i++) {
    const d = recorded ? data[i] : agentTraces(batch, 1000 + i, 1_700_000_000_000_000_000n + BigInt(i) * 10_000_000_000n);
    const otlp = encodeTraces(d);
    row.otlp += otlp.length;
    row.otlpZstd += zstdCompressSync(otlp, 3).length;
    row.otap += encodeBatchArrowRecords(plain.produce('traces', d)).length;
    row.otapZstd += encodeBatchArrowRecords(zstd.produce('traces', d)).length;
  }
  for (const k of ['otlp', 'otlpZstd', 'otap', 'otapZstd'] as const) row[k] /= batches;
  return row;
}

interface SpeedRow {
  otapEncode: number;
  otapDecode: number;
  otlpEncode: number;
  otlpDecode: number;
}

/** Spans per CPU-second; datasets made up front so generation is not timed. */
function speed(batch: number, rounds: number, recorded: boolean): SpeedRow {
  const data: TracesData[] = recorded ? recordedAgentTraces(batch, rounds) : Array.from({ length: rounds }, (_, i) => agentTraces(batch, 2000 + i));
  const producer = new OtapProducer({ compression: 'zstd' });
  const consumer = new OtapConsumer('traces');
  let encMs = 0, decMs = 0, oEncMs = 0, oDecMs = 0, counted = 0;
  for (let i = 0; i < rounds; i++) {
    const d = data[i];
    const t0 = cpuMs();
    const wire = encodeBatchArrowRecords(producer.produce('traces', d));
    const t1 = cpuMs();
    consumer.consume(decodeBatchArrowRecords(wire));
    const t2 = cpuMs();
    const otlp = encodeTraces(d);
    const t3 = cpuMs();
    decodeTraces(otlp);
    const t4 = cpuMs();
    if (i >= 2) {
      // first rounds warm the JIT
      encMs += t1 - t0;
      decMs += t2 - t1;
      oEncMs += t3 - t2;
      oDecMs += t4 - t3;
      counted += batch;
    }
  }
  const rate = (ms: number) => (counted / ms) * 1000;
  return { otapEncode: rate(encMs), otapDecode: rate(decMs), otlpEncode: rate(oEncMs), otlpDecode: rate(oDecMs) };
}

/** OTAP alone without IPC body compression, same data and rounds: the codec's own share of the time. */
function speedUncompressed(batch: number, rounds: number, recorded: boolean): { encode: number; decode: number } {
  const data: TracesData[] = recorded ? recordedAgentTraces(batch, rounds) : Array.from({ length: rounds }, (_, i) => agentTraces(batch, 2000 + i));
  const producer = new OtapProducer({ compression: 'none' });
  const consumer = new OtapConsumer('traces');
  let encMs = 0, decMs = 0, counted = 0;
  for (let i = 0; i < rounds; i++) {
    const t0 = cpuMs();
    const wire = encodeBatchArrowRecords(producer.produce('traces', data[i]));
    const t1 = cpuMs();
    consumer.consume(decodeBatchArrowRecords(wire));
    const t2 = cpuMs();
    if (i >= 2) {
      encMs += t1 - t0;
      decMs += t2 - t1;
      counted += batch;
    }
  }
  return { encode: (counted / encMs) * 1000, decode: (counted / decMs) * 1000 };
}

const plan: [number, number][] = quick ? [[100, 20], [1000, 8], [10000, 3]] : [[100, 60], [1000, 20], [10000, 5]];
for (const recorded of [false, true]) {
  const what = recorded ? 'recorded agent traces (tcp-burst.kscope → SignalBuilder)' : 'synthetic agent-shaped traces (fixtures.ts)';
  console.log(`# OTAP codec — ${what} (${quick ? 'quick' : 'full'} run), bytes per batch, stream mode`);
  console.log('batch | OTLP | OTLP+zstd | OTAP | OTAP+zstd | OTAP+zstd / OTLP+zstd | B/span OTAP+zstd');
  let ratio1000 = NaN;
  for (const [batch, n] of plan) {
    const r = sizes(batch, n, recorded);
    const ratio = r.otapZstd / r.otlpZstd;
    if (batch === 1000) ratio1000 = ratio;
    console.log(`${batch} | ${fmt(r.otlp)} | ${fmt(r.otlpZstd)} | ${fmt(r.otap)} | ${fmt(r.otapZstd)} | ${ratio.toFixed(3)} | ${(r.otapZstd / batch).toFixed(1)}`);
  }
  console.log(`goal: OTAP+zstd ≤ 0.45× OTLP+zstd at batch 1000 → measured ${ratio1000.toFixed(3)}× (${ratio1000 <= 0.45 ? 'met' : 'NOT met'})\n`);
}

for (const recorded of [false, true]) {
  console.log(`# spans per CPU-second (process CPU time, includes GC), batch 10000, OTAP with IPC zstd, ${recorded ? 'recorded' : 'synthetic'} agent traces`);
  const s = speed(10000, quick ? 5 : 10, recorded);
  console.log(`OTAP encode ${fmt(s.otapEncode)} /s  (anchor OTLP protobuf encode ${fmt(s.otlpEncode)} /s, ratio ${(s.otapEncode / s.otlpEncode).toFixed(2)}×)`);
  console.log(`OTAP decode ${fmt(s.otapDecode)} /s  (anchor OTLP protobuf decode ${fmt(s.otlpDecode)} /s, ratio ${(s.otapDecode / s.otlpDecode).toFixed(2)}×)`);
  const u = speedUncompressed(10000, quick ? 5 : 10, recorded);
  console.log(`  detail: OTAP without IPC compression (separate run): encode ${fmt(u.encode)} /s, decode ${fmt(u.decode)} /s`);
  console.log(`goal: ≥ 1,000,000 spans/s per core each way → encode ${s.otapEncode >= 1e6 ? 'met' : 'NOT met'}, decode ${s.otapDecode >= 1e6 ? 'met' : 'NOT met'}\n`);
}

if (process.argv.includes('--go')) {
  const { peerBuilt, startOtelcol } = await import('../peers/index.ts');
  if (!peerBuilt('otelcol')) {
    console.log('\n(--go: the otelcol peer is not built; run bash tests/peers/build.sh otelcol)');
  } else {
    console.log('\n# Go reference encoder (otelarrow exporter, IPC zstd, gRPC compression none) vs ours, same batches');
    const received: number[] = [];
    const server = createGrpcServer();
    addOtapServices(server, async (_s, _d, ctx) => {
      received.push(ctx.bytes ?? 0);
    });
    const port = await bindServer(server, '127.0.0.1:0');
    const col = await startOtelcol(
      ({ ports }) => `
receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:${ports[0]} }
exporters:
  otelarrow:
    endpoint: 127.0.0.1:${port}
    tls: { insecure: true }
    compression: none
    sending_queue: { enabled: false }
    arrow: { num_streams: 1 }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [otelarrow] }
`,
      { ports: 1 },
    );
    try {
      for (const [batch, n] of [[100, 20], [1000, 8]] as const) {
        received.length = 0;
        const ours = new OtapProducer({ compression: 'zstd' });
        let oursBytes = 0;
        for (let i = 0; i < n; i++) {
          const d = agentTraces(batch, 3000 + i, 1_700_000_000_000_000_000n + BigInt(i) * 10_000_000_000n);
          oursBytes += encodeBatchArrowRecords(ours.produce('traces', d)).length;
          const res = await fetch(`http://127.0.0.1:${col.ports[0]}/v1/traces`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-protobuf' },
            body: new Uint8Array(encodeTraces(d)),
          });
          if (res.status !== 200) throw new Error(`otelcol: ${res.status}`);
        }
        const end = Date.now() + 10_000;
        while (received.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
        const go = received.reduce((a, b) => a + b, 0) / received.length;
        console.log(`batch ${batch}: Go ${fmt(go)} B/batch, ours ${fmt(oursBytes / n)} B/batch → ours/Go ${(oursBytes / n / go).toFixed(3)} (${received.length} Go batches)`);
      }
    } finally {
      await col.stop();
      server.forceShutdown();
    }
  }
}
