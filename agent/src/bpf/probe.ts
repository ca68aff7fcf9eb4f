// Capability probe: which programs of an object load and attach on this kernel, and why not.
// Each program is tried alone (every other program's autoload off), so one rejected program does
// not hide the others; the object's default set is tried too, as the agent would load it.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { BpfLoadError } from './errors.ts';
import { BpfObject } from './object.ts';

export const tracefsPath = '/sys/kernel/tracing';

export interface KernelCapabilities {
  kernelRelease: string;
  root: boolean;
  /** /sys/kernel/btf/vmlinux: needed by CO-RE relocations and tp_btf/fentry programs */
  btf: boolean;
  tracefs: { mounted: boolean; path: string; mountedByUs: boolean; error?: string };
  /** tracefs has kprobe_events: kprobes (and libbpf's legacy kprobe path) can work */
  kprobes: boolean;
  uprobes: boolean;
  /** syscall tracepoints (events/syscalls) exist */
  syscallTracepoints: boolean;
}

export interface ProgramProbe {
  program: string;
  section: string;
  type: string;
  /** autoload as compiled: optional programs are `SEC("?...")` */
  defaultAutoload: boolean;
  load: { ok: boolean; errno?: number; error?: string; verifierLog?: string };
  attach?: { ok: boolean; errno?: number; error?: string; detail?: string };
  /** why it does not work here, in words, when it does not */
  reason?: string;
}

export interface ObjectProbe {
  path: string;
  error?: string;
  /** the object loaded with its default autoload set, then attachAll */
  defaultSet?: { loaded: boolean; error?: string; failedProgram?: string; attached: string[]; failedAttach: string[] };
  programs: ProgramProbe[];
}

function isMounted(path: string): boolean {
  try {
    return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === path);
  } catch {
    return false;
  }
}

/** Checks kernel features; mounts tracefs at /sys/kernel/tracing when absent and we are root. */
export function kernelCapabilities(opts: { mountTracefs?: boolean } = {}): KernelCapabilities {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  let mounted = isMounted(tracefsPath) || existsSync(`${tracefsPath}/events`);
  let mountedByUs = false;
  let error: string | undefined;
  if (!mounted && (opts.mountTracefs ?? true)) {
    if (!root) error = 'not mounted, and mounting needs root';
    else {
      try {
        execFileSync('mount', ['-t', 'tracefs', 'nodev', tracefsPath], { stdio: ['ignore', 'ignore', 'pipe'] });
        mounted = mountedByUs = true;
      } catch (err) {
        error = `mount failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
      }
    }
  }
  return {
    kernelRelease: release(),
    root,
    btf: existsSync('/sys/kernel/btf/vmlinux'),
    tracefs: { mounted, path: tracefsPath, mountedByUs, ...(error ? { error } : {}) },
    kprobes: mounted && existsSync(`${tracefsPath}/kprobe_events`),
    uprobes: mounted && existsSync(`${tracefsPath}/uprobe_events`),
    syscallTracepoints: mounted && existsSync(`${tracefsPath}/events/syscalls`),
  };
}

const EPERM = 1;
const ENOENT = 2;
const ENOTSUPP = 524; // kernel-internal "not supported", seen for fentry without trampolines
const EOPNOTSUPP = 95;

/** A sentence explaining a failure from the section kind, the kernel features and the errno. */
export function explainFailure(section: string, errno: number | undefined, caps: KernelCapabilities,
  stage: 'load' | 'attach'): string {
  const kind = section.replace(/^\?/, '').split('/')[0] ?? '';
  if (!caps.root && (errno === EPERM || errno === 13)) return 'needs root (or CAP_BPF + CAP_PERFMON)';
  if (/^(kprobe|kretprobe|ksyscall|kretsyscall|kprobe\.multi|kretprobe\.multi)$/.test(kind) && !caps.kprobes) {
    return 'kprobes are not available on this kernel (no kprobe_events in tracefs)';
  }
  if (/^(fentry|fexit|fmod_ret|fentry\.s|fexit\.s|lsm)$/.test(kind)
    && (errno === EPERM || errno === ENOTSUPP || errno === EOPNOTSUPP)) {
    return `${kind} refused by the kernel (BPF trampolines not permitted here, errno ${errno})`;
  }
  if (/^(tp_btf|fentry|fexit|fmod_ret|lsm|iter)$/.test(kind) && !caps.btf) return 'kernel BTF (/sys/kernel/btf/vmlinux) is missing';
  if (/^(tracepoint|tp)$/.test(kind)) {
    if (!caps.tracefs.mounted) return `tracefs is not mounted at ${caps.tracefs.path}${caps.tracefs.error ? ` (${caps.tracefs.error})` : ''}`;
    if (errno === ENOENT) return 'this tracepoint does not exist on this kernel';
  }
  if (/^(uprobe|uretprobe|usdt)$/.test(kind) && !caps.uprobes) return 'uprobes are not available (no uprobe_events in tracefs)';
  if (stage === 'load' && errno === 13) return 'rejected by the verifier (see the verifier log)';
  if (stage === 'load' && errno === 22) return 'invalid program for this kernel (missing helper, BTF or relocation target)';
  return `${stage} failed${errno !== undefined ? `: errno ${errno}` : ''}`;
}

function errnoName(errno: number | undefined, fallback: string): string {
  return errno !== undefined && errno !== 0 ? `${fallback} (errno ${errno})` : fallback;
}

/**
 * Tries every program of the object alone, then the default set. `configure` may set globals
 * (filters) before each load. Never throws for a kernel refusal; an unreadable object is reported
 * in `error`.
 */
export function probeObject(path: string, opts: { caps?: KernelCapabilities; configure?: (o: BpfObject) => void } = {}): ObjectProbe {
  const caps = opts.caps ?? kernelCapabilities();
  const result: ObjectProbe = { path, programs: [] };
  let programs;
  try {
    const o = BpfObject.open(path);
    programs = o.programs();
    o.close();
  } catch (err) {
    result.error = (err as Error).message;
    return result;
  }
  for (const p of programs) {
    const entry: ProgramProbe = { program: p.name, section: p.section, type: p.type, defaultAutoload: p.autoload, load: { ok: false } };
    const o = BpfObject.open(path);
    try {
      for (const q of programs) o.setAutoload(q.name, q.name === p.name);
      opts.configure?.(o);
      try {
        o.load();
        entry.load = { ok: true };
      } catch (err) {
        const e = err as BpfLoadError;
        entry.load = { ok: false, errno: e.errno, error: errnoName(e.errno, e.message), verifierLog: e.verifierLog };
        entry.reason = explainFailure(p.section, e.errno, caps, 'load');
      }
      if (entry.load.ok) {
        const a = o.attach(p.name);
        entry.attach = a.ok ? { ok: true } : { ok: false, errno: a.errno, error: a.error, detail: a.log?.trim() };
        if (!a.ok) entry.reason = explainFailure(p.section, a.errno, caps, 'attach');
      }
    } finally {
      o.close();
    }
    result.programs.push(entry);
  }
  const o = BpfObject.open(path);
  try {
    opts.configure?.(o);
    o.load();
    const res = o.attachAll();
    result.defaultSet = {
      loaded: true,
      attached: res.filter((r) => r.ok).map((r) => r.program),
      failedAttach: res.filter((r) => !r.ok).map((r) => r.program),
    };
  } catch (err) {
    const e = err as BpfLoadError;
    result.defaultSet = { loaded: false, error: e.message, failedProgram: e.program, attached: [], failedAttach: [] };
  } finally {
    o.close();
  }
  return result;
}
