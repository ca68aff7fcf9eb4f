// Decodes batches from the native ring reader ([u32 length][u32 0][record][pad to 8] frames)
// into flyweight views: one preallocated view per layout is re-pointed at each record and handed
// to a visitor, so the hot path allocates nothing unless the visitor asks for a string or bigint.
// A view is only valid during the visitor call; copy what you keep (or call toObject()).
import { CommCache, decodeFixedString } from './comm-cache.ts';
import { errnoName, formatAddress } from './format.ts';
import {
  EVENT_HEADER as H, EXEC_EVENT as X, PROC_EVENT as P, TCP_EVENT as T,
  EVENT_TYPE_NAMES, EventFlag, EventType, FRAME_HEADER_BYTES, TCP_STATE_NAMES,
  type EventTypeName,
} from './layouts.ts';

const TWO32 = 4294967296;

/** Fields shared by every event (struct ks_event_header). */
export interface EventHeader {
  type: EventTypeName;
  typeCode: number;
  /** CLOCK_MONOTONIC ns (bpf_ktime_get_ns). */
  tsNs: bigint;
  cgroupId: bigint;
  tgid: number;
  tid: number;
  netnsIno: number;
  flags: number;
  comm: string;
  /** False when the kernel could not attribute the event to a task (flag OwnerUnknown). */
  ownerKnown: boolean;
}

export interface TcpEvent extends EventHeader {
  kind: 'tcp';
  sockCookie: bigint;
  durationNs: number;
  bytesAcked: number;
  bytesReceived: number;
  srttUs: number;
  totalRetrans: number;
  error: number;
  errorName: string | undefined;
  family: number;
  sport: number;
  dport: number;
  oldState: string;
  newState: string;
  saddr: string;
  daddr: string;
}

export interface ProcEvent extends EventHeader {
  kind: 'proc';
  durationNs: number;
  totalVmPages: number;
  rssPages: number;
  ppid: number;
  childPid: number;
  /** Raw wait(2) status. */
  exitCode: number;
  /** exit() status, (exitCode >> 8) & 0xff. */
  exitStatus: number;
  /** Terminating signal, exitCode & 0x7f (0 = exited normally). */
  termSignal: number;
  oomScoreAdj: number;
  uid: number;
}

export interface ExecEvent extends EventHeader {
  kind: 'exec';
  ppid: number;
  oldTid: number;
  uid: number;
  filename: string;
}

export type KernelEvent = TcpEvent | ProcEvent | ExecEvent;

abstract class EventView {
  /** @internal */ dv: DataView = new DataView(new ArrayBuffer(0));
  /** @internal */ u8: Uint8Array = new Uint8Array(0);
  /** Byte offset of the record in the batch buffer. */
  off = 0;
  /** Record length in bytes (may exceed the layout size for newer probes). */
  length = 0;

  constructor(protected readonly comms: CommCache) {}

  get typeCode(): number { return this.dv.getUint16(this.off + H.fields.type.offset, true); }
  get type(): EventTypeName { return EVENT_TYPE_NAMES[this.typeCode]; }
  get flags(): number { return this.dv.getUint16(this.off + H.fields.flags.offset, true); }
  get ownerKnown(): boolean { return (this.flags & EventFlag.OwnerUnknown) === 0; }
  get tsNs(): bigint { return this.dv.getBigUint64(this.off + H.fields.ts_ns.offset, true); }
  /** Timestamp as a number (ns; exact below 2^53, ~104 days of uptime). */
  get tsNsNumber(): number { return this.u64(H.fields.ts_ns.offset); }
  get cgroupId(): bigint { return this.dv.getBigUint64(this.off + H.fields.cgroup_id.offset, true); }
  /** cgroupId as a number without a BigInt allocation (same value as Number(cgroupId)). */
  get cgroupIdNumber(): number { return this.u64(H.fields.cgroup_id.offset); }
  get tgid(): number { return this.dv.getUint32(this.off + H.fields.tgid.offset, true); }
  get tid(): number { return this.dv.getUint32(this.off + H.fields.tid.offset, true); }
  get netnsIno(): number { return this.dv.getUint32(this.off + H.fields.netns_ino.offset, true); }
  get comm(): string { return this.comms.get(this.dv, this.off + H.fields.comm.offset); }

