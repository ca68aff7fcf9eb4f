// Test peers: real programs (reference collector, kube-apiserver + etcd, Jaeger, Prometheus,
// telemetrygen, kustomize) started on loopback for interop tests. Binaries come from
// tests/peers/build.sh, which builds them once into a cache outside the repository.
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { tmpdir, homedir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

export type PeerName = 'otelcol' | 'kube-apiserver' | 'kubectl' | 'telemetrygen' | 'jaeger' | 'kustomize' | 'etcd' | 'prometheus' | 'otapbench';
export const PEER_NAMES: readonly PeerName[] = ['otelcol', 'kube-apiserver', 'kubectl', 'telemetrygen', 'jaeger', 'kustomize', 'etcd', 'prometheus', 'otapbench'];

const here = dirname(fileURLToPath(import.meta.url));
const buildScript = join(here, 'build.sh');

export const peersDir: string = process.env.KSCOPE_PEERS_DIR ?? join(homedir(), '.cache', 'kscope', 'peers');
/** Where peer process logs go; they are kept after stop() so a failed test can point at them. */
export const peerLogsDir: string = join(tmpdir(), 'kscope-peer-logs');

export class PeerError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'PeerError';
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------
// Binaries

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {}):
  Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 0, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') { reject(err); return; }
        const e = err as (Error & { code?: number | null; killed?: boolean; signal?: string | null }) | null;
        const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
        const note = e?.killed ? `\n(killed with ${e.signal} after ${opts.timeoutMs} ms)` : '';
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + note });
      });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

let pathCache: Map<PeerName, string> | undefined;
/** The binary path a peer has (or will have) in the cache; no build. */
export function peerPath(name: PeerName): string {
  if (!PEER_NAMES.includes(name)) throw new PeerError('PEER_UNKNOWN', `unknown peer '${name}'`);
  if (!pathCache) {
    pathCache = new Map();
    // build.sh owns the version table; ask it once for every path.
    const out = execFileSyncText('bash', [buildScript, '--path', ...PEER_NAMES]);
    const lines = out.trim().split('\n');
    PEER_NAMES.forEach((n, i) => pathCache!.set(n, lines[i]!));
  }
  return pathCache.get(name)!;
}

function execFileSyncText(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, KSCOPE_PEERS_DIR: peersDir } });
}

/** True when the peer's binary is already built (or installed, for Debian peers). */
export function peerBuilt(name: PeerName): boolean {
  const p = peerPath(name);
  try { return statSync(p).isFile(); } catch { return false; }
}

const building = new Map<PeerName, Promise<string>>();
/**
 * Returns the binary path, building the peer first if it is missing. build.sh serialises
 * concurrent builds (also across processes) with a lock file. Throws PeerError on failure with
 * the build log's path and tail.
 */
export async function ensurePeer(name: PeerName): Promise<string> {
  const path = peerPath(name);
  if (peerBuilt(name)) return Promise.resolve(path);
  let p = building.get(name);
  if (!p) {
    p = run('bash', [buildScript, name], { env: { ...process.env, KSCOPE_PEERS_DIR: peersDir } }).then((r) => {
      if (r.code !== 0 || !peerBuilt(name)) {
        throw new PeerError('PEER_BUILD_FAILED', `building peer ${name} failed (exit ${r.code}):\n${r.stderr.trim()}`);
      }
      return path;
    });
    p.catch(() => building.delete(name));
    building.set(name, p);
  }
  return p;
}

/** For `requires(t, ...)`: builds if needed and reports instead of throwing. */
export async function tryEnsurePeer(name: PeerName): Promise<{ ok: true; path: string; error?: undefined } | { ok: false; path?: undefined; error: string }> {
  try {
    return { ok: true, path: await ensurePeer(name) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

// ---------------------------------------------------------------------------------------------
// Process plumbing

/** Ports the OS reports free right now (bound on 127.0.0.1 then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<import('node:net').Server>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

export function tcpOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => { sock.destroy(); resolve(false); });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Peers must not outlive the test process, whatever way it ends.
  const killAll = () => { for (const c of live) { try { c.kill('SIGKILL'); } catch { /* gone */ } } };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => { killAll(); process.exit(sig === 'SIGINT' ? 130 : 143); });
  }
}

