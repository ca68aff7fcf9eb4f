// Runs a collector from a parsed config: builds the service (validating everything first), starts
// the self-telemetry endpoint and the pipelines, and stops them in reverse order. This is the
// embedding API (the binary, e2e tests and the bench use it).
import type { Logger } from './component/index.ts';
import type { CollectorConfig } from './config/load.ts';
import { Service } from './pipeline/service.ts';
import type { FactoryRegistry } from './pipeline/registry.ts';
import { MetricsRegistry, SelfTelemetry } from './telemetry/metrics.ts';
import { TelemetryServer } from './telemetry/server.ts';

export interface CollectorOptions {
  registry: FactoryRegistry;
  logger: Logger;
}

export class Collector {
  readonly service: Service;
  readonly telemetry: SelfTelemetry;
  private telemetryServer?: TelemetryServer;
  private stopping?: Promise<void>;

  constructor(readonly config: CollectorConfig, private readonly opts: CollectorOptions) {
    this.telemetry = new SelfTelemetry(new MetricsRegistry(config.telemetry.maxSeriesPerMetric));
    this.service = new Service(config, opts.registry, { logger: opts.logger, telemetry: this.telemetry, onFatal: () => void this.shutdown() });
  }

  get telemetryPort(): number {
    return this.telemetryServer?.port ?? 0;
  }

  async start(): Promise<void> {
    if (this.config.telemetry.metricsAddress) {
      this.telemetryServer = new TelemetryServer(this.config.telemetry.metricsAddress, this.telemetry.registry, () => this.service.running, this.opts.logger);
      await this.telemetryServer.start();
    }
    try {
      await this.service.start();
    } catch (err) {
      await this.telemetryServer?.shutdown();
      throw err;
    }
  }

  /** Set when shutdown() gave up at service.shutdown_timeout (the process then exits non-zero). */
  shutdownTimedOut = false;

  /** Stops intake, flushes and drains (bounded by service.shutdown_timeout). Idempotent. */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), this.config.shutdownTimeoutMs)));
      const r = await Promise.race([this.service.shutdown().then(() => 'done' as const), timeout]);
      clearTimeout(timer);
      if (r === 'timeout') {
        this.shutdownTimedOut = true;
        this.opts.logger.error({ timeoutMs: this.config.shutdownTimeoutMs }, 'shutdown timed out; exiting with data possibly in flight');
      }
      await this.telemetryServer?.shutdown();
    })();
    return this.stopping;
  }
}
