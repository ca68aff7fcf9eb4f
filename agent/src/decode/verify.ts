// Startup check: the hand-mirrored layouts (layouts.ts) must match the structs in the loaded
// object's BTF, member by member. A mismatch names the struct and the field.
import type { StructLayout } from './layouts.ts';
import { PROBE_LAYOUTS } from './layouts.ts';

/** Shape returned by BpfObject.btfStruct(name). */
export interface BtfStructInfo {
  size: number;
  members: readonly { name: string; offsetBits: number; sizeBits: number }[];
}

/** Anything that can describe a struct from BTF (BpfObject, or a test double). */
export interface BtfSource {
  btfStruct(name: string): BtfStructInfo | null;
}

export class LayoutMismatchError extends Error {
  readonly code = 'LAYOUT_MISMATCH';
  constructor(readonly struct: string, readonly field: string | undefined, detail: string) {
    super(`event layout mismatch in struct ${struct}${field ? ` field ${field}` : ''}: ${detail}`);
    this.name = 'LayoutMismatchError';
  }
}

/** Throws LayoutMismatchError unless `btf` describes exactly `layout`. */
export function verifyLayout(layout: StructLayout, btf: BtfStructInfo | null): void {
  if (!btf) {
    throw new LayoutMismatchError(layout.name, undefined,
      'struct not found in the object BTF (stale or foreign object?)');
  }
  if (btf.size !== layout.size) {
    throw new LayoutMismatchError(layout.name, undefined, `size is ${btf.size} bytes in BTF, decoder expects ${layout.size}`);
  }
  const seen = new Set<string>();
  for (const m of btf.members) {
    seen.add(m.name);
    const want = (layout.fields as Record<string, { offset: number; size: number } | undefined>)[m.name];
    if (!want) throw new LayoutMismatchError(layout.name, m.name, 'member present in BTF but unknown to the decoder');
    if (m.offsetBits % 8 !== 0 || m.sizeBits % 8 !== 0) {
      throw new LayoutMismatchError(layout.name, m.name, `is a bitfield (offset ${m.offsetBits} bits, size ${m.sizeBits} bits)`);
    }
    if (m.offsetBits / 8 !== want.offset) {
      throw new LayoutMismatchError(layout.name, m.name, `offset is ${m.offsetBits / 8} in BTF, decoder expects ${want.offset}`);
    }
    if (m.sizeBits / 8 !== want.size) {
      throw new LayoutMismatchError(layout.name, m.name, `size is ${m.sizeBits / 8} in BTF, decoder expects ${want.size}`);
    }
  }
  for (const name of Object.keys(layout.fields)) {
    if (!seen.has(name)) throw new LayoutMismatchError(layout.name, name, 'member expected by the decoder is missing from BTF');
  }
}

/** Verifies every layout a probe's object must carry ('tcp' or 'proc'). */
export function verifyProbeLayouts(probe: keyof typeof PROBE_LAYOUTS, src: BtfSource): void {
  for (const layout of PROBE_LAYOUTS[probe]) verifyLayout(layout, src.btfStruct(layout.name));
}
