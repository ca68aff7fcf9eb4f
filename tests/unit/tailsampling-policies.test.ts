// Golden traces with known outcomes for every tail sampling policy and their combinations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../collector/src/processors/tail_sampling/config.ts';
import { PolicySet, traceIdHash, type TraceView } from '../../collector/src/processors/tail_sampling/policies.ts';
import { spanWireBytes } from '../../collector/src/processors/tail_sampling/traces.ts';
import { resourceSpans, span, tid, type SpanOpts } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import type { AnyValue } from '../../proto/src/model.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';

let seq = 1;
/** A trace of spans (one resource) as the processor would buffer it. */
function trace(spans: SpanOpts[], res: Record<string, AnyValue> = { 'service.name': 'checkout' }, id = tid(seq++)): TraceView {
  const ss = spans.map((o) => span(id, o));
  const rs = resourceSpans(ss, res);
  return { traceId: id, spans: ss, resources: ss.map(() => rs), spanCount: ss.length, wireBytes: ss.reduce((n, s) => n + spanWireBytes(s), 0) };
}

function set(policies: unknown[], extra: Record<string, unknown> = {}): PolicySet {
  const cfg = validateConfig({ policies, ...extra }, 'tail_sampling');
  return new PolicySet('default', cfg.policies, cfg.sampleOnFirstMatch);
}

const NOW = 1_000_000;

test('always_sample keeps everything', () => {
  assert.equal(set([{ name: 'all', type: 'always_sample' }]).decide(trace([{}]), NOW), true);
});

test('no policy votes sample → not sampled', () => {
  const s = set([{ name: 'err', type: 'status_code', status_code: { status_codes: ['ERROR'] } }]);
  assert.equal(s.decide(trace([{ status: 1 }, { status: 0 }]), NOW), false);
});

test('latency: trace duration is earliest start to latest end, with upper bound', () => {
  const s = set([{ name: 'slow', type: 'latency', latency: { threshold_ms: 100 } }]);
  // Two 60 ms spans 50 ms apart: each is fast, the trace spans 110 ms.
  assert.equal(s.decide(trace([{ startMs: 1000, durMs: 60 }, { startMs: 1050, durMs: 60 }]), NOW), true);
  assert.equal(s.decide(trace([{ startMs: 1000, durMs: 60 }, { startMs: 1010, durMs: 60 }]), NOW), false);
  const band = set([{ name: 'band', type: 'latency', latency: { threshold_ms: 100, upper_threshold_ms: 200 } }]);
  assert.equal(band.decide(trace([{ durMs: 150 }]), NOW), true);
  assert.equal(band.decide(trace([{ durMs: 250 }]), NOW), false);
  assert.equal(band.decide(trace([{ durMs: 99 }]), NOW), false);
});

test('status_code matches any span of the trace', () => {
  const s = set([{ name: 'err', type: 'status_code', status_code: { status_codes: ['ERROR'] } }]);
  assert.equal(s.decide(trace([{ status: 0 }, { status: 2 }]), NOW), true);
  assert.equal(s.decide(trace([{ status: 0 }, { status: 1 }]), NOW), false);
  const ok = set([{ name: 'ok', type: 'status_code', status_code: { status_codes: ['OK', 'UNSET'] } }]);
  assert.equal(ok.decide(trace([{ status: 2 }]), NOW), false);
  assert.equal(ok.decide(trace([{ status: 1 }]), NOW), true);
});

