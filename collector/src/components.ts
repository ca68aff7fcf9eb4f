// The built-in factories. Modules outside this list register theirs on the registry this returns
// before a Service is built (registry-full.ts adds tail sampling and load balancing).
import { FactoryRegistry } from './pipeline/registry.ts';
import { debugExporterFactory, nopExporterFactory } from './exporters/debug/index.ts';
import { fileExporterFactory } from './exporters/file/index.ts';
import { otlpExporterFactory } from './exporters/otlp/index.ts';
import { otelArrowExporterFactory } from './exporters/otelarrow/index.ts';
import { otlpHttpExporterFactory } from './exporters/otlphttp/index.ts';
import { remoteWriteExporterFactory } from './exporters/prometheusremotewrite/index.ts';
import { prometheusExporterFactory } from './exporters/prometheus/index.ts';
import { memoryLimiterFactory } from './processors/memory_limiter/index.ts';
import { rateLimitFactory } from './processors/rate_limit/index.ts';
import { routingFactory } from './processors/routing/index.ts';
import { k8sAttributesFactory } from './processors/k8s_attributes/index.ts';
import { histogramToExponentialFactory } from './processors/histogram_to_exponential/index.ts';
import { otlpReceiverFactory } from './receivers/otlp/index.ts';
import { otelArrowReceiverFactory } from './receivers/otelarrow/index.ts';

export function defaultRegistry(): FactoryRegistry {
  return new FactoryRegistry().register(
    otlpReceiverFactory,
    otelArrowReceiverFactory,
    memoryLimiterFactory,
    rateLimitFactory,
    routingFactory,
    k8sAttributesFactory,
    histogramToExponentialFactory,
    debugExporterFactory,
    nopExporterFactory,
    fileExporterFactory,
    otlpExporterFactory,
    otelArrowExporterFactory,
    otlpHttpExporterFactory,
    remoteWriteExporterFactory,
    prometheusExporterFactory,
  );
}
