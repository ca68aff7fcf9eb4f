// A minimal BTF editor for tests: takes this kernel's vmlinux BTF and reshapes a few types the
// way older kernels have them, so a CO-RE object can be relocated (libbpf btf_custom_path) against
// "an older kernel" while it still loads and attaches on this one. Only what the probes' CO-RE
// guards look at is changed; everything else (task_struct, sock, ...) stays this kernel's.
import { readFileSync } from 'node:fs';

const BTF_MAGIC = 0xeb9f;
const KIND = { INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10,
  RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19 } as const;

interface TypeRef { id: number; off: number; kind: number; vlen: number; nameOff: number }

/** Size of a type record after its 12-byte common header. */
function extraBytes(kind: number, vlen: number): number {
  switch (kind) {
    case KIND.INT: case KIND.VAR: case KIND.DECL_TAG: return 4;
    case KIND.ARRAY: return 12;
    case KIND.STRUCT: case KIND.UNION: case KIND.DATASEC: case KIND.ENUM64: return vlen * 12;
    case KIND.ENUM: case KIND.FUNC_PROTO: return vlen * 8;
    case KIND.PTR: case KIND.FWD: case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST: case KIND.RESTRICT:
    case KIND.FUNC: case KIND.FLOAT: case KIND.TYPE_TAG: return 0;
    default: throw new Error(`BTF kind ${kind} unknown to this editor`);
  }
}

export class BtfEditor {
  readonly types: Buffer;
  #strings: Buffer;
  #extraStrings: Buffer[] = [];
  #extraStrLen = 0;
  #extraTypes: Buffer[] = [];
  readonly refs: TypeRef[] = [];
  #hdrLen: number;

