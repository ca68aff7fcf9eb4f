// The memory limit the kernel will enforce on this process: the tightest cgroup limit on the path
// from our cgroup up to the root, v2 (memory.max) or v1 (memory.limit_in_bytes). Hybrid hosts mount
// v2 at /sys/fs/cgroup/unified without the memory controller, so v1 is checked too.
import { readFileSync, existsSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';

/** v1 reports "no limit" as a huge page-aligned number near 2^63. */
const V1_UNLIMITED = 2 ** 60;

function readLimit(file: string): number | undefined {
  try {
    const s = readFileSync(file, 'utf8').trim();
    if (s === 'max') return undefined;
    const n = Number(s);
    return Number.isFinite(n) && n > 0 && n < V1_UNLIMITED ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Walks from `dir` up to `root` and returns the smallest limit found. */
function tightest(root: string, cgPath: string, file: string): number | undefined {
  let best: number | undefined;
  let p = cgPath;
  for (;;) {
    const l = readLimit(join(root, p, file));
    if (l !== undefined && (best === undefined || l < best)) best = l;
    if (p === '/' || p === '' || p === '.') break;
    p = p.slice(0, p.lastIndexOf('/')) || '/';
  }
  return best;
}

export interface CgroupLimit {
  bytes: number;
  source: 'cgroup2' | 'cgroup1' | 'host';
}

/**
 * Reads /proc/self/cgroup and the cgroup filesystem under `fsRoot`; falls back to total host memory.
 * Paths are parameters so tests can point them at a fake tree.
 */
export function cgroupMemoryLimit(fsRoot = '/sys/fs/cgroup', procCgroup = '/proc/self/cgroup'): CgroupLimit {
  let lines: string[] = [];
  try {
    lines = readFileSync(procCgroup, 'utf8').split('\n').filter(Boolean);
  } catch {
    // not Linux or /proc hidden: host memory it is
  }
  let best: CgroupLimit | undefined;
  const consider = (bytes: number | undefined, source: CgroupLimit['source']) => {
    if (bytes !== undefined && (!best || bytes < best.bytes)) best = { bytes, source };
  };
  for (const line of lines) {
    // "hierarchy-id:controllers:path"; the path may itself contain ':'.
    const i1 = line.indexOf(':');
    const i2 = line.indexOf(':', i1 + 1);
    if (i1 < 0 || i2 < 0) continue;
    const controllers = line.slice(i1 + 1, i2);
    const path = line.slice(i2 + 1);
    if (controllers === '' && path) {
      // cgroup v2 unified hierarchy: at fsRoot on pure v2 hosts, at fsRoot/unified on hybrid ones.
      for (const base of [fsRoot, join(fsRoot, 'unified')]) {
        if (existsSync(join(base, 'cgroup.controllers'))) consider(tightest(base, path, 'memory.max'), 'cgroup2');
      }
    } else if (controllers.split(',').includes('memory')) {
      consider(tightest(join(fsRoot, 'memory'), path, 'memory.limit_in_bytes'), 'cgroup1');
    }
  }
  return best ?? { bytes: totalmem(), source: 'host' };
}
