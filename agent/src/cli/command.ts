// The CLI's command contract. Each subcommand is one module exporting a Command; index.ts lists
// them. To add one (e.g. `run`), write agent/src/cli/<name>.ts and add it to `commands` there.

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
}

export interface Command {
  name: string;
  /** one line for the top-level help */
  summary: string;
  /** full `--help` text */
  usage: string;
  /** returns the process exit code */
  run(argv: string[], io: CliIO, signal: AbortSignal): Promise<number>;
}

/**
 * Resolves when the command is asked to stop. A signal that arrived while the command was still
 * starting (BPF load, informer sync) has already fired its abort event: it resolves at once.
 */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Bad command-line usage: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  readonly code = 'USAGE' as const;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** "123" → 123n, "true"/"false" → boolean, "0x1f" → 31n; anything else is refused. */
export function parseScalar(text: string): bigint | boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (/^-?(0x[0-9a-f]+|\d+)$/i.test(text)) return text.startsWith('-') ? -BigInt(text.slice(1)) : BigInt(text);
  throw new UsageError(`cannot parse '${text}' as an integer or boolean`);
}

/** Parses repeated `--set probe.name=value` into {probe: {name: value}}. */
export function parseSets(sets: string[]): Record<string, Record<string, bigint | boolean>> {
  const out: Record<string, Record<string, bigint | boolean>> = {};
  for (const s of sets) {
    const m = /^([\w-]+)\.(\w+)=(.+)$/.exec(s);
    if (!m) throw new UsageError(`--set expects probe.global=value, got '${s}'`);
    (out[m[1]!] ??= {})[m[2]!] = parseScalar(m[3]!);
  }
  return out;
}

/** Longest timer Node honours (2^31−1 ms, ~24.8 days); a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `--NAME SECONDS` as milliseconds: a positive number within the timer limit, else UsageError. */
export function parseDurationSeconds(name: string, text: string | undefined): number {
  const seconds = Number(text);
  const ms = seconds * 1000;
  if (!text || !Number.isFinite(seconds) || seconds <= 0 || ms > MAX_TIMER_MS) {
    throw new UsageError(`--${name} must be a positive number of seconds, at most ${Math.floor(MAX_TIMER_MS / 1000)}, got '${text ?? ''}'`);
  }
  return ms;
}
