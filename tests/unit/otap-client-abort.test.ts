// OTel Arrow client against a server that stops answering (its pipeline never acknowledges):
// sends given up by their caller (the exporter's timeout, as an AbortSignal) must fail, leave the
// in-flight slots and the queue of sends waiting for one, and break the stuck stream so that the
// next send opens a fresh one. Without that every slot stays taken and each retry queues behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OtapClient } from '../../proto/src/grpc/otap-client.ts';
import { addOtapServices } from '../../proto/src/grpc/otap-server.ts';
import { bindServer, createGrpcServer, shutdownServer } from '../../proto/src/grpc/common.ts';
import { agentTraces } from '../../proto/src/otap/fixtures.ts';
import { RetryableError } from '../../collector/src/component/errors.ts';

test('OTel Arrow client: sends given up by their caller free their slots and break the unanswered stream', async () => {
  const held: (() => void)[] = [];
  let answer = false;
  const server = createGrpcServer();
  addOtapServices(server, async () => {
    if (!answer) await new Promise<void>((r) => held.push(r)); // received, never acknowledged
  });
  const port = await bindServer(server, '127.0.0.1:0');
  const client = new OtapClient(`127.0.0.1:${port}`, 'traces', { maxInFlight: 2 });
  try {
    const ac = new AbortController();
    const sends = Array.from({ length: 6 }, (_, i) => client.send(agentTraces(20, i + 1), undefined, ac.signal));
    while (held.length < 2) await new Promise((r) => setTimeout(r, 10)); // two written, four waiting for a slot
    assert.equal(client.waiting, 4);
    assert.equal(client.stats.streams, 1);
    ac.abort();
    const results = await Promise.allSettled(sends);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.ok(r.reason instanceof RetryableError, String(r.reason));
    }
    assert.equal(client.waiting, 0, 'no send left queued for a slot');
    assert.equal(client.stats.batches, 2, 'the four that waited were never written');
    // the server answers again: a new send gets a fresh stream and its OK
    answer = true;
    await client.send(agentTraces(20, 9));
    assert.equal(client.stats.streams, 2, 'the unanswered stream was broken and replaced');
  } finally {
    for (const r of held) r();
    await client.close(500);
    await shutdownServer(server, 1000);
  }
});
