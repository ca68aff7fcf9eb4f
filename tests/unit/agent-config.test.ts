// parseAgentConfig: defaults, errors that name the dotted field, ${env:..} substitution and
// KSCOPE_CFG__a__b environment overrides; and the exporter section validated by the collector's
// exporter factory when the agent starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../collector/src/component/errors.ts';
import { applyEnvOverrides, parseAgentConfig } from '../../agent/src/config.ts';
import { Agent } from '../../agent/src/agent.ts';
import { defaultRegistry } from '../../collector/src/components.ts';

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.ok(err.message.startsWith(err.field), `message names the field: ${err.message}`);
    return err.field;
  }
  assert.fail('expected a ConfigError');
}

test('defaults: an empty document is a valid config', () => {
  const c = parseAgentConfig({}, {});
  assert.equal(c.probes.tcp, true);
  assert.equal(c.probes.proc, true);
  assert.equal(c.probes.targetTgid, 0);
  assert.equal(c.probes.ringBufferBytes, 8 * 1024 * 1024);
  assert.equal(c.signals.spans, true);
  assert.equal(c.signals.metricsIntervalMs, 10_000);
  assert.equal(c.signals.metrics.temporality, 'delta');
  assert.equal(c.signals.logs.oomKills, true);
  assert.equal(c.signals.logs.processExecExit, false);
  assert.equal(c.batch.sendBatchSize, 1000);
  assert.equal(c.batch.timeoutMs, 5000);
  assert.equal(c.exporter.type, 'otelarrow', 'the agent exports over OTel Arrow by default');
  assert.equal(c.server.address, '0.0.0.0:8081');
  assert.equal(c.log.level, 'info');
  assert.deepEqual(parseAgentConfig(null, {}), c);
  assert.deepEqual(parseAgentConfig(undefined, {}), c);
});

test('snake_case YAML fields map onto the typed config', () => {
  const c = parseAgentConfig({
    node_name: 'node-a',
    probes: { tcp: true, proc: false, target_tgid: 42, ring_buffer_size: '1MiB', poll_interval: '20ms', fallback_fixture: '/x.kscope' },
    signals: { spans: false, metrics: { interval: '2s', temporality: 'cumulative', max_peers_per_resource: 7 }, logs: { oom_kills: false, process_exec_exit: true, tcp_resets: true } },
    batch: { send_batch_size: 10, timeout: '250ms', max_pending_batches: 3 },
    exporter: { type: 'file', config: { path: '/tmp/x.jsonl' } },
    server: { address: '127.0.0.1:0' },
    log: { level: 'debug' },
  }, {});
  assert.equal(c.nodeName, 'node-a');
  assert.deepEqual(c.probes, { tcp: true, proc: false, targetTgid: 42, ringBufferBytes: 1 << 20, pollIntervalMs: 20, maxSockets: 65_536, fallbackFixture: '/x.kscope' });
  assert.equal(c.signals.spans, false);
  assert.equal(c.signals.metricsIntervalMs, 2000);
  assert.equal(c.signals.metrics.temporality, 'cumulative');
  assert.equal(c.signals.metrics.maxPeersPerResource, 7);
  assert.deepEqual(c.signals.logs, { oomKills: false, processExecExit: true, tcpResets: true });
  assert.equal(c.batch.sendBatchSize, 10);
  assert.equal(c.batch.timeoutMs, 250);
  assert.equal(c.batch.maxPendingBatches, 3);
  assert.deepEqual(c.exporter, { type: 'file', config: { path: '/tmp/x.jsonl' } });
  assert.equal(c.enrich.enricher.nodeName, 'node-a', 'node_name reaches the enricher');
});

test('bad values: the error names the field', () => {
  const cases: [unknown, string][] = [
    [[1, 2], '(root)'],
    [{ probes: { tcp: 'yes please' } }, 'probes.tcp'],
    [{ probes: { target_tgid: -1 } }, 'probes.target_tgid'],
    [{ probes: { target_tgid: 1.5 } }, 'probes.target_tgid'],
    [{ probes: { ring_buffer_size: 5000 } }, 'probes.ring_buffer_size'],
    [{ probes: { poll_interval: '2s' } }, 'probes.poll_interval'],
    [{ probes: { kprobes: true } }, 'probes.kprobes'],
    [{ probes: 'all' }, 'probes'],
    [{ enrich: 5 }, 'enrich'],
    [{ enrich: { k8s: { enabled: 'sometimes' } } }, 'enrich.k8s.enabled'],
    // the enrich components validate camelCase keys; errors still name the YAML's snake_case field
    [{ enrich: { hold_ms: -5 } }, 'enrich.hold_ms'],
    [{ enrich: { hold_msec: 5 } }, 'enrich.hold_msec'],
    [{ enrich: { k8s: { sync_timeout_ms: -1 } } }, 'enrich.k8s.sync_timeout_ms'],
    [{ signals: { spans: 3 } }, 'signals.spans'],
    [{ signals: { metrics: { interval: '50ms' } } }, 'signals.metrics.interval'],
    [{ signals: { metrics: { interval: 'soon' } } }, 'signals.metrics.interval'],
    [{ signals: { metrics: { temporality: 'both' } } }, 'signals.metrics.temporality'],
    [{ signals: { metrics: { max_peers_per_resource: 0 } } }, 'signals.metrics.max_peers_per_resource'],
    [{ signals: { logs: { http: true } } }, 'signals.logs.http'],
    [{ batch: { send_batch_size: 0 } }, 'batch.send_batch_size'],
    [{ batch: { timeout: -1 } }, 'batch.timeout'],
    [{ batch: { max_pending_batches: 'many' } }, 'batch.max_pending_batches'],
    [{ exporter: { type: 'kafka' } }, 'exporter.type'],
    [{ exporter: { typo: 1 } }, 'exporter.typo'],
    [{ server: { address: 'localhost' } }, 'server.address'],
    [{ log: { level: 'loud' } }, 'log.level'],
    [{ tracing: {} }, 'tracing'],
  ];
  for (const [doc, field] of cases) assert.equal(fieldOf(() => parseAgentConfig(doc, {})), field, JSON.stringify(doc));
});

