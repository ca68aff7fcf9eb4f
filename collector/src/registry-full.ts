// Every factory the collector binary offers: the built-ins plus tail sampling and the
// load-balancing exporter (whose per-backend sender is our OTLP/gRPC client).
import { defaultRegistry } from './components.ts';
import type { FactoryRegistry } from './pipeline/registry.ts';
import { tailSamplingProcessorFactory } from './processors/tail_sampling/index.ts';
import { createLoadBalancingExporterFactory } from './exporters/loadbalancing/index.ts';
import { otlpGrpcSenderFactory } from './exporters/otlp/index.ts';

export function fullRegistry(): FactoryRegistry {
  return defaultRegistry().register(
    tailSamplingProcessorFactory as never,
    createLoadBalancingExporterFactory({ senderFactory: otlpGrpcSenderFactory as never }) as never,
  );
}