test('probabilistic: deterministic per trace id and salt, rate close to the percentage', () => {
  const s = set([{ name: 'p', type: 'probabilistic', probabilistic: { sampling_percentage: 10, hash_salt: 'x' } }]);
  let kept = 0;
  const N = 20_000;
  for (let i = 0; i < N; i++) if (s.decide(trace([{}], undefined, tid(i, 7)), NOW)) kept++;
  assert.ok(kept > N * 0.09 && kept < N * 0.11, `kept ${kept} of ${N}`);
  // Same id, same answer, on any instance (replicas of a tier agree).
  const s2 = set([{ name: 'p', type: 'probabilistic', probabilistic: { sampling_percentage: 10, hash_salt: 'x' } }]);
  for (let i = 0; i < 200; i++) {
    const t = trace([{}], undefined, tid(i, 9));
    assert.equal(s.decide(t, NOW), s2.decide(t, NOW));
  }
  // The salt changes which traces are picked.
  const salt = new TextEncoder().encode('x'), other = new TextEncoder().encode('y');
  let differ = 0;
  for (let i = 0; i < 100; i++) if (traceIdHash(salt, tid(i)) !== traceIdHash(other, tid(i))) differ++;
  assert.ok(differ > 95);
  assert.equal(set([{ name: 'p', type: 'probabilistic', probabilistic: { sampling_percentage: 0 } }]).decide(trace([{}]), NOW), false);
  assert.equal(set([{ name: 'p', type: 'probabilistic', probabilistic: { sampling_percentage: 100 } }]).decide(trace([{}]), NOW), true);
});

test('string_attribute: exact values on span and resource attributes', () => {
  const s = set([{ name: 's', type: 'string_attribute', string_attribute: { key: 'http.route', values: ['/checkout', '/pay'] } }]);
  assert.equal(s.decide(trace([{ attributes: { 'http.route': '/pay' } }]), NOW), true);
  assert.equal(s.decide(trace([{ attributes: { 'http.route': '/health' } }]), NOW), false);
  assert.equal(s.decide(trace([{ attributes: { 'other': '/pay' } }]), NOW), false);
  const r = set([{ name: 'svc', type: 'string_attribute', string_attribute: { key: 'service.name', values: ['checkout'] } }]);
  assert.equal(r.decide(trace([{}], { 'service.name': 'checkout' }), NOW), true);
  assert.equal(r.decide(trace([{}], { 'service.name': 'cart' }), NOW), false);
});

test('string_attribute: regex and invert_match', () => {
  const re = set([{ name: 're', type: 'string_attribute', string_attribute: { key: 'url.path', values: ['^/api/v[0-9]+/'], enabled_regex_matching: true } }]);
  assert.equal(re.decide(trace([{ attributes: { 'url.path': '/api/v2/x' } }]), NOW), true);
  assert.equal(re.decide(trace([{ attributes: { 'url.path': '/static/x' } }]), NOW), false);
  // invert: sample traces that do NOT touch /health; a matching trace is vetoed even if another
  // policy samples it.
  const inv = set([
    { name: 'nohealth', type: 'string_attribute', string_attribute: { key: 'http.route', values: ['/health'], invert_match: true } },
    { name: 'all', type: 'always_sample' },
  ]);
  assert.equal(inv.decide(trace([{ attributes: { 'http.route': '/health' } }]), NOW), false);
  assert.equal(inv.decide(trace([{ attributes: { 'http.route': '/orders' } }]), NOW), true);
  const invOnly = set([{ name: 'nohealth', type: 'string_attribute', string_attribute: { key: 'http.route', values: ['/health'], invert_match: true } }]);
  assert.equal(invOnly.decide(trace([{ attributes: { 'http.route': '/orders' } }]), NOW), true);
});

test('numeric_attribute: int and double values within [min, max]', () => {
  const s = set([{ name: 'n', type: 'numeric_attribute', numeric_attribute: { key: 'http.response.status_code', min_value: 500, max_value: 599 } }]);
  assert.equal(s.decide(trace([{ attributes: { 'http.response.status_code': 503n } }]), NOW), true);
  assert.equal(s.decide(trace([{ attributes: { 'http.response.status_code': 404n } }]), NOW), false);
  assert.equal(s.decide(trace([{ attributes: { 'http.response.status_code': 500.5 } }]), NOW), true);
  assert.equal(s.decide(trace([{ attributes: { 'http.response.status_code': '503' } }]), NOW), false);
  const inv = set([{ name: 'n', type: 'numeric_attribute', numeric_attribute: { key: 'x', min_value: 1, invert_match: true } }]);
  assert.equal(inv.decide(trace([{ attributes: { x: 5n } }]), NOW), false);
  assert.equal(inv.decide(trace([{ attributes: { x: 0n } }]), NOW), true);
});

