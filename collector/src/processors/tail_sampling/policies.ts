// Sampling policies: each looks at a whole buffered trace and returns a Decision. The final
// decision of a policy set combines them (see PolicySet.decide and README.md).
import type { AnyValue, KeyValue, ResourceSpans, Span } from '../../../../proto/src/model.ts';
import type { PolicyConfig } from './config.ts';

/** What one policy says about a trace. */
export const enum Decision {
  NotSampled = 0,
  Sampled = 1,
  /** An invert_match policy whose value did not match: samples only if no policy said NotSampled. */
  InvertSampled = 2,
  /** An invert_match policy whose value matched: vetoes sampling (unless a drop already decided). */
  InvertNotSampled = 3,
  /** A drop policy matched: the trace is not sampled, whatever the others say. */
  Dropped = 4,
}

/** The view of a buffered trace that policies read. */
export interface TraceView {
  traceId: Uint8Array;
  /** Parallel arrays: span i came in the ResourceSpans resources[i]. */
  spans: Span[];
  resources: ResourceSpans[];
  spanCount: number;
  /** Accounted OTLP wire bytes of the buffered spans. */
  wireBytes: number;
}

export interface Policy {
  readonly name: string;
  readonly type: PolicyConfig['type'];
  evaluate(t: TraceView, nowMs: number): Decision;
}

function isSample(d: Decision): boolean {
  return d === Decision.Sampled || d === Decision.InvertSampled;
}

// ------------------------------------------------------------------ attribute lookup

function findAttr(attrs: KeyValue[], key: string): AnyValue | undefined {
  for (let i = 0; i < attrs.length; i++) if (attrs[i].key === key) return attrs[i].value;
  return undefined;
}

/**
 * Calls `test` with the value of `key` on every span and on each distinct resource of the trace
 * (resource attributes checked once per ResourceSpans); stops at the first true.
 */
function anyAttr(t: TraceView, key: string, test: (v: AnyValue) => boolean): boolean {
  let lastRes: ResourceSpans | undefined;
  for (let i = 0; i < t.spans.length; i++) {
    const rs = t.resources[i];
    if (rs !== lastRes) {
      lastRes = rs;
      const rv = findAttr(rs.resource.attributes, key);
      if (rv !== undefined && test(rv)) return true;
    }
    const v = findAttr(t.spans[i].attributes, key);
    if (v !== undefined && test(v)) return true;
  }
  return false;
}

function matchDecision(matched: boolean, invert: boolean): Decision {
  if (invert) return matched ? Decision.InvertNotSampled : Decision.InvertSampled;
  return matched ? Decision.Sampled : Decision.NotSampled;
}

// ------------------------------------------------------------------ hashing

const textEncoder = new TextEncoder();

/** The reference's salt when hash_salt is empty: same default, same decisions. */
export const DEFAULT_HASH_SALT = 'default-hash-seed';

// 64-bit FNV-1a state as two 32-bit halves (BigInt would allocate per byte). Module scratch, so
// hashing a trace id allocates nothing.
let fnvHi = 0, fnvLo = 0;

function fnvBytes(b: Uint8Array): void {
  let hi = fnvHi, lo = fnvLo;
  for (let i = 0; i < b.length; i++) {
    lo = (lo ^ b[i]) >>> 0;
    // h * 0x100000001b3 mod 2^64 = h * 0x1b3 + (h << 40); lo * 0x1b3 < 2^41 is exact in a double.
    const t = lo * 0x1b3;
    hi = (Math.imul(hi, 0x1b3) + Math.floor(t / 0x100000000) + (lo << 8)) >>> 0;
    lo = t >>> 0;
  }
  fnvHi = hi;
  fnvLo = lo;
}

/**
 * FNV-1a 64-bit over the salt's UTF-8 bytes then the trace id bytes, as the reference's
 * probabilistic policy hashes (hashTraceID): replicas and mixed fleets pick the same traces.
 */
export function traceIdHash(salt: Uint8Array, id: Uint8Array): bigint {
  fnvHi = 0xcbf29ce4; fnvLo = 0x84222325;
  fnvBytes(salt);
  fnvBytes(id);
  return (BigInt(fnvHi) << 32n) | BigInt(fnvLo);
}

const MAX_U64 = (1n << 64n) - 1n;

/**
 * The reference's calculateThreshold: MaxUint64 × (percentage / 100) in a 64-bit-mantissa
 * big.Float (rounded to nearest even), truncated to an integer. A trace is sampled when its hash
 * is ≤ this, so 100% keeps every trace and 0% keeps only a hash of exactly 0.
 */
