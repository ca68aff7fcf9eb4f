// The persistent queue under faults: short writes (file size limit), a full queue with records in
// flight, a second queue on the same directory, a damaged record, and the modes of what it creates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PersistentQueue, QueueFullError } from '../../collector/src/exporterhelper/persistent-queue.ts';
import { silentLogger } from '../../lib/log.ts';

const logger = silentLogger() as never;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PQ_MODULE = join(ROOT, 'collector/src/exporterhelper/persistent-queue.ts');
const LOG_MODULE = join(ROOT, 'lib/log.ts');

/** A payload of `size` bytes carrying `id` in its first 4 bytes and its low byte everywhere else. */
function rec(id: number, size = 1000): Buffer {
  const b = Buffer.alloc(size, id & 0xff);
  b.writeUInt32LE(id, 0);
  return b;
}

/** Takes and acknowledges everything pending; returns the ids in the order they came. */
async function drainIds(q: PersistentQueue, size?: number): Promise<number[]> {
  const ids: number[] = [];
  while (q.pendingCount > 0) {
    const r = (await q.take())!;
    const id = Buffer.from(r.payload).readUInt32LE(0);
    if (size !== undefined) assert.deepEqual(Buffer.from(r.payload), rec(id, size), `record ${id} intact`);
    ids.push(id);
    await q.ack(r.seq);
  }
  return ids;
}

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kscope-pq-faults-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

