// Interop with the reference collector (otelcol-contrib components otelarrowreceiver and
// otelarrowexporter, built by tests/peers):
//  1. our OTAP exporter → reference otelarrow receiver → file exporter → decoded by our OTLP/JSON
//     decoder = what we sent, field by field;
//  2. OTLP into the reference collector → its otelarrow exporter (gRPC compression none, Arrow IPC
//     zstd as by default) → our OTAP server = what the collector was given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requires } from '../lib/env.ts';
import { otelArrowRelayConfig, startOtelcol, tryEnsurePeer } from '../peers/index.ts';
import { OtapClient } from '../../proto/src/grpc/otap-client.ts';
import { addOtapServices } from '../../proto/src/grpc/otap-server.ts';
import { bindServer, createGrpcServer } from '../../proto/src/grpc/common.ts';
import { decodeJson, encodeSignal } from '../../proto/src/otlp/index.ts';
import { agentTraces } from '../../proto/src/otap/fixtures.ts';
import { KeyValueList, type LogsData, type MetricsData, type SignalData, type SignalType, type TracesData } from '../../proto/src/model.ts';
import { byNameThenStart, canon, canonUnordered } from '../unit/otap-helpers.ts';
import { completeLines } from '../lib/jsonl.ts';

const T = 20 * 60_000; // a first run may build the peer

function richTraces(): TracesData {
  const d = agentTraces(300, 11);
  const s = d.resourceSpans[0].scopeSpans[0].spans;
  s[0].events = [
    { timeUnixNano: s[0].startTimeUnixNano + 5n, name: 'retransmit', attributes: [{ key: 'seq', value: 17n }], droppedAttributesCount: 0 },
    { timeUnixNano: s[0].startTimeUnixNano + 9n, name: 'rst', attributes: [], droppedAttributesCount: 2 },
  ];
  s[1].links = [{ traceId: s[0].traceId, spanId: s[0].spanId, traceState: 'k=v', attributes: [{ key: 'why', value: 'retry' }], droppedAttributesCount: 0, flags: 1 }];
  s[2].attributes.push(
    { key: 'ratio', value: 0.25 },
    { key: 'ok', value: true },
    { key: 'raw', value: new Uint8Array([1, 2, 3]) },
    { key: 'list', value: ['a', 1n, 2.5] },
    { key: 'map', value: new KeyValueList([{ key: 'x', value: 'y' }]) },
  );
  s[3].parentSpanId = s[0].spanId;
  s[3].traceState = 'congo=t61rcWkgMzE';
  s[3].status = { code: 2, message: 'connection refused' };
  s[3].droppedAttributesCount = 3;
  return d;
}

function sampleLogs(): LogsData {
  return {
    resourceLogs: [
      {
        resource: { attributes: [{ key: 'k8s.pod.name', value: 'checkout-1' }], droppedAttributesCount: 0 },
        schemaUrl: 'https://opentelemetry.io/schemas/1.26.0',
        scopeLogs: [
          {
            scope: { name: 'kernelscope.log', version: '0.1.0', attributes: [], droppedAttributesCount: 0 },
            schemaUrl: '',
            logRecords: [0, 1, 2].map((i) => ({
              timeUnixNano: 1_700_000_000_000_000_000n + BigInt(i),
              observedTimeUnixNano: 1_700_000_000_000_000_100n + BigInt(i),
              severityNumber: 9 + i,
              severityText: ['INFO', 'INFO2', 'INFO3'][i],
              body: i === 0 ? 'connection opened' : i === 1 ? new KeyValueList([{ key: 'event', value: 'close' }, { key: 'bytes', value: 12n }]) : 42n,
              attributes: [{ key: 'peer', value: `10.0.0.${i}` }],
              droppedAttributesCount: 0,
              flags: i === 2 ? 1 : 0,
              traceId: i === 2 ? new Uint8Array(16).fill(7) : new Uint8Array(0),
              spanId: i === 2 ? new Uint8Array(8).fill(9) : new Uint8Array(0),
              eventName: '',
            })),
          },
        ],
      },
    ],
  };
}

