// Types of scripts/image-runtime.mjs (a plain script, so it runs without a TypeScript loader).
export interface AgentImageRuntime {
  /** Node flags of the image's ENTRYPOINT, before the bundle. */
  nodeArgs: string[];
  /** ENV lines of the image's final stage. */
  env: Record<string, string>;
}
export function agentImageRuntime(text?: string): AgentImageRuntime;