test('short writes (file size limit): a failed append or ack is refused, never reported durable; the queue goes on', withDir(async (dir) => {
  // A child process with an 8 KiB file size limit: writes past it are cut short, then fail (EFBIG).
  const script = join(dir, 'short-write.mts');
  writeFileSync(script, `
import { PersistentQueue } from ${JSON.stringify(PQ_MODULE)};
import { silentLogger } from ${JSON.stringify(LOG_MODULE)};
const [dirA, dirB] = process.argv.slice(2);
const logger = silentLogger() as never;
const rec = (id: number, size: number) => { const b = Buffer.alloc(size, id & 0xff); b.writeUInt32LE(id, 0); return b; };
const out = { appended: [] as number[], refused: [] as number[], errors: [] as string[], acks: [] as Array<[number, boolean]>, ackErrors: [] as string[] };
// Records of 1016 bytes on disk: 8 fit under the limit, the 9th write is cut short.
const qa = new PersistentQueue({ directory: dirA, maxBytes: 1 << 20, segmentBytes: 1 << 20, fsync: true }, logger);
qa.open();
const append = async (ids: number[]) => {
  const rs = await Promise.allSettled(ids.map((id) => qa.append(rec(id, 1000))));
  rs.forEach((r, i) => {
    if (r.status === 'fulfilled') out.appended.push(ids[i]);
    else { out.refused.push(ids[i]); out.errors.push(String(r.reason?.message)); }
  });
};
for (let id = 0; id < 21; id++) await append([id]);
await append([21, 22, 23, 24, 25, 26, 27]); // one write of several records, cut short in the middle
await append([28]);
await qa.close();
// acks.log: 8 bytes an entry, the batch that crosses 8 KiB is cut short.
const qb = new PersistentQueue({ directory: dirB, maxBytes: 1 << 20, segmentBytes: 4096, fsync: false }, logger);
qb.open();
for (let k = 0; k < 11; k++) await Promise.all(Array.from({ length: 100 }, (_, i) => qb.append(rec(k * 100 + i, 4))));
const taken: Array<{ seq: number; id: number }> = [];
for (let i = 0; i < 1100; i++) { const r = (await qb.take())!; taken.push({ seq: r.seq, id: Buffer.from(r.payload).readUInt32LE(0) }); }
const ack = async (recs: typeof taken) => {
  const rs = await Promise.allSettled(recs.map((r) => qb.ack(r.seq)));
  rs.forEach((r, i) => {
    out.acks.push([recs[i].id, r.status === 'fulfilled']);
    if (r.status === 'rejected') out.ackErrors.push(String(r.reason?.message));
  });
};
for (let k = 0; k < 11; k++) await ack(taken.slice(k * 100, k * 100 + 100));
const refused = out.acks.find(([, ok]) => !ok);
if (refused) await ack(taken.filter((t) => t.id === refused[0])); // a retry that fits
await qb.close();
process.stdout.write(JSON.stringify(out));
`);
  const dirA = join(dir, 'a');
  const dirB = join(dir, 'b');
  const r = spawnSync('bash', ['-c', `ulimit -f 8 && exec node --import tsx ${JSON.stringify(script)} ${JSON.stringify(dirA)} ${JSON.stringify(dirB)}`], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, TSX_DISABLE_CACHE: '1', NODE_TEST_CONTEXT: undefined },
  });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { appended: number[]; refused: number[]; errors: string[]; acks: Array<[number, boolean]>; ackErrors: string[] };

  // Appends: the limit was hit, with a clear error.
  assert.ok(out.refused.length > 0, 'the file size limit refused some appends');
  for (const e of out.errors) assert.match(e, /EFBIG|file too large/i);
  // Exactly the appends reported durable come back, intact and in order; no refused one does.
  const qa = new PersistentQueue({ directory: dirA, maxBytes: 1 << 20, segmentBytes: 1 << 20, fsync: true }, logger);
  qa.open();
  assert.deepEqual(await drainIds(qa, 1000), out.appended, 'every append reported durable is on disk');
  // A failed write did not wedge the queue: later appends (a new segment) went through.
  assert.ok(out.appended.some((id) => id > Math.min(...out.refused)), `appends work again after a failed one: appended ${out.appended}, refused ${out.refused}`);
  await qa.append(rec(99));
  assert.deepEqual(await drainIds(qa, 1000), [99], 'the queue works after reopening');
  await qa.close();

  // Acks: the limit refused some, a later one went through, and exactly the unacknowledged replay.
  const final = new Map(out.acks);
  assert.ok(out.acks.some(([, ok]) => !ok), 'the file size limit refused some acknowledgements');
  for (const e of out.ackErrors) assert.match(e, /EFBIG|file too large/i);
  assert.equal(out.acks[out.acks.length - 1][1], true, 'an acknowledgement after a failed one is recorded');
  const qb = new PersistentQueue({ directory: dirB, maxBytes: 1 << 20, segmentBytes: 4096, fsync: false }, logger);
  qb.open();
  const replayed = await drainIds(qb);
  assert.deepEqual(replayed, range(0, 1100).filter((id) => final.get(id) !== true), 'an acknowledged record is not replayed, an unacknowledged one is');
  await qb.close();
}));

test('drop_oldest with records in flight: room is made from the oldest droppable segment, counted, once for concurrent appends', withDir(async (dir) => {
  // Records take 1016 bytes, 5 per 4 KiB segment; the queue holds 3 segments.
  const storage = { directory: dir, maxBytes: 3 * 5 * 1016, segmentBytes: 4096, fsync: false, dropOldest: true };
  const q = new PersistentQueue(storage, logger);
  q.open();
  for (const id of range(0, 15)) await q.append(rec(id));
  assert.equal(q.bytes, storage.maxBytes);
  // Two consumers are retrying records 0 and 1 (in flight): segment [0..4] cannot be freed.
  const inFlight = [(await q.take())!, (await q.take())!];
  await q.append(rec(15));
  assert.equal(q.droppedOldest, 5, 'segment [5..9] dropped, nothing more');
  assert.ok(q.bytes <= storage.maxBytes);
  for (const id of range(16, 4)) await q.append(rec(id)); // fills up again: [0..4] [10..14] [15..19]
  assert.equal(q.droppedOldest, 5);
  // Three appends at once need 3 records of room: one segment is enough.
  await Promise.all(range(20, 3).map((id) => q.append(rec(id))));
  assert.equal(q.droppedOldest, 10, 'only segment [10..14] dropped for the three');
  assert.ok(q.bytes <= storage.maxBytes);
  for (const r of inFlight) await q.ack(r.seq);
  assert.deepEqual(await drainIds(q, 1000), [2, 3, 4, 15, 16, 17, 18, 19, 20, 21, 22]);
  await q.close();
}));

