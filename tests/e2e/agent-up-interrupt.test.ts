// Ctrl-C on `agent up --duration N` (SIGINT to its process group, as a terminal sends it): the
// agent flushes, the collector stops after it, and the process exits at once, not when the
// duration would have ended; the output files are written and no collector is left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../lib/wait.ts';

const root = new URL('../../', import.meta.url).pathname;

test('Ctrl-C on agent up --duration 120 ends it within seconds, files written, collector stopped', { timeout: 90_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'kscope-up-int-'));
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'agent/bin/agent.ts'), 'up', '--replay', '--no-workload', '--duration', '120', '--out', out], {
    cwd: root,
    detached: true, // its own process group, like a shell job
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await until(() => /[1-9]\d* spans received by the collector/.test(output), 'spans at the collector', 45_000, 200);
    const t0 = Date.now();
    process.kill(-child.pid!, 'SIGINT');
    const code = await Promise.race([exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 20_000))]);
    assert.notEqual(code, 'still running', `agent up still running 20 s after Ctrl-C:\n${output.slice(-1500)}`);
    assert.equal(code, 0, output.slice(-1500));
    assert.ok(Date.now() - t0 < 20_000);
    assert.ok(existsSync(join(out, 'traces.jsonl')) && readFileSync(join(out, 'traces.jsonl'), 'utf8').length > 0, 'traces written');
    let groupAlive = true;
    try {
      process.kill(-child.pid!, 0);
    } catch {
      groupAlive = false;
    }
    assert.equal(groupAlive, false, 'nothing of the process group (the collector) is left');
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    rmSync(out, { recursive: true, force: true });
  }
});
