// Agent self-telemetry: the `self_telemetry` config (and the standard OTEL_* variables), and the
// agent's own spans arriving at an OTLP/gRPC server — lifecycle, source, enrichment, one span per
// export call with items and outcome (ok and failed), the stop span flushed at shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/src/agent.ts';
import { parseAgentConfig } from '../../agent/src/config.ts';
import { SELF_SPANS, SelfTelemetry } from '../../agent/src/telemetry.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';
import { OtlpGrpcServer } from '../../proto/src/grpc/otlp-server.ts';
import type { AnyValue, KeyValue, Resource, Span, TracesData } from '../../proto/src/model.ts';
import { silentLogger } from '../../lib/log.ts';
import { freePorts } from '../peers/index.ts';
import { hasBpf, requires } from '../lib/env.ts';
import { createCa, opensslAvailable } from '../lib/certs.ts';

const root = new URL('../../', import.meta.url).pathname;
const fixture = join(root, 'tests/fixtures/tcp-proc-loopback.kscope');

const attr = (attrs: readonly KeyValue[], key: string): AnyValue | undefined => attrs.find((a) => a.key === key)?.value;

interface Got {
  resource: Resource;
  span: Span;
}

async function spanSink(): Promise<{ port: number; spans: Got[]; requests: number; close(): Promise<void> }> {
  const spans: Got[] = [];
  const sink = { port: 0, spans, requests: 0, close: () => server.shutdown(500) };
  const server = new OtlpGrpcServer({
    signals: ['traces'],
    handler: async (_signal, data) => {
      sink.requests++;
      for (const rs of (data as TracesData).resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ resource: rs.resource, span: s });
    },
  });
  sink.port = await server.listen('127.0.0.1:0');
  return sink;
}