  constructor(raw: Buffer) {
    if (raw.readUInt16LE(0) !== BTF_MAGIC) throw new Error('not little-endian BTF');
    this.#hdrLen = raw.readUInt32LE(4);
    const typeOff = raw.readUInt32LE(8), typeLen = raw.readUInt32LE(12);
    const strOff = raw.readUInt32LE(16), strLen = raw.readUInt32LE(20);
    this.types = Buffer.from(raw.subarray(this.#hdrLen + typeOff, this.#hdrLen + typeOff + typeLen));
    this.#strings = Buffer.from(raw.subarray(this.#hdrLen + strOff, this.#hdrLen + strOff + strLen));
    for (let off = 0, id = 1; off < this.types.length; id++) {
      const nameOff = this.types.readUInt32LE(off);
      const info = this.types.readUInt32LE(off + 4);
      const kind = (info >>> 24) & 0x1f, vlen = info & 0xffff;
      this.refs.push({ id, off, kind, vlen, nameOff });
      off += 12 + extraBytes(kind, vlen);
    }
  }

  static fromFile(path = '/sys/kernel/btf/vmlinux'): BtfEditor {
    return new BtfEditor(readFileSync(path));
  }

  name(off: number): string {
    if (off >= this.#strings.length) {
      let base = this.#strings.length;
      for (const s of this.#extraStrings) {
        if (off < base + s.length) return s.subarray(off - base, s.indexOf(0, off - base)).toString();
        base += s.length;
      }
      throw new Error(`string offset ${off} out of range`);
    }
    return this.#strings.subarray(off, this.#strings.indexOf(0, off)).toString();
  }

  addString(s: string): number {
    const off = this.#strings.length + this.#extraStrLen;
    const b = Buffer.from(`${s}\0`);
    this.#extraStrings.push(b);
    this.#extraStrLen += b.length;
    return off;
  }

  find(kind: number, name: string): TypeRef[] {
    return this.refs.filter((r) => r.kind === kind && this.name(r.nameOff) === name);
  }

  findOne(kind: number, name: string): TypeRef {
    const all = this.find(kind, name);
    if (all.length !== 1) throw new Error(`${all.length} BTF types of kind ${kind} named ${name}`);
    return all[0]!;
  }

  /** struct/union members: [offset of the member record, name, type id] */
  members(t: TypeRef): { rec: number; name: string; type: number }[] {
    const out = [];
    for (let i = 0; i < t.vlen; i++) {
      const rec = t.off + 12 + i * 12;
      out.push({ rec, name: this.name(this.types.readUInt32LE(rec)), type: this.types.readUInt32LE(rec + 4) });
    }
    return out;
  }

  kindOf(id: number): number {
    return this.refs[id - 1]!.kind;
  }

  rename(t: TypeRef, name: string): void {
    this.types.writeUInt32LE(this.addString(name), t.off);
  }

  renameMember(rec: number, name: string): void {
    this.types.writeUInt32LE(this.addString(name), rec);
  }

  setMemberType(rec: number, type: number): void {
    this.types.writeUInt32LE(type, rec + 4);
  }

  /** Appends a raw type record; returns its id. */
  addType(rec: Buffer): number {
    this.#extraTypes.push(rec);
    return this.refs.length + this.#extraTypes.length;
  }

  addArray(elem: number, index: number, n: number): number {
    const b = Buffer.alloc(24);
    b.writeUInt32LE(0, 0);
    b.writeUInt32LE(KIND.ARRAY << 24, 4);
    b.writeUInt32LE(0, 8);
    b.writeUInt32LE(elem, 12);
    b.writeUInt32LE(index, 16);
    b.writeUInt32LE(n, 20);
    return this.addType(b);
  }

  addStruct(name: string, size: number, members: { name: string; type: number; bitOffset: number }[]): number {
    const b = Buffer.alloc(12 + 12 * members.length);
    b.writeUInt32LE(this.addString(name), 0);
    b.writeUInt32LE((KIND.STRUCT << 24) | members.length, 4);
    b.writeUInt32LE(size, 8);
    members.forEach((m, i) => {
      b.writeUInt32LE(this.addString(m.name), 12 + i * 12);
      b.writeUInt32LE(m.type, 16 + i * 12);
      b.writeUInt32LE(m.bitOffset, 20 + i * 12);
    });
    return this.addType(b);
  }

  toBuffer(): Buffer {
    const types = Buffer.concat([this.types, ...this.#extraTypes]);
    const strings = Buffer.concat([this.#strings, ...this.#extraStrings]);
    const hdr = Buffer.alloc(24);
    hdr.writeUInt16LE(BTF_MAGIC, 0);
    hdr.writeUInt8(1, 2);
    hdr.writeUInt8(0, 3);
    hdr.writeUInt32LE(24, 4);
    hdr.writeUInt32LE(0, 8);
    hdr.writeUInt32LE(types.length, 12);
    hdr.writeUInt32LE(types.length, 16);
    hdr.writeUInt32LE(strings.length, 20);
    return Buffer.concat([hdr, types, strings]);
  }
}

export { KIND as BTF_KIND };

/**
 * This kernel's BTF with the shapes the proc probe's CO-RE guards tell apart set as on a 5.x/6.1
 * kernel: no trace_event_raw_sched_process_exit (sched_process_exit had no group_dead argument
 * before 6.16), trace_event_raw_mark_victim with only its pid (mark_victim(int pid) before 6.8),
 * and mm_struct.rss_stat as a struct mm_rss_stat of atomic_long_t counters (before 6.2).
 */
export function olderKernelBtf(src = BtfEditor.fromFile()): Buffer {
  const b = src;
  b.rename(b.findOne(KIND.STRUCT, 'trace_event_raw_sched_process_exit'), 'ks_test_gone_trace_event_raw_sched_process_exit');
  const mv = b.findOne(KIND.STRUCT, 'trace_event_raw_mark_victim');
  for (const m of b.members(mv)) if (!['ent', 'pid', '__data'].includes(m.name)) b.renameMember(m.rec, `ks_test_gone_${m.name}`);
  const atomicLong = b.findOne(KIND.TYPEDEF, 'atomic_long_t').id;
  const int = b.find(KIND.INT, 'int')[0]!.id;
  const counts = b.addArray(atomicLong, int, 4);
  const rssStat = b.addStruct('mm_rss_stat', 32, [{ name: 'count', type: counts, bitOffset: 0 }]);
  let changed = 0;
  for (const t of b.refs) {
    if (t.kind !== KIND.STRUCT) continue;
    for (const m of b.members(t)) {
      if (m.name === 'rss_stat' && b.kindOf(m.type) === KIND.ARRAY) { b.setMemberType(m.rec, rssStat); changed++; }
    }
  }
  if (changed !== 1) throw new Error(`expected one array-typed rss_stat member (mm_struct), found ${changed}`);
  return b.toBuffer();
}
