// The collector's own HTTP endpoint: GET /metrics (Prometheus text of the self-telemetry) and
// GET /healthz (200 while the service runs, 503 while starting or stopping).
import { createServer, type Server } from 'node:http';
import type { Logger } from '../component/index.ts';
import { parseEndpoint } from '../receivers/otlp/config.ts';
import type { MetricsRegistry } from './metrics.ts';

export class TelemetryServer {
  private server?: Server;

  constructor(
    private readonly address: string,
    private readonly registry: MetricsRegistry,
    private readonly healthy: () => boolean,
    private readonly logger: Logger,
  ) {
    const rss = registry.gauge('kscope_process_resident_memory_bytes', 'Resident set size of the collector process.');
    const heap = registry.gauge('kscope_process_heap_used_bytes', 'V8 heap in use.');
    const up = registry.gauge('kscope_process_uptime_seconds', 'Seconds since the process started.');
    registry.onCollect(() => {
      const m = process.memoryUsage();
      rss.set({}, m.rss);
      heap.set({}, m.heapUsed);
      up.set({}, Math.round(process.uptime()));
    });
  }

  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  async start(): Promise<void> {
    const ep = parseEndpoint(this.address, 'service.telemetry.metrics.address');
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/metrics') {
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(this.registry.render());
      } else if (req.method === 'GET' && (path === '/healthz' || path === '/')) {
        const ok = this.healthy();
        res.writeHead(ok ? 200 : 503, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable' }));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(ep.port, ep.host, () => resolve());
    });
    this.server = server;
    this.logger.info({ address: `${ep.host}:${this.port}` }, 'self-telemetry endpoint listening (/metrics, /healthz)');
  }

  async shutdown(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }
}