test('boolean_attribute', () => {
  const s = set([{ name: 'b', type: 'boolean_attribute', boolean_attribute: { key: 'debug', value: true } }]);
  assert.equal(s.decide(trace([{ attributes: { debug: true } }]), NOW), true);
  assert.equal(s.decide(trace([{ attributes: { debug: false } }]), NOW), false);
  assert.equal(s.decide(trace([{ attributes: { debug: 'true' } }]), NOW), false);
});

test('span_count: min and max', () => {
  const s = set([{ name: 'c', type: 'span_count', span_count: { min_spans: 2, max_spans: 3 } }]);
  assert.equal(s.decide(trace([{}]), NOW), false);
  assert.equal(s.decide(trace([{}, {}]), NOW), true);
  assert.equal(s.decide(trace([{}, {}, {}]), NOW), true);
  assert.equal(s.decide(trace([{}, {}, {}, {}]), NOW), false);
});

test('trace_state: key with one of the values', () => {
  const s = set([{ name: 't', type: 'trace_state', trace_state: { key: 'tenant', values: ['gold'] } }]);
  assert.equal(s.decide(trace([{ traceState: 'vendor=a, tenant=gold' }]), NOW), true);
  assert.equal(s.decide(trace([{ traceState: 'tenant=silver' }]), NOW), false);
  assert.equal(s.decide(trace([{ traceState: 'xtenant=gold' }]), NOW), false);
});

test('trace_flags: sampled bit', () => {
  const s = set([{ name: 'f', type: 'trace_flags' }]);
  assert.equal(s.decide(trace([{ flags: 1 }]), NOW), true);
  assert.equal(s.decide(trace([{ flags: 0 }]), NOW), false);
});

test('rate_limiting: token bucket, burst 2 × spans_per_second', () => {
  const s = set([{ name: 'r', type: 'rate_limiting', rate_limiting: { spans_per_second: 5 } }]);
  const n = (k: number) => trace(Array.from({ length: k }, () => ({})));
  assert.equal(s.decide(n(3), 1000), true); // full bucket 10 → 7
  assert.equal(s.decide(n(2), 1500), true); // +2.5 → 9.5 → 7.5
  assert.equal(s.decide(n(7), 1500), true); // 0.5 left
  assert.equal(s.decide(n(1), 1500), false); // would go below 0
  assert.equal(s.decide(n(1), 1700), true); // +1 after 200 ms: no reset at a second boundary
});

test('bytes_limiting: token bucket with burst', () => {
  const t = trace([{}]);
  const per = t.wireBytes;
  const s = set([{ name: 'b', type: 'bytes_limiting', bytes_limiting: { bytes_per_second: per * 2, burst_capacity: per * 3 } }]);
  // The bucket starts full (burst = 3 traces), refills 2 traces per second.
  assert.equal(s.decide(t, 0), true);
  assert.equal(s.decide(t, 0), true);
  assert.equal(s.decide(t, 0), true);
  assert.equal(s.decide(t, 0), false);
  assert.equal(s.decide(t, 500), true); // +1 trace worth after 0.5 s
  assert.equal(s.decide(t, 500), false);
  assert.equal(s.decide(t, 10_000), true); // capped at burst
  assert.equal(s.decide(t, 10_000), true);
  assert.equal(s.decide(t, 10_000), true);
  assert.equal(s.decide(t, 10_000), false);
});

