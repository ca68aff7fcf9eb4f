// Typed configuration of the tail sampling processor and its validation. Raw YAML uses the
// snake_case layout of the reference collector (`type` plus a block named like the type);
// every error names the dotted field path.
import { ConfigError } from '../../component/errors.ts';

export type PolicyConfig =
  | { name: string; type: 'always_sample' }
  | { name: string; type: 'latency'; thresholdMs: number; upperThresholdMs: number }
  | { name: string; type: 'status_code'; statusCodes: number[] }
  | { name: string; type: 'probabilistic'; samplingPercentage: number; hashSalt: string }
  | {
      name: string; type: 'string_attribute'; key: string; values: string[];
      enabledRegexMatching: boolean; cacheMaxSize: number; invertMatch: boolean;
    }
  | { name: string; type: 'numeric_attribute'; key: string; minValue: number; maxValue: number; invertMatch: boolean }
  | { name: string; type: 'boolean_attribute'; key: string; value: boolean; invertMatch: boolean }
  | { name: string; type: 'span_count'; minSpans: number; maxSpans: number }
  | { name: string; type: 'trace_state'; key: string; values: string[] }
  | { name: string; type: 'trace_flags' }
  | { name: string; type: 'rate_limiting'; spansPerSecond: number; burstCapacity: number }
  | { name: string; type: 'bytes_limiting'; bytesPerSecond: number; burstCapacity: number }
  | { name: string; type: 'and'; subPolicies: PolicyConfig[] }
  | { name: string; type: 'not'; subPolicy: PolicyConfig }
  | { name: string; type: 'drop'; subPolicies: PolicyConfig[] }
  | {
      name: string; type: 'composite'; maxTotalSpansPerSecond: number; policyOrder: string[];
      subPolicies: PolicyConfig[]; rateAllocation: { policy: string; percent: number }[];
    };

export type PolicyType = PolicyConfig['type'];

export interface TailSamplingConfig {
  /** Time from a trace's first span to its decision. */
  decisionWaitMs: number;
  /** Granularity of the single decision ticker. */
  tickIntervalMs: number;
  /** Live (undecided) traces held at most; the oldest is evicted and counted beyond it. */
  numTraces: number;
  /** Sizing hint: pre-sizes the per-tick decision batch. */
  expectedNewTracesPerSec: number;
  /** 0 = unlimited. */
  maxSpansPerTrace: number;
  /** Accounted bytes per trace; 0 = unlimited. */
  maxTraceSizeBytes: number;
  /** What a trace over maxSpansPerTrace / maxTraceSizeBytes does. */
  onOversize: 'decide_early' | 'drop_excess';
  /**
   * Bound on accounted heap bytes of all buffered spans plus kept spans not yet accepted by the
   * next consumer. Beyond it the oldest undecided traces are evicted; while forwards are in flight,
   * requests that do not fit are refused (retryable) instead.
   */
  maxBufferedBytes: number;
  dropPendingTracesOnShutdown: boolean;
  sampleOnFirstMatch: boolean;
  /**
   * How buffered spans are held: `objects` keeps the decoded model objects (fast, ≈3× wire size);
   * `encoded` keeps each span as OTLP bytes in shared slabs and decodes a trace at its decision
   * (≈1.1× wire size, more CPU). See README "Memory".
   */
  spanStorage: 'objects' | 'encoded';
  decisionCache: { sampledCacheSize: number; nonSampledCacheSize: number };
  /** The default policy set (used when no tier/tenant mapping applies). */
  policies: PolicyConfig[];
  /** Named extra policy sets. */
  policySets: Record<string, PolicyConfig[]>;
  /** QoS tier → policy set name. */
  tiers: Record<string, string>;
  /** Tenant → policy set name (wins over the tier mapping). */
  tenants: Record<string, string>;
}

export const DEFAULT_POLICY_SET = 'default';

