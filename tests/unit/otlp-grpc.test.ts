// OTLP/gRPC adapter on loopback: our client → our server for every signal, metadata and context
// passed through, pipeline errors ⇄ gRPC statuses (RetryInfo round trip), bad and oversized
// requests, gzip, and the enlarged HTTP/2 window.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { OtlpGrpcServer, type OtlpHandler } from '../../proto/src/grpc/otlp-server.ts';
import { OtlpGrpcClient } from '../../proto/src/grpc/otlp-client.ts';
import { decodeRetryDelayMs, encodeStatusDetails, errorToGrpcStatus, grpcErrorToPipelineError, peerHost } from '../../proto/src/grpc/common.ts';
import { PermanentError, RetryableError, ThrottledError } from '../../collector/src/component/errors.ts';
import type { RequestContext } from '../../collector/src/component/index.ts';
import { DecompressionLimitError } from '../../proto/src/zstd.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';
import type { LogsData, MetricsData, SignalType } from '../../proto/src/model.ts';

interface Received {
  signal: SignalType;
  data: unknown;
  ctx: RequestContext;
}

let behaviour: (signal: SignalType) => Promise<void | { rejected: bigint; errorMessage: string }> = async () => undefined;
const received: Received[] = [];
const decodeErrors: Error[] = [];
const handler: OtlpHandler = async (signal, data, ctx) => {
  received.push({ signal, data, ctx });
  return behaviour(signal);
};

const server = new OtlpGrpcServer({ handler, maxReceiveMessageBytes: 256 * 1024, onDecodeError: (_s, err) => decodeErrors.push(err) });
const port = await server.listen('127.0.0.1:0');
const client = new OtlpGrpcClient({ address: `127.0.0.1:${port}`, headers: { 'x-tenant': 'acme' } });
after(async () => {
  client.close();
  await server.shutdown(1000);
});

const metrics: MetricsData = {
  resourceMetrics: [
    {
      resource: { attributes: [{ key: 'service.name', value: 'm' }], droppedAttributesCount: 0 },
      scopeMetrics: [
        {
          scope: { name: 's', version: '1', attributes: [], droppedAttributesCount: 0 },
          metrics: [
            {
              name: 'tcp.rtt',
              description: '',
              unit: 'us',
              metadata: [],
              data: { type: 'sum', aggregationTemporality: 2, isMonotonic: true, dataPoints: [{ attributes: [], startTimeUnixNano: 1n, timeUnixNano: 2n, value: 42n, exemplars: [], flags: 0 }] },
            },
          ],
          schemaUrl: '',
        },
      ],
      schemaUrl: '',
    },
  ],
};
const logs: LogsData = {
  resourceLogs: [
    {
      resource: { attributes: [], droppedAttributesCount: 0 },
      scopeLogs: [
        {
          scope: { name: '', version: '', attributes: [], droppedAttributesCount: 0 },
          logRecords: [
            { timeUnixNano: 5n, observedTimeUnixNano: 6n, severityNumber: 9, severityText: 'INFO', body: 'hello', attributes: [], droppedAttributesCount: 0, flags: 1, traceId: new Uint8Array(16).fill(1), spanId: new Uint8Array(8).fill(2), eventName: '' },
          ],
          schemaUrl: '',
        },
      ],
      schemaUrl: '',
    },
  ],
};

test('every signal arrives decoded, with metadata, peer, size and deadline in the context', async () => {
  behaviour = async () => undefined;
  received.length = 0;
  const traces = agentTraces(50);
  assert.equal(await client.export('traces', traces, { headers: { 'x-request': '7' } }), undefined);
  assert.equal(await client.export('metrics', metrics), undefined);
  assert.equal(await client.export('logs', logs), undefined);
  assert.deepStrictEqual(received.map((r) => r.signal), ['traces', 'metrics', 'logs']);
  assert.deepStrictEqual(received[0].data, traces);
  assert.deepStrictEqual(received[1].data, metrics);
  assert.deepStrictEqual(received[2].data, logs);
  const ctx = received[0].ctx;
  assert.equal(ctx.metadata?.['x-tenant'], 'acme');
  assert.equal(ctx.metadata?.['x-request'], '7');
  assert.equal(ctx.peerAddress, '127.0.0.1');
  assert.ok((ctx.bytes ?? 0) > 50 * 300);
  assert.ok(ctx.deadline !== undefined && ctx.deadline > Date.now() && ctx.deadline < Date.now() + 11_000);
});

test('partial success travels back to the client', async () => {
  behaviour = async () => ({ rejected: 3n, errorMessage: '3 spans without ids' });
  assert.deepStrictEqual(await client.export('traces', agentTraces(5)), { rejected: 3n, errorMessage: '3 spans without ids' });
});

