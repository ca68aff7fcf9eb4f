// The bridge's selftest program (bpf/selftest) and its syscall load generator, shared by the
// native tests, the record/replay test and the ring-buffer benchmark.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const selftestObjectPath = resolve(root, 'bpf/selftest/selftest.bpf.o');
export const loadgenPath = resolve(root, 'bpf/.output/selftest/loadgen');
/** x86_64 syscall number of getppid, which the load generator calls */
export const SYS_getppid = 110;

/** Layout of struct selftest_event (bpf/selftest/selftest.h); checked against BTF by the tests. */
export const SELFTEST_EVENT = {
  size: 64,
  ts_ns: 0, tgid: 8, tid: 12, seq: 16, syscall_nr: 24, comm: 32, cookie: 48, cpu: 56,
} as const;

/** Builds the load generator when missing (needs a C compiler). */
export function ensureLoadgen(): string {
  if (!existsSync(loadgenPath)) {
    execFileSync('make', ['-C', resolve(root, 'bpf/selftest'), '../.output/selftest/loadgen'], { stdio: 'ignore' });
  }
  return loadgenPath;
}

export interface Loadgen {
  pid: number;
  /** starts the syscall loop */
  go(): void;
  /** resolves when the loop ended: calls made and elapsed ns */
  result: Promise<{ calls: number; ns: number }>;
  kill(): void;
}

/** Spawns the load generator, waiting on stdin: `seconds` long at `rate` calls/s (0 = max),
 * optionally pinned to one CPU with taskset. */
export function spawnLoadgen(seconds: number, rate = 0, cpu?: number): Loadgen {
  const bin = ensureLoadgen();
  const args = [String(seconds), String(rate)];
  const child = cpu === undefined
    ? spawn(bin, args, { stdio: ['pipe', 'pipe', 'inherit'] })
    : spawn('taskset', ['-c', String(cpu), bin, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const result = new Promise<{ calls: number; ns: number }>((res, rej) => {
    child.on('error', rej);
    child.on('exit', (code) => {
      const m = /calls=(\d+) ns=(\d+)/.exec(out);
      if (code === 0 && m) res({ calls: Number(m[1]), ns: Number(m[2]) });
      else rej(new Error(`loadgen exited with ${code}: ${out}`));
    });
  });
  // a generator killed before `go` is not an error anyone waits for
  result.catch(() => {});
  if (child.pid === undefined) throw new Error('cannot spawn loadgen');
  return {
    pid: child.pid,
    go: () => { child.stdin!.end('go\n'); },
    result,
    kill: () => { child.kill('SIGKILL'); },
  };
}
