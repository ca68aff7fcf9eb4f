// Errors of the BPF layer: one class per failure, each with a stable code.

/** The kernel (usually the verifier) or libbpf refused to load the object. */
export class BpfLoadError extends Error {
  readonly code = 'BPF_LOAD' as const;
  /** The program that failed, when libbpf said which. */
  readonly program: string | undefined;
  readonly errno: number;
  /** Tail of libbpf's output for this load, including the verifier log of the rejected program. */
  readonly log: string;
  /** The last lines of the verifier log (or of libbpf's output when there is none). */
  readonly verifierLog: string;
  constructor(message: string, opts: { program?: string; errno: number; log: string; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.name = 'BpfLoadError';
    this.program = opts.program;
    this.errno = opts.errno;
    this.log = opts.log;
    this.verifierLog = verifierTail(opts.log);
  }
}

/** Any other failure reported by libbpf or the kernel (open, map access, ring setup). */
export class BpfError extends Error {
  readonly code: string;
  readonly errno: number | undefined;
  constructor(code: string, message: string, errno?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BpfError';
    this.code = code;
    this.errno = errno;
  }
}

const beginMarker = '-- BEGIN PROG LOAD LOG --';
const endMarker = '-- END PROG LOAD LOG --';

/** The verifier log inside libbpf's output (its last 40 lines), or the output's last lines. A log
 * longer than the capture keeps its end: then only the end marker may be left. */
export function verifierTail(log: string, maxLines = 40): string {
  const b = log.lastIndexOf(beginMarker);
  let body = log;
  if (b >= 0) {
    const e = log.indexOf(endMarker, b);
    body = log.slice(b + beginMarker.length, e >= 0 ? e : undefined);
  } else {
    const e = log.lastIndexOf(endMarker);
    if (e >= 0) body = log.slice(0, e);
  }
  const lines = body.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(-maxLines).join('\n');
}

/** The program libbpf names in a load failure ("prog 'x': failed to load"), if any. */
export function failedProgram(log: string): string | undefined {
  const m = /prog '([^']+)': failed to load/.exec(log) ?? /prog '([^']+)': -- BEGIN PROG LOAD LOG --/.exec(log);
  return m?.[1];
}
