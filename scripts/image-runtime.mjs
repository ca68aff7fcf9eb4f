// The images' runtime settings, read from deploy/docker/<name>.Dockerfile (the one place they are
// written): the node flags of the final stage's ENTRYPOINT and its ENV lines. The benches run
// their children with them, and tests check that scripts/start.sh (the agent in the quick start)
// and collector/src/runtime.ts (every other collector process) use the same.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dockerfile = (name) => fileURLToPath(new URL(`../deploy/docker/${name}.Dockerfile`, import.meta.url));

/** @returns {{ nodeArgs: string[], env: Record<string, string> }} of the Dockerfile's final stage */
export function imageRuntime(text, name = 'image') {
  const stages = text.split(/^FROM\s/m);
  const last = stages[stages.length - 1];
  const entry = last.match(/^ENTRYPOINT\s+(\[.*\])\s*$/m);
  if (!entry) throw new Error(`${name}.Dockerfile: no exec-form ENTRYPOINT in the final stage`);
  const argv = JSON.parse(entry[1]);
  const script = argv.findIndex((a) => a.endsWith('.mjs'));
  if (argv[0] !== 'node' || script < 0) throw new Error(`${name}.Dockerfile: ENTRYPOINT ${entry[1]} is not "node [flags] <bundle>.mjs"`);
  const env = {};
  for (const m of last.matchAll(/^ENV\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)\s*$/gm)) env[m[1]] = m[2];
  return { nodeArgs: argv.slice(1, script), env };
}

export const agentImageRuntime = (text = readFileSync(dockerfile('agent'), 'utf8')) => imageRuntime(text, 'agent');
export const collectorImageRuntime = (text = readFileSync(dockerfile('collector'), 'utf8')) => imageRuntime(text, 'collector');
