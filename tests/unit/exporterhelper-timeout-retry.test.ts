// exporterhelper: `timeout: 0` means no timeout (core adds no timeout sender then); without a
// queue, a request the helper gives up on is returned as retryable (core's "no more retries left"
// is not permanent, so the receiver answers UNAVAILABLE / 503 and the client resends), only a
// PermanentError stays permanent; the caller's deadline bounds each attempt and the retries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QueuedExporter, defaultExporterHelperConfig, readExporterHelperConfig, type ExporterHelperConfig } from '../../collector/src/exporterhelper/index.ts';
import { ConfigReader } from '../../collector/src/config/reader.ts';
import { PermanentError, RetryableError, type RequestContext } from '../../collector/src/component/index.ts';
import { MetricsRegistry, SelfTelemetry } from '../../collector/src/telemetry/metrics.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';

const host = { reportFatal() {} };

function cfg(over: (c: ExporterHelperConfig) => void = () => {}): ExporterHelperConfig {
  const c = defaultExporterHelperConfig();
  c.timeoutMs = 200;
  c.retry = { enabled: true, initialIntervalMs: 5, maxIntervalMs: 20, multiplier: 2, randomizationFactor: 0, maxElapsedMs: 300 };
  c.queue.numConsumers = 1;
  c.queue.drainTimeoutMs = 2000;
  over(c);
  return c;
}

function newTel() {
  return new SelfTelemetry(new MetricsRegistry());
}
const settings = (tel: SelfTelemetry) => ({ id: 'otlp/x', logger: testLogger(), telemetry: tel });
const failedBy = (tel: SelfTelemetry, reason: string) => tel.registry.get('kscope_exporter_send_failed_items_total')?.sum({ reason }) ?? 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('timeout: 0 is accepted and means no timeout: a slow send is neither cut off nor retried', async () => {
  assert.equal(readExporterHelperConfig(new ConfigReader({ timeout: 0 }, 'exporters.x')).timeoutMs, 0);
  assert.equal(readExporterHelperConfig(new ConfigReader({ timeout: '0s' }, 'exporters.x')).timeoutMs, 0);
  for (const queued of [false, true]) {
    const tel = newTel();
    const seen: RequestContext[] = [];
    let delivered = 0;
    const ex = new QueuedExporter(settings(tel), cfg((c) => { c.timeoutMs = 0; c.queue.enabled = queued; }), 'traces', async (_b, ctx, abort) => {
      seen.push(ctx);
      await sleep(60);
      if (abort.aborted) throw new Error('aborted');
      delivered += 3;
    });
    await ex.start(host);
    await ex.consume(makeTraces(3), {});
    await ex.shutdown();
    assert.equal(delivered, 3, `delivered at the first attempt (queue: ${queued})`);
    assert.equal(seen.length, 1, `no retry (queue: ${queued})`);
    assert.equal(seen[0].deadline, undefined, 'no deadline of our own is handed to the push');
    assert.equal(tel.registry.get('kscope_exporter_retries_total')!.sum(), 0);
    assert.equal(tel.registry.get('kscope_exporter_sent_items_total')!.sum(), 3);
  }
});

test('timeout: 0 still honours the caller deadline (no queue)', async () => {
  const tel = newTel();
  let got: number | undefined;
  const ex = new QueuedExporter(settings(tel), cfg((c) => { c.timeoutMs = 0; c.queue.enabled = false; }), 'traces', async (_b, ctx) => { got = ctx.deadline; });
  await ex.start(host);
  const deadline = Date.now() + 10_000;
  await ex.consume(makeTraces(1), { deadline });
  await ex.shutdown();
  assert.equal(got, deadline);
});

test('no queue: exhausted retries are returned as RetryableError (not PermanentError), counted as retries_exhausted', async () => {
  const tel = newTel();
  let calls = 0;
  const ex = new QueuedExporter(settings(tel), cfg((c) => { c.queue.enabled = false; c.retry.maxElapsedMs = 50; }), 'traces', async () => {
    calls++;
    throw new RetryableError('backend unavailable', 7);
  });
  await ex.start(host);
  await assert.rejects(ex.consume(makeTraces(4), {}), (e: unknown) => {
    assert.ok(!(e instanceof PermanentError), `not permanent: ${(e as Error).name}: ${(e as Error).message}`);
    assert.ok(e instanceof RetryableError, `retryable: ${(e as Error).name}`);
    assert.match(e.message, /otlp\/x.*backend unavailable/, 'names the exporter and the cause');
    return true;
  });
  assert.ok(calls >= 2, `retried first: ${calls}`);
  assert.equal(failedBy(tel, 'retries_exhausted'), 4);
  await ex.shutdown();
});

