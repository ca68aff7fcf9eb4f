import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ExpHistogram, bucketIndex } from '../../agent/src/signals/exphist.ts';

test('exact powers of two sit at the top of their bucket', () => {
  assert.equal(bucketIndex(1, 0), -1);
  assert.equal(bucketIndex(2, 0), 0);
  assert.equal(bucketIndex(4, 0), 1);
  assert.equal(bucketIndex(3, 0), 1);
  assert.equal(bucketIndex(4, 1), 3); // base √2: (2^1.5, 4] is index 3
  assert.equal(bucketIndex(8, -1), 1); // base 4: 8 is in (4, 16]
  assert.equal(bucketIndex(16, -1), 1); // upper bound inclusive
  assert.equal(bucketIndex(17, -1), 2);
});

test('every recorded value lies inside its bucket bounds; count, sum, min, max exact', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: 1e-9, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 500 }), (values) => {
      const h = new ExpHistogram(160);
      for (const v of values) h.record(v);
      const dp = h.toDataPoint([], 0n, 1n);
      assert.equal(dp.count, BigInt(values.length));
      assert.equal(dp.positive.bucketCounts.reduce((a, b) => a + b, 0n) + dp.zeroCount, BigInt(values.length));
      assert.ok(dp.positive.bucketCounts.length <= 160);
      assert.equal(dp.min, Math.min(...values));
      assert.equal(dp.max, Math.max(...values));
      const sum = values.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs((dp.sum ?? 0) - sum) <= 1e-9 * Math.max(1, sum));
      // Each value's bucket at the final scale must have a non-zero count and contain the value.
      const base = 2 ** (2 ** -dp.scale);
      for (const v of values) {
        const i = bucketIndex(v, dp.scale);
        const rel = i - dp.positive.offset;
        assert.ok(rel >= 0 && rel < dp.positive.bucketCounts.length, `index ${i} outside range`);
        assert.ok(dp.positive.bucketCounts[rel] > 0n);
        const lo = base ** i;
        const hi = base ** (i + 1);
        assert.ok(v > lo * (1 - 1e-9) && v <= hi * (1 + 1e-9), `${v} not in (${lo}, ${hi}] at scale ${dp.scale}`);
      }
    }),
    { numRuns: 200, seed: 42 },
  );
});

test('a wide range downscales to fit max size', () => {
  const h = new ExpHistogram(160);
  h.record(1e-6);
  h.record(1e3);
  const dp = h.toDataPoint([], 0n, 1n);
  assert.ok(dp.scale < 20);
  assert.ok(dp.positive.bucketCounts.length <= 160);
  assert.equal(dp.count, 2n);
});
