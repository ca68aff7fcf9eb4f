// Stream state for one gRPC stream, both sides. The producer turns telemetry batches into
// BatchArrowRecords (batch ids counting from 0, one IPC stream per payload type and schema_id,
// delta dictionaries across batches); the consumer keeps the matching IPC readers and turns
// BatchArrowRecords back into telemetry. One instance per gRPC stream and direction.
import type { LogsData, MetricsData, SignalData, SignalType, TracesData } from '../model.ts';
import { ArrowPayloadType as P, PAYLOAD_TYPE_NAMES, type ArrowPayload, type BatchArrowRecords } from './messages.ts';
import { IpcStreamReader, OtapDecodeError, type DecodedBatch, type DictionaryByteLimit, type IpcCompression } from './ipc.ts';
import { SchemaIdSource, type EncodeOptions } from './table.ts';
import { TracesEncoder, decodeTraces } from './traces.ts';
import { LogsEncoder, decodeLogs } from './logs.ts';
import { MetricsEncoder, decodeMetrics } from './metrics.ts';

export interface ProducerOptions {
  /** Arrow IPC body compression (the Go exporter's `arrow.payload_compression`, default zstd). */
  compression?: IpcCompression;
  zstdLevel?: number;
}

const ROOT_TYPE: Record<SignalType, number> = { traces: P.SPANS, logs: P.LOGS, metrics: P.UNIVARIATE_METRICS };

const SIGNAL_TYPES: Record<SignalType, ReadonlySet<number>> = {
  traces: new Set([P.SPANS, P.SPAN_ATTRS, P.SPAN_EVENTS, P.SPAN_LINKS, P.SPAN_EVENT_ATTRS, P.SPAN_LINK_ATTRS, P.RESOURCE_ATTRS, P.SCOPE_ATTRS]),
  logs: new Set([P.LOGS, P.LOG_ATTRS, P.RESOURCE_ATTRS, P.SCOPE_ATTRS]),
  metrics: new Set([
    P.UNIVARIATE_METRICS, P.NUMBER_DATA_POINTS, P.SUMMARY_DATA_POINTS, P.HISTOGRAM_DATA_POINTS, P.EXP_HISTOGRAM_DATA_POINTS,
    P.NUMBER_DP_ATTRS, P.SUMMARY_DP_ATTRS, P.HISTOGRAM_DP_ATTRS, P.EXP_HISTOGRAM_DP_ATTRS, P.NUMBER_DP_EXEMPLARS,
    P.HISTOGRAM_DP_EXEMPLARS, P.EXP_HISTOGRAM_DP_EXEMPLARS, P.NUMBER_DP_EXEMPLAR_ATTRS, P.HISTOGRAM_DP_EXEMPLAR_ATTRS,
    P.EXP_HISTOGRAM_DP_EXEMPLAR_ATTRS, P.METRIC_ATTRS, P.RESOURCE_ATTRS, P.SCOPE_ATTRS,
  ]),
};

export function signalOfRootType(t: number): SignalType | undefined {
  if (t === P.SPANS) return 'traces';
  if (t === P.LOGS) return 'logs';
  if (t === P.UNIVARIATE_METRICS) return 'metrics';
  return undefined;
}

export class OtapProducer {
  private readonly ids = new SchemaIdSource();
  private readonly opts: EncodeOptions;
  private traces: TracesEncoder | null = null;
  private logs: LogsEncoder | null = null;
  private metrics: MetricsEncoder | null = null;
  private nextBatchId = 0n;

  constructor(options: ProducerOptions = {}) {
    this.opts = { compression: options.compression ?? 'zstd', zstdLevel: options.zstdLevel ?? 3 };
  }

  /** Payloads for one batch (root first). Advances the IPC stream state; no batch id is consumed. */
  encodePayloads<S extends SignalType>(signal: S, data: SignalData[S]): ArrowPayload[] {
    if (signal === 'traces') return (this.traces ??= new TracesEncoder(this.ids, this.opts)).encode(data as TracesData);
    if (signal === 'logs') return (this.logs ??= new LogsEncoder(this.ids, this.opts)).encode(data as LogsData);
    return (this.metrics ??= new MetricsEncoder(this.ids, this.opts)).encode(data as MetricsData);
  }

