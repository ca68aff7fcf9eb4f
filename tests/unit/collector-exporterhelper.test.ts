import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueuedExporter, defaultExporterHelperConfig, readExporterHelperConfig, PersistentQueue, type ExporterHelperConfig } from '../../collector/src/exporterhelper/index.ts';
import { ConfigReader } from '../../collector/src/config/reader.ts';
import { PermanentError, RetryableError, ThrottledError, ConfigError } from '../../collector/src/component/errors.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import { jsonTestCodec } from '../../collector/src/testing/json-codec.ts';
import { countSpans, type TracesData } from '../../proto/src/model.ts';

const host = { reportFatal() {} };

function fastCfg(over: (c: ExporterHelperConfig) => void = () => {}): ExporterHelperConfig {
  const c = defaultExporterHelperConfig();
  c.timeoutMs = 200;
  c.retry = { enabled: true, initialIntervalMs: 5, maxIntervalMs: 20, multiplier: 2, randomizationFactor: 0, maxElapsedMs: 2000 };
  c.queue.numConsumers = 2;
  c.queue.drainTimeoutMs = 2000;
  over(c);
  return c;
}

function settings(tel = new SelfTelemetry(new MetricsRegistry())) {
  return { id: 'test', logger: testLogger(), telemetry: tel };
}

/** Opens the persistent queue in `storage` afresh: nothing may be left to replay. */
async function assertNothingPending(storage: ConstructorParameters<typeof PersistentQueue>[0]): Promise<void> {
  const pq = new PersistentQueue(storage, testLogger());
  pq.open();
  assert.equal(pq.pendingCount, 0);
  await pq.close();
}

const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('config: defaults follow otelcol; storage needs a directory; errors name the field', () => {
  const c = readExporterHelperConfig(new ConfigReader({}, 'exporters.x'));
  assert.equal(c.timeoutMs, 5000);
  assert.equal(c.queue.queueSize, 1000);
  assert.equal(c.retry.maxElapsedMs, 300_000);
  assert.throws(() => readExporterHelperConfig(new ConfigReader({ sending_queue: { storage: {} } }, 'exporters.x')), (e: unknown) => e instanceof ConfigError && e.field === 'exporters.x.sending_queue.storage.directory');
  assert.throws(() => readExporterHelperConfig(new ConfigReader({ retry_on_failure: { multiplier: 0.5 } }, 'exporters.x')), (e: unknown) => e instanceof ConfigError && e.field === 'exporters.x.retry_on_failure.multiplier');
});

test('retries retryable errors honouring the throttle delay; permanent errors are dropped and counted', async () => {
  const tel = new SelfTelemetry(new MetricsRegistry());
  const attempts: number[] = [];
  let fail: unknown[] = [new RetryableError('down'), new ThrottledError('slow down', 150)];
  let got = 0;
  const ex = new QueuedExporter(settings(tel), fastCfg(), 'traces', async (b) => {
    attempts.push(Date.now());
    const f = fail.shift();
    if (f) throw f;
    got += countSpans(b as TracesData);
  });
  await ex.start(host);
  await ex.consume(makeTraces(4), {});
  await until(() => got === 4);
  assert.equal(attempts.length, 3);
  assert.ok(attempts[2] - attempts[1] >= 140, `throttle delay honoured: ${attempts[2] - attempts[1]} ms`);
  fail = [new PermanentError('bad data')];
  await ex.consume(makeTraces(2), {});
  await until(() => tel.registry.get('kscope_exporter_send_failed_items_total')!.sum({ reason: 'permanent' }) === 2);
  assert.equal(tel.registry.get('kscope_exporter_sent_items_total')!.sum(), 4);
  await ex.shutdown();
});

test('timeout per request is retryable; retries exhausted after max_elapsed_time drop and count', async () => {
  const tel = new SelfTelemetry(new MetricsRegistry());
  let calls = 0;
  const ex = new QueuedExporter(settings(tel), fastCfg((c) => { c.timeoutMs = 30; c.retry.maxElapsedMs = 150; }), 'traces', (_b, _c, abort) => {
    calls++;
    return new Promise((_r, reject) => abort.addEventListener('abort', () => reject(new Error('aborted'))));
  });
  await ex.start(host);
  await ex.consume(makeTraces(3), {});
  await until(() => tel.registry.get('kscope_exporter_send_failed_items_total')!.sum({ reason: 'retries_exhausted' }) === 3);
  assert.ok(calls >= 2);
  await ex.shutdown();
});

