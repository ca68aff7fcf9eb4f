// exporterhelper: sending_queue.block_on_overflow with the persistent queue too (core blocks there
// as well), and the wait for room bounded by the caller's deadline (both queue kinds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueuedExporter, defaultExporterHelperConfig, PersistentQueue, type ExporterHelperConfig } from '../../collector/src/exporterhelper/index.ts';
import { RetryableError } from '../../collector/src/component/errors.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import { jsonTestCodec } from '../../collector/src/testing/json-codec.ts';
import { countSpans, type TracesData } from '../../proto/src/model.ts';

const host = { reportFatal() {} };

function cfg(over: (c: ExporterHelperConfig) => void): ExporterHelperConfig {
  const c = defaultExporterHelperConfig();
  c.timeoutMs = 5000;
  c.retry = { enabled: true, initialIntervalMs: 5, maxIntervalMs: 20, multiplier: 2, randomizationFactor: 0, maxElapsedMs: 5000 };
  c.queue.numConsumers = 1;
  c.queue.drainTimeoutMs = 5000;
  over(c);
  return c;
}

/** A push held until release(); what it delivered. */
function gatedPush() {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const s = { delivered: 0, release, push: async (b: TracesData) => { await gate; s.delivered += countSpans(b); } };
  return s;
}

const PENDING = Symbol('pending');
/** The promise's outcome if settled within `ms`, else PENDING (rejections propagate). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | typeof PENDING> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise<typeof PENDING>((res) => (t = setTimeout(() => res(PENDING), ms)))]);
  clearTimeout(t);
  return r;
}

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ks-block-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const storageIn = (dir: string) => ({ directory: dir, maxBytes: 8192, segmentBytes: 4096, fsync: false });

test('persistent queue + block_on_overflow: a full queue makes the caller wait for room instead of refusing', withDir(async (dir) => {
  const tel = new SelfTelemetry(new MetricsRegistry());
  const g = gatedPush();
  const ex = new QueuedExporter({ id: 'x', logger: testLogger(), telemetry: tel }, cfg((c) => { c.queue.storage = storageIn(dir); c.queue.blockOnOverflow = true; }), 'traces', (b) => g.push(b as TracesData), { codec: jsonTestCodec });
  await ex.start(host);
  let accepted = 0;
  let blocked: Promise<void> | undefined;
  for (let i = 0; i < 200 && !blocked; i++) {
    const p = ex.consume(makeTraces(2), {});
    if ((await within(p, 150)) === PENDING) blocked = p;
    else accepted += 2;
  }
  assert.ok(blocked, 'the queue filled up and the next consume waits');
  assert.ok(accepted > 0);
  assert.equal(tel.registry.get('kscope_exporter_enqueue_failed_items_total')!.sum(), 0, 'nothing refused');
  g.release(); // the backend drains the queue: acknowledged segments free the room
  await blocked;
  await ex.shutdown();
  assert.equal(g.delivered, accepted + 2, 'everything accepted, the waiting batch included, was delivered');
  const pq = new PersistentQueue(storageIn(dir), testLogger());
  pq.open();
  assert.equal(pq.size, 0, 'nothing left to replay');
  await pq.close();
}));

test("persistent queue + block_on_overflow: the wait ends at the caller's deadline (refused, counted)", withDir(async (dir) => {
  const tel = new SelfTelemetry(new MetricsRegistry());
  const g = gatedPush();
  const ex = new QueuedExporter({ id: 'x', logger: testLogger(), telemetry: tel }, cfg((c) => { c.queue.storage = storageIn(dir); c.queue.blockOnOverflow = true; c.queue.drainTimeoutMs = 50; }), 'traces', (b) => g.push(b as TracesData), { codec: jsonTestCodec });
  await ex.start(host);
  let t0 = 0;
  let refused: unknown;
  for (let i = 0; i < 200 && refused === undefined; i++) {
    t0 = Date.now();
    try {
      await ex.consume(makeTraces(2), { deadline: t0 + 120 });
    } catch (err) {
      refused = err;
    }
  }
  assert.ok(refused instanceof RetryableError, `refused as retryable: ${String(refused)}`);
  const waited = Date.now() - t0;
  assert.ok(waited >= 100 && waited < 2000, `waited until the deadline: ${waited} ms`);
  assert.equal(tel.registry.get('kscope_exporter_enqueue_failed_items_total')!.sum(), 2);
  // A record larger than max_bytes can never fit: refused at once, not after the deadline.
  const t1 = Date.now();
  await assert.rejects(ex.consume(makeTraces(400), { deadline: Date.now() + 5000 }), RetryableError);
  assert.ok(Date.now() - t1 < 1000, `${Date.now() - t1} ms`);
  g.release();
  await ex.shutdown();
}));

test('persistent queue + block_on_overflow: shutdown releases a waiting caller', withDir(async (dir) => {
  const g = gatedPush();
  const ex = new QueuedExporter({ id: 'x', logger: testLogger() }, cfg((c) => { c.queue.storage = storageIn(dir); c.queue.blockOnOverflow = true; c.queue.drainTimeoutMs = 50; }), 'traces', (b) => g.push(b as TracesData), { codec: jsonTestCodec });
  await ex.start(host);
  let blocked: Promise<void> | undefined;
  for (let i = 0; i < 200 && !blocked; i++) {
    const p = ex.consume(makeTraces(2), {});
    if ((await within(p, 150)) === PENDING) blocked = p;
  }
  assert.ok(blocked);
  const settled = blocked.then(() => 'accepted', () => 'refused');
  await ex.shutdown();
  assert.equal(await within(settled, 1000), 'refused');
  g.release();
}));

test("in-memory queue + block_on_overflow: the wait ends at the caller's deadline", async () => {
  const tel = new SelfTelemetry(new MetricsRegistry());
  const g = gatedPush();
  const ex = new QueuedExporter({ id: 'x', logger: testLogger(), telemetry: tel }, cfg((c) => { c.queue.queueSize = 1; c.queue.blockOnOverflow = true; c.queue.drainTimeoutMs = 50; }), 'traces', (b) => g.push(b as TracesData));
  await ex.start(host);
  await ex.consume(makeTraces(1), {}); // taken by the consumer, held in push
  await new Promise((r) => setImmediate(r));
  await ex.consume(makeTraces(1), {}); // fills the queue
  const t0 = Date.now();
  const r = await within(ex.consume(makeTraces(3), { deadline: t0 + 100 }).then(() => 'accepted', (e: unknown) => e), 2000);
  assert.ok(r instanceof RetryableError, `refused at the deadline: ${String(r)}`);
  assert.ok(Date.now() - t0 >= 90, `${Date.now() - t0} ms`);
  assert.equal(tel.registry.get('kscope_exporter_enqueue_failed_items_total')!.sum(), 3);
  g.release();
  await ex.shutdown();
});
