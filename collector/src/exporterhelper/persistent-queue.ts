// A disk-backed FIFO for the sending queue: at-least-once across restarts and crashes.
//
// Layout in `directory` (created 0700, files 0600: the spool holds telemetry, often on a hostPath):
//   <firstSeq, 20 digits>.seg  append-only segments; each record is
//                              [u32 payload length][u32 crc32(seq ‖ payload)][u64 seq][payload]
//   acks.log                   append-only u64 sequence numbers of records that are done
//                              (sent or dropped for good); compacted by rewrite + rename.
//   lock                       "<pid> <hostname>" of the process that has the directory open.
//   <segment>.corrupt          a damaged segment as found, set aside for inspection (never read).
// Appends and acks are group-committed: everything queued while one write+fdatasync is in flight
// goes out in the next one, so a burst costs one fsync, and an append resolves only once durable.
// A write that fails part way is cut back to the last good size and rejected, never reported durable.
// On open, segments are scanned (a torn tail record from a crash is truncated away; damage elsewhere
// is counted, skipped up to the next valid record, and the original file kept as .corrupt), records
// whose seq is not in acks.log are pending again, fully acknowledged segments are deleted. Records
// taken but not acknowledged when the process dies are replayed: duplicates are possible, loss is not.
import { crc32 } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import {
  closeSync, copyFileSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync,
  readlinkSync, realpathSync, renameSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { open, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../component/index.ts';
import type { PersistentStorageConfig } from './config.ts';

const HEADER = 16;
const SEG_RE = /^(\d{20})\.seg$/;
const ACK_COMPACT_BYTES = 1 << 20;
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const LOCK_FILE = 'lock';
/** A lock of another host (or PID namespace) cannot be checked by pid: its holder keeps its mtime
 * fresh, and one not refreshed for this long is stale (the holder was killed without close()). */
const LOCK_STALE_MS = 60_000;
const LOCK_REFRESH_MS = 15_000;

/** Directories held by queues of this process: a lock file with our own pid is stale otherwise
 * (a restarted container's agent is PID 1 again). */
const lockedHere = new Set<string>();

interface PendingRecord {
  seq: number;
  offset: number;
  length: number;
}

interface Segment {
  firstSeq: number;
  /** Highest seq stored (firstSeq - 1 while empty). */
  lastSeq: number;
  path: string;
  size: number;
  count: number;
  acked: number;
  /** Records taken and not yet durably acknowledged: they keep the segment (and its bytes). */
  inFlight: number;
  /** Records not taken yet, oldest first, from `head`. */
  pending: PendingRecord[];
  head: number;
  active: boolean;
  /** Dropped to make room: its bytes are already uncounted, the file goes once its acks are durable. */
  dropped: boolean;
  writer?: FileHandle;
  reader?: Promise<FileHandle>;
}

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

type AppendReq = { buf: Buffer; payloadLen: number; seq: number } & Waiter<void>;

export class QueueFullError extends Error {
  readonly code = 'QUEUE_FULL';
  /** The record is larger than max_bytes: no amount of waiting makes room for it. */
  constructor(message: string, readonly neverFits = false) {
    super(message);
  }
}

function segName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}.seg`;
}

function recordCrc(seq: number, payload: Uint8Array): number {
  const s = Buffer.allocUnsafe(8);
  s.writeBigUInt64LE(BigInt(seq));
  return crc32(payload, crc32(s));
}

function seqAt(b: Buffer, o: number): number {
  return b.readUInt32LE(o + 8) + b.readUInt32LE(o + 12) * 2 ** 32;
}

/** Length of the valid record at `o` (seq above `prev`), or -1. */
function recordAt(b: Buffer, o: number, prev: number): number {
  if (o + HEADER > b.length) return -1;
  const len = b.readUInt32LE(o);
  if (o + HEADER + len > b.length) return -1;
  const seq = seqAt(b, o);
  if (seq <= prev) return -1;
  return recordCrc(seq, b.subarray(o + HEADER, o + HEADER + len)) === b.readUInt32LE(o + 4) ? len : -1;
}

interface Scan {
  records: Array<{ seq: number; start: number; len: number }>;
  /** Unreadable ranges; `records` is how many were lost in each (from the seq gap; 1 when unknown). */
  damaged: Array<{ start: number; end: number; records: number }>;
  /** Offset of an incomplete last record (a write cut short by a crash), if any. */
  tornAt?: number;
}

/**
 * Reads a segment's records. After damage it looks for the next offset holding a valid record:
 * seqs of one segment are increasing and nearly contiguous, so a candidate must have a seq just
 * above the last good one before its CRC is computed; the hashing is capped so garbage stays cheap.
 */
function scanSegment(b: Buffer, firstSeq: number): Scan {
  const scan: Scan = { records: [], damaged: [] };
  let prev = firstSeq - 1;
  let o = 0;
  let budget = 4 * b.length + (1 << 20);
  while (o < b.length) {
    const len = recordAt(b, o, prev);
    if (len >= 0) {
      prev = seqAt(b, o);
      scan.records.push({ seq: prev, start: o, len });
      o += HEADER + len;
      continue;
    }
    let next = -1;
    for (let p = o + 1; p + HEADER <= b.length && budget > 0; p++) {
      const seq = seqAt(b, p);
      if (seq <= prev || seq > prev + 2 + (p - o) / HEADER) continue;
      const l = b.readUInt32LE(p);
      if (p + HEADER + l > b.length) continue;
      budget -= l + HEADER;
      if (recordAt(b, p, prev) >= 0) {
        next = p;
        break;
      }
    }
    if (next < 0) {
      // A record that starts like the next one but runs past the end is a write cut short.
      const torn = o + HEADER > b.length || (seqAt(b, o) > prev && seqAt(b, o) <= prev + 1 + (1 << 20) && o + HEADER + b.readUInt32LE(o) > b.length);
      if (torn) scan.tornAt = o;
      else scan.damaged.push({ start: o, end: b.length, records: 1 });
      break;
    }
    scan.damaged.push({ start: o, end: next, records: Math.max(1, seqAt(b, next) - prev - 1) });
    o = next;
  }
  return scan;
}

/** Writes every byte or throws: a short write (file size limit, full disk) is retried for the rest,
 * which then fails with the real error instead of passing for durable. */
async function writeAll(fh: FileHandle, bufs: Buffer[]): Promise<void> {
  let rest = bufs;
  let left = bufs.reduce((n, b) => n + b.length, 0);
  while (left > 0) {
    const { bytesWritten } = await fh.writev(rest);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    left -= bytesWritten;
    let skip = bytesWritten;
    const next: Buffer[] = [];
    for (const b of rest) {
      if (skip >= b.length) skip -= b.length;
      else {
        next.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    rest = next;
  }
}

function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** This process's PID namespace ("pid:[4026531836]"), or '' where it cannot be read. */
function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class PersistentQueue {
  private readonly segments: Segment[] = [];
  private pendingTotal = 0;
  /** Seqs taken and not yet durably acknowledged. */
  private readonly taken = new Set<number>();
  private readonly ackedLive = new Set<number>();
  private nextSeq = 1;
  private bytesTotal = 0;
  private ackFile?: FileHandle;
  private ackFileBytes = 0;
  /** acks.log could not be cut back after a failed write: rewrite it before appending again. */
  private ackLogDirty = false;
  private appendBatch: AppendReq[] = [];
  private ackBatch: Array<{ seq: number } & Waiter<void>> = [];
  private appendFlushing?: Promise<void>;
  private ackFlushing?: Promise<void>;
  private takers: Array<Waiter<{ seq: number; payload: Uint8Array } | undefined>> = [];
  private closed = false;
  private stopped = false;
  /** Bytes reserved by appends not yet written, so the bound holds under concurrency. */
  private reserved = 0;
  /** Making room runs one append at a time: concurrent ones would each drop a segment. */
  private roomLock: Promise<void> = Promise.resolve();
  private roomWaiters = 0;
  /** Segment writes and seals one at a time, so a segment is never sealed under a write. */
  private ioLock: Promise<void> = Promise.resolve();
  private lock?: { path: string; key: string; content: string; timer: NodeJS.Timeout };
  /** Pending records dropped to make room (drop_oldest). */
  droppedOldest = 0;
  /** Records lost to damaged segment data found on open (the data is kept in `<segment>.corrupt`). */
  corruptRecords = 0;
  /** Bytes of damaged segment data found on open. */
  corruptBytes = 0;

  constructor(private readonly cfg: PersistentStorageConfig, private readonly logger: Logger) {}

  /** Records pending (not yet taken) plus in flight (taken, not acknowledged). */
  get size(): number {
    let n = 0;
    for (const s of this.segments) n += s.count - s.acked;
    return n + this.appendBatch.length;
  }

  get pendingCount(): number {
    return this.pendingTotal;
  }

  /** Records taken and not yet acknowledged. */
  get inFlightCount(): number {
    return this.taken.size;
  }

  get bytes(): number {
    return this.bytesTotal + this.reserved;
  }

  /** Locks the directory, then scans it and makes unacknowledged records pending again. */
  open(): void {
    mkdirSync(this.cfg.directory, { recursive: true, mode: DIR_MODE });
    this.acquireLock();
    try {
      this.load();
    } catch (err) {
      this.releaseLock();
      throw err;
    }
  }

  private acquireLock(): void {
    const dir = this.cfg.directory;
    const key = realpathSync(dir);
    if (lockedHere.has(key)) throw new Error(`persistent queue directory ${dir} is already open in this process; each queue needs its own directory`);
    const path = join(dir, LOCK_FILE);
    // The PID namespace lets another pod on the same node check the pid too: agents run with
    // hostPID, so a new pod after a rollout (another hostname) still shares the namespace.
    const content = `${process.pid} ${hostname()} ${pidNamespace() || '-'}\n`;
    for (let attempt = 0; ; attempt++) {
      try {
        this.createLockFile(path, content);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw new Error(`persistent queue: cannot lock ${dir}: ${errMsg(err)}`, { cause: err });
      }
      const holder = this.lockHolder(path);
      if (holder.live) {
        throw new Error(`persistent queue directory ${dir} is in use by process ${holder.pid ?? '?'} on ${holder.host ?? '?'} (lock file ${path}); each queue needs its own directory. Delete the lock file only if that process is gone.`);
      }
      this.logger.warn({ path, pid: holder.pid, host: holder.host }, 'persistent queue: stale lock file of a dead process taken over');
      rmSync(path, { force: true });
    }
    const timer = setInterval(() => {
      const now = new Date();
      utimes(path, now, now).catch(() => {});
    }, LOCK_REFRESH_MS);
    timer.unref();
    lockedHere.add(key);
    this.lock = { path, key, content, timer };
  }

  /** Creates the lock file with its content in one step (link of a written temp file), so nobody
   * reads a half-written lock; O_EXCL where hard links are not supported. */
  private createLockFile(path: string, content: string): void {
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    writeFileSync(tmp, content, { mode: FILE_MODE, flag: 'wx' });
    try {
      linkSync(tmp, path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw err;
      writeFileSync(path, content, { mode: FILE_MODE, flag: 'wx' });
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  private lockHolder(path: string): { live: boolean; pid?: number; host?: string } {
    let text: string;
    let mtime: number;
    try {
      text = readFileSync(path, 'utf8');
      mtime = statSync(path).mtimeMs;
    } catch {
      return { live: false }; // gone meanwhile
    }
    const m = /^(\d+) (\S*)(?: (\S+))?\s*$/.exec(text);
    const fresh = Date.now() - mtime < LOCK_STALE_MS;
    if (!m) return { live: fresh };
    const pid = Number(m[1]);
    const host = m[2];
    const ns = m[3];
    const ourNs = pidNamespace();
    const samePids = ns !== undefined && ns !== '-' && ourNs !== '' ? ns === ourNs : host === hostname();
    if (!samePids) return { live: fresh, pid, host }; // its pid means nothing here
    if (pid === process.pid) return { live: false, pid, host }; // not ours (checked above): a previous life
    return { live: pidAlive(pid), pid, host };
  }

  private releaseLock(): void {
    const l = this.lock;
    if (!l) return;
    this.lock = undefined;
    clearInterval(l.timer);
    lockedHere.delete(l.key);
    try {
      // Only our own: a stale-lock takeover by someone else must not be undone.
      if (readFileSync(l.path, 'utf8') === l.content) unlinkSync(l.path);
    } catch (err) {
      this.logger.warn({ err, path: l.path }, 'persistent queue: cannot remove lock file');
    }
  }

  private load(): void {
    const dir = this.cfg.directory;
    for (const f of readdirSync(dir)) {
      // Leftovers of a rewrite interrupted by a crash; the originals are intact.
      if (f === 'acks.log.tmp' || /^\d{20}\.seg\.tmp$/.test(f)) rmSync(join(dir, f), { force: true });
    }
    const ackPath = join(dir, 'acks.log');
    const acked = new Set<number>();
    let maxSeq = 0;
    if (existsSync(ackPath)) {
      const b = readFileSync(ackPath);
      const whole = b.length - (b.length % 8);
      if (whole !== b.length) truncateSync(ackPath, whole); // torn ack write: the record is replayed
      for (let o = 0; o < whole; o += 8) acked.add(Number(b.readBigUInt64LE(o)));
    }
    const files = readdirSync(dir)
      .filter((f) => SEG_RE.test(f))
      .sort();
    let replayed = 0;
    for (const f of files) {
      const path = join(dir, f);
      const firstSeq = Number(SEG_RE.exec(f)![1]);
      maxSeq = Math.max(maxSeq, firstSeq);
      const b = readFileSync(path);
      const scan = scanSegment(b, firstSeq);
      let end = b.length;
      if (scan.tornAt !== undefined) {
        this.logger.warn({ segment: f, validBytes: scan.tornAt, fileBytes: b.length }, 'persistent queue: torn tail record truncated');
        truncateSync(path, scan.tornAt);
        end = scan.tornAt;
      }
      // Where each good record starts in the file the segment is read from from now on.
      let starts = scan.records.map((r) => r.start);
      let damagedInPlace = false;
      if (scan.damaged.length > 0) {
        const lost = scan.damaged.reduce((n, d) => n + d.records, 0);
        const lostBytes = scan.damaged.reduce((n, d) => n + d.end - d.start, 0);
        this.corruptRecords += lost;
        this.corruptBytes += lostBytes;
        try {
          const aside = this.setAside(path, b, scan);
          // The file now holds only the good records, back to back.
          starts = [];
          end = 0;
          for (const r of scan.records) {
            starts.push(end);
            end += HEADER + r.len;
          }
          this.logger.error({ segment: f, records: lost, bytes: lostBytes, kept: scan.records.length, aside }, 'persistent queue: damaged records skipped; the damaged segment is kept aside');
        } catch (err) {
          // Read the good records where they are; the damage is found (and counted) again next open.
          damagedInPlace = true;
          this.logger.error({ err, segment: f, records: lost, bytes: lostBytes }, 'persistent queue: damaged records skipped; cannot set the damaged segment aside');
        }
      }
      const seg = this.newSegment(firstSeq, path, false);
      seg.size = end;
      for (let i = 0; i < scan.records.length; i++) {
        const r = scan.records[i];
        seg.count++;
        seg.lastSeq = r.seq;
        if (r.seq > maxSeq) maxSeq = r.seq;
        if (acked.has(r.seq)) {
          seg.acked++;
          this.ackedLive.add(r.seq);
        } else {
          seg.pending.push({ seq: r.seq, offset: starts[i] + HEADER, length: r.len });
          replayed++;
        }
      }
      if (seg.count === seg.acked) {
        if (damagedInPlace) continue; // the only copy of the damage: left for inspection
        unlinkSync(path);
        for (const r of scan.records) this.ackedLive.delete(r.seq);
        continue;
      }
      this.pendingTotal += seg.pending.length;
      this.segments.push(seg);
      this.bytesTotal += seg.size;
    }
    // Seqs of unreadable records may be used again: their acks go with the rewrite below.
    this.nextSeq = maxSeq + 1;
    // Rewrite the ack log with only live entries (also drops acks of deleted segments).
    this.rewriteAckLogSync(ackPath);
    if (replayed > 0) this.logger.info({ records: replayed, bytes: this.bytesTotal }, 'persistent queue: replaying records from disk');
  }

  /**
   * Keeps the damaged segment as found under `<name>.corrupt` (a hard link: no copy) and puts a file
   * of only its good records in its place (atomic rename), so the damage is neither lost for
   * inspection nor found again. Returns the path set aside.
   */
  private setAside(path: string, b: Buffer, scan: Scan): string {
    const good = Buffer.concat(scan.records.map((r) => b.subarray(r.start, r.start + HEADER + r.len)));
    const tmp = `${path}.tmp`;
    rmSync(tmp, { force: true });
    writeFileSync(tmp, good, { mode: FILE_MODE });
    if (this.cfg.fsync) this.fsyncPath(tmp);
    let aside = `${path}.corrupt`;
    for (let n = 1; existsSync(aside); n++) aside = `${path}.${n}.corrupt`;
    try {
      linkSync(path, aside);
    } catch {
      copyFileSync(path, aside);
    }
    renameSync(tmp, path);
    if (this.cfg.fsync) this.fsyncPath(this.cfg.directory);
    return aside;
  }

  private fsyncPath(path: string): void {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  private newSegment(firstSeq: number, path: string, active: boolean): Segment {
    return { firstSeq, lastSeq: firstSeq - 1, path, size: 0, count: 0, acked: 0, inFlight: 0, pending: [], head: 0, active, dropped: false };
  }

  private rewriteAckLogSync(ackPath: string): void {
    const b = Buffer.allocUnsafe(this.ackedLive.size * 8);
    let o = 0;
    for (const s of this.ackedLive) o = b.writeBigUInt64LE(BigInt(s), o);
    const tmp = `${ackPath}.tmp`;
    rmSync(tmp, { force: true }); // a leftover would keep its old mode
    writeFileSync(tmp, b, { mode: FILE_MODE });
    if (this.cfg.fsync) this.fsyncPath(tmp);
    renameSync(tmp, ackPath);
    if (this.cfg.fsync) this.fsyncPath(this.cfg.directory);
    this.ackFileBytes = b.length;
  }

  /** Appends a record; resolves once it is on disk (fsync'd when configured). */
  append(payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error('persistent queue is closed'));
    const need = HEADER + payload.length;
    if (need > this.cfg.maxBytes) return Promise.reject(this.fullError(need, true));
    // Appends waiting for room go first, or a later one could take the room an earlier one made.
    if (this.roomWaiters === 0 && this.bytes + need <= this.cfg.maxBytes) return this.enqueue(payload, need);
    this.roomWaiters++;
    let durable!: Promise<void>;
    const step = this.roomLock.then(async () => {
      try {
        if (this.closed) throw new Error('persistent queue is closed');
        await this.makeRoom(need);
        durable = this.enqueue(payload, need); // reserves at once, before the next waiter looks
      } finally {
        this.roomWaiters--;
      }
    });
    this.roomLock = step.catch(() => {});
    return step.then(() => durable);
  }

  private enqueue(payload: Uint8Array, need: number): Promise<void> {
    const seq = this.nextSeq++;
    const buf = Buffer.allocUnsafe(need);
    buf.writeUInt32LE(payload.length, 0);
    buf.writeUInt32LE(recordCrc(seq, payload), 4);
    buf.writeBigUInt64LE(BigInt(seq), 8);
    buf.set(payload, HEADER);
    this.reserved += need;
    return new Promise<void>((resolve, reject) => {
      this.appendBatch.push({ buf, payloadLen: payload.length, seq, resolve, reject });
      if (!this.appendFlushing) this.appendFlushing = this.flushAppends();
    });
  }

  private fullError(need: number, neverFits = false): QueueFullError {
    return new QueueFullError(`persistent queue is full (${this.bytes} of ${this.cfg.maxBytes} bytes, ${need} more needed)`, neverFits);
  }

  /** Runs `fn` after every earlier segment write/seal has finished. */
  private io<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.ioLock.then(fn);
    this.ioLock = p.then(
      () => {},
      () => {},
    );
    return p;
  }

  /**
   * Frees at least `need` bytes (one caller at a time, under roomLock). Bytes go a segment at a time:
   * a segment is freed only once all its records are done, so segments with records in flight are
   * skipped (dropping their other records would lose data without freeing anything) and the oldest
   * others are dropped: their pending records are acknowledged as done (counted in droppedOldest).
   * The active segment, holding the newest records, comes last. A fully acknowledged active segment
   * is freed by sealing it, with or without drop_oldest. Refuses, dropping nothing, when that is not
   * enough.
   */
  private async makeRoom(need: number): Promise<void> {
    for (let sealed = false; ; sealed = true) {
      const max = this.cfg.maxBytes;
      if (this.bytes + need <= max) return;
      const free = (s: Segment) => !s.dropped && s.inFlight === 0 && (s.count === s.acked || (this.cfg.dropOldest === true && s.head < s.pending.length));
      const candidates = this.segments.filter(free);
      const all = candidates.reduce((n, s) => n + s.size, 0);
      if (this.bytes - all + need > max) throw this.fullError(need);
      const victims: Segment[] = [];
      let freed = 0;
      for (const s of candidates) {
        if (s.active || this.bytes - freed + need <= max) continue;
        victims.push(s);
        freed += s.size;
      }
      if (this.bytes - freed + need <= max) return this.drop(victims);
      // Only the active segment can make up the rest: seal it first so no write lands in it any more.
      const active = candidates.find((s) => s.active);
      if (sealed || !active) throw this.fullError(need);
      await this.io(async () => {
        if (active.active) await this.sealSegment(active);
      });
    }
  }

  private async drop(victims: Segment[]): Promise<void> {
    const dropped: Array<{ seg: Segment; recs: PendingRecord[] }> = [];
    for (const seg of victims) {
      if (seg.count === seg.acked) {
        await this.deleteSegment(seg); // nothing left in it (normally deleted already)
        continue;
      }
      const recs = seg.pending.slice(seg.head);
      seg.pending = [];
      seg.head = 0;
      this.pendingTotal -= recs.length;
      this.droppedOldest += recs.length;
      // Counted free now: the next append in line must not drop another segment for the same room.
      seg.dropped = true;
      this.bytesTotal -= seg.size;
      dropped.push({ seg, recs });
      this.logger.warn({ records: recs.length, segment: seg.path }, 'persistent queue full: oldest records dropped');
    }
    const results = await Promise.all(dropped.map(({ recs }) => Promise.allSettled(recs.map((r) => this.enqueueAck(r.seq)))));
    let firstErr: unknown;
    for (let i = 0; i < dropped.length; i++) {
      const { seg, recs } = dropped[i];
      const kept = recs.filter((_, k) => results[i][k].status === 'rejected');
      if (kept.length === 0) continue;
      // Not durably acknowledged: they are not gone, so they stay queued and keep their segment.
      firstErr ??= (results[i].find((r) => r.status === 'rejected') as PromiseRejectedResult).reason;
      seg.pending = kept;
      seg.head = 0;
      this.pendingTotal += kept.length;
      this.droppedOldest -= kept.length;
      if (seg.dropped && this.segments.includes(seg)) {
        seg.dropped = false;
        this.bytesTotal += seg.size;
      }
    }
    if (firstErr !== undefined) {
      this.wakeTakers();
      throw new Error(`persistent queue: cannot drop the oldest records to make room: ${errMsg(firstErr)}`, { cause: firstErr });
    }
  }

  private async activeSegment(firstSeq: number): Promise<Segment> {
    const last = this.segments[this.segments.length - 1];
    if (last?.active && last.size < this.cfg.segmentBytes) return last;
    if (last?.active) await this.sealSegment(last);
    const path = join(this.cfg.directory, segName(firstSeq));
    const writer = await open(path, 'a', FILE_MODE);
    try {
      if (this.cfg.fsync) {
        const dir = await open(this.cfg.directory, 'r');
        await dir.sync().finally(() => dir.close());
      }
    } catch (err) {
      await writer.close().catch(() => {});
      throw err;
    }
    const seg = this.newSegment(firstSeq, path, true);
    seg.writer = writer;
    this.segments.push(seg);
    return seg;
  }

  private async sealSegment(seg: Segment): Promise<void> {
    seg.active = false;
    const w = seg.writer;
    seg.writer = undefined;
    if (w) await w.close().catch((err) => this.logger.warn({ err, path: seg.path }, 'persistent queue: cannot close segment'));
    if (seg.count === seg.acked) await this.deleteSegment(seg);
  }

  private async flushAppends(): Promise<void> {
    try {
      while (this.appendBatch.length > 0) {
        const batch = this.appendBatch;
        this.appendBatch = [];
        for (let i = 0; i < batch.length; ) {
          const from = i;
          i = await this.io(() => this.writeChunk(batch, from));
        }
        this.wakeTakers();
      }
    } finally {
      this.appendFlushing = undefined;
    }
  }

  /**
   * Writes batch[first..] into the active segment up to its size (one write + sync), settles those
   * appends and returns the index after them. Never throws: a failed write is cut back to the
   * segment's last good size and the segment sealed, so the next write starts a new one at a known
   * offset; its appends are rejected.
   */
  private async writeChunk(batch: AppendReq[], first: number): Promise<number> {
    const fail = (reqs: AppendReq[], err: unknown) => {
      for (const r of reqs) {
        this.reserved -= r.buf.length;
        r.reject(err);
      }
    };
    let seg: Segment;
    try {
      seg = await this.activeSegment(batch[first].seq);
    } catch (err) {
      fail(batch.slice(first), new Error(`persistent queue: cannot open a segment in ${this.cfg.directory}: ${errMsg(err)}`, { cause: err }));
      return batch.length;
    }
    const start = seg.size;
    let size = start;
    let end = first;
    while (end < batch.length && (end === first || size < this.cfg.segmentBytes)) size += batch[end++].buf.length;
    const reqs = batch.slice(first, end);
    try {
      await writeAll(seg.writer!, reqs.map((r) => r.buf));
      if (this.cfg.fsync) await seg.writer!.datasync();
    } catch (err) {
      this.logger.error({ err, segment: seg.path, records: reqs.length }, 'persistent queue: write failed; segment cut back and sealed');
      await seg.writer!.truncate(start).catch((e) => {
        // Left at the tail of the sealed segment: the next open truncates or replays it (a duplicate).
        this.logger.error({ err: e, segment: seg.path }, 'persistent queue: cannot cut back the failed write');
      });
      await this.sealSegment(seg);
      fail(reqs, new Error(`persistent queue: write to ${seg.path} failed, ${reqs.length} record(s) not stored: ${errMsg(err)}`, { cause: err }));
      return end;
    }
    let o = start;
    for (const r of reqs) {
      seg.pending.push({ seq: r.seq, offset: o + HEADER, length: r.payloadLen });
      seg.count++;
      seg.lastSeq = r.seq;
      o += r.buf.length;
      this.reserved -= r.buf.length;
      this.bytesTotal += r.buf.length;
    }
    this.pendingTotal += reqs.length;
    seg.size = size;
    for (const r of reqs) r.resolve();
    return end;
  }

  private wakeTakers(): void {
    while (this.takers.length > 0 && this.pendingTotal > 0) {
      const w = this.takers.shift()!;
      this.takeNow().then(w.resolve, w.reject);
    }
  }

  private async takeNow(): Promise<{ seq: number; payload: Uint8Array }> {
    // Claimed at once, so concurrent takers get different records; oldest segment first.
    const seg = this.segments.find((s) => s.head < s.pending.length)!;
    const r = seg.pending[seg.head++];
    if (seg.head > 1024 && seg.head * 2 > seg.pending.length) {
      seg.pending.splice(0, seg.head);
      seg.head = 0;
    }
    this.pendingTotal--;
    seg.inFlight++;
    this.taken.add(r.seq);
    try {
      return { seq: r.seq, payload: await this.read(seg, r) };
    } catch (err) {
      // Back at the front of its segment: a failed read loses nothing and keeps the segment deletable.
      seg.inFlight--;
      this.taken.delete(r.seq);
      if (seg.head > 0) seg.pending[--seg.head] = r;
      else seg.pending.unshift(r);
      this.pendingTotal++;
      throw new Error(`persistent queue: cannot read record ${r.seq} from ${seg.path}, it stays queued: ${errMsg(err)}`, { cause: err });
    }
  }

  private async read(seg: Segment, r: PendingRecord): Promise<Buffer> {
    const opening = (seg.reader ??= open(seg.path, 'r'));
    let fh: FileHandle;
    try {
      fh = await opening;
    } catch (err) {
      if (seg.reader === opening) seg.reader = undefined; // try again next time, not a cached failure
      throw err;
    }
    const payload = Buffer.allocUnsafe(r.length);
    for (let got = 0; got < r.length; ) {
      const { bytesRead } = await fh.read(payload, got, r.length - got, r.offset + got);
      if (bytesRead === 0) throw new Error(`segment ends before the record (${got} of ${r.length} bytes)`);
      got += bytesRead;
    }
    return payload;
  }

  /** The next record, waiting for one; undefined once closed. */
  take(): Promise<{ seq: number; payload: Uint8Array } | undefined> {
    if (this.closed || this.stopped) return Promise.resolve(undefined);
    if (this.pendingTotal > 0) return this.takeNow();
    return new Promise((resolve, reject) => this.takers.push({ resolve, reject }));
  }

  /**
   * Marks a record done (sent, or dropped for good); durable before it resolves. When it rejects the
   * record stays in flight: it is replayed after a restart, and ack() may be called again.
   */
  ack(seq: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('persistent queue is closed'));
    return this.enqueueAck(seq);
  }

  private enqueueAck(seq: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.ackBatch.push({ seq, resolve, reject });
      if (!this.ackFlushing) this.ackFlushing = this.flushAcks();
    });
  }

  private segmentOf(seq: number): Segment | undefined {
    // Few segments; a linear scan from the newest is fine.
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i];
      if (seq >= s.firstSeq) return seq <= s.lastSeq ? s : undefined;
    }
    return undefined;
  }

  private async flushAcks(): Promise<void> {
    const ackPath = join(this.cfg.directory, 'acks.log');
    try {
      while (this.ackBatch.length > 0) {
        const batch = this.ackBatch;
        this.ackBatch = [];
        try {
          if (this.ackLogDirty) {
            this.rewriteAckLogSync(ackPath);
            this.ackLogDirty = false;
          }
          this.ackFile ??= await open(ackPath, 'a', FILE_MODE);
          const b = Buffer.allocUnsafe(batch.length * 8);
          for (let i = 0; i < batch.length; i++) b.writeBigUInt64LE(BigInt(batch[i].seq), i * 8);
          try {
            await writeAll(this.ackFile, [b]);
            if (this.cfg.fsync) await this.ackFile.datasync();
          } catch (err) {
            // Cut back so later entries stay 8-byte aligned; if that fails, rewrite before the next.
            const f = this.ackFile;
            await f.truncate(this.ackFileBytes).catch(async () => {
              this.ackLogDirty = true;
              this.ackFile = undefined;
              await f.close().catch(() => {});
            });
            throw new Error(`persistent queue: cannot record ${batch.length} acknowledgement(s) in ${ackPath}, the records stay queued: ${errMsg(err)}`, { cause: err });
          }
          this.ackFileBytes += b.length;
          for (const a of batch) {
            if (this.ackedLive.has(a.seq)) continue; // acknowledged twice
            const seg = this.segmentOf(a.seq);
            if (this.taken.delete(a.seq) && seg) seg.inFlight--;
            if (!seg) continue;
            this.ackedLive.add(a.seq);
            seg.acked++;
            if (seg.acked === seg.count && !seg.active) await this.deleteSegment(seg);
          }
          for (const a of batch) a.resolve();
        } catch (err) {
          for (const a of batch) a.reject(err);
          continue;
        }
        if (this.ackFileBytes > ACK_COMPACT_BYTES && this.ackFileBytes > this.ackedLive.size * 16) {
          try {
            await this.ackFile?.close();
            this.ackFile = undefined;
            this.rewriteAckLogSync(ackPath);
          } catch (err) {
            this.logger.warn({ err }, 'persistent queue: cannot compact acks.log');
          }
        }
      }
    } finally {
      this.ackFlushing = undefined;
    }
  }

  private async deleteSegment(seg: Segment): Promise<void> {
    const i = this.segments.indexOf(seg);
    if (i < 0) return;
    this.segments.splice(i, 1);
    if (!seg.dropped) this.bytesTotal -= seg.size;
    for (let s = seg.firstSeq; s <= seg.lastSeq; s++) this.ackedLive.delete(s);
    if (seg.reader) await (await seg.reader.catch(() => undefined))?.close().catch(() => {});
    seg.reader = undefined;
    await unlink(seg.path).catch((err) => this.logger.warn({ err, path: seg.path }, 'persistent queue: cannot delete segment'));
  }

  /** take() returns undefined from now on (waiting takers too); appends and acks still work. */
  stopTaking(): void {
    this.stopped = true;
    for (const w of this.takers.splice(0)) w.resolve(undefined);
  }

  /** Flushes pending writes, closes files and unlocks; pending records stay on disk for the next open(). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.takers.splice(0)) w.resolve(undefined);
    await this.roomLock;
    while (this.appendFlushing || this.ackFlushing) await Promise.all([this.appendFlushing, this.ackFlushing]);
    await this.ioLock;
    for (const s of this.segments) {
      if (s.writer) await s.writer.close().catch(() => {});
      s.writer = undefined;
      s.active = false;
      if (s.reader) await (await s.reader.catch(() => undefined))?.close().catch(() => {});
      s.reader = undefined;
    }
    if (this.ackFile) await this.ackFile.close().catch(() => {});
    this.ackFile = undefined;
    this.releaseLock();
  }
}
