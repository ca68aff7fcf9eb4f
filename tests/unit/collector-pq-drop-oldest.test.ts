// The agent's spool: a persistent queue bounded in bytes that drops its OLDEST records (counted)
// when full, keeps the newest in order, and survives a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PersistentQueue, QueueFullError } from '../../collector/src/exporterhelper/persistent-queue.ts';
import { silentLogger } from '../../lib/log.ts';

const logger = silentLogger() as never;

async function drain(q: PersistentQueue): Promise<number[]> {
  const out: number[] = [];
  while (q.pendingCount > 0) {
    const r = (await q.take())!;
    out.push(r.payload[0]);
    await q.ack(r.seq);
  }
  return out;
}

test('drop_oldest: a full queue drops whole oldest segments, keeps the newest records in order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-pq-drop-'));
  try {
    // ~4 records of 1 KiB per 4 KiB segment, 12 KiB in all.
    const storage = { directory: dir, maxBytes: 12 * 1024, segmentBytes: 4096, fsync: false, dropOldest: true };
    const q = new PersistentQueue(storage, logger);
    q.open();
    for (let i = 0; i < 40; i++) await q.append(Buffer.alloc(1000, i));
    assert.ok(q.bytes <= storage.maxBytes, `bounded: ${q.bytes}`);
    assert.ok(q.droppedOldest > 0, 'oldest records were dropped');
    assert.equal(q.pendingCount + q.droppedOldest, 40, 'every record is either kept or counted as dropped');
    await q.close();
    // The kept records are the newest ones, in order, and they survive a restart.
    const q2 = new PersistentQueue(storage, logger);
    q2.open();
    const kept = await drain(q2);
    assert.equal(kept.length, 40 - q.droppedOldest);
    assert.deepEqual(kept, Array.from({ length: kept.length }, (_, i) => 40 - kept.length + i));
    await q2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without drop_oldest a full queue refuses new records', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kscope-pq-drop-'));
  try {
    const q = new PersistentQueue({ directory: dir, maxBytes: 8192, segmentBytes: 4096, fsync: false }, logger);
    q.open();
    let refused = 0;
    for (let i = 0; i < 20; i++) await q.append(Buffer.alloc(1000, i)).catch((e) => { assert.ok(e instanceof QueueFullError); refused++; });
    assert.ok(refused > 0);
    assert.equal(q.droppedOldest, 0);
    assert.deepEqual((await drain(q)).slice(0, 3), [0, 1, 2], 'the oldest are kept');
    await q.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
