// The built-in factories. Modules outside this list (tail sampling, load balancing) register
// theirs on the registry this returns before a Service is built.
import { FactoryRegistry } from './pipeline/registry.ts';
import { debugExporterFactory, nopExporterFactory } from './exporters/debug/index.ts';

export function defaultRegistry(): FactoryRegistry {
  return new FactoryRegistry().register(debugExporterFactory, nopExporterFactory);
}
