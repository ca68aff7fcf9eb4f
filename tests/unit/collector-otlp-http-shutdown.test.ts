// OTLP/HTTP receiver shutdown: a client that keeps sending over one kept-alive connection does not
// hold it open; a request in flight when shutdown starts is still served; a client that never
// finishes its body is cut off after the grace period (the request timeout, 60 s, would otherwise
// hold the collector's flush).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, sinkOf } from '../../collector/src/testing/components.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import { encodeTraces } from '../../proto/src/otlp/index.ts';

async function startCollector(id: string): Promise<{ col: Collector; port: number; receiver: OtlpReceiver }> {
  const col = new Collector(parseConfig(parseYaml(`
receivers: { otlp: { protocols: { http: { endpoint: "127.0.0.1:0" } } } }
exporters: { capture/${id}: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { traces: { receivers: [otlp], exporters: [capture/${id}] } }
`)), { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await col.start();
  const receiver = col.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver;
  return { col, port: receiver.server.http!.port, receiver };
}

test('OTLP/HTTP receiver: shutdown ends a steady keep-alive client; what got 200 reached the pipeline', async () => {
  const { col, port } = await startCollector('http-steady');
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const body = encodeTraces(makeTraces(2));
  const statuses: number[] = [];
  const sockets = new Set<unknown>();
  let stop = false;
  const post = () =>
    new Promise<number>((resolve, reject) => {
      const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/v1/traces', agent, headers: { 'content-type': 'application/x-protobuf' } }, (res) => {
        sockets.add(req.socket);
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
  // one request after another on the same kept-alive socket, until the server refuses or goes away
  const client = (async () => {
    while (!stop) {
      try {
        const code = await post();
        statuses.push(code);
        if (code !== 200) break;
      } catch {
        break; // connection closed by the server: shutdown went through
      }
    }
  })();
  try {
    while (statuses.length < 20) await new Promise((r) => setTimeout(r, 5));
    await col.shutdown(); // hangs (test timeout) if the busy connection holds the server open
  } finally {
    stop = true;
    await client;
    agent.destroy();
  }
  const ok = statuses.filter((c) => c === 200).length;
  assert.ok(statuses.every((c) => c === 200), `statuses ${[...new Set(statuses)]}`);
  assert.equal(sockets.size, 1, 'every request went over one kept-alive connection');
  // every request answered 200 reached the pipeline: 2 spans each
  assert.equal(sinkOf('capture/http-steady', 'traces').items, 2 * ok);
});

test('OTLP/HTTP receiver: a client that goes away mid-body is counted as 499, not as a server error', async () => {
  const { col, port } = await startCollector('http-gone');
  try {
    const body = encodeTraces(makeTraces(3));
    const gone = partialPost(port, body);
    await gone.opened;
    await new Promise((r) => setTimeout(r, 50)); // the server is reading the body
    gone.destroy();
    await gone.closed;
    const requests = col.telemetry.registry.get('kscope_receiver_requests_total')!;
    for (let i = 0; i < 100 && requests.sum({ code: '499' }) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(requests.sum({ code: '499' }), 1);
    assert.equal(requests.sum({ code: '500' }), 0);
  } finally {
    await col.shutdown();
  }
});

/** A raw HTTP/1.1 client: headers and part of a body now, the rest when asked. */
function partialPost(port: number, body: Uint8Array) {
  const sock = connect(port, '127.0.0.1');
  let reply = '';
  sock.on('data', (d) => (reply += d.toString('latin1')));
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  sock.on('error', () => {});
  const half = body.length >> 1;
  const opened = new Promise<void>((resolve) => sock.on('connect', () => {
    sock.write(`POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: ${body.length}\r\n\r\n`);
    sock.write(body.subarray(0, half), () => resolve());
  }));
  return { opened, closed, reply: () => reply, finish: () => sock.write(body.subarray(half)), destroy: () => sock.destroy() };
}

test('OTLP/HTTP receiver: a request in flight at shutdown is served; an unfinished body is cut off after the grace period', async () => {
  const { col, port, receiver } = await startCollector('http-partial');
  const body = encodeTraces(makeTraces(3));
  const late = partialPost(port, body);
  const stuck = partialPost(port, body);
  await Promise.all([late.opened, stuck.opened]);
  await new Promise((r) => setTimeout(r, 50)); // the server has both requests' headers
  const down = receiver.server.http!.shutdown(1000);
  late.finish();
  await late.closed; // served, then its kept-alive connection closed
  assert.match(late.reply(), /^HTTP\/1\.1 200 /);
  await down; // without the grace period this waits for the 60 s request timeout
  await stuck.closed;
  assert.equal(stuck.reply(), '', 'the unfinished request got no reply: its connection was closed');
  await col.shutdown();
  assert.equal(sinkOf('capture/http-partial', 'traces').items, 3, 'the served request reached the pipeline, the cut-off one did not');
});
