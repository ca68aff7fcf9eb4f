// HTTP/2 keepalive on both ends of our gRPC connections. A peer that vanishes without closing its
// TCP connection (node lost, network cut) is simulated by a proxy that stops forwarding while
// keeping both sockets open: nothing fails at the TCP level, only pings go unanswered.
// - receivers (`protocols.grpc.keepalive.server_parameters`): the server closes the session and
//   with it the client's OTel Arrow stream, which otherwise stays open, holding its state, forever;
// - exporters (`keepalive`): a send on the dead connection fails as retryable within
//   time + timeout instead of waiting for TCP to give up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { OtapClient } from '../../proto/src/grpc/otap-client.ts';
import { addOtapServices } from '../../proto/src/grpc/otap-server.ts';
import { bindServer, createGrpcServer, shutdownServer } from '../../proto/src/grpc/common.ts';
import { agentTraces } from '../../proto/src/otap/fixtures.ts';
import { ConfigError, RetryableError } from '../../collector/src/component/errors.ts';
import { until } from '../lib/wait.ts';
import { validateOtlpReceiverConfig } from '../../collector/src/receivers/otlp/config.ts';
import { validateOtelArrowExporterConfig } from '../../collector/src/exporters/otelarrow/index.ts';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory } from '../../collector/src/testing/components.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtelArrowReceiver } from '../../collector/src/receivers/otelarrow/index.ts';
import { validateOtlpExporterConfig } from '../../collector/src/exporters/otlp/index.ts';

/** TCP forwarder whose freeze() stops carrying bytes either way but closes nothing. */
async function freezableProxy(targetPort: number): Promise<{ port: number; freeze(): void; close(): void }> {
  let frozen = false;
  const sockets: net.Socket[] = [];
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, '127.0.0.1');
    sockets.push(down, up);
    for (const [from, to] of [[down, up], [up, down]] as const) {
      from.on('data', (b) => {
        if (!frozen) to.write(b);
      });
      from.on('error', () => undefined);
      from.on('close', () => to.destroy());
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => {
      frozen = true;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}


test('receiver keepalive: a client that vanished mid-stream loses its OTel Arrow stream, and its dictionaries, within time + timeout', async () => {
  const cfg = parseConfig(parseYaml(`
receivers:
  otelarrow:
    protocols: { grpc: { endpoint: "127.0.0.1:0", keepalive: { server_parameters: { time: 200ms, timeout: 200ms } } } }
exporters: { capture: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { traces: { receivers: [otelarrow], exporters: [capture] } }
`));
  const col = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await col.start();
  const server = (col.service.components.find((c) => c.kind === 'receiver')!.component as OtelArrowReceiver).server;
  const proxy = await freezableProxy(server.port);
  const client = new OtapClient(`127.0.0.1:${proxy.port}`, 'traces');
  try {
    await client.send(agentTraces(300, 1));
    assert.equal(server.stats!.active, 1, 'the stream stays open after its batch');
    assert.ok(server.dictionaryBudget!.used > 0, 'the stream holds dictionaries');
    proxy.freeze();
    await until(() => server.stats!.active === 0, "the server closes the silent client's stream");
    assert.equal(server.dictionaryBudget!.used, 0, "the vanished client's dictionaries are freed");
  } finally {
    proxy.close();
    await client.close(200);
    await col.shutdown();
  }
});

test('exporter keepalive: a send on a connection whose server vanished fails as retryable, not after TCP gives up', async () => {
  const server = createGrpcServer();
  const received: number[] = [];
  addOtapServices(server, async () => {
    received.push(Date.now());
  });
  const port = await bindServer(server, '127.0.0.1:0');
  const proxy = await freezableProxy(port);
  const exp = validateOtelArrowExporterConfig({ endpoint: `127.0.0.1:${proxy.port}`, keepalive: { time: '200ms', timeout: '200ms' } }, 'exporters.otelarrow');
  const client = new OtapClient(exp.client.endpoint, 'traces', { keepalive: exp.client.keepalive });
  try {
    await client.send(agentTraces(20, 1));
    proxy.freeze();
    const t0 = Date.now();
    const outcome = await Promise.race([
      client.send(agentTraces(20, 2)).then(
        () => 'acknowledged',
        (e: unknown) => e,
      ),
      new Promise((r) => setTimeout(() => r('still waiting after 3 s'), 3000)),
    ]);
    assert.ok(outcome instanceof RetryableError, `expected a RetryableError, got ${String(outcome)}`);
    assert.ok(Date.now() - t0 < 2500, `failed after ${Date.now() - t0} ms`);
    assert.equal(received.length, 1, 'the second batch never reached the server');
  } finally {
    proxy.close();
    await client.close(200);
    await shutdownServer(server, 500);
  }
});

test('keepalive config: otelcol defaults for clients, pings on for receivers, unknown and unsupported keys refused', () => {
  assert.deepEqual(validateOtlpExporterConfig({ endpoint: 'c:4317' }, 'exporters.otlp').client.keepalive, { timeMs: 10_000, timeoutMs: 10_000, permitWithoutStream: false });
  assert.deepEqual(validateOtlpExporterConfig({ endpoint: 'c:4317', keepalive: { time: 0 } }, 'exporters.otlp').client.keepalive?.timeMs, 0);
  assert.deepEqual(validateOtlpReceiverConfig({ protocols: { grpc: {} } }, 'receivers.otlp').grpc!.keepalive, {
    timeMs: 30_000,
    timeoutMs: 10_000,
    maxConnectionIdleMs: 0,
    maxConnectionAgeMs: 0,
    maxConnectionAgeGraceMs: 0,
  });
  const age = validateOtlpReceiverConfig({ protocols: { grpc: { keepalive: { server_parameters: { max_connection_age: '5m', max_connection_age_grace: '30s' } } } } }, 'receivers.otlp');
  assert.equal(age.grpc!.keepalive.maxConnectionAgeMs, 300_000);
  assert.equal(age.grpc!.keepalive.maxConnectionAgeGraceMs, 30_000);
  assert.throws(
    () => validateOtlpReceiverConfig({ protocols: { grpc: { keepalive: { enforcement_policy: { min_time: '5s' } } } } }, 'receivers.otlp'),
    (e: Error) => e instanceof ConfigError && /receivers\.otlp\.protocols\.grpc\.keepalive\.enforcement_policy/.test(e.message),
  );
  assert.throws(
    () => validateOtlpReceiverConfig({ protocols: { grpc: { keepalive: { server_parameters: { tme: '5s' } } } } }, 'receivers.otlp'),
    (e: Error) => e instanceof ConfigError && /server_parameters\.tme/.test(e.message),
  );
  assert.throws(
    () => validateOtelArrowExporterConfig({ endpoint: 'c:4317', keepalive: { time: '1s', timeout: 0 } }, 'exporters.otelarrow'),
    (e: Error) => e instanceof ConfigError && /keepalive\.timeout/.test(e.message),
  );
});
