// The batch codec persistent queues use: OTLP protobuf, the same bytes as on the wire.
import { decodeSignal, encodeSignal } from '../../../proto/src/otlp/index.ts';
import type { BatchCodec } from './index.ts';

export const otlpBatchCodec: BatchCodec = {
  encode: (signal, batch) => encodeSignal(signal, batch),
  decode: (signal, bytes) => decodeSignal(signal, bytes),
};
