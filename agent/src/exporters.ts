// The exporter factories the agent can be configured with (`exporter.type`). The agent needs no
// receivers or processors, so neither the agent process nor its bundle carries them.
import { FactoryRegistry } from '../../collector/src/pipeline/registry.ts';
import { nopExporterFactory } from '../../collector/src/exporters/debug/index.ts';
import { fileExporterFactory } from '../../collector/src/exporters/file/index.ts';
import { otlpExporterFactory } from '../../collector/src/exporters/otlp/index.ts';
import { otelArrowExporterFactory } from '../../collector/src/exporters/otelarrow/index.ts';
import { otlpHttpExporterFactory } from '../../collector/src/exporters/otlphttp/index.ts';

export function agentExporterRegistry(): FactoryRegistry {
  return new FactoryRegistry().register(otelArrowExporterFactory, otlpExporterFactory, otlpHttpExporterFactory, fileExporterFactory, nopExporterFactory);
}
