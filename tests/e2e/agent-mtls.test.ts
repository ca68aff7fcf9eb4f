// mTLS from the agent to the collector. A throwaway PKI (tests/lib/certs.ts); the collector's otlp
// receiver requires a client certificate from that CA and takes the tenant from its CN (auth
// source mtls, tenant table {acme}); a routing processor sends tenant acme to its own files.
//  - the agent binary (replay of tcp-proc-loopback, YAML config, exporter otlp with tls ca_file /
//    cert_file / key_file, CN=acme) delivers everything, routed as tenant acme and counted per
//    tenant by the collector; its own spans (self_telemetry) reach a test OTLP server;
//  - an agent without a client certificate, one with a certificate from another CA, and one whose
//    CN is not a known tenant are refused: export failures and dropped items counted on the
//    agent's /metrics, the cause in its log, nothing routed.
//  - the same over the agent's default transport: exporter otelarrow (OTAP streams) with a client
//    certificate to the collector's otelarrow receiver requiring client certificates from the CA;
//    the tenant is the CN for every batch of the stream. Without a certificate the handshake
//    refuses it; with an unknown CN every batch is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { stringify as toYaml } from 'yaml';
import { Agent } from '../../agent/src/agent.ts';
import { parseAgentConfig } from '../../agent/src/config.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { spawnCollector, type CollectorProcess } from '../../collector/src/testing/process.ts';
import { OtlpGrpcServer } from '../../proto/src/grpc/otlp-server.ts';
import { decodeJson } from '../../proto/src/otlp/index.ts';
import { countItems, type SignalType, type TracesData, type SignalData } from '../../proto/src/model.ts';
import { createCa, opensslAvailable, type KeyPair, type TestCa } from '../lib/certs.ts';
import { requires } from '../lib/env.ts';
import { freePorts } from '../peers/index.ts';

const root = new URL('../../', import.meta.url).pathname;
const fixture = join(root, 'tests/fixtures/tcp-proc-loopback.kscope');
const golden = JSON.parse(readFileSync(join(root, 'tests/fixtures/tcp-proc-loopback.golden-otlp.json'), 'utf8')) as { counts: { spans: number; metricPoints: number; logs: number } };
const SIGNALS: SignalType[] = ['traces', 'metrics', 'logs'];

let dir = '';
let ca: TestCa;
let server: KeyPair;
let collector: CollectorProcess | undefined;
let grpcPort = 0;
let arrowPort = 0;
let telemetryPort = 0;

const outFile = (tenant: string, signal: SignalType) => join(dir, 'out', `${tenant}-${signal}.jsonl`);

function readItems(tenant: string, signal: SignalType): number {
  const f = outFile(tenant, signal);
  if (!existsSync(f)) return 0;
  return readFileSync(f, 'utf8').split('\n').filter((l) => l.trim()).reduce((n, l) => n + countItems(signal, decodeJson(signal, l) as SignalData[typeof signal]), 0);
}

