// The agent's spool defaults (agentExporterConfig): a batch leaves the spool only when the
// collector acknowledged it (retries without a time limit), batches go out and replay in order
// (one sender per signal), and `max_bytes` bounds the three signals' spools together. What the
// user sets explicitly is kept. Each result must pass the exporter factory's own validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentExporterConfig } from '../../agent/src/agent.ts';
import { validateOtelArrowExporterConfig } from '../../collector/src/exporters/otelarrow/index.ts';
import { validateOtlpExporterConfig } from '../../collector/src/exporters/otlp/index.ts';
import type { SignalType } from '../../proto/src/model.ts';

const SIGNALS: SignalType[] = ['traces', 'metrics', 'logs'];

test('spool defaults: per-signal directories and shares of max_bytes, unlimited retries, one sender, drop oldest', () => {
  const user = { endpoint: 'collector:4317', sending_queue: { storage: { directory: '/var/lib/kscope/spool', max_bytes: '64MiB' } } };
  let total = 0;
  for (const signal of SIGNALS) {
    const cfg = validateOtelArrowExporterConfig(agentExporterConfig('otelarrow', user, signal), 'exporter.config');
    const storage = cfg.helper.queue.storage!;
    assert.equal(storage.directory, `/var/lib/kscope/spool/${signal}`);
    assert.equal(storage.dropOldest, true);
    assert.ok(storage.segmentBytes <= storage.maxBytes);
    assert.equal(cfg.helper.retry.maxElapsedMs, 0, 'retried until acknowledged');
    assert.equal(cfg.helper.queue.numConsumers, 1, 'in order');
    total += storage.maxBytes;
  }
  assert.ok(total <= 64 * 1024 * 1024 && total > 63 * 1024 * 1024, `the three spools hold ${total} bytes together`);
  assert.equal(user.sending_queue.storage.directory, '/var/lib/kscope/spool', "the user's config is not modified");
});

test('spool settings the user gives are kept; without a spool nothing changes', () => {
  const user = {
    endpoint: 'collector:4317',
    retry_on_failure: { max_elapsed_time: '10m' },
    sending_queue: { num_consumers: 4, storage: { directory: '/s', max_bytes: 400 << 20, segment_bytes: '16MiB', drop_oldest: false } },
  };
  const cfg = validateOtlpExporterConfig(agentExporterConfig('otlp', user, 'traces'), 'exporter.config');
  assert.equal(cfg.helper.retry.maxElapsedMs, 600_000);
  assert.equal(cfg.helper.queue.numConsumers, 4);
  assert.equal(cfg.helper.queue.storage!.dropOldest, false);
  assert.equal(cfg.helper.queue.storage!.segmentBytes, 16 << 20);
  assert.equal(cfg.helper.queue.storage!.maxBytes, 200 << 20, 'traces: half of the spool');
  const memOnly = validateOtlpExporterConfig(agentExporterConfig('otlp', { endpoint: 'collector:4317' }, 'logs'), 'exporter.config');
  assert.equal(memOnly.helper.queue.storage, undefined);
  assert.equal(memOnly.helper.retry.maxElapsedMs, 300_000, 'in-memory queue: the helper default');
});
