// Decoder on hand-built bytes. Records are written with literal offsets taken from the C headers
// (bpf/include/event_common.h, bpf/tcp/tcp.h, bpf/proc/proc.h), not from layouts.ts, so a wrong
// offset in the decoder's table shows up here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EventDecoder, decodeAll, frameRecords, splitRecords, EventType, EventFlag, AF_INET, AF_INET6,
  type TcpEvent, type ProcEvent, type ExecEvent, type TcpEventView,
} from '../../agent/src/decode/index.ts';

interface Hdr { ts: bigint; cgroup: bigint; tgid: number; tid: number; netns: number; type: number; flags: number; comm: string }

function header(dv: DataView, h: Hdr): void {
  dv.setBigUint64(0, h.ts, true);
  dv.setBigUint64(8, h.cgroup, true);
  dv.setUint32(16, h.tgid, true);
  dv.setUint32(20, h.tid, true);
  dv.setUint32(24, h.netns, true);
  dv.setUint16(28, h.type, true);
  dv.setUint16(30, h.flags, true);
  new Uint8Array(dv.buffer, dv.byteOffset + 32, 16).set(new TextEncoder().encode(h.comm).subarray(0, 16));
}

const baseHdr: Hdr = { ts: 123456789012345n, cgroup: 0x1122334455667788n, tgid: 4242, tid: 4243, netns: 4026531840, type: 0, flags: 0, comm: 'curl' };

function tcpRecord(h: Partial<Hdr>, f: {
  cookie?: bigint; duration?: bigint; acked?: bigint; received?: bigint; srtt?: number; retrans?: number; error?: number;
  family?: number; sport?: number; dport?: number; oldstate?: number; newstate?: number; saddr?: number[]; daddr?: number[];
}): Uint8Array {
  const u8 = new Uint8Array(136);
  const dv = new DataView(u8.buffer);
  header(dv, { ...baseHdr, ...h });
  dv.setBigUint64(48, f.cookie ?? 0n, true);
  dv.setBigUint64(56, f.duration ?? 0n, true);
  dv.setBigUint64(64, f.acked ?? 0n, true);
  dv.setBigUint64(72, f.received ?? 0n, true);
  dv.setUint32(80, f.srtt ?? 0, true);
  dv.setUint32(84, f.retrans ?? 0, true);
  dv.setInt32(88, f.error ?? 0, true);
  dv.setUint16(92, f.family ?? AF_INET, true);
  dv.setUint16(94, f.sport ?? 0, true);
  dv.setUint16(96, f.dport ?? 0, true);
  dv.setUint8(98, f.oldstate ?? 0);
  dv.setUint8(99, f.newstate ?? 0);
  u8.set(f.saddr ?? [], 104);
  u8.set(f.daddr ?? [], 120);
  return u8;
}

function procRecord(h: Partial<Hdr>, f: { duration?: bigint; vm?: bigint; rss?: bigint; ppid?: number; child?: number; exit?: number; adj?: number; uid?: number }): Uint8Array {
  const u8 = new Uint8Array(96);
  const dv = new DataView(u8.buffer);
  header(dv, { ...baseHdr, ...h });
  dv.setBigUint64(48, f.duration ?? 0n, true);
  dv.setBigUint64(56, f.vm ?? 0n, true);
  dv.setBigUint64(64, f.rss ?? 0n, true);
  dv.setUint32(72, f.ppid ?? 0, true);
  dv.setUint32(76, f.child ?? 0, true);
  dv.setInt32(80, f.exit ?? 0, true);
  dv.setInt32(84, f.adj ?? 0, true);
  dv.setUint32(88, f.uid ?? 0, true);
  return u8;
}

function execRecord(h: Partial<Hdr>, f: { ppid: number; oldTid: number; uid: number; filename: string }): Uint8Array {
  const u8 = new Uint8Array(320);
  const dv = new DataView(u8.buffer);
  header(dv, { ...baseHdr, ...h, type: EventType.ProcExec });
  dv.setUint32(48, f.ppid, true);
  dv.setUint32(52, f.oldTid, true);
  dv.setUint32(56, f.uid, true);
  const name = new TextEncoder().encode(f.filename);
  dv.setUint16(60, name.length, true);
  u8.set(name, 64);
  u8.fill(0x41, 64 + name.length + 1); // garbage after the NUL must not leak into the string
  return u8;
}

