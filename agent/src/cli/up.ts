// `agent up`: the main job on one machine. Starts a collector (child process, OTel Arrow receiver) that writes what
// it receives to OTLP/JSON files, runs the agent against it (live eBPF when the kernel allows,
// otherwise a bundled fixture, said loudly), and shows a refreshing summary of the top
// connections by p99 connect latency per pod/process, read back from the collector's output.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from '../agent.ts';
import { parseAgentConfig } from '../config.ts';
import { agentExporterRegistry } from '../exporters.ts';
import { repoRoot } from '../sources/probes.ts';
import { ConnectionSummary, JsonLinesFollower } from './summary.ts';
import { startDemoWorkload, type DemoWorkload } from './demo-workload.ts';
import { COLLECTOR_NODE_FLAGS } from '../../../collector/src/runtime.ts';
import { parseDurationSeconds, untilAborted, type Command } from './command.ts';

export const BUNDLED_FIXTURE = join(repoRoot, 'tests/fixtures/tcp-proc-loopback.kscope');
/** How long `agent up` waits for its collector to drain and exit after SIGTERM (its own shutdown
 * deadline is 15 s). */
const COLLECTOR_STOP_DEADLINE_MS = 30_000;

const usage = `Usage: agent up [--out DIR] [--duration SECONDS] [--no-workload] [--replay]

The main job: collector + agent on this machine, output in DIR (default ./kscope-output):
traces.jsonl, metrics.jsonl and logs.jsonl (OTLP/JSON lines, one batch per line). Shows the top
connections by p99 connect latency per pod/process, refreshing every 2 s; Ctrl-C stops
everything cleanly.

  --out DIR           where the collector writes (default ./kscope-output)
  --duration SECONDS  stop by itself after this long (default: run until Ctrl-C)
  --no-workload       don't start the small built-in loopback workload
  --replay            replay the bundled fixture instead of attaching to the kernel
  -h, --help          this text`;

