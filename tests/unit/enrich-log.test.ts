import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { RateLimitedLog, createLogger } from '../../lib/log.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const dest = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { logger: pino({ level: 'info' }, dest), lines };
}

test('RateLimitedLog: one line per key per interval, then reports how many were suppressed', () => {
  const { logger, lines } = capture();
  let t = 0;
  const rl = new RateLimitedLog(logger, 1000, 1, 10, () => t);
  assert.equal(rl.warn('k', { a: 1 }, 'api down'), true);
  for (let i = 0; i < 50; i++) assert.equal(rl.warn('k', { a: 1 }, 'api down'), false);
  assert.equal(rl.warn('other', {}, 'different key'), true);
  t = 1000;
  assert.equal(rl.warn('k', { a: 2 }, 'api down'), true);
  assert.equal(lines.length, 3);
  assert.equal(lines[0]!.msg, 'api down');
  assert.equal(lines[0]!.level, 40);
  assert.equal(lines[2]!.suppressed, 50);
  assert.equal(lines[2]!.a, 2);
});

test('RateLimitedLog: keys are bounded', () => {
  const { logger } = capture();
  const rl = new RateLimitedLog(logger, 1000, 1, 2, () => 0);
  rl.warn('a', {}, 'x');
  rl.warn('b', {}, 'x');
  rl.warn('c', {}, 'x'); // evicts 'a'
  assert.equal(rl.warn('a', {}, 'x'), true, 'forgotten key logs again');
  assert.equal(rl.warn('c', {}, 'x'), false);
});

test('createLogger binds the component name', () => {
  const l = createLogger({ name: 'enrich', level: 'warn' });
  assert.equal(l.level, 'warn');
  assert.deepEqual(l.bindings().component, 'enrich');
});