function sampleMetrics(): MetricsData {
  const t0 = 1_700_000_000_000_000_000n, t1 = t0 + 10_000_000_000n;
  const ex = [{ filteredAttributes: [{ key: 'pod', value: 'a' }], timeUnixNano: t1, value: 3.5, spanId: new Uint8Array(8).fill(1), traceId: new Uint8Array(16).fill(2) }];
  return {
    resourceMetrics: [
      {
        resource: { attributes: [{ key: 'k8s.node.name', value: 'node-a' }], droppedAttributesCount: 0 },
        schemaUrl: '',
        scopeMetrics: [
          {
            scope: { name: 'kernelscope.metrics', version: '0.1.0', attributes: [], droppedAttributesCount: 0 },
            schemaUrl: '',
            metrics: [
              { name: 'tcp.connections', description: 'open connections', unit: '{connection}', metadata: [], data: { type: 'gauge', dataPoints: [{ attributes: [{ key: 'state', value: 'established' }], startTimeUnixNano: 0n, timeUnixNano: t1, value: 12n, exemplars: [], flags: 0 }] } },
              { name: 'tcp.bytes', description: '', unit: 'By', metadata: [], data: { type: 'sum', aggregationTemporality: 2, isMonotonic: true, dataPoints: [{ attributes: [{ key: 'dir', value: 'tx' }], startTimeUnixNano: t0, timeUnixNano: t1, value: 1234.5, exemplars: ex, flags: 0 }, { attributes: [{ key: 'dir', value: 'rx' }], startTimeUnixNano: t0, timeUnixNano: t1, value: 99n, exemplars: [], flags: 0 }] } },
              { name: 'tcp.rtt', description: 'round trip', unit: 's', metadata: [], data: { type: 'histogram', aggregationTemporality: 1, dataPoints: [{ attributes: [], startTimeUnixNano: t0, timeUnixNano: t1, count: 6n, sum: 0.6, bucketCounts: [1n, 2n, 3n], explicitBounds: [0.01, 0.1], exemplars: [], flags: 0, min: 0.001, max: 0.4 }] } },
              { name: 'tcp.rtt.exp', description: '', unit: 's', metadata: [], data: { type: 'exponentialHistogram', aggregationTemporality: 2, dataPoints: [{ attributes: [], startTimeUnixNano: t0, timeUnixNano: t1, count: 5n, sum: 2.5, scale: 3, zeroCount: 1n, positive: { offset: -2, bucketCounts: [1n, 3n] }, negative: { offset: 0, bucketCounts: [] }, flags: 0, exemplars: [], zeroThreshold: 0, min: 0.1, max: 1.5 }] } },
              { name: 'tcp.latency', description: '', unit: 'ms', metadata: [], data: { type: 'summary', dataPoints: [{ attributes: [], startTimeUnixNano: t0, timeUnixNano: t1, count: 10n, sum: 55, quantileValues: [{ quantile: 0.5, value: 5 }, { quantile: 0.99, value: 9.5 }], flags: 0 }] } },
            ],
          },
        ],
      },
    ],
  };
}

/** Resource/item order fingerprint: the sequence of item names or timestamps. */
/** The batch with each scope's spans in OTAP row order. */
function spansByNameStart(d: TracesData): TracesData {
  return { resourceSpans: d.resourceSpans.map((rs) => ({ ...rs, scopeSpans: rs.scopeSpans.map((ss) => ({ ...ss, spans: [...ss.spans].sort(byNameThenStart) })) })) };
}

function itemOrder(d: unknown): string[] {
  const out: string[] = [];
  const walk = (x: unknown) => {
    if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      if ('spanId' in o && 'name' in o) out.push(Buffer.from(o.spanId as Uint8Array).toString('hex'));
      else if ('severityNumber' in o) out.push(String(o.timeUnixNano));
      else if ('unit' in o && 'name' in o) out.push(String(o.name));
      else for (const v of Object.values(o)) walk(v);
    }
  };
  walk(d);
  return out;
}

const SAMPLES: { [S in SignalType]: () => SignalData[S] } = { traces: richTraces, logs: sampleLogs, metrics: sampleMetrics };

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

