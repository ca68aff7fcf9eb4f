// Types of scripts/image-runtime.mjs (a plain script, so it runs without a TypeScript loader).
export interface ImageRuntime {
  /** Node flags of the image's ENTRYPOINT, before the bundle. */
  nodeArgs: string[];
  /** ENV lines of the image's final stage. */
  env: Record<string, string>;
}
export function imageRuntime(text: string, name?: string): ImageRuntime;
export function agentImageRuntime(text?: string): ImageRuntime;
export function collectorImageRuntime(text?: string): ImageRuntime;
