// Logs ↔ OTAP tables: LOGS (root), LOG_ATTRS, RESOURCE_ATTRS, SCOPE_ATTRS. The `body` struct
// uses the same type-tagged columns as attributes (go/pkg/otel/logs/arrow/logs.go).
import type { LogRecord, LogsData, ResourceLogs, ScopeLogs } from '../model.ts';
import { BoolBuilder, DictBuilder, FsbBuilder, PrimBuilder, StructBuilder, VarBuilder } from './columns.ts';
import { AttrsEncoder, ValueType, anyValueAt, valueTypeOf } from './attrs.ts';
import { ResourceScopeColumns, attrsOrEmpty, resourceScopeReader } from './common.ts';
import { ArrowPayloadType as P, type ArrowPayload } from './messages.ts';
import { TableEncoder, type EncodeOptions, SchemaIdSource } from './table.ts';
import { cborEncode } from './cbor.ts';
import { OtapDecodeError, type DecodedBatch } from './ipc.ts';
import { DeltaIds, colBig, colStr, colUint, optId } from './read.ts';


export class LogsEncoder {
  private readonly rs: ResourceScopeColumns;
  private readonly id = new PrimBuilder('id', 'u16');
  private readonly time = new PrimBuilder('time_unix_nano', 'ts');
  private readonly observed = new PrimBuilder('observed_time_unix_nano', 'ts');
  private readonly traceId = new FsbBuilder('trace_id', 16);
  private readonly spanId = new FsbBuilder('span_id', 8);
  private readonly sevNum = new PrimBuilder('severity_number', 'i32');
  private readonly sevText = new DictBuilder<string>('severity_text', 'utf8');
  private readonly bType = new PrimBuilder('type', 'u8');
  private readonly bStr = new DictBuilder<string>('str', 'utf8');
  private readonly bInt = new PrimBuilder('int', 'i64');
  private readonly bDouble = new PrimBuilder('double', 'f64');
  private readonly bBool = new BoolBuilder('bool');
  private readonly bBytes = new VarBuilder('bytes', true);
  private readonly bSer = new VarBuilder('ser', true);
  private readonly body = new StructBuilder('body', [this.bType, this.bStr, this.bInt, this.bDouble, this.bBool, this.bBytes, this.bSer]);
  private readonly dropped = new PrimBuilder('dropped_attributes_count', 'u32');
  private readonly flags = new PrimBuilder('flags', 'u32');
  private readonly eventName = new DictBuilder<string>('event_name', 'utf8');
  private readonly logs: TableEncoder;
  private readonly logAttrs: AttrsEncoder;

  constructor(ids: SchemaIdSource, opts: EncodeOptions) {
    this.rs = new ResourceScopeColumns(ids, opts);
    this.logs = new TableEncoder(
      P.LOGS,
      [
        this.id, this.rs.resource, this.rs.scope, this.rs.schemaUrl, this.time, this.observed, this.traceId, this.spanId,
        this.sevNum, this.sevText, this.body, this.dropped, this.flags, this.eventName,
      ],
      ids,
      opts,
    );
    this.logAttrs = new AttrsEncoder(P.LOG_ATTRS, 16, ids, opts);
  }

  encode(data: LogsData): ArrowPayload[] {
    let row = 0;
    try {
      for (const rl of data.resourceLogs) {
        this.rs.beginResource(rl.resource, rl.schemaUrl);
        for (const sl of rl.scopeLogs) {
          this.rs.beginScope(sl.scope, sl.schemaUrl);
          for (const r of sl.logRecords) {
            if (row > 0xffff) throw new RangeError('OTAP batch holds more than 65536 log records; split it');
            this.append(r, row++);
          }
        }
      }
      const out: ArrowPayload[] = [];
      for (const p of [this.logs.finish(), this.rs.resourceAttrs.finish(), this.rs.scopeAttrs.finish(), this.logAttrs.finish()]) {
        if (p) out.push(p);
      }
      return out;
    } finally {
      this.logs.reset();
      this.logAttrs.discard();
      this.rs.resetBatch();
    }
  }

