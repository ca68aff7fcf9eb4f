// Spawning the collector binary for e2e tests: writes the config, starts
// `node <collector flags> --import tsx collector/bin/collector.ts --config FILE`, waits for /healthz.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { COLLECTOR_NODE_FLAGS } from '../runtime.ts';

const root = new URL('../../../', import.meta.url).pathname;

export interface CollectorProcess {
  proc: ChildProcess;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function spawnCollector(dir: string, configYaml: string, telemetryPort: number, opts: { nodeArgs?: string[]; name?: string } = {}): Promise<CollectorProcess> {
  const name = opts.name ?? 'collector';
  const cfg = join(dir, `${name}.yaml`);
  writeFileSync(cfg, configYaml);
  const logFile = join(dir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const proc = spawn(process.execPath, [...COLLECTOR_NODE_FLAGS, ...(opts.nodeArgs ?? []), '--import', 'tsx', join(root, 'collector/bin/collector.ts'), '--config', cfg], {
    cwd: root,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', NODE_TEST_CONTEXT: '' },
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const killer = () => proc.kill('SIGKILL');
  process.once('exit', killer);
  const end = Date.now() + 30_000;
  let dead = false;
  void exited.then(() => (dead = true));
  for (;;) {
    if (dead) throw new Error(`collector exited during startup; see ${logFile}`);
    try {
      const r = await fetch(`http://127.0.0.1:${telemetryPort}/healthz`);
      if (r.status === 200) break;
    } catch {
      // not up yet
    }
    if (Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`collector did not become healthy; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    proc,
    logFile,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!dead) proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const r = await exited;
      clearTimeout(t);
      process.off('exit', killer);
      return r;
    },
  };
}

/** A TCP forwarder that can play "backend down" (refusing by closing new and existing connections). */
export class ToggleProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  up = false;

  constructor(private target: number) {}

  setTarget(port: number): void {
    this.target = port;
  }

  async listen(port = 0): Promise<number> {
    this.server = createServer((c) => {
      if (!this.up) {
        c.destroy();
        return;
      }
      const b = createConnection({ port: this.target, host: '127.0.0.1' });
      this.sockets.add(c);
      this.sockets.add(b);
      const drop = () => {
        c.destroy();
        b.destroy();
        this.sockets.delete(c);
        this.sockets.delete(b);
      };
      c.on('error', drop).on('close', drop);
      b.on('error', drop).on('close', drop);
      c.pipe(b);
      b.pipe(c);
    });
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', () => r()));
    return (this.server.address() as { port: number }).port;
  }

  setUp(up: boolean): void {
    this.up = up;
    if (!up) for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.setUp(false);
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}