test('no queue: with retry disabled a transient failure is retryable too; a PermanentError stays permanent', async () => {
  const tel = newTel();
  let next: unknown = new Error('connection refused');
  const ex = new QueuedExporter(settings(tel), cfg((c) => { c.queue.enabled = false; c.retry.enabled = false; }), 'traces', async () => { throw next; });
  await ex.start(host);
  await assert.rejects(ex.consume(makeTraces(2), {}), (e: unknown) => e instanceof RetryableError && /connection refused/.test(e.message));
  assert.equal(failedBy(tel, 'retry_disabled'), 2);
  next = new PermanentError('malformed');
  await assert.rejects(ex.consume(makeTraces(3), {}), (e: unknown) => e instanceof PermanentError && /malformed/.test(e.message));
  assert.equal(failedBy(tel, 'permanent'), 3);
  await ex.shutdown();
});

test("no queue: the caller's deadline bounds each attempt and stops the retries (retryable, counted as deadline)", async () => {
  const tel = newTel();
  const deadlines: Array<number | undefined> = [];
  const ex = new QueuedExporter(
    settings(tel),
    cfg((c) => {
      c.queue.enabled = false;
      c.timeoutMs = 5000;
      c.retry = { enabled: true, initialIntervalMs: 100, maxIntervalMs: 1000, multiplier: 2, randomizationFactor: 0, maxElapsedMs: 60_000 };
    }),
    'traces',
    async (_b, ctx) => {
      deadlines.push(ctx.deadline);
      throw new RetryableError('down');
    },
  );
  await ex.start(host);
  const t0 = Date.now();
  const deadline = t0 + 250;
  await assert.rejects(ex.consume(makeTraces(5), { deadline }), (e: unknown) => e instanceof RetryableError && !(e instanceof PermanentError));
  const took = Date.now() - t0;
  assert.ok(took < 1000, `gave up by the caller's deadline, not max_elapsed_time (60 s): ${took} ms`);
  // attempts at ~0 and ~100 ms; the next one (~300 ms) would start after the deadline
  assert.equal(deadlines.length, 2, `attempts: ${deadlines.length}`);
  for (const d of deadlines) assert.equal(d, deadline, 'the attempt carries the caller deadline, not now + timeout');
  assert.equal(failedBy(tel, 'deadline'), 5);
  assert.equal(failedBy(tel, 'retries_exhausted'), 0);
  await ex.shutdown();
});

test("no queue: a hanging attempt is cut off at the caller's deadline, shorter than timeout", async () => {
  const tel = newTel();
  const ex = new QueuedExporter(settings(tel), cfg((c) => { c.queue.enabled = false; c.timeoutMs = 5000; }), 'traces', (_b, _c, abort) =>
    new Promise((_r, reject) => abort.addEventListener('abort', () => reject(new Error('aborted')))));
  await ex.start(host);
  const t0 = Date.now();
  await assert.rejects(ex.consume(makeTraces(1), { deadline: t0 + 80 }), RetryableError);
  assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
  assert.equal(failedBy(tel, 'deadline'), 1);
  await ex.shutdown();
});

test("queued: the caller's deadline does not limit the queued request's sends", async () => {
  const tel = newTel();
  let calls = 0;
  let delivered = 0;
  const ex = new QueuedExporter(settings(tel), cfg(), 'traces', async (_b, ctx) => {
    calls++;
    assert.ok(ctx.deadline === undefined || ctx.deadline > Date.now(), 'each attempt gets its own timeout, not the caller deadline');
    if (calls < 3) throw new RetryableError('down');
    delivered += 2;
  });
  await ex.start(host);
  await ex.consume(makeTraces(2), { deadline: Date.now() + 1 }); // accepted once queued
  await ex.shutdown();
  assert.equal(delivered, 2);
  assert.equal(failedBy(tel, 'deadline'), 0);
});
