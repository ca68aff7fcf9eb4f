// Columns every root table shares: the `resource` and `scope` structs (ids delta-encoded, each
// pointing at RESOURCE_ATTRS / SCOPE_ATTRS rows) and the item-level `schema_url`.
import { emptyResource, emptyScope, type InstrumentationScope, type KeyValue, type Resource } from '../model.ts';
import { DictBuilder, PrimBuilder, StructBuilder } from './columns.ts';
import { AttrsEncoder, decodeAttrs, type AttrLists } from './attrs.ts';
import { ArrowPayloadType } from './messages.ts';
import type { EncodeOptions, SchemaIdSource } from './table.ts';
import type { Column, DecodedBatch } from './ipc.ts';
import { colStr, colUint } from './read.ts';

export class ResourceScopeColumns {
  readonly resId = new PrimBuilder('id', 'u16');
  readonly resSchemaUrl = new DictBuilder<string>('schema_url', 'utf8');
  readonly resDropped = new PrimBuilder('dropped_attributes_count', 'u32');
  readonly resource = new StructBuilder('resource', [this.resId, this.resSchemaUrl, this.resDropped]);
  readonly scopeId = new PrimBuilder('id', 'u16');
  readonly scopeName = new DictBuilder<string>('name', 'utf8');
  readonly scopeVersion = new DictBuilder<string>('version', 'utf8');
  readonly scopeDropped = new PrimBuilder('dropped_attributes_count', 'u32');
  readonly scope = new StructBuilder('scope', [this.scopeId, this.scopeName, this.scopeVersion, this.scopeDropped]);
  readonly schemaUrl = new DictBuilder<string>('schema_url', 'utf8');

  readonly resourceAttrs: AttrsEncoder;
  readonly scopeAttrs: AttrsEncoder;

  private resCount = 0;
  private scopeCount = 0;
  private prevRes = 0;
  private prevScope = 0;
  private curRes = -1;
  private curScope = -1;
  private resUrl = '';
  private resDrop = 0;
  private scope_: InstrumentationScope = emptyScope();
  private itemUrl = '';

  constructor(ids: SchemaIdSource, opts: EncodeOptions) {
    this.resourceAttrs = new AttrsEncoder(ArrowPayloadType.RESOURCE_ATTRS, 16, ids, opts);
    this.scopeAttrs = new AttrsEncoder(ArrowPayloadType.SCOPE_ATTRS, 16, ids, opts);
  }

  beginResource(r: Resource, schemaUrl: string): void {
    if (this.resCount > 0xffff) throw new RangeError('OTAP batch holds more than 65536 resources');
    this.curRes = this.resCount++;
    this.resUrl = schemaUrl;
    this.resDrop = r.droppedAttributesCount;
    this.resourceAttrs.add(this.curRes, r.attributes);
  }

  beginScope(s: InstrumentationScope, schemaUrl: string): void {
    if (this.scopeCount > 0xffff) throw new RangeError('OTAP batch holds more than 65536 scopes');
    this.curScope = this.scopeCount++;
    this.scope_ = s;
    this.itemUrl = schemaUrl;
    this.scopeAttrs.add(this.curScope, s.attributes);
  }

  /** One row's worth of the shared columns (call once per root row). */
  appendRow(): void {
    this.resource.appendValid();
    this.resId.append(this.curRes - this.prevRes);
    this.prevRes = this.curRes;
    if (this.resUrl) this.resSchemaUrl.appendString(this.resUrl);
    else this.resSchemaUrl.appendNull();
    if (this.resDrop) this.resDropped.append(this.resDrop);
    else this.resDropped.appendNull();
    this.scope.appendValid();
    this.scopeId.append(this.curScope - this.prevScope);
    this.prevScope = this.curScope;
    const s = this.scope_;
    if (s.name) this.scopeName.appendString(s.name);
    else this.scopeName.appendNull();
    if (s.version) this.scopeVersion.appendString(s.version);
    else this.scopeVersion.appendNull();
    if (s.droppedAttributesCount) this.scopeDropped.append(s.droppedAttributesCount);
    else this.scopeDropped.appendNull();
    if (this.itemUrl) this.schemaUrl.appendString(this.itemUrl);
    else this.schemaUrl.appendNull();
  }