test('our OTAP exporter → reference otelarrow receiver → file exporter = what we sent', { timeout: T }, async (t) => {
  const peer = await tryEnsurePeer('otelcol');
  if (!requires(t, peer.ok, `otelcol peer (${peer.error})`)) return;
  const col = await startOtelcol(
    ({ ports, dir }) => `
receivers:
  otelarrow:
    protocols:
      grpc: { endpoint: 127.0.0.1:${ports[0]} }
exporters:
  file/traces: { path: ${join(dir, 'traces.jsonl')} }
  file/logs: { path: ${join(dir, 'logs.jsonl')} }
  file/metrics: { path: ${join(dir, 'metrics.jsonl')} }
service:
  pipelines:
    traces: { receivers: [otelarrow], exporters: [file/traces] }
    logs: { receivers: [otelarrow], exporters: [file/logs] }
    metrics: { receivers: [otelarrow], exporters: [file/metrics] }
`,
    { ports: 1 },
  );
  try {
    for (const signal of ['traces', 'logs', 'metrics'] as const) {
      const client = new OtapClient(`127.0.0.1:${col.ports[0]}`, signal, { compression: 'zstd' });
      const sent = [SAMPLES[signal](), SAMPLES[signal]()];
      if (signal === 'traces') sent[1] = agentTraces(500, 12); // second batch: delta dictionaries
      for (const d of sent) await client.send(d as never, { 'x-test': signal });
      await client.close();
      const file = join(col.dir, `${signal}.jsonl`);
      assert.ok(await waitFor(() => completeLines(file).length >= sent.length, 10_000), `${signal} written`);
      const lines = completeLines(file);
      assert.equal(lines.length, sent.length);
      for (let i = 0; i < sent.length; i++) {
        const got = decodeJson(signal, lines[i]);
        // Field by field; only kvlist entry order is free (Go keeps CBOR maps as Go maps).
        assert.deepStrictEqual(canonUnordered(got), canonUnordered(sent[i]), `${signal} batch ${i} through the reference receiver`);
        // resources, scopes and log records / metrics keep their order; a scope's spans are
        // written grouped by name, then by start time (the encoder's order for compression)
        const want = signal === 'traces' ? spansByNameStart(sent[i] as TracesData) : sent[i];
        assert.deepStrictEqual(itemOrder(got), itemOrder(want), `${signal} batch ${i}: order of resources and items as encoded`);
      }
    }
  } catch (e) {
    throw new Error(`${(e as Error).message}\ncollector log: ${col.logFile}\n${readFileSync(col.logFile, 'utf8').slice(-3000)}`, { cause: e });
  } finally {
    await col.stop();
  }
});

test('reference otelarrow exporter → our OTAP server = what the collector was given', { timeout: T }, async (t) => {
  const peer = await tryEnsurePeer('otelcol');
  if (!requires(t, peer.ok, `otelcol peer (${peer.error})`)) return;
  const received: { [S in SignalType]: SignalData[S][] } = { traces: [], logs: [], metrics: [] };
  const headers: Record<string, string>[] = [];
  const server = createGrpcServer();
  addOtapServices(server, async (signal, data, ctx) => {
    (received[signal] as unknown[]).push(data);
    headers.push(ctx.metadata ?? {});
  });
  const port = await bindServer(server, '127.0.0.1:0');
  const col = await startOtelcol(otelArrowRelayConfig(port), { ports: 1 });
  try {
    const given: { [S in SignalType]: SignalData[S][] } = {
      traces: [richTraces(), agentTraces(400, 21)],
      logs: [sampleLogs()],
      metrics: [sampleMetrics()],
    };
    for (const signal of ['traces', 'logs', 'metrics'] as const) {
      for (const d of given[signal]) {
        const res = await fetch(`http://127.0.0.1:${col.ports[0]}/v1/${signal}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-protobuf' },
          body: new Uint8Array(encodeSignal(signal, d as never)),
        });
        assert.equal(res.status, 200, `${signal}: ${await res.text()}`);
      }
    }
    for (const signal of ['traces', 'logs', 'metrics'] as const) {
      assert.ok(await waitFor(() => received[signal].length >= given[signal].length, 10_000), `${signal} arrived over OTAP`);
      for (let i = 0; i < given[signal].length; i++) {
        // The Go encoder sorts resources, scopes and items; their order is not part of the contract.
        assert.deepStrictEqual(canonUnordered(received[signal][i]), canonUnordered(given[signal][i]), `${signal} batch ${i} from the reference exporter`);
      }
    }
  } catch (e) {
    throw new Error(`${(e as Error).message}\ncollector log: ${col.logFile}\n${readFileSync(col.logFile, 'utf8').slice(-3000)}`, { cause: e });
  } finally {
    await col.stop();
    // The exporter's stream may outlive the collector's exit by a moment; don't wait for it.
    server.forceShutdown();
  }
});
