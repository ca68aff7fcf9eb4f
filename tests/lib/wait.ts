// Polling for a condition in tests that watch asynchronous state (servers, streams, informers).
import assert from 'node:assert/strict';

/** Resolves once `cond()` holds; fails naming `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 3000, stepMs = 10): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Resolves with `f()`'s first defined value; fails naming `what` after `ms`. */
export async function waitFor<T>(what: string, f: () => T | undefined, ms = 15_000, stepMs = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