  /** u64 field as a number without a BigInt allocation. */
  protected u64(fieldOff: number): number {
    const o = this.off + fieldOff;
    return this.dv.getUint32(o, true) + this.dv.getUint32(o + 4, true) * TWO32;
  }

  protected header(): EventHeader {
    return {
      type: this.type, typeCode: this.typeCode, tsNs: this.tsNs, cgroupId: this.cgroupId,
      tgid: this.tgid, tid: this.tid, netnsIno: this.netnsIno, flags: this.flags, comm: this.comm,
      ownerKnown: this.ownerKnown,
    };
  }
}

/** View over struct ks_tcp_event. */
export class TcpEventView extends EventView {
  get sockCookie(): bigint { return this.dv.getBigUint64(this.off + T.fields.sock_cookie.offset, true); }
  /** Low and high u32 halves of sockCookie, read without a BigInt allocation (span ids, hot path). */
  get sockCookieLo(): number { return this.dv.getUint32(this.off + T.fields.sock_cookie.offset, true); }
  get sockCookieHi(): number { return this.dv.getUint32(this.off + T.fields.sock_cookie.offset + 4, true); }
  get durationNs(): number { return this.u64(T.fields.duration_ns.offset); }
  get bytesAcked(): number { return this.u64(T.fields.bytes_acked.offset); }
  get bytesReceived(): number { return this.u64(T.fields.bytes_received.offset); }
  get srttUs(): number { return this.dv.getUint32(this.off + T.fields.srtt_us.offset, true); }
  get totalRetrans(): number { return this.dv.getUint32(this.off + T.fields.total_retrans.offset, true); }
  get error(): number { return this.dv.getInt32(this.off + T.fields.error.offset, true); }
  get family(): number { return this.dv.getUint16(this.off + T.fields.family.offset, true); }
  get sport(): number { return this.dv.getUint16(this.off + T.fields.sport.offset, true); }
  get dport(): number { return this.dv.getUint16(this.off + T.fields.dport.offset, true); }
  get oldState(): number { return this.dv.getUint8(this.off + T.fields.oldstate.offset); }
  get newState(): number { return this.dv.getUint8(this.off + T.fields.newstate.offset); }
  /** IPv4 source address as a host-order u32 (family AF_INET only). */
  get saddrV4(): number { return this.dv.getUint32(this.off + T.fields.saddr.offset, false); }
  get daddrV4(): number { return this.dv.getUint32(this.off + T.fields.daddr.offset, false); }
  get saddr(): string { return formatAddress(this.u8, this.off + T.fields.saddr.offset, this.family); }
  get daddr(): string { return formatAddress(this.u8, this.off + T.fields.daddr.offset, this.family); }

  toObject(): TcpEvent {
    const err = this.error;
    return {
      ...this.header(), kind: 'tcp', sockCookie: this.sockCookie, durationNs: this.durationNs,
      bytesAcked: this.bytesAcked, bytesReceived: this.bytesReceived, srttUs: this.srttUs,
      totalRetrans: this.totalRetrans, error: err,
      errorName: this.typeCode === EventType.TcpConnectFail ? errnoName(err) : undefined,
      family: this.family, sport: this.sport, dport: this.dport,
      oldState: TCP_STATE_NAMES[this.oldState] ?? String(this.oldState),
      newState: TCP_STATE_NAMES[this.newState] ?? String(this.newState),
      saddr: this.saddr, daddr: this.daddr,
    };
  }
}