export interface StopResult { code: number | null; signal: NodeJS.Signals | null; forced: boolean }

export interface PeerProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  readonly child: ChildProcess;
  exited(): boolean;
  /** SIGTERM, then SIGKILL after graceMs. Idempotent. */
  stop(graceMs?: number): Promise<StopResult>;
  /** The last `lines` lines of the log. */
  logTail(lines?: number): string;
}

function newLogFile(name: string): string {
  mkdirSync(peerLogsDir, { recursive: true });
  return join(peerLogsDir, `${name}-${new Date().toISOString().replace(/[:.]/g, '')}-${randomBytes(3).toString('hex')}.log`);
}

function readTail(file: string, lines = 40): string {
  try { return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'); } catch { return ''; }
}

/** Starts a binary with stdout+stderr appended to a log file; the child is killed when the test process exits. */
export function spawnPeer(name: string, bin: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; logFile?: string } = {}): PeerProcess {
  installExitHook();
  const logFile = opts.logFile ?? newLogFile(name);
  const fd = openSync(logFile, 'a');
  writeFileSync(fd, `# ${new Date().toISOString()} ${bin} ${args.join(' ')}\n`);
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { stdio: ['ignore', fd, fd], env: opts.env ?? process.env, cwd: opts.cwd });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new PeerError('PEER_SPAWN_FAILED', `could not start ${bin}; log: ${logFile}`);
  live.add(child);
  // A forgotten peer must not keep the test process alive; the exit hook kills it.
  child.unref();
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitedP = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { exitInfo = { code, signal }; live.delete(child); resolve(exitInfo); });
  });
  child.once('error', () => { /* reported through exit / readiness */ });
  let stopping: Promise<StopResult> | undefined;
  return {
    name, pid: child.pid, logFile, child,
    exited: () => exitInfo !== undefined,
    logTail: (lines = 40) => readTail(logFile, lines),
    stop(graceMs = 10_000) {
      if (stopping) return stopping;
      stopping = (async () => {
        if (exitInfo) return { ...exitInfo, forced: false };
        // Keep the event loop alive until the exit is seen (the child is unref'd otherwise).
        child.ref();
        child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), graceMs); });
        const first = await Promise.race([exitedP, timeout]);
        clearTimeout(timer);
        if (first !== 'timeout') return { ...first, forced: false };
        child.kill('SIGKILL');
        return { ...(await exitedP), forced: true };
      })();
      return stopping;
    },
  };
}

/** Polls `check` until it returns true; fails early if the process exits. */
async function waitReady(p: PeerProcess, what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  while (Date.now() < deadline) {
    if (p.exited()) {
      throw new PeerError('PEER_EXITED', `${p.name} exited before ${what}; log: ${p.logFile}\n${p.logTail(30)}`);
    }
    try { if (await check()) return; } catch { /* not yet */ }
    await sleep(delay);
    delay = Math.min(delay * 2, 500);
  }
  throw new PeerError('PEER_NOT_READY', `${p.name} not ready (${what}) after ${timeoutMs} ms; log: ${p.logFile}\n${p.logTail(30)}`);
}

async function httpOk(url: string, init?: RequestInit): Promise<boolean> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.ok;
}

function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `kscope-peer-${name}-`));
}

