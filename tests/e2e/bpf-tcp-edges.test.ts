// LiveTcp tests of bpf/tcp/tcp.bpf.o at its edges: a reset sent from a TIME_WAIT socket (no struct
// sock behind it: no cgroup from the socket), ignore_loopback for IPv6 resets without a socket,
// and the socket-owner table's counters and size (probes.max_sockets, through LiveSource).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { hasBpf, requires } from '../lib/env.ts';
import { EventType, EventFlag, AF_INET6, type TcpEvent } from '../../agent/src/decode/index.ts';
import { LiveSource } from '../../agent/src/sources/live.ts';
import { knownProbes } from '../../agent/src/sources/probes.ts';
import { sleep, startTcpProbe, type LiveTcp } from './bpf-live.ts';

const TCP_TIME_WAIT = 'TIME_WAIT';



/** A port on `host` with nothing listening (bound once, then released). */
async function closedPort(host: string): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, host, () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function refused(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, host);
    c.on('connect', () => reject(new Error(`${host}:${port} accepted`)));
    c.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNREFUSED' ? resolve() : reject(e)));
  });
}

test('a reset sent from a TIME_WAIT socket has no cgroup from the socket (it has no struct sock)', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  // The server keeps its half open and writes after the client closed: the client's socket is
  // then a FIN_WAIT2 timewait socket, and data for it is answered with a reset (TCP_TW_RST).
  let sent!: () => void;
  const wrote = new Promise<void>((r) => { sent = r; });
  const conns: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    conns.push(c);
    c.on('error', () => {});
    c.on('end', () => setTimeout(() => c.write('late data', () => sent()), 100));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const live = await startTcpProbe({ target_tgid: 0 });
  try {
    const localPort = await new Promise<number>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => { const lp = c.localPort!; c.destroy(); resolve(lp); });
      c.on('error', reject);
    });
    await wrote;
    const fromTw = (e: TcpEvent) => e.typeCode === EventType.TcpResetSent && e.sport === localPort && e.dport === port;
    await live.waitFor((evs) => evs.some(fromTw), 'the reset from the timewait socket');
    const rst = live.events.find(fromTw)!;
    assert.equal(rst.oldState, TCP_TIME_WAIT, 'sent by the timewait socket');
    assert.equal(rst.ownerKnown, false);
    assert.equal(rst.flags & EventFlag.CgroupFromSocket, 0, 'no cgroup read from a socket that has no sk_cgrp_data');
    assert.equal(rst.cgroupId, 0n);
    assert.equal(rst.daddr, '127.0.0.1');
  } finally {
    await live.stop();
    for (const c of conns) c.destroy();
    server.close();
  }
});

test('ignore_loopback also drops resets without a socket on ::1', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  const rstTo = (port: number) => (e: TcpEvent) => e.typeCode === EventType.TcpResetSent && e.sport === port;
  // control: without the filter, the reset for a closed ::1 port is reported
  let live = await startTcpProbe({ target_tgid: 0 });
  try {
    const port = await closedPort('::1');
    await refused('::1', port);
    await live.waitFor((evs) => evs.some(rstTo(port)), 'the ::1 reset');
    const rst = live.events.find(rstTo(port))!;
    assert.equal(rst.family, AF_INET6);
    assert.equal(rst.daddr, '::1');
    assert.equal(rst.ownerKnown, false);
  } finally {
    await live.stop();
  }
  live = await startTcpProbe({ target_tgid: 0, ignore_loopback: true });
  try {
    const p6 = await closedPort('::1');
    const p4 = await closedPort('127.0.0.1');
    await refused('::1', p6);
    await refused('127.0.0.1', p4);
    await sleep(300);
    assert.deepEqual(live.events.filter(rstTo(p6)), [], 'IPv6 loopback reset dropped');
    assert.deepEqual(live.events.filter(rstTo(p4)), [], 'IPv4 loopback reset dropped');
  } finally {
    await live.stop();
  }
});

interface Conn { client: net.Socket; server: net.Socket }

async function openConnections(port: number, accepted: net.Socket[], n: number): Promise<Conn[]> {
  const out: Conn[] = [];
  for (let i = 0; i < n; i++) {
    const before = accepted.length;
    const client = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => resolve(c));
      c.on('error', reject);
    });
    while (accepted.length === before) await sleep(1);
    out.push({ client, server: accepted[accepted.length - 1]! });
  }
  return out;
}

test('socket table: max_sockets sizes it; inserts and deletes are counted, and overflow shows', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  const accepted: net.Socket[] = [];
  const server = net.createServer((c) => { accepted.push(c); c.on('error', () => {}); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const CAP = 64, N = 100;
  // through LiveSource, as the agent sizes it from probes.max_sockets
  const src = new LiveSource([{ ...knownProbes.tcp!, globals: { target_tgid: process.pid } }], { maxEntries: { tcp: { sockets: CAP } } });
  try {
    assert.deepEqual(src.failures, []);
    await src.start(() => {});
    const [s0] = src.socketTables();
    assert.equal(s0!.probe, 'tcp');
    assert.equal(s0!.capacity, CAP);
    const conns = await openConnections(port, accepted, N);
    await sleep(100);
    const [s1] = src.socketTables();
    // each connection adds its client socket (connect) and the server's child (handshake)
    assert.ok(s1!.inserted - s0!.inserted >= BigInt(2 * N), `inserted ${s1!.inserted - s0!.inserted}`);
    assert.equal(s1!.insertFailed, 0n);
    assert.ok(s1!.inserted - s1!.deleted > BigInt(CAP), 'more owners recorded than the table holds: the LRU evicted');
    for (const c of conns) { c.client.destroy(); c.server.destroy(); }
    await sleep(300);
    const [s2] = src.socketTables();
    const removed = s2!.deleted - s1!.deleted;
    // The probe records every host's passive children (their owner is unknown until accept), so
    // another test's loopback traffic meanwhile adds entries it then deletes: what can be deleted
    // is what the table held (at most CAP) plus what was inserted since.
    const insertedSince = s2!.inserted - s1!.inserted;
    assert.ok(removed > 0n && removed <= BigInt(CAP) + insertedSince, `only entries in the table are deleted (${removed}, ${insertedSince} inserted since)`);
    assert.ok(s2!.inserted - s2!.deleted >= BigInt(2 * N - CAP), 'what is left is at least the evicted owners');
  } finally {
    await src.stop();
    for (const c of accepted) c.destroy();
    server.close();
  }

  // the default size holds them: every insert is matched by a delete once the sockets are gone
  const src2 = new LiveSource([{ ...knownProbes.tcp!, globals: { target_tgid: process.pid } }]);
  try {
    const server2 = net.createServer((c) => { accepted.push(c); c.on('error', () => {}); });
    await new Promise<void>((r) => server2.listen(0, '127.0.0.1', () => r()));
    const port2 = (server2.address() as net.AddressInfo).port;
    await src2.start(() => {});
    const [b] = src2.socketTables();
    assert.equal(b!.capacity, 65_536);
    const conns = await openConnections(port2, accepted, 20);
    for (const c of conns) { c.client.destroy(); c.server.destroy(); }
    await sleep(300);
    const [a] = src2.socketTables();
    assert.ok(a!.inserted - b!.inserted >= 40n);
    assert.ok(a!.deleted - b!.deleted >= 40n, 'each recorded socket was deleted when destroyed');
    server2.close();
  } finally {
    await src2.stop();
  }
});
