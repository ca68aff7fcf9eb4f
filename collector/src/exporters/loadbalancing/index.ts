// Factory of the load-balancing exporter (type "loadbalancing"). The per-backend protocol client
// is pluggable: the collector registers createLoadBalancingExporterFactory(otlpGrpcSenderFactory);
// tests pass in-process senders.
import type { CreateSettings, ExporterFactory } from '../../component/index.ts';
import type { SignalType } from '../../../../proto/src/model.ts';
import { defaultConfig, validateConfig, type LoadBalancingConfig } from './config.ts';
import { LoadBalancingExporter, type EndpointSenderFactory } from './exporter.ts';
import type { Resolver } from './resolvers.ts';

export { LoadBalancingExporter, createResolver } from './exporter.ts';
export type { EndpointSender, EndpointSenderFactory, LoadBalancingMetrics } from './exporter.ts';
export { HashRing, hashBytes, hashString } from './ring.ts';
export { StaticResolver, DnsResolver, K8sResolver, hostPort, parseServiceRef, systemLookup } from './resolvers.ts';
export type { Resolver, EndpointSliceLike, EndpointSliceSource, SliceHandlers, AddressLookup } from './resolvers.ts';
export { splitBatch, resourceHash } from './split.ts';
export type { RoutingKey } from './split.ts';
export { validateConfig, defaultConfig } from './config.ts';
export type { LoadBalancingConfig, ResolverConfig } from './config.ts';

export interface LoadBalancingFactoryOptions {
  senderFactory: EndpointSenderFactory;
  /** Overrides the configured resolver (tests, embedding). */
  resolverFactory?: (cfg: LoadBalancingConfig, settings: CreateSettings) => Resolver;
}

export function createLoadBalancingExporterFactory(o: LoadBalancingFactoryOptions): ExporterFactory<LoadBalancingConfig> {
  return {
    type: 'loadbalancing',
    kind: 'exporter',
    signals: ['traces', 'metrics', 'logs'],
    defaultConfig,
    validate: validateConfig,
    create<S extends SignalType>(settings: CreateSettings, cfg: LoadBalancingConfig, signal: S) {
      return new LoadBalancingExporter(settings, cfg, signal, o.senderFactory, o.resolverFactory?.(cfg, settings));
    },
  };
}
