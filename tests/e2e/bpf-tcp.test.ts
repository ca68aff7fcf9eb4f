// LiveTcp test of bpf/tcp/tcp.bpf.o: loads the prebuilt object, drives loopback TCP traffic and
// checks the decoded events. The server runs in a child process so that an event attributed to
// the softirq's current task (often the client, on loopback) instead of the socket owner fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { hasBpf, requires } from '../lib/env.ts';
import {
  EventType, EventFlag, AF_INET, AF_INET6, type TcpEvent,
} from '../../agent/src/decode/index.ts';
import { sleep, startTcpProbe, type LiveTcp } from './bpf-live.ts';

const myNetns = statSync('/proc/self/ns/net').ino;
const myComm = readFileSync('/proc/self/comm', 'utf8').trim();




/**
 * A TCP server in a child process. Reads everything, answers `reply` bytes, then closes its side
 * when the client has finished sending. Prints its port on stdout.
 */
async function startServer(host: string, reply: number): Promise<{ child: ChildProcess; port: number; received: () => Promise<number[]> }> {
  const code = `
    const net = require('net');
    const counts = [];
    const s = net.createServer((c) => {
      let n = 0;
      c.on('data', (d) => { n += d.length; });
      c.on('end', () => { counts.push(n); c.end(Buffer.alloc(${reply}, 7)); });
      c.on('error', () => {});
    });
    s.listen(0, ${JSON.stringify(host)}, () => process.stdout.write(s.address().port + '\\n'));
    process.stdin.on('data', () => process.stdout.write(JSON.stringify(counts) + '\\n'));
  `;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let waiters: (() => void)[] = [];
  let partial = '';
  child.stdout!.on('data', (d) => {
    partial += String(d);
    let i;
    while ((i = partial.indexOf('\n')) >= 0) { lines.push(partial.slice(0, i)); partial = partial.slice(i + 1); }
    for (const w of waiters) w();
    waiters = [];
  });
  const nextLine = async (): Promise<string> => {
    while (lines.length === 0) await new Promise<void>((r) => waiters.push(r));
    return lines.shift()!;
  };
  const port = Number(await nextLine());
  return { child, port, received: async () => { child.stdin!.write('?\n'); return JSON.parse(await nextLine()) as number[]; } };
}

function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((r) => { if (child.exitCode !== null) { r(); return; } child.once('exit', () => r()); child.kill('SIGTERM'); });
}

/** Connects, sends `bytes`, half-closes, reads until the server closes. Returns the local port. */
function exchange(host: string, port: number, bytes: number): Promise<{ localPort: number; got: number }> {
  return new Promise((resolve, reject) => {
    let got = 0;
    let localPort = 0;
    const c = net.connect({ port, host }, () => { localPort = c.localPort!; c.end(Buffer.alloc(bytes, 1)); });
    c.on('data', (d) => { got += d.length; });
    c.on('error', reject);
    c.on('close', () => resolve({ localPort, got }));
  });
}

