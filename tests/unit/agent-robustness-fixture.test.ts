// Corrupt or foreign fixtures fail with a FixtureFormatError naming the problem (never a
// TypeError, a stalled paced replay or a silent exit 0); CLI durations and env overrides are
// validated; the exporter helper logs what it gives up on at shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FixtureFormatError, FixtureReader } from '../../agent/src/sources/fixture.ts';
import { ReplaySource } from '../../agent/src/sources/replay.ts';
import { replayCommand } from '../../agent/src/cli/replay.ts';
import { runCommand } from '../../agent/src/cli/run.ts';
import { upCommand } from '../../agent/src/cli/up.ts';
import { recordCommand } from '../../agent/src/cli/record.ts';
import { UsageError, type CliIO } from '../../agent/src/cli/command.ts';
import { parseAgentConfig } from '../../agent/src/config.ts';
import { QueuedExporter, defaultExporterHelperConfig } from '../../collector/src/exporterhelper/index.ts';
import { RetryableError } from '../../collector/src/component/errors.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import { makeTraces } from '../../collector/src/testing/fixtures.ts';

const FIXTURE = new URL('../fixtures/tcp-proc-loopback.kscope', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kscope-robust-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

interface Parsed { header: Record<string, any>; frames: Buffer }
function parse(buf = readFileSync(FIXTURE)): Parsed {
  const hlen = buf.readUInt32LE(12);
  return { header: JSON.parse(buf.toString('utf8', 16, 16 + hlen)), frames: Buffer.from(buf.subarray(16 + hlen)) };
}
function build(p: Parsed, name: string): string {
  const json = Buffer.from(JSON.stringify(p.header));
  const padded = Buffer.alloc((json.length + 7) & ~7, 0x20);
  json.copy(padded);
  const pre = readFileSync(FIXTURE).subarray(0, 16);
  const out = Buffer.concat([pre, padded, p.frames]);
  out.writeUInt32LE(padded.length, 12);
  const path = join(dir, name);
  writeFileSync(path, out);
  return path;
}
/** A fixture with its header edited. */
function withHeader(name: string, edit: (h: Record<string, any>) => void): string {
  const p = parse();
  edit(p.header);
  return build(p, name);
}
function capture(): CliIO & { outs: string[]; errs: string[] } {
  const outs: string[] = [];
  const errs: string[] = [];
  return { outs, errs, out: (l) => outs.push(l), err: (l) => errs.push(l) };
}
const rejectsFormat = (path: string, re: RegExp) =>
  assert.throws(() => new FixtureReader(path), (e: unknown) => e instanceof FixtureFormatError && re.test(e.message), `expected FixtureFormatError ${re}`);

test('header: another version is refused, naming it', () => {
  rejectsFormat(withHeader('ver2.kscope', (h) => { h.version = 2; }), /header version is 2/);
});

test('header: a probe layout other than the decoder\'s is refused, naming the difference', () => {
  const path = withHeader('layout.kscope', (h) => { for (const p of h.probes) { p.layout.size = 64; p.layout.typeOffset = 40; } });
  rejectsFormat(path, /probes\[0\] \(tcp\) layout differs.*size 64 \(expected 48\).*typeOffset 40 \(expected 28\)/);
});

test('header: fields of the wrong shape are named (no "Cannot convert", no TypeError)', () => {
  rejectsFormat(withHeader('start.kscope', (h) => { h.startMonotonicNs = 'abc'; }), /startMonotonicNs must be a decimal string/);
  rejectsFormat(withHeader('noproc.kscope', (h) => { delete h.processes; }), /header processes must be a list/);
  rejectsFormat(withHeader('cgnull.kscope', (h) => { h.cgroups = null; }), /header cgroups must be a list/);
  rejectsFormat(withHeader('badlayout.kscope', (h) => { h.probes[1].layout = { pidOffset: 'x' }; }), /probes\[1\]\.layout must have a struct name/);
});

test('end frame: a record count different from the frames\' is refused', () => {
  const p = parse();
  // the end frame is the last 24 bytes: its count is at +8
  p.frames.writeUInt32LE(p.frames.readUInt32LE(p.frames.length - 24 + 8) + 1, p.frames.length - 24 + 8);
  const r = new FixtureReader(build(p, 'endcount.kscope'));
  try {
    assert.throws(() => { while (r.next()); }, /end frame says 34 records, the frames hold 33/);
  } finally {
    r.close();
  }
});

test('paced replay: a frame time outside the recording fails at once instead of waiting for it', async () => {
  const p = parse();
  // the first frame's time (at +16) one hour ahead
  p.frames.writeBigUInt64LE(p.frames.readBigUInt64LE(16) + 3_600_000_000_000n, 16);
  const src = new ReplaySource(build(p, 'future.kscope'), { speed: 'recorded' });
  const t0 = Date.now();
  const done = src.start(() => undefined);
  const guard = setTimeout(() => void src.stop(), 10_000);
  try {
    await assert.rejects(done, (e: unknown) => e instanceof FixtureFormatError && /frame at offset \d+ has time \d+, outside the recording/.test(e.message));
    assert.ok(Date.now() - t0 < 5000, 'failed at once');
  } finally {
    clearTimeout(guard);
  }
});

test('agent replay: a record length past its batch is reported and exits non-zero', async () => {
  const p = parse();
  // the first frame's first record length (24 B frame header, then [u32 length])
  p.frames.writeUInt32LE(0xfffffff0, 24);
  const path = build(p, 'hugereclen.kscope');
  for (const args of [['--summary'], ['--summary', '--dump', '3'], []]) {
    const io = capture();
    const code = await replayCommand.run([...args, path], io, new AbortController().signal);
    assert.equal(code, 1, `${args.join(' ')}: ${io.errs.join('\n')}`);
    assert.match(io.errs.join('\n'), /is corrupt: 1 bad records.*\n.*length 4294967280, past the batch/);
  }
  // the intact fixture still exits 0
  const io = capture();
  assert.equal(await replayCommand.run(['--summary', FIXTURE], io, new AbortController().signal), 0);
});

async function usageError(p: Promise<number>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof UsageError && re.test(e.message), `expected UsageError ${re}`);
}

