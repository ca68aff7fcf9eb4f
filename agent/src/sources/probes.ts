// The probes the agent knows by name: which object, which ring buffer, which record struct.
// The record struct lets record/replay find pid and type fields through BTF before decoders exist.
import { existsSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BpfObject } from '../bpf/object.ts';
import type { RecordLayout } from './types.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export interface ProbeSpec {
  name: string;
  /** object path, relative to the repository root unless absolute */
  object: string;
  /** ring buffer map; default: the object's only ring buffer */
  ringMap?: string;
  /** candidate BTF struct names of the record, first found wins */
  recordStructs: string[];
  /** globals set before load */
  globals?: Record<string, number | bigint | boolean>;
  /** optional programs switched on (autoload) */
  enable?: string[];
  /** records are decodable by agent/src/decode's EventDecoder */
  decoder?: 'kernel-events';
}

export const knownProbes: Record<string, ProbeSpec> = {
  // every tcp/proc record starts with struct ks_event_header (bpf/include/event_common.h)
  tcp: { name: 'tcp', object: 'bpf/tcp/tcp.bpf.o', ringMap: 'events', recordStructs: ['ks_event_header'], decoder: 'kernel-events' },
  proc: { name: 'proc', object: 'bpf/proc/proc.bpf.o', ringMap: 'events', recordStructs: ['ks_event_header'], decoder: 'kernel-events' },
  selftest: { name: 'selftest', object: 'bpf/selftest/selftest.bpf.o', ringMap: 'events', recordStructs: ['selftest_event'] },
};

export function objectPath(spec: ProbeSpec): string {
  return resolve(repoRoot, spec.object);
}

export function probeAvailable(spec: ProbeSpec): boolean {
  return existsSync(objectPath(spec));
}

/** The ring buffer map to read: the spec's, or the only ring buffer in the object. */
export function ringMapOf(obj: BpfObject, spec: ProbeSpec): string {
  if (spec.ringMap) return spec.ringMap;
  const rings = obj.maps().filter((m) => m.type === 'ringbuf');
  if (rings.length !== 1) {
    throw new Error(`probe ${spec.name}: ${rings.length} ring buffers in ${spec.object}; name one in ringMap`);
  }
  return rings[0]!.name;
}

const pidNames = ['tgid', 'pid'];
const typeNames = ['type', 'kind', 'event_type'];

/** The record layout from BTF: the first candidate struct found, with its pid and type members. */
export function layoutOf(obj: BpfObject, spec: ProbeSpec): RecordLayout | undefined {
  for (const name of spec.recordStructs) {
    const s = obj.btfStruct(name);
    if (!s) continue;
    const layout: RecordLayout = { struct: name, size: s.size };
    for (const want of pidNames) {
      const m = s.members.find((x) => x.name === want && x.sizeBits === 32 && x.offsetBits % 8 === 0);
      if (m) { layout.pidOffset = m.offsetBits / 8; break; }
    }
    for (const want of typeNames) {
      const m = s.members.find((x) => x.name === want && [8, 16, 32].includes(x.sizeBits) && x.offsetBits % 8 === 0);
      if (m) { layout.typeOffset = m.offsetBits / 8; layout.typeSize = m.sizeBits / 8; break; }
    }
    return layout;
  }
  return undefined;
}