test('self_telemetry config: off by default, on from traces_endpoint or the OTEL_* variables', () => {
  assert.equal(parseAgentConfig({}, {}).selfTelemetry.enabled, false);

  const c = parseAgentConfig({ self_telemetry: { traces_endpoint: '127.0.0.1:4317', service_name: 'agent-x', interval: '2s' } }, {}).selfTelemetry;
  assert.deepEqual([c.enabled, c.tracesEndpoint, c.serviceName, c.exportIntervalMs, c.tls.insecure], [true, '127.0.0.1:4317', 'agent-x', 2000, true]);

  const e = parseAgentConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel.example:4317/', OTEL_SERVICE_NAME: 'from-env' }).selfTelemetry;
  assert.deepEqual([e.enabled, e.tracesEndpoint, e.serviceName, e.tls.insecure], [true, 'otel.example:4317', 'from-env', true]);
  // the traces-specific variable wins over the generic one, https means TLS
  const s = parseAgentConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://b:2' }).selfTelemetry;
  assert.deepEqual([s.tracesEndpoint, s.tls.insecure], ['b:2', false]);
  // the config wins over the environment; OTEL_SDK_DISABLED and enabled: false turn it off
  assert.equal(parseAgentConfig({ self_telemetry: { traces_endpoint: 'c:3' } }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1' }).selfTelemetry.tracesEndpoint, 'c:3');
  assert.equal(parseAgentConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_SDK_DISABLED: 'true' }).selfTelemetry.enabled, false);
  assert.equal(parseAgentConfig({ self_telemetry: { enabled: false, traces_endpoint: 'c:3' } }, {}).selfTelemetry.enabled, false);
  // a client certificate means TLS unless said otherwise
  const m = parseAgentConfig({ self_telemetry: { traces_endpoint: 'c:3', tls: { ca_file: '/ca.pem', cert_file: '/c.pem', key_file: '/k.pem' } } }, {}).selfTelemetry;
  assert.deepEqual(m.tls, { insecure: false, caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/k.pem' });

  const bad = (doc: unknown, env: NodeJS.ProcessEnv, field: string) =>
    assert.throws(() => parseAgentConfig(doc, env), (err: unknown) => err instanceof ConfigError && err.field === field, field);
  bad({ self_telemetry: { traces_endpoint: 'no-port' } }, {}, 'self_telemetry.traces_endpoint');
  bad({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://a:1' }, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  bad({ self_telemetry: { traces_endpoint: 'a:1', sample: 1 } }, {}, 'self_telemetry.sample');
  bad({ self_telemetry: { traces_endpoint: 'a:1', interval: '1ms' } }, {}, 'self_telemetry.interval');
  bad({ self_telemetry: { traces_endpoint: 'a:1', tls: { cert_file: '/c.pem' } } }, {}, 'self_telemetry.tls.key_file');
});

test('an unreadable self-telemetry TLS file fails start with the field named', async () => {
  const cfg = parseAgentConfig({ self_telemetry: { traces_endpoint: 'a:1', tls: { ca_file: '/nonexistent/ca.pem' } } }, {}).selfTelemetry;
  const st = new SelfTelemetry(cfg, { logger: silentLogger() });
  await assert.rejects(st.start(), (err: unknown) => err instanceof ConfigError && err.field === 'self_telemetry.tls.ca_file' && /cannot read/.test(err.message));
  await st.shutdown();
});

test('a replaying agent sends its own spans (service.name kscope-agent) over OTLP/gRPC and flushes them at stop', { timeout: 60_000 }, async () => {
  const sink = await spanSink();
  const dir = mkdtempSync(join(tmpdir(), 'kscope-selftel-'));
  try {
    const config = parseAgentConfig({
      enrich: { k8s: { enabled: false } },
      batch: { timeout: '100ms' },
      signals: { metrics: { interval: '200ms' }, logs: { process_exec_exit: true, tcp_resets: true } },
      exporter: { type: 'file', config: { path: join(dir, 'out.jsonl') } },
      server: { address: '127.0.0.1:0' },
      log: { level: 'silent' },
      // a long interval: everything must leave with the flush at stop
      self_telemetry: { traces_endpoint: `127.0.0.1:${sink.port}`, interval: '60s' },
    }, {});
    const agent = new Agent({ config, registry: defaultRegistry(), replay: { path: fixture, speed: 'max' }, logger: silentLogger() });
    await agent.start();
    await agent.sourceFinished();
    await agent.stop();
    assert.ok(sink.spans.length > 0, 'spans arrived');

    for (const { resource } of sink.spans) assert.equal(attr(resource.attributes, 'service.name'), 'kscope-agent');
    const names = new Set(sink.spans.map((s) => s.span.name));
    for (const n of [SELF_SPANS.start, SELF_SPANS.sourceOpen, SELF_SPANS.enrichStart, SELF_SPANS.stop, 'export traces', 'export metrics', 'export logs'])
      assert.ok(names.has(n), `span ${n} in ${[...names].join(', ')}`);
    // no span per kernel event: a handful of lifecycle spans plus one per export call
    const c = agent.pipeline.counters;
    const exportSpans = sink.spans.filter((s) => s.span.name.startsWith('export '));
    assert.equal(exportSpans.length, agent.selfTelemetry.counters.exportCallsTraced);
    assert.equal(sink.spans.length, exportSpans.length + 4, 'only lifecycle and export spans');

    const one = (name: string) => sink.spans.find((s) => s.span.name === name)!.span;
    const start = one(SELF_SPANS.start);
    assert.equal(Buffer.from(one(SELF_SPANS.sourceOpen).parentSpanId).toString('hex'), Buffer.from(start.spanId).toString('hex'), 'source.open is a child of agent.start');
    assert.equal(attr(start.attributes, 'kscope.mode'), 'replay');
    assert.equal(attr(one(SELF_SPANS.sourceOpen).attributes, 'kscope.fallback'), false);

    // each export span carries its items; they add up to what the pipeline counted as exported
    const items = (signal: string) => exportSpans.filter((s) => attr(s.span.attributes, 'kscope.signal') === signal)
      .reduce((n, s) => n + Number(attr(s.span.attributes, 'kscope.items')), 0);
    assert.ok(c.spansExported > 0 && c.logsExported > 0 && c.pointsExported > 0);
    assert.equal(items('traces'), c.spansExported);
    assert.equal(items('logs'), c.logsExported);
    assert.equal(items('metrics'), c.pointsExported);
    for (const s of exportSpans) {
      assert.equal(attr(s.span.attributes, 'kscope.outcome'), 'ok');
      assert.equal(attr(s.span.attributes, 'kscope.exporter'), 'file');
      assert.equal(s.span.kind, 3, 'CLIENT');
    }
    assert.equal(attr(one(SELF_SPANS.stop).attributes, 'kscope.spans_exported'), BigInt(c.spansExported));

    // the agent's /metrics counts what its span exporter delivered
    assert.equal(agent.selfTelemetry.counters.spansExported, sink.spans.length);
    assert.match(agent.pipeline.telemetry.render(), new RegExp(`kscope_agent_self_spans_total\\{outcome="exported"\\} ${sink.spans.length}\\b`));
  } finally {
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed export call is a span with status ERROR and outcome failed', { timeout: 60_000 }, async () => {
  const sink = await spanSink();
  const [closedPort] = await freePorts(1); // nothing listens there
  try {
    const config = parseAgentConfig({
      enrich: { k8s: { enabled: false } },
      batch: { timeout: '100ms' },
      signals: { metrics: { interval: '10s' } },
      exporter: {
        type: 'otlp',
        config: { endpoint: `127.0.0.1:${closedPort}`, tls: { insecure: true }, timeout: '1s', retry_on_failure: { enabled: false }, sending_queue: { enabled: false } },
      },
      server: { address: '127.0.0.1:0' },
      log: { level: 'silent' },
      self_telemetry: { traces_endpoint: `http://127.0.0.1:${sink.port}`, interval: '50ms' },
    }, {});
    const agent = new Agent({ config, registry: defaultRegistry(), replay: { path: fixture, speed: 'max' }, logger: silentLogger() });
    await agent.start();
    await agent.sourceFinished();
    await agent.stop();
    const failed = sink.spans.filter((s) => s.span.name.startsWith('export ') && attr(s.span.attributes, 'kscope.outcome') === 'failed');
    assert.ok(failed.length > 0, 'failed export spans arrived');
    assert.equal(failed.length, agent.pipeline.counters.exportFailures, 'one failed span per failed export call');
    for (const s of failed) {
      assert.equal(s.span.status.code, 2, 'status ERROR');
      assert.match(s.span.status.message, /otlp\/(traces|metrics|logs)/, 'the error names the exporter');
      assert.ok(s.span.events.some((e) => e.name === 'exception'), 'exception recorded');
    }
  } finally {
    await sink.close();
  }
});

test('a live agent reports probe.load and probe.attach per probe with per-program results', { timeout: 60_000 }, async (t) => {
  if (!requires(t, hasBpf() && nativeAvailable(), 'root, BPF and the native addon')) return;
  const sink = await spanSink();
  try {
    const config = parseAgentConfig({
      probes: { tcp: true, proc: true, target_tgid: process.pid },
      enrich: { k8s: { enabled: false } },
      exporter: { type: 'none' },
      server: { address: '127.0.0.1:0' },
      log: { level: 'silent' },
      self_telemetry: { traces_endpoint: `127.0.0.1:${sink.port}` },
    }, {});
    const agent = new Agent({ config, registry: defaultRegistry(), logger: silentLogger() });
    await agent.start();
    assert.equal(agent.mode, 'live');
    await agent.stop();
    const loads = sink.spans.filter((s) => s.span.name === SELF_SPANS.probeLoad);
    const attaches = sink.spans.filter((s) => s.span.name === SELF_SPANS.probeAttach);
    assert.deepEqual(loads.map((s) => attr(s.span.attributes, 'kscope.probe.name')).sort(), ['proc', 'tcp']);
    assert.deepEqual(attaches.map((s) => attr(s.span.attributes, 'kscope.probe.name')).sort(), ['proc', 'tcp']);
    for (const s of attaches) {
      const attached = attr(s.span.attributes, 'kscope.probe.attached') as AnyValue[];
      const failed = attr(s.span.attributes, 'kscope.probe.failed') as AnyValue[];
      assert.ok(attached.length > 0, 'programs attached');
      assert.equal(s.span.events.length, attached.length + failed.length, 'one event per program');
      assert.deepEqual(s.span.events.filter((e) => e.name === 'attached').map((e) => attr(e.attributes, 'kscope.program')), attached);
    }
  } finally {
    await sink.close();
  }
});

test('an unreachable self-telemetry endpoint neither blocks stop nor goes unnoticed', { timeout: 60_000 }, async () => {
  const [closedPort] = await freePorts(1);
  const dir = mkdtempSync(join(tmpdir(), 'kscope-selftel-'));
  try {
    const config = parseAgentConfig({
      enrich: { k8s: { enabled: false } },
      exporter: { type: 'file', config: { path: join(dir, 'out.jsonl') } },
      server: { address: '127.0.0.1:0' },
      log: { level: 'silent' },
      self_telemetry: { traces_endpoint: `127.0.0.1:${closedPort}`, timeout: '500ms' },
    }, {});
    const agent = new Agent({ config, registry: defaultRegistry(), replay: { path: fixture, speed: 'max' }, logger: silentLogger() });
    await agent.start();
    await agent.sourceFinished();
    await agent.stop(); // bounded by self_telemetry.timeout (the test's own timeout catches a hang)
    const st = agent.selfTelemetry.counters;
    assert.equal(st.spansExported, 0);
    assert.ok(st.spansFailed >= 4, `lifecycle and export spans counted as failed (${st.spansFailed})`);
    assert.match(agent.pipeline.telemetry.render(), new RegExp(`kscope_agent_self_spans_total\\{outcome="failed"\\} ${st.spansFailed}\\b`));
    // the agent's own data path is unaffected
    assert.ok(agent.pipeline.counters.spansExported > 0);
    assert.equal(agent.pipeline.counters.exportFailures, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('self spans go over TLS with a client certificate when tls files are set', { timeout: 60_000 }, async (t) => {
  if (!requires(t, opensslAvailable(), 'the openssl CLI')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-selftel-tls-'));
  const ca = createCa(dir, 'selftel');
  const srv = ca.server('sink');
  const client = ca.client('agent-a');
  const spans: string[] = [];
  const server = new OtlpGrpcServer({
    signals: ['traces'],
    handler: async (_s, data) => {
      for (const rs of (data as TracesData).resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push(s.name);
    },
  });
  // the server requires a client certificate from the CA: spans arriving prove the agent sent one
  const port = await server.listen('127.0.0.1:0', grpc.ServerCredentials.createSsl(readFileSync(ca.cert), [{ cert_chain: readFileSync(srv.cert), private_key: readFileSync(srv.key) }], true));
  try {
    const config = parseAgentConfig({
      enrich: { k8s: { enabled: false } },
      exporter: { type: 'none' },
      server: { address: '127.0.0.1:0' },
      log: { level: 'silent' },
      self_telemetry: { traces_endpoint: `localhost:${port}`, tls: { ca_file: ca.cert, cert_file: client.cert, key_file: client.key } },
    }, {});
    assert.equal(config.selfTelemetry.tls.insecure, false);
    const agent = new Agent({ config, registry: defaultRegistry(), replay: { path: fixture, speed: 'max' }, logger: silentLogger() });
    await agent.start();
    await agent.sourceFinished();
    await agent.stop();
    assert.ok(spans.includes(SELF_SPANS.start) && spans.includes(SELF_SPANS.stop), `spans over mTLS: ${spans.join(', ')}`);
    assert.equal(agent.selfTelemetry.counters.spansFailed, 0);
  } finally {
    await server.shutdown(500);
    rmSync(dir, { recursive: true, force: true });
  }
});
