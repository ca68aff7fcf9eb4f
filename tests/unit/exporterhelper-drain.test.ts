// exporterhelper: shutdown drains a persistent queue whose records were all claimed by workers
// (still being read) — they are not "idle", so the drain waits for their sends (and retries)
// instead of aborting them at once. The load balancer relies on this to drain a leftover queue
// (start, then shutdown at once).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueuedExporter, defaultExporterHelperConfig, PersistentQueue, type ExporterHelperConfig } from '../../collector/src/exporterhelper/index.ts';
import { RetryableError } from '../../collector/src/component/errors.ts';
import { makeTraces, testLogger } from '../../collector/src/testing/fixtures.ts';
import { jsonTestCodec } from '../../collector/src/testing/json-codec.ts';
import { countSpans, type TracesData } from '../../proto/src/model.ts';

const host = { reportFatal() {} };

test('shutdown right after start drains replayed records through a failing-then-recovering push', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ks-drain-'));
  try {
    const storage = { directory: dir, maxBytes: 1 << 20, segmentBytes: 4096, fsync: false };
    const c: ExporterHelperConfig = defaultExporterHelperConfig();
    c.retry = { enabled: true, initialIntervalMs: 5, maxIntervalMs: 20, multiplier: 2, randomizationFactor: 0, maxElapsedMs: 5000 };
    c.queue.numConsumers = 10; // more workers than records: every record is claimed at once
    c.queue.drainTimeoutMs = 3000;
    c.queue.storage = storage;
    // First life: three records that could not be sent stay on disk.
    const first = new QueuedExporter({ id: 'x', logger: testLogger() }, { ...c, queue: { ...c.queue, drainTimeoutMs: 20 } }, 'traces', async () => { throw new RetryableError('down'); }, { codec: jsonTestCodec });
    await first.start(host);
    for (let i = 0; i < 3; i++) await first.consume(makeTraces(2), {});
    await first.shutdown();

    let delivered = 0;
    let calls = 0;
    const second = new QueuedExporter({ id: 'x', logger: testLogger() }, c, 'traces', async (b) => {
      if (calls++ < 3) throw new RetryableError('still warming up');
      delivered += countSpans(b as TracesData);
    }, { codec: jsonTestCodec });
    await second.start(host);
    await second.shutdown();
    assert.equal(delivered, 6, 'the drain waited for the retries');
    assert.equal(second.persistedCount, 0);
    const pq = new PersistentQueue(storage, testLogger());
    pq.open();
    assert.equal(pq.size, 0, 'nothing left to replay');
    await pq.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