/** View over struct ks_proc_event (exit, fork, OOM victim). */
export class ProcEventView extends EventView {
  get durationNs(): number { return this.u64(P.fields.duration_ns.offset); }
  get totalVmPages(): number { return this.u64(P.fields.total_vm_pages.offset); }
  get rssPages(): number { return this.u64(P.fields.rss_pages.offset); }
  get ppid(): number { return this.dv.getUint32(this.off + P.fields.ppid.offset, true); }
  get childPid(): number { return this.dv.getUint32(this.off + P.fields.child_pid.offset, true); }
  get exitCode(): number { return this.dv.getInt32(this.off + P.fields.exit_code.offset, true); }
  get exitStatus(): number { return (this.exitCode >> 8) & 0xff; }
  get termSignal(): number { return this.exitCode & 0x7f; }
  get oomScoreAdj(): number { return this.dv.getInt32(this.off + P.fields.oom_score_adj.offset, true); }
  get uid(): number { return this.dv.getUint32(this.off + P.fields.uid.offset, true); }

  toObject(): ProcEvent {
    return {
      ...this.header(), kind: 'proc', durationNs: this.durationNs, totalVmPages: this.totalVmPages,
      rssPages: this.rssPages, ppid: this.ppid, childPid: this.childPid, exitCode: this.exitCode,
      exitStatus: this.exitStatus, termSignal: this.termSignal, oomScoreAdj: this.oomScoreAdj, uid: this.uid,
    };
  }
}

/** View over struct ks_exec_event. */
export class ExecEventView extends EventView {
  get ppid(): number { return this.dv.getUint32(this.off + X.fields.ppid.offset, true); }
  get oldTid(): number { return this.dv.getUint32(this.off + X.fields.old_tid.offset, true); }
  get uid(): number { return this.dv.getUint32(this.off + X.fields.uid.offset, true); }
  get filenameLength(): number {
    return Math.min(this.dv.getUint16(this.off + X.fields.filename_len.offset, true), X.fields.filename.size);
  }
  /** Decoded on each access (exec events are rare); cache it if read twice. */
  get filename(): string {
    const start = this.off + X.fields.filename.offset;
    return decodeFixedString(this.u8.subarray(start, start + this.filenameLength));
  }

  toObject(): ExecEvent {
    return { ...this.header(), kind: 'exec', ppid: this.ppid, oldTid: this.oldTid, uid: this.uid, filename: this.filename };
  }
}

export interface EventVisitor {
  tcp?(ev: TcpEventView): void;
  proc?(ev: ProcEventView): void;
  exec?(ev: ExecEventView): void;
}

export interface DecodeStats {
  records: number;
  tcp: number;
  proc: number;
  exec: number;
  /** Records with a type this decoder does not know (skipped). */
  unknownType: number;
  /** Records shorter than their layout (skipped). */
  tooShort: number;
  /** Batches whose framing was broken; the rest of such a batch is dropped. */
  badFrames: number;
}

export interface EventDecoderOptions {
  /** Slots in the comm string cache (default 256). */
  commCacheSize?: number;
}

function recordKind(type: number): 0 | 1 | 2 | 3 {
  if (type >= EventType.TcpConnect && type <= EventType.TcpResetReceived) return 1;
  if (type === EventType.ProcExec) return 3;
  if (type >= EventType.ProcExit && type <= EventType.ProcOomVictim) return 2;
  return 0;
}

export class EventDecoder {
  readonly stats: DecodeStats = { records: 0, tcp: 0, proc: 0, exec: 0, unknownType: 0, tooShort: 0, badFrames: 0 };
  readonly comms: CommCache;
  private readonly tcpView: TcpEventView;
  private readonly procView: ProcEventView;
  private readonly execView: ExecEventView;
  private lastBuf: ArrayBuffer | undefined;
  private dv: DataView = new DataView(new ArrayBuffer(0));
  private u8: Uint8Array = new Uint8Array(0);

