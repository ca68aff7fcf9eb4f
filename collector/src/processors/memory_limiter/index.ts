// memory_limiter: refuses data while the process uses more memory than the soft limit, so senders
// back off (and retry) instead of the collector being OOM-killed. Put it first in every pipeline.
//
// Limits: `limit_mib` (hard) and `spike_limit_mib` (soft = hard − spike; default spike 20 % of the
// hard limit), or `limit_percentage` / `spike_limit_percentage` of the cgroup memory limit (v2
// memory.max or v1 memory.limit_in_bytes, else host memory). Memory is measured as RSS (what the
// cgroup OOM killer counts) every `check_interval`, and inline when a check is overdue (timers lag
// under load). Above soft: refuse. Above hard: refuse and ask V8 for a full GC (at most once per
// `min_gc_interval`; V8's gc() is fetched at start, so no --expose-gc flag is needed). Below soft
// again: accept (recovery).
// The OTLP receivers ask it before decoding a request (Consumer.refusal), so under a flood the
// refused requests are not decoded into garbage first.
// Refusal is RetryableError (→ gRPC UNAVAILABLE / HTTP 503) or, with `refuse_with:
// resource_exhausted`, ThrottledError carrying `retry_after` (→ RESOURCE_EXHAUSTED + RetryInfo / 429).
import type { SignalData, SignalType } from '../../../../proto/src/model.ts';
import { ConfigError, RetryableError, ThrottledError } from '../../component/errors.ts';
import type { Component, Consumer, CreateSettings, Host, ProcessorFactory, RequestContext } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import { cgroupMemoryLimit } from './cgroup.ts';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * V8's full GC: `globalThis.gc` under --expose-gc, else fetched by setting the flag at run time
 * and reading `gc` from a new context (contexts made after the flag have it). Without it the
 * limiter could only refuse and wait for V8 to collect on its own schedule, which under a
 * flood of refused-but-received requests may be too late for the cgroup's OOM killer.
 */
export function v8Gc(): (() => void) | undefined {
  const g = (globalThis as { gc?: unknown }).gc;
  if (typeof g === 'function') return g as () => void;
  try {
    setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    return typeof fn === 'function' ? (fn as () => void) : undefined;
  } catch {
    return undefined;
  }
}

export interface MemoryLimiterConfig {
  checkIntervalMs: number;
  /** Resolved hard and soft limits in bytes. */
  hardLimitBytes: number;
  softLimitBytes: number;
  refuseWith: 'unavailable' | 'resource_exhausted';
  retryAfterMs: number;
  minGcIntervalMs: number;
  minGcIntervalSoftMs: number;
  /** rss (what the OOM killer counts) or heap (V8 heap used + external buffers). */
  measure: 'rss' | 'heap';
  /** Where the limit came from, for the startup log. */
  limitSource: string;
}

const MiB = 1024 * 1024;

export interface MemoryLimiterDeps {
  /** Current memory use in bytes (default: RSS). */
  readMemory?: () => number;
  /** Forces a GC (default: V8's, see v8Gc()). */
  gc?: () => void;
  now?: () => number;
}

export class MemoryLimiter<S extends SignalType> implements Component, Consumer<S> {
  private refusing = false;
  private lastCheck = 0;
  private lastGc = -Infinity;
  private timer?: NodeJS.Timeout;
  private readonly readMemory: () => number;
  private readonly gc?: () => void;
  private readonly now: () => number;
  /** Last measured use, for tests and self-telemetry. */
  usedBytes = 0;
  refusals = 0;
  /** Full GCs the limiter asked for. */
  gcRuns = 0;

  constructor(private readonly settings: CreateSettings, readonly cfg: MemoryLimiterConfig, private readonly next: Consumer<S>, deps: MemoryLimiterDeps = {}) {
    this.readMemory =
      deps.readMemory ??
      (cfg.measure === 'rss'
        ? () => process.memoryUsage.rss()
        : () => {
            const m = process.memoryUsage();
            return m.heapUsed + m.external;
          });
    this.gc = deps.gc ?? v8Gc();
    if (!this.gc) settings.logger.warn('V8 gc() unavailable: the memory limiter can refuse data but not force a collection');
    this.now = deps.now ?? Date.now;
    const reg = settings.telemetry?.registry;
    if (reg) {
      const used = reg.gauge('kscope_memory_limiter_used_bytes', 'Memory in use as last measured by the memory limiter.');
      const refusing = reg.gauge('kscope_memory_limiter_refusing', '1 while the memory limiter refuses data.');
      reg.onCollect(() => {
        used.set({ processor: settings.id }, this.usedBytes);
        refusing.set({ processor: settings.id }, this.refusing ? 1 : 0);
      });
    }
  }

  get isRefusing(): boolean {
    return this.refusing;
  }

  async start(_host: Host): Promise<void> {
    if (this.timer) return;
    this.settings.logger.info(
      { hardMiB: Math.round(this.cfg.hardLimitBytes / MiB), softMiB: Math.round(this.cfg.softLimitBytes / MiB), source: this.cfg.limitSource },
      'memory limiter started',
    );
    this.check();
    this.timer = setInterval(() => this.check(), this.cfg.checkIntervalMs);
    this.timer.unref();
  }

