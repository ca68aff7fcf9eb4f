import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessCache, parseProcStat } from '../../agent/src/enrich/process-cache.ts';

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** A fake host /proc (kind mounts the host's at /procHost): only the files the cache reads. */
function fakeProc(entries: Array<{ pid: number; comm: string; ppid: number; exe?: string; argv?: string[] }>): string {
  const root = mkdtempSync(join(tmpdir(), 'procHost-'));
  dirs.push(root);
  for (const e of entries) {
    const d = join(root, String(e.pid));
    mkdirSync(d);
    writeFileSync(join(d, 'stat'), `${e.pid} (${e.comm}) S ${e.ppid} 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 123456 0 0\n`);
    if (e.exe) symlinkSync(e.exe, join(d, 'exe'));
    writeFileSync(join(d, 'cmdline'), e.argv ? e.argv.join('\0') + '\0' : '');
  }
  return root;
}

test('parseProcStat: comm with spaces and parentheses', () => {
  assert.deepEqual(parseProcStat('42 (my (odd) name) S 7 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0'), { comm: 'my (odd) name', ppid: 7, startTicks: 999 });
  assert.equal(parseProcStat('garbage'), undefined);
});

test('reads a process from the configured /proc root on a miss, then serves it from cache', () => {
  const root = fakeProc([{ pid: 100, comm: 'nginx', ppid: 1, exe: '/usr/sbin/nginx', argv: ['nginx: worker', '-g', 'daemon off;'] }]);
  const c = new ProcessCache({ procRoot: root, maxEntries: 10, exitTtlMs: 1000, maxCmdlineBytes: 4096 });
  const p = c.get(100)!;
  assert.equal(p.comm, 'nginx');
  assert.equal(p.ppid, 1);
  assert.equal(p.exe, '/usr/sbin/nginx');
  assert.equal(p.exeName, 'nginx');
  assert.equal(p.cmdline, 'nginx: worker -g daemon off;');
  assert.equal(p.startTicks, 123456);
  assert.equal(c.get(100), p);
  assert.equal(c.counters.procReads, 1);
  assert.equal(c.get(999), undefined, 'absent pid');
});

test('exec events fill what /proc cannot give (process already gone); exit keeps it for the TTL', () => {
  const root = fakeProc([]);
  let t = 1000;
  const c = new ProcessCache({ procRoot: root, maxEntries: 10, exitTtlMs: 500, maxCmdlineBytes: 8 }, () => t);
  const forgotten: number[] = [];
  c.onForget((pid) => forgotten.push(pid));
  const p = c.onExec(7, { ppid: 3, comm: 'curl', filename: '/usr/bin/curl', argv: ['curl', '-s', 'http://example'] });
  assert.equal(p.exeName, 'curl');
  assert.equal(p.cmdline, 'curl -s ', 'cut at maxCmdlineBytes (8)');
  assert.equal(p.generation, 1);
  assert.equal(c.onExec(7, { filename: '/bin/sh' }).generation, 2, 'a re-exec bumps the generation');
  assert.deepEqual(forgotten, [7], 'the old image is forgotten');
  c.onExit(7);
  t += 499;
  c.sweep();
  assert.ok(c.peek(7), 'still there within the TTL');
  t += 1;
  assert.equal(c.sweep(), 1);
  assert.equal(c.peek(7), undefined);
});

test('bounded: the oldest entries are evicted', () => {
  const root = fakeProc([]);
  const c = new ProcessCache({ procRoot: root, maxEntries: 3, exitTtlMs: 500, maxCmdlineBytes: 64 });
  for (let pid = 1; pid <= 5; pid++) c.onExec(pid, { comm: `p${pid}` });
  assert.equal(c.size, 3);
  assert.equal(c.peek(1), undefined);
  assert.equal(c.peek(5)?.comm, 'p5');
  assert.equal(c.counters.evicted, 2);
});

test('the real /proc: this process', () => {
  const c = new ProcessCache();
  const me = c.get(process.pid)!;
  assert.equal(me.exeName, 'node');
  assert.equal(me.ppid, process.ppid);
  assert.ok(me.cmdline.length > 0);
});
