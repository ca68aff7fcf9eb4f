// The agent's CLOCK_MONOTONIC → Unix ns offset: compared with CLOCK_REALTIME − CLOCK_MONOTONIC
// read back to back in C (clockPair), it must be off by well under 100 µs (Date.now() made it up
// to 1 ms early), and it follows wall-clock steps within a second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requires } from '../lib/env.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import { clockPair } from '../../agent/src/bpf/object.ts';
import { nativeClockOffset, fallbackClockOffset } from '../../agent/src/bpf/clock.ts';
import { monotonicToUnixOffset, UnixClock } from '../../agent/src/agent.ts';

const US = 1000n;
const abs = (v: bigint) => (v < 0n ? -v : v);

function spin(ns: bigint): void {
  const until = process.hrtime.bigint() + ns;
  while (process.hrtime.bigint() < until) { /* wait */ }
}

function truth(): bigint {
  const { monotonicNs, realtimeNs } = clockPair();
  return realtimeNs - monotonicNs;
}

for (const [name, fn] of [['monotonicToUnixOffset', monotonicToUnixOffset], ['nativeClockOffset', nativeClockOffset],
  ['fallbackClockOffset (no addon)', fallbackClockOffset]] as const) {
  test(`${name} is within 100 µs of clock_gettime pairs`, (t) => {
    if (!requires(t, nativeAvailable(), 'the native addon (the reference clock pair)')) return;
    // samples 150 µs apart cover every phase of a millisecond (Date.now()'s truncation shows)
    for (let i = 0; i < 20; i++) {
      spin(150_000n);
      const err = fn() - truth();
      assert.ok(abs(err) < 100n * US, `sample ${i}: off by ${Number(err) / 1000} µs`);
    }
  });
}

test('UnixClock converts with the offset and re-reads it after a second of monotonic time', () => {
  let mono = 10_000_000_000n;
  let offset = 1_700_000_000_000_000_000n;
  let reads = 0;
  const c = new UnixClock(() => { reads++; return offset; }, 1_000_000_000n, () => mono);
  assert.equal(reads, 1);
  assert.equal(c.toUnixNano(mono + 5n), mono + 5n + offset);
  assert.equal(c.now(), mono + offset);
  offset += 2_000_000_000n; // the wall clock was stepped 2 s forward
  mono += 500_000_000n;
  assert.equal(c.now(), mono + offset - 2_000_000_000n, 'not re-read within the second');
  assert.equal(reads, 1);
  mono += 600_000_000n;
  assert.equal(c.now(), mono + offset, 're-read once a second passed');
  assert.equal(reads, 2);
  // event timestamps drive the refresh too, without reading the monotonic clock
  offset += 1n;
  assert.equal(c.toUnixNano(mono + 1_000_000_000n), mono + 1_000_000_000n + offset);
  assert.equal(reads, 3);
  // old events (before the last read) never trigger a read
  assert.equal(c.toUnixNano(mono - 5_000_000_000n), mono - 5_000_000_000n + offset);
  assert.equal(reads, 3);
});