test('tcp connect record decodes every field', () => {
  const rec = tcpRecord({ type: EventType.TcpConnect }, {
    cookie: 0xdeadbeefcafen, duration: 123_456n, srtt: 77, retrans: 2, family: AF_INET, sport: 40000, dport: 8080,
    oldstate: 2, newstate: 1, saddr: [10, 0, 0, 1], daddr: [192, 168, 1, 20],
  });
  const [e] = decodeAll(frameRecords([rec])) as TcpEvent[];
  assert.equal(e.kind, 'tcp');
  assert.equal(e.type, 'TcpConnect');
  assert.equal(e.tsNs, 123456789012345n);
  assert.equal(e.cgroupId, 0x1122334455667788n);
  assert.equal(e.tgid, 4242);
  assert.equal(e.tid, 4243);
  assert.equal(e.netnsIno, 4026531840);
  assert.equal(e.comm, 'curl');
  assert.equal(e.ownerKnown, true);
  assert.equal(e.sockCookie, 0xdeadbeefcafen);
  assert.equal(e.durationNs, 123456);
  assert.equal(e.srttUs, 77);
  assert.equal(e.totalRetrans, 2);
  assert.equal(e.sport, 40000);
  assert.equal(e.dport, 8080);
  assert.equal(e.oldState, 'SYN_SENT');
  assert.equal(e.newState, 'ESTABLISHED');
  assert.equal(e.saddr, '10.0.0.1');
  assert.equal(e.daddr, '192.168.1.20');
  assert.equal(e.errorName, undefined);
});

test('connect failure carries errno and its name; owner-unknown flag is exposed', () => {
  const fail = tcpRecord({ type: EventType.TcpConnectFail }, { error: 111, oldstate: 2, newstate: 7 });
  const orphan = tcpRecord({ type: EventType.TcpClose, tgid: 0, tid: 0, comm: '', flags: EventFlag.OwnerUnknown | EventFlag.CgroupFromSocket },
    { acked: 5_000_000_000n, received: 2n ** 40n, oldstate: 9, newstate: 7 });
  const [f, c] = decodeAll(frameRecords([fail, orphan])) as TcpEvent[];
  assert.equal(f.error, 111);
  assert.equal(f.errorName, 'ECONNREFUSED');
  assert.equal(c.ownerKnown, false);
  assert.equal(c.comm, '');
  assert.equal(c.flags & EventFlag.CgroupFromSocket, EventFlag.CgroupFromSocket);
  assert.equal(c.bytesAcked, 5_000_000_000); // u64 above 2^32 read exactly
  assert.equal(c.bytesReceived, 2 ** 40);
  assert.equal(c.oldState, 'LAST_ACK');
});

test('IPv6 addresses format in RFC 5952 form', () => {
  const a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  const lo = [...Array(15).fill(0), 1];
  const mid = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
  const [e1, e2] = decodeAll(frameRecords([
    tcpRecord({ type: EventType.TcpAccept }, { family: AF_INET6, saddr: a, daddr: lo }),
    tcpRecord({ type: EventType.TcpAccept }, { family: AF_INET6, saddr: mid, daddr: [0xfe, 0x80, ...Array(13).fill(0), 0x2a] }),
  ])) as TcpEvent[];
  assert.equal(e1.saddr, '2001:db8::1');
  assert.equal(e1.daddr, '::1');
  assert.equal(e2.saddr, '2001:db8:1::1:0:1');
  assert.equal(e2.daddr, 'fe80::2a');
});

test('proc exit, fork and oom records', () => {
  const recs = [
    procRecord({ type: EventType.ProcExit, comm: 'sh' }, { duration: 5_000_000n, ppid: 1, exit: 3 << 8, uid: 1000 }),
    procRecord({ type: EventType.ProcExit }, { exit: 9 }),
    procRecord({ type: EventType.ProcFork }, { ppid: 10, child: 555 }),
    procRecord({ type: EventType.ProcOomVictim }, { vm: 1n << 33n, rss: 4096n, adj: -500 }),
  ];
  const [exit, killed, fork, oom] = decodeAll(frameRecords(recs)) as ProcEvent[];
  assert.equal(exit.type, 'ProcExit');
  assert.equal(exit.comm, 'sh');
  assert.equal(exit.durationNs, 5_000_000);
  assert.equal(exit.exitStatus, 3);
  assert.equal(exit.termSignal, 0);
  assert.equal(exit.uid, 1000);
  assert.equal(killed.termSignal, 9);
  assert.equal(killed.exitStatus, 0);
  assert.equal(fork.type, 'ProcFork');
  assert.equal(fork.childPid, 555);
  assert.equal(fork.ppid, 10);
  assert.equal(oom.type, 'ProcOomVictim');
  assert.equal(oom.totalVmPages, 2 ** 33);
  assert.equal(oom.rssPages, 4096);
  assert.equal(oom.oomScoreAdj, -500);
});

