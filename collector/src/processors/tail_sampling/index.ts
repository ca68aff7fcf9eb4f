// Factory of the tail sampling processor (type "tail_sampling", traces only).
import type { Consumer, CreateSettings, ProcessorFactory } from '../../component/index.ts';
import { ConfigError } from '../../component/errors.ts';
import type { SignalType } from '../../../../proto/src/model.ts';
import { defaultConfig, validateConfig, type TailSamplingConfig } from './config.ts';
import { TailSamplingProcessor } from './processor.ts';

export { TailSamplingProcessor } from './processor.ts';
export type { TailSamplingMetrics, TailSamplingOptions } from './processor.ts';
export { validateConfig, defaultConfig, parseDuration, parseBytes } from './config.ts';
export type { TailSamplingConfig, PolicyConfig } from './config.ts';
export { Decision, PolicySet, buildPolicy, traceIdHash } from './policies.ts';

export const tailSamplingProcessorFactory: ProcessorFactory<TailSamplingConfig> = {
  type: 'tail_sampling',
  kind: 'processor',
  signals: ['traces'],
  defaultConfig,
  validate: validateConfig,
  create<S extends SignalType>(settings: CreateSettings, cfg: TailSamplingConfig, signal: S, next: Consumer<S>) {
    if (signal !== 'traces') throw new ConfigError(settings.id, `tail_sampling handles traces only, not ${signal}`);
    const p = new TailSamplingProcessor(cfg, next as unknown as Consumer<'traces'>, settings.logger.child({ component: settings.id }), {
      telemetry: settings.telemetry,
      id: settings.id,
    });
    return p as unknown as TailSamplingProcessor & Consumer<S>;
  },
};
