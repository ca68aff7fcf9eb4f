// `agent record`: capture raw ring-buffer batches of live probes into a fixture file.
import { parseArgs } from 'node:util';
import { record } from '../sources/recorder.ts';
import { knownProbes, probeAvailable, type ProbeSpec } from '../sources/probes.ts';
import { parseDurationSeconds, parseSets, UsageError, type Command } from './command.ts';

const usage = `Usage: agent record --out FILE --duration SECONDS [--probe tcp,proc] [--set probe.global=value]...

Loads and attaches the probes, records every ring-buffer batch for SECONDS (Ctrl-C stops early)
and writes a fixture: header (kernel, clocks, probe objects and hashes, cgroup table, processes
seen) followed by the raw batches. Replay it with \`agent replay FILE\`.

  --out FILE          fixture to write (replaced if it exists)
  --duration SECONDS  how long to record (decimal allowed)
  --probe LIST        comma-separated probes: ${Object.keys(knownProbes).join(', ')} (default tcp,proc)
  --set P.G=VALUE     set global G of probe P before load (integer or true/false; repeatable),
                      e.g. --set selftest.targ_tgid=1234
  -h, --help          this text`;

export function resolveProbes(list: string): ProbeSpec[] {
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError('--probe is empty');
  return names.map((n) => {
    const spec = knownProbes[n];
    if (!spec) throw new UsageError(`unknown probe '${n}' (known: ${Object.keys(knownProbes).join(', ')})`);
    if (!probeAvailable(spec)) throw new UsageError(`probe '${n}': ${spec.object} is not built (npm run build:bpf)`);
    return spec;
  });
}

export const recordCommand: Command = {
  name: 'record',
  summary: 'record raw ring-buffer batches of live probes into a fixture file',
  usage,
  async run(argv, io, signal) {
    const { values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        duration: { type: 'string' },
        probe: { type: 'string', default: 'tcp,proc' },
        set: { type: 'string', multiple: true, default: [] },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
    if (values.help) {
      io.out(usage);
      return 0;
    }
    if (!values.out) throw new UsageError('--out is required');
    const durationMs = parseDurationSeconds('duration', values.duration);
    const seconds = durationMs / 1000;
    const probes = resolveProbes(values.probe);
    const globals = parseSets(values.set);
    for (const p of Object.keys(globals)) {
      if (!probes.some((s) => s.name === p)) throw new UsageError(`--set names probe '${p}', which is not recorded`);
    }
    io.err(`recording ${probes.map((p) => p.name).join(', ')} for ${seconds} s into ${values.out}`);
    const s = await record({ out: values.out, probes, durationMs, globals, signal });
    for (const [name, p] of Object.entries(s.perProbe)) {
      io.out(`${name}: ${p.records} records; attached ${p.attached.join(', ') || 'nothing'}`
        + (p.failedAttach.length ? `; not attached: ${p.failedAttach.map((f) => `${f.program} (${f.error})`).join(', ')}` : ''));
    }
    io.out(`wrote ${s.out}: ${s.records} records in ${s.batches} batches, ${s.processes} processes, ${s.cgroups} cgroups`);
    return 0;
  },
};
