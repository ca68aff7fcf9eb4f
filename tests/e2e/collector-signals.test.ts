// The collector process and signals: a SIGTERM that arrives while start() is still running (here:
// k8s_attributes waiting for pod metadata from an API server that never answers) is acted on once
// start returns, with a clean shutdown and exit status 0. As PID 1 in a container a signal with
// no handler is ignored, so a lost SIGTERM would leave the collector running until it is killed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('collector: SIGTERM during a slow start → clean shutdown once start returns, exit 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-sig-'));
  try {
    const kubeconfig = join(dir, 'kubeconfig.yaml');
    writeFileSync(kubeconfig, stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'dead',
      clusters: [{ name: 'dead', cluster: { server: 'http://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: {} }],
      contexts: [{ name: 'dead', context: { cluster: 'dead', user: 'u' } }],
    }));
    const cfg = join(dir, 'collector.yaml');
    writeFileSync(cfg, stringify({
      receivers: { otlp: { protocols: { grpc: { endpoint: '127.0.0.1:0' } } } },
      processors: { k8s_attributes: { kubeconfig, wait_for_metadata_timeout: '4s' } },
      exporters: { file: { path: join(dir, 'out.jsonl') } },
      service: { telemetry: { metrics: { address: '' } }, pipelines: { traces: { receivers: ['otlp'], processors: ['k8s_attributes'], exporters: ['file'] } } },
    }));
    const logFile = join(dir, 'collector.log');
    const log = openSync(logFile, 'w');
    const proc = spawn(process.execPath, ['--import', 'tsx', join(root, 'collector/bin/collector.ts'), '--config', cfg], { cwd: root, stdio: ['ignore', log, log] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    const kill = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    try {
      // the informer's first failed watch is logged from inside start(), which then waits up to 4 s
      const text = () => readFileSync(logFile, 'utf8');
      for (let i = 0; i < 300 && !/pod watch failed/.test(text()); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(text(), /pod watch failed/, `the collector is inside start(): ${text()}`);
      assert.doesNotMatch(text(), /not synced in time/, 'start() has not returned yet');
      proc.kill('SIGTERM');
      const r = await exited;
      assert.deepEqual(r, { code: 0, signal: null }, `exit: ${JSON.stringify(r)}\n${text().slice(-2000)}`);
      assert.match(text(), /not synced in time/); // start() ran to its end
      assert.match(text(), /shutting down/);
    } finally {
      clearTimeout(kill);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
