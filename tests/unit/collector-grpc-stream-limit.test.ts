// The gRPC receivers bound the calls one connection may have open at once (each can hold up to a
// message of buffered data): the HTTP/2 SETTINGS they announce carry max_concurrent_streams,
// configurable per receiver, 100 by default (grpc-js alone announces no limit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { fullRegistry } from '../../collector/src/registry-full.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import { validateOtlpReceiverConfig } from '../../collector/src/receivers/otlp/config.ts';
import { validateOtelArrowReceiverConfig } from '../../collector/src/receivers/otelarrow/index.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';

/** The max concurrent streams a server at `port` announces in its SETTINGS. */
async function announcedStreams(port: number): Promise<number | undefined> {
  const session = connect(`http://127.0.0.1:${port}`);
  try {
    await new Promise<void>((resolve, reject) => {
      session.once('remoteSettings', () => resolve());
      session.once('error', reject);
    });
    return session.remoteSettings.maxConcurrentStreams;
  } finally {
    session.close();
  }
}

test('OTLP and OTel Arrow gRPC receivers announce max_concurrent_streams (default 100)', async () => {
  const col = new Collector(parseConfig(parseYaml(`
receivers:
  otlp: { protocols: { grpc: { endpoint: "127.0.0.1:0", max_concurrent_streams: 7 } } }
  otlp/default: { protocols: { grpc: { endpoint: "127.0.0.1:0" } } }
  otelarrow: { protocols: { grpc: { endpoint: "127.0.0.1:0", max_concurrent_streams: 9 } } }
exporters: { nop: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { traces: { receivers: [otlp, otlp/default, otelarrow], exporters: [nop] } }
`)), { registry: fullRegistry(), logger: testLogger() });
  await col.start();
  try {
    const ports = new Map<string, number>();
    for (const c of col.service.components.filter((x) => x.kind === 'receiver')) {
      const server = (c.component as unknown as { server: { grpc?: { port: number }; port?: number } }).server;
      ports.set(c.id, server.grpc?.port ?? server.port ?? 0);
    }
    assert.equal(await announcedStreams(ports.get('otlp')!), 7);
    assert.equal(await announcedStreams(ports.get('otlp/default')!), 100);
    assert.equal(await announcedStreams(ports.get('otelarrow')!), 9);
  } finally {
    await col.shutdown();
  }
  assert.throws(() => validateOtlpReceiverConfig({ protocols: { grpc: { max_concurrent_streams: 0 } } }, 'receivers.otlp'),
    (e: unknown) => e instanceof ConfigError && e.field === 'receivers.otlp.protocols.grpc.max_concurrent_streams');
  assert.equal(validateOtelArrowReceiverConfig({}, 'receivers.otelarrow').maxConcurrentStreamsPerConnection, 100);
});
