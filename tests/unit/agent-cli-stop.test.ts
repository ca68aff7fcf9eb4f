// Stopping agent commands: `agent replay` ends a paced replay when asked (Ctrl-C), reporting what
// it delivered; a stop requested while a command is still starting is not lost (untilAborted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { replayCommand } from '../../agent/src/cli/replay.ts';
import { untilAborted } from '../../agent/src/cli/command.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/tcp-proc-loopback.kscope', import.meta.url));

test('agent replay --speed recorded: an abort after the first record ends the replay early', async () => {
  const ac = new AbortController();
  const out: string[] = [];
  const io = {
    out: (line: string) => {
      out.push(line);
      if (line.startsWith('tcp #1') || line.startsWith('proc #1')) ac.abort(); // the first record was delivered
    },
    err: (line: string) => out.push(line),
  };
  const code = await replayCommand.run(['--speed', 'recorded', '--dump', '1', '--json', FIXTURE], io, ac.signal);
  assert.equal(code, 0);
  const summary = JSON.parse(out.at(-1)!) as { records: number; batches: number };
  // the fixture holds 33 records in 8 batches spread over 1.2 s; the replay stopped after the first
  assert.ok(summary.batches >= 1 && summary.batches < 8, `delivered ${summary.batches} of 8 batches`);
  assert.ok(summary.records < 33, `delivered ${summary.records} of 33 records`);
});

test('untilAborted: a signal that fired before the wait began resolves it at once', async () => {
  const ac = new AbortController();
  ac.abort();
  let done = false;
  await Promise.race([untilAborted(ac.signal).then(() => (done = true)), new Promise((r) => setImmediate(r))]);
  assert.equal(done, true);
  const later = new AbortController();
  let fired = false;
  const p = untilAborted(later.signal).then(() => (fired = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(fired, false, 'not before the abort');
  later.abort();
  await p;
  assert.equal(fired, true);
});
