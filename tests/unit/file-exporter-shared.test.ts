// One file path written by several exporters: a `file` exporter in three pipelines (one instance
// per signal, as the collector builds them), or the agent's three signals. They share one open
// file: rotation counts every line once, nobody keeps appending to a file rotated away under it,
// and every line is whole. Different rotation settings for one path are refused at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileExporter, validateFileExporterConfig } from '../../collector/src/exporters/file/index.ts';
import { makeGaugeMetrics, makeLogs, makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';

const host = { reportFatal() {} };

test('file exporters sharing a path: rotation by the combined size, every line whole and in one of the files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-file-shared-'));
  try {
    const path = join(dir, 'out.jsonl');
    const maxBytes = 16 * 1024;
    const cfg = validateFileExporterConfig({ path, rotation: { max_megabytes: maxBytes / 1024 / 1024, max_backups: 100 } }, 'exporters.file');
    const traces = createFileExporter({ id: 'file', logger: testLogger() }, cfg, 'traces');
    const metrics = createFileExporter({ id: 'file', logger: testLogger() }, cfg, 'metrics');
    const logs = createFileExporter({ id: 'file', logger: testLogger() }, cfg, 'logs');
    await Promise.all([traces.start(host), metrics.start(host), logs.start(host)]);
    const rounds = 30;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < rounds; i++) sends.push(traces.consume(makeTraces(4), {}), metrics.consume(makeGaugeMetrics(4), {}), logs.consume(makeLogs(4), {}));
    await Promise.all(sends);
    await Promise.all([traces.shutdown(), metrics.shutdown(), logs.shutdown()]);

    const files = readdirSync(dir);
    assert.ok(files.length > 3, `rotated (${files.length} files)`);
    const per = { resourceSpans: 0, resourceMetrics: 0, resourceLogs: 0 };
    for (const f of files) {
      const text = readFileSync(join(dir, f), 'utf8');
      const lines = text.split('\n').filter(Boolean);
      // a file past the limit may hold only the one line that made it so
      if (lines.length > 1) assert.ok(statSync(join(dir, f)).size <= maxBytes, `${f} holds ${statSync(join(dir, f)).size} B, over ${maxBytes}`);
      for (const line of lines) {
        const keys = Object.keys(JSON.parse(line)) as (keyof typeof per)[];
        assert.equal(keys.length, 1, line.slice(0, 80));
        per[keys[0]]++;
      }
    }
    assert.deepEqual(per, { resourceSpans: rounds, resourceMetrics: rounds, resourceLogs: rounds });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file exporters sharing a path with other rotation settings: the second start fails naming its path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-file-shared-'));
  try {
    const path = join(dir, 'out.jsonl');
    const a = createFileExporter({ id: 'file/a', logger: testLogger() }, validateFileExporterConfig({ path }, 'exporters.file/a'), 'traces');
    const b = createFileExporter({ id: 'file/b', logger: testLogger() }, validateFileExporterConfig({ path, rotation: { max_backups: 1 } }, 'exporters.file/b'), 'logs');
    await a.start(host);
    await assert.rejects(b.start(host), (e: Error) => e instanceof ConfigError && /exporters\.file\/b\.path/.test(e.message) && /other rotation settings/.test(e.message));
    await a.consume(makeTraces(2), {});
    await a.shutdown();
    assert.equal(readFileSync(path, 'utf8').split('\n').filter(Boolean).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
