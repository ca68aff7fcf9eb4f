// A small scripted workload for tests, fixtures and benchmarks that watch the kernel: a loopback
// TCP server and client in child processes (so their pids differ from the test's), one connect
// to a closed port (ECONNREFUSED) and a few short `sh -c 'exit N'` processes with distinct exit
// codes. Optionally every workload process runs inside a pod-like cgroup v2 directory
// (kubepods.slice/…-pod<uid>.slice/cri-containerd-<id>.scope), whose id the probes can filter on
// (target_cgroup_id) and whose path enrichment can parse.
//
// Typical use with a recorder or live probes that must be filtered before load:
//   const pod = await createPodCgroup();
//   try { /* load probes with target_cgroup_id = pod.id */ const w = await runWorkload({ podCgroup: pod }); }
//   finally { await pod.remove(); }
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync, accessSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

// ---------------------------------------------------------------------------------------------
// pod-like cgroup

export interface PodCgroup {
  /** cgroup2 mount point, e.g. /sys/fs/cgroup/unified */
  root: string;
  /** path relative to the root, starting with '/', as in a fixture's cgroup table */
  path: string;
  /** absolute directory */
  dir: string;
  /** cgroup id as the probes report it (the directory's inode) */
  id: bigint;
  /** pod uid with dashes */
  podUid: string;
  /** 64 hex digits */
  containerId: string;
  qos: 'burstable';
  /** Removes the scope and the slices this helper created (those still in use by others stay). */
  remove(): Promise<void>;
}

/** The cgroup2 mount: /sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup on pure v2 ones. */
export function cgroup2Mount(): string | undefined {
  let mounts = '';
  try { mounts = readFileSync('/proc/self/mounts', 'utf8'); } catch { return undefined; }
  const v2 = mounts.split('\n').map((l) => l.split(' ')).filter((f) => f[2] === 'cgroup2').map((f) => f[1]!);
  for (const cand of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) if (v2.includes(cand)) return cand;
  return v2[0];
}

/** True when a pod-like cgroup can be created here (cgroup2 mounted and writable: root). */
export function podCgroupSupported(): boolean {
  const root = cgroup2Mount();
  if (!root) return false;
  try {
    accessSync(root, constants.W_OK);
    return typeof process.getuid === 'function' && process.getuid() === 0;
  } catch {
    return false;
  }
}