function removeDir(dir: string): void {
  if (process.env.KSCOPE_PEERS_KEEP === '1') return;
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Starts something whose ports are picked at runtime; retries with fresh ports when the process
 * dies before it is ready (another test may have taken a port between pick and bind).
 */
async function withPortRetry<T>(attempts: number, fn: () => Promise<T>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try { return await fn(); } catch (e) {
      last = e;
      if (!(e instanceof PeerError) || e.code !== 'PEER_EXITED' || !/address already in use|bind:/i.test(e.message)) throw e;
    }
  }
  throw last;
}

// ---------------------------------------------------------------------------------------------
// otelcol

export interface OtelcolContext {
  /** Free loopback ports, as many as `opts.ports` asked for. */
  ports: number[];
  /** A temp dir for file exporter output etc.; removed by stop(). */
  dir: string;
}

export interface OtelcolHandle {
  pid: number;
  ports: number[];
  dir: string;
  configFile: string;
  logFile: string;
  process: PeerProcess;
  stop(): Promise<StopResult>;
}

export interface OtelcolOptions {
  /** How many free ports to pick and pass to the config function (default 2). */
  ports?: number;
  /** Ports that must accept TCP before the collector counts as ready (default: all picked ports). */
  waitForPorts?: number[];
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

/**
 * Config for startOtelcol: the reference collector as an OTLP/HTTP → OTel Arrow relay (its
 * otlp receiver on ports[0], its otelarrow exporter to 127.0.0.1:`targetPort` on one stream, IPC
 * zstd, no gRPC compression, no queue), so its Go encoder's output reaches our OTAP server.
 */
export function otelArrowRelayConfig(targetPort: number, signals: readonly ('traces' | 'logs' | 'metrics')[] = ['traces', 'logs', 'metrics']): (ctx: OtelcolContext) => string {
  return ({ ports }) => `
receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:${ports[0]} }
exporters:
  otelarrow:
    endpoint: 127.0.0.1:${targetPort}
    tls: { insecure: true }
    compression: none
    sending_queue: { enabled: false }
    arrow: { num_streams: 1 }
service:
  pipelines:
${signals.map((sig) => `    ${sig}: { receivers: [otlp], exporters: [otelarrow] }`).join('\n')}
`;
}

/**
 * Starts the reference collector (ocb build: receivers otlp, otelarrow; exporters otlp, otlphttp,
 * otelarrow, file, debug; processor batch). The config is YAML, or a function of picked ports and
 * a temp dir. Its own metrics endpoint is turned off unless the config sets
 * service.telemetry.metrics, so parallel collectors do not fight over :8888.
 * Ready when the collector logs "Everything is ready" and every waited port accepts TCP.
 */
export async function startOtelcol(config: string | ((ctx: OtelcolContext) => string), opts: OtelcolOptions = {}): Promise<OtelcolHandle> {
  const bin = await ensurePeer('otelcol');
  return withPortRetry(3, async () => {
    const dir = tempDir('otelcol');
    try {
      const ports = await freePorts(opts.ports ?? 2);
      const text = typeof config === 'string' ? config : config({ ports, dir });
      const doc = parseYaml(text) as Record<string, unknown> | null;
      if (!doc || typeof doc !== 'object') throw new PeerError('PEER_CONFIG', 'otelcol config is not a YAML mapping');
      const service = (doc.service ??= {}) as Record<string, unknown>;
      const telemetry = (service.telemetry ??= {}) as Record<string, unknown>;
      telemetry.metrics ??= { level: 'none' };
      const configFile = join(dir, 'config.yaml');
      writeFileSync(configFile, stringifyYaml(doc));
      const proc = spawnPeer('otelcol', bin, ['--config', configFile], { env: opts.env ?? process.env, cwd: dir });
      const wait = opts.waitForPorts ?? (typeof config === 'string' ? [] : ports);
      try {
        await waitReady(proc, 'Everything is ready', async () => {
          if (!readFileSync(proc.logFile, 'utf8').includes('Everything is ready')) return false;
          for (const p of wait) if (!(await tcpOpen(p))) return false;
          return true;
        }, opts.readyTimeoutMs ?? 30_000);
      } catch (e) {
        await proc.stop(2000);
        throw e;
      }
      return {
        pid: proc.pid, ports, dir, configFile, logFile: proc.logFile, process: proc,
        async stop() { const r = await proc.stop(); removeDir(dir); return r; },
      };
    } catch (e) {
      removeDir(dir);
      throw e;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// etcd + kube-apiserver

export interface KubeRequestResult { status: number; body: string; json<T = any>(): T }

export interface KubeApiserverHandle {
  /** https://127.0.0.1:PORT */
  url: string;
  /** Bearer token of user `admin` in group system:masters. */
  token: string;
  /** PEM bundle the serving certificate chains to (self-signed by the apiserver at first start). */
  caFile: string;
  /** kubeconfig (server, CA, admin token) for kubectl and @kubernetes/client-node. */
  kubeconfig: string;
  etcdUrl: string;
  dir: string;
  logFile: string;
  etcdLogFile: string;
  pid(): number;
  /** Raw request with the admin token (or `token`). `body` objects are sent as JSON. */
  request(method: string, path: string, body?: unknown, opts?: { token?: string; contentType?: string }): Promise<KubeRequestResult>;
  /**
   * Creates the namespace and ServiceAccount if missing, then a token for it through the
   * TokenRequest API (default 1 h). Use it to test RBAC as a non-admin identity.
   */
  serviceAccountToken(namespace: string, name: string, expirationSeconds?: number): Promise<string>;
  /** Writes a kubeconfig for `token` (e.g. a ServiceAccount's) and returns its path. */
  kubeconfigFor(token: string, name: string): string;
  /** Runs the kubectl peer against this apiserver (admin kubeconfig unless args override it). */
  kubectl(args: string[], opts?: { input?: string; kubeconfig?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Stops kube-apiserver and starts it again on the same port, data and keys (etcd keeps running). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface KubeApiserverOptions {
  /** Default RBAC. 'AlwaysAllow' skips authorization entirely. */
  authorizationMode?: string;
  /** Extra kube-apiserver flags. */
  extraArgs?: string[];
  readyTimeoutMs?: number;
}

async function startEtcd(dir: string): Promise<{ proc: PeerProcess; url: string }> {
  const bin = await ensurePeer('etcd');
  return withPortRetry(3, async () => {
    const [client, peer] = await freePorts(2);
    const url = `http://127.0.0.1:${client}`;
    const peerUrl = `http://127.0.0.1:${peer}`;
    const proc = spawnPeer('etcd', bin, [
      '--name', 'kscope', '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `kscope=${peerUrl}`, '--initial-cluster-state', 'new',
      '--log-level', 'warn', '--logger', 'zap',
    ]);
    try {
      await waitReady(proc, `${url}/health`, async () => {
        const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
        const body = await res.text();
        return res.ok && body.includes('"true"');
      }, 20_000);
    } catch (e) {
      await proc.stop(2000);
      throw e;
    }
    return { proc, url };
  });
}

function kubeRequest(url: string, ca: string, token: string, method: string, path: string, body?: unknown, contentType?: string): Promise<KubeRequestResult> {
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, url), {
      method, ca, timeout: 15_000,
      headers: {
        authorization: `Bearer ${token}`, accept: 'application/json',
        ...(payload !== undefined ? { 'content-type': contentType ?? 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function writeKubeconfig(file: string, url: string, caFile: string, user: string, token: string): string {
  writeFileSync(file, stringifyYaml({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: 'kscope', cluster: { server: url, 'certificate-authority': caFile } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'kscope', context: { cluster: 'kscope', user } }],
    'current-context': 'kscope',
  }), { mode: 0o600 });
  return file;
}

/**
 * Starts etcd (Debian, loopback, temp data dir) and kube-apiserver (secure port on 127.0.0.1 with a
 * self-signed cert, static admin token, RBAC, ServiceAccount tokens signed by a per-run key).
 * No controller-manager or kubelet: Pods stay Pending (patch pods/NAME/status to change phase),
 * and the ServiceAccount admission plugin is off because no `default` ServiceAccount gets created.
 */
export async function startKubeApiserver(opts: KubeApiserverOptions = {}): Promise<KubeApiserverHandle> {
  const bin = await ensurePeer('kube-apiserver');
  const dir = tempDir('kube');
  let etcd: { proc: PeerProcess; url: string } | undefined;
  let api: PeerProcess | undefined;
  try {
    etcd = await startEtcd(dir);
    const token = randomBytes(24).toString('hex');
    writeFileSync(join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n`, { mode: 0o600 });
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
    const certDir = join(dir, 'certs');
    mkdirSync(certDir);
    const logFile = newLogFile('kube-apiserver');
    let port = 0;
    const etcdUrl = etcd.url;
    const args = () => [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1', `--secure-port=${port}`, `--cert-dir=${certDir}`,
      '--advertise-address=127.0.0.1', '--endpoint-reconciler-type=none',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${join(dir, 'sa.key')}`, `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      `--authorization-mode=${opts.authorizationMode ?? 'RBAC'}`,
      '--disable-admission-plugins=ServiceAccount',
      '--enable-priority-and-fairness=false',
      ...(opts.extraArgs ?? []),
    ];
    const caFile = join(certDir, 'apiserver.crt');
    const launch = async (): Promise<PeerProcess> => {
      const p = spawnPeer('kube-apiserver', bin, args(), { logFile });
      try {
        await waitReady(p, '/readyz', async () => {
          if (!existsSync(caFile)) return false;
          const r = await kubeRequest(`https://127.0.0.1:${port}`, readFileSync(caFile, 'utf8'), token, 'GET', '/readyz');
          return r.status === 200;
        }, opts.readyTimeoutMs ?? 90_000);
      } catch (e) {
        await p.stop(2000);
        throw e;
      }
      return p;
    };
    api = await withPortRetry(3, async () => { [port] = await freePorts(1); return launch(); });
    const url = `https://127.0.0.1:${port}`;
    const ca = readFileSync(caFile, 'utf8');
    const kubeconfig = writeKubeconfig(join(dir, 'kubeconfig'), url, caFile, 'admin', token);
    const req = (method: string, path: string, body?: unknown, o: { token?: string; contentType?: string } = {}) =>
      kubeRequest(url, ca, o.token ?? token, method, path, body, o.contentType);
    const etcdProc = etcd.proc;
    let stopped = false;
    const handle: KubeApiserverHandle = {
      url, token, caFile, kubeconfig, etcdUrl, dir, logFile, etcdLogFile: etcdProc.logFile,
      pid: () => api!.pid,
      request: req,
      async serviceAccountToken(namespace, name, expirationSeconds = 3600) {
        const ns = await req('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
        if (ns.status !== 201 && ns.status !== 409) throw new PeerError('KUBE_REQUEST', `create namespace ${namespace}: ${ns.status} ${ns.body}`);
        const sa = await req('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } });
        if (sa.status !== 201 && sa.status !== 409) throw new PeerError('KUBE_REQUEST', `create serviceaccount ${namespace}/${name}: ${sa.status} ${sa.body}`);
        const tr = await req('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
          { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } });
        if (tr.status !== 201) throw new PeerError('KUBE_REQUEST', `token for ${namespace}/${name}: ${tr.status} ${tr.body}`);
        return tr.json<{ status: { token: string } }>().status.token;
      },
      kubeconfigFor(tok, name) {
        return writeKubeconfig(join(dir, `kubeconfig-${name.replace(/[^a-zA-Z0-9_.-]/g, '_')}`), url, caFile, name, tok);
      },
      async kubectl(kargs, o = {}) {
        const kubectlBin = await ensurePeer('kubectl');
        return run(kubectlBin, [`--kubeconfig=${o.kubeconfig ?? kubeconfig}`, ...kargs], { input: o.input, timeoutMs: 120_000, env: { ...process.env, HOME: dir } });
      },
      async restart() {
        if (stopped) throw new PeerError('PEER_STOPPED', 'kube-apiserver was stopped');
        await api!.stop();
        // Same port, so clients keep their URL (Go listeners set SO_REUSEADDR: no TIME_WAIT wait).
        api = await launch();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await api!.stop();
        await etcdProc.stop();
        removeDir(dir);
      },
    };
    return handle;
  } catch (e) {
    if (api) await api.stop(2000);
    if (etcd) await etcd.proc.stop(2000);
    removeDir(dir);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Jaeger v2

export interface JaegerHandle {
  otlpGrpcPort: number;
  otlpHttpPort: number;
  /** http://127.0.0.1:PORT — /api/services, /api/traces?service=X, /api/v3/traces */
  queryUrl: string;
  queryGrpcPort: number;
  logFile: string;
  pid: number;
  /** Service names Jaeger has seen. */
  services(): Promise<string[]>;
  /** Traces for a service via /api/traces (the UI's JSON shape: { data: [{ traceID, spans, processes }] }). */
  traces(service: string, limit?: number): Promise<any[]>;
  stop(): Promise<StopResult>;
}

/** Starts Jaeger v2 with in-memory storage, OTLP gRPC + HTTP receivers and the query API, all on loopback. */
export async function startJaeger(opts: { readyTimeoutMs?: number; maxTraces?: number } = {}): Promise<JaegerHandle> {
  const bin = await ensurePeer('jaeger');
  return withPortRetry(3, async () => {
    const dir = tempDir('jaeger');
    try {
      const [grpc, http, query, queryGrpc] = await freePorts(4);
      const config = {
        service: {
          extensions: ['jaeger_storage', 'jaeger_query'],
          pipelines: { traces: { receivers: ['otlp'], processors: ['batch'], exporters: ['jaeger_storage_exporter'] } },
          telemetry: { metrics: { level: 'none' } },
        },
        extensions: {
          jaeger_storage: { backends: { mem: { memory: { max_traces: opts.maxTraces ?? 100_000 } } } },
          // enable_tracing defaults to true in v2 and exports Jaeger's own spans to localhost:4317,
          // which is not listening: shutdown then waits for that export to time out.
          jaeger_query: { enable_tracing: false, storage: { traces: 'mem' }, http: { endpoint: `127.0.0.1:${query}` }, grpc: { endpoint: `127.0.0.1:${queryGrpc}` } },
        },
        receivers: { otlp: { protocols: { grpc: { endpoint: `127.0.0.1:${grpc}` }, http: { endpoint: `127.0.0.1:${http}` } } } },
        processors: { batch: { timeout: '200ms' } },
        exporters: { jaeger_storage_exporter: { trace_storage: 'mem' } },
      };
      const configFile = join(dir, 'config.yaml');
      writeFileSync(configFile, stringifyYaml(config));
      const proc = spawnPeer('jaeger', bin, ['--config', configFile], { cwd: dir });
      const queryUrl = `http://127.0.0.1:${query}`;
      try {
        await waitReady(proc, `${queryUrl}/api/services`, async () =>
          (await httpOk(`${queryUrl}/api/services`)) && (await tcpOpen(grpc)) && (await tcpOpen(http)), opts.readyTimeoutMs ?? 30_000);
      } catch (e) {
        await proc.stop(2000);
        throw e;
      }
      return {
        otlpGrpcPort: grpc, otlpHttpPort: http, queryUrl, queryGrpcPort: queryGrpc, logFile: proc.logFile, pid: proc.pid,
        async services() {
          const res = await fetch(`${queryUrl}/api/services`);
          const body = await res.json() as { data: string[] | null };
          return body.data ?? [];
        },
        async traces(service, limit = 100) {
          const res = await fetch(`${queryUrl}/api/traces?service=${encodeURIComponent(service)}&limit=${limit}`);
          const body = await res.json() as { data: any[] | null };
          return body.data ?? [];
        },
        async stop() { const r = await proc.stop(); removeDir(dir); return r; },
      };
    } catch (e) {
      removeDir(dir);
      throw e;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Prometheus (Debian)

export interface PrometheusHandle {
  /** http://127.0.0.1:PORT */
  url: string;
  /** POST target for Prometheus remote write (snappy-compressed protobuf WriteRequest). */
  remoteWriteUrl: string;
  logFile: string;
  pid: number;
  /** Instant query; returns the `data.result` array. */
  query(promql: string): Promise<any[]>;
  stop(): Promise<StopResult>;
}

/**
 * Starts Debian's Prometheus with the remote-write receiver and native histograms on, TSDB in a temp dir. `scrapeConfigs`
 * is the YAML list under scrape_configs (default none).
 */
export async function startPrometheus(opts: { scrapeConfigs?: unknown[]; scrapeInterval?: string; readyTimeoutMs?: number } = {}): Promise<PrometheusHandle> {
  const bin = await ensurePeer('prometheus');
  return withPortRetry(3, async () => {
    const dir = tempDir('prometheus');
    try {
      const [port] = await freePorts(1);
      const configFile = join(dir, 'prometheus.yml');
      writeFileSync(configFile, stringifyYaml({
        global: { scrape_interval: opts.scrapeInterval ?? '1s', evaluation_interval: '1s' },
        scrape_configs: opts.scrapeConfigs ?? [],
      }));
      const url = `http://127.0.0.1:${port}`;
      const proc = spawnPeer('prometheus', bin, [
        `--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`, '--web.enable-remote-write-receiver',
        // Native histograms over remote write (the collector's default for exponential histograms):
        // Prometheus before 3.8 refuses them, and the whole request with them, without this.
        '--enable-feature=native-histograms',
        '--log.level=warn',
      ], { cwd: dir });
      try {
        await waitReady(proc, `${url}/-/ready`, () => httpOk(`${url}/-/ready`), opts.readyTimeoutMs ?? 30_000);
      } catch (e) {
        await proc.stop(2000);
        throw e;
      }
      return {
        url, remoteWriteUrl: `${url}/api/v1/write`, logFile: proc.logFile, pid: proc.pid,
        async query(promql) {
          const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
          const body = await res.json() as { status: string; data?: { result: any[] }; error?: string };
          if (body.status !== 'success') throw new PeerError('PROM_QUERY', `query ${promql}: ${body.error ?? res.status}`);
          return body.data!.result;
        },
        async stop() { const r = await proc.stop(); removeDir(dir); return r; },
      };
    } catch (e) {
      removeDir(dir);
      throw e;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// One-shot tools

/**
 * Runs telemetrygen to completion, e.g.
 * `telemetrygen(['traces', '--otlp-endpoint', `127.0.0.1:${port}`, '--otlp-insecure', '--traces', '5'])`.
 * Throws PeerError with its output when it exits non-zero.
 */
export async function telemetrygen(args: string[], opts: { timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  const bin = await ensurePeer('telemetrygen');
  const r = await run(bin, args, { timeoutMs: opts.timeoutMs ?? 120_000 });
  if (r.code !== 0) throw new PeerError('PEER_TOOL_FAILED', `telemetrygen ${args.join(' ')} exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** `kustomize build DIR`; returns the rendered YAML, throws PeerError with stderr on failure. */
export async function kustomizeBuild(dir: string, extraArgs: string[] = []): Promise<string> {
  const bin = await ensurePeer('kustomize');
  const r = await run(bin, ['build', dir, ...extraArgs], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new PeerError('PEER_TOOL_FAILED', `kustomize build ${dir} exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}