  constructor(private readonly visitor: EventVisitor, opts: EventDecoderOptions = {}) {
    this.comms = new CommCache(opts.commCacheSize ?? 256);
    this.tcpView = new TcpEventView(this.comms);
    this.procView = new ProcEventView(this.comms);
    this.execView = new ExecEventView(this.comms);
  }

  /**
   * Visits every record of one batch. `count` (from the reader) bounds the walk when given.
   * Returns the number of records visited. Malformed input is counted, never thrown.
   */
  decodeBatch(buf: ArrayBuffer, byteLength: number = buf.byteLength, count = Infinity): number {
    if (buf !== this.lastBuf) {
      // The reader recycles a small pool of batch buffers: views are rebuilt only on a switch.
      this.lastBuf = buf;
      this.dv = new DataView(buf);
      this.u8 = new Uint8Array(buf);
    }
    const dv = this.dv, u8 = this.u8, v = this.visitor, st = this.stats;
    const end = Math.min(byteLength, buf.byteLength);
    let off = 0, n = 0;
    while (n < count && off + FRAME_HEADER_BYTES <= end) {
      const len = dv.getUint32(off, true);
      const rec = off + FRAME_HEADER_BYTES;
      if (len === 0 || rec + len > end) { st.badFrames++; break; }
      n++;
      st.records++;
      if (len < H.size) { st.tooShort++; off = rec + ((len + 7) & ~7); continue; }
      const type = dv.getUint16(rec + H.fields.type.offset, true);
      switch (recordKind(type)) {
        case 1:
          if (len < T.size) { st.tooShort++; break; }
          st.tcp++;
          if (v.tcp) { const x = this.tcpView; x.dv = dv; x.u8 = u8; x.off = rec; x.length = len; v.tcp(x); }
          break;
        case 2:
          if (len < P.size) { st.tooShort++; break; }
          st.proc++;
          if (v.proc) { const x = this.procView; x.dv = dv; x.u8 = u8; x.off = rec; x.length = len; v.proc(x); }
          break;
        case 3:
          if (len < X.size) { st.tooShort++; break; }
          st.exec++;
          if (v.exec) { const x = this.execView; x.dv = dv; x.u8 = u8; x.off = rec; x.length = len; v.exec(x); }
          break;
        default:
          st.unknownType++;
      }
      off = rec + ((len + 7) & ~7);
    }
    return n;
  }
}

/** Convenience for tests, fixtures and tools: every record of a batch as a plain object. */
export function decodeAll(buf: ArrayBuffer, byteLength: number = buf.byteLength): KernelEvent[] {
  const out: KernelEvent[] = [];
  const dec = new EventDecoder({
    tcp: (e) => { out.push(e.toObject()); },
    proc: (e) => { out.push(e.toObject()); },
    exec: (e) => { out.push(e.toObject()); },
  });
  dec.decodeBatch(buf, byteLength);
  return out;
}

/** The records of a batch in the reader's framing, each copied out (frameRecords' inverse). */
export function splitRecords(buf: ArrayBuffer, byteLength: number, count: number): Uint8Array[] {
  const dv = new DataView(buf, 0, byteLength);
  const out: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; i < count && off + FRAME_HEADER_BYTES <= byteLength; i++) {
    const len = dv.getUint32(off, true);
    if (off + FRAME_HEADER_BYTES + len > byteLength) break;
    out.push(new Uint8Array(buf.slice(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len)));
    off += FRAME_HEADER_BYTES + ((len + 7) & ~7);
  }
  return out;
}

/** Packs raw records into the reader's batch framing (fixtures, replay, tests). */
export function frameRecords(records: readonly Uint8Array[]): ArrayBuffer {
  let total = 0;
  for (const r of records) total += FRAME_HEADER_BYTES + ((r.byteLength + 7) & ~7);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  let off = 0;
  for (const r of records) {
    dv.setUint32(off, r.byteLength, true);
    out.set(r, off + FRAME_HEADER_BYTES);
    off += FRAME_HEADER_BYTES + ((r.byteLength + 7) & ~7);
  }
  return out.buffer;
}
