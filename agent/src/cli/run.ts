// `agent run`: the DaemonSet's command. Live eBPF → enrich → signals → export, with /healthz,
// /readyz and /metrics; SIGTERM drains the rings and flushes everything held before exiting.
import { parseArgs } from 'node:util';
import { loadAgentConfig } from '../config.ts';
import { Agent } from '../agent.ts';
import { agentExporterRegistry } from '../exporters.ts';
import { untilAborted, UsageError, type Command } from './command.ts';

const usage = `Usage: agent run [--config FILE] [--replay FIXTURE [--speed max|recorded] [--exit-when-done]]

Runs the agent: loads and attaches the probes, enriches events with their process, container and
Pod, and exports spans, metrics and logs as the config says. Environment: NODE_NAME (the node
this agent watches pods of), KSCOPE_CFG__<a>__<b>=value overrides config field a.b,
\${env:NAME} in the YAML is substituted. Stops cleanly on SIGTERM/SIGINT, flushing what it holds.

  --config FILE       agent YAML config (defaults apply when absent)
  --replay FIXTURE    replay a recorded fixture instead of attaching to the kernel
  --speed S           replay pace: max or recorded (default recorded)
  --exit-when-done    with --replay: flush and exit once the fixture is delivered
  -h, --help          this text`;

export const runCommand: Command = {
  name: 'run',
  summary: 'run the agent (live eBPF or a fixture replay) and export its signals',
  usage,
  async run(argv, io, signal) {
    const { values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        replay: { type: 'string' },
        speed: { type: 'string', default: 'recorded' },
        'exit-when-done': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      io.out(usage);
      return 0;
    }
    if (values.speed !== 'max' && values.speed !== 'recorded') throw new UsageError(`--speed must be max or recorded, got ${values.speed}`);
    const config = loadAgentConfig(values.config);
    const agent = new Agent({
      config,
      registry: agentExporterRegistry(),
      ...(values.replay ? { replay: { path: values.replay, speed: values.speed } } : {}),
    });
    await agent.start(); // stops what it started before throwing
    if (agent.mode === 'replay') io.err('agent: *** replaying a recorded fixture, not live kernel events ***');
    const stopped = untilAborted(signal);
    try {
      // a source that fails (corrupt fixture) has stopped the agent, flushing what it delivered
      if (values.replay && values['exit-when-done']) await Promise.race([agent.sourceFinished(), stopped]);
      else await Promise.race([agent.sourceFailed(), stopped]);
    } finally {
      await agent.stop();
    }
    return 0;
  },
};
