// Host facts a fixture carries so replay can enrich like the live agent: cgroup id → path and
// process info for the pids seen.
import { readdirSync, readFileSync, readlinkSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface CgroupEntry {
  /** cgroup id as the kernel reports it (bpf_get_current_cgroup_id): the cgroup2 directory inode */
  id: string;
  path: string;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  comm: string;
  exe: string;
  cmdline: string[];
}

/** The cgroup2 root: /sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup on pure v2 ones. */
export function cgroup2Root(): string | undefined {
  const mounts = (() => { try { return readFileSync('/proc/self/mounts', 'utf8'); } catch { return ''; } })();
  const v2 = mounts.split('\n').map((l) => l.split(' ')).filter((f) => f[2] === 'cgroup2').map((f) => f[1]!);
  for (const cand of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) if (v2.includes(cand)) return cand;
  return v2[0];
}

/** Walks the cgroup2 tree: inode → path relative to the root ("/" for the root). Bounded. */
export function cgroupTable(limit = 100_000, root = cgroup2Root()): CgroupEntry[] {
  const out: CgroupEntry[] = [];
  if (!root || !existsSync(root)) return out;
  const stack: string[] = ['/'];
  while (stack.length > 0 && out.length < limit) {
    const rel = stack.pop()!;
    const abs = rel === '/' ? root : join(root, rel);
    let st;
    try { st = statSync(abs, { bigint: true }); } catch { continue; }
    out.push({ id: st.ino.toString(), path: rel });
    let names: string[];
    try {
      names = readdirSync(abs, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch { continue; }
    for (const n of names) stack.push(rel === '/' ? `/${n}` : `${rel}/${n}`);
  }
  return out;
}

/** comm, exe, cmdline and ppid of a live process; undefined when it is gone. */
export function processInfo(pid: number): ProcessInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: it ends at the last ')'
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    let exe = '';
    try { exe = readlinkSync(`/proc/${pid}/exe`); } catch { /* kernel thread or no permission */ }
    let cmdline: string[] = [];
    try { cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s, i, a) => s !== '' || i < a.length - 1); } catch { /* gone */ }
    return { pid, ppid, comm, exe, cmdline };
  } catch {
    return undefined;
  }
}