export function defaultConfig(): TailSamplingConfig {
  return {
    decisionWaitMs: 30_000,
    tickIntervalMs: 100,
    numTraces: 50_000,
    expectedNewTracesPerSec: 0,
    maxSpansPerTrace: 0,
    maxTraceSizeBytes: 0,
    onOversize: 'decide_early',
    maxBufferedBytes: 512 * 1024 * 1024,
    dropPendingTracesOnShutdown: false,
    sampleOnFirstMatch: false,
    spanStorage: 'objects',
    decisionCache: { sampledCacheSize: 100_000, nonSampledCacheSize: 100_000 },
    policies: [],
    policySets: {},
    tiers: {},
    tenants: {},
  };
}

// ------------------------------------------------------------------ primitive readers

type Raw = Record<string, unknown>;

function isObj(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(raw: Raw, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(raw)) if (!allowed.includes(k)) throw new ConfigError(`${path}.${k}`, 'unknown field');
}

/** Durations: a number of milliseconds or a string like "500ms", "1s", "2m", "1.5s". */
export function parseDuration(v: unknown, path: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/.exec(v.trim());
    if (m) {
      const n = Number(m[1]);
      const mult: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
      return n * mult[m[2]];
    }
  }
  throw new ConfigError(path, `expected a duration such as "1s" or "500ms", got ${JSON.stringify(v)}`);
}

/** Sizes: a number of bytes or "64MiB", "512KiB", "1GiB", "10MB". */
export function parseBytes(v: unknown, path: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)?$/.exec(v.trim());
    if (m) {
      const mult: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, KB: 1e3, MB: 1e6, GB: 1e9 };
      return Math.floor(Number(m[1]) * mult[m[2] ?? 'B']);
    }
  }
  throw new ConfigError(path, `expected a byte size such as 67108864 or "64MiB", got ${JSON.stringify(v)}`);
}

function num(v: unknown, path: string, opts: { min?: number; max?: number; int?: boolean } = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(path, `expected a number, got ${JSON.stringify(v)}`);
  if (opts.int && !Number.isInteger(v)) throw new ConfigError(path, `expected an integer, got ${v}`);
  if (opts.min !== undefined && v < opts.min) throw new ConfigError(path, `must be ≥ ${opts.min}, got ${v}`);
  if (opts.max !== undefined && v > opts.max) throw new ConfigError(path, `must be ≤ ${opts.max}, got ${v}`);
  return v;
}

