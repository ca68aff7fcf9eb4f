// Consistent hash ring: determinism, spread, minimal movement on membership change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashRing } from '../../collector/src/exporters/loadbalancing/ring.ts';
import { tid } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';

const KEYS = 60_000;
const keys = Array.from({ length: KEYS }, (_, i) => tid(i, 0xabc));
const members = (n: number) => Array.from({ length: n }, (_, i) => `10.0.0.${i + 1}:4317`);

function assign(r: HashRing): string[] {
  return keys.map((k) => r.locateBytes(k)!);
}

test('same members in any order build the same ring', () => {
  const a = new HashRing(members(5));
  const b = new HashRing([...members(5)].reverse().concat(members(2)));
  for (let i = 0; i < 2000; i++) assert.equal(a.locateBytes(keys[i]), b.locateBytes(keys[i]));
  assert.deepEqual(b.members, members(5).sort());
});

test('an empty ring locates nothing', () => {
  assert.equal(new HashRing([]).locateBytes(keys[0]), undefined);
});

test('keys spread roughly evenly across members', () => {
  for (const n of [3, 5, 10]) {
    const counts = new Map<string, number>();
    for (const m of assign(new HashRing(members(n)))) counts.set(m, (counts.get(m) ?? 0) + 1);
    assert.equal(counts.size, n);
    const mean = KEYS / n;
    for (const [m, c] of counts) assert.ok(Math.abs(c - mean) / mean < 0.2, `${n} members: ${m} has ${c}, mean ${mean}`);
    const sd = Math.sqrt([...counts.values()].reduce((s, c) => s + (c - mean) ** 2, 0) / n) / mean;
    assert.ok(sd < 0.1, `${n} members: relative std dev ${sd.toFixed(3)}`);
  }
});

test('adding the Nth member moves about 1/N of the keys, all to the new member', () => {
  for (let n = 2; n <= 10; n++) {
    const before = assign(new HashRing(members(n - 1)));
    const after = assign(new HashRing(members(n)));
    const newcomer = members(n)[n - 1];
    let moved = 0;
    for (let i = 0; i < KEYS; i++) {
      if (before[i] !== after[i]) {
        moved++;
        assert.equal(after[i], newcomer, 'a key only ever moves to the new member');
      }
    }
    const frac = moved / KEYS;
    assert.ok(Math.abs(frac - 1 / n) < 0.35 / n, `n=${n}: moved ${(frac * 100).toFixed(1)}%, ideal ${(100 / n).toFixed(1)}%`);
  }
});

test('removing a member moves only its keys', () => {
  const all = members(6);
  const before = assign(new HashRing(all));
  const gone = all[2];
  const after = assign(new HashRing(all.filter((m) => m !== gone)));
  for (let i = 0; i < KEYS; i++) {
    if (before[i] === gone) assert.notEqual(after[i], gone);
    else assert.equal(after[i], before[i]);
  }
});
