// Public surface of the kernel event decoder.
export * from './layouts.ts';
export { verifyLayout, verifyProbeLayouts, LayoutMismatchError, type BtfSource, type BtfStructInfo } from './verify.ts';
export {
  EventDecoder, decodeAll, frameRecords, splitRecords, TcpEventView, ProcEventView, ExecEventView,
  type EventVisitor, type DecodeStats, type EventDecoderOptions, type EventHeader,
  type TcpEvent, type ProcEvent, type ExecEvent, type KernelEvent,
} from './decoder.ts';
export { CommCache, decodeFixedString } from './comm-cache.ts';
export { errnoName, formatAddress } from './format.ts';