test('and: every sub-policy must sample', () => {
  const s = set([{
    name: 'slow-errors', type: 'and', and: { and_sub_policy: [
      { name: 'slow', type: 'latency', latency: { threshold_ms: 100 } },
      { name: 'err', type: 'status_code', status_code: { status_codes: ['ERROR'] } },
    ] },
  }]);
  assert.equal(s.decide(trace([{ durMs: 150, status: 2 }]), NOW), true);
  assert.equal(s.decide(trace([{ durMs: 150, status: 0 }]), NOW), false);
  assert.equal(s.decide(trace([{ durMs: 10, status: 2 }]), NOW), false);
});

test('not: inverts its sub-policy', () => {
  const s = set([{ name: 'not-health', type: 'not', not: { not_sub_policy: { name: 'h', type: 'string_attribute', string_attribute: { key: 'http.route', values: ['/health'] } } } }]);
  assert.equal(s.decide(trace([{ attributes: { 'http.route': '/health' } }]), NOW), false);
  assert.equal(s.decide(trace([{ attributes: { 'http.route': '/orders' } }]), NOW), true);
});

test('drop wins over any sampling policy, whatever the order', () => {
  const s = set([
    { name: 'all', type: 'always_sample' },
    { name: 'errors', type: 'status_code', status_code: { status_codes: ['ERROR'] } },
    { name: 'drop-health', type: 'drop', drop: { drop_sub_policy: [
      { name: 'h', type: 'string_attribute', string_attribute: { key: 'http.route', values: ['/health'] } },
    ] } },
  ]);
  assert.equal(s.decide(trace([{ attributes: { 'http.route': '/health' }, status: 2 }]), NOW), false);
  assert.equal(s.decide(trace([{ attributes: { 'http.route': '/orders' } }]), NOW), true);
  const c = s.counters.get('drop-health')!;
  assert.equal(c.dropped, 1);
  assert.equal(c.notSampled, 1);
  // The drop short-circuits: the sampling policies never voted on the dropped trace.
  assert.equal(s.counters.get('all')!.sampled, 1);
});

test('drop needs all of its sub-policies', () => {
  const s = set([
    { name: 'all', type: 'always_sample' },
    { name: 'drop-fast-health', type: 'drop', drop: { drop_sub_policy: [
      { name: 'h', type: 'string_attribute', string_attribute: { key: 'http.route', values: ['/health'] } },
      { name: 'fast', type: 'latency', latency: { upper_threshold_ms: 50 } },
    ] } },
  ]);
  assert.equal(s.decide(trace([{ attributes: { 'http.route': '/health' }, durMs: 5 }]), NOW), false);
  assert.equal(s.decide(trace([{ attributes: { 'http.route': '/health' }, durMs: 500 }]), NOW), true);
});

test('composite: per-policy rate allocation within max_total_spans_per_second', () => {
  const s = set([{
    name: 'comp', type: 'composite', composite: {
      max_total_spans_per_second: 10,
      policy_order: ['errors', 'rest'],
      composite_sub_policy: [
        { name: 'errors', type: 'status_code', status_code: { status_codes: ['ERROR'] } },
        { name: 'rest', type: 'always_sample' },
      ],
      rate_allocation: [{ policy: 'errors', percent: 60 }, { policy: 'rest', percent: 40 }],
    },
  }]);
  const t0 = 5000;
  // errors get 6 spans/s, the rest 4 spans/s.
  const err2 = () => trace([{ status: 2 }, { status: 2 }]);
  const ok2 = () => trace([{}, {}]);
  assert.equal(s.decide(err2(), t0), true); // errors 2
  assert.equal(s.decide(err2(), t0), true); // errors 4
  assert.equal(s.decide(err2(), t0), true); // errors 6
  // errors budget exhausted: the next error trace falls through to "rest" (4 spans/s).
  assert.equal(s.decide(err2(), t0), true); // rest 2
  assert.equal(s.decide(ok2(), t0), true); // rest 4
  assert.equal(s.decide(ok2(), t0), false); // rest exhausted
  assert.equal(s.decide(err2(), t0), false); // both exhausted
  assert.equal(s.decide(ok2(), t0 + 1000), true); // next second
});

