// `agent run --replay` enriches from the fixture's recorded tables, never from this host. The agent
// CLI replays tests/fixtures/tcp-proc-loopback.kscope with a file exporter, on a host whose /proc
// and cgroup root (a fake, given as host.proc_path / host.cgroup_root) describe an "impostor" for
// every pid of the recording, with NODE_NAME set and enrich.k8s.enabled true but no cluster. Every
// exported resource must match what the fixture alone says (header tables + recorded exec events)
// and what its workload manifest says (pod uid, container id, pids). A second run on the real /proc
// and cgroupfs checks the same against whatever happens to run here under the recorded pids.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { FixtureReader } from '../../agent/src/sources/fixture.ts';
import { decodeAll } from '../../agent/src/decode/decoder.ts';
import { parseCgroupPath } from '../../agent/src/enrich/cgroup-paths.ts';
import { decodeJson } from '../../proto/src/otlp/index.ts';
import type { KeyValue } from '../../proto/src/model.ts';

const root = new URL('../../', import.meta.url).pathname;
const fixture = join(root, 'tests/fixtures/tcp-proc-loopback.kscope');
const manifest = JSON.parse(readFileSync(join(root, 'tests/fixtures/tcp-proc-loopback.workload.json'), 'utf8')) as {
  workload: { serverPid: number; clientPid: number; procs: { pid: number }[]; cgroup: { id: string; path: string; podUid: string; containerId: string } };
};
const IMPOSTOR_CID = 'e'.repeat(64);

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** What the fixture alone says: its header tables and its recorded events (pids, cgroups, execs). */
function fromFixture() {
  const r = new FixtureReader(fixture);
  const h = r.header;
  const pids = new Map<number, Set<string>>(); // pid → cgroup ids seen
  const execFile = new Map<number, string>();
  try {
    for (let f = r.next(); f; f = r.next()) {
      for (const e of decodeAll(f.buf, f.byteLength)) {
        if (!e.ownerKnown) continue;
        let s = pids.get(e.tgid);
        if (!s) pids.set(e.tgid, (s = new Set()));
        s.add(String(e.cgroupId));
        if (e.kind === 'exec') execFile.set(e.tgid, e.filename);
      }
    }
  } finally {
    r.close();
  }
  return { header: h, pids, execFile, cgroupPath: new Map(h.cgroups.map((c) => [c.id, c.path])), proc: new Map(h.processes.map((p) => [p.pid, p])) };
}

function fakeHost(pids: Iterable<number>): { procRoot: string; cgroupRoot: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ks-replay-enrich-host-'));
  dirs.push(dir);
  const procRoot = join(dir, 'proc');
  const cgroupRoot = join(dir, 'cgroup');
  mkdirSync(cgroupRoot, { recursive: true });
  for (const pid of pids) {
    const d = join(procRoot, String(pid));
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'stat'), `${pid} (impostor) S 4242 ${Array.from({ length: 17 }, () => '0').join(' ')} 777 0 0\n`);
    symlinkSync('/opt/impostor/bin/impostor', join(d, 'exe'));
    writeFileSync(join(d, 'cmdline'), '/opt/impostor/bin/impostor\0');
    writeFileSync(join(d, 'cgroup'), `1:name=systemd:/system.slice/docker-${IMPOSTOR_CID}.scope\n0::/system.slice/docker-${IMPOSTOR_CID}.scope\n`);
  }
  return { procRoot, cgroupRoot };
}

type Attrs = Record<string, string | number>;

