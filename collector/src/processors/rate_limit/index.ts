// rate_limit: token buckets per tenant on items per second (spans, data points or log records,
// by signal) and request bytes per second, each with a burst. Tenants are grouped in QoS tiers
// (high / medium / low by default) with per-tier limits; per-tenant overrides change the tier or
// any limit. Over the limit a request is refused with ThrottledError carrying the time until the
// bucket refills enough (→ RESOURCE_EXHAUSTED + RetryInfo / HTTP 429 + Retry-After), or, with
// `throttle_behavior: delay`, held until then when that is at most `max_delay`.
//
// A request larger than the burst passes once the bucket is full and leaves it in debt, so big
// batches are slowed, never starved. Bytes come from ctx.bytes (set by receivers); without it the
// bytes bucket is not charged. The tenant table is bounded (`max_tenants`, least recently used
// evicted and counted; an evicted tenant starts again with a full bucket). One rate_limit id in
// several pipelines (one instance per pipeline) shares its tenant table: a tenant's bytes limit
// holds for its traces, metrics and logs together, not once per pipeline.
import { countItems, type SignalData, type SignalType } from '../../../../proto/src/model.ts';
import { ConfigError, ThrottledError } from '../../component/errors.ts';
import type { Component, Consumer, CreateSettings, ProcessorFactory, RequestContext } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import type { MetricFamily } from '../../telemetry/metrics.ts';

export type Dimension = 'spans' | 'data_points' | 'log_records' | 'bytes';
const DIMENSIONS: Dimension[] = ['spans', 'data_points', 'log_records', 'bytes'];
const ITEM_DIMENSION: Record<SignalType, Dimension> = { traces: 'spans', metrics: 'data_points', logs: 'log_records' };

export interface Limit {
  /** Tokens per second; 0 = unlimited. */
  rate: number;
  burst: number;
}

export type Limits = Partial<Record<Dimension, Limit>>;

export interface RateLimitConfig {
  throttleBehavior: 'error' | 'delay';
  maxDelayMs: number;
  maxTenants: number;
  defaultTier: string;
  /** Tenant used when the request carries none. */
  anonymousTenant: string;
  tiers: Map<string, Limits>;
  overrides: Map<string, { tier?: string; limits: Limits }>;
}

interface Bucket {
  tokens: number;
  rate: number;
  burst: number;
}

interface TenantState {
  tier: string;
  /** Indexed by DIMENSIONS order; undefined = unlimited. */
  buckets: Array<Bucket | undefined>;
  last: number;
}

/** The tenant table of one rate_limit id, shared by its per-pipeline instances. */
interface SharedTenants {
  tenants: Map<string, TenantState>;
  evictions: number;
}

/** Keyed by the validated config, which the service builds once per component id. */
const sharedTenants = new WeakMap<RateLimitConfig, SharedTenants>();

function readLimits(r: ConfigReader): Limits {
  const out: Limits = {};
  for (const d of DIMENSIONS) {
    if (!r.has(d)) {
      r.skip(d);
      continue;
    }
    const lr = r.sub(d);
    const rate = d === 'bytes' ? lr.size('rate', 0) : lr.num('rate', 0, { min: 0 });
    const burst = d === 'bytes' ? lr.size('burst', rate) : lr.num('burst', rate, { min: 0 });
    if (rate > 0 && burst <= 0) throw new ConfigError(lr.field('burst'), 'must be > 0 when rate is set');
    lr.done();
    out[d] = { rate, burst };
  }
  return out;
}

export function validateRateLimitConfig(raw: unknown, path: string): RateLimitConfig {
  const r = new ConfigReader(raw, path);
  const cfg: RateLimitConfig = {
    throttleBehavior: r.oneOf('throttle_behavior', ['error', 'delay'] as const, 'error'),
    maxDelayMs: r.duration('max_delay', 1000),
    maxTenants: r.num('max_tenants', 10_000, { min: 1, integer: true }),
    defaultTier: r.str('default_tier', 'medium'),
    anonymousTenant: r.str('anonymous_tenant', 'anonymous'),
    tiers: new Map(),
    overrides: new Map(),
  };
  for (const [name, tr] of r.map('tiers')) {
    cfg.tiers.set(name, readLimits(tr));
    tr.done();
  }
  for (const t of ['high', 'medium', 'low']) if (!cfg.tiers.has(t)) cfg.tiers.set(t, {});
  if (!cfg.tiers.has(cfg.defaultTier)) throw new ConfigError(r.field('default_tier'), `tier ${JSON.stringify(cfg.defaultTier)} is not defined in tiers`);
  for (const [tenant, or] of r.map('overrides')) {
    const tier = or.str('tier');
    if (tier !== undefined && !cfg.tiers.has(tier)) throw new ConfigError(or.field('tier'), `tier ${JSON.stringify(tier)} is not defined in tiers`);
    cfg.overrides.set(tenant, { tier, limits: readLimits(or) });
    or.done();
  }
  r.done();
  return cfg;
}