test('exec filename stops at filename_len, UTF-8 decoded', () => {
  const [e] = decodeAll(frameRecords([execRecord({ comm: 'ls' }, { ppid: 7, oldTid: 8, uid: 0, filename: '/usr/bin/lś' })])) as ExecEvent[];
  assert.equal(e.kind, 'exec');
  assert.equal(e.type, 'ProcExec');
  assert.equal(e.filename, '/usr/bin/lś');
  assert.equal(e.ppid, 7);
  assert.equal(e.oldTid, 8);
  assert.equal(e.comm, 'ls');
});

test('views are reused across records (flyweight) and comm strings come from the cache', () => {
  const recs: Uint8Array[] = [];
  for (let i = 0; i < 100; i++) recs.push(tcpRecord({ type: EventType.TcpRetransmit, tgid: i, comm: i % 2 ? 'nginx' : 'envoy' }, { sport: i }));
  const seen = new Set<TcpEventView>();
  let sum = 0;
  const comms: string[] = [];
  const dec = new EventDecoder({ tcp: (v) => { seen.add(v); sum += v.sport; comms.push(v.comm); } });
  const buf = frameRecords(recs);
  assert.equal(dec.decodeBatch(buf, buf.byteLength, 100), 100);
  assert.equal(seen.size, 1);
  assert.equal(sum, (99 * 100) / 2);
  assert.equal(comms[0], 'envoy');
  assert.equal(comms[1], 'nginx');
  assert.equal(dec.comms.misses, 2);
  assert.equal(dec.comms.hits, 98);
  assert.equal(dec.stats.tcp, 100);
});

test('count bounds the walk; a 16-byte comm with no NUL decodes whole', () => {
  const recs = [tcpRecord({ type: EventType.TcpConnect, comm: 'abcdefghijklmnop' }, {}), tcpRecord({ type: EventType.TcpConnect }, {})];
  const out: string[] = [];
  const dec = new EventDecoder({ tcp: (v) => out.push(v.comm) });
  const buf = frameRecords(recs);
  assert.equal(dec.decodeBatch(buf, buf.byteLength, 1), 1);
  assert.deepEqual(out, ['abcdefghijklmnop']);
});

test('malformed input is counted, never thrown', () => {
  const good = tcpRecord({ type: EventType.TcpConnect }, {});
  const unknown = tcpRecord({ type: 99 }, {});
  const short = tcpRecord({ type: EventType.TcpClose }, {}).subarray(0, 100); // tcp type, proc-sized
  const tiny = new Uint8Array(20);
  const buf = frameRecords([good, unknown, short, tiny, good]);
  const dec = new EventDecoder({});
  assert.equal(dec.decodeBatch(buf), 5);
  assert.deepEqual(
    { records: dec.stats.records, tcp: dec.stats.tcp, unknownType: dec.stats.unknownType, tooShort: dec.stats.tooShort },
    { records: 5, tcp: 2, unknownType: 1, tooShort: 2 });

  // A frame whose length runs past the batch: the rest of the batch is dropped and counted.
  const broken = new Uint8Array(frameRecords([good, good]));
  new DataView(broken.buffer).setUint32(8 + 136, 10_000, true);
  const d2 = new EventDecoder({});
  assert.equal(d2.decodeBatch(broken.buffer), 1);
  assert.equal(d2.stats.badFrames, 1);

  // A byteLength shorter than the buffer (pooled batch buffers) is honoured.
  const d3 = new EventDecoder({});
  const two = frameRecords([good, good]);
  assert.equal(d3.decodeBatch(two, 8 + 136), 1);
  assert.equal(d3.stats.badFrames, 0);
});

test('records longer than the layout (newer probe) still decode', () => {
  const longer = new Uint8Array(160);
  longer.set(tcpRecord({ type: EventType.TcpConnect }, { sport: 1234 }));
  const [e] = decodeAll(frameRecords([longer, tcpRecord({ type: EventType.TcpClose }, { sport: 99 })])) as TcpEvent[];
  assert.equal(e.sport, 1234);
  assert.equal(decodeAll(frameRecords([longer, tcpRecord({ type: EventType.TcpClose }, { sport: 99 })])).length, 2);
});

test('splitRecords undoes frameRecords (odd lengths, padding) and stops at a truncated record', () => {
  const recs = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(Array.from({ length: 17 }, (_, i) => i + 1))];
  const buf = frameRecords(recs);
  assert.deepEqual(splitRecords(buf, buf.byteLength, recs.length), recs);
  assert.deepEqual(splitRecords(buf, buf.byteLength, 2), recs.slice(0, 2), 'count bounds the records read');
  assert.deepEqual(splitRecords(buf, buf.byteLength - 8, recs.length), recs.slice(0, 2), 'a record past the end is not read');
});
