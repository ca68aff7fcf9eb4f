// Per-stream bounds on the Arrow dictionaries an OTAP receiver keeps: a sender whose delta
// dictionaries keep growing (every batch brings new long strings, each message small) hits
// max_dictionary_bytes / max_dictionary_entries, gets RESOURCE_EXHAUSTED for the batch and its
// stream, and the stream's dictionaries are released; other streams go on. The same over all the
// streams of a receiver (max_total_dictionary_bytes). Plus the receiver's max_concurrent_streams
// and the config fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { parse as parseYaml } from 'yaml';
import { DictionaryBudget, OtapConsumer, OtapProducer } from '../../proto/src/otap/stream.ts';
import { OtapDecodeError } from '../../proto/src/otap/ipc.ts';
import { encodeBatchArrowRecords } from '../../proto/src/otap/messages.ts';
import { addOtapServices, errorToBatchStatus } from '../../proto/src/grpc/otap-server.ts';
import { bindServer, createGrpcServer, shutdownServer } from '../../proto/src/grpc/common.ts';
import { OtapClient } from '../../proto/src/grpc/otap-client.ts';
import type { LogsData } from '../../proto/src/model.ts';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, sinkOf } from '../../collector/src/testing/components.ts';
import { makeLogs, testLogger } from '../../collector/src/testing/fixtures.ts';
import { validateOtelArrowReceiverConfig, type OtelArrowReceiver } from '../../collector/src/receivers/otelarrow/index.ts';
import { ConfigError, ThrottledError } from '../../collector/src/component/errors.ts';
import { canon, logsWithValues, rawLogsStream } from './otap-helpers.ts';
import { until } from '../lib/wait.ts';

const RESOURCE_EXHAUSTED = 8;
const N = 300; // > 256 distinct values: the producer starts the column as Dictionary<u16>, no schema reset later
const LEN = 1000; // ASCII bytes per value
// What the receiver charges per new dictionary entry: its UTF-8 bytes plus the per-entry overhead.
const GROWTH = N * (LEN + 32);

/** Logs whose one attribute value is new and LEN bytes long on every record of every batch. */
function growingLogs(batch: number, n = N): LogsData {
  return logsWithValues('payload', Array.from({ length: n }, (_, i) => {
    const tag = `b${batch}-v${i}-`;
    return tag + 'x'.repeat(LEN - tag.length);
  }));
}

function isStreamLimit(pattern: RegExp, batchId: bigint) {
  return (e: unknown) => {
    assert.ok(e instanceof OtapDecodeError, `OtapDecodeError expected, got ${e}`);
    assert.equal(e.resourceExhausted, true);
    assert.equal(e.streamFatal, true);
    assert.match(e.message, pattern);
    assert.equal(errorToBatchStatus(batchId, e).statusCode, RESOURCE_EXHAUSTED);
    return true;
  };
}

test('OtapConsumer: growing delta dictionaries fail the stream at the batch that would pass max_dictionary_bytes', () => {
  const limit = 1 << 20;
  const p = new OtapProducer();
  const c = new OtapConsumer('logs', { maxDictionaryBytes: limit });
  const other = new OtapConsumer('logs', { maxDictionaryBytes: limit });
  const otherProducer = new OtapProducer();
  const first = c.consume(p.produce('logs', growingLogs(0)));
  assert.equal(first.items, N);
  const afterFirst = c.dictionaryBytes;
  assert.ok(afterFirst >= GROWTH && afterFirst < GROWTH + 4096, `first batch retains ${afterFirst} B`);
  // The batch that must fail: the first whose growth takes the stream past the limit.
  const failAt = 1 + Math.floor((limit - afterFirst) / GROWTH);
  assert.ok(failAt >= 3, 'several batches fit before the limit');
  let k = 1;
  for (; k < failAt; k++) {
    const b = p.produce('logs', growingLogs(k));
    assert.ok(encodeBatchArrowRecords(b).length < 16 * 1024, 'each message is small (the strings compress)');
    c.consume(b);
    assert.equal(c.dictionaryBytes, afterFirst + k * GROWTH, `batch ${k}: every new entry is charged`);
    assert.ok(c.dictionaryBytes <= limit);
    other.consume(otherProducer.produce('logs', makeLogs(5)));
  }
  const bad = p.produce('logs', growingLogs(k));
  assert.throws(() => c.consume(bad), isStreamLimit(/LOG_ATTRS.*retain \d+ bytes, over the 1048576-byte limit \(max_dictionary_bytes\)/, bad.batchId));
  assert.equal(c.dictionaryBytes, 0, "the stream's dictionaries are released");
  assert.equal(c.isFailed, true);
  // Later batches of the failed stream are refused without decoding (the sender's state no longer matches).
  const later = p.produce('logs', makeLogs(1));
  assert.throws(() => c.consume(later), isStreamLimit(/stream already failed/, later.batchId));
  // Another stream is unaffected, and a fresh stream with the same limit decodes.
  const d = makeLogs(7);
  assert.deepStrictEqual(canon(other.consume(otherProducer.produce('logs', d)).data), canon(d));
  const fresh = new OtapConsumer('logs', { maxDictionaryBytes: limit });
  const again = growingLogs(99);
  assert.deepStrictEqual(canon(fresh.consume(new OtapProducer().produce('logs', again)).data), canon(again));
});

