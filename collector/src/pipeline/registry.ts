// The factory registry: one factory per component type and kind. The service builds pipelines
// from it; other modules (tail sampling, load balancing, the agent's embedded pipeline) register
// their own factories before building.
import { ConfigError } from '../component/errors.ts';
import type { ComponentKind, ExporterFactory, Factory, ProcessorFactory, ReceiverFactory } from '../component/index.ts';

export type AnyFactory = ReceiverFactory<any> | ProcessorFactory<any> | ExporterFactory<any>;

export class FactoryRegistry {
  private readonly byKind = new Map<ComponentKind, Map<string, Factory<unknown>>>();

  register(...factories: AnyFactory[]): this {
    for (const f of factories) {
      let m = this.byKind.get(f.kind);
      if (!m) this.byKind.set(f.kind, (m = new Map()));
      if (m.has(f.type)) throw new Error(`duplicate ${f.kind} factory ${f.type}`);
      m.set(f.type, f as Factory<unknown>);
    }
    return this;
  }

  get(kind: 'receiver', type: string): ReceiverFactory<unknown> | undefined;
  get(kind: 'processor', type: string): ProcessorFactory<unknown> | undefined;
  get(kind: 'exporter', type: string): ExporterFactory<unknown> | undefined;
  get(kind: ComponentKind, type: string): Factory<unknown> | undefined {
    return this.byKind.get(kind)?.get(type);
  }

  /** Like get(), but a missing type is a ConfigError at `field`. */
  require<K extends 'receiver' | 'processor' | 'exporter'>(kind: K, type: string, field: string) {
    const f = this.get(kind as 'receiver', type);
    if (!f) {
      const known = [...(this.byKind.get(kind)?.keys() ?? [])].sort().join(', ');
      throw new ConfigError(field, `unknown ${kind} type ${JSON.stringify(type)} (known: ${known || 'none'})`);
    }
    return f as unknown as K extends 'receiver' ? ReceiverFactory<unknown> : K extends 'processor' ? ProcessorFactory<unknown> : ExporterFactory<unknown>;
  }

  types(kind: ComponentKind): string[] {
    return [...(this.byKind.get(kind)?.keys() ?? [])].sort();
  }
}
