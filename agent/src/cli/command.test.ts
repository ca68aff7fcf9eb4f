import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScalar, parseSets, UsageError, type Command } from './command.ts';
import { main, topUsage } from './index.ts';

test('parseScalar reads integers, hex, negatives and booleans; refuses the rest', () => {
  assert.equal(parseScalar('42'), 42n);
  assert.equal(parseScalar('-3'), -3n);
  assert.equal(parseScalar('0x1F'), 31n);
  assert.equal(parseScalar('true'), true);
  assert.equal(parseScalar('false'), false);
  assert.throws(() => parseScalar('1.5'), UsageError);
  assert.throws(() => parseScalar('abc'), UsageError);
});

test('parseSets groups --set values by probe', () => {
  assert.deepEqual(parseSets(['tcp.target_tgid=7', 'tcp.ignore_loopback=true', 'proc.target_cgroup_id=0x10']),
    { tcp: { target_tgid: 7n, ignore_loopback: true }, proc: { target_cgroup_id: 16n } });
  assert.throws(() => parseSets(['nodot=1']), /probe.global=value/);
});

test('dispatcher: help, unknown commands, usage errors and failures map to exit codes', async () => {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(`E ${l}`) };
  const fake: Command = {
    name: 'fake', summary: 'a test command', usage: 'Usage: agent fake',
    async run(argv) {
      if (argv[0] === 'usage') throw new UsageError('bad flag');
      if (argv[0] === 'fail') throw new Error('went wrong');
      return 0;
    },
  };
  assert.equal(await main(['--help'], io, [fake]), 0);
  assert.equal(lines.join('\n'), topUsage([fake]));
  lines.length = 0;
  assert.equal(await main([], io, [fake]), 2, 'no command is a usage error');
  assert.equal(await main(['nope'], io, [fake]), 2);
  assert.match(lines.join('\n'), /unknown command 'nope'/);
  lines.length = 0;
  assert.equal(await main(['fake', 'usage'], io, [fake]), 2);
  assert.match(lines.join('\n'), /E agent fake: bad flag\n\nUsage: agent fake/);
  lines.length = 0;
  assert.equal(await main(['fake', 'fail'], io, [fake]), 1);
  assert.deepEqual(lines, ['E agent fake: went wrong']);
  assert.equal(await main(['fake'], io, [fake]), 0);
});

test('the real commands reject unknown options with their usage', async () => {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  assert.equal(await main(['replay', '--bogus'], io), 2);
  assert.match(lines.join('\n'), /Usage: agent replay/);
  lines.length = 0;
  assert.equal(await main(['record', '--out', '/tmp/x', '--duration', '1', '--probe', 'nosuch'], io), 2);
  assert.match(lines.join('\n'), /unknown probe 'nosuch'/);
  lines.length = 0;
  assert.equal(await main(['replay', 'a', '--speed', 'warp'], io), 2);
  assert.match(lines.join('\n'), /--speed must be max or recorded/);
});