  /** The next BatchArrowRecords of this stream. */
  produce<S extends SignalType>(signal: S, data: SignalData[S], headers: Uint8Array = new Uint8Array(0)): BatchArrowRecords {
    const arrowPayloads = this.encodePayloads(signal, data);
    return { batchId: this.nextBatchId++, arrowPayloads, headers };
  }

  /** Number of schema resets (new IPC streams after the first) across the producer's tables. */
  schemaResets(): number {
    return (this.traces?.resets() ?? 0) + (this.logs?.resets() ?? 0) + (this.metrics?.resets() ?? 0);
  }
}

export interface ConsumerOptions {
  /** Upper bound of the Arrow body bytes a batch makes the reader touch: decompressed, or as stored when not compressed (default 128 MiB, like arrow.memory_limit_mib). */
  maxBatchBytes?: number;
  /** Upper bound of entries per dictionary per IPC stream (default 1M). */
  maxDictionaryEntries?: number;
  /**
   * Upper bound of the bytes all dictionaries of the gRPC stream retain (estimated: string and
   * binary value bytes plus a per-entry overhead), over all its IPC streams. Default 64 MiB.
   */
  maxDictionaryBytes?: number;
  /**
   * Shared by every stream of a receiver: the bytes all their dictionaries retain together. A
   * stream whose dictionaries would take it past its max fails like one past maxDictionaryBytes.
   */
  dictionaryBudget?: DictionaryBudget;
}

/** Dictionary bytes retained by all the streams of one receiver, against a receiver-wide max. */
export class DictionaryBudget {
  used = 0;
  constructor(readonly max: number) {
    if (!(max > 0)) throw new RangeError(`DictionaryBudget max must be positive, got ${max}`);
  }
}

export const DEFAULT_MAX_DICTIONARY_ENTRIES = 1 << 20;
export const DEFAULT_MAX_DICTIONARY_BYTES = 64 * 1024 * 1024;
/** A receiver's default for all its streams' dictionaries together: four streams at their max. */
export const DEFAULT_MAX_TOTAL_DICTIONARY_BYTES = 256 * 1024 * 1024;

export type DecodedSignal =
  | { signal: 'traces'; data: TracesData; items: number }
  | { signal: 'logs'; data: LogsData; items: number }
  | { signal: 'metrics'; data: MetricsData; items: number };

export class OtapConsumer {
  private readonly readers = new Map<number, IpcStreamReader>();
  private readonly maxBatchBytes: number;
  private readonly maxDictionaryEntries: number;
  private readonly maxDictionaryBytes: number;
  /** Sum of the readers' retained dictionary bytes. */
  private dictBytes = 0;
  /** Set once a dictionary limit ended the stream; every later batch is refused with it. */
  private failed: OtapDecodeError | null = null;
  private readonly budget: DictionaryBudget | undefined;

  constructor(
    /** The signal this stream carries (from the service), or undefined to take it from the root payload. */
    readonly expected?: SignalType,
    options: ConsumerOptions = {},
  ) {
    this.maxBatchBytes = options.maxBatchBytes ?? 128 * 1024 * 1024;
    this.maxDictionaryEntries = options.maxDictionaryEntries ?? DEFAULT_MAX_DICTIONARY_ENTRIES;
    this.maxDictionaryBytes = options.maxDictionaryBytes ?? DEFAULT_MAX_DICTIONARY_BYTES;
    this.budget = options.dictionaryBudget;
    for (const [k, v] of [['maxBatchBytes', this.maxBatchBytes], ['maxDictionaryEntries', this.maxDictionaryEntries], ['maxDictionaryBytes', this.maxDictionaryBytes]] as const) {
      if (!(v > 0)) throw new RangeError(`OtapConsumer ${k} must be positive, got ${v}`);
    }
  }

