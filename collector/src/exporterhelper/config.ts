// The exporterhelper section every exporter config embeds: timeout, retry_on_failure, sending_queue.
// Defaults follow otelcol's exporterhelper (5s timeout; retry 5s initial, 30s max, ×1.5, 300s
// elapsed; queue of 1000 requests with 10 consumers).
import { ConfigError } from '../component/errors.ts';
import type { ConfigReader } from '../config/reader.ts';

export interface RetryConfig {
  enabled: boolean;
  initialIntervalMs: number;
  maxIntervalMs: number;
  multiplier: number;
  /** Jitter fraction: each wait is scaled by a random factor in [1-r, 1+r]. */
  randomizationFactor: number;
  /** Give up (drop and count) after this long; 0 = retry forever. */
  maxElapsedMs: number;
}

export interface PersistentStorageConfig {
  directory: string;
  /** Upper bound of queued bytes on disk (segments not yet fully acknowledged). */
  maxBytes: number;
  /** Segment file size at which a new segment starts. */
  segmentBytes: number;
  /** fsync appends and acks before acknowledging (at-least-once across power loss, not only crashes). */
  fsync: boolean;
  /** When full, drop the oldest pending records (counted) instead of refusing new data. */
  dropOldest?: boolean;
}

export interface QueueConfig {
  enabled: boolean;
  numConsumers: number;
  /** Max queued requests (in-memory queue). */
  queueSize: number;
  /** Wait for room instead of refusing when full (either queue kind), until the caller's deadline if it has one. */
  blockOnOverflow: boolean;
  /** How long shutdown drains the in-memory queue before dropping what is left. */
  drainTimeoutMs: number;
  storage?: PersistentStorageConfig;
}

export interface ExporterHelperConfig {
  /** Per attempt, bounded by the caller's deadline too (no queue); 0 = no timeout (as in core). */
  timeoutMs: number;
  retry: RetryConfig;
  queue: QueueConfig;
}

export function defaultExporterHelperConfig(): ExporterHelperConfig {
  return {
    timeoutMs: 5000,
    retry: { enabled: true, initialIntervalMs: 5000, maxIntervalMs: 30_000, multiplier: 1.5, randomizationFactor: 0.5, maxElapsedMs: 300_000 },
    queue: { enabled: true, numConsumers: 10, queueSize: 1000, blockOnOverflow: false, drainTimeoutMs: 10_000 },
  };
}

/** Reads `timeout`, `retry_on_failure` and `sending_queue` from an exporter's config reader. */
export function readExporterHelperConfig(r: ConfigReader, defaults = defaultExporterHelperConfig()): ExporterHelperConfig {
  const d = defaults;
  const timeoutMs = r.duration('timeout', d.timeoutMs);
  const rr = r.sub('retry_on_failure');
  const retry: RetryConfig = {
    enabled: rr.bool('enabled', d.retry.enabled),
    initialIntervalMs: rr.duration('initial_interval', d.retry.initialIntervalMs),
    maxIntervalMs: rr.duration('max_interval', d.retry.maxIntervalMs),
    multiplier: rr.num('multiplier', d.retry.multiplier, { min: 1 }),
    randomizationFactor: rr.num('randomization_factor', d.retry.randomizationFactor, { min: 0, max: 1 }),
    maxElapsedMs: rr.duration('max_elapsed_time', d.retry.maxElapsedMs),
  };
  rr.done();
  if (retry.maxIntervalMs < retry.initialIntervalMs)
    throw new ConfigError(rr.field('max_interval'), 'must be >= initial_interval');
  const qr = r.sub('sending_queue');
  const queue: QueueConfig = {
    enabled: qr.bool('enabled', d.queue.enabled),
    numConsumers: qr.num('num_consumers', d.queue.numConsumers, { min: 1, max: 1000, integer: true }),
    queueSize: qr.num('queue_size', d.queue.queueSize, { min: 1, integer: true }),
    blockOnOverflow: qr.bool('block_on_overflow', d.queue.blockOnOverflow),
    drainTimeoutMs: qr.duration('drain_timeout', d.queue.drainTimeoutMs),
  };
  if (qr.has('storage')) {
    const sr = qr.sub('storage');
    const directory = sr.str('directory');
    if (!directory) throw new ConfigError(sr.field('directory'), 'is required for a persistent queue');
    queue.storage = {
      directory,
      maxBytes: sr.size('max_bytes', 256 * 1024 * 1024),
      segmentBytes: sr.size('segment_bytes', 8 * 1024 * 1024),
      fsync: sr.bool('fsync', true),
      dropOldest: sr.bool('drop_oldest', false),
    };
    if (queue.storage.segmentBytes < 4096) throw new ConfigError(sr.field('segment_bytes'), 'must be >= 4096');
    if (queue.storage.maxBytes < queue.storage.segmentBytes) throw new ConfigError(sr.field('max_bytes'), 'must be >= segment_bytes');
    sr.done();
  }
  qr.done();
  return { timeoutMs, retry, queue };
}