test('DictionaryBudget: streams share max_total_dictionary_bytes; the stream that would pass it fails, the others go on, a release gives the bytes back', () => {
  const budget = new DictionaryBudget(3 * GROWTH + 8192);
  const opts = { maxDictionaryBytes: 64 << 20, dictionaryBudget: budget };
  const a = new OtapConsumer('logs', opts), b = new OtapConsumer('logs', opts);
  const pa = new OtapProducer(), pb = new OtapProducer();
  a.consume(pa.produce('logs', growingLogs(0)));
  b.consume(pb.produce('logs', growingLogs(100)));
  a.consume(pa.produce('logs', growingLogs(1)));
  assert.equal(budget.used, a.dictionaryBytes + b.dictionaryBytes, 'the budget is the sum of the streams');
  assert.ok(budget.used > 3 * GROWTH - 1 && budget.used <= budget.max);
  // b's next growth does not fit what a and b hold together: b fails, a is untouched
  const bad = pb.produce('logs', growingLogs(101));
  assert.throws(() => b.consume(bad), isStreamLimit(/over the \d+-byte limit \(max_total_dictionary_bytes, shared by all streams\)/, bad.batchId));
  assert.equal(b.dictionaryBytes, 0);
  assert.equal(budget.used, a.dictionaryBytes, "b's bytes went back to the budget");
  const small = makeLogs(3);
  assert.deepStrictEqual(canon(a.consume(pa.produce('logs', small)).data), canon(small), 'a goes on');
  // a stream that ends gives its bytes back: a new stream can grow again
  a.release();
  assert.equal(budget.used, 0);
  const c = new OtapConsumer('logs', opts);
  const pc = new OtapProducer();
  for (let i = 0; i < 3; i++) c.consume(pc.produce('logs', growingLogs(200 + i)));
  assert.equal(budget.used, c.dictionaryBytes);
});

test('OtapConsumer: refused batches (model not built, memory limiter refusing) count against the same limit', () => {
  const limit = 1 << 20;
  const p = new OtapProducer();
  const c = new OtapConsumer('logs', { maxDictionaryBytes: limit });
  let k = 0;
  let failedAt = -1;
  for (; k < 20; k++) {
    try {
      c.consume(p.produce('logs', growingLogs(k)), false);
    } catch (e) {
      assert.ok(e instanceof OtapDecodeError && e.streamFatal && e.resourceExhausted);
      failedAt = k;
      break;
    }
    assert.ok(c.dictionaryBytes <= limit);
  }
  assert.equal(failedAt, Math.floor(limit / GROWTH), 'fails at the same batch as when models are built');
  assert.equal(c.dictionaryBytes, 0);
});

test('OtapConsumer: max_dictionary_entries fails the stream too; a schema reset releases the replaced IPC stream', () => {
  const p = new OtapProducer();
  const c = new OtapConsumer('logs', { maxDictionaryEntries: 500 });
  c.consume(p.produce('logs', growingLogs(0)));
  const bad = p.produce('logs', growingLogs(1));
  assert.throws(() => c.consume(bad), isStreamLimit(/dictionary exceeds 500 entries \(max_dictionary_entries\)/, bad.batchId));
  assert.equal(c.dictionaryBytes, 0);

  // 200 values start a Dictionary<u8>; 100 more overflow it, so the producer starts a new IPC
  // stream holding only that batch's values. The old one's bytes must not stay charged.
  const p2 = new OtapProducer();
  const c2 = new OtapConsumer('logs', { maxDictionaryBytes: 1 << 20 });
  const b1 = p2.produce('logs', growingLogs(0, 200));
  c2.consume(b1);
  const before = c2.dictionaryBytes;
  assert.ok(before >= 200 * (LEN + 32));
  const b2 = p2.produce('logs', growingLogs(1, 100));
  assert.notEqual(b2.arrowPayloads[1].schemaId, b1.arrowPayloads[1].schemaId, 'LOG_ATTRS got a new schema_id');
  c2.consume(b2);
  assert.ok(c2.dictionaryBytes < before, `${c2.dictionaryBytes} < ${before}: only the new IPC stream is charged`);
  assert.ok(c2.dictionaryBytes >= 100 * (LEN + 32));
});

