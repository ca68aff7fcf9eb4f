// Shared pino logger factory, plus a rate limiter for warnings that a broken environment could
// otherwise repeat per event (an unreachable API server, a missing /proc entry).
import { pino, type Logger as PinoLogger, type LevelWithSilent } from 'pino';

export type Logger = PinoLogger;

export interface LoggerOptions {
  /** Component name, bound as `component` on every line. */
  name?: string;
  /** Defaults to $LOG_LEVEL, else 'info' ('silent' under the test runner unless $LOG_LEVEL is set). */
  level?: LevelWithSilent;
}

function defaultLevel(): LevelWithSilent {
  const env = process.env.LOG_LEVEL;
  if (env) return env as LevelWithSilent;
  // node --test sets NODE_TEST_CONTEXT in the child; tests stay quiet unless asked.
  return process.env.NODE_TEST_CONTEXT ? 'silent' : 'info';
}

let root: PinoLogger | undefined;

/**
 * A logger writing JSON lines to stderr (stdout may carry data in CLI tools). Writes are
 * synchronous so nothing is lost at exit; volume stays low because repeated warnings go through
 * RateLimitedLog.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  root ??= pino({ level: defaultLevel(), base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  const l = opts.name ? root.child({ component: opts.name }) : root.child({});
  if (opts.level) l.level = opts.level;
  return l;
}

/** A logger that drops everything (tests, libraries used without a logger). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Logs at most `burst` lines per key every `intervalMs`; at the next allowed line it reports how many
 * were suppressed. Keys are bounded (`maxKeys`), oldest forgotten first.
 */
export class RateLimitedLog {
  private readonly windows = new Map<string, { start: number; count: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 60_000,
    private readonly burst = 1,
    private readonly maxKeys = 256,
    private readonly now: () => number = Date.now,
  ) {}

  warn(key: string, obj: object, msg: string): boolean {
    return this.emit('warn', key, obj, msg);
  }

  error(key: string, obj: object, msg: string): boolean {
    return this.emit('error', key, obj, msg);
  }

  info(key: string, obj: object, msg: string): boolean {
    return this.emit('info', key, obj, msg);
  }

  /** Returns true when the line was written. */
  private emit(level: 'warn' | 'error' | 'info', key: string, obj: object, msg: string): boolean {
    const t = this.now();
    let w = this.windows.get(key);
    if (!w) {
      if (this.windows.size >= this.maxKeys) {
        const oldest = this.windows.keys().next().value;
        if (oldest !== undefined) this.windows.delete(oldest);
      }
      w = { start: t, count: 0, suppressed: 0 };
      this.windows.set(key, w);
    }
    if (t - w.start >= this.intervalMs) {
      w.start = t;
      w.count = 0;
    }
    if (w.count >= this.burst) {
      w.suppressed++;
      return false;
    }
    w.count++;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    this.logger[level](suppressed > 0 ? { ...obj, suppressed } : obj, msg);
    return true;
  }
}
