// Polling helper for tests that wait on a peer to show a result.
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Calls `fn` every 200 ms until it returns something other than undefined; throws after timeoutMs. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}