/** Runs `agent run --replay … --speed max --exit-when-done`; returns every exported resource. */
async function replayCli(extra: { host?: { procRoot: string; cgroupRoot: string } }): Promise<{ resources: Attrs[]; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ks-replay-enrich-'));
  dirs.push(dir);
  const out = join(dir, 'otlp.jsonl');
  const host = extra.host ? `host:\n  proc_path: ${extra.host.procRoot}\n  cgroup_root: ${extra.host.cgroupRoot}\n` : '';
  writeFileSync(join(dir, 'agent.yaml'), `${host}enrich:
  hold_ms: 100
  k8s:
    enabled: true
signals:
  metrics:
    interval: 1h
  logs:
    process_exec_exit: true
    tcp_resets: true
batch:
  timeout: 1h
  send_batch_size: 100000
exporter:
  type: file
  config:
    path: ${out}
server:
  address: 127.0.0.1:0
log:
  level: info
`);
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_NAME: 'impostor-node' };
  delete env.KUBECONFIG;
  delete env.KUBERNETES_SERVICE_HOST;
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'agent/bin/agent.ts'), 'run', '--config', join(dir, 'agent.yaml'), '--replay', fixture, '--speed', 'max', '--exit-when-done'], { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stdout.on('data', (d) => (stderr += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, `agent run --replay failed:\n${stderr}`);
  const resources: Attrs[] = [];
  const flat = (kvs: readonly KeyValue[]) => Object.fromEntries(kvs.map((kv) => [kv.key, typeof kv.value === 'bigint' ? Number(kv.value) : (kv.value as string)]));
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const top = Object.keys(JSON.parse(line) as object);
    if (top.includes('resourceSpans')) for (const rs of decodeJson('traces', line).resourceSpans) resources.push(flat(rs.resource.attributes));
    else if (top.includes('resourceMetrics')) for (const rm of decodeJson('metrics', line).resourceMetrics) resources.push(flat(rm.resource.attributes));
    else if (top.includes('resourceLogs')) for (const rl of decodeJson('logs', line).resourceLogs) resources.push(flat(rl.resource.attributes));
  }
  return { resources, stderr };
}

/** Every resource is exactly what the fixture says about its pid; returns the pids seen. */
function checkAgainstFixture(resources: Attrs[]): Set<number> {
  const fx = fromFixture();
  const w = manifest.workload;
  const seen = new Set<number>();
  assert.ok(resources.length > 0, 'the replay exported something');
  for (const r of resources) {
    const pid = r['process.pid'] as number;
    assert.ok(fx.pids.has(pid), `process.pid ${pid} is a recorded pid`);
    seen.add(pid);
    // cgroup: the recorded path of the pid's recorded cgroup
    const [cg] = [...fx.pids.get(pid)!];
    const info = parseCgroupPath(fx.cgroupPath.get(cg!) ?? '');
    assert.equal(r['container.id'], info.containerId || undefined, `container.id of pid ${pid}`);
    assert.equal(r['k8s.pod.uid'], info.podUid || undefined, `k8s.pod.uid of pid ${pid}`);
    // process: the header's table, else the recorded exec event, else nothing
    const rec = fx.proc.get(pid);
    const exe = rec?.exe || fx.execFile.get(pid);
    assert.equal(r['process.executable.name'], exe ? basename(exe) : undefined, `process.executable.name of pid ${pid}`);
    assert.equal(r['process.executable.path'], exe || undefined, `process.executable.path of pid ${pid}`);
    if (rec) assert.equal(r['process.parent_pid'], rec.ppid, `process.parent_pid of pid ${pid}`);
    assert.equal(r['k8s.node.name'], undefined, 'no node name from this host');
    assert.equal(r['service.name'], exe ? `unknown_service:${basename(exe)}` : 'unknown_service');
    assert.equal(r['process.command_line'], undefined, 'command_line stays opt-in');
    assert.doesNotMatch(JSON.stringify(r), /impostor|eeeeeeee/);
  }
  // and what the workload manifest says the recording was
  const inPod = [w.serverPid, w.clientPid, ...w.procs.map((p) => p.pid)];
  for (const pid of inPod) {
    assert.ok(seen.has(pid), `pid ${pid} of the workload has resources`);
    for (const r of resources.filter((x) => x['process.pid'] === pid)) {
      assert.equal(r['container.id'], w.cgroup.containerId);
      assert.equal(r['k8s.pod.uid'], w.cgroup.podUid);
    }
  }
  assert.equal(resources.find((r) => r['process.pid'] === w.clientPid)!['process.executable.name'], 'node');
  return seen;
}

test('agent run --replay enriches from the fixture, not from a host full of impostors', { timeout: 90_000 }, async () => {
  const fx = fromFixture();
  // every recorded pid (and parent) is an impostor on this fake host
  const pids = new Set<number>([...fx.pids.keys(), ...fx.header.processes.map((p) => p.ppid)]);
  const { resources, stderr } = await replayCli({ host: fakeHost(pids) });
  checkAgainstFixture(resources);
  assert.match(stderr, /recorded cgroup and process tables/);
  assert.match(stderr, /enrich\.k8s\.enabled is ignored/);
});

test('agent run --replay on the real /proc and cgroupfs: still only the fixture\'s facts', { timeout: 90_000 }, async () => {
  const { resources } = await replayCli({});
  checkAgainstFixture(resources);
});