test('${env:NAME} substitution, with defaults, and a missing variable names the field', () => {
  const c = parseAgentConfig({
    node_name: '${env:MY_NODE}',
    probes: { target_tgid: '${env:TGID}' },
    exporter: { config: { endpoint: '${env:EP:-127.0.0.1:4317}' } },
  }, { MY_NODE: 'n1', TGID: '77' });
  assert.equal(c.nodeName, 'n1');
  assert.equal(c.probes.targetTgid, 77);
  assert.deepEqual(c.exporter.config, { endpoint: '127.0.0.1:4317' });
  assert.equal(fieldOf(() => parseAgentConfig({ log: { level: '${env:NOPE}' } }, {})), 'log.level');
});

test('KSCOPE_CFG__a__b environment overrides set nested fields (YAML scalars), case-insensitively', () => {
  const env = {
    KSCOPE_CFG__probes__target_tgid: '1234',
    KSCOPE_CFG__PROBES__PROC: 'false',
    KSCOPE_CFG__signals__metrics__interval: '2s',
    KSCOPE_CFG__exporter__config__endpoint: 'collector.kscope:4317',
    KSCOPE_CFG__exporter__config__tls__insecure: 'true',
    KSCOPE_CFG__log__level: 'warn',
    UNRELATED: 'x',
  };
  const c = parseAgentConfig({ probes: { target_tgid: 1, proc: true }, exporter: { config: { compression: 'none' } } }, env);
  assert.equal(c.probes.targetTgid, 1234, 'override wins over the file');
  assert.equal(c.probes.proc, false);
  assert.equal(c.signals.metricsIntervalMs, 2000);
  assert.deepEqual(c.exporter.config, { compression: 'none', endpoint: 'collector.kscope:4317', tls: { insecure: true } });
  assert.equal(c.log.level, 'warn');
  // the caller's document is not modified
  const doc = { probes: { target_tgid: 1 } };
  parseAgentConfig(doc, env);
  assert.deepEqual(doc, { probes: { target_tgid: 1 } });
  // an invalid override fails like an invalid file value, naming the field
  assert.equal(fieldOf(() => parseAgentConfig({}, { KSCOPE_CFG__batch__send_batch_size: 'zero' })), 'batch.send_batch_size');
  assert.equal(fieldOf(() => parseAgentConfig({}, { KSCOPE_CFG__probes__bogus: '1' })), 'probes.bogus');
  // a scalar in the way becomes a mapping
  assert.deepEqual(applyEnvOverrides({ a: 3 }, { KSCOPE_CFG__a__b: '[1, 2]' }), { a: { b: [1, 2] } });
});

test('the exporter section is validated by the collector exporter factory at agent start', async () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ type: 'otlp', config: {} }, 'exporter.config.endpoint'],
    [{ type: 'otlp', config: { endpoint: 'nohostport' } }, 'exporter.config.endpoint'],
    [{ type: 'otlp', config: { endpoint: '127.0.0.1:1', compression: 'lz4' } }, 'exporter.config.compression'],
    [{ type: 'otlp', config: { endpoint: '127.0.0.1:1', sending_queue: { storage: {} } } }, 'exporter.config.sending_queue.storage.directory'],
    [{ type: 'file', config: {} }, 'exporter.config.path'],
  ];
  for (const [exporter, field] of cases) {
    const config = parseAgentConfig({ exporter, enrich: { k8s: { enabled: false } }, server: { address: '127.0.0.1:0' }, log: { level: 'silent' } }, {});
    const agent = new Agent({ config, registry: defaultRegistry() });
    let err: unknown;
    try {
      await agent.start();
    } catch (e) {
      err = e;
    } finally {
      await agent.stop();
    }
    assert.ok(err instanceof ConfigError, `${JSON.stringify(exporter)}: ${String(err)}`);
    assert.equal(err.field, field, JSON.stringify(exporter));
  }
});
