// A disk-backed FIFO for the sending queue: at-least-once across restarts and crashes.
//
// Layout in `directory`:
//   <firstSeq, 20 digits>.seg  append-only segments; each record is
//                              [u32 payload length][u32 crc32(seq ‖ payload)][u64 seq][payload]
//   acks.log                   append-only u64 sequence numbers of records that are done
//                              (sent or dropped for good); compacted by rewrite + rename.
// Appends and acks are group-committed: everything queued while one write+fdatasync is in flight
// goes out in the next one, so a burst costs one fsync, and an append resolves only once durable.
// On open, segments are scanned (a torn tail record from a crash is truncated away), records whose
// seq is not in acks.log are pending again, fully acknowledged segments are deleted. Records taken
// but not acknowledged when the process dies are replayed: duplicates are possible, loss is not.
import { crc32 } from 'node:zlib';
import { mkdirSync, readdirSync, readFileSync, truncateSync, unlinkSync, existsSync, openSync, fsyncSync, closeSync, writeFileSync, renameSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../component/index.ts';
import type { PersistentStorageConfig } from './config.ts';

const HEADER = 16;
const SEG_RE = /^(\d{20})\.seg$/;
const ACK_COMPACT_BYTES = 1 << 20;

interface Segment {
  firstSeq: number;
  path: string;
  size: number;
  count: number;
  acked: number;
  active: boolean;
  writer?: FileHandle;
  reader?: Promise<FileHandle>;
}

interface PendingRecord {
  seq: number;
  seg: Segment;
  offset: number;
  length: number;
}

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export class QueueFullError extends Error {
  readonly code = 'QUEUE_FULL';
}

function segName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}.seg`;
}

function recordCrc(seq: number, payload: Uint8Array): number {
  const s = Buffer.allocUnsafe(8);
  s.writeBigUInt64LE(BigInt(seq));
  return crc32(payload, crc32(s));
}

export class PersistentQueue {
  private readonly segments: Segment[] = [];
  private readonly pending: PendingRecord[] = [];
  private pendingHead = 0;
  private readonly ackedLive = new Set<number>();
  private nextSeq = 1;
  private bytesTotal = 0;
  private ackFile?: FileHandle;
  private ackFileBytes = 0;
  private appendBatch: Array<{ buf: Buffer; payloadLen: number; seq: number } & Waiter<void>> = [];
  private ackBatch: Array<{ seq: number } & Waiter<void>> = [];
  private appendFlushing?: Promise<void>;
  private ackFlushing?: Promise<void>;
  private takers: Array<Waiter<{ seq: number; payload: Uint8Array } | undefined>> = [];
  private closed = false;
  private stopped = false;
  /** Bytes reserved by appends not yet written, so the bound holds under concurrency. */
  private reserved = 0;
  /** Pending records dropped to make room (drop_oldest). */
  droppedOldest = 0;

  constructor(private readonly cfg: PersistentStorageConfig, private readonly logger: Logger) {}

  /** Records pending (not yet taken) plus in flight (taken, not acknowledged). */
  get size(): number {
    let n = 0;
    for (const s of this.segments) n += s.count - s.acked;
    return n + this.appendBatch.length;
  }

  get pendingCount(): number {
    return this.pending.length - this.pendingHead;
  }

  get bytes(): number {
    return this.bytesTotal + this.reserved;
  }

  /** Scans the directory and makes unacknowledged records pending again. */
  open(): void {
    mkdirSync(this.cfg.directory, { recursive: true });
    const ackPath = join(this.cfg.directory, 'acks.log');
    const acked = new Set<number>();
    if (existsSync(ackPath)) {
      const b = readFileSync(ackPath);
      const whole = b.length - (b.length % 8);
      if (whole !== b.length) truncateSync(ackPath, whole); // torn ack write: the record is replayed
      for (let o = 0; o < whole; o += 8) acked.add(Number(b.readBigUInt64LE(o)));
    }
    const files = readdirSync(this.cfg.directory)
      .filter((f) => SEG_RE.test(f))
      .sort();
    let replayed = 0;
    for (const f of files) {
      const path = join(this.cfg.directory, f);
      const firstSeq = Number(SEG_RE.exec(f)![1]);
      const b = readFileSync(path);
      const seg: Segment = { firstSeq, path, size: 0, count: 0, acked: 0, active: false };
      let o = 0;
      while (o + HEADER <= b.length) {
        const len = b.readUInt32LE(o);
        const crc = b.readUInt32LE(o + 4);
        const seq = Number(b.readBigUInt64LE(o + 8));
        if (o + HEADER + len > b.length) break;
        const payload = b.subarray(o + HEADER, o + HEADER + len);
        if (recordCrc(seq, payload) !== crc) break;
        seg.count++;
        if (acked.has(seq)) {
          seg.acked++;
          this.ackedLive.add(seq);
        } else {
          this.pending.push({ seq, seg, offset: o + HEADER, length: len });
          replayed++;
        }
        if (seq >= this.nextSeq) this.nextSeq = seq + 1;
        o += HEADER + len;
      }
      if (o < b.length) {
        this.logger.warn({ segment: f, validBytes: o, fileBytes: b.length }, 'persistent queue: torn or corrupt tail truncated');
        truncateSync(path, o);
      }
      seg.size = o;
      if (seg.count === seg.acked) {
        unlinkSync(path);
        for (let s = seg.firstSeq; s < seg.firstSeq + seg.count; s++) this.ackedLive.delete(s);
        continue;
      }
      this.segments.push(seg);
      this.bytesTotal += seg.size;
    }
    // Rewrite the ack log with only live entries (also drops acks of deleted segments).
    this.rewriteAckLogSync(ackPath);
    if (replayed > 0) this.logger.info({ records: replayed, bytes: this.bytesTotal }, 'persistent queue: replaying records from disk');
  }

  private rewriteAckLogSync(ackPath: string): void {
    const b = Buffer.allocUnsafe(this.ackedLive.size * 8);
    let o = 0;
    for (const s of this.ackedLive) o = b.writeBigUInt64LE(BigInt(s), o);
    const tmp = `${ackPath}.tmp`;
    writeFileSync(tmp, b);
    if (this.cfg.fsync) {
      const fd = openSync(tmp, 'r');
      fsyncSync(fd);
      closeSync(fd);
    }
    renameSync(tmp, ackPath);
    if (this.cfg.fsync) {
      const dfd = openSync(this.cfg.directory, 'r');
      fsyncSync(dfd);
      closeSync(dfd);
    }
    this.ackFileBytes = b.length;
  }

  /** Appends a record; resolves once it is on disk (fsync'd when configured). */
  append(payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error('persistent queue is closed'));
    const need = HEADER + payload.length;
    if (this.bytes + need > this.cfg.maxBytes) {
      if (!this.cfg.dropOldest || need > this.cfg.maxBytes) return Promise.reject(this.fullError());
      return this.dropOldestFor(need).then(() => this.append(payload));
    }
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

  private fullError(): QueueFullError {
    return new QueueFullError(`persistent queue is full (${this.bytes} of ${this.cfg.maxBytes} bytes)`);
  }

  /**
   * Makes room by dropping the oldest pending records a sealed segment at a time: they are
   * acknowledged as done (counted in droppedOldest) so their segment is deleted once records of it
   * still in flight are acknowledged too. Refuses when only the active segment or in-flight
   * records are left.
   */
  private async dropOldestFor(need: number): Promise<void> {
    while (this.bytes + need > this.cfg.maxBytes) {
      if (this.pendingCount === 0) throw this.fullError();
      const seg = this.pending[this.pendingHead].seg;
      if (seg.active) {
        if (this.segments.length > 1 || seg.size === 0) throw this.fullError();
        await this.sealSegment(seg); // the next append opens a new segment
      }
      const seqs: number[] = [];
      while (this.pendingCount > 0 && this.pending[this.pendingHead].seg === seg) seqs.push(this.pending[this.pendingHead++].seq);
      this.droppedOldest += seqs.length;
      this.logger.warn({ records: seqs.length, segment: seg.path }, 'persistent queue full: oldest records dropped');
      await Promise.all(seqs.map((q) => this.ack(q)));
      if (this.segments.includes(seg)) throw this.fullError(); // records of it are still in flight
    }
  }

  private async activeSegment(firstSeq: number): Promise<Segment> {
    const last = this.segments[this.segments.length - 1];
    if (last?.active && last.size < this.cfg.segmentBytes) return last;
    if (last?.active) await this.sealSegment(last);
    const path = join(this.cfg.directory, segName(firstSeq));
    const seg: Segment = { firstSeq, path, size: 0, count: 0, acked: 0, active: true };
    seg.writer = await open(path, 'a');
    if (this.cfg.fsync) {
      const dir = await open(this.cfg.directory, 'r');
      await dir.sync().finally(() => dir.close());
    }
    this.segments.push(seg);
    return seg;
  }

  private async sealSegment(seg: Segment): Promise<void> {
    seg.active = false;
    const w = seg.writer;
    seg.writer = undefined;
    if (w) await w.close();
    if (seg.count === seg.acked) await this.deleteSegment(seg);
  }

  private async flushAppends(): Promise<void> {
    try {
      while (this.appendBatch.length > 0) {
        const batch = this.appendBatch;
        this.appendBatch = [];
        try {
          let i = 0;
          while (i < batch.length) {
            const seg = await this.activeSegment(batch[i].seq);
            const start = seg.size;
            const bufs: Buffer[] = [];
            let size = seg.size;
            const first = i;
            while (i < batch.length && (i === first || size < this.cfg.segmentBytes)) {
              bufs.push(batch[i].buf);
              size += batch[i].buf.length;
              i++;
            }
            await seg.writer!.writev(bufs);
            if (this.cfg.fsync) await seg.writer!.datasync();
            let o = start;
            for (let k = first; k < i; k++) {
              const r = batch[k];
              this.pending.push({ seq: r.seq, seg, offset: o + HEADER, length: r.payloadLen });
              seg.count++;
              o += r.buf.length;
              this.reserved -= r.buf.length;
              this.bytesTotal += r.buf.length;
            }
            seg.size = size;
          }
          for (const r of batch) r.resolve();
          this.wakeTakers();
        } catch (err) {
          for (const r of batch) {
            this.reserved -= r.buf.length;
            r.reject(err);
          }
        }
      }
    } finally {
      this.appendFlushing = undefined;
    }
  }

  private wakeTakers(): void {
    while (this.takers.length > 0 && this.pendingCount > 0) {
      const w = this.takers.shift()!;
      this.takeNow().then(w.resolve, w.reject);
    }
  }

  private async takeNow(): Promise<{ seq: number; payload: Uint8Array }> {
    const r = this.pending[this.pendingHead++];
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
    const fh = await (r.seg.reader ??= open(r.seg.path, 'r'));
    const payload = Buffer.allocUnsafe(r.length);
    const { bytesRead } = await fh.read(payload, 0, r.length, r.offset);
    if (bytesRead !== r.length) throw new Error(`persistent queue: short read of record ${r.seq}`);
    return { seq: r.seq, payload };
  }

  /** The next record, waiting for one; undefined once closed. */
  take(): Promise<{ seq: number; payload: Uint8Array } | undefined> {
    if (this.closed || this.stopped) return Promise.resolve(undefined);
    if (this.pendingCount > 0) return this.takeNow();
    return new Promise((resolve, reject) => this.takers.push({ resolve, reject }));
  }

  /** Marks a record done (sent, or dropped for good); durable before it resolves. */
  ack(seq: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.ackBatch.push({ seq, resolve, reject });
      if (!this.ackFlushing) this.ackFlushing = this.flushAcks();
    });
  }

  private segmentOf(seq: number): Segment | undefined {
    // Few segments; a linear scan from the newest is fine.
    for (let i = this.segments.length - 1; i >= 0; i--) if (seq >= this.segments[i].firstSeq) return this.segments[i];
    return undefined;
  }

  private async flushAcks(): Promise<void> {
    try {
      while (this.ackBatch.length > 0) {
        const batch = this.ackBatch;
        this.ackBatch = [];
        try {
          this.ackFile ??= await open(join(this.cfg.directory, 'acks.log'), 'a');
          const b = Buffer.allocUnsafe(batch.length * 8);
          for (let i = 0; i < batch.length; i++) b.writeBigUInt64LE(BigInt(batch[i].seq), i * 8);
          await this.ackFile.write(b);
          if (this.cfg.fsync) await this.ackFile.datasync();
          this.ackFileBytes += b.length;
          for (const a of batch) {
            this.ackedLive.add(a.seq);
            const seg = this.segmentOf(a.seq);
            if (seg) {
              seg.acked++;
              if (seg.acked === seg.count && !seg.active) await this.deleteSegment(seg);
            }
          }
          if (this.ackFileBytes > ACK_COMPACT_BYTES && this.ackFileBytes > this.ackedLive.size * 16) {
            await this.ackFile.close();
            this.ackFile = undefined;
            this.rewriteAckLogSync(join(this.cfg.directory, 'acks.log'));
          }
          for (const a of batch) a.resolve();
        } catch (err) {
          for (const a of batch) a.reject(err);
        }
      }
    } finally {
      this.ackFlushing = undefined;
    }
  }

  private async deleteSegment(seg: Segment): Promise<void> {
    const i = this.segments.indexOf(seg);
    if (i >= 0) this.segments.splice(i, 1);
    this.bytesTotal -= seg.size;
    for (let s = seg.firstSeq; s < seg.firstSeq + seg.count; s++) this.ackedLive.delete(s);
    if (seg.reader) await (await seg.reader).close().catch(() => {});
    await unlink(seg.path).catch((err) => this.logger.warn({ err, path: seg.path }, 'persistent queue: cannot delete segment'));
  }

  /** take() returns undefined from now on (waiting takers too); appends and acks still work. */
  stopTaking(): void {
    this.stopped = true;
    for (const w of this.takers.splice(0)) w.resolve(undefined);
  }

  /** Flushes pending writes and closes files; pending records stay on disk for the next open(). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.takers.splice(0)) w.resolve(undefined);
    while (this.appendFlushing || this.ackFlushing) await Promise.all([this.appendFlushing, this.ackFlushing]);
    for (const s of this.segments) {
      if (s.writer) await s.writer.close().catch(() => {});
      s.writer = undefined;
      s.active = false;
      if (s.reader) await (await s.reader).close().catch(() => {});
      s.reader = undefined;
    }
    if (this.ackFile) await this.ackFile.close().catch(() => {});
    this.ackFile = undefined;
  }
}
