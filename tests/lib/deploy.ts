// Rendering deploy/ overlays for the manifest tests.
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { kustomizeBuild } from '../peers/index.ts';

export const DEPLOY = new URL('../../deploy/', import.meta.url).pathname;

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: any };

const cache = new Map<string, K8sObject[]>();

export async function render(dir: string): Promise<K8sObject[]> {
  let objs = cache.get(dir);
  if (!objs) {
    const out = await kustomizeBuild(join(DEPLOY, dir));
    objs = parseAllDocuments(out).map((d) => d.toJSON()).filter(Boolean) as K8sObject[];
    cache.set(dir, objs);
  }
  return objs;
}
