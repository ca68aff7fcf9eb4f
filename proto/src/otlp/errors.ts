// The one error a decoder throws for bad input, so receivers can map it to INVALID_ARGUMENT / HTTP 400
// without catching unrelated bugs (TypeError, RangeError) by accident.

export class ProtoDecodeError extends Error {
  readonly code = 'INVALID_PROTO' as const;
  /** Byte offset (binary) where decoding stopped, or -1 when not applicable (JSON). */
  readonly offset: number;
  constructor(message: string, offset = -1) {
    super(message);
    this.name = 'ProtoDecodeError';
    this.offset = offset;
  }
}
