// One OTAP table (payload type) on the sending side: its column builders plus the state of the IPC
// stream that carries it within one gRPC stream (schema, schema_id, dictionaries sent so far).
import { Schema } from 'apache-arrow';
import { ColumnBuilder, ListBuilder, StructBuilder, markInSchema, type SchemaContext } from './columns.ts';
import { IpcStreamWriter, type ColumnParts, type DictionaryPart, type IpcCompression } from './ipc.ts';
import type { ArrowPayload } from './messages.ts';

export interface EncodeOptions {
  compression: IpcCompression;
  zstdLevel: number;
}

/** Hands out schema ids unique within one producer (Go uses a per-producer counter too). */
export class SchemaIdSource {
  private next = 0;
  take(): string {
    return String(this.next++);
  }
}

function needsNewSchema(c: ColumnBuilder): boolean {
  if (c.wanted() && !c.inSchema) return true;
  if (c instanceof StructBuilder && c.inSchema) return c.children.some(needsNewSchema);
  if (c instanceof ListBuilder && c.inSchema) return needsNewSchema(c.item);
  return false;
}

export class TableEncoder {
  private writer: IpcStreamWriter | null = null;
  private schemaId = '';
  /** Number of schema resets (new IPC streams) this table went through; for tests and metrics. */
  resets = 0;

  constructor(
    readonly payloadType: number,
    readonly columns: ColumnBuilder[],
    private readonly ids: SchemaIdSource,
    private readonly opts: EncodeOptions,
  ) {}

  get rows(): number {
    return this.columns[0].n;
  }

  reset(): void {
    for (const c of this.columns) c.reset();
  }

  /** Builds the payload for the rows appended since reset(); null when the table is empty. */
  finish(): ArrowPayload | null {
    const rows = this.rows;
    if (rows === 0) return null;
    for (const c of this.columns) {
      if (c.n !== rows) throw new Error(`internal: column ${c.name} has ${c.n} rows, table ${rows}`);
    }
    let fresh = false;
    if (this.writer === null || this.columns.some((c) => needsNewSchema(c) || (c.inSchema && c.overflowed()))) {
      this.newStream();
      fresh = true;
    }
    const dicts: DictionaryPart[] = [];
    const parts: ColumnParts = { nodes: [], buffers: [] };
    for (const c of this.columns) {
      if (!c.inSchema) continue;
      c.dictionaries(dicts, fresh);
      c.emit(parts);
    }
    const record = this.writer!.writePayload(rows, parts, dicts);
    return { schemaId: this.schemaId, type: this.payloadType, record };
  }

  private newStream(): void {
    if (this.writer !== null) this.resets++;
    const ctx: SchemaContext = { nextDictId: 0 };
    const fields = [];
    for (const c of this.columns) {
      c.restart();
      markInSchema(c, c.wanted());
      if (c.inSchema) fields.push(c.field(ctx));
    }
    this.schemaId = this.ids.take();
    this.writer = new IpcStreamWriter(new Schema(fields), this.opts.compression, this.opts.zstdLevel);
  }
}
