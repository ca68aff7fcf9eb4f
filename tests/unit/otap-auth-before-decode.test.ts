// The otelarrow receiver authenticates each OTAP batch (stream metadata plus the batch's HPACK
// headers) before it reads any of the batch's Arrow payloads: an unauthenticated client gets
// BatchStatus UNAUTHENTICATED and its stream ends without the server decoding Arrow data or growing
// dictionaries. A stream that already had an authenticated batch keeps going after a batch whose
// own headers fail: that batch's payloads are still read, so its delta dictionaries stay in sync.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { parse as parseYaml } from 'yaml';
import { OtapProducer } from '../../proto/src/otap/stream.ts';
import { ArrowPayloadType, OtapStatusCode, type BatchArrowRecords } from '../../proto/src/otap/messages.ts';
import { OtapClient } from '../../proto/src/grpc/otap-client.ts';
import type { LogsData } from '../../proto/src/model.ts';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, sinkOf } from '../../collector/src/testing/components.ts';
import { makeLogs, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtelArrowReceiver, OtelArrowServer } from '../../collector/src/receivers/otelarrow/index.ts';
import { PermanentError } from '../../collector/src/component/errors.ts';
import { canon, logsWithValues, rawLogsStream } from './otap-helpers.ts';
import { until } from '../lib/wait.ts';

const N = 300; // > 256 distinct values: a Dictionary<u16> column from the first batch on

/** Logs whose one attribute value is new on every record of every batch: each batch adds a delta dictionary. */
function dictLogs(batch: number): LogsData {
  return logsWithValues('k', Array.from({ length: N }, (_, i) => `batch-${batch}-value-${i}`));
}

/** A batch whose LOGS payload is not Arrow IPC at all: reading it can only fail (INVALID_ARGUMENT). */
function garbageBatch(batchId: bigint): BatchArrowRecords {
  return { batchId, headers: new Uint8Array(0), arrowPayloads: [{ schemaId: 'bogus', type: ArrowPayloadType.LOGS, record: new Uint8Array(64).fill(0xff) }] };
}

async function startReceiver(id: string, sinkId: string): Promise<{ col: Collector; server: OtelArrowServer; addr: string }> {
  const cfg = parseConfig(parseYaml(`
receivers:
  ${id}:
    protocols: { grpc: { endpoint: "127.0.0.1:0" } }
    auth: { sources: [bearer], tokens: { s3cret: acme }, tenants: { acme: { tier: high } } }
exporters: { ${sinkId}: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { logs: { receivers: [${id}], exporters: [${sinkId}] } }
`));
  const col = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await col.start();
  const server = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtelArrowReceiver).server;
  return { col, server, addr: `127.0.0.1:${server.port}` };
}


