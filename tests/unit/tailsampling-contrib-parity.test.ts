// Decisions that must equal those of the reference tail sampling processor
// (opentelemetry-collector-contrib processor/tailsamplingprocessor), so a fleet mixing both agrees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../collector/src/processors/tail_sampling/config.ts';
import { PolicySet, probabilisticThreshold, traceIdHash, type TraceView } from '../../collector/src/processors/tail_sampling/policies.ts';
import { spanWireBytes } from '../../collector/src/processors/tail_sampling/traces.ts';
import { resourceSpans, span, tid, type SpanOpts } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';

let seq = 1;
function trace(spans: SpanOpts[], id = tid(seq++, 42)): TraceView {
  const ss = spans.map((o) => span(id, o));
  const rs = resourceSpans(ss);
  return { traceId: id, spans: ss, resources: ss.map(() => rs), spanCount: ss.length, wireBytes: ss.reduce((n, s) => n + spanWireBytes(s), 0) };
}

function set(policies: unknown[], extra: Record<string, unknown> = {}): PolicySet {
  const cfg = validateConfig({ policies, ...extra }, 'tail_sampling');
  return new PolicySet('default', cfg.policies, cfg.sampleOnFirstMatch);
}

const NOW = 1_000_000;
const health = { name: 'nohealth', type: 'string_attribute', string_attribute: { key: 'http.route', values: ['/health'], invert_match: true } };
const errors = { name: 'errors', type: 'status_code', status_code: { status_codes: ['ERROR'] } };

// ------------------------------------------------------------------ final decision (makeDecision)

test('parity: InvertSampled keeps a trace only when no policy said NotSampled', () => {
  const s = set([errors, health]);
  // OK /api: errors → NotSampled, nohealth → InvertSampled. The reference drops it.
  assert.equal(s.decide(trace([{ status: 1, attributes: { 'http.route': '/api' } }]), NOW), false);
  // ERROR /api: a plain Sampled wins over the NotSampled of nobody.
  assert.equal(s.decide(trace([{ status: 2, attributes: { 'http.route': '/api' } }]), NOW), true);
  // ERROR /health: InvertNotSampled vetoes the Sampled.
  assert.equal(s.decide(trace([{ status: 2, attributes: { 'http.route': '/health' } }]), NOW), false);
  // The invert policy's votes are still counted as its own sampled / not sampled.
  assert.deepEqual(s.counters.get('nohealth'), { sampled: 2, notSampled: 1, dropped: 0 });
  assert.equal(s.tracesSampled, 1);
  assert.equal(s.tracesNotSampled, 2);
  // Alone, or next to policies that sample, InvertSampled still keeps.
  assert.equal(set([health]).decide(trace([{ attributes: { 'http.route': '/api' } }]), NOW), true);
  assert.equal(set([health, { name: 'all', type: 'always_sample' }]).decide(trace([{ attributes: { 'http.route': '/api' } }]), NOW), true);
});

// ------------------------------------------------------------------ not (not.go)

test('parity: not flips only Sampled / NotSampled; inverted and Dropped decisions pass through', () => {
  const notInv = { name: 'not-inv', type: 'not', not: { not_sub_policy: health } };
  // /health: the sub-policy says InvertNotSampled, which stays a veto through the `not`.
  assert.equal(set([{ name: 'all', type: 'always_sample' }, notInv]).decide(trace([{ attributes: { 'http.route': '/health' } }]), NOW), false);
  // /api: InvertSampled passes through and keeps on its own.
  assert.equal(set([notInv]).decide(trace([{ attributes: { 'http.route': '/api' } }]), NOW), true);
  // A drop inside a not: Dropped passes through and wins.
  const notDrop = { name: 'not-drop', type: 'not', not: { not_sub_policy: { name: 'd', type: 'drop', drop: { drop_sub_policy: [
    { name: 'h', type: 'string_attribute', string_attribute: { key: 'http.route', values: ['/health'] } },
  ] } } } };
  const s = set([{ name: 'all', type: 'always_sample' }, notDrop]);
  assert.equal(s.decide(trace([{ attributes: { 'http.route': '/health' } }]), NOW), false);
  assert.equal(s.counters.get('not-drop')!.dropped, 1);
  assert.equal(s.decide(trace([{ attributes: { 'http.route': '/api' } }]), NOW), true);
  // Plain flips are unchanged.
  const notErr = set([{ name: 'ne', type: 'not', not: { not_sub_policy: errors } }]);
  assert.equal(notErr.decide(trace([{ status: 2 }]), NOW), false);
  assert.equal(notErr.decide(trace([{ status: 0 }]), NOW), true);
});

