// The shape every event source (live ring buffers, recorded fixtures) feeds downstream: one call
// per batch of raw records, packed as [u32 length][u32 0][record bytes][pad to 8].

/** Where a record's fields sit, taken from the object's BTF (enough to count without decoders). */
export interface RecordLayout {
  struct: string;
  size: number;
  /** byte offset of a u32 tgid/pid member, if the record has one */
  pidOffset?: number;
  /** byte offset and size (1, 2 or 4) of a type/kind member, if any */
  typeOffset?: number;
  typeSize?: number;
}

export interface SourceProbe {
  /** small integer, stable within one source (and one fixture file) */
  id: number;
  name: string;
  layout?: RecordLayout;
  /** 'kernel-events': records decode with agent/src/decode's EventDecoder */
  decoder?: 'kernel-events';
}

/**
 * One batch: `buf` holds `count` packed records in its first `byteLength` bytes. The buffer is
 * reused after the call returns; copy what you keep.
 */
export type SourceBatchHandler = (buf: ArrayBuffer, byteLength: number, count: number, probe: SourceProbe) => void;

export interface BatchSource {
  readonly probes: readonly SourceProbe[];
  /** Starts delivering batches. */
  start(onBatch: SourceBatchHandler): Promise<void>;
  /** Stops; resolves once every batch already handed over was delivered. Idempotent. */
  stop(): Promise<void>;
}

/** Walks the packed records of a batch: calls fn(offset of record bytes, length) for each. */
export function forEachRecord(view: DataView, byteLength: number, count: number,
  fn: (recordOffset: number, length: number) => void): void {
  let off = 0;
  for (let i = 0; i < count && off + 8 <= byteLength; i++) {
    const len = view.getUint32(off, true);
    fn(off + 8, len);
    off += 8 + ((len + 7) & ~7);
  }
}
