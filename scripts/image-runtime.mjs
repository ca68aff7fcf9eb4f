// The agent image's runtime settings, read from deploy/docker/agent.Dockerfile (the one place they
// are written): the node flags of its ENTRYPOINT and its ENV lines. The agent bench runs its paced
// child with them, and a test checks that scripts/start.sh (the quick start) uses the same.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DOCKERFILE = fileURLToPath(new URL('../deploy/docker/agent.Dockerfile', import.meta.url));

/** @returns {{ nodeArgs: string[], env: Record<string, string> }} of the image's final stage */
export function agentImageRuntime(text = readFileSync(DOCKERFILE, 'utf8')) {
  const stages = text.split(/^FROM\s/m);
  const last = stages[stages.length - 1];
  const entry = last.match(/^ENTRYPOINT\s+(\[.*\])\s*$/m);
  if (!entry) throw new Error('agent.Dockerfile: no exec-form ENTRYPOINT in the final stage');
  const argv = JSON.parse(entry[1]);
  const script = argv.findIndex((a) => a.endsWith('.mjs'));
  if (argv[0] !== 'node' || script < 0) throw new Error(`agent.Dockerfile: ENTRYPOINT ${entry[1]} is not "node [flags] <bundle>.mjs"`);
  const env = {};
  for (const m of last.matchAll(/^ENV\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)\s*$/gm)) env[m[1]] = m[2];
  return { nodeArgs: argv.slice(1, script), env };
}