// ------------------------------------------------------------------ through the real receiver


test('otelarrow receiver: a stream past max_dictionary_bytes gets RESOURCE_EXHAUSTED and ends, counted; other streams go on', async () => {
  const cfg = parseConfig(parseYaml(`
receivers:
  otelarrow:
    protocols: { grpc: { endpoint: "127.0.0.1:0" }, arrow: { max_dictionary_bytes: 1MiB } }
exporters: { capture/dictlimit: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { logs: { receivers: [otelarrow], exporters: [capture/dictlimit] } }
`));
  const col = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await col.start();
  const server = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtelArrowReceiver).server;
  const addr = `127.0.0.1:${server.port}`;
  const sink = sinkOf('capture/dictlimit', 'logs');
  const bystander = new OtapClient(addr, 'logs');
  const hostile = rawLogsStream(addr);
  try {
    await bystander.send(makeLogs(4));
    const p = new OtapProducer();
    // Written back to back, so earlier batches are likely still in the pipeline when batch 3
    // fails: they must still get their OK before the stream ends.
    const statuses = await Promise.all([0, 1, 2, 3].map((k) => hostile.send(p.produce('logs', growingLogs(k)))));
    // afterFirst + 3 × GROWTH fits in 1 MiB, a fourth delta does not (as in the consumer test)
    assert.deepEqual(statuses.map((s) => s.statusCode), [0, 0, 0, RESOURCE_EXHAUSTED]);
    assert.equal(statuses[3].batchId, 3n);
    assert.match(statuses[3].statusMessage, /over the 1048576-byte limit \(max_dictionary_bytes\)/);
    const end = await hostile.ended;
    assert.equal(end.code, grpc.status.RESOURCE_EXHAUSTED, `stream status ${end.code}: ${end.details}`);
    assert.match(end.details, /max_dictionary_bytes/);
    assert.equal(sink.items, 4 + 3 * N, 'batches before the failing one were delivered');

    // The bystander stream, open all along, and a new stream both still work.
    await bystander.send(makeLogs(5));
    const late = new OtapClient(addr, 'logs');
    await late.send(makeLogs(6));
    await late.close();
    assert.equal(sink.items, 4 + 3 * N + 5 + 6);

    const reg = col.telemetry.registry;
    assert.equal(reg.get('kscope_receiver_otap_streams_refused_total')!.get({ receiver: 'otelarrow', signal: 'logs', reason: 'dictionary_limit' }), 1);
    assert.equal(reg.get('kscope_receiver_requests_total')!.get({ receiver: 'otelarrow', transport: 'otap', code: String(RESOURCE_EXHAUSTED) }), 1);
    assert.equal(server.stats!.streamsFailed, 1);
    await bystander.close();
    await until(() => server.stats!.active === 0, 'every stream slot released');
  } finally {
    hostile.close();
    await bystander.close();
    await col.shutdown();
  }
});

test('addOtapServices: batches in flight when the limit hits still get their status before the stream ends', async () => {
  const server = createGrpcServer();
  const handled: number[] = [];
  const stats = addOtapServices(
    server,
    async (_signal, data) => {
      // slow pipeline: batches 0–2 are still in it when batch 3 fails
      await new Promise((r) => setTimeout(r, 100));
      handled.push((data as LogsData).resourceLogs[0].scopeLogs[0].logRecords.length);
    },
    { maxDictionaryBytes: 1 << 20 },
  );
  const port = await bindServer(server, '127.0.0.1:0');
  const s = rawLogsStream(`127.0.0.1:${port}`);
  try {
    const p = new OtapProducer();
    const pending = [0, 1, 2, 3].map((k) => s.send(p.produce('logs', growingLogs(k))));
    const third = await pending[3];
    assert.equal(third.statusCode, RESOURCE_EXHAUSTED);
    assert.equal(handled.length, 0, 'the refusal is answered while the others are in flight');
    const statuses = await Promise.all(pending);
    assert.deepEqual(statuses.map((x) => x.statusCode), [0, 0, 0, RESOURCE_EXHAUSTED]);
    assert.deepEqual(handled, [N, N, N]);
    assert.equal((await s.ended).code, grpc.status.RESOURCE_EXHAUSTED);
    await until(() => stats.active === 0, 'the slot released');
    assert.equal(stats.streamsFailed, 1);
  } finally {
    s.close();
    await shutdownServer(server, 500);
  }
});

