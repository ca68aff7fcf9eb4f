// Typed access to one component's raw YAML config. Every getter names the dotted field path in the
// ConfigError it throws, and done() rejects unknown keys, so a typo fails at startup instead of
// being silently ignored.
import { ConfigError } from '../component/errors.ts';

export type Raw = Record<string, unknown>;

const DURATION_RE = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/;
const DURATION_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|K|M|G)?$/i;
const SIZE_MUL: Record<string, number> = {
  b: 1, k: 1000, kb: 1000, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3,
};

export function isObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses "5s", "200ms", "1m" or a number of milliseconds. */
export function parseDuration(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const m = DURATION_RE.exec(v.trim());
    if (m) return Number(m[1]) * DURATION_MS[m[2]];
  }
  throw new ConfigError(field, `expected a duration such as "5s" or "200ms", got ${JSON.stringify(v)}`);
}

/** Parses "64MiB", "10MB", "512" (bytes) or a number of bytes. */
export function parseSize(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.floor(v);
  if (typeof v === 'string') {
    const m = SIZE_RE.exec(v.trim());
    if (m) return Math.floor(Number(m[1]) * SIZE_MUL[(m[2] ?? 'b').toLowerCase()]);
  }
  throw new ConfigError(field, `expected a size such as "64MiB" or a number of bytes, got ${JSON.stringify(v)}`);
}

export interface NumOpts {
  min?: number;
  max?: number;
  integer?: boolean;
}

export class ConfigReader {
  private readonly seen = new Set<string>();
  readonly raw: Raw;

  /** `raw` may be null/undefined (an empty YAML section means "all defaults"). */
  constructor(raw: unknown, readonly path: string) {
    if (raw === null || raw === undefined) this.raw = {};
    else if (isObject(raw)) this.raw = raw;
    else throw new ConfigError(path, `expected a mapping, got ${Array.isArray(raw) ? 'a list' : typeof raw}`);
  }

  field(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  private get(key: string): unknown {
    this.seen.add(key);
    const v = this.raw[key];
    return v === null ? undefined : v;
  }

  str(key: string, def: string): string;
  str(key: string, def?: undefined): string | undefined;
  str(key: string, def?: string): string | undefined {
    const v = this.get(key);
    if (v === undefined) return def;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (typeof v !== 'string') throw new ConfigError(this.field(key), `expected a string, got ${typeof v}`);
    return v;
  }

  num(key: string, def: number, opts?: NumOpts): number;
  num(key: string, def: undefined, opts?: NumOpts): number | undefined;
  num(key: string, def: number | undefined, opts: NumOpts = {}): number | undefined {
    let v = this.get(key);
    if (v === undefined) return def;
    if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) v = Number(v);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(this.field(key), `expected a number, got ${JSON.stringify(v)}`);
    if (opts.integer && !Number.isInteger(v)) throw new ConfigError(this.field(key), `expected an integer, got ${v}`);
    if (opts.min !== undefined && v < opts.min) throw new ConfigError(this.field(key), `must be >= ${opts.min}, got ${v}`);
    if (opts.max !== undefined && v > opts.max) throw new ConfigError(this.field(key), `must be <= ${opts.max}, got ${v}`);
    return v;
  }

  bool(key: string, def: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return def;
    if (v === 'true') return true;
    if (v === 'false') return false;
    if (typeof v !== 'boolean') throw new ConfigError(this.field(key), `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  /** Milliseconds. */
  duration(key: string, def: number): number {
    const v = this.get(key);
    return v === undefined ? def : parseDuration(v, this.field(key));
  }

  /** Bytes. */
  size(key: string, def: number): number {
    const v = this.get(key);
    return v === undefined ? def : parseSize(v, this.field(key));
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], def: T): T {
    const v = this.str(key, def);
    if (!(allowed as readonly string[]).includes(v))
      throw new ConfigError(this.field(key), `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  }

  strList(key: string, def: string[]): string[] {
    const v = this.get(key);
    if (v === undefined) return def;
    if (!Array.isArray(v)) throw new ConfigError(this.field(key), 'expected a list of strings');
    return v.map((x, i) => {
      if (typeof x !== 'string') throw new ConfigError(`${this.field(key)}[${i}]`, 'expected a string');
      return x;
    });
  }

  /** A nested mapping as its own reader (absent → empty). */
  sub(key: string): ConfigReader {
    return new ConfigReader(this.get(key), this.field(key));
  }

  /** `key: { enabled: bool }`, otelcol's on/off section; other keys in it are refused. */
  enabled(key: string, def: boolean): boolean {
    const s = this.sub(key);
    const v = s.bool('enabled', def);
    s.done();
    return v;
  }

  /** A list of mappings, each as its own reader. */
  list(key: string): ConfigReader[] {
    const v = this.get(key);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new ConfigError(this.field(key), 'expected a list');
    return v.map((x, i) => new ConfigReader(x, `${this.field(key)}[${i}]`));
  }

  /** A mapping of user-chosen keys (e.g. tenant names) to nested mappings. */
  map(key: string): Map<string, ConfigReader> {
    const v = this.get(key);
    const out = new Map<string, ConfigReader>();
    if (v === undefined) return out;
    if (!isObject(v)) throw new ConfigError(this.field(key), 'expected a mapping');
    for (const [k, x] of Object.entries(v)) out.set(k, new ConfigReader(x, `${this.field(key)}.${k}`));
    return out;
  }

  /** A mapping of user-chosen keys to strings. */
  strMap(key: string): Map<string, string> {
    const v = this.get(key);
    const out = new Map<string, string>();
    if (v === undefined) return out;
    if (!isObject(v)) throw new ConfigError(this.field(key), 'expected a mapping of strings');
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== 'string' && typeof x !== 'number') throw new ConfigError(`${this.field(key)}.${k}`, 'expected a string');
      out.set(k, String(x));
    }
    return out;
  }

  /** Marks a key as known without reading it (parsed elsewhere). */
  skip(key: string): unknown {
    return this.get(key);
  }

  /** Rejects keys nobody read: typos fail at startup. */
  done(): void {
    for (const k of Object.keys(this.raw)) {
      if (!this.seen.has(k)) throw new ConfigError(this.field(k), 'unknown field');
    }
  }
}
