// A light loopback workload for the main job on a quiet machine: a local server that answers
// after a small random delay, clients connecting a few times a second (some send data), and
// now and then a connect to a closed port. Bounded and stoppable.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface DemoWorkload {
  port: number;
  stop(): Promise<void>;
}

export async function startDemoWorkload(opts: { ratePerSec?: number } = {}): Promise<DemoWorkload> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('data', () => {});
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    setTimeout(() => s.end('ok'), 5 + Math.random() * 20).unref();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  // A port that was free a moment ago: connects to it are refused.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const closedPort = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  let n = 0;
  const timer = setInterval(() => {
    n++;
    const target = n % 10 === 0 ? closedPort : port;
    const c = connect({ host: '127.0.0.1', port: target });
    sockets.add(c);
    c.on('connect', () => c.end(Buffer.alloc(100 + (n % 7) * 1000)));
    c.on('error', () => {});
    c.on('close', () => sockets.delete(c));
  }, 1000 / (opts.ratePerSec ?? 5));
  timer.unref();
  return {
    port,
    async stop() {
      clearInterval(timer);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