test('bounded in-memory queue: refuses when full (counted), or blocks with block_on_overflow', async () => {
  const tel = new SelfTelemetry(new MetricsRegistry());
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const ex = new QueuedExporter(settings(tel), fastCfg((c) => { c.queue.queueSize = 2; c.queue.numConsumers = 1; }), 'traces', () => gate);
  await ex.start(host);
  await ex.consume(makeTraces(1), {}); // taken by the consumer, blocked in push
  await new Promise((r) => setImmediate(r));
  await ex.consume(makeTraces(1), {});
  await ex.consume(makeTraces(1), {});
  await assert.rejects(ex.consume(makeTraces(5), {}), RetryableError);
  assert.equal(tel.registry.get('kscope_exporter_enqueue_failed_items_total')!.sum(), 5);
  release();
  await ex.shutdown();

  let release2!: () => void;
  const gate2 = new Promise<void>((r) => (release2 = r));
  let sent = 0;
  const blocking = new QueuedExporter(settings(), fastCfg((c) => { c.queue.queueSize = 1; c.queue.numConsumers = 1; c.queue.blockOnOverflow = true; }), 'traces', async () => { await gate2; sent++; });
  await blocking.start(host);
  await blocking.consume(makeTraces(1), {});
  await new Promise((r) => setImmediate(r));
  await blocking.consume(makeTraces(1), {});
  let third = false;
  const p = blocking.consume(makeTraces(1), {}).then(() => (third = true));
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(third, false, 'back-pressure: the caller waits for room');
  release2();
  await p;
  await blocking.shutdown();
  assert.equal(sent, 3, 'shutdown drained the queue');
});

test('shutdown drains the in-memory queue, and drops (counted) what cannot be sent within drain_timeout', async () => {
  const tel = new SelfTelemetry(new MetricsRegistry());
  let sent = 0;
  const ex = new QueuedExporter(settings(tel), fastCfg(), 'traces', async (b) => { await new Promise((r) => setTimeout(r, 5)); sent += countSpans(b as TracesData); });
  await ex.start(host);
  for (let i = 0; i < 10; i++) await ex.consume(makeTraces(10), {});
  await ex.shutdown();
  assert.equal(sent, 100);

  const tel2 = new SelfTelemetry(new MetricsRegistry());
  const down = new QueuedExporter(settings(tel2), fastCfg((c) => { c.queue.drainTimeoutMs = 50; c.queue.numConsumers = 1; }), 'traces', async () => { throw new RetryableError('down'); });
  await down.start(host);
  for (let i = 0; i < 3; i++) await down.consume(makeTraces(2), {});
  await down.shutdown();
  assert.equal(tel2.registry.get('kscope_exporter_send_failed_items_total')!.sum({ reason: 'shutdown' }), 6);
});