export function probabilisticThreshold(percentage: number): bigint {
  const ratio = percentage / 100;
  if (!(ratio > 0)) return 0n;
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, ratio);
  const bits = dv.getBigUint64(0);
  const biased = Number(bits >> 52n);
  // ratio = m · 2^e exactly.
  let m = bits & ((1n << 52n) - 1n), e: number;
  if (biased === 0) e = -1074;
  else { m |= 1n << 52n; e = biased - 1075; }
  let p = MAX_U64 * m;
  const len = p.toString(2).length;
  if (len > 64) {
    const sh = BigInt(len - 64);
    const q = p >> sh, rem = p - (q << sh), half = 1n << (sh - 1n);
    p = rem > half || (rem === half && (q & 1n) === 1n) ? q + 1n : q;
    e += len - 64;
  }
  const v = e >= 0 ? p << BigInt(e) : p >> BigInt(-e);
  return v > MAX_U64 ? MAX_U64 : v;
}

/**
 * A token bucket with golang.org/x/time/rate's AllowN semantics, as the reference's limiting
 * policies use: starts full, refills continuously at perSecond up to burst, and takes n tokens
 * only when all n are there (so n > burst never passes).
 */
function tokenBucket(perSecond: number, burst: number): (n: number, nowMs: number) => boolean {
  const perMs = perSecond / 1000;
  let tokens = burst, last = -1;
  return (n, nowMs) => {
    if (last >= 0 && nowMs > last) tokens = Math.min(burst, tokens + (nowMs - last) * perMs);
    last = nowMs;
    if (n > tokens) return false;
    tokens -= n;
    return true;
  };
}

// ------------------------------------------------------------------ bounded memo for regexes

class BoundedMemo {
  private readonly m = new Map<string, boolean>();
  constructor(private readonly max: number) {}
  get(k: string): boolean | undefined {
    return this.m.get(k);
  }
  set(k: string, v: boolean): void {
    if (this.max === 0) return;
    if (this.m.size >= this.max) this.m.delete(this.m.keys().next().value as string);
    this.m.set(k, v);
  }
}

// ------------------------------------------------------------------ construction

