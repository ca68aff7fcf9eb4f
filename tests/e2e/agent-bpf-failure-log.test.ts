// An agent that cannot load its BPF programs (here: run as an unprivileged user) reports the
// failure as an OTel log record carrying libbpf's / the verifier's log tail, then falls back to
// replaying its configured fixture, said loudly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires, isRoot } from '../lib/env.ts';
import { decodeJson } from '../../proto/src/otlp/index.ts';
import { getAttr } from '../../proto/src/model.ts';

const root = new URL('../../', import.meta.url).pathname;

test('BPF load failure → log record with the verifier/libbpf log tail, and a loud fallback to replay', async (t) => {
  if (!requires(t, isRoot(), 'root (to run the agent as an unprivileged user)')) return;
  const dir = mkdtempSync(join(tmpdir(), 'ks-bpf-fail-'));
  chmodSync(dir, 0o777);
  try {
    const out = join(dir, 'out.jsonl');
    const cfg = join(dir, 'agent.yaml');
    writeFileSync(cfg, `probes:\n  fallback_fixture: ${join(root, 'tests/fixtures/tcp-proc-loopback.kscope')}\nbatch: { timeout: 200ms }\nexporter:\n  type: file\n  config: { path: ${out} }\nserver: { address: 127.0.0.1:0 }\n`);
    chmodSync(cfg, 0o644);
    const child = spawn(process.execPath, ['--import', 'tsx', 'agent/bin/agent.ts', 'run', '--config', cfg, '--speed', 'max'], {
      cwd: root, uid: 65534, gid: 65534, env: { ...process.env, HOME: dir, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !(existsSync(out) && readFileSync(out, 'utf8').includes('kscope.bpf.load_failure'))) await new Promise((r) => setTimeout(r, 250));
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    assert.match(stderr, /REPLAY/, 'the fallback is said loudly');
    const records = readFileSync(out, 'utf8').trim().split('\n').filter((l) => l.includes('resourceLogs'))
      .flatMap((l) => decodeJson('logs', l).resourceLogs.flatMap((rl) => rl.scopeLogs.flatMap((sl) => sl.logRecords.map((r) => ({ r, res: rl.resource })))));
    const failure = records.find(({ r }) => r.eventName === 'kscope.bpf.load_failure');
    assert.ok(failure, `a load-failure log record was exported (stderr: ${stderr.slice(-500)})`);
    assert.match(String(failure.r.body), /Operation not permitted/);
    assert.match(String(getAttr(failure.r.attributes, 'kscope.bpf.verifier_log')), /libbpf/);
    assert.equal(getAttr(failure.res.attributes, 'service.name'), 'kscope-agent');
    assert.equal(failure.r.severityText, 'ERROR');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