  /** Estimated bytes the stream's dictionaries retain now (never above maxDictionaryBytes). */
  get dictionaryBytes(): number {
    return this.dictBytes;
  }

  /** Whether a dictionary limit ended this stream. */
  get isFailed(): boolean {
    return this.failed !== null;
  }

  /** Drops all IPC stream state (the gRPC stream ended or failed). */
  release(): void {
    for (const r of this.readers.values()) r.release();
    this.readers.clear();
    this.setDictBytes(0);
  }

  /** Moves the stream's dictionary bytes, and the receiver-wide budget with them. */
  private setDictBytes(n: number): void {
    if (this.budget) this.budget.used += n - this.dictBytes;
    this.dictBytes = n;
  }

  /** The byte limit a payload of this stream is checked against: its own, or what the receiver has left. */
  private dictionaryLimit(others: number): DictionaryByteLimit {
    const b = this.budget;
    if (b) {
      const left = b.max - (b.used - this.dictBytes); // what this stream may hold in all
      if (left < this.maxDictionaryBytes) return { others, max: Math.max(0, left), setting: 'max_total_dictionary_bytes, shared by all streams' };
    }
    return { others, max: this.maxDictionaryBytes };
  }

  /**
   * Decodes one batch. Throws OtapDecodeError (resourceExhausted=true when a limit was hit). After
   * most errors the stream state stays usable for later batches; after one with streamFatal (a
   * dictionary limit) the stream's state is released and every later batch is refused, since the
   * sender's dictionaries can no longer match ours. With `model` false the payloads are read (the
   * stream's dictionaries move on) and counted, but no model objects are built: for a batch that
   * is refused anyway.
   */
  consume(batch: BatchArrowRecords, model = true): DecodedSignal {
    if (this.failed) throw new OtapDecodeError(`stream already failed: ${this.failed.message}`, true, true);
    const payloads = batch.arrowPayloads;
    if (payloads.length === 0) {
      const s = this.expected ?? 'traces';
      return { signal: s, data: emptyData(s), items: 0 } as DecodedSignal;
    }
    const signal = signalOfRootType(payloads[0].type);
    if (!signal) {
      const name = PAYLOAD_TYPE_NAMES[payloads[0].type] ?? `unknown type ${payloads[0].type}`;
      throw new OtapDecodeError(`first payload must be the root table (SPANS, LOGS or UNIVARIATE_METRICS), got ${name}`);
    }
    if (this.expected && signal !== this.expected) {
      throw new OtapDecodeError(`${signal} payload on a ${this.expected} stream`);
    }
    const allowed = SIGNAL_TYPES[signal];
    const tables = new Map<number, DecodedBatch>();
    let budget = this.maxBatchBytes;
    for (const p of payloads) {
      if (p.type === P.MULTIVARIATE_METRICS) throw new OtapDecodeError('MULTIVARIATE_METRICS payloads are not supported');
      if (!allowed.has(p.type)) {
        const name = PAYLOAD_TYPE_NAMES[p.type] ?? `unknown payload type ${p.type}`;
        throw new OtapDecodeError(`payload type ${name} does not belong to ${signal}`);
      }
      if (tables.has(p.type)) throw new OtapDecodeError(`duplicate ${PAYLOAD_TYPE_NAMES[p.type]} payload in one batch`);
      const live = this.readers.get(p.type);
      let reader = live;
      if (!reader || reader.schemaId !== p.schemaId) {
        // A new schema_id starts a new IPC stream; the old one is replaced only once the new
        // one's first payload decoded, so a corrupt payload cannot break the live stream.
        reader = new IpcStreamReader(p.schemaId, {
          maxPayloadBytes: this.maxBatchBytes,
          maxDictionaryEntries: this.maxDictionaryEntries,
        });
      }
      // A reader being replaced does not count against the new one: it goes once this payload decoded.
      const others = this.dictBytes - (live?.dictionaryBytes ?? 0);
      let r;
      try {
        r = reader.readPayload(p.record, budget, this.dictionaryLimit(others));
      } catch (e) {
        const err = e as OtapDecodeError;
        const wrapped = new OtapDecodeError(`${PAYLOAD_TYPE_NAMES[p.type]} (schema ${p.schemaId}): ${err.message}`, err.resourceExhausted, err.streamFatal);
        if (wrapped.streamFatal) {
          this.failed = wrapped;
          this.release();
        }
        throw wrapped;
      }
      if (live && live !== reader) live.release();
      this.readers.set(p.type, reader);
      this.setDictBytes(others + reader.dictionaryBytes);
      budget -= r.used;
      tables.set(p.type, r.batch);
    }
    if (!model) return { signal, data: emptyData(signal), items: rootItems(signal, tables) } as DecodedSignal;
    let result: DecodedSignal;
    try {
      const items = rootItems(signal, tables);
      if (signal === 'traces') result = { signal, data: decodeTraces(tables), items };
      else if (signal === 'logs') result = { signal, data: decodeLogs(tables), items };
      else result = { signal, data: decodeMetrics(tables), items };
    } catch (e) {
      if (e instanceof OtapDecodeError) throw e;
      // Tables that decode on their own but do not fit together (bad ids, odd types).
      throw new OtapDecodeError(`malformed ${signal} batch: ${(e as Error).message}`);
    }
    return result;
  }
}

