// The contracts every pipeline component follows (collector model): a factory with a typed
// default config validated at startup, start()/shutdown() (idempotent, flushes), and
// consume(batch, ctx) towards the next consumer. Back-pressure is the returned promise; a rejection
// carries one of the errors in ./errors.ts.
import type { SignalData, SignalType } from '../../../proto/src/model.ts';

export * from './errors.ts';

/** Request-scoped metadata that travels with a batch (set by receivers, read by routing/limits). */
export interface RequestContext {
  /** Tenant identity resolved by the receiver (bearer token map, mTLS cert, header). */
  tenant?: string;
  /** QoS tier of the tenant, if known ('high' | 'medium' | 'low'). */
  tier?: string;
  /** Incoming metadata (lower-cased header names). */
  metadata?: Record<string, string>;
  /** Peer address of the connection the data came in on (k8s attributes association by IP). */
  peerAddress?: string;
  /** Serialized size in bytes of the request, when the receiver knows it. */
  bytes?: number;
  /** Set by the receiver when the request must complete by then (ms since epoch). */
  deadline?: number;
}

export interface Consumer<S extends SignalType = SignalType> {
  consume(batch: SignalData[S], ctx: RequestContext): Promise<void>;
  /**
   * The error consume() would fail with right now whatever the data (a memory limiter above its
   * soft limit), so a receiver can refuse a request before decoding it; undefined otherwise.
   * Decoding a request only to refuse it costs the memory the limiter is protecting.
   */
  refusal?(): Error | undefined;
}

/** Counters every component keeps; exported as self-telemetry. */
export interface ComponentCounters {
  accepted: number;
  refused: number;
  dropped: number;
}

export interface Host {
  /** Report a fatal error from a running component (the service logs it and shuts down). */
  reportFatal(err: Error): void;
  /** Lookup of another component by id (e.g. an extension). */
  getComponent?(id: string): Component | undefined;
  /** Entry consumer of a pipeline by id (e.g. "traces/tenant-a"), for routing into pipelines. */
  getPipeline?(id: string): { consumer: Consumer; processors: string[]; signal: SignalType } | undefined;
}

export interface Component {
  start(host: Host): Promise<void>;
  /** Idempotent; flushes what the component holds before resolving. */
  shutdown(): Promise<void>;
}

export type ComponentKind = 'receiver' | 'processor' | 'exporter' | 'extension' | 'connector';

export interface CreateSettings {
  /** Component id as in config, e.g. "otlp" or "otlp/tenant-a". */
  id: string;
  /** Logger (pino-compatible). */
  logger: Logger;
  /** Self-telemetry registry (counters exposed on /metrics); absent in bare unit tests. */
  telemetry?: import('../telemetry/metrics.ts').SelfTelemetry;
  /** Pipeline id for processors (one instance per pipeline), e.g. "traces/tenant-a". */
  pipeline?: string;
}

export interface Logger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
  child(bindings: object): Logger;
}

/**
 * A factory creates components of one type. `validate` returns the config with defaults applied or
 * throws a ConfigError naming the field.
 */
export interface Factory<C = unknown> {
  type: string;
  kind: ComponentKind;
  defaultConfig(): C;
  validate(raw: unknown, path: string): C;
}

export interface ReceiverFactory<C = unknown> extends Factory<C> {
  kind: 'receiver';
  signals: SignalType[];
  create<S extends SignalType>(settings: CreateSettings, cfg: C, signal: S, next: Consumer<S>): Component;
}

export interface ProcessorFactory<C = unknown> extends Factory<C> {
  kind: 'processor';
  signals: SignalType[];
  /** True when consume() modifies the batch in place; fan-out then hands it a copy. */
  mutatesData?: boolean;
  create<S extends SignalType>(settings: CreateSettings, cfg: C, signal: S, next: Consumer<S>): Component & Consumer<S>;
}

export interface ExporterFactory<C = unknown> extends Factory<C> {
  kind: 'exporter';
  signals: SignalType[];
  create<S extends SignalType>(settings: CreateSettings, cfg: C, signal: S): Component & Consumer<S>;
}