async function collectorMetrics(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${telemetryPort}/metrics`)).text();
}

before(async () => {
  if (!opensslAvailable()) return;
  dir = mkdtempSync(join(tmpdir(), 'kscope-mtls-'));
  mkdirSync(join(dir, 'empty'));
  ca = createCa(join(dir, 'pki'), 'cluster');
  server = ca.server('collector');
  [grpcPort, arrowPort, telemetryPort] = (await freePorts(3)) as [number, number, number];
  const serverTls = { cert_file: server.cert, key_file: server.key, client_ca_file: ca.cert, require_client_cert: true };
  const auth = { sources: ['mtls'], tenants: { acme: { tier: 'gold' } } };
  const doc = {
    receivers: {
      otlp: { protocols: { grpc: { endpoint: `127.0.0.1:${grpcPort}`, tls: serverTls } }, auth },
      otelarrow: { protocols: { grpc: { endpoint: `127.0.0.1:${arrowPort}`, tls: serverTls } }, auth },
    },
    processors: Object.fromEntries(SIGNALS.map((s) => [`routing/${s}`, { from: 'tenant', table: [{ value: 'acme', exporters: [`file/acme_${s}`] }], default_exporters: [`file/other_${s}`] }])),
    exporters: Object.fromEntries(SIGNALS.flatMap((s) => [[`file/acme_${s}`, { path: outFile('acme', s) }], [`file/other_${s}`, { path: outFile('other', s) }]])),
    service: {
      telemetry: { logs: { level: 'warn' }, metrics: { address: `127.0.0.1:${telemetryPort}` } },
      pipelines: Object.fromEntries(SIGNALS.map((s) => [s, { receivers: ['otlp', 'otelarrow'], processors: [`routing/${s}`], exporters: [`file/acme_${s}`, `file/other_${s}`] }])),
    },
  };
  collector = await spawnCollector(dir, toYaml(doc), telemetryPort, { name: 'collector-mtls' });
});

after(async () => {
  await collector?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The agent settings the golden was made with, so the delivered counts must equal its counts. */
function agentDoc(tls: Record<string, string>, extra: Record<string, unknown> = {}, type: 'otlp' | 'otelarrow' = 'otlp'): Record<string, unknown> {
  return {
    enrich: { k8s: { enabled: false }, hold_ms: 100 },
    host: { proc_path: join(dir, 'empty'), cgroup_root: join(dir, 'empty') },
    signals: { metrics: { interval: '1h' }, logs: { process_exec_exit: true, tcp_resets: true, oom_kills: true } },
    batch: { timeout: '1h', send_batch_size: 100_000 },
    server: { address: '127.0.0.1:0' },
    log: { level: 'warn' },
    exporter: { type, config: { endpoint: `localhost:${type === 'otlp' ? grpcPort : arrowPort}`, tls, compression: 'none', timeout: '3s', ...extra } },
  };
}

test('the agent with a client certificate (CN=acme) delivers over mTLS; the collector applies tenant acme', { timeout: 90_000 }, async (t) => {
  if (!requires(t, opensslAvailable(), 'the openssl CLI')) return;
  const client = ca.client('acme');
  // the agent's own spans go to a test OTLP server (self_telemetry), over the same run
  const selfSpans: { service: unknown; name: string }[] = [];
  const sink = new OtlpGrpcServer({
    signals: ['traces'],
    handler: async (_s, data) => {
      for (const rs of (data as TracesData).resourceSpans)
        for (const ss of rs.scopeSpans) for (const sp of ss.spans) selfSpans.push({ service: rs.resource.attributes.find((a) => a.key === 'service.name')?.value, name: sp.name });
    },
  });
  const sinkPort = await sink.listen('127.0.0.1:0');
  try {
    const cfgFile = join(dir, 'agent-acme.yaml');
    writeFileSync(cfgFile, toYaml({
      ...agentDoc({ ca_file: ca.cert, cert_file: client.cert, key_file: client.key }),
      self_telemetry: { traces_endpoint: `127.0.0.1:${sinkPort}`, service_name: 'kscope-agent', interval: '10s' },
    }));
    const run = spawn(process.execPath, ['--import', 'tsx', join(root, 'agent/bin/agent.ts'), 'run', '--config', cfgFile, '--replay', fixture, '--speed', 'max', '--exit-when-done'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_TEST_CONTEXT: '', LOG_LEVEL: 'warn' },
    });
    let stderr = '';
    run.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((r) => run.once('exit', (c) => r(c)));
    assert.equal(code, 0, `agent exit code; stderr:\n${stderr}`);
    assert.doesNotMatch(stderr, /export failed|data dropped/, 'no export failed');

    // everything the agent made arrived, in tenant acme's files only
    assert.equal(readItems('acme', 'traces'), golden.counts.spans);
    assert.equal(readItems('acme', 'metrics'), golden.counts.metricPoints);
    assert.equal(readItems('acme', 'logs'), golden.counts.logs);
    for (const s of SIGNALS) assert.equal(readItems('other', s), 0, `nothing for the default route (${s})`);
    // and the collector counted it for tenant acme
    const m = await collectorMetrics();
    const accepted = new RegExp(`kscope_collector_accepted_items_total\\{[^}]*kind="receiver"[^}]*signal="traces"[^}]*tenant="acme"[^}]*\\} ${golden.counts.spans}\\b`);
    assert.match(m, accepted, 'receiver accepted spans counted for tenant acme');

    // self-telemetry from the same run, flushed at exit
    assert.ok(selfSpans.length > 0, 'self spans arrived');
    assert.ok(selfSpans.every((s) => s.service === 'kscope-agent'));
    const names = new Set(selfSpans.map((s) => s.name));
    for (const n of ['agent.start', 'source.open', 'export traces', 'export metrics', 'export logs', 'agent.stop']) assert.ok(names.has(n), `self span ${n}`);
  } finally {
    await sink.shutdown(500);
  }
});

interface Refused {
  failures: number;
  dropped: number;
  exported: number;
  metrics: string;
  log: string;
}

/** Runs an in-process agent (replay) with these client TLS settings; no retry, no queue: each call's outcome counts. */
async function runRefused(tls: Record<string, string>, type: 'otlp' | 'otelarrow' = 'otlp'): Promise<Refused> {
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } }));
  const config = parseAgentConfig(agentDoc(tls, { retry_on_failure: { enabled: false }, sending_queue: { enabled: false } }, type), {});
  const agent = new Agent({ config, registry: defaultRegistry(), replay: { path: fixture, speed: 'max' }, logger });
  await agent.start();
  await agent.sourceFinished();
  await agent.stop();
  const c = agent.pipeline.counters;
  return { failures: c.exportFailures, dropped: c.droppedItems, exported: c.spansExported + c.pointsExported + c.logsExported, metrics: agent.pipeline.telemetry.render(), log: lines.join('') };
}

function assertRefused(r: Refused, cause: RegExp): void {
  const total = golden.counts.spans + golden.counts.metricPoints + golden.counts.logs;
  assert.equal(r.exported, 0, 'nothing accepted');
  assert.equal(r.failures, 3, 'one failed export call per signal (spans, logs, metrics: one batch each)');
  assert.equal(r.dropped, total, 'every item dropped and counted');
  assert.match(r.metrics, /kscope_agent_export_failures_total 3\b/);
  assert.match(r.metrics, new RegExp(`kscope_agent_dropped_items_total ${total}\\b`));
  assert.match(r.log, cause, `the agent log says why:\n${r.log.slice(0, 2000)}`);
}

test('an agent without a client certificate is refused at the TLS handshake, counted by the agent', { timeout: 60_000 }, async (t) => {
  if (!requires(t, opensslAvailable(), 'the openssl CLI')) return;
  const before = await collectorMetrics();
  const r = await runRefused({ ca_file: ca.cert });
  assertRefused(r, /UNAVAILABLE: No connection established\. Last error: [^"]*alert certificate required/);
  assert.equal(await collectorMetrics().then((m) => m.match(/kscope_collector_accepted_items_total\{[^}]*kind="receiver"[^}]*\} \d+/g)?.join()), before.match(/kscope_collector_accepted_items_total\{[^}]*kind="receiver"[^}]*\} \d+/g)?.join(), 'the collector accepted nothing more');
});

test('a client certificate from another CA is refused as well', { timeout: 60_000 }, async (t) => {
  if (!requires(t, opensslAvailable(), 'the openssl CLI')) return;
  const rogue = createCa(join(dir, 'pki'), 'rogue').client('acme');
  const r = await runRefused({ ca_file: ca.cert, cert_file: rogue.cert, key_file: rogue.key });
  // the server answers with an "unknown ca" alert; grpc-js often reports it only as "Failed to connect"
  assertRefused(r, /UNAVAILABLE: No connection established\. Last error: [^"]*(unknown ca|Failed to connect)/);
});

test('a trusted client certificate whose CN is not a known tenant is UNAUTHENTICATED', { timeout: 60_000 }, async (t) => {
  if (!requires(t, opensslAvailable(), 'the openssl CLI')) return;
  const mallory = ca.client('mallory');
  const r = await runRefused({ ca_file: ca.cert, cert_file: mallory.cert, key_file: mallory.key });
  assertRefused(r, /UNAUTHENTICATED: unknown tenant \\"mallory\\"/);
  assert.match(await collectorMetrics(), /kscope_receiver_requests_total\{[^}]*transport="grpc"[^}]*code="16"[^}]*\} 3\b/, 'the collector counted 3 UNAUTHENTICATED requests');
  for (const s of SIGNALS) assert.equal(readItems('other', s), 0, `nothing routed to the default (${s})`);
});

// ---------------------------------------------------------------- otelarrow (the agent's default)

const acceptedLines = (m: string) => m.match(/kscope_collector_accepted_items_total\{[^}]*kind="receiver"[^}]*\} \d+/g)?.join() ?? '';

test('otelarrow: the default agent exporter with a client certificate (CN=acme) delivers over mTLS as tenant acme', { timeout: 90_000 }, async (t) => {
  if (!requires(t, opensslAvailable(), 'the openssl CLI')) return;
  const client = ca.client('acme');
  const before = Object.fromEntries(SIGNALS.map((s) => [s, readItems('acme', s)])) as Record<SignalType, number>;
  const cfgFile = join(dir, 'agent-acme-arrow.yaml');
  // no exporter type: otelarrow is the default
  const doc = agentDoc({ ca_file: ca.cert, cert_file: client.cert, key_file: client.key }, {}, 'otelarrow');
  const exporter = doc.exporter as { type?: string; config: unknown };
  delete exporter.type;
  writeFileSync(cfgFile, toYaml(doc));
  const run = spawn(process.execPath, ['--import', 'tsx', join(root, 'agent/bin/agent.ts'), 'run', '--config', cfgFile, '--replay', fixture, '--speed', 'max', '--exit-when-done'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_TEST_CONTEXT: '', LOG_LEVEL: 'warn' },
  });
  let stderr = '';
  run.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((r) => run.once('exit', (c) => r(c)));
  assert.equal(code, 0, `agent exit code; stderr:\n${stderr}`);
  assert.doesNotMatch(stderr, /export failed|data dropped/, 'no export failed');

  assert.equal(readItems('acme', 'traces') - before.traces, golden.counts.spans);
  assert.equal(readItems('acme', 'metrics') - before.metrics, golden.counts.metricPoints);
  assert.equal(readItems('acme', 'logs') - before.logs, golden.counts.logs);
  for (const s of SIGNALS) assert.equal(readItems('other', s), 0, `nothing for the default route (${s})`);
  const m = await collectorMetrics();
  for (const [signal, n] of [['traces', golden.counts.spans], ['metrics', golden.counts.metricPoints], ['logs', golden.counts.logs]] as const)
    assert.match(m, new RegExp(`kscope_collector_accepted_items_total\\{[^}]*component="otelarrow"[^}]*signal="${signal}"[^}]*tenant="acme"[^}]*\\} ${n}\\b`), `the otelarrow receiver accepted ${signal} for tenant acme`);
  assert.match(m, /kscope_receiver_requests_total\{[^}]*receiver="otelarrow"[^}]*transport="otap"[^}]*code="0"[^}]*\} \d+/, 'received as OTAP batches, not OTLP');
});

test('otelarrow: an agent without a client certificate is refused at the TLS handshake', { timeout: 60_000 }, async (t) => {
  if (!requires(t, opensslAvailable(), 'the openssl CLI')) return;
  const before = acceptedLines(await collectorMetrics());
  const r = await runRefused({ ca_file: ca.cert }, 'otelarrow');
  assertRefused(r, /UNAVAILABLE: No connection established\. Last error: [^"]*alert certificate required/);
  assert.equal(acceptedLines(await collectorMetrics()), before, 'the collector accepted nothing more');
});

test('otelarrow: a trusted certificate whose CN is not a known tenant has every batch refused', { timeout: 60_000 }, async (t) => {
  if (!requires(t, opensslAvailable(), 'the openssl CLI')) return;
  const before = acceptedLines(await collectorMetrics());
  const mallory = ca.client('mallory');
  const r = await runRefused({ ca_file: ca.cert, cert_file: mallory.cert, key_file: mallory.key }, 'otelarrow');
  assertRefused(r, /unauthenticated: unknown tenant \\"mallory\\"/);
  assert.equal(acceptedLines(await collectorMetrics()), before, 'the collector accepted nothing more');
  for (const s of SIGNALS) assert.equal(readItems('other', s), 0, `nothing routed to the default (${s})`);
});
