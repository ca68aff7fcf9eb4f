// file exporter: one OTLP/JSON line per batch (the OTLP JSON file format otelcol writes), rotated
// by size: when the file would exceed max_megabytes it is renamed path.1 (older ones shift to .2,
// ...) and only `max_backups` rotated files are kept. Writes are serialised; shutdown closes the
// file after the queue drained. Exporters writing the same path (one `file` exporter in several
// pipelines: one instance per signal; the agent's three signals) share one open file, so one size
// counts toward rotation and no writer keeps appending to a file another one rotated away.
import { open, rename, unlink, stat, type FileHandle } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { SignalData, SignalType } from '../../../../proto/src/model.ts';
import { encodeJson } from '../../../../proto/src/otlp/index.ts';
import { ConfigError } from '../../component/errors.ts';
import type { CreateSettings, ExporterFactory } from '../../component/index.ts';
import { ConfigReader } from '../../config/reader.ts';
import { QueuedExporter, readExporterHelperConfig, defaultExporterHelperConfig, type ExporterHelperConfig } from '../../exporterhelper/index.ts';

export interface FileExporterConfig {
  path: string;
  /** Rotate when the file reaches this many bytes; 0 = never. */
  maxBytes: number;
  maxBackups: number;
  helper: ExporterHelperConfig;
}

export function validateFileExporterConfig(raw: unknown, path: string): FileExporterConfig {
  const r = new ConfigReader(raw, path);
  const file = r.str('path', '');
  if (!file) throw new ConfigError(r.field('path'), 'is required');
  const rot = r.sub('rotation');
  const d = defaultExporterHelperConfig();
  d.queue.numConsumers = 1; // one writer keeps lines whole and in order
  d.retry.initialIntervalMs = 1000;
  const cfg: FileExporterConfig = {
    path: file,
    maxBytes: Math.round(rot.num('max_megabytes', 100, { min: 0 }) * 1024 * 1024),
    maxBackups: rot.num('max_backups', 5, { min: 0, integer: true }),
    helper: readExporterHelperConfig(r, d),
  };
  rot.done();
  r.done();
  if (cfg.helper.queue.numConsumers !== 1) throw new ConfigError(r.field('sending_queue.num_consumers'), 'must be 1 for the file exporter');
  return cfg;
}

export class JsonLinesFile {
  private fh?: FileHandle;
  private size = 0;
  rotations = 0;
  /** Writes of every sharer, one after another: a rotation must not close the handle under a write. */
  private tail: Promise<void> = Promise.resolve();

  constructor(readonly cfg: { path: string; maxBytes: number; maxBackups: number }) {}

  async open(): Promise<void> {
    mkdirSync(dirname(this.cfg.path), { recursive: true });
    this.fh = await open(this.cfg.path, 'a');
    this.size = (await stat(this.cfg.path)).size;
  }

  write(line: string): Promise<void> {
    const done = this.tail.then(() => this.append(line));
    this.tail = done.catch(() => undefined);
    return done;
  }

  private async append(line: string): Promise<void> {
    const buf = Buffer.from(`${line}\n`);
    if (this.cfg.maxBytes > 0 && this.size > 0 && this.size + buf.length > this.cfg.maxBytes) await this.rotate();
    await this.fh!.write(buf);
    this.size += buf.length;
  }

  private async rotate(): Promise<void> {
    await this.fh!.close();
    const p = this.cfg.path;
    if (this.cfg.maxBackups === 0) {
      await unlink(p).catch(() => {});
    } else {
      await unlink(`${p}.${this.cfg.maxBackups}`).catch(() => {});
      for (let i = this.cfg.maxBackups - 1; i >= 1; i--) await rename(`${p}.${i}`, `${p}.${i + 1}`).catch(() => {});
      await rename(p, `${p}.1`);
    }
    this.fh = await open(p, 'a');
    this.size = 0;
    this.rotations++;
  }

  async close(): Promise<void> {
    await this.tail;
    await this.fh?.sync().catch(() => {});
    await this.fh?.close();
    this.fh = undefined;
  }
}

/** Open files by absolute path: the first exporter to start opens it, the last to stop closes it. */
const shared = new Map<string, { file: JsonLinesFile; refs: number; opened: Promise<void> }>();

async function acquireFile(cfg: FileExporterConfig, field: string): Promise<JsonLinesFile> {
  const key = resolve(cfg.path);
  let e = shared.get(key);
  if (e) {
    const c = e.file.cfg;
    if (c.maxBytes !== cfg.maxBytes || c.maxBackups !== cfg.maxBackups)
      throw new ConfigError(field, `${cfg.path} is written by another file exporter with other rotation settings`);
  } else {
    const file = new JsonLinesFile({ path: key, maxBytes: cfg.maxBytes, maxBackups: cfg.maxBackups });
    shared.set(key, (e = { file, refs: 0, opened: file.open() }));
  }
  e.refs++;
  try {
    await e.opened;
  } catch (err) {
    if (--e.refs === 0) shared.delete(key);
    throw err;
  }
  return e.file;
}

async function releaseFile(file: JsonLinesFile): Promise<void> {
  const e = shared.get(file.cfg.path);
  if (!e || e.file !== file) return;
  if (--e.refs > 0) return;
  shared.delete(file.cfg.path);
  await file.close();
}

export function createFileExporter<S extends SignalType>(settings: CreateSettings, cfg: FileExporterConfig, signal: S): QueuedExporter<S> {
  let file: JsonLinesFile | undefined;
  return new QueuedExporter(settings, cfg.helper, signal, (b: SignalData[S]) => file!.write(encodeJson(signal, b)), {
    start: async () => {
      file = await acquireFile(cfg, `exporters.${settings.id}.path`);
    },
    shutdown: async () => {
      if (file) await releaseFile(file);
      file = undefined;
    },
  });
}

export const fileExporterFactory: ExporterFactory<FileExporterConfig> = {
  type: 'file',
  kind: 'exporter',
  signals: ['traces', 'metrics', 'logs'],
  defaultConfig: () => validateFileExporterConfig({ path: './kscope-otlp.jsonl' }, 'exporters.file'),
  validate: validateFileExporterConfig,
  create: (settings, cfg, signal) => createFileExporter(settings, cfg, signal),
};