test('persistent queue: survives restart without loss, replays unacknowledged records, bounded in bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-pq-'));
  try {
    const storage = { directory: dir, maxBytes: 1 << 20, segmentBytes: 4096, fsync: true };
    // Backend down: everything is queued on disk.
    const ex1 = new QueuedExporter(settings(), fastCfg((c) => { c.queue.storage = storage; c.queue.drainTimeoutMs = 20; }), 'traces', async () => { throw new RetryableError('down'); }, { codec: jsonTestCodec });
    await ex1.start(host);
    for (let i = 0; i < 20; i++) await ex1.consume(makeTraces(5, [{ key: 'service.name', value: `s${i}` }]), { tenant: `t${i % 2}` });
    await ex1.shutdown();
    assert.ok(readdirSync(dir).filter((f) => f.endsWith('.seg')).length > 1, 'several segments written');

    // Restart with the backend up: all 100 spans arrive, with their tenant.
    const got = new Map<string, number>();
    const ex2 = new QueuedExporter(settings(), fastCfg((c) => { c.queue.storage = storage; }), 'traces', async (b, ctx) => {
      got.set(ctx.tenant!, (got.get(ctx.tenant!) ?? 0) + countSpans(b as TracesData));
    }, { codec: jsonTestCodec });
    await ex2.start(host);
    await until(() => (got.get('t0') ?? 0) + (got.get('t1') ?? 0) === 100);
    assert.deepEqual([...got.entries()].sort(), [['t0', 50], ['t1', 50]]);
    await ex2.shutdown();
    // Everything acknowledged: segments deleted, nothing replays on the next open.
    await assertNothingPending(storage);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('persistent queue: a torn tail record is truncated; the byte bound refuses appends', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-pq-'));
  try {
    const storage = { directory: dir, maxBytes: 8192, segmentBytes: 4096, fsync: false };
    const q = new PersistentQueue(storage, testLogger());
    q.open();
    await q.append(Buffer.alloc(1000, 1));
    await q.append(Buffer.alloc(1000, 2));
    await assert.rejects(Promise.all(Array.from({ length: 10 }, () => q.append(Buffer.alloc(1000, 3)))), /full/);
    await q.close();
    const seg = readdirSync(dir).find((f) => f.endsWith('.seg'))!;
    const { truncateSync } = await import('node:fs');
    const size = statSync(join(dir, seg)).size;
    truncateSync(join(dir, seg), size - 10); // crash in the middle of the last record
    const q2 = new PersistentQueue(storage, testLogger());
    q2.open();
    const first = await q2.take();
    assert.equal(first!.payload[0], 1);
    await q2.ack(first!.seq);
    await q2.close();
    const q3 = new PersistentQueue(storage, testLogger());
    q3.open();
    assert.ok(q3.pendingCount >= 1, 'unacknowledged records come back');
    const r = await q3.take();
    assert.notEqual(r!.payload[0], 1, 'acknowledged record is not replayed');
    await q3.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('empty batches are not queued nor sent (persistent and in-memory queues)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-pq-'));
  try {
    const storage = { directory: dir, maxBytes: 1 << 20, segmentBytes: 4096, fsync: false };
    let pushes = 0;
    const push = async () => { pushes++; };
    for (const disk of [true, false]) {
      const ex = new QueuedExporter(settings(), fastCfg((c) => { if (disk) c.queue.storage = storage; }), 'traces', push, { codec: jsonTestCodec });
      await ex.start(host);
      for (let i = 0; i < 50; i++) await ex.consume({ resourceSpans: [] }, { tenant: 't' });
      await ex.consume(makeTraces(0), { tenant: 't' }); // a resource and scope without spans
      await ex.consume(makeTraces(2), { tenant: 't' });
      await ex.shutdown();
    }
    assert.equal(pushes, 2, 'only the batch with spans was sent, once per queue kind');
    await assertNothingPending(storage);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('persistent queue: a failing acknowledgement write is counted and retried, not a crash', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-pq-'));
  try {
    const storage = { directory: dir, maxBytes: 1 << 20, segmentBytes: 4096, fsync: false };
    const tel = new SelfTelemetry(new MetricsRegistry());
    let pushes = 0;
    const ex = new QueuedExporter(settings(tel), fastCfg((c) => { c.queue.storage = storage; }), 'traces', async () => { pushes++; }, { codec: jsonTestCodec });
    await ex.start(host);
    // the disk refuses the first three acknowledgement writes (as on ENOSPC or EIO)
    const q = (ex as unknown as { diskQueue: PersistentQueue }).diskQueue;
    const ack = q.ack.bind(q);
    let refusals = 3;
    q.ack = async (seq: number) => {
      if (refusals-- > 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return ack(seq);
    };
    await ex.consume(makeTraces(3), { tenant: 't' });
    await until(() => refusals < 0);
    await ex.shutdown();
    assert.equal(pushes, 1, 'sent once');
    assert.equal(tel.registry.get('kscope_exporter_queue_ack_failures_total')!.sum({}), 3);
    await assertNothingPending(storage); // the fourth write went through: nothing replays
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
