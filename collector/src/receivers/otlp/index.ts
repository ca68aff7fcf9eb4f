// OTLP receiver: gRPC (default 127.0.0.1:4317) and HTTP (127.0.0.1:4318), one server per
// configured receiver shared by its traces/metrics/logs pipelines. Tenant identity from auth
// (bearer token map, header, mTLS CN) travels in RequestContext with the tier and peer address.
import type { SignalType } from '../../../../proto/src/model.ts';
import type { Component, Consumer, CreateSettings, ReceiverFactory } from '../../component/index.ts';
import { SharedRegistry, type SharedServer } from '../common/shared.ts';
import { validateOtlpReceiverConfig, type OtlpReceiverConfig } from './config.ts';
import { OtlpHttpServer } from './http.ts';
import { OtlpGrpcServer } from './grpc.ts';

export { validateOtlpReceiverConfig, type OtlpReceiverConfig } from './config.ts';

export class OtlpReceiverServer implements SharedServer {
  readonly consumers: Partial<Record<SignalType, Consumer>> = {};
  http?: OtlpHttpServer;
  grpc?: OtlpGrpcServer;

  constructor(private readonly settings: CreateSettings, private readonly cfg: OtlpReceiverConfig) {}

  async start(): Promise<void> {
    const common = { id: this.settings.id, auth: this.cfg.auth, metadataKeys: this.cfg.metadataKeys, consumers: this.consumers, logger: this.settings.logger, telemetry: this.settings.telemetry };
    if (this.cfg.grpc) {
      this.grpc = new OtlpGrpcServer({ ...common, cfg: this.cfg.grpc });
      await this.grpc.start();
    }
    if (this.cfg.http) {
      this.http = new OtlpHttpServer({ ...common, cfg: this.cfg.http });
      try {
        await this.http.start();
      } catch (err) {
        await this.grpc?.shutdown();
        throw err;
      }
    }
  }

  async shutdown(): Promise<void> {
    await Promise.all([this.http?.shutdown(), this.grpc?.shutdown()]);
  }
}

const servers = new SharedRegistry<OtlpReceiverServer>();

/** The component handed to the pipeline for one signal; `server` exposes ports for tests. */
export class OtlpReceiver implements Component {
  private readonly handle: ReturnType<SharedRegistry<OtlpReceiverServer>['acquire']>;

  constructor(settings: CreateSettings, cfg: OtlpReceiverConfig, signal: SignalType, next: Consumer) {
    this.handle = servers.acquire(cfg, () => new OtlpReceiverServer(settings, cfg));
    this.handle.server.consumers[signal] = next;
  }

  get server(): OtlpReceiverServer {
    return this.handle.server;
  }

  start(): Promise<void> {
    return this.handle.start();
  }

  shutdown(): Promise<void> {
    return this.handle.shutdown();
  }
}

export const otlpReceiverFactory: ReceiverFactory<OtlpReceiverConfig> = {
  type: 'otlp',
  kind: 'receiver',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => validateOtlpReceiverConfig({ protocols: { grpc: null, http: null } }, 'receivers.otlp'),
  validate: validateOtlpReceiverConfig,
  create: (settings, cfg, signal, next) => new OtlpReceiver(settings, cfg, signal, next as Consumer),
};