// ------------------------------------------------------------------ rate_limiting (rate_limiting.go)

test('parity: rate_limiting is a token bucket of 2 × spans_per_second that refills continuously', () => {
  const s = set([{ name: 'r', type: 'rate_limiting', rate_limiting: { spans_per_second: 5 } }]);
  const n = (k: number) => trace(Array.from({ length: k }, () => ({})));
  // Starts full (10 spans): a trace larger than the per-second rate still fits the burst.
  assert.equal(s.decide(n(8), 0), true);
  assert.equal(s.decide(n(2), 0), true);
  assert.equal(s.decide(n(1), 0), false, 'bucket empty');
  // Refill is continuous at 5 spans/s, not a reset at the second boundary.
  assert.equal(s.decide(n(1), 100), false, '0.5 span after 100 ms');
  assert.equal(s.decide(n(1), 200), true, '1 span after 200 ms');
  assert.equal(s.decide(n(5), 1200), true, '5 spans after another second');
  assert.equal(s.decide(n(1), 1200), false);
  // A trace larger than the bucket never passes, however long the bucket rested.
  assert.equal(s.decide(n(11), 1_000_000), false);
  assert.equal(s.decide(n(10), 1_000_000), true);
  // burst_capacity sets the bucket (the reference's option; 0 keeps the default).
  const b3 = set([{ name: 'r', type: 'rate_limiting', rate_limiting: { spans_per_second: 5, burst_capacity: 3 } }]);
  assert.equal(b3.decide(n(4), 0), false);
  assert.equal(b3.decide(n(3), 0), true);
  const b0 = set([{ name: 'r', type: 'rate_limiting', rate_limiting: { spans_per_second: 5, burst_capacity: 0 } }]);
  assert.equal(b0.decide(n(10), 0), true);
});

// ------------------------------------------------------------------ latency (latency.go)

test('parity: latency compares whole milliseconds, lower bound exclusive when upper is set', () => {
  const band = set([{ name: 'band', type: 'latency', latency: { threshold_ms: 100, upper_threshold_ms: 200 } }]);
  assert.equal(band.decide(trace([{ durMs: 100 }]), NOW), false, 'threshold < ms: 100 is out');
  assert.equal(band.decide(trace([{ durMs: 100.9 }]), NOW), false, '100.9 ms counts as 100');
  assert.equal(band.decide(trace([{ durMs: 101 }]), NOW), true);
  assert.equal(band.decide(trace([{ durMs: 200 }]), NOW), true, 'ms <= upper');
  assert.equal(band.decide(trace([{ durMs: 200.9 }]), NOW), true, '200.9 ms counts as 200');
  assert.equal(band.decide(trace([{ durMs: 201 }]), NOW), false);
  // Upper only: 0 < ms, so a sub-millisecond trace is out.
  const fast = set([{ name: 'fast', type: 'latency', latency: { upper_threshold_ms: 50 } }]);
  assert.equal(fast.decide(trace([{ durMs: 0.5 }]), NOW), false);
  assert.equal(fast.decide(trace([{ durMs: 1 }]), NOW), true);
  // Without upper: ms >= threshold (inclusive), still truncated.
  const slow = set([{ name: 'slow', type: 'latency', latency: { threshold_ms: 100 } }]);
  assert.equal(slow.decide(trace([{ durMs: 99.9 }]), NOW), false);
  assert.equal(slow.decide(trace([{ durMs: 100 }]), NOW), true);
  // Thresholds are whole milliseconds, as the reference's int64 fields.
  assert.throws(() => validateConfig({ policies: [{ name: 'l', type: 'latency', latency: { threshold_ms: 100.5 } }] }, 'ts'),
    (e: unknown) => e instanceof ConfigError && e.field === 'ts.policies[0].latency.threshold_ms');
});

// ------------------------------------------------------------------ probabilistic (probabilistic.go)

const utf8 = (s: string) => new TextEncoder().encode(s);
const fromHex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));

