// The exporter factories the agent can be configured with (`exporter.type`). Only these are
// loaded: the agent needs no receivers or processors, and each unused component's module graph
// is memory on every node.
import { FactoryRegistry } from '../../collector/src/pipeline/registry.ts';
import { nopExporterFactory } from '../../collector/src/exporters/debug/index.ts';
import { fileExporterFactory } from '../../collector/src/exporters/file/index.ts';
import { otlpExporterFactory } from '../../collector/src/exporters/otlp/index.ts';
import { otelArrowExporterFactory } from '../../collector/src/exporters/otelarrow/index.ts';
import { otlpHttpExporterFactory } from '../../collector/src/exporters/otlphttp/index.ts';

export function agentExporterRegistry(): FactoryRegistry {
  return new FactoryRegistry().register(otelArrowExporterFactory, otlpExporterFactory, otlpHttpExporterFactory, fileExporterFactory, nopExporterFactory);
}