  /** Measures memory and updates the refusing state. */
  check(): void {
    const t = this.now();
    this.lastCheck = t;
    this.usedBytes = this.readMemory();
    // Above the soft limit a full GC may free what the queues just released; above the hard limit it
    // is the last resort. Both are rate-limited: a full GC stalls the event loop.
    const gcInterval = this.usedBytes >= this.cfg.hardLimitBytes ? this.cfg.minGcIntervalMs : this.cfg.minGcIntervalSoftMs;
    if (this.usedBytes >= this.cfg.softLimitBytes && this.gc && t - this.lastGc >= gcInterval) {
      this.lastGc = t;
      this.gcRuns++;
      this.gc();
      this.usedBytes = this.readMemory();
    }
    const was = this.refusing;
    this.refusing = this.usedBytes >= this.cfg.softLimitBytes;
    if (was !== this.refusing)
      this.settings.logger.warn({ usedMiB: Math.round(this.usedBytes / MiB), softMiB: Math.round(this.cfg.softLimitBytes / MiB) }, this.refusing ? 'memory above soft limit: refusing data' : 'memory below soft limit: accepting data again');
  }

  /** Receivers ask before decoding (Consumer.refusal): a refused request then costs no decode. */
  refusal(): Error | undefined {
    if (this.now() - this.lastCheck > this.cfg.checkIntervalMs) this.check();
    if (!this.refusing) return undefined;
    this.refusals++;
    const msg = `memory limiter: data refused, memory use ${Math.round(this.usedBytes / MiB)} MiB above soft limit ${Math.round(this.cfg.softLimitBytes / MiB)} MiB`;
    return this.cfg.refuseWith === 'resource_exhausted' ? new ThrottledError(msg, this.cfg.retryAfterMs) : new RetryableError(msg, this.cfg.retryAfterMs);
  }

  consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    const err = this.refusal();
    return err ? Promise.reject(err) : this.next.consume(batch, ctx);
  }

  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export function validateMemoryLimiterConfig(raw: unknown, path: string, cgroup = cgroupMemoryLimit): MemoryLimiterConfig {
  const r = new ConfigReader(raw, path);
  const checkIntervalMs = r.duration('check_interval', 1000);
  if (checkIntervalMs <= 0) throw new ConfigError(r.field('check_interval'), 'must be > 0');
  const limitMib = r.num('limit_mib', undefined, { min: 1 });
  const spikeMib = r.num('spike_limit_mib', undefined, { min: 0 });
  const limitPct = r.num('limit_percentage', undefined, { min: 1, max: 100 });
  const spikePct = r.num('spike_limit_percentage', undefined, { min: 0, max: 100 });
  const refuseWith = r.oneOf('refuse_with', ['unavailable', 'resource_exhausted'] as const, 'unavailable');
  const retryAfterMs = r.duration('retry_after', 1000);
  // otelcol calls it min_gc_interval_when_hard_limited: accepted too, so its configs load
  if (r.has('min_gc_interval') && r.has('min_gc_interval_when_hard_limited'))
    throw new ConfigError(r.field('min_gc_interval_when_hard_limited'), 'set either min_gc_interval or min_gc_interval_when_hard_limited, not both');
  const minGcIntervalMs = r.has('min_gc_interval_when_hard_limited') ? r.duration('min_gc_interval_when_hard_limited', 10_000) : r.duration('min_gc_interval', 10_000);
  const minGcIntervalSoftMs = r.duration('min_gc_interval_when_soft_limited', 30_000);
  const measure = r.oneOf('measure', ['rss', 'heap'] as const, 'rss');
  r.done();
  let hard: number;
  let spike: number;
  let limitSource: string;
  if (limitMib !== undefined) {
    if (limitPct !== undefined) throw new ConfigError(r.field('limit_percentage'), 'set either limit_mib or limit_percentage, not both');
    hard = limitMib * MiB;
    spike = spikeMib !== undefined ? spikeMib * MiB : hard * 0.2;
    limitSource = 'limit_mib';
  } else if (limitPct !== undefined) {
    const total = cgroup();
    hard = (total.bytes * limitPct) / 100;
    spike = ((spikePct ?? limitPct * 0.2) * total.bytes) / 100;
    limitSource = `${limitPct}% of ${total.source} limit ${Math.round(total.bytes / MiB)} MiB`;
  } else {
    throw new ConfigError(r.field('limit_mib'), 'one of limit_mib or limit_percentage is required');
  }
  if (spike >= hard) throw new ConfigError(r.field(limitMib !== undefined ? 'spike_limit_mib' : 'spike_limit_percentage'), 'must be below the limit');
  return { checkIntervalMs, hardLimitBytes: hard, softLimitBytes: hard - spike, refuseWith, retryAfterMs, minGcIntervalMs, minGcIntervalSoftMs, measure, limitSource };
}

export const memoryLimiterFactory: ProcessorFactory<MemoryLimiterConfig> = {
  type: 'memory_limiter',
  kind: 'processor',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => validateMemoryLimiterConfig({ limit_percentage: 80, spike_limit_percentage: 20 }, 'processors.memory_limiter'),
  validate: (raw, path) => validateMemoryLimiterConfig(raw, path),
  create: (settings, cfg, _signal, next) => new MemoryLimiter(settings, cfg, next),
};