function str(v: unknown, path: string, allowEmpty = false): string {
  if (typeof v !== 'string' || (!allowEmpty && v === '')) throw new ConfigError(path, 'expected a non-empty string');
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(path, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

function strList(v: unknown, path: string): string[] {
  if (!Array.isArray(v)) throw new ConfigError(path, 'expected a list of strings');
  return v.map((x, i) => str(x, `${path}[${i}]`, true));
}

function block(raw: Raw, key: string, path: string, required: boolean): Raw {
  const b = raw[key];
  if (b === undefined || b === null) {
    if (required) throw new ConfigError(`${path}.${key}`, 'required');
    return {};
  }
  if (!isObj(b)) throw new ConfigError(`${path}.${key}`, 'expected a mapping');
  return b;
}

// ------------------------------------------------------------------ policies

const STATUS: Record<string, number> = { UNSET: 0, OK: 1, ERROR: 2 };

export function validatePolicy(raw: unknown, path: string, depth = 0): PolicyConfig {
  if (!isObj(raw)) throw new ConfigError(path, 'expected a policy mapping with name and type');
  const name = str(raw.name, `${path}.name`);
  const type = str(raw.type, `${path}.type`);
  checkKeys(raw, ['name', 'type', type], path);
  const bp = `${path}.${type}`;
  switch (type) {
    case 'always_sample':
    case 'trace_flags':
      return { name, type };
    case 'latency': {
      const b = block(raw, type, path, true);
      checkKeys(b, ['threshold_ms', 'upper_threshold_ms'], bp);
      // Whole milliseconds, as the reference: the trace duration is compared truncated to ms.
      const thresholdMs = b.threshold_ms === undefined ? 0 : num(b.threshold_ms, `${bp}.threshold_ms`, { min: 0, int: true });
      const upperThresholdMs = b.upper_threshold_ms === undefined ? 0 : num(b.upper_threshold_ms, `${bp}.upper_threshold_ms`, { min: 0, int: true });
      if (thresholdMs === 0 && upperThresholdMs === 0) throw new ConfigError(`${bp}.threshold_ms`, 'set threshold_ms or upper_threshold_ms');
      if (upperThresholdMs && upperThresholdMs < thresholdMs) throw new ConfigError(`${bp}.upper_threshold_ms`, 'must be ≥ threshold_ms');
      return { name, type, thresholdMs, upperThresholdMs };
    }
    case 'status_code': {
      const b = block(raw, type, path, true);
      checkKeys(b, ['status_codes'], bp);
      const codes = strList(b.status_codes, `${bp}.status_codes`);
      if (codes.length === 0) throw new ConfigError(`${bp}.status_codes`, 'must list at least one of OK, ERROR, UNSET');
      return {
        name, type,
        statusCodes: codes.map((c, i) => {
          const code = STATUS[c.toUpperCase()];
          if (code === undefined) throw new ConfigError(`${bp}.status_codes[${i}]`, `unknown status code ${c} (OK, ERROR, UNSET)`);
          return code;
        }),
      };
    }
    case 'probabilistic': {
      const b = block(raw, type, path, true);
      checkKeys(b, ['sampling_percentage', 'hash_salt'], bp);
      return {
        name, type,
        samplingPercentage: num(b.sampling_percentage, `${bp}.sampling_percentage`, { min: 0, max: 100 }),
        hashSalt: b.hash_salt === undefined ? '' : str(b.hash_salt, `${bp}.hash_salt`, true),
      };
    }
    case 'string_attribute': {
      const b = block(raw, type, path, true);
      checkKeys(b, ['key', 'values', 'enabled_regex_matching', 'cache_max_size', 'invert_match'], bp);
      const values = strList(b.values, `${bp}.values`);
      const enabledRegexMatching = b.enabled_regex_matching === undefined ? false : bool(b.enabled_regex_matching, `${bp}.enabled_regex_matching`);
      if (enabledRegexMatching) {
        values.forEach((v, i) => {
          try { new RegExp(v); } catch (e) { throw new ConfigError(`${bp}.values[${i}]`, `invalid regex: ${(e as Error).message}`); }
        });
      }
      return {
        name, type, key: str(b.key, `${bp}.key`), values, enabledRegexMatching,
        cacheMaxSize: b.cache_max_size === undefined ? 128 : num(b.cache_max_size, `${bp}.cache_max_size`, { min: 0, int: true }),
        invertMatch: b.invert_match === undefined ? false : bool(b.invert_match, `${bp}.invert_match`),
      };
    }
    case 'numeric_attribute': {
      const b = block(raw, type, path, true);
      checkKeys(b, ['key', 'min_value', 'max_value', 'invert_match'], bp);
      if (b.min_value === undefined && b.max_value === undefined) throw new ConfigError(`${bp}.min_value`, 'set min_value and/or max_value');
      const minValue = b.min_value === undefined ? -Infinity : num(b.min_value, `${bp}.min_value`);
      const maxValue = b.max_value === undefined ? Infinity : num(b.max_value, `${bp}.max_value`);
      if (maxValue < minValue) throw new ConfigError(`${bp}.max_value`, 'must be ≥ min_value');
      return { name, type, key: str(b.key, `${bp}.key`), minValue, maxValue, invertMatch: b.invert_match === undefined ? false : bool(b.invert_match, `${bp}.invert_match`) };
    }
    case 'boolean_attribute': {
      const b = block(raw, type, path, true);
      checkKeys(b, ['key', 'value', 'invert_match'], bp);
      return { name, type, key: str(b.key, `${bp}.key`), value: bool(b.value, `${bp}.value`), invertMatch: b.invert_match === undefined ? false : bool(b.invert_match, `${bp}.invert_match`) };
    }
    case 'span_count': {
      const b = block(raw, type, path, true);
      checkKeys(b, ['min_spans', 'max_spans'], bp);
      const minSpans = b.min_spans === undefined ? 0 : num(b.min_spans, `${bp}.min_spans`, { min: 0, int: true });
      const maxSpans = b.max_spans === undefined ? 0 : num(b.max_spans, `${bp}.max_spans`, { min: 0, int: true });
      if (maxSpans && maxSpans < minSpans) throw new ConfigError(`${bp}.max_spans`, 'must be ≥ min_spans (0 = no maximum)');
      return { name, type, minSpans, maxSpans };
    }
    case 'trace_state': {
      const b = block(raw, type, path, true);
      checkKeys(b, ['key', 'values'], bp);
      const values = strList(b.values, `${bp}.values`);
      if (!values.length) throw new ConfigError(`${bp}.values`, 'must not be empty');
      return { name, type, key: str(b.key, `${bp}.key`), values };
    }
    case 'rate_limiting': {
      const b = block(raw, type, path, true);
      checkKeys(b, ['spans_per_second', 'burst_capacity'], bp);
      const spansPerSecond = num(b.spans_per_second, `${bp}.spans_per_second`, { min: 1 });
      // As the reference: absent or 0 → a bucket of 2 × spans_per_second.
      const burst = b.burst_capacity === undefined ? 0 : num(b.burst_capacity, `${bp}.burst_capacity`, { min: 0 });
      return { name, type, spansPerSecond, burstCapacity: burst || 2 * spansPerSecond };
    }
    case 'bytes_limiting': {
      const b = block(raw, type, path, true);
      checkKeys(b, ['bytes_per_second', 'burst_capacity'], bp);
      const bytesPerSecond = parseBytes(b.bytes_per_second, `${bp}.bytes_per_second`);
      if (bytesPerSecond <= 0) throw new ConfigError(`${bp}.bytes_per_second`, 'must be > 0');
      const burstCapacity = b.burst_capacity === undefined ? 2 * bytesPerSecond : parseBytes(b.burst_capacity, `${bp}.burst_capacity`);
      if (burstCapacity < 1) throw new ConfigError(`${bp}.burst_capacity`, 'must be > 0');
      return { name, type, bytesPerSecond, burstCapacity };
    }
    case 'and':
    case 'drop': {
      if (depth > 3) throw new ConfigError(path, 'policies nest at most 4 levels');
      const b = block(raw, type, path, true);
      const listKey = `${type}_sub_policy`;
      checkKeys(b, [listKey], bp);
      const list = b[listKey];
      if (!Array.isArray(list) || list.length === 0) throw new ConfigError(`${bp}.${listKey}`, 'expected a non-empty list of policies');
      const subPolicies = list.map((p, i) => validatePolicy(p, `${bp}.${listKey}[${i}]`, depth + 1));
      uniqueNames(subPolicies, `${bp}.${listKey}`);
      return { name, type, subPolicies };
    }
    case 'not': {
      if (depth > 3) throw new ConfigError(path, 'policies nest at most 4 levels');
      const b = block(raw, type, path, true);
      checkKeys(b, ['not_sub_policy'], bp);
      return { name, type, subPolicy: validatePolicy(b.not_sub_policy, `${bp}.not_sub_policy`, depth + 1) };
    }
    case 'composite': {
      if (depth > 3) throw new ConfigError(path, 'policies nest at most 4 levels');
      const b = block(raw, type, path, true);
      checkKeys(b, ['max_total_spans_per_second', 'policy_order', 'composite_sub_policy', 'rate_allocation'], bp);
      const maxTotalSpansPerSecond = num(b.max_total_spans_per_second, `${bp}.max_total_spans_per_second`, { min: 1 });
      const list = b.composite_sub_policy;
      if (!Array.isArray(list) || list.length === 0) throw new ConfigError(`${bp}.composite_sub_policy`, 'expected a non-empty list of policies');
      const subPolicies = list.map((p, i) => validatePolicy(p, `${bp}.composite_sub_policy[${i}]`, depth + 1));
      uniqueNames(subPolicies, `${bp}.composite_sub_policy`);
      const names = new Set(subPolicies.map((p) => p.name));
      const policyOrder = b.policy_order === undefined ? subPolicies.map((p) => p.name) : strList(b.policy_order, `${bp}.policy_order`);
      policyOrder.forEach((n, i) => { if (!names.has(n)) throw new ConfigError(`${bp}.policy_order[${i}]`, `no sub-policy named ${n}`); });
      const rateAllocation: { policy: string; percent: number }[] = [];
      if (b.rate_allocation !== undefined) {
        if (!Array.isArray(b.rate_allocation)) throw new ConfigError(`${bp}.rate_allocation`, 'expected a list of {policy, percent}');
        let total = 0;
        b.rate_allocation.forEach((ra, i) => {
          const rp = `${bp}.rate_allocation[${i}]`;
          if (!isObj(ra)) throw new ConfigError(rp, 'expected {policy, percent}');
          checkKeys(ra, ['policy', 'percent'], rp);
          const policy = str(ra.policy, `${rp}.policy`);
          if (!names.has(policy)) throw new ConfigError(`${rp}.policy`, `no sub-policy named ${policy}`);
          const percent = num(ra.percent, `${rp}.percent`, { min: 0, max: 100 });
          total += percent;
          rateAllocation.push({ policy, percent });
        });
        if (total > 100) throw new ConfigError(`${bp}.rate_allocation`, `percentages add up to ${total} > 100`);
      }
      return { name, type, maxTotalSpansPerSecond, policyOrder, subPolicies, rateAllocation };
    }
    default:
      throw new ConfigError(`${path}.type`, `unknown policy type ${type}`);
  }
}

function uniqueNames(ps: PolicyConfig[], path: string): void {
  const seen = new Set<string>();
  ps.forEach((p, i) => {
    if (seen.has(p.name)) throw new ConfigError(`${path}[${i}].name`, `duplicate policy name ${p.name}`);
    seen.add(p.name);
  });
}

function policyList(v: unknown, path: string): PolicyConfig[] {
  if (!Array.isArray(v)) throw new ConfigError(path, 'expected a list of policies');
  const ps = v.map((p, i) => validatePolicy(p, `${path}[${i}]`));
  uniqueNames(ps, path);
  return ps;
}

function nameMap(v: unknown, path: string, sets: Set<string>): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new ConfigError(path, 'expected a mapping of name → policy set');
  const out: Record<string, string> = {};
  for (const [k, set] of Object.entries(v)) {
    const s = str(set, `${path}.${k}`);
    if (!sets.has(s)) throw new ConfigError(`${path}.${k}`, `unknown policy set ${s} (known: ${[...sets].join(', ')})`);
    out[k] = s;
  }
  return out;
}

const TOP_KEYS = [
  'decision_wait', 'tick_interval', 'num_traces', 'expected_new_traces_per_sec', 'max_spans_per_trace',
  'maximum_trace_size_bytes', 'on_oversize', 'max_buffered_bytes', 'drop_pending_traces_on_shutdown',
  'sample_on_first_match', 'span_storage', 'decision_cache', 'policies', 'policy_sets', 'tiers', 'tenants',
] as const;

export function validateConfig(raw: unknown, path: string): TailSamplingConfig {
  const c = defaultConfig();
  if (raw === undefined || raw === null) raw = {};
  if (!isObj(raw)) throw new ConfigError(path, 'expected a mapping');
  checkKeys(raw, TOP_KEYS, path);
  if (raw.decision_wait !== undefined) c.decisionWaitMs = parseDuration(raw.decision_wait, `${path}.decision_wait`);
  if (raw.tick_interval !== undefined) c.tickIntervalMs = parseDuration(raw.tick_interval, `${path}.tick_interval`);
  if (c.tickIntervalMs < 1) throw new ConfigError(`${path}.tick_interval`, 'must be ≥ 1ms');
  if (raw.num_traces !== undefined) c.numTraces = num(raw.num_traces, `${path}.num_traces`, { min: 1, int: true });
  if (raw.expected_new_traces_per_sec !== undefined)
    c.expectedNewTracesPerSec = num(raw.expected_new_traces_per_sec, `${path}.expected_new_traces_per_sec`, { min: 0, int: true });
  if (raw.max_spans_per_trace !== undefined) c.maxSpansPerTrace = num(raw.max_spans_per_trace, `${path}.max_spans_per_trace`, { min: 0, int: true });
  if (raw.maximum_trace_size_bytes !== undefined) c.maxTraceSizeBytes = parseBytes(raw.maximum_trace_size_bytes, `${path}.maximum_trace_size_bytes`);
  if (raw.on_oversize !== undefined) {
    const v = str(raw.on_oversize, `${path}.on_oversize`);
    if (v !== 'decide_early' && v !== 'drop_excess') throw new ConfigError(`${path}.on_oversize`, 'expected decide_early or drop_excess');
    c.onOversize = v;
  }
  if (raw.max_buffered_bytes !== undefined) c.maxBufferedBytes = parseBytes(raw.max_buffered_bytes, `${path}.max_buffered_bytes`);
  if (c.maxBufferedBytes < 1) throw new ConfigError(`${path}.max_buffered_bytes`, 'must be > 0');
  if (raw.drop_pending_traces_on_shutdown !== undefined)
    c.dropPendingTracesOnShutdown = bool(raw.drop_pending_traces_on_shutdown, `${path}.drop_pending_traces_on_shutdown`);
  if (raw.sample_on_first_match !== undefined) c.sampleOnFirstMatch = bool(raw.sample_on_first_match, `${path}.sample_on_first_match`);
  if (raw.span_storage !== undefined) {
    const v = str(raw.span_storage, `${path}.span_storage`);
    if (v !== 'objects' && v !== 'encoded') throw new ConfigError(`${path}.span_storage`, 'expected objects or encoded');
    c.spanStorage = v;
  }
  if (raw.decision_cache !== undefined) {
    const dp = `${path}.decision_cache`;
    if (!isObj(raw.decision_cache)) throw new ConfigError(dp, 'expected a mapping');
    checkKeys(raw.decision_cache, ['sampled_cache_size', 'non_sampled_cache_size'], dp);
    const d = raw.decision_cache;
    if (d.sampled_cache_size !== undefined) c.decisionCache.sampledCacheSize = num(d.sampled_cache_size, `${dp}.sampled_cache_size`, { min: 0, int: true });
    if (d.non_sampled_cache_size !== undefined)
      c.decisionCache.nonSampledCacheSize = num(d.non_sampled_cache_size, `${dp}.non_sampled_cache_size`, { min: 0, int: true });
  }
  if (raw.policies !== undefined) c.policies = policyList(raw.policies, `${path}.policies`);
  if (raw.policy_sets !== undefined) {
    const sp = `${path}.policy_sets`;
    if (!isObj(raw.policy_sets)) throw new ConfigError(sp, 'expected a mapping of set name → list of policies');
    for (const [k, v] of Object.entries(raw.policy_sets)) {
      if (k === DEFAULT_POLICY_SET) throw new ConfigError(`${sp}.${k}`, `"${DEFAULT_POLICY_SET}" is the top-level policies list`);
      c.policySets[k] = policyList(v, `${sp}.${k}`);
      if (c.policySets[k].length === 0) throw new ConfigError(`${sp}.${k}`, 'a policy set needs at least one policy');
    }
  }
  const sets = new Set([DEFAULT_POLICY_SET, ...Object.keys(c.policySets)]);
  c.tiers = nameMap(raw.tiers, `${path}.tiers`, sets);
  c.tenants = nameMap(raw.tenants, `${path}.tenants`, sets);
  if (c.policies.length === 0 && Object.keys(c.policySets).length === 0)
    throw new ConfigError(`${path}.policies`, 'at least one policy is required');
  return c;
}