test('run --speed fast is a usage error', async () => {
  await usageError(runCommand.run(['--replay', FIXTURE, '--speed', 'fast'], capture(), new AbortController().signal), /--speed must be max or recorded/);
});

// (on the old code `up --duration abc` ran forever: hence the timeout)
test('up/record --duration: not a number, not positive, or past the timer limit is a usage error', { timeout: 30_000 }, async () => {
  const out = join(dir, 'up-out');
  for (const d of ['3000000', 'abc', '0', '-1']) {
    await usageError(recordCommand.run(['--out', join(dir, 'r.kscope'), `--duration=${d}`], capture(), new AbortController().signal), /--duration must be a positive number of seconds, at most/);
    await usageError(upCommand.run([`--duration=${d}`, '--out', out], capture(), new AbortController().signal), /--duration must be a positive number of seconds, at most/);
  }
});

test('a KSCOPE_CFG__ override that is not YAML names the variable', () => {
  assert.throws(() => parseAgentConfig({}, { KSCOPE_CFG__BATCH__TIMEOUT: '{a: [' }), /batch\.timeout: KSCOPE_CFG__BATCH__TIMEOUT: not a valid YAML value/);
});

test('exporter helper: sends given up at shutdown are logged once, with the item count', async () => {
  const warns: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  const logger: any = {
    warn: (obj: Record<string, unknown>, msg: string) => warns.push({ obj, msg }),
    error() {}, info() {}, debug() {}, trace() {},
    child() { return logger; },
  };
  const c = defaultExporterHelperConfig();
  c.timeoutMs = 200;
  c.retry = { enabled: true, initialIntervalMs: 5, maxIntervalMs: 20, multiplier: 2, randomizationFactor: 0, maxElapsedMs: 60_000 };
  c.queue.numConsumers = 2;
  c.queue.drainTimeoutMs = 50;
  const ex = new QueuedExporter({ id: 'test', logger, telemetry: new SelfTelemetry(new MetricsRegistry()) }, c, 'traces', async () => { throw new RetryableError('down'); });
  await ex.start({ reportFatal() {} });
  await ex.consume(makeTraces(3), {});
  await ex.consume(makeTraces(4), {});
  await new Promise((r) => setTimeout(r, 30)); // both batches are being retried
  await ex.shutdown();
  const given = warns.filter((w) => /in-flight data dropped/.test(w.msg));
  assert.equal(given.length, 1, JSON.stringify(warns));
  assert.equal(given[0]!.obj.items, 7);
  assert.equal(given[0]!.obj.batches, 2);
});
