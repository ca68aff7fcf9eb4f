// Decides whether Kubernetes is configured at all. Without it the agent runs with process and
// container metadata only, so "not configured" is a normal answer (null), not an error.
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

export interface KubeAccess {
  kc: KubeConfig;
  source: 'file' | 'in-cluster' | 'env';
}

const SA_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Order: an explicit kubeconfig path, then in-cluster (KUBERNETES_SERVICE_HOST and a service-account
 * token), then $KUBECONFIG. ~/.kube/config is deliberately not read: an agent on a workstation
 * should not silently talk to whatever cluster the user last selected.
 */
export function loadKubeConfig(opts: { kubeconfig?: string; env?: NodeJS.ProcessEnv; tokenPath?: string } = {}): KubeAccess | null {
  const env = opts.env ?? process.env;
  if (opts.kubeconfig) {
    const kc = new KubeConfig();
    kc.loadFromFile(opts.kubeconfig);
    return { kc, source: 'file' };
  }
  if (env.KUBERNETES_SERVICE_HOST && existsSync(opts.tokenPath ?? SA_TOKEN)) {
    const kc = new KubeConfig();
    kc.loadFromCluster();
    return { kc, source: 'in-cluster' };
  }
  if (env.KUBECONFIG) {
    const file = env.KUBECONFIG.split(':').find((f) => f && existsSync(f));
    if (!file) return null;
    const kc = new KubeConfig();
    kc.loadFromFile(file);
    return { kc, source: 'env' };
  }
  return null;
}