export class RateLimiter<S extends SignalType> implements Component, Consumer<S> {
  private readonly shared: SharedTenants;
  private readonly itemDim: number;
  private readonly throttledFamily?: MetricFamily;
  private readonly evicted?: { value: number };
  private readonly now: () => number;

  constructor(private readonly settings: CreateSettings, readonly cfg: RateLimitConfig, private readonly signal: S, private readonly next: Consumer<S>, now?: () => number) {
    this.itemDim = DIMENSIONS.indexOf(ITEM_DIMENSION[signal]);
    this.now = now ?? (() => performance.now());
    let shared = sharedTenants.get(cfg);
    if (!shared) sharedTenants.set(cfg, (shared = { tenants: new Map(), evictions: 0 }));
    this.shared = shared;
    const reg = settings.telemetry?.registry;
    if (reg) {
      this.throttledFamily = reg.counter('kscope_rate_limit_throttled_items_total', 'Items refused or delayed by the rate limiter, per tenant.');
      this.evicted = reg.counter('kscope_rate_limit_tenant_evictions_total', 'Tenants dropped from the bounded rate limiter table.').at({ processor: settings.id });
    }
  }

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  /** Tenants evicted from the (shared) table so far. */
  get evictions(): number {
    return this.shared.evictions;
  }

  private tenantState(tenant: string, tierHint: string | undefined): TenantState {
    const tenants = this.shared.tenants;
    let st = tenants.get(tenant);
    if (st) {
      // Move to the back: the Map's insertion order is the LRU order.
      tenants.delete(tenant);
      tenants.set(tenant, st);
      return st;
    }
    if (tenants.size >= this.cfg.maxTenants) {
      const oldest = tenants.keys().next().value as string;
      tenants.delete(oldest);
      this.shared.evictions++;
      if (this.evicted) this.evicted.value++;
    }
    const ov = this.cfg.overrides.get(tenant);
    const tier = ov?.tier ?? (tierHint && this.cfg.tiers.has(tierHint) ? tierHint : this.cfg.defaultTier);
    const base = this.cfg.tiers.get(tier)!;
    const buckets = DIMENSIONS.map((d) => {
      const l = ov?.limits[d] ?? base[d];
      return l && l.rate > 0 ? { tokens: l.burst, rate: l.rate, burst: l.burst } : undefined;
    });
    st = { tier, buckets, last: this.now() };
    tenants.set(tenant, st);
    return st;
  }

  /** Tier of a tenant as the limiter resolved it (for tests and routing). */
  tierOf(tenant: string): string | undefined {
    return this.shared.tenants.get(tenant)?.tier;
  }

  consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    const tenant = ctx.tenant ?? this.cfg.anonymousTenant;
    const st = this.tenantState(tenant, ctx.tier);
    const t = this.now();
    const elapsed = (t - st.last) / 1000;
    st.last = t;
    const items = countItems(this.signal, batch);
    const bytes = ctx.bytes ?? 0;
    const bi = st.buckets[this.itemDim];
    const bb = st.buckets[3];
    // Refill every bucket (the elapsed time is spent now, whether or not this request charges
    // the bucket), then find the longest wait any bucket imposes.
    for (const b of st.buckets) if (b) b.tokens = Math.min(b.burst, b.tokens + elapsed * b.rate);
    let waitS = 0;
    if (bi) {
      const need = Math.min(items, bi.burst);
      if (bi.tokens < need) waitS = Math.max(waitS, (need - bi.tokens) / bi.rate);
    }
    if (bb && bytes > 0) {
      const need = Math.min(bytes, bb.burst);
      if (bb.tokens < need) waitS = Math.max(waitS, (need - bb.tokens) / bb.rate);
    }
    if (waitS === 0) {
      if (bi) bi.tokens -= items;
      if (bb) bb.tokens -= bytes;
      return this.next.consume(batch, ctx);
    }
    const waitMs = Math.ceil(waitS * 1000);
    this.throttledFamily?.add({ processor: this.settings.id, signal: this.signal, tenant, tier: st.tier }, items);
    if (this.cfg.throttleBehavior === 'delay' && waitMs <= this.cfg.maxDelayMs) {
      // Reserve now (the bucket goes into debt) so later requests queue behind this one.
      if (bi) bi.tokens -= items;
      if (bb) bb.tokens -= bytes;
      return new Promise<void>((resolve) => setTimeout(resolve, waitMs)).then(() => this.next.consume(batch, ctx));
    }
    return Promise.reject(new ThrottledError(`rate limit exceeded for tenant ${JSON.stringify(tenant)} (tier ${st.tier})`, waitMs));
  }
}

export const rateLimitFactory: ProcessorFactory<RateLimitConfig> = {
  type: 'rate_limit',
  kind: 'processor',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => validateRateLimitConfig({}, 'processors.rate_limit'),
  validate: validateRateLimitConfig,
  create: (settings, cfg, signal, next) => new RateLimiter(settings, cfg, signal, next),
};
