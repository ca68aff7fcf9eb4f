// OTel Arrow streams over loopback gRPC: our client (exporter side) against our server adapter.
// Acks per batch_id, HPACK headers, status mapping to pipeline errors, and a bad batch followed by
// a good one on the same stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { OtapClient } from '../../proto/src/grpc/otap-client.ts';
import { OTAP_METHODS, addOtapServices, type OtapHandler, type OtapServerStats } from '../../proto/src/grpc/otap-server.ts';
import { bindServer, createGrpcServer, rawDeserialize, rawSerialize, shutdownServer } from '../../proto/src/grpc/common.ts';
import { OtapProducer } from '../../proto/src/otap/stream.ts';
import { decodeBatchStatus, encodeBatchArrowRecords, type BatchStatus } from '../../proto/src/otap/messages.ts';
import { HpackEncoder } from '../../proto/src/otap/hpack.ts';
import { agentTraces } from '../../proto/src/otap/fixtures.ts';
import { PermanentError, RetryableError, ThrottledError } from '../../collector/src/component/errors.ts';
import type { RequestContext } from '../../collector/src/component/index.ts';
import type { LogsData, MetricsData, SignalType } from '../../proto/src/model.ts';
import { canon } from './otap-helpers.ts';

async function withServer(handler: OtapHandler, fn: (addr: string) => Promise<void>, opts = {}, onStats?: (s: OtapServerStats) => void): Promise<void> {
  const server = createGrpcServer();
  const stats = addOtapServices(server, handler, opts);
  onStats?.(stats);
  const port = await bindServer(server, '127.0.0.1:0');
  try {
    await fn(`127.0.0.1:${port}`);
  } finally {
    await shutdownServer(server, 1000);
  }
}

test('traces batches are acknowledged per batch and arrive intact, with HPACK headers', async () => {
  const got: { data: unknown; ctx: RequestContext }[] = [];
  await withServer(
    async (signal, data, ctx) => {
      assert.equal(signal, 'traces');
      got.push({ data, ctx });
    },
    async (addr) => {
      const client = new OtapClient(addr, 'traces', { headers: { 'x-stream': 'on-open' } });
      const sent = [agentTraces(200, 1), agentTraces(300, 2), agentTraces(100, 3)];
      await Promise.all(sent.map((d, i) => client.send(d, { 'x-tenant': `t${i}`, authorization: 'Bearer x' })));
      assert.equal(got.length, 3);
      for (let i = 0; i < 3; i++) {
        const match = got.find((g) => g.ctx.metadata?.['x-tenant'] === `t${i}`)!;
        assert.ok(match, `batch ${i} arrived`);
        assert.deepStrictEqual(canon(match.data), canon(sent[i]));
        assert.equal(match.ctx.metadata?.authorization, 'Bearer x');
        assert.equal(match.ctx.metadata?.['x-stream'], 'on-open');
        assert.equal(match.ctx.peerAddress, '127.0.0.1');
        assert.ok((match.ctx.bytes ?? 0) > 0);
      }
      assert.equal(client.stats.streams, 1, 'one gRPC stream for all batches');
      await client.close();
    },
  );
});