test('drop_oldest refuses, dropping nothing, when every segment has records in flight', withDir(async (dir) => {
  const storage = { directory: dir, maxBytes: 2 * 5 * 1016, segmentBytes: 4096, fsync: false, dropOldest: true };
  const q = new PersistentQueue(storage, logger);
  q.open();
  for (const id of range(0, 10)) await q.append(rec(id));
  const taken = [];
  for (let i = 0; i < 6; i++) taken.push((await q.take())!); // [0..4] and 5 in flight
  await assert.rejects(q.append(rec(10)), (e: unknown) => e instanceof QueueFullError);
  assert.equal(q.droppedOldest, 0);
  assert.equal(q.pendingCount, 4, 'records 6..9 are still queued');
  for (const r of taken) await q.ack(r.seq);
  await q.append(rec(10)); // segment [0..4] is done and gone: room again
  assert.deepEqual(await drainIds(q), [6, 7, 8, 9, 10]);
  await q.close();
}));

test('a directory is locked while a queue has it open: a second queue fails clearly until close or the holder dies', { timeout: 60_000 }, withDir(async (dir) => {
  const storage = { directory: dir, maxBytes: 1 << 20, segmentBytes: 4096, fsync: false };
  // In this process.
  const q1 = new PersistentQueue(storage, logger);
  q1.open();
  await q1.append(rec(1));
  const q2 = new PersistentQueue(storage, logger);
  assert.throws(() => q2.open(), (e: Error) => e.message.includes(dir) && /already open|in use/.test(e.message));
  await q1.close();
  const q3 = new PersistentQueue(storage, logger);
  q3.open();
  assert.deepEqual(await drainIds(q3), [1], 'the record written by the first queue is intact');
  await q3.close();

  // In another process (another agent): the error names it; once it is killed, the lock is taken over.
  const script = join(dir, '..', `${dir.split('/').pop()}-holder.mts`);
  writeFileSync(script, `
import { PersistentQueue } from ${JSON.stringify(PQ_MODULE)};
import { silentLogger } from ${JSON.stringify(LOG_MODULE)};
const q = new PersistentQueue({ directory: process.argv[2], maxBytes: 1 << 20, segmentBytes: 4096, fsync: false }, silentLogger() as never);
q.open();
process.stdout.write('ready\\n');
process.stdin.resume();
`);
  try {
    const child = spawn('node', ['--import', 'tsx', script, dir], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_TEST_CONTEXT: undefined } });
    const exited = new Promise((r) => child.once('exit', r));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`holder exited early (${code})`)));
    });
    const q4 = new PersistentQueue(storage, logger);
    assert.throws(() => q4.open(), (e: Error) => e.message.includes(dir) && e.message.includes(`process ${child.pid}`));
    child.kill('SIGKILL'); // no close(): its lock file stays behind
    await exited;
    assert.ok(existsSync(join(dir, 'lock')));
    const q5 = new PersistentQueue(storage, logger);
    q5.open(); // the holder is dead: taken over
    await q5.close();
    assert.ok(!existsSync(join(dir, 'lock')), 'close() removes the lock file');
  } finally {
    rmSync(script, { force: true });
  }

  // Another hostname in our PID namespace (a new agent pod with hostPID after a rollout): its pid
  // is checked at once, a dead one is taken over without waiting for the lock to go stale.
  const ns = readlinkSync('/proc/self/ns/pid');
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // exited: its pid is free
  writeFileSync(join(dir, 'lock'), `${dead} some-other-pod ${ns}\n`);
  const q7 = new PersistentQueue(storage, logger);
  q7.open();
  await q7.close();
  writeFileSync(join(dir, 'lock'), `${process.ppid} some-other-pod ${ns}\n`); // a live process
  assert.throws(() => new PersistentQueue(storage, logger).open(), new RegExp(`in use by process ${process.ppid} on some-other-pod`));
  rmSync(join(dir, 'lock'));

  // A lock of another host (pid not checkable) holds while fresh, and is stale once not refreshed.
  writeFileSync(join(dir, 'lock'), '12345 some-other-host\n');
  assert.throws(() => new PersistentQueue(storage, logger).open(), /in use by process 12345 on some-other-host/);
  const old = new Date(Date.now() - 10 * 60_000);
  utimesSync(join(dir, 'lock'), old, old);
  const q6 = new PersistentQueue(storage, logger);
  q6.open();
  await q6.close();
}));