test('otelarrow receiver: streams beyond max_concurrent_streams are refused with RESOURCE_EXHAUSTED, counted; the slot comes back', async () => {
  const cfg = parseConfig(parseYaml(`
receivers:
  otelarrow/one:
    protocols: { grpc: { endpoint: "127.0.0.1:0" }, arrow: { max_concurrent_streams: 1 } }
exporters: { capture/onestream: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { logs: { receivers: [otelarrow/one], exporters: [capture/onestream] } }
`));
  const col = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await col.start();
  const server = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtelArrowReceiver).server;
  const addr = `127.0.0.1:${server.port}`;
  const a = new OtapClient(addr, 'logs');
  const b = new OtapClient(addr, 'logs');
  try {
    await a.send(makeLogs(2));
    await assert.rejects(b.send(makeLogs(3)), (e: Error) => {
      // RetryInfo rides along: a sender backs off and tries again instead of dropping.
      assert.ok(e instanceof ThrottledError, `ThrottledError expected, got ${e}`);
      assert.match(e.message, /RESOURCE_EXHAUSTED: too many concurrent OTel Arrow streams \(max_concurrent_streams 1\)/);
      return true;
    });
    await a.send(makeLogs(2));
    const reg = col.telemetry.registry;
    assert.equal(reg.get('kscope_receiver_otap_streams_refused_total')!.get({ receiver: 'otelarrow/one', signal: 'logs', reason: 'max_streams' }), 1);
    assert.equal(server.stats!.streamsRefused, 1);
    await a.close();
    await until(() => server.stats!.active === 0, 'the first stream to release its slot');
    await b.send(makeLogs(3));
    assert.equal(sinkOf('capture/onestream', 'logs').items, 7);
  } finally {
    await a.close();
    await b.close();
    await col.shutdown();
  }
});

test('otelarrow receiver config: dictionary and stream limits, defaults and errors naming the field', () => {
  const path = 'receivers.otelarrow';
  const def = validateOtelArrowReceiverConfig({}, path);
  assert.equal(def.maxDictionaryBytes, 64 * 1024 * 1024);
  assert.equal(def.maxDictionaryEntries, 1 << 20);
  assert.equal(def.maxStreams, 4096);
  assert.equal(def.maxTotalDictionaryBytes, 256 * 1024 * 1024);
  assert.equal(validateOtelArrowReceiverConfig({ protocols: { arrow: { max_total_dictionary_bytes: '1GiB' } } }, path).maxTotalDictionaryBytes, 1 << 30);
  const arrow = (a: Record<string, unknown>) => validateOtelArrowReceiverConfig({ protocols: { arrow: a } }, path);
  const set = arrow({ max_dictionary_bytes: '8MiB', max_dictionary_entries: 1000, max_concurrent_streams: 10 });
  assert.deepEqual([set.maxDictionaryBytes, set.maxDictionaryEntries, set.maxStreams], [8 << 20, 1000, 10]);
  assert.equal(arrow({ max_dictionary_bytes: 4096 }).maxDictionaryBytes, 4096);
  const bad = (a: Record<string, unknown>, key: string, message: RegExp) =>
    assert.throws(() => arrow(a), (e: Error) => e instanceof ConfigError && e.field === `${path}.protocols.arrow.${key}` && message.test(e.message));
  bad({ max_dictionary_bytes: 0 }, 'max_dictionary_bytes', />= 1/);
  bad({ max_dictionary_bytes: '0MiB' }, 'max_dictionary_bytes', /at least 1 byte/);
  bad({ max_dictionary_bytes: 1.5 }, 'max_dictionary_bytes', /integer/);
  bad({ max_dictionary_bytes: 'lots' }, 'max_dictionary_bytes', /size/);
  bad({ max_total_dictionary_bytes: '0MiB' }, 'max_total_dictionary_bytes', /at least 1 byte/);
  bad({ max_dictionary_entries: 0 }, 'max_dictionary_entries', />= 1/);
  bad({ max_dictionary_entries: 2.5 }, 'max_dictionary_entries', /integer/);
  bad({ max_concurrent_streams: -1 }, 'max_concurrent_streams', />= 1/);
  bad({ max_concurrent_streams: 'many' }, 'max_concurrent_streams', /number/);
});