/** A loopback port with nothing listening (bound once, then released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('N loopback connects give exactly N connect events for the filtered pid; a closed port gives ECONNREFUSED', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  const server = await startServer('127.0.0.1', 0);
  const live = await startTcpProbe({ target_tgid: process.pid });
  try {
    const N = 12;
    const ports: number[] = [];
    for (let i = 0; i < N; i++) ports.push((await exchange('127.0.0.1', server.port, 10)).localPort);
    const refusedPort = await closedPort();
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
      const c = net.connect(refusedPort, '127.0.0.1');
      c.on('error', resolve);
    });
    assert.equal(err.code, 'ECONNREFUSED');

    const connects = (evs: TcpEvent[]) => evs.filter((e) => e.typeCode === EventType.TcpConnect && e.dport === server.port);
    await live.waitFor((evs) => connects(evs).length >= N && evs.some((e) => e.typeCode === EventType.TcpConnectFail), 'connect events');
    await sleep(100); // anything extra would show up now
    const cs = connects(live.events);
    assert.equal(cs.length, N);
    assert.deepEqual(cs.map((e) => e.sport).sort(), [...ports].sort());
    for (const e of cs) {
      assert.equal(e.tgid, process.pid);
      assert.equal(e.ownerKnown, true);
      assert.equal(e.comm, myComm);
      assert.equal(e.tid, process.pid, 'connect() runs on the main thread');
      assert.ok(e.durationNs > 0, 'connect latency > 0');
      assert.equal(e.family, AF_INET);
      assert.equal(e.saddr, '127.0.0.1');
      assert.equal(e.daddr, '127.0.0.1');
      assert.equal(e.oldState, 'SYN_SENT');
      assert.equal(e.newState, 'ESTABLISHED');
      assert.equal(e.netnsIno, myNetns);
      assert.notEqual(e.sockCookie, 0n);
    }
    // The target_tgid filter: nothing from other processes, in particular not the server's accepts.
    assert.deepEqual(live.events.filter((e) => e.tgid !== process.pid), []);
    assert.equal(live.events.filter((e) => e.typeCode === EventType.TcpAccept).length, 0);

    const fails = live.events.filter((e) => e.typeCode === EventType.TcpConnectFail);
    assert.equal(fails.length, 1);
    assert.equal(fails[0].dport, refusedPort);
    assert.equal(fails[0].error, 111);
    assert.equal(fails[0].errorName, 'ECONNREFUSED');
    assert.equal(fails[0].tgid, process.pid);
    assert.ok(fails[0].sport > 0);

    assert.ok((await live.emitted(EventType.TcpConnect)) >= BigInt(N));
    assert.equal(await live.emitted(EventType.TcpAccept), 0n);
    assert.equal(await live.lost(), 0n);
    // Owner entries go away when sockets are destroyed (else there would be >= 2N: both ends).
    assert.ok(live.obj.mapEntries('sockets').length < N, 'sockets map drained after the connections closed');
  } finally {
    await live.stop();
    await stopServer(server.child);
  }
});

test('bytes at close and owner attribution: client and server in different processes', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  const K = 100_000, J = 3_333;
  const server = await startServer('127.0.0.1', J);
  const live = await startTcpProbe({ target_tgid: 0 });
  try {
    const { localPort, got } = await exchange('127.0.0.1', server.port, K);
    assert.equal(got, J);
    assert.deepEqual(await server.received(), [K]);
    const refusedPort = await closedPort();
    await new Promise<void>((resolve) => { const c = net.connect(refusedPort, '127.0.0.1'); c.on('error', () => resolve()); });

    const mine = (e: TcpEvent) => (e.sport === localPort && e.dport === server.port) || (e.sport === server.port && e.dport === localPort);
    const closes = (evs: TcpEvent[]) => evs.filter((e) => mine(e) && e.typeCode === EventType.TcpClose);
    await live.waitFor((evs) => closes(evs).length >= 2 &&
      evs.some((e) => e.typeCode === EventType.TcpResetSent && e.sport === refusedPort), 'close and reset events');

    const evs = live.events.filter(mine);
    const connect = evs.find((e) => e.typeCode === EventType.TcpConnect)!;
    const accept = evs.find((e) => e.typeCode === EventType.TcpAccept)!;
    assert.ok(connect, 'connect event');
    assert.ok(accept, 'accept event');
    assert.equal(connect.tgid, process.pid);
    assert.equal(accept.tgid, server.child.pid, 'accept attributed to the server process');
    assert.equal(accept.ownerKnown, true);
    assert.equal(accept.sport, server.port);
    assert.equal(accept.dport, localPort);
    assert.equal(accept.comm, 'node');
    assert.ok(accept.durationNs > 0, 'time in the accept queue');

    const clientClose = closes(live.events).find((e) => e.sport === localPort)!;
    const serverClose = closes(live.events).find((e) => e.sport === server.port)!;
    assert.equal(clientClose.tgid, process.pid);
    assert.equal(serverClose.tgid, server.child.pid, 'server close attributed to the server process');
    assert.equal(clientClose.bytesAcked, K);
    assert.equal(clientClose.bytesReceived, J);
    assert.equal(serverClose.bytesReceived, K);
    assert.equal(serverClose.bytesAcked, J);
    assert.equal(clientClose.sockCookie, connect.sockCookie);
    assert.equal(serverClose.sockCookie, accept.sockCookie);
    // A connection's life runs from ESTABLISHED, where the connect (client) and the accept queue
    // wait (server) end: both sides' closes measure from the same instants their opens saw.
    assert.equal(clientClose.tsNs - BigInt(clientClose.durationNs), connect.tsNs, 'client: from ESTABLISHED (the connect event)');
    assert.equal(serverClose.tsNs - BigInt(serverClose.durationNs), accept.tsNs - BigInt(accept.durationNs), 'server: from ESTABLISHED (where the accept queue wait began)');
    assert.ok(serverClose.durationNs > 0);
    // The server side is marked passive on every event, the client side on none.
    for (const e of [accept, serverClose]) assert.notEqual(e.flags & EventFlag.Passive, 0, `${e.type} of the accepted socket is passive`);
    for (const e of [connect, clientClose]) assert.equal(e.flags & EventFlag.Passive, 0, `${e.type} of the connected socket is not passive`);
    assert.ok(clientClose.srttUs > 0);
    assert.equal(clientClose.flags & (EventFlag.OwnerUnknown | EventFlag.DurationUnknown | EventFlag.BytesApprox), 0);
    assert.equal(serverClose.flags & (EventFlag.OwnerUnknown | EventFlag.DurationUnknown | EventFlag.BytesApprox), 0);

    // The RST for the closed port has no socket: it must say so instead of naming the process
    // whose softirq sent it.
    const rst = live.events.find((e) => e.typeCode === EventType.TcpResetSent && e.sport === refusedPort)!;
    assert.equal(rst.ownerKnown, false);
    assert.equal(rst.tgid, 0);
    assert.equal(rst.comm, '');
    assert.equal(rst.daddr, '127.0.0.1');
  } finally {
    await live.stop();
    await stopServer(server.child);
  }
});

test('IPv6 and v4-mapped peers', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  const server = await startServer('::', 0); // dual-stack listener: IPv4 clients become v4-mapped
  const live = await startTcpProbe({ target_tgid: 0 });
  try {
    const v6 = await exchange('::1', server.port, 10);
    const v4 = await exchange('127.0.0.1', server.port, 10);
    const accepts = (evs: TcpEvent[]) => evs.filter((e) => e.typeCode === EventType.TcpAccept && e.sport === server.port);
    await live.waitFor((evs) => accepts(evs).length >= 2, 'two accepts');
    const a6 = accepts(live.events).find((e) => e.dport === v6.localPort)!;
    const a4 = accepts(live.events).find((e) => e.dport === v4.localPort)!;
    assert.equal(a6.family, AF_INET6);
    assert.equal(a6.saddr, '::1');
    assert.equal(a6.daddr, '::1');
    assert.equal(a6.flags & EventFlag.V4Mapped, 0);
    assert.equal(a4.family, AF_INET, 'v4-mapped peer reported as IPv4');
    assert.equal(a4.flags & EventFlag.V4Mapped, EventFlag.V4Mapped);
    assert.equal(a4.saddr, '127.0.0.1');
    assert.equal(a4.daddr, '127.0.0.1');
    assert.equal(a4.tgid, server.child.pid);
    const c6 = live.events.find((e) => e.typeCode === EventType.TcpConnect && e.sport === v6.localPort)!;
    assert.equal(c6.family, AF_INET6);
    assert.equal(c6.tgid, process.pid);
  } finally {
    await live.stop();
    await stopServer(server.child);
  }
});

test('ignore_loopback drops loopback connections', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  const server = await startServer('127.0.0.1', 0);
  const live = await startTcpProbe({ target_tgid: process.pid, ignore_loopback: true });
  try {
    for (let i = 0; i < 3; i++) await exchange('127.0.0.1', server.port, 10);
    await sleep(200);
    assert.deepEqual(live.events.filter((e) => e.dport === server.port || e.sport === server.port), []);
  } finally {
    await live.stop();
    await stopServer(server.child);
  }
});

test('resets: sent by the server process, received by the client process', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  const code = `
    const net = require('net');
    const s = net.createServer((c) => { c.once('data', () => c.resetAndDestroy()); c.on('error', () => {}); });
    s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = Number(await new Promise<string>((r) => child.stdout!.once('data', (d) => r(String(d)))));
  const live = await startTcpProbe({ target_tgid: 0 });
  try {
    const localPort = await new Promise<number>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { const lp = c.localPort!; c.write('x'); c.on('error', () => resolve(lp)); c.on('close', () => resolve(lp)); });
    });
    const ofConn = (e: TcpEvent) => (e.sport === localPort && e.dport === port) || (e.sport === port && e.dport === localPort);
    await live.waitFor((evs) => evs.some((e) => ofConn(e) && e.typeCode === EventType.TcpResetReceived) &&
      evs.some((e) => ofConn(e) && e.typeCode === EventType.TcpResetSent), 'reset events');
    const sent = live.events.find((e) => ofConn(e) && e.typeCode === EventType.TcpResetSent)!;
    const recv = live.events.find((e) => ofConn(e) && e.typeCode === EventType.TcpResetReceived)!;
    assert.equal(sent.tgid, child.pid);
    assert.equal(sent.sport, port);
    assert.equal(recv.tgid, process.pid);
    assert.equal(recv.sport, localPort);
    assert.equal(recv.ownerKnown, true);
    // Both sides still report their close.
    await live.waitFor((evs) => evs.filter((e) => ofConn(e) && e.typeCode === EventType.TcpClose).length >= 2, 'closes after reset');
  } finally {
    await live.stop();
    await stopServer(child);
  }
});

const hasNetnsTools = ['/usr/bin/unshare', '/usr/sbin/ip', '/sbin/ip', '/bin/ip'].filter((p) => existsSync(p)).length >= 2;

test('retransmits in a private network namespace carry the owner and that namespace', async (t) => {
  if (!requires(t, hasBpf() && hasNetnsTools, 'root, BPF, unshare and ip')) return;
  // Client and server in one process inside a new netns. Taking lo down makes the data segment
  // undeliverable, so the RTO timer (softirq) retransmits it until lo comes back.
  const script = `
    const net = require('net'); const { execSync } = require('child_process');
    const s = net.createServer((c) => { let n = 0; c.on('data', (d) => { n += d.length; });
      c.on('end', () => { c.end(); s.close(); process.stdout.write(JSON.stringify({ n, ns: require('fs').statSync('/proc/self/ns/net').ino }) + '\\n'); }); });
    s.listen(0, '127.0.0.1', () => {
      const c = net.connect(s.address().port, '127.0.0.1', () => {
        execSync('ip link set lo down');
        c.write(Buffer.alloc(1000, 1));
        setTimeout(() => { execSync('ip link set lo up'); c.end(); }, 1000);
      });
      c.resume();
    });`;
  const live = await startTcpProbe({ target_tgid: 0 });
  try {
    const child = spawn('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec "${process.execPath}" -e "$0"`, script],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => { out += String(d); });
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 0);
    const { n, ns } = JSON.parse(out) as { n: number; ns: number };
    assert.equal(n, 1000);
    assert.notEqual(ns, myNetns);
    await live.waitFor((evs) => evs.filter((e) => e.netnsIno === ns && e.typeCode === EventType.TcpClose).length >= 2, 'closes in the netns');
    const inNs = live.events.filter((e) => e.netnsIno === ns);
    const rts = inNs.filter((e) => e.typeCode === EventType.TcpRetransmit);
    assert.ok(rts.length >= 1, 'at least one retransmit');
    for (const r of rts) {
      assert.equal(r.tgid, child.pid, 'retransmit attributed to the socket owner, not the timer softirq');
      assert.equal(r.ownerKnown, true);
      assert.equal(r.daddr, '127.0.0.1');
    }
    const clientClose = inNs.find((e) => e.typeCode === EventType.TcpClose && e.sport === rts[0].sport)!;
    assert.ok(clientClose.totalRetrans >= rts.length);
    assert.equal(clientClose.bytesAcked, 1000);
  } finally {
    await live.stop();
  }
});

test('accept attribution through the raw_tp/sys_exit fallback (no syscall tracepoints)', async (t) => {
  if (!requires(t, hasBpf(), 'root and BPF')) return;
  const server = await startServer('127.0.0.1', 5);
  const live = await startTcpProbe({ target_tgid: 0 },
    { ks_sys_exit_accept4: false, ks_sys_exit_accept: false, ks_raw_sys_exit_accept: true });
  try {
    const progs = live.obj.programs();
    assert.equal(progs.find((p) => p.name === 'ks_raw_sys_exit_accept')?.attached, true);
    assert.equal(progs.find((p) => p.name === 'ks_sys_exit_accept4')?.loaded, false);
    const { localPort } = await exchange('127.0.0.1', server.port, 10);
    const accepted = (evs: TcpEvent[]) => evs.find((e) => e.typeCode === EventType.TcpAccept && e.dport === localPort);
    await live.waitFor((evs) => accepted(evs) !== undefined, 'accept event');
    assert.equal(accepted(live.events)!.tgid, server.child.pid);
  } finally {
    await live.stop();
    await stopServer(server.child);
  }
});