// Known outputs: contrib's calculateThreshold and hashTraceID copied verbatim into a Go program
// (Go 1.x stdlib hash/fnv and math/big) and run on these inputs. Each row: salt, trace id,
// hash, then the decision at 10 %, 50 % and 90 % (hash <= threshold).
const GO_ROWS: [string, string, bigint, boolean, boolean, boolean][] = [
  ['default-hash-seed', '0af7651916cd43dd8448eb211c80319c', 3728843964641534796n, false, true, true],
  ['default-hash-seed', '4bf92f3577b34da6a3ce929d0e0e4736', 11908981664384643253n, false, false, true],
  ['default-hash-seed', '5b8efff798038103d269b633813fc60c', 10804547627798090743n, false, false, true],
  ['default-hash-seed', '00000000000000000000000000000001', 16254957729900898954n, false, false, true],
  ['default-hash-seed', 'ffffffffffffffffffffffffffffffff', 1711019809656077869n, true, true, true],
  ['default-hash-seed', 'a3ce929d0e0e47364bf92f3577b34da6', 15294967425977127737n, false, false, true],
  ['default-hash-seed', '80f198ee56343ba864fe8b2a57d3eff7', 16413984665134277014n, false, false, true],
  ['default-hash-seed', '1234567890abcdef1234567890abcdef', 25955509374266117n, true, true, true],
  ['tier-b', '0af7651916cd43dd8448eb211c80319c', 8720860232628313823n, false, true, true],
  ['tier-b', '4bf92f3577b34da6a3ce929d0e0e4736', 15801062856648928150n, false, false, true],
  ['tier-b', '5b8efff798038103d269b633813fc60c', 536738261891824912n, true, true, true],
  ['tier-b', '00000000000000000000000000000001', 11487103952758256957n, false, false, true],
  ['tier-b', 'ffffffffffffffffffffffffffffffff', 17941598942604875130n, false, false, false],
  ['tier-b', 'a3ce929d0e0e47364bf92f3577b34da6', 18088664391537096370n, false, false, false],
  ['tier-b', '80f198ee56343ba864fe8b2a57d3eff7', 1173936486162952261n, true, true, true],
  ['tier-b', '1234567890abcdef1234567890abcdef', 9037325600750360178n, false, true, true],
];

// calculateThreshold(pct / 100) from the same Go program.
const GO_THRESHOLDS: [number, bigint][] = [
  [0, 0n], [0.1, 18446744073709551n], [1, 184467440737095519n], [10, 1844674407370955263n],
  [12.5, 2305843009213693951n], [25, 4611686018427387903n], [33, 6087425544324152319n],
  [50, 9223372036854775807n], [66.6, 12285531553090559999n], [99.9, 18428297329635844095n],
  [100, 18446744073709551615n],
];

/** FNV-1a 64 written from its definition, independent of the production 32-bit-halves code. */
function refFnv64(...parts: Uint8Array[]): bigint {
  let h = 0xcbf29ce484222325n;
  for (const p of parts) for (const b of p) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h;
}

test('parity: probabilistic hash is contrib\'s FNV-1a 64 over salt then trace id', () => {
  // Published FNV-1a 64 test vectors ("a", "foobar" split as salt + id).
  assert.equal(traceIdHash(utf8(''), utf8('a')), 0xaf63dc4c8601ec8cn);
  assert.equal(traceIdHash(utf8('foo'), utf8('bar')), 0x85944171f73967e8n);
  for (const [salt, id, hash] of GO_ROWS) assert.equal(traceIdHash(utf8(salt), fromHex(id)), hash, `${salt} ${id}`);
  // Many ids and a non-ASCII salt (hashed as UTF-8, as Go's []byte(string)) against the reference.
  for (let i = 0; i < 2000; i++) {
    const id = tid(i * 7919, i);
    for (const salt of ['default-hash-seed', 'tenant-é']) assert.equal(traceIdHash(utf8(salt), id), refFnv64(utf8(salt), id));
  }
});

test('parity: probabilistic threshold is contrib\'s calculateThreshold', () => {
  for (const [pct, th] of GO_THRESHOLDS) assert.equal(probabilisticThreshold(pct), th, `${pct}%`);
});

test('parity: probabilistic decisions equal contrib\'s for the same trace id, salt and percentage', () => {
  const pcts = [10, 50, 90];
  for (let k = 0; k < pcts.length; k++) {
    const mk = (salt?: string) => set([{ name: 'p', type: 'probabilistic', probabilistic: { sampling_percentage: pcts[k], ...(salt === undefined ? {} : { hash_salt: salt }) } }]);
    // An absent or empty hash_salt is the reference's "default-hash-seed".
    const byDefault = mk(), byEmpty = mk(''), bySalt = mk('tier-b');
    for (const row of GO_ROWS) {
      const [salt, id] = row, want = row[3 + k];
      const t = trace([{}], fromHex(id));
      if (salt === 'default-hash-seed') {
        assert.equal(byDefault.decide(t, NOW), want, `default salt ${id} ${pcts[k]}%`);
        assert.equal(byEmpty.decide(t, NOW), want, `empty salt ${id} ${pcts[k]}%`);
      } else assert.equal(bySalt.decide(t, NOW), want, `${salt} ${id} ${pcts[k]}%`);
    }
  }
});