test('otelarrow receiver: an unauthenticated stream is answered UNAUTHENTICATED and ended before any Arrow payload is read; an authenticated client is unaffected', async () => {
  const { col, server, addr } = await startReceiver('otelarrow/authfirst', 'capture/authfirst');
  const sink = sinkOf('capture/authfirst', 'logs');
  const good = new OtapClient(addr, 'logs', { headers: { authorization: 'Bearer s3cret' } });
  const streams: ReturnType<typeof rawLogsStream>[] = [];
  try {
    await good.send(makeLogs(4));
    const budgetBefore = server.dictionaryBudget?.used;
    const itemsBefore = server.stats!.items;

    // Bytes that are not Arrow at all: refused for identity, never read (reading them fails INVALID_ARGUMENT).
    const junk = rawLogsStream(addr);
    streams.push(junk);
    const st = await junk.send(garbageBatch(0n));
    assert.equal(st.statusCode, OtapStatusCode.UNAUTHENTICATED, `status ${st.statusCode}: ${st.statusMessage}`);
    assert.match(st.statusMessage, /^unauthenticated: no tenant identity presented/);
    const end = await junk.ended;
    assert.equal(end.code, grpc.status.UNAUTHENTICATED, `stream status ${end.code}: ${end.details}`);
    assert.match(end.details, /did not authenticate: no tenant identity presented/);

    // Valid batches with delta dictionaries and a wrong token, written back to back: only the first
    // is answered, the stream ends, and none of them is decoded.
    const wrong = rawLogsStream(addr, { authorization: 'Bearer wrong' });
    streams.push(wrong);
    const p = new OtapProducer();
    void wrong.send(p.produce('logs', dictLogs(1)));
    void wrong.send(p.produce('logs', dictLogs(2)));
    void wrong.send(p.produce('logs', dictLogs(3)));
    const wrongEnd = await wrong.ended;
    assert.equal(wrongEnd.code, grpc.status.UNAUTHENTICATED, `stream status ${wrongEnd.code}: ${wrongEnd.details}`);
    assert.deepEqual(wrong.statuses.map((s) => [s.batchId, s.statusCode]), [[0n, OtapStatusCode.UNAUTHENTICATED]], 'only the first batch answered');
    assert.match(wrong.statuses[0].statusMessage, /unauthenticated: invalid bearer token/);

    assert.equal(server.stats!.items, itemsBefore, 'no item of an unauthenticated batch was decoded');
    assert.ok(budgetBefore !== undefined && budgetBefore > 0, 'the authenticated stream holds dictionaries');
    assert.equal(server.dictionaryBudget!.used, budgetBefore, 'no dictionary grew for an unauthenticated stream');
    assert.equal(server.stats!.streamsUnauthenticated, 2);
    await until(() => server.stats!.active === 1, 'the refused streams to give their slots back');

    // Our client sees a permanent refusal (not retried), as for OTLP.
    const anon = new OtapClient(addr, 'logs');
    await assert.rejects(anon.send(makeLogs(1)), (e: Error) => e instanceof PermanentError && /unauthenticated: no tenant identity presented/.test(e.message));
    await anon.close(200);

    // The authenticated stream, open all along, goes on.
    await good.send(makeLogs(5));
    assert.equal(sink.items, 4 + 5);
    assert.equal(good.stats.streams, 1);
    assert.deepEqual([...new Set(sink.batches.map((b) => b.ctx.tenant))], ['acme']);

    const reg = col.telemetry.registry;
    assert.equal(reg.get('kscope_receiver_requests_total')!.get({ receiver: 'otelarrow/authfirst', transport: 'otap', code: '16' }), 3, 'every UNAUTHENTICATED answer counted');
    assert.equal(reg.get('kscope_receiver_otap_streams_refused_total')!.get({ receiver: 'otelarrow/authfirst', signal: 'logs', reason: 'unauthenticated' }), 3);
  } finally {
    for (const s of streams) s.close();
    await good.close();
    await col.shutdown();
  }
});

test('otelarrow receiver: after an authenticated batch, a batch whose own headers fail is refused UNAUTHENTICATED but still read, and the stream decodes on', async () => {
  const { col, server, addr } = await startReceiver('otelarrow/authlater', 'capture/authlater');
  const sink = sinkOf('capture/authlater', 'logs');
  // No stream metadata: the identity rides in each batch's HPACK headers, merged before auth.
  const s = rawLogsStream(addr);
  try {
    const p = new OtapProducer();
    const data = [0, 1, 2].map(dictLogs);
    const st0 = await s.send(p.produce('logs', data[0]), { authorization: 'Bearer s3cret' });
    assert.equal(st0.statusCode, OtapStatusCode.OK, st0.statusMessage);
    const st1 = await s.send(p.produce('logs', data[1]), { authorization: 'Bearer wrong' });
    assert.equal(st1.statusCode, OtapStatusCode.UNAUTHENTICATED, `status ${st1.statusCode}: ${st1.statusMessage}`);
    assert.match(st1.statusMessage, /unauthenticated: invalid bearer token/);
    // Batch 2's delta dictionary builds on batch 1's: it decodes right only if batch 1 was read.
    const st2 = await s.send(p.produce('logs', data[2]), { authorization: 'Bearer s3cret' });
    assert.equal(st2.statusCode, OtapStatusCode.OK, st2.statusMessage);
    assert.deepEqual(sink.batches.map((b) => canon(b.batch)), [canon(data[0]), canon(data[2])]);
    assert.deepEqual(sink.batches.map((b) => b.ctx.tenant), ['acme', 'acme']);
    assert.equal(server.stats!.streamsUnauthenticated, 0, 'the stream was not ended');
    assert.equal(server.stats!.active, 1);
    const reg = col.telemetry.registry;
    assert.equal(reg.get('kscope_receiver_requests_total')!.get({ receiver: 'otelarrow/authlater', transport: 'otap', code: '16' }), 1);
    assert.equal(
      reg.get('kscope_collector_refused_items_total')!.get({ kind: 'receiver', component: 'otelarrow/authlater', pipeline: '', signal: 'logs', tenant: '' }),
      N,
      "the refused batch's items are known (its payloads were read) and counted",
    );
  } finally {
    s.close();
    await col.shutdown();
  }
});