/** A TCP port free on loopback right now (for the collector `up` starts; tests use it too). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function collectorConfig(port: number, out: string): string {
  return `receivers:
  otelarrow:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${port}
exporters:
  file/traces: { path: ${join(out, 'traces.jsonl')} }
  file/metrics: { path: ${join(out, 'metrics.jsonl')} }
  file/logs: { path: ${join(out, 'logs.jsonl')} }
service:
  pipelines:
    traces: { receivers: [otelarrow], exporters: [file/traces] }
    metrics: { receivers: [otelarrow], exporters: [file/metrics] }
    logs: { receivers: [otelarrow], exporters: [file/logs] }
  telemetry:
    logs: { level: warn }
    metrics: { address: "" }
`;
}

async function waitPort(port: number, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const { connect } = await import('node:net');
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`collector exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((r) => {
      const c = connect({ host: '127.0.0.1', port }, () => { c.destroy(); r(true); });
      c.on('error', () => r(false));
    });
    if (ok) return;
    await sleep(200);
  }
  throw new Error(`collector did not listen on ${port} within ${timeoutMs} ms`);
}

export const HINTS = `To send to Jaeger and Prometheus instead of files, run the collector with, e.g.:
  exporters:
    otlp/jaeger: { endpoint: 127.0.0.1:4317, tls: { insecure: true } }
    prometheusremotewrite: { endpoint: http://127.0.0.1:9090/api/v1/write }
  service.pipelines: traces → [otlp/jaeger], metrics → [prometheusremotewrite]
(Prometheus needs --web.enable-remote-write-receiver, and before 3.8 --enable-feature=native-histograms
for the exponential histograms; or set exponential_histograms: classic), and point the agent's exporter.config.endpoint
at that collector. See collector/testdata/ and deploy/ for complete configs.`;

export const upCommand: Command = {
  name: 'up',
  summary: 'main job: collector + agent here, live summary of top connections by p99 latency',
  usage,
  async run(argv, io, signal) {
    const { values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string', default: 'kscope-output' },
        duration: { type: 'string' },
        'no-workload': { type: 'boolean', default: false },
        replay: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      io.out(usage);
      return 0;
    }
    // checked before anything starts: 'abc' must not mean "no limit"
    const durationMs = values.duration !== undefined ? parseDurationSeconds('duration', values.duration) : Infinity;
    const out = resolve(values.out!);
    mkdirSync(out, { recursive: true });
    const port = await freePort();
    const cfgFile = join(out, 'collector.yaml');
    writeFileSync(cfgFile, collectorConfig(port, out));
    // from the bundle (dist/), the collector runs bundled too: no tsx loader in either process
    const distDir = (globalThis as { KSCOPE_DIST_DIR?: string }).KSCOPE_DIST_DIR;
    const collectorArgs = distDir ? [join(distDir, 'collector.mjs')] : ['--import', 'tsx', join(repoRoot, 'collector/bin/collector.ts')];
    // The collector shares our terminal's process group: it ignores Ctrl-C (SIGINT) so that it is
    // still receiving while the agent flushes, and stops on the SIGTERM sent after that.
    const collector = spawn(process.execPath, [...COLLECTOR_NODE_FLAGS, ...collectorArgs, '--config', cfgFile], {
      stdio: ['ignore', 'inherit', 'inherit'],
      cwd: repoRoot,
      env: { ...process.env, KSCOPE_COLLECTOR_IGNORE_SIGINT: '1' },
    });
    // a second Ctrl-C exits at once (cli/index.ts): the collector ignores SIGINT, so end it too
    const killCollector = (): void => void collector.kill('SIGTERM');
    process.once('exit', killCollector);
    let workload: DemoWorkload | undefined;
    let agent: Agent | undefined;
    let refresh: NodeJS.Timeout | undefined;
    try {
      await waitPort(port, 30_000, collector);
      const canLive = typeof process.getuid === 'function' && process.getuid() === 0 && existsSync('/sys/kernel/btf/vmlinux');
      const replay = values.replay || !canLive;
      if (replay && !existsSync(BUNDLED_FIXTURE)) throw new Error(`no live eBPF here and the bundled fixture ${BUNDLED_FIXTURE} is missing`);
      const config = parseAgentConfig({
        probes: { fallback_fixture: BUNDLED_FIXTURE },
        batch: { timeout: '1s' },
        signals: { metrics: { interval: '5s' }, logs: { process_exec_exit: true } },
        exporter: { type: 'otelarrow', config: { endpoint: `127.0.0.1:${port}`, tls: { insecure: true } } },
        server: { address: '127.0.0.1:0' },
        log: { level: 'warn' },
      });
      agent = new Agent({ config, registry: agentExporterRegistry(), ...(replay ? { replay: { path: BUNDLED_FIXTURE, speed: 'recorded' as const } } : {}) });
      await agent.start();
      const mode = agent.mode === 'live' ? 'LIVE eBPF' : '*** REPLAY of a recorded fixture (live eBPF not available here) ***';
      if (agent.mode === 'replay') io.err(`agent up: ${mode}`);
      if (!values['no-workload'] && agent.mode === 'live') workload = await startDemoWorkload();
      const summary = new ConnectionSummary();
      const follower = new JsonLinesFollower(join(out, 'traces.jsonl'), (d) => summary.ingest(d));
      const tty = process.stdout.isTTY;
      const started = Date.now();
      const draw = () => {
        follower.poll();
        const title = `kernelscope — ${mode} — ${Math.round((Date.now() - started) / 1000)} s — ${summary.spans} spans received by the collector — output: ${out}`;
        const text = summary.render(15, title);
        if (tty) process.stdout.write(`\x1b[2J\x1b[H${text}\n\n${HINTS}\n`);
        else io.out(`${text}\n`);
      };
      refresh = setInterval(draw, 2000);
      const stopped = untilAborted(signal);
      // The duration's timer is cleared on Ctrl-C: a pending one would keep the process alive
      // until the whole duration had passed.
      const durationTimer = new AbortController();
      const elapsed = Number.isFinite(durationMs) ? [sleep(durationMs, undefined, { signal: durationTimer.signal }).catch(() => undefined)] : [];
      // a failing source (corrupt fixture) stopped the agent: throw, and the collector stops below
      try {
        await Promise.race([stopped, agent.sourceFailed(), ...elapsed]);
      } finally {
        durationTimer.abort();
      }
      clearInterval(refresh);
      refresh = undefined;
      await workload?.stop();
      workload = undefined;
      await agent.stop();
      agent = undefined;
      await sleep(1500); // the collector's file exporter writes what the agent flushed
      draw();
      if (!tty) io.out(HINTS);
      return 0;
    } finally {
      if (refresh) clearInterval(refresh);
      await workload?.stop();
      await agent?.stop();
      collector.kill('SIGTERM');
      // its shutdown drains the file exporter; past the deadline it is killed rather than waited on
      const exited = new Promise<void>((r) => (collector.exitCode !== null || collector.signalCode !== null ? r() : collector.once('exit', () => r())));
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((r) => (deadline = setTimeout(r, COLLECTOR_STOP_DEADLINE_MS)))]);
      clearTimeout(deadline);
      if (collector.exitCode === null && collector.signalCode === null) {
        io.err(`agent up: the collector did not stop within ${COLLECTOR_STOP_DEADLINE_MS / 1000} s; killing it`);
        collector.kill('SIGKILL');
        await exited;
      }
      process.off('exit', killCollector);
    }
  },
};