  /** Direct-write mode (see ColumnBuilder.reserveRows): the root table has `n` rows. */
  reserve(n: number): void {
    this.resource.reserve(n);
    this.resId.reserve(n, true);
    this.resSchemaUrl.reserve(n);
    this.resDropped.reserve(n);
    this.scope.reserve(n);
    this.scopeId.reserve(n, true);
    this.scopeName.reserve(n);
    this.scopeVersion.reserve(n);
    this.scopeDropped.reserve(n);
    this.schemaUrl.reserve(n);
  }

  /** Direct-write mode: rows [from, to) belong to the current resource and scope (appendRow per row). */
  fillRows(from: number, to: number): void {
    if (from >= to) return;
    this.resId.fillRows(from, from + 1, this.curRes - this.prevRes, false);
    this.resId.fillRows(from + 1, to, 0, false);
    this.prevRes = this.curRes;
    this.resSchemaUrl.fillString(from, to, this.resUrl);
    this.resDropped.fillRows(from, to, this.resDrop, true);
    this.scopeId.fillRows(from, from + 1, this.curScope - this.prevScope, false);
    this.scopeId.fillRows(from + 1, to, 0, false);
    this.prevScope = this.curScope;
    const s = this.scope_;
    this.scopeName.fillString(from, to, s.name);
    this.scopeVersion.fillString(from, to, s.version);
    this.scopeDropped.fillRows(from, to, s.droppedAttributesCount, true);
    this.schemaUrl.fillString(from, to, this.itemUrl);
  }

  /** Direct-write mode: null counts after fillRows. */
  seal(): void {
    this.resource.seal();
    this.scope.seal();
    this.schemaUrl.seal();
  }

  resetBatch(): void {
    this.resourceAttrs.discard();
    this.scopeAttrs.discard();
    this.resCount = this.scopeCount = 0;
    this.prevRes = this.prevScope = 0;
    this.curRes = this.curScope = -1;
  }
}

// ------------------------------------------------------------------ decoding

export interface ResourceScopeReader {
  /** Resource and scope of row i, plus the keys that tell when a new group starts. */
  read(i: number): void;
  resId: number;
  scopeId: number;
  resource(): { resource: Resource; schemaUrl: string };
  scope(): InstrumentationScope;
  schemaUrl(i: number): string;
}

export function resourceScopeReader(
  batch: DecodedBatch,
  resAttrs: AttrLists,
  scopeAttrs: AttrLists,
): ResourceScopeReader {
  const res = batch.columns.get('resource');
  const scope = batch.columns.get('scope');
  const itemUrl = batch.columns.get('schema_url');
  const rId = res?.child('id'), rUrl = res?.child('schema_url'), rDrop = res?.child('dropped_attributes_count');
  const sId = scope?.child('id'), sName = scope?.child('name'), sVer = scope?.child('version');
  const sDrop = scope?.child('dropped_attributes_count');
  let resId = 0, scopeId = 0, row = 0;
  const str = (c: Column | undefined, i: number) => (c && c.isValid(i) ? colStr(c, i) : '');
  const num = (c: Column | undefined, i: number) => (c && c.isValid(i) ? colUint(c, i) : 0);
  return {
    get resId() {
      return resId;
    },
    get scopeId() {
      return scopeId;
    },
    read(i: number) {
      row = i;
      if (rId && rId.isValid(i)) resId = (resId + colUint(rId, i)) & 0xffff;
      if (sId && sId.isValid(i)) scopeId = (scopeId + colUint(sId, i)) & 0xffff;
    },
    resource() {
      const r = emptyResource();
      r.attributes = resAttrs.get(resId) ?? [];
      r.droppedAttributesCount = num(rDrop, row);
      return { resource: r, schemaUrl: str(rUrl, row) };
    },
    scope() {
      return {
        name: str(sName, row),
        version: str(sVer, row),
        attributes: scopeAttrs.get(scopeId) ?? [],
        droppedAttributesCount: num(sDrop, row),
      };
    },
    schemaUrl(i: number) {
      return str(itemUrl, i);
    },
  };
}

const NO_ATTRS: AttrLists = { get: () => undefined };

export function attrsOrEmpty(batch: DecodedBatch | undefined, what: string): AttrLists {
  return batch ? decodeAttrs(batch, what) : NO_ATTRS;
}