/** Spans, log records or metric data points of a batch, from its tables' row counts. */
function rootItems(signal: SignalType, tables: Map<number, DecodedBatch>): number {
  if (signal === 'traces') return tables.get(P.SPANS)!.length;
  if (signal === 'logs') return tables.get(P.LOGS)!.length;
  let items = 0;
  for (const t of [P.NUMBER_DATA_POINTS, P.SUMMARY_DATA_POINTS, P.HISTOGRAM_DATA_POINTS, P.EXP_HISTOGRAM_DATA_POINTS]) items += tables.get(t)?.length ?? 0;
  return items;
}

function emptyData(s: SignalType): TracesData | LogsData | MetricsData {
  if (s === 'traces') return { resourceSpans: [] };
  if (s === 'logs') return { resourceLogs: [] };
  return { resourceMetrics: [] };
}

export { ROOT_TYPE };

/** Most items (spans, log records, metrics) one OTAP batch can carry: ids are u16. */
export const MAX_BATCH_ITEMS = 65536;

/**
 * Splits a batch into batches of at most `maxItems` root items (spans, log records, metrics —
 * data points ride with their metric), keeping resource and scope grouping.
 */
export function splitBatch<S extends SignalType>(signal: S, data: SignalData[S], maxItems = MAX_BATCH_ITEMS): SignalData[S][] {
  const [rk, sk, ik] =
    signal === 'traces' ? ['resourceSpans', 'scopeSpans', 'spans'] : signal === 'logs' ? ['resourceLogs', 'scopeLogs', 'logRecords'] : ['resourceMetrics', 'scopeMetrics', 'metrics'];
  const resources = (data as unknown as Record<string, Record<string, unknown>[]>)[rk];
  let total = 0;
  for (const r of resources) for (const s of r[sk] as Record<string, unknown[]>[]) total += s[ik].length;
  if (total <= maxItems && resources.length <= maxItems) return [data];
  const out: SignalData[S][] = [];
  let cur: Record<string, unknown>[] = [];
  let count = 0;
  const flush = () => {
    if (cur.length) out.push({ [rk]: cur } as unknown as SignalData[S]);
    cur = [];
    count = 0;
  };
  for (const r of resources) {
    let rOut: Record<string, unknown> | null = null;
    for (const s of r[sk] as Record<string, unknown>[]) {
      const items = s[ik] as unknown[];
      let at = 0;
      while (at < items.length) {
        if (count >= maxItems || cur.length >= maxItems) {
          flush();
          rOut = null;
        }
        const take = Math.min(items.length - at, maxItems - count);
        if (!rOut) {
          rOut = { ...r, [sk]: [] };
          cur.push(rOut);
        }
        (rOut[sk] as unknown[]).push({ ...s, [ik]: items.slice(at, at + take) });
        at += take;
        count += take;
      }
    }
  }
  flush();
  return out;
}
