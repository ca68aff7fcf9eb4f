#!/usr/bin/env node
// Runs the benchmarks (tests/bench/*.bench.ts), one process each, one after the other so they
// don't compete for the two cores. `npm run bench -- otlp-codec ringbuf` runs only those.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const all = readdirSync(`${root}tests/bench`).filter((f) => f.endsWith('.bench.ts')).sort();
const wanted = process.argv.slice(2);
const files = wanted.length ? all.filter((f) => wanted.some((w) => f.startsWith(w))) : all;
if (files.length === 0) {
  console.error(`run-bench: nothing matches ${wanted.join(' ')} (have: ${all.join(', ')})`);
  process.exit(2);
}
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', `tests/bench/${f}`], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