export function buildPolicy(cfg: PolicyConfig): Policy {
  const name = cfg.name;
  switch (cfg.type) {
    case 'always_sample':
      return { name, type: cfg.type, evaluate: () => Decision.Sampled };

    case 'latency': {
      // As the reference: whole milliseconds (duration truncated), `ms >= threshold` without an
      // upper bound, `threshold < ms <= upper` with one.
      const lo = BigInt(cfg.thresholdMs);
      const hi = cfg.upperThresholdMs ? BigInt(cfg.upperThresholdMs) : -1n;
      return {
        name, type: cfg.type,
        evaluate(t) {
          // Trace duration: earliest start to latest end over the buffered spans.
          let min = -1n, max = 0n;
          for (let i = 0; i < t.spans.length; i++) {
            const s = t.spans[i];
            if (min < 0n || s.startTimeUnixNano < min) min = s.startTimeUnixNano;
            if (s.endTimeUnixNano > max) max = s.endTimeUnixNano;
          }
          if (min < 0n) return Decision.NotSampled;
          const ms = (max - min) / 1_000_000n;
          if (hi >= 0n) return lo < ms && ms <= hi ? Decision.Sampled : Decision.NotSampled;
          return ms >= lo ? Decision.Sampled : Decision.NotSampled;
        },
      };
    }

    case 'status_code': {
      const codes = cfg.statusCodes;
      return {
        name, type: cfg.type,
        evaluate(t) {
          for (let i = 0; i < t.spans.length; i++) if (codes.includes(t.spans[i].status.code)) return Decision.Sampled;
          return Decision.NotSampled;
        },
      };
    }

    case 'probabilistic': {
      // Hashed once: every trace's hash continues from the salt's state.
      fnvHi = 0xcbf29ce4; fnvLo = 0x84222325;
      fnvBytes(textEncoder.encode(cfg.hashSalt || DEFAULT_HASH_SALT));
      const saltHi = fnvHi, saltLo = fnvLo;
      const th = probabilisticThreshold(cfg.samplingPercentage);
      const thHi = Number(th >> 32n), thLo = Number(th & 0xffffffffn);
      return {
        name, type: cfg.type,
        evaluate(t) {
          fnvHi = saltHi; fnvLo = saltLo;
          fnvBytes(t.traceId);
          return fnvHi < thHi || (fnvHi === thHi && fnvLo <= thLo) ? Decision.Sampled : Decision.NotSampled;
        },
      };
    }

    case 'string_attribute': {
      const { key, invertMatch } = cfg;
      let test: (v: AnyValue) => boolean;
      if (cfg.enabledRegexMatching) {
        const res = cfg.values.map((v) => new RegExp(v));
        const memo = new BoundedMemo(cfg.cacheMaxSize);
        test = (v) => {
          if (typeof v !== 'string') return false;
          const hit = memo.get(v);
          if (hit !== undefined) return hit;
          let m = false;
          for (const re of res) if (re.test(v)) { m = true; break; }
          memo.set(v, m);
          return m;
        };
      } else {
        const set = new Set(cfg.values);
        test = (v) => typeof v === 'string' && set.has(v);
      }
      return { name, type: cfg.type, evaluate: (t) => matchDecision(anyAttr(t, key, test), invertMatch) };
    }

    case 'numeric_attribute': {
      const { key, minValue, maxValue, invertMatch } = cfg;
      const test = (v: AnyValue): boolean => {
        let n: number;
        if (typeof v === 'number') n = v;
        else if (typeof v === 'bigint') n = Number(v);
        else return false;
        return n >= minValue && n <= maxValue;
      };
      return { name, type: cfg.type, evaluate: (t) => matchDecision(anyAttr(t, key, test), invertMatch) };
    }

    case 'boolean_attribute': {
      const { key, value, invertMatch } = cfg;
      const test = (v: AnyValue): boolean => v === value;
      return { name, type: cfg.type, evaluate: (t) => matchDecision(anyAttr(t, key, test), invertMatch) };
    }

    case 'span_count': {
      const { minSpans, maxSpans } = cfg;
      return {
        name, type: cfg.type,
        evaluate: (t) => (t.spanCount >= minSpans && (maxSpans === 0 || t.spanCount <= maxSpans) ? Decision.Sampled : Decision.NotSampled),
      };
    }

    case 'trace_state': {
      const prefix = cfg.key + '=';
      const values = new Set(cfg.values);
      return {
        name, type: cfg.type,
        evaluate(t) {
          for (let i = 0; i < t.spans.length; i++) {
            const ts = t.spans[i].traceState;
            if (ts.length === 0) continue;
            for (const member of ts.split(',')) {
              const m = member.trim();
              if (m.startsWith(prefix) && values.has(m.slice(prefix.length))) return Decision.Sampled;
            }
          }
          return Decision.NotSampled;
        },
      };
    }

    case 'trace_flags':
      return {
        name, type: cfg.type,
        // W3C sampled flag (bit 0 of the span flags) on any span.
        evaluate(t) {
          for (let i = 0; i < t.spans.length; i++) if (t.spans[i].flags & 1) return Decision.Sampled;
          return Decision.NotSampled;
        },
      };

    case 'rate_limiting': {
      // A trace of up to burst_capacity spans (default 2 × spans_per_second) can be sampled, and
      // over any interval T at most burst + rate × T spans pass.
      const take = tokenBucket(cfg.spansPerSecond, cfg.burstCapacity);
      return { name, type: cfg.type, evaluate: (t, nowMs) => (take(t.spanCount, nowMs) ? Decision.Sampled : Decision.NotSampled) };
    }

    case 'bytes_limiting': {
      const take = tokenBucket(cfg.bytesPerSecond, cfg.burstCapacity);
      return { name, type: cfg.type, evaluate: (t, nowMs) => (take(t.wireBytes, nowMs) ? Decision.Sampled : Decision.NotSampled) };
    }

    case 'and': {
      const subs = cfg.subPolicies.map(buildPolicy);
      return {
        name, type: cfg.type,
        evaluate(t, now) {
          for (const p of subs) if (!isSample(p.evaluate(t, now))) return Decision.NotSampled;
          return Decision.Sampled;
        },
      };
    }

    case 'not': {
      const sub = buildPolicy(cfg.subPolicy);
      return {
        name, type: cfg.type,
        // As the reference: only Sampled and NotSampled flip; inverted and Dropped decisions pass
        // through, so a matched invert_match inside a `not` still vetoes.
        evaluate(t, now) {
          const d = sub.evaluate(t, now);
          if (d === Decision.Sampled) return Decision.NotSampled;
          if (d === Decision.NotSampled) return Decision.Sampled;
          return d;
        },
      };
    }

    case 'drop': {
      const subs = cfg.subPolicies.map(buildPolicy);
      return {
        name, type: cfg.type,
        // All sub-policies match → drop; otherwise this policy has no opinion (NotSampled).
        evaluate(t, now) {
          for (const p of subs) if (!isSample(p.evaluate(t, now))) return Decision.NotSampled;
          return Decision.Dropped;
        },
      };
    }

    case 'composite': {
      const byName = new Map(cfg.subPolicies.map((p) => [p.name, buildPolicy(p)]));
      const order = cfg.policyOrder.map((n) => byName.get(n)!);
      const max = cfg.maxTotalSpansPerSecond;
      // Per-sub-policy budget in spans/s; without an allocation a sub-policy may use what the
      // total has left.
      const alloc = order.map((p) => {
        const ra = cfg.rateAllocation.find((r) => r.policy === p.name);
        return ra ? Math.floor((ra.percent / 100) * max) : max;
      });
      const spent = new Float64Array(order.length);
      let second = -1, total = 0;
      return {
        name, type: cfg.type,
        evaluate(t, nowMs) {
          const s = Math.floor(nowMs / 1000);
          if (s !== second) { second = s; total = 0; spent.fill(0); }
          const n = t.spanCount;
          for (let i = 0; i < order.length; i++) {
            if (!isSample(order[i].evaluate(t, nowMs))) continue;
            if (spent[i] + n > alloc[i] || total + n > max) continue;
            spent[i] += n;
            total += n;
            return Decision.Sampled;
          }
          return Decision.NotSampled;
        },
      };
    }
  }
}