test('logs and metrics services', async () => {
  const seen: SignalType[] = [];
  const logs: LogsData = {
    resourceLogs: [
      {
        resource: { attributes: [{ key: 'service.name', value: 'x' }], droppedAttributesCount: 0 },
        schemaUrl: '',
        scopeLogs: [
          {
            scope: { name: 's', version: '1', attributes: [], droppedAttributesCount: 0 },
            schemaUrl: '',
            logRecords: [
              {
                timeUnixNano: 5n, observedTimeUnixNano: 6n, severityNumber: 9, severityText: 'INFO', body: 'hello', attributes: [{ key: 'a', value: 1n }],
                droppedAttributesCount: 0, flags: 0, traceId: new Uint8Array(0), spanId: new Uint8Array(0), eventName: '',
              },
            ],
          },
        ],
      },
    ],
  };
  const metrics: MetricsData = {
    resourceMetrics: [
      {
        resource: { attributes: [], droppedAttributesCount: 0 },
        schemaUrl: '',
        scopeMetrics: [
          {
            scope: { name: 's', version: '', attributes: [], droppedAttributesCount: 0 },
            schemaUrl: '',
            metrics: [
              {
                name: 'tcp.bytes', description: '', unit: 'By', metadata: [],
                data: {
                  type: 'sum', aggregationTemporality: 2, isMonotonic: true,
                  dataPoints: [{ attributes: [{ key: 'dir', value: 'tx' }], startTimeUnixNano: 1n, timeUnixNano: 2n, value: 42n, exemplars: [], flags: 0 }],
                },
              },
            ],
          },
        ],
      },
    ],
  };
  const received: Record<string, unknown> = {};
  await withServer(
    async (signal, data) => {
      seen.push(signal);
      received[signal] = data;
    },
    async (addr) => {
      const lc = new OtapClient(addr, 'logs');
      const mc = new OtapClient(addr, 'metrics');
      await lc.send(logs);
      await mc.send(metrics);
      await lc.close();
      await mc.close();
    },
  );
  assert.deepEqual(seen.sort(), ['logs', 'metrics']);
  assert.deepStrictEqual(canon(received.logs), canon(logs));
  assert.deepStrictEqual(canon(received.metrics), canon(metrics));
});

test('handler errors map to statuses and back to pipeline errors', async () => {
  let mode = '';
  await withServer(
    async () => {
      if (mode === 'retry') throw new RetryableError('downstream busy');
      if (mode === 'permanent') throw new PermanentError('tenant unknown');
      if (mode === 'throttle') throw new ThrottledError('over quota', 1500);
    },
    async (addr) => {
      const client = new OtapClient(addr, 'traces');
      mode = 'retry';
      await assert.rejects(client.send(agentTraces(10, 1)), (e: unknown) => e instanceof RetryableError && /downstream busy/.test(e.message));
      mode = 'permanent';
      await assert.rejects(client.send(agentTraces(10, 2)), (e: unknown) => e instanceof PermanentError && /tenant unknown/.test(e.message));
      mode = 'throttle';
      await assert.rejects(client.send(agentTraces(10, 3)), (e: unknown) => e instanceof RetryableError && /retry after 1500 ms/.test(e.message));
      mode = '';
      await client.send(agentTraces(10, 4));
      assert.equal(client.stats.streams, 1, 'per-batch errors keep the stream');
      await client.close();
    },
  );
});

test('a bad batch gets INVALID_ARGUMENT / RESOURCE_EXHAUSTED and the next batch on the stream is processed', async () => {
  const handled: number[] = [];
  const refused: BatchStatus[] = [];
  await withServer(
    async (_s, data) => {
      handled.push((data as { resourceSpans: unknown[] }).resourceSpans.length);
    },
    async (addr) => {
      const client = new grpc.Client(addr, grpc.credentials.createInsecure());
      const call = client.makeBidiStreamRequest<Buffer, Buffer>(OTAP_METHODS.traces.path, rawSerialize, rawDeserialize, new grpc.Metadata());
      const statuses: BatchStatus[] = [];
      const waitFor = (n: number) =>
        new Promise<void>((resolve, reject) => {
          const check = () => (statuses.length >= n ? resolve() : undefined);
          call.on('data', (b: Buffer) => {
            statuses.push(decodeBatchStatus(b));
            check();
          });
          call.on('error', reject);
          check();
        });
      const done = waitFor(3);
      const p = new OtapProducer();
      const good1 = p.produce('traces', agentTraces(20, 1), new HpackEncoder().encode({ a: 'b' }));
      const good2 = p.produce('traces', agentTraces(20, 2));
      const write = (m: Parameters<typeof encodeBatchArrowRecords>[0]) => call.write(Buffer.from(encodeBatchArrowRecords(m)));
      write(good1);
      write({ batchId: 100n, headers: new Uint8Array(0), arrowPayloads: [{ schemaId: '0', type: 40, record: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]) }] });
      write(good2);
      await done;
      call.end();
      client.close();
      const byId = new Map(statuses.map((s) => [s.batchId, s]));
      assert.equal(byId.get(good1.batchId)?.statusCode, 0);
      assert.equal(byId.get(100n)?.statusCode, 3);
      assert.match(byId.get(100n)!.statusMessage, /SPANS/);
      assert.equal(byId.get(good2.batchId)?.statusCode, 0, 'good batch after the bad one');
      assert.equal(handled.length, 2);
      assert.equal(refused.length, 1);
    },
    { onRefused: (_s: SignalType, st: BatchStatus) => refused.push(st) },
  );
});

