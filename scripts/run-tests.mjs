#!/usr/bin/env node
// Runs every *.test.ts in the repo (or the files/folders given) through node:test with tsx.
// One process per file; the runner's own summary line is what CI reads.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const roots = process.argv.slice(2).length ? process.argv.slice(2) : ['tests', 'agent', 'collector', 'proto', 'lib', 'deploy'];
const skipDirs = new Set(['node_modules', 'build', '.git', 'bench', 'fixtures']);

function walk(p, out) {
  let st;
  try { st = statSync(p); } catch { return; }
  if (st.isFile()) { if (p.endsWith('.test.ts')) out.push(p); return; }
  for (const name of readdirSync(p)) {
    if (skipDirs.has(name)) continue;
    walk(join(p, name), out);
  }
}
const files = [];
for (const r of roots) walk(join(root, r), files);
files.sort();
if (files.length === 0) { console.error('run-tests: no test files found'); process.exit(1); }

const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const args = ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec',
  ...(process.env.TEST_TIMEOUT_MS ? [`--test-timeout=${process.env.TEST_TIMEOUT_MS}`] : ['--test-timeout=600000']),
  ...files.map((f) => relative(root, f))];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: process.env });
process.exit(r.status ?? 1);