test('handler errors map to statuses and back to pipeline errors (RetryInfo round trip)', async () => {
  const cases: [Error, (e: unknown) => boolean][] = [
    [new PermanentError('bad tenant'), (e) => e instanceof PermanentError && /INVALID_ARGUMENT: bad tenant/.test((e as Error).message)],
    [new ThrottledError('over quota', 1500), (e) => e instanceof ThrottledError && e.retryAfterMs === 1500 && /RESOURCE_EXHAUSTED/.test(e.message)],
    [new RetryableError('queue full', 250), (e) => e instanceof RetryableError && e.retryAfterMs === 250 && /UNAVAILABLE/.test(e.message)],
    [new RetryableError('downstream down'), (e) => e instanceof RetryableError && e.retryAfterMs === undefined],
    [new DecompressionLimitError(1024), (e) => e instanceof PermanentError && /RESOURCE_EXHAUSTED/.test((e as Error).message)],
    [new TypeError('bug'), (e) => e instanceof RetryableError && /UNAVAILABLE/.test((e as Error).message)],
  ];
  for (const [err, check] of cases) {
    behaviour = async () => {
      throw err;
    };
    await assert.rejects(client.export('logs', logs), check, `${err.constructor.name}: ${err.message}`);
  }
});

test('malformed request → INVALID_ARGUMENT, counted, handler not called', async () => {
  received.length = 0;
  decodeErrors.length = 0;
  await assert.rejects(client.exportBytes('traces', Uint8Array.from([0x0a, 0x10, 0x00])), (e: unknown) => {
    assert.ok(e instanceof PermanentError);
    assert.equal(((e as Error).cause as grpc.ServiceError).code, grpc.status.INVALID_ARGUMENT);
    assert.match((e as Error).message, /invalid protobuf/);
    return true;
  });
  assert.equal(received.length, 0);
  assert.equal(decodeErrors.length, 1);
});

test('oversized request → RESOURCE_EXHAUSTED (not retried: no RetryInfo)', async () => {
  received.length = 0;
  const big = agentTraces(2000); // ~750 KB > 256 KiB limit
  await assert.rejects(client.export('traces', big), (e: unknown) => {
    assert.ok(e instanceof PermanentError, String(e));
    assert.equal(((e as Error).cause as grpc.ServiceError).code, grpc.status.RESOURCE_EXHAUSTED);
    return true;
  });
  assert.equal(received.length, 0);
});

test('gzip-compressed requests are accepted; gzip bombs are bounded by the message limit', async () => {
  behaviour = async () => undefined;
  received.length = 0;
  const gz = new OtlpGrpcClient({ address: `127.0.0.1:${port}`, compression: 'gzip' });
  try {
    const d = agentTraces(100);
    await gz.export('traces', d);
    assert.deepStrictEqual(received[0].data, d);
    // 1 MiB of zeros compresses to ~1 KiB but exceeds the 256 KiB limit once inflated.
    await assert.rejects(gz.exportBytes('traces', Buffer.alloc(1024 * 1024)), (e: unknown) => ((e as Error).cause as grpc.ServiceError).code === grpc.status.RESOURCE_EXHAUSTED);
  } finally {
    gz.close();
  }
});

test('server advertises the enlarged HTTP/2 window', async () => {
  assert.equal(server.server.windowPatched, true);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const settings = await new Promise<http2.Settings>((resolve, reject) => {
      session.once('remoteSettings', resolve);
      session.once('error', reject);
    });
    assert.equal(settings.initialWindowSize, 16 * 1024 * 1024);
  } finally {
    session.destroy();
  }
});

test('status details helpers: RetryInfo encodes as google.rpc.Status and decodes back', () => {
  const bin = encodeStatusDetails(8, 'slow down', 2345);
  assert.equal(decodeRetryDelayMs(bin), 2345);
  assert.equal(decodeRetryDelayMs(encodeStatusDetails(14, 'x')), undefined);
  assert.equal(decodeRetryDelayMs(Buffer.from([0xff, 0xff])), undefined); // malformed → ignored
  const st = errorToGrpcStatus(new ThrottledError('t', 60_000));
  assert.equal(st.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(decodeRetryDelayMs(st.metadata.get('grpc-status-details-bin')[0] as Buffer), 60_000);
  const back = grpcErrorToPipelineError(Object.assign(new Error('x'), { code: st.code, details: st.details, metadata: st.metadata }));
  assert.ok(back instanceof ThrottledError && back.retryAfterMs === 60_000);
  assert.equal(peerHost('[::1]:5000'), '::1');
  assert.equal(peerHost('ipv4:10.0.0.1:443'), '10.0.0.1');
  assert.equal(peerHost('::1:5000'), '::1'); // grpc-js joins IPv6 address and port without brackets
  assert.equal(peerHost('::ffff:10.1.2.3:5000'), '::ffff:10.1.2.3');
  assert.equal(peerHost('10.0.0.9:80'), '10.0.0.9');
});

test('a server restricted to some signals answers UNIMPLEMENTED for the others', async () => {
  const only = new OtlpGrpcServer({ handler: async () => undefined, signals: ['traces'] });
  const p = await only.listen('127.0.0.1:0');
  const c = new OtlpGrpcClient({ address: `127.0.0.1:${p}` });
  try {
    assert.equal(await c.export('traces', agentTraces(1)), undefined);
    await assert.rejects(c.export('metrics', metrics), (e: unknown) => e instanceof PermanentError && ((e as Error).cause as grpc.ServiceError).code === grpc.status.UNIMPLEMENTED);
  } finally {
    c.close();
    await only.shutdown(1000);
    await only.shutdown(1000); // idempotent
  }
});