test('a header block that does not decode ends the stream (INVALID_ARGUMENT): its HPACK table and dictionaries are out of step', async () => {
  const handled: string[] = [];
  const ended: string[] = [];
  let stats: OtapServerStats | undefined;
  await withServer(
    async (_s, _data, ctx) => {
      handled.push(ctx.metadata?.who ?? '');
    },
    async (addr) => {
      const client = new grpc.Client(addr, grpc.credentials.createInsecure());
      const call = client.makeBidiStreamRequest<Buffer, Buffer>(OTAP_METHODS.traces.path, rawSerialize, rawDeserialize, new grpc.Metadata());
      const statuses: BatchStatus[] = [];
      call.on('data', (b: Buffer) => statuses.push(decodeBatchStatus(b)));
      const end = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      call.on('error', () => undefined);
      const hpack = new HpackEncoder();
      const p = new OtapProducer();
      const write = (m: Parameters<typeof encodeBatchArrowRecords>[0]) => call.write(Buffer.from(encodeBatchArrowRecords(m)));
      write(p.produce('traces', agentTraces(20, 1), hpack.encode({ who: 'first' })));
      const bad = p.produce('traces', agentTraces(20, 2));
      write({ ...bad, headers: new Uint8Array([0xff]) }); // an index past any table
      write(p.produce('traces', agentTraces(20, 3), hpack.encode({ who: 'third' })));
      const st = await Promise.race([end, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`stream not ended; statuses ${statuses.map((x) => `${x.batchId}:${x.statusCode}`)}`)), 3000))]).finally(() => client.close());
      assert.equal(st.code, grpc.status.INVALID_ARGUMENT, st.details);
      assert.match(st.details, /stream ended/);
      assert.deepEqual(statuses.map((s) => [s.batchId, s.statusCode]), [[0n, 0], [1n, 3]], 'the bad batch answered, nothing after it read');
      assert.deepEqual(handled, ['first']);
      assert.deepEqual(ended, ['invalid_headers']);
      assert.equal(stats!.streamsFailed, 1);
    },
    { onStreamRefused: (_s: SignalType, reason: string) => ended.push(reason) },
    (s) => (stats = s),
  );
});

test('RESOURCE_EXHAUSTED from the decoder limit is permanent for the client', async () => {
  await withServer(
    async () => undefined,
    async (addr) => {
      const client = new OtapClient(addr, 'traces', { compression: 'zstd' });
      const d = agentTraces(2000, 1);
      await assert.rejects(client.send(d), (e: unknown) => e instanceof PermanentError && /over the/.test(e.message));
      await client.close();
    },
    { maxBatchBytes: 10_000 },
  );
});

test('a server without the Arrow service: the client gets a permanent UNIMPLEMENTED error', async () => {
  const server = createGrpcServer();
  const port = await bindServer(server, '127.0.0.1:0');
  try {
    const client = new OtapClient(`127.0.0.1:${port}`, 'traces');
    await assert.rejects(client.send(agentTraces(5, 1)), (e: unknown) => e instanceof PermanentError && /UNIMPLEMENTED/.test(e.message));
    await client.close();
  } finally {
    await shutdownServer(server, 1000);
  }
});

test('streams are recycled after maxStreamLifetimeMs; each new stream starts fresh IPC state', async () => {
  const got: unknown[] = [];
  await withServer(
    async (_s, data) => {
      got.push(data);
    },
    async (addr) => {
      const client = new OtapClient(addr, 'traces', { maxStreamLifetimeMs: 0 });
      const sent = [agentTraces(50, 1), agentTraces(50, 2), agentTraces(50, 3)];
      for (const d of sent) await client.send(d);
      assert.equal(client.stats.streams, 3);
      assert.deepStrictEqual(canon(got), canon(sent));
      await client.close();
    },
  );
});