test('composite: a sub-policy without allocation shares the total', () => {
  const s = set([{
    name: 'comp', type: 'composite', composite: {
      max_total_spans_per_second: 3,
      composite_sub_policy: [{ name: 'all', type: 'always_sample' }],
    },
  }]);
  assert.equal(s.decide(trace([{}, {}]), 0), true);
  assert.equal(s.decide(trace([{}, {}]), 0), false);
  assert.equal(s.decide(trace([{}]), 0), true);
});

test('and + not combination: errors that are not from the canary', () => {
  const s = set([{
    name: 'prod-errors', type: 'and', and: { and_sub_policy: [
      { name: 'err', type: 'status_code', status_code: { status_codes: ['ERROR'] } },
      { name: 'not-canary', type: 'not', not: { not_sub_policy: { name: 'canary', type: 'boolean_attribute', boolean_attribute: { key: 'canary', value: true } } } },
    ] },
  }]);
  assert.equal(s.decide(trace([{ status: 2 }]), NOW), true);
  assert.equal(s.decide(trace([{ status: 2, attributes: { canary: true } }]), NOW), false);
  assert.equal(s.decide(trace([{ status: 0 }]), NOW), false);
});

test('sample_on_first_match stops at the first sampling policy', () => {
  const s = set([
    { name: 'err', type: 'status_code', status_code: { status_codes: ['ERROR'] } },
    { name: 'r', type: 'rate_limiting', rate_limiting: { spans_per_second: 100 } },
  ], { sample_on_first_match: true });
  assert.equal(s.decide(trace([{ status: 2 }]), NOW), true);
  assert.equal(s.counters.get('r')!.sampled + s.counters.get('r')!.notSampled, 0);
  assert.equal(s.decide(trace([{ status: 0 }]), NOW), true);
  assert.equal(s.counters.get('r')!.sampled, 1);
});

test('config errors name the field', () => {
  const bad = (raw: unknown, field: string) => {
    assert.throws(() => validateConfig(raw, 'processors.tail_sampling'), (e: unknown) => e instanceof ConfigError && e.field === field);
  };
  bad({ policies: [{ name: 'x', type: 'nope' }] }, 'processors.tail_sampling.policies[0].type');
  bad({ policies: [{ name: 'p', type: 'probabilistic', probabilistic: { sampling_percentage: 120 } }] }, 'processors.tail_sampling.policies[0].probabilistic.sampling_percentage');
  bad({ policies: [{ name: 'a', type: 'always_sample' }], decision_wait: 'soon' }, 'processors.tail_sampling.decision_wait');
  bad({ policies: [{ name: 'a', type: 'always_sample' }], tiers: { low: 'missing' } }, 'processors.tail_sampling.tiers.low');
  bad({ policies: [{ name: 'a', type: 'always_sample' }, { name: 'a', type: 'always_sample' }] }, 'processors.tail_sampling.policies[1].name');
  bad({ policies: [{ name: 's', type: 'string_attribute', string_attribute: { key: 'k', values: ['('], enabled_regex_matching: true } }] },
    'processors.tail_sampling.policies[0].string_attribute.values[0]');
  bad({ policies: [{ name: 'c', type: 'composite', composite: { max_total_spans_per_second: 10, composite_sub_policy: [{ name: 'a', type: 'always_sample' }], rate_allocation: [{ policy: 'b', percent: 10 }] } }] },
    'processors.tail_sampling.policies[0].composite.rate_allocation[0].policy');
  bad({ policies: [] }, 'processors.tail_sampling.policies');
  bad({ policies: [{ name: 'a', type: 'always_sample' }], num_trace: 5 }, 'processors.tail_sampling.num_trace');
});
