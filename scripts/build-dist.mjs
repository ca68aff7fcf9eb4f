#!/usr/bin/env node
// Bundles the agent and collector entry points into dist/ (plain ESM, no tsx at run time).
// Why: tsx's loader alone adds ~40 MB RSS and start-up work to every process; a DaemonSet agent
// pays that on every node. Most npm packages stay external (resolved from node_modules as usual).
//   node scripts/build-dist.mjs [--check]   (--check: exit 1 if dist/ is older than the sources)
//   node scripts/build-dist.mjs collector   (one entry only, e.g. for the collector image)
// Outputs: dist/agent.mjs, dist/collector.mjs, dist/k8s.mjs (the lazily required Kubernetes
// client wrapper) and shared chunks; run with `node dist/agent.mjs <command>`.
import { build } from 'esbuild';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist');
const sourceDirs = ['agent/bin', 'agent/src', 'collector/bin', 'collector/src', 'proto/src', 'lib'].map((d) => join(root, d));
const allEntries = { agent: 'agent/bin/agent.ts', collector: 'collector/bin/collector.ts', k8s: 'lib/k8s/index.ts' };
// `build-dist.mjs collector` builds only the collector (its image carries no agent sources)
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
for (const name of only) if (!(name in allEntries)) throw new Error(`build-dist: unknown entry ${name} (expected ${Object.keys(allEntries).join(', ')})`);
// npm packages stay external, except the ones tree-shaking shrinks a lot: the semantic
// conventions (a few constants used out of ~15 MB of module) and apache-arrow (IPC metadata
// classes used out of ~20 MB).
const inlined = new Set(['@opentelemetry/semantic-conventions', 'apache-arrow']);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const external = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies })
  .filter((n) => !inlined.has(n))
  .flatMap((n) => [n, `${n}/*`]);
const entryPoints = only.length ? Object.fromEntries(only.map((n) => [n, allEntries[n]])) : allEntries;

function newestSource(dir) {
  let newest = 0;
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return 0; // a folder this image does not carry
  }
  for (const name of names) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) newest = Math.max(newest, st.mtimeMs);
  }
  return newest;
}

/** Whether dist/ holds every entry, built at least as new as every bundled source file. */
export function distFresh() {
  try {
    const built = Number(readFileSync(join(outdir, '.built'), 'utf8'));
    if (!Object.keys(allEntries).every((e) => existsSync(join(outdir, `${e}.mjs`)))) return false; // e.g. after a collector-only build
    return built >= Math.max(...sourceDirs.map(newestSource));
  } catch {
    return false;
  }
}

// Modules locate files next to themselves (the native addon, bpf/*.bpf.o, fixtures) through
// import.meta.url; in one bundle every module would share dist/'s URL. Each file's
// import.meta.url is therefore rewritten to its own source location, expressed relative to the
// bundle so the tree can move. The one synchronous require of a .ts file (lib/k8s, loaded only
// when Kubernetes enrichment is on) is pointed at the k8s entry that buildDist puts beside the bundle.
function metaUrlSetup(b, bundleDir) {
  b.onLoad({ filter: /\.ts$/ }, (args) => {
    if (args.path.includes(`${sep}node_modules${sep}`)) return undefined;
    let src = readFileSync(args.path, 'utf8');
    if (src.includes("'../../../lib/k8s/index.ts')")) {
      src = src.replace("createRequire(import.meta.url)('../../../lib/k8s/index.ts')", "createRequire(import.meta.url)('./k8s.mjs')");
    }
    const rel = relative(bundleDir, args.path).split(sep).join('/');
    src = src.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`);
    return { contents: src, loader: 'ts' };
  });
}
const metaUrlPlugin = { name: 'source-import-meta-url', setup: (b) => metaUrlSetup(b, outdir) };

export async function buildDist() {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const started = Date.now();
  await build({
    absWorkingDir: root,
    entryPoints,
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external,
    sourcemap: 'linked',
    logLevel: 'warning',
    // marks code running from the bundle (agent `up` then starts the bundled collector too)
    banner: { js: 'globalThis.KSCOPE_DIST_DIR ??= new URL(".", import.meta.url).pathname;' },
    plugins: [metaUrlPlugin],
  });
  writeFileSync(join(outdir, '.built'), String(started));
}

/** Bundles one script (e.g. a benchmark's child) the same way, to `outfile` inside the repo. */
export async function bundleScript(entry, outfile) {
  const dir = dirname(outfile);
  mkdirSync(dir, { recursive: true });
  const plugin = { name: 'source-import-meta-url', setup: (b) => metaUrlSetup(b, dir) };
  await build({ absWorkingDir: root, entryPoints: [entry], outfile, bundle: true, format: 'esm', platform: 'node', target: 'node20', external, logLevel: 'warning', plugins: [plugin] });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) process.exit(distFresh() ? 0 : 1);
  await buildDist();
  console.log(`built ${Object.keys(entryPoints).map((e) => `dist/${e}.mjs`).join(', ')}`);
}
