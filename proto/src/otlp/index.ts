// OTLP wire codecs: protobuf (binary) and OTLP/JSON, model in proto/src/model.ts.
export { ProtoDecodeError } from './errors.ts';
export { encodeTraces, encodeMetrics, encodeLogs, encodeSignal, encodeExportResponse, type ExportPartialSuccess } from './encode.ts';
export { decodeTraces, decodeMetrics, decodeLogs, decodeSignal, decodeExportResponse, MAX_ANY_DEPTH } from './decode.ts';
export {
  encodeJson,
  decodeJson,
  signalToJson,
  signalFromJson,
  tracesToJson,
  tracesFromJson,
  metricsToJson,
  metricsFromJson,
  logsToJson,
  logsFromJson,
} from './json.ts';