test('a damaged record: the good ones before and after replay, the loss is counted, the damaged file is kept aside', withDir(async (dir) => {
  const damages: Array<[string, (seg: Buffer, at: number) => void]> = [
    ['flipped payload byte', (seg, at) => { seg[at + 16 + 500] ^= 0xff; }],
    ['bad length', (seg, at) => { seg.writeUInt32LE(0xfffffff0, at); }],
  ];
  for (const [kind, damage] of damages) {
    const storage = { directory: join(dir, kind.replace(/ /g, '-')), maxBytes: 1 << 20, segmentBytes: 1 << 20, fsync: true };
    const q = new PersistentQueue(storage, logger);
    q.open();
    for (const id of range(0, 5)) await q.append(rec(id));
    await q.close();
    const name = readdirSync(storage.directory).find((f) => f.endsWith('.seg'))!;
    const segPath = join(storage.directory, name);
    const seg = readFileSync(segPath);
    assert.equal(seg.length, 5 * 1016);
    damage(seg, 2 * 1016); // the middle record
    writeFileSync(segPath, seg);

    const q2 = new PersistentQueue(storage, logger);
    q2.open();
    assert.equal(q2.corruptRecords, 1, kind);
    assert.equal(q2.corruptBytes, 1016, kind);
    assert.equal(q2.pendingCount, 4, kind);
    await q2.close();
    assert.deepEqual(readFileSync(`${segPath}.corrupt`), seg, `${kind}: the damaged segment is kept as it was`);
    assert.equal(statSync(segPath).size, 4 * 1016, `${kind}: the segment holds the good records only`);
    // Not found (nor counted) again; the good records replay intact, in order.
    const q3 = new PersistentQueue(storage, logger);
    q3.open();
    assert.equal(q3.corruptRecords, 0, kind);
    assert.deepEqual(await drainIds(q3, 1000), [0, 1, 3, 4], kind);
    await q3.append(rec(5));
    assert.deepEqual(await drainIds(q3, 1000), [5], kind);
    await q3.close();
    assert.ok(existsSync(`${segPath}.corrupt`), `${kind}: the queue never deletes the damaged copy`);
  }
}));

test('the spool is private: directories 0700, files 0600', withDir(async (dir) => {
  const umask = process.umask(0o022); // the usual default, under which 0755/0644 would show
  try {
    const directory = join(dir, 'var', 'spool');
    const q = new PersistentQueue({ directory, maxBytes: 1 << 20, segmentBytes: 4096, fsync: false }, logger);
    q.open();
    await q.append(rec(1));
    const r = (await q.take())!;
    await q.ack(r.seq);
    await q.append(rec(2));
    const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);
    assert.equal(mode(join(dir, 'var')), '700');
    assert.equal(mode(directory), '700');
    const files = readdirSync(directory);
    assert.ok(files.includes('acks.log') && files.includes('lock') && files.some((f) => f.endsWith('.seg')), files.join());
    for (const f of files) assert.equal(mode(join(directory, f)), '600', f);
    await q.close();
  } finally {
    process.umask(umask);
  }
}));