/** Builds the systemd-driver path of a burstable pod's containerd container. Pure. */
export function podCgroupPath(podUid: string, containerId: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(podUid)) throw new Error(`pod uid '${podUid}' is not a lowercase UUID`);
  if (!/^[0-9a-f]{64}$/.test(containerId)) throw new Error(`container id '${containerId}' is not 64 hex digits`);
  const slice = `kubepods-burstable-pod${podUid.replaceAll('-', '_')}.slice`;
  return `/kubepods.slice/kubepods-burstable.slice/${slice}/cri-containerd-${containerId}.scope`;
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Creates the directory chain; remove() deletes what was created here (deepest first). */
export async function createPodCgroup(opts: { podUid?: string; containerId?: string; root?: string } = {}): Promise<PodCgroup> {
  const root = opts.root ?? cgroup2Mount();
  if (!root) throw new Error('no cgroup2 hierarchy is mounted');
  const podUid = opts.podUid ?? randomUUID();
  const containerId = opts.containerId ?? randomBytes(32).toString('hex');
  const path = podCgroupPath(podUid, containerId);
  const segments = path.split('/').filter(Boolean);
  const created: string[] = [];
  try {
    let dir = root;
    for (const seg of segments) {
      dir = join(dir, seg);
      try {
        mkdirSync(dir);
        created.push(dir);
      } catch (err) {
        if (errCode(err) !== 'EEXIST') throw err;
      }
    }
  } catch (err) {
    for (const d of created.reverse()) { try { rmdirSync(d); } catch { /* best effort */ } }
    throw err;
  }
  const dir = join(root, ...segments);
  const id = statSync(dir, { bigint: true }).ino;
  let removed: Promise<void> | undefined;
  return {
    root, path, dir, id, podUid, containerId, qos: 'burstable',
    remove() {
      removed ??= (async () => {
        for (const d of [...created].reverse()) {
          // an exited process leaves its cgroup a moment after its parent saw it exit: retry EBUSY
          for (let attempt = 0; ; attempt++) {
            try { rmdirSync(d); break; } catch (err) {
              const code = errCode(err);
              if (code === 'ENOENT') break;
              if (code === 'ENOTEMPTY' && d !== dir) return; // a shared parent slice still in use
              if (code !== 'EBUSY' || attempt >= 50) throw new Error(`cannot remove cgroup ${d}: ${(err as Error).message}`);
              await sleep(20);
            }
          }
        }
      })();
      return removed;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// child scripts (plain ESM, written to a temp dir so their command lines stay short)

const SERVER_JS = `
import net from 'node:net';
import { writeFileSync, readFileSync } from 'node:fs';
const cfg = JSON.parse(process.env.KS_WL_CONFIG);
// join the cgroup before anything observable happens (sockets, children)
if (cfg.cgroupProcs) writeFileSync(cfg.cgroupProcs, String(process.pid));
// a distinct comm for the probes, without rewriting argv as process.title would
writeFileSync('/proc/self/comm', 'ks-wl-server');
const reply = Buffer.alloc(cfg.replyBytes, 0x62);
const conns = [];
let open = 0, stopping = false;
const done = () => {
  if (!stopping || open > 0) return;
  process.stdout.write(JSON.stringify({ connections: conns }) + '\\n');
};
const srv = net.createServer((s) => {
  open++;
  const clientPort = s.remotePort;
  let received = 0;
  s.on('data', (d) => { received += d.length; });
  s.on('end', () => { s.end(reply); });
  s.on('error', () => {});
  s.on('close', () => { conns.push({ clientPort, received }); open--; done(); });
});
srv.listen(0, cfg.host, () => {
  process.stdout.write(JSON.stringify({ port: srv.address().port, cgroup: readFileSync('/proc/self/cgroup', 'utf8') }) + '\\n');
});
// the parent closes stdin once the client is done
process.stdin.on('end', () => { stopping = true; srv.close(); done(); });
process.stdin.resume();
`;

const CLIENT_JS = `
import net from 'node:net';
import { writeFileSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
const cfg = JSON.parse(process.env.KS_WL_CONFIG);
if (cfg.cgroupProcs) writeFileSync(cfg.cgroupProcs, String(process.pid));
writeFileSync('/proc/self/comm', 'ks-wl-client');
const payload = Buffer.alloc(cfg.bytes, 0x61);
function once() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: cfg.host, port: cfg.port });
    let clientPort = 0, received = 0;
    s.on('connect', () => { clientPort = s.localPort; s.end(payload); });
    s.on('data', (d) => { received += d.length; });
    s.on('error', reject);
    s.on('close', (hadError) => { if (!hadError) resolve({ clientPort, sent: cfg.bytes, received }); });
  });
}
async function refused() {
  // a port that was just free: listen on an ephemeral one and close it again
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, cfg.host, r));
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  return new Promise((resolve) => {
    const s = net.connect({ host: cfg.host, port });
    s.on('connect', () => { s.destroy(); resolve({ port, code: 'CONNECTED' }); });
    s.on('error', (err) => resolve({ port, code: err.code }));
  });
}
const connections = new Array(cfg.connects);
let next = 0;
async function lane() {
  while (next < cfg.connects) { const i = next++; connections[i] = await once(); }
}
await Promise.all(Array.from({ length: Math.min(cfg.concurrency, Math.max(cfg.connects, 1)) }, lane));
const refusedResult = cfg.refused ? await refused() : undefined;
const procs = [];
for (const code of cfg.exitCodes) {
  const r = spawnSync('/bin/sh', ['-c', 'exit ' + code], { stdio: 'ignore' });
  procs.push({ pid: r.pid, exitCode: r.status, signal: r.signal });
}
process.stdout.write(JSON.stringify({
  connections, refused: refusedResult, procs, cgroup: readFileSync('/proc/self/cgroup', 'utf8'),
}) + '\\n');
`;

// ---------------------------------------------------------------------------------------------
// the workload

export interface WorkloadOptions {
  /** TCP connections from client to server (default 5) */
  connects?: number;
  /** bytes the client sends on each connection (default 1000) */
  bytes?: number;
  /** bytes the server answers on each connection, after the client's half-close (default 64) */
  replyBytes?: number;
  /** connections in flight at once (default 1: strictly one after the other) */
  concurrency?: number;
  /** short processes `sh -c 'exit <code>'`, run one after the other by the client (default 3) */
  procs?: number;
  /** their exit codes (default 11, 12, …); distinct, 1..255; overrides `procs` */
  exitCodes?: number[];
  /** one connect to a closed port (default true) */
  refused?: boolean;
  /** true: run inside a fresh pod-like cgroup, removed at the end; a PodCgroup: run inside it
   * (the caller removes it); false (default): stay in the caller's cgroup */
  podCgroup?: boolean | PodCgroup;
  /** loopback address (default 127.0.0.1) */
  host?: string;
  /** whole workload deadline (default 60 s); children are killed when it passes */
  timeoutMs?: number;
}

export interface WorkloadConnection {
  /** the client's ephemeral port (the server's peer port) */
  clientPort: number;
  /** bytes the client sent and the server counted */
  sent: number;
  serverReceived: number;
  /** bytes the client received (the server's reply) */
  clientReceived: number;
}

export interface WorkloadResult {
  serverPid: number;
  clientPid: number;
  host: string;
  ports: {
    /** where the server listened */
    server: number;
    /** the closed port the refused connect went to */
    refused?: number;
  };
  connections: WorkloadConnection[];
  refused?: { port: number; code: string };
  /** the short processes, in the order they ran (children of clientPid) */
  procs: { pid: number; exitCode: number }[];
  /** What the workload itself caused (the node server and client also exec and exit; their exec
   * precedes their move into the pod cgroup). */
  expected: {
    connects: number;
    connectFailures: number;
    accepts: number;
    /** both ends of each connection */
    closes: number;
    execs: number;
    exits: number;
    /** forks by the client (one per short process) */
    forks: number;
  };
  /** present when the workload ran in a pod-like cgroup */
  cgroup?: { path: string; id: string; podUid: string; containerId: string; qos: 'burstable' };
}

interface ChildRun {
  child: ChildProcess;
  lines: AsyncIterator<string>;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startChild(scriptPath: string, config: object): ChildRun {
  const child = spawn(process.execPath, [scriptPath], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', KS_WL_CONFIG: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => { if (err.length < 16_384) err += d; });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
  exited.catch(() => undefined);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, lines, stderr: () => err, exited };
}

async function nextJson<T>(run: ChildRun, what: string): Promise<T> {
  const r = await run.lines.next();
  if (r.done) {
    const code = await run.exited.catch(() => null);
    throw new Error(`workload ${what} ended without output (exit ${code}): ${run.stderr().trim()}`);
  }
  return JSON.parse(r.value) as T;
}

function validate(o: Required<Pick<WorkloadOptions, 'connects' | 'bytes' | 'replyBytes' | 'concurrency'>>, codes: number[]): void {
  const int = (v: number, min: number, max: number, name: string): void => {
    if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`workload: ${name} must be an integer in ${min}..${max} (got ${v})`);
  };
  int(o.connects, 0, 100_000, 'connects');
  int(o.bytes, 1, 64 << 20, 'bytes');
  int(o.replyBytes, 0, 64 << 20, 'replyBytes');
  int(o.concurrency, 1, 1024, 'concurrency');
  if (codes.length > 200) throw new RangeError('workload: at most 200 procs');
  for (const c of codes) int(c, 1, 255, 'exit code');
  if (new Set(codes).size !== codes.length) throw new RangeError('workload: exit codes must be distinct');
}

/** Runs the workload to completion; every child has exited when it resolves. */
export async function runWorkload(opts: WorkloadOptions = {}): Promise<WorkloadResult> {
  const connects = opts.connects ?? 5;
  const bytes = opts.bytes ?? 1000;
  const replyBytes = opts.replyBytes ?? 64;
  const concurrency = opts.concurrency ?? 1;
  const exitCodes = opts.exitCodes ?? Array.from({ length: opts.procs ?? 3 }, (_, i) => 11 + i);
  const refused = opts.refused ?? true;
  const host = opts.host ?? '127.0.0.1';
  validate({ connects, bytes, replyBytes, concurrency }, exitCodes);

  const ownPod = opts.podCgroup === true ? await createPodCgroup() : undefined;
  const pod = ownPod ?? (typeof opts.podCgroup === 'object' ? opts.podCgroup : undefined);
  const cgroupProcs = pod ? join(pod.dir, 'cgroup.procs') : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'kscope-wl-'));
  const runs: ChildRun[] = [];
  let timer: NodeJS.Timeout | undefined;
  try {
    writeFileSync(join(dir, 'server.mjs'), SERVER_JS);
    writeFileSync(join(dir, 'client.mjs'), CLIENT_JS);
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`workload did not finish within ${opts.timeoutMs ?? 60_000} ms`)), opts.timeoutMs ?? 60_000);
    });
    deadline.catch(() => undefined);

    const work = (async () => {
      const server = startChild(join(dir, 'server.mjs'), { host, replyBytes, cgroupProcs });
      runs.push(server);
      const listening = await nextJson<{ port: number; cgroup: string }>(server, 'server');
      const client = startChild(join(dir, 'client.mjs'), { host, port: listening.port, bytes, concurrency, connects, refused, exitCodes, cgroupProcs });
      runs.push(client);
      const c = await nextJson<{
        connections: { clientPort: number; sent: number; received: number }[];
        refused?: { port: number; code: string };
        procs: { pid: number; exitCode: number | null; signal: string | null }[];
        cgroup: string;
      }>(client, 'client');
      const clientExit = await client.exited;
      if (clientExit !== 0) throw new Error(`workload client exited with ${clientExit}: ${client.stderr().trim()}`);
      server.child.stdin!.end();
      const s = await nextJson<{ connections: { clientPort: number; received: number }[] }>(server, 'server');
      const serverExit = await server.exited;
      if (serverExit !== 0) throw new Error(`workload server exited with ${serverExit}: ${server.stderr().trim()}`);

      if (pod) {
        for (const [who, cg] of [['server', listening.cgroup], ['client', c.cgroup]] as const) {
          if (!cg.split('\n').some((l) => l === `0::${pod.path}`)) throw new Error(`workload ${who} is not in ${pod.path}: ${cg.trim()}`);
        }
      }
      const byPort = new Map(s.connections.map((x) => [x.clientPort, x.received]));
      const connections = c.connections.map((x) => ({
        clientPort: x.clientPort, sent: x.sent, serverReceived: byPort.get(x.clientPort) ?? -1, clientReceived: x.received,
      }));
      for (const x of connections) {
        if (x.serverReceived !== bytes || x.clientReceived !== replyBytes) {
          throw new Error(`workload connection from port ${x.clientPort}: server got ${x.serverReceived}/${bytes} B, client got ${x.clientReceived}/${replyBytes} B`);
        }
      }
      if (refused && c.refused?.code !== 'ECONNREFUSED') throw new Error(`workload: connect to a closed port gave ${c.refused?.code}, not ECONNREFUSED`);
      const procs = c.procs.map((p, i) => {
        if (p.exitCode !== exitCodes[i]) throw new Error(`workload: sh -c 'exit ${exitCodes[i]}' ended with ${p.exitCode ?? p.signal}`);
        return { pid: p.pid, exitCode: p.exitCode };
      });
      const result: WorkloadResult = {
        serverPid: server.child.pid!,
        clientPid: client.child.pid!,
        host,
        ports: { server: listening.port, ...(c.refused ? { refused: c.refused.port } : {}) },
        connections,
        ...(c.refused ? { refused: c.refused } : {}),
        procs,
        expected: {
          connects, connectFailures: refused ? 1 : 0, accepts: connects, closes: 2 * connects,
          execs: procs.length, exits: procs.length, forks: procs.length,
        },
        ...(pod ? { cgroup: { path: pod.path, id: pod.id.toString(), podUid: pod.podUid, containerId: pod.containerId, qos: pod.qos } } : {}),
      };
      return result;
    })();
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
    for (const r of runs) {
      if (r.child.exitCode === null && r.child.signalCode === null) {
        r.child.kill('SIGKILL');
        await r.exited.catch(() => undefined);
      }
    }
    rmSync(dir, { recursive: true, force: true });
    if (ownPod) await ownPod.remove();
  }
}
