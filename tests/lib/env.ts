// Test prerequisites: in CI (CI=true) a missing prerequisite is a failure, elsewhere a skip.
import type { TestContext } from 'node:test';
import { existsSync } from 'node:fs';

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function hasBpf(): boolean {
  return isRoot() && existsSync('/sys/kernel/btf/vmlinux');
}

/**
 * Returns true when the test may go on. When `ok` is false: throws in CI, skips elsewhere.
 * Usage: `if (!requires(t, hasBpf(), 'root and BPF')) return;`
 */
export function requires(t: TestContext, ok: boolean, what: string): boolean {
  if (ok) return true;
  if (inCI) throw new Error(`prerequisite missing in CI: ${what}`);
  t.skip(`needs ${what}`);
  return false;
}
