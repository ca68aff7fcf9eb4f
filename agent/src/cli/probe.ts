// `agent probe`: which programs load and attach on this kernel, and why not.
import { parseArgs } from 'node:util';
import { kernelCapabilities, probeObject, type ObjectProbe } from '../bpf/probe.ts';
import { knownProbes, objectPath, probeAvailable } from '../sources/probes.ts';
import { UsageError, type Command } from './command.ts';

const usage = `Usage: agent probe [--object PATH]... [--json] [--no-mount]

Loads each program of each BPF object alone, then the object's default set, and reports which
programs load and attach on this kernel and why not (tracefs, BTF, kprobes, verifier).
Without --object: the tcp and proc probes when built, else the bridge's selftest object.

  --object PATH   a BPF object to probe (repeatable)
  --json          print the result as JSON
  --no-mount      do not mount tracefs at /sys/kernel/tracing when it is absent
  -h, --help      this text`;

function defaultObjects(): string[] {
  const built = [knownProbes.tcp!, knownProbes.proc!].filter(probeAvailable).map(objectPath);
  return built.length ? built : [objectPath(knownProbes.selftest!)];
}

const yes = (b: boolean): string => (b ? 'yes' : 'no');

function printObject(r: ObjectProbe, out: (s: string) => void): void {
  out(`\n${r.path}`);
  if (r.error) {
    out(`  cannot open: ${r.error}`);
    return;
  }
  const w = Math.max(8, ...r.programs.map((p) => p.program.length + (p.defaultAutoload ? 0 : 6)));
  const ws = Math.max(8, ...r.programs.map((p) => p.section.length));
  out(`  ${'program'.padEnd(w)}  ${'section'.padEnd(ws)}  load  attach  why not`);
  for (const p of r.programs) {
    const name = p.defaultAutoload ? p.program : `${p.program} (opt)`;
    const load = p.load.ok ? 'ok' : 'FAIL';
    const attach = p.attach ? (p.attach.ok ? 'ok' : 'FAIL') : '-';
    out(`  ${name.padEnd(w)}  ${p.section.padEnd(ws)}  ${load.padEnd(4)}  ${attach.padEnd(6)}  ${p.reason ?? ''}`);
    if (!p.load.ok && p.load.verifierLog) {
      for (const line of p.load.verifierLog.split('\n').slice(-3)) out(`  ${''.padEnd(w)}    | ${line}`);
    }
  }
  const d = r.defaultSet;
  if (d) {
    out(d.loaded
      ? `  default set: loads; attached ${d.attached.join(', ') || 'nothing'}${d.failedAttach.length ? `; attach failed: ${d.failedAttach.join(', ')}` : ''}`
      : `  default set: does not load${d.failedProgram ? ` (program ${d.failedProgram})` : ''}: ${d.error}`);
  }
}

export const probeCommand: Command = {
  name: 'probe',
  summary: 'report which BPF programs load and attach on this kernel, and why not',
  usage,
  async run(argv, io) {
    const { values } = parseArgs({
      args: argv,
      options: {
        object: { type: 'string', multiple: true },
        json: { type: 'boolean', default: false },
        'no-mount': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
    if (values.help) {
      io.out(usage);
      return 0;
    }
    const objects = values.object?.length ? values.object : defaultObjects();
    if (objects.length === 0) throw new UsageError('no BPF object to probe');
    const caps = kernelCapabilities({ mountTracefs: !values['no-mount'] });
    const results = objects.map((o) => probeObject(o, { caps }));
    if (values.json) {
      io.out(JSON.stringify({ kernel: caps, objects: results }, null, 2));
    } else {
      io.out(`kernel ${caps.kernelRelease}: root ${yes(caps.root)}, BTF ${yes(caps.btf)}, tracefs ${caps.tracefs.mounted ? `${caps.tracefs.path}${caps.tracefs.mountedByUs ? ' (mounted now)' : ''}` : `missing (${caps.tracefs.error ?? 'not mounted'})`}, kprobes ${yes(caps.kprobes)}, uprobes ${yes(caps.uprobes)}, syscall tracepoints ${yes(caps.syscallTracepoints)}`);
      for (const r of results) printObject(r, io.out);
    }
    // exit 1 when an object cannot be opened or its default set does not load
    return results.every((r) => !r.error && r.defaultSet?.loaded) ? 0 : 1;
  },
};
