// The agent in its own cgroup namespace (containerd gives one to non-privileged containers on
// cgroup v2): /proc/PID/cgroup then shows paths relative to the agent's namespace root
// (`0::/../../kubepods.slice/…`). Real cgroups on this host: a pod-like cgroup holding a `sleep`, and
// an "agent" cgroup two levels deep in which a child starts under `unshare -C` and resolves the
// sleep's cgroup id (tests/e2e/enrich-cgroupns-child.ts) — from its pid, although the cgroup is
// beyond maxCgroupPaths of the tree walk.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { isRoot, requires } from '../lib/env.ts';
import { detectCgroup2 } from '../../agent/src/enrich/cgroup-index.ts';

const cg2 = detectCgroup2('/sys/fs/cgroup');
const root = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./enrich-cgroupns-child.ts', import.meta.url));
const procs: ChildProcess[] = [];
const created: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function mkdirs(rel: string): string {
  let cur = cg2.mount!;
  for (const p of rel.split('/').filter(Boolean)) {
    cur = join(cur, p);
    if (!existsSync(cur)) {
      mkdirSync(cur);
      created.push(cur);
    }
  }
  return cur;
}

after(async () => {
  for (const c of procs) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  await sleep(100);
  for (const d of created.reverse()) {
    for (let i = 0; i < 20; i++) {
      try { rmdirSync(d); break; } catch { await sleep(50); }
    }
  }
});

test('in its own cgroup namespace the agent resolves a new cgroup from the pid (relative /proc path), beyond maxCgroupPaths', async (t) => {
  const unshare = spawnSync('unshare', ['--help'], { stdio: 'ignore' }).status === 0;
  if (!requires(t, isRoot() && cg2.mount !== null && unshare, 'root, a cgroup2 hierarchy and unshare(1)')) return;
  const base = `ks-cgns-${randomBytes(3).toString('hex')}`;
  const podUid = '0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0';
  const containerId = randomBytes(32).toString('hex');
  const podRel = `/${base}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${podUid.replace(/-/g, '_')}.slice/cri-containerd-${containerId}.scope`;
  const agentRel = `/${base}/agents.slice/agent.scope`;
  const podDir = mkdirs(podRel);
  const agentDir = mkdirs(agentRel);

  const target = spawn('sleep', ['600'], { stdio: 'ignore' });
  procs.push(target);
  await new Promise((r, j) => { target.once('spawn', r); target.once('error', j); });
  writeFileSync(join(podDir, 'cgroup.procs'), String(target.pid));
  assert.ok(readFileSync(`/proc/${target.pid}/cgroup`, 'utf8').includes(`0::${podRel}`));
  const cgroupId = Number(statSync(podDir, { bigint: true }).ino);

  // The shell joins the agent cgroup, then unshare makes a cgroup namespace rooted there.
  const args = JSON.stringify({ pid: target.pid, cgroupId, podUid, containerId, maxPaths: 4 });
  const child = spawn('sh', ['-c', `echo $$ > ${agentDir}/cgroup.procs && exec unshare -C "$0" --import tsx "$1" "$2"`, process.execPath, CHILD, args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const code = await new Promise<number | null>((r) => child.once('close', r));
  assert.equal(code, 0, `child failed: ${stderr}`);
  const out = JSON.parse(stdout.trim().split('\n').pop()!);

  assert.ok(out.seen.startsWith('/../../'), `the child sees a path relative to its namespace root: ${out.seen}`);
  assert.equal(out.walked, null, 'beyond maxCgroupPaths: the tree walk did not index it');
  assert.equal(out.learned, podRel, 'learned from the pid, as the host path');
  assert.equal(out.held, false, 'the first event resolved at once, not held for a rescan');
  assert.equal(out.namespaceRoot, agentRel, 'the namespace root found once, at start');
  assert.equal(out.pathOfPid, podRel);
  assert.equal(out.podName, 'web-0');
  assert.equal(out.containerName, 'app');
  assert.equal(out.unknownCgroups, 0);
  assert.ok(out.learnedFromPid >= 1);
});
