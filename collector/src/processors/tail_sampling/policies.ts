// Sampling policies: each looks at a whole buffered trace and returns a Decision. The final
// decision of a policy set combines them (see PolicySet.decide and README.md).
import type { AnyValue, KeyValue, ResourceSpans, Span } from '../../../../proto/src/model.ts';
import type { PolicyConfig } from './config.ts';

/** What one policy says about a trace. */
export const enum Decision {
  NotSampled = 0,
  Sampled = 1,
  /** An invert_match policy whose value did not match: counts as "sample". */
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

/** FNV-1a 32-bit over salt then trace id: deterministic on every replica and tier. */
export function traceIdHash(salt: Uint8Array, id: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < salt.length; i++) { h ^= salt[i]; h = Math.imul(h, 0x01000193); }
  for (let i = 0; i < id.length; i++) { h ^= id[i]; h = Math.imul(h, 0x01000193); }
  // Final avalanche (murmur3 fmix32) so nearby ids spread over the whole range.
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16;
  return h >>> 0;
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
      const lo = BigInt(Math.round(cfg.thresholdMs * 1e6));
      const hi = cfg.upperThresholdMs ? BigInt(Math.round(cfg.upperThresholdMs * 1e6)) : -1n;
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
          const d = max - min;
          if (hi >= 0n) return d >= lo && d <= hi ? Decision.Sampled : Decision.NotSampled;
          return d >= lo ? Decision.Sampled : Decision.NotSampled;
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
      const salt = textEncoder.encode(cfg.hashSalt);
      // Threshold on the 32-bit hash; 100% must accept 0xffffffff too.
      const threshold = cfg.samplingPercentage >= 100 ? 2 ** 32 : Math.floor((cfg.samplingPercentage / 100) * 2 ** 32);
      return {
        name, type: cfg.type,
        evaluate: (t) => (traceIdHash(salt, t.traceId) < threshold ? Decision.Sampled : Decision.NotSampled),
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
      const limit = cfg.spansPerSecond;
      let second = -1, spent = 0;
      return {
        name, type: cfg.type,
        evaluate(t, nowMs) {
          const s = Math.floor(nowMs / 1000);
          if (s !== second) { second = s; spent = 0; }
          if (spent + t.spanCount > limit) return Decision.NotSampled;
          spent += t.spanCount;
          return Decision.Sampled;
        },
      };
    }

    case 'bytes_limiting': {
      const rate = cfg.bytesPerSecond / 1000;
      const burst = cfg.burstCapacity;
      let tokens = burst, last = -1;
      return {
        name, type: cfg.type,
        evaluate(t, nowMs) {
          if (last >= 0 && nowMs > last) tokens = Math.min(burst, tokens + (nowMs - last) * rate);
          last = nowMs;
          if (t.wireBytes > tokens) return Decision.NotSampled;
          tokens -= t.wireBytes;
          return Decision.Sampled;
        },
      };
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
      return { name, type: cfg.type, evaluate: (t, now) => (isSample(sub.evaluate(t, now)) ? Decision.NotSampled : Decision.Sampled) };
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
 * individual decisions into one:
 *   1. drop policies are evaluated first; any Dropped → not sampled;
 *   2. any InvertNotSampled (an invert_match policy that matched) → not sampled;
 *   3. any Sampled or InvertSampled → sampled;
 *   4. otherwise → not sampled.
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
    let sample = false, veto = false;
    for (let i = 0; i < this.others.length; i++) {
      const d = this.others[i].evaluate(t, nowMs);
      const c = this.otherCounters[i];
      if (d === Decision.InvertNotSampled) { veto = true; c.notSampled++; continue; }
      if (isSample(d)) {
        sample = true;
        c.sampled++;
        if (this.sampleOnFirstMatch && d === Decision.Sampled) break;
      } else c.notSampled++;
    }
    const keep = sample && !veto;
    if (keep) this.tracesSampled++;
    else this.tracesNotSampled++;
    return keep;
  }
}