/** Counters per top-level policy of a set. */
export interface PolicyCounters {
  sampled: number;
  notSampled: number;
  dropped: number;
}

/**
 * A policy set: the ordered policies for one tier / tenant mapping, and the rule that turns their
 * individual decisions into one (the reference's makeDecision precedence):
 *   1. drop policies are evaluated first; any Dropped (from any policy) → not sampled;
 *   2. any InvertNotSampled (an invert_match policy that matched) → not sampled;
 *   3. any Sampled → sampled;
 *   4. any InvertSampled, and no policy returned NotSampled → sampled;
 *   5. otherwise → not sampled.
 * With sampleOnFirstMatch, evaluation stops at the first Sampled (rule 2 then only sees the
 * policies before it).
 */
export class PolicySet {
  private readonly drops: Policy[];
  private readonly others: Policy[];
  readonly counters: Map<string, PolicyCounters> = new Map();
  private readonly dropCounters: PolicyCounters[];
  private readonly otherCounters: PolicyCounters[];
  tracesSampled = 0;
  tracesNotSampled = 0;

  constructor(readonly name: string, cfgs: PolicyConfig[], private readonly sampleOnFirstMatch: boolean) {
    const policies = cfgs.map(buildPolicy);
    for (const p of policies) this.counters.set(p.name, { sampled: 0, notSampled: 0, dropped: 0 });
    this.drops = policies.filter((p) => p.type === 'drop');
    this.others = policies.filter((p) => p.type !== 'drop');
    this.dropCounters = this.drops.map((p) => this.counters.get(p.name)!);
    this.otherCounters = this.others.map((p) => this.counters.get(p.name)!);
  }

  decide(t: TraceView, nowMs: number): boolean {
    for (let i = 0; i < this.drops.length; i++) {
      if (this.drops[i].evaluate(t, nowMs) === Decision.Dropped) {
        this.dropCounters[i].dropped++;
        this.tracesNotSampled++;
        return false;
      }
      this.dropCounters[i].notSampled++;
    }
    let sampled = false, invertSampled = false, notSampled = false, veto = false;
    for (let i = 0; i < this.others.length; i++) {
      const d = this.others[i].evaluate(t, nowMs);
      const c = this.otherCounters[i];
      if (d === Decision.Dropped) {
        // e.g. a `not` around a drop: Dropped wins as from a drop policy.
        c.dropped++;
        this.tracesNotSampled++;
        return false;
      }
      if (d === Decision.Sampled) {
        sampled = true;
        c.sampled++;
        if (this.sampleOnFirstMatch) break;
      } else if (d === Decision.InvertSampled) {
        invertSampled = true;
        c.sampled++;
      } else {
        if (d === Decision.InvertNotSampled) veto = true;
        else notSampled = true;
        c.notSampled++;
      }
    }
    // The reference's precedence: an InvertSampled keeps only when no policy said NotSampled.
    const keep = !veto && (sampled || (invertSampled && !notSampled));
    if (keep) this.tracesSampled++;
    else this.tracesNotSampled++;
    return keep;
  }
}