  private append(r: LogRecord, row: number): void {
    this.id.append(row === 0 ? 0 : 1);
    this.rs.appendRow();
    if (r.timeUnixNano) this.time.appendBig(r.timeUnixNano);
    else this.time.appendNull();
    if (r.observedTimeUnixNano) this.observed.appendBig(r.observedTimeUnixNano);
    else this.observed.appendNull();
    if (r.traceId.length) this.traceId.append(r.traceId);
    else this.traceId.appendNull();
    if (r.spanId.length) this.spanId.append(r.spanId);
    else this.spanId.appendNull();
    if (r.severityNumber) this.sevNum.append(r.severityNumber);
    else this.sevNum.appendNull();
    if (r.severityText) this.sevText.appendString(r.severityText);
    else this.sevText.appendNull();
    const v = r.body;
    const t = valueTypeOf(v);
    this.body.appendValid();
    this.bType.append(t);
    if (t === ValueType.Str) this.bStr.appendString(v as string);
    else this.bStr.appendNull();
    if (t === ValueType.Int) this.bInt.appendBig(v as bigint);
    else this.bInt.appendNull();
    if (t === ValueType.Double) this.bDouble.append(v as number);
    else this.bDouble.appendNull();
    if (t === ValueType.Bool) this.bBool.append(v as boolean);
    else this.bBool.appendNull();
    if (t === ValueType.Bytes) this.bBytes.appendBytes(v as Uint8Array);
    else this.bBytes.appendNull();
    if (t === ValueType.Map || t === ValueType.Slice) this.bSer.appendBytes(cborEncode(v));
    else this.bSer.appendNull();
    if (r.droppedAttributesCount) this.dropped.append(r.droppedAttributesCount);
    else this.dropped.appendNull();
    if (r.flags) this.flags.append(r.flags);
    else this.flags.appendNull();
    if (r.eventName) this.eventName.appendString(r.eventName);
    else this.eventName.appendNull();
    if (r.attributes.length) this.logAttrs.add(row, r.attributes);
  }

  resets(): number {
    return this.logs.resets + this.logAttrs.table.resets;
  }
}

export function decodeLogs(tables: Map<number, DecodedBatch>): LogsData {
  const logs = tables.get(P.LOGS);
  if (!logs) throw new OtapDecodeError('logs batch has no LOGS payload');
  const resAttrs = attrsOrEmpty(tables.get(P.RESOURCE_ATTRS), 'RESOURCE_ATTRS');
  const scopeAttrs = attrsOrEmpty(tables.get(P.SCOPE_ATTRS), 'SCOPE_ATTRS');
  const logAttrs = attrsOrEmpty(tables.get(P.LOG_ATTRS), 'LOG_ATTRS');
  const c = logs.columns;
  const idCol = c.get('id');
  const time = c.get('time_unix_nano'), observed = c.get('observed_time_unix_nano');
  const traceId = c.get('trace_id'), spanId = c.get('span_id');
  const sevNum = c.get('severity_number'), sevText = c.get('severity_text');
  const body = c.get('body');
  const bType = body?.child('type');
  const bStr = body?.child('str'), bInt = body?.child('int'), bDbl = body?.child('double');
  const bBool = body?.child('bool'), bBytes = body?.child('bytes'), bSer = body?.child('ser');
  const dropped = c.get('dropped_attributes_count'), flags = c.get('flags'), eventName = c.get('event_name');
  const rs = resourceScopeReader(logs, resAttrs, scopeAttrs);
  const ids = new DeltaIds();
  const out: LogsData = { resourceLogs: [] };
  let curRes: ResourceLogs | null = null;
  let curScope: ScopeLogs | null = null;
  let prevRes = -1, prevScope = -1;
  for (let i = 0; i < logs.length; i++) {
    rs.read(i);
    if (curRes === null || rs.resId !== prevRes) {
      const r = rs.resource();
      curRes = { resource: r.resource, scopeLogs: [], schemaUrl: r.schemaUrl };
      out.resourceLogs.push(curRes);
      prevRes = rs.resId;
      curScope = null;
    }
    if (curScope === null || rs.scopeId !== prevScope) {
      curScope = { scope: rs.scope(), logRecords: [], schemaUrl: rs.schemaUrl(i) };
      curRes.scopeLogs.push(curScope);
      prevScope = rs.scopeId;
    }
    const id = ids.next(idCol, i);
    const bt = bType && bType.isValid(i) && body!.isValid(i) ? colUint(bType, i) : 0;
    const rec: LogRecord = {
      timeUnixNano: time && time.isValid(i) ? colBig(time, i) : 0n,
      observedTimeUnixNano: observed && observed.isValid(i) ? colBig(observed, i) : 0n,
      severityNumber: sevNum && sevNum.isValid(i) ? colUint(sevNum, i) : 0,
      severityText: sevText && sevText.isValid(i) ? colStr(sevText, i) : '',
      body: anyValueAt(bt, i, bStr, bInt, bDbl, bBool, bBytes, bSer, 'LOGS body'),
      attributes: (id >= 0 && logAttrs.get(id)) || [],
      droppedAttributesCount: dropped && dropped.isValid(i) ? colUint(dropped, i) : 0,
      flags: flags && flags.isValid(i) ? colUint(flags, i) : 0,
      traceId: optId(traceId, i),
      spanId: optId(spanId, i),
      eventName: eventName && eventName.isValid(i) ? colStr(eventName, i) : '',
    };
    curScope.logRecords.push(rec);
  }
  return out;
}
