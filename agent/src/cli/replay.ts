// `agent replay`: feed a fixture through the replay source and summarise what it holds.
import { parseArgs } from 'node:util';
import { EventDecoder, type EventVisitor } from '../decode/index.ts';
import { ReplaySource, type ReplaySpeed } from '../sources/replay.ts';
import { UsageError, type Command } from './command.ts';

const usage = `Usage: agent replay FILE [--speed max|recorded] [--summary] [--dump N] [--json]

Replays a fixture written by \`agent record\` through the same batch path as the live agent,
prints each decoded event (tcp and proc probes, one JSON line each), then record counts per probe
and per record type.

  --speed max|recorded  as fast as possible (default) or at the recorded pace
  --summary             counts only, no events
  --dump N              also print the first N records as hex
  --json                print the summary as JSON
  -h, --help            this text`;

export interface ReplaySummary {
  file: string;
  kernelRelease: string;
  createdAt: string;
  durationMs: number;
  records: number;
  batches: number;
  probes: { id: number; name: string; records: number; byType?: Record<string, number>; byLength: Record<string, number> }[];
  processes: number;
  cgroups: number;
  /** batches whose handling threw (e.g. the decoder refused a record) */
  handlerErrors: number;
  /** records whose length runs past their batch (the rest of that batch is skipped) */
  badRecords: number;
  /** the first few problems, for the report */
  problems: string[];
}

/** Replays a file and counts records per probe, type and length. */
export async function summarise(file: string, speed: ReplaySpeed, dump = 0, onDump?: (line: string) => void,
  onEvent?: (line: string) => void, stop?: AbortSignal): Promise<ReplaySummary> {
  const problems: string[] = [];
  const problem = (m: string): void => void (problems.length < 5 && problems.push(m));
  const src = new ReplaySource(file, { speed, onError: (err) => problem(`batch failed: ${(err as Error)?.message ?? String(err)}`) });
  let badRecords = 0;
  // Ctrl-C ends a (paced) replay early; the summary covers what was delivered
  stop?.addEventListener('abort', () => void src.stop(), { once: true });
  const json = (o: object): string => JSON.stringify(o, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  const visitor: EventVisitor | undefined = onEvent && {
    tcp: (e) => onEvent(json(e.toObject())),
    proc: (e) => onEvent(json(e.toObject())),
    exec: (e) => onEvent(json(e.toObject())),
  };
  const decoder = visitor ? new EventDecoder(visitor) : undefined;
  const h = src.header;
  const per = new Map(src.probes.map((p) => [p.id, { id: p.id, name: p.name, records: 0, byLength: {} as Record<string, number>, byType: undefined as Record<string, number> | undefined }]));
  let dumped = 0;
  await src.start((buf, byteLength, count, probe) => {
    const v = new DataView(buf);
    let entry = per.get(probe.id);
    if (!entry) per.set(probe.id, entry = { id: probe.id, name: probe.name, records: 0, byLength: {}, byType: undefined });
    if (decoder && probe.decoder === 'kernel-events') decoder.decodeBatch(buf, byteLength, count);
    const tOff = probe.layout?.typeOffset;
    const tSize = probe.layout?.typeSize;
    let off = 0;
    for (let i = 0; i < count && off + 8 <= byteLength; i++) {
      const len = v.getUint32(off, true);
      if (len > byteLength - off - 8) {
        // a corrupt length: counting or dumping it would read past the batch
        badRecords++;
        problem(`${probe.name}: record ${i} of batch ${src.stats.batches} has length ${len}, past the batch's ${byteLength} B`);
        break;
      }
      entry.records++;
      entry.byLength[len] = (entry.byLength[len] ?? 0) + 1;
      if (tOff !== undefined && tSize !== undefined && tOff + tSize <= len) {
        const at = off + 8 + tOff;
        const t = tSize === 1 ? v.getUint8(at) : tSize === 2 ? v.getUint16(at, true) : v.getUint32(at, true);
        entry.byType ??= {};
        entry.byType[t] = (entry.byType[t] ?? 0) + 1;
      }
      if (dumped < dump && onDump) {
        dumped++;
        onDump(`${probe.name} #${dumped} (${len} B): ${Buffer.from(buf, off + 8, len).toString('hex')}`);
      }
      off += 8 + ((len + 7) & ~7);
    }
  });
  return {
    file,
    kernelRelease: h.kernelRelease,
    createdAt: h.createdAt,
    durationMs: Number((BigInt(h.endMonotonicNs) - BigInt(h.startMonotonicNs)) / 1_000_000n),
    records: src.stats.records,
    batches: src.stats.batches,
    probes: [...per.values()].map((p) => ({ id: p.id, name: p.name, records: p.records, byLength: p.byLength, ...(p.byType ? { byType: p.byType } : {}) })),
    processes: h.processes.length,
    cgroups: h.cgroups.length,
    handlerErrors: src.stats.handlerErrors,
    badRecords,
    problems,
  };
}

export const replayCommand: Command = {
  name: 'replay',
  summary: 'replay a recorded fixture and print what it holds',
  usage,
  async run(argv, io, signal) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        speed: { type: 'string', default: 'max' },
        dump: { type: 'string', default: '0' },
        summary: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      io.out(usage);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('expected exactly one FILE');
    if (values.speed !== 'max' && values.speed !== 'recorded') throw new UsageError('--speed must be max or recorded');
    const dump = Number(values.dump);
    if (!Number.isInteger(dump) || dump < 0) throw new UsageError('--dump must be a non-negative integer');
    const s = await summarise(positionals[0]!, values.speed, dump, io.out, values.summary || values.json ? undefined : io.out, signal);
    const failed = s.handlerErrors > 0 || s.badRecords > 0;
    if (values.json) {
      io.out(JSON.stringify(s, null, 2));
      return failed ? 1 : 0;
    }
    io.out(`${s.file}: recorded ${s.createdAt} on ${s.kernelRelease}, ${s.durationMs} ms, ${s.records} records in ${s.batches} batches, ${s.processes} processes, ${s.cgroups} cgroups`);
    for (const p of s.probes) {
      const types = p.byType ? `; by type ${Object.entries(p.byType).map(([t, n]) => `${t}:${n}`).join(' ')}` : '';
      const lens = Object.entries(p.byLength).map(([l, n]) => `${l}B:${n}`).join(' ');
      io.out(`  ${p.name} (probe ${p.id}): ${p.records} records; by length ${lens}${types}`);
    }
    if (failed) {
      io.err(`agent replay: ${s.file} is corrupt: ${s.badRecords} bad records, ${s.handlerErrors} failed batches`);
      for (const p of s.problems) io.err(`  ${p}`);
      return 1;
    }
    return 0;
  },
};
