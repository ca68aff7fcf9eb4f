// A probe object that cannot load no longer stops the agent: the other probe runs live, and the
// failure is still logged and exported as a kscope.bpf.load_failure log record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasBpf, requires } from '../lib/env.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import { parseAgentConfig } from '../../agent/src/config.ts';
import { Agent } from '../../agent/src/agent.ts';
import { knownProbes } from '../../agent/src/sources/probes.ts';
import { LiveSource } from '../../agent/src/sources/live.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { decodeJson } from '../../proto/src/otlp/index.ts';
import { getAttr } from '../../proto/src/model.ts';

test('the proc object failing to load leaves the tcp probe running and is reported', { timeout: 60_000 }, async (t) => {
  if (!requires(t, hasBpf() && nativeAvailable(), 'root, BPF and the native addon')) return;
  const dir = mkdtempSync(join(tmpdir(), 'ks-partial-'));
  const out = join(dir, 'out.jsonl');
  const realObject = knownProbes.proc!.object;
  knownProbes.proc!.object = join(dir, 'missing-proc.bpf.o'); // as if the object could not be opened
  const agent = new Agent({
    config: parseAgentConfig({
      probes: { tcp: true, proc: true, target_tgid: process.pid },
      enrich: { k8s: { enabled: false } },
      batch: { timeout: '100ms' },
      exporter: { type: 'file', config: { path: out } },
      server: { address: '127.0.0.1:0' },
      log: { level: 'fatal' },
    }, {}),
    registry: defaultRegistry(),
  });
  try {
    await agent.start();
    assert.equal(agent.mode, 'live', 'no fallback: the tcp probe runs');
    assert.ok(agent.source instanceof LiveSource);
    assert.deepEqual(agent.source.probes.map((p) => p.name), ['tcp']);
    assert.ok(agent.source.probes[0]!.attach.every((a) => a.ok));
    assert.equal(agent.bpfFailures.length, 1);
    assert.equal(agent.bpfFailures[0]!.program, '(proc object)');
    assert.match(agent.bpfFailures[0]!.message, /^probe proc: .*missing-proc\.bpf\.o/);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !(existsSync(out) && readFileSync(out, 'utf8').includes('kscope.bpf.load_failure'))) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const records = readFileSync(out, 'utf8').trim().split('\n').filter((l) => l.includes('resourceLogs'))
      .flatMap((l) => decodeJson('logs', l).resourceLogs.flatMap((rl) => rl.scopeLogs.flatMap((sl) => sl.logRecords)));
    const failure = records.find((r) => r.eventName === 'kscope.bpf.load_failure');
    assert.ok(failure, 'the failure left as a log record');
    assert.match(String(failure.body), /probe proc/);
    assert.equal(getAttr(failure.attributes, 'kscope.bpf.program'), '(proc object)');
  } finally {
    knownProbes.proc!.object = realObject;
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
