// Kubernetes metadata shared by the agent (enrichment) and the collector (k8s attributes processor).
export * from './pod-model.ts';
export * from './pod-store.ts';
export * from './owners.ts';
export * from './informer.ts';
export * from './kubeconfig.ts';
