// `agent run` failure paths end the process with a short message and a non-zero code, never a
// stack trace, a hang or a half-started agent: a fixture corrupt partway, a start failure after
// the HTTP server is up; a second SIGTERM exits at once and says it did not flush.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { freePort } from '../../agent/src/cli/up.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../lib/wait.ts';

const root = new URL('../../', import.meta.url).pathname;
const FIXTURE = join(root, 'tests/fixtures/tcp-proc-loopback.kscope');
const dir = mkdtempSync(join(tmpdir(), 'kscope-robust-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function agent(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'agent/bin/agent.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } });
  const r = { child, output: '', exited: undefined as unknown as Promise<number | null> };
  child.stdout.on('data', (b: Buffer) => (r.output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (r.output += b.toString()));
  r.exited = new Promise((res) => child.once('exit', (code) => res(code)));
  return r;
}

/** The exit code, or 'still running' after `ms` (then the child is killed). */
async function exitWithin(r: ReturnType<typeof agent>, ms: number): Promise<number | null | 'still running'> {
  let t: NodeJS.Timeout | undefined;
  const res = await Promise.race([r.exited, new Promise<'still running'>((ok) => (t = setTimeout(() => ok('still running'), ms)))]);
  clearTimeout(t);
  if (res === 'still running') r.child.kill('SIGKILL');
  return res;
}

function config(name: string, yaml: string): string {
  const path = join(dir, name);
  writeFileSync(path, yaml);
  return path;
}

test('run --replay of a fixture truncated partway: exits non-zero, names the problem, no stack trace', { timeout: 60_000 }, async () => {
  const whole = readFileSync(FIXTURE);
  const half = join(dir, 'half.kscope');
  writeFileSync(half, whole.subarray(0, whole.length >> 1));
  const cfg = config('nop.yaml', 'exporter: { type: none }\nserver: { address: "127.0.0.1:0" }\n');
  for (const extra of [['--exit-when-done'], []]) {
    const r = agent(['run', '--config', cfg, '--replay', half, '--speed', 'max', ...extra]);
    const code = await exitWithin(r, 20_000);
    assert.notEqual(code, 'still running', `${extra}: still running 20 s later:\n${r.output.slice(-1500)}`);
    assert.notEqual(code, 0, r.output.slice(-1500));
    assert.match(r.output, /agent run: .*half\.kscope: truncated/);
    assert.doesNotMatch(r.output, /\n\s+at /, 'no stack trace');
    assert.match(r.output, /agent stopped/, 'stopped cleanly (flushed)');
  }
});

test('run: a start failure after the HTTP server is up stops the agent and exits non-zero', { timeout: 60_000 }, async () => {
  // the file exporter's directory is under a regular file: it fails when the pipeline starts
  const cfg = config('badfile.yaml', `exporter:\n  type: file\n  config: { path: /etc/hostname/sub/x.jsonl }\nserver: { address: "127.0.0.1:${await freePort()}" }\n`);
  const r = agent(['run', '--config', cfg, '--replay', FIXTURE, '--speed', 'max']);
  const code = await exitWithin(r, 20_000);
  assert.notEqual(code, 'still running', `still running 20 s later (zombie agent):\n${r.output.slice(-1500)}`);
  assert.equal(code, 1, r.output.slice(-1500));
  assert.match(r.output, /agent run: .*(ENOTDIR|not a directory)/);
});

test('run: /readyz says stopping during shutdown; a second SIGTERM exits at once with 143, saying so', { timeout: 60_000 }, async () => {
  const port = await freePort();
  // an unreachable collector with retries: the flush at stop takes long
  const cfg = config('unreach.yaml', `exporter:\n  type: otlp\n  config: { endpoint: "127.0.0.1:1", tls: { insecure: true }, timeout: 30s, sending_queue: { drain_timeout: 30s } }\nserver: { address: "127.0.0.1:${port}" }\nbatch: { timeout: 200ms }\n`);
  const r = agent(['run', '--config', cfg, '--replay', FIXTURE, '--speed', 'max']);
  try {
    await until(() => /agent running/.test(r.output), 'agent running', 30_000, 100);
    await new Promise((res) => setTimeout(res, 1000)); // batches reach the exporter
    r.child.kill('SIGTERM');
    let body = '';
    for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((res) => setTimeout(res, 50))) {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      body = res ? await res.text() : '';
      if (res?.status === 503) break;
    }
    assert.equal(body, 'stopping\n');
    assert.doesNotMatch(r.output, /agent stopped/, 'still flushing: the second signal is what this test is about');
    const t0 = Date.now();
    r.child.kill('SIGTERM');
    const code = await exitWithin(r, 10_000);
    assert.notEqual(code, 'still running', r.output.slice(-1500));
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(code, 143, r.output.slice(-1500));
    assert.match(r.output, /second signal: exiting without flushing/);
  } finally {
    r.child.kill('SIGKILL');
  }
});
