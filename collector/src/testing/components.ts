// Test components: a capturing exporter (looked up by id) and a processor that fails on demand
// (request metadata x-fail: retryable | throttled | throttled-once | permanent), for receiver and
// e2e tests.
import type { SignalType } from '../../../proto/src/model.ts';
import { PermanentError, RetryableError, ThrottledError } from '../component/errors.ts';
import type { Consumer, ExporterFactory, ProcessorFactory } from '../component/index.ts';
import { ConfigReader } from '../config/reader.ts';
import { CaptureSink } from './fixtures.ts';

export const captured = new Map<string, CaptureSink>();

/** The capture sink of exporter `id` for `signal`, typed by signal. */
export function sinkOf<S extends SignalType>(id: string, signal: S): CaptureSink<S> {
  const s = captured.get(`${id}:${signal}`);
  if (!s) throw new Error(`no capture exporter ${id} for ${signal}`);
  return s as unknown as CaptureSink<S>;
}

export const captureExporterFactory: ExporterFactory<object> = {
  type: 'capture',
  kind: 'exporter',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => ({}),
  validate: (raw, path) => {
    new ConfigReader(raw, path).done();
    return {};
  },
  create: (settings, _cfg, signal) => {
    const sink = new CaptureSink(signal);
    captured.set(`${settings.id}:${signal}`, sink as CaptureSink);
    return sink as never;
  },
};

/** Every request the scripted processor saw: its x-fail value ('' when none) and when (ms). */
export const scriptedCalls: { fail: string; at: number }[] = [];

export const scriptedProcessorFactory: ProcessorFactory<object> = {
  type: 'scripted',
  kind: 'processor',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => ({}),
  validate: (raw, path) => {
    new ConfigReader(raw, path).done();
    return {};
  },
  create: <S extends SignalType>(_s: unknown, _c: unknown, _signal: S, next: Consumer<S>) => {
    let throttledOnce = false;
    return {
      start: async () => {},
      shutdown: async () => {},
      consume: (b, ctx) => {
        const f = ctx.metadata?.['x-fail'];
        scriptedCalls.push({ fail: typeof f === 'string' ? f : '', at: Date.now() });
        // the first such request of this processor is throttled for 300 ms, later ones pass
        if (f === 'throttled-once' && !throttledOnce) {
          throttledOnce = true;
          return Promise.reject(new ThrottledError('slow down', 300));
        }
        if (f === 'retryable') return Promise.reject(new RetryableError('try later', 2000));
        if (f === 'throttled') return Promise.reject(new ThrottledError('slow down', 3000));
        if (f === 'permanent') return Promise.reject(new PermanentError('bad data'));
        return next.consume(b as never, ctx);
      },
    };
  },
};
