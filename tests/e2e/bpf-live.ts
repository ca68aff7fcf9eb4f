// Shared by the live BPF tests: a loaded probe object's ring decoded into an array (liveEvents),
// the tcp probe started that way, and the selftest object aimed at one pid.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { BpfObject, sumPerCpuU64, type RingReader } from '../../agent/src/bpf/object.ts';
import type { ChildProcess } from 'node:child_process';
import { EventDecoder, verifyProbeLayouts, type TcpEvent } from '../../agent/src/decode/index.ts';
import { SYS_getppid, selftestObjectPath } from '../../agent/src/bpf/selftest.ts';

// KSCOPE_BPF_TCP_OBJ runs the same checks against another build (e.g. a deliberately broken one).
export const tcpObjPath = process.env.KSCOPE_BPF_TCP_OBJ ?? fileURLToPath(new URL('../../bpf/tcp/tcp.bpf.o', import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** JSON.stringify replacer for events holding bigints. */
export const big = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);

/** A loaded, attached object's events as they arrive. */
export interface LiveEvents<E> {
  obj: BpfObject;
  events: E[];
  waitFor(pred: (evs: E[]) => boolean, what: string, ms?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Reads `obj`'s `events` ring into an array: `visitor(push)` gives the decoder's visitor, which
 * pushes the events the test wants (it may filter).
 */
export function liveEvents<E>(obj: BpfObject, visitor: (push: (e: E) => void) => ConstructorParameters<typeof EventDecoder>[0], defaultWaitMs = 3000): LiveEvents<E> {
  const events: E[] = [];
  const dec = new EventDecoder(visitor((e) => { events.push(e); }));
  const reader: RingReader = obj.openRingBuffer('events', (buf, len, count) => { dec.decodeBatch(buf, len, count); });
  return {
    obj,
    events,
    async waitFor(pred, what, ms = defaultWaitMs) {
      const deadline = Date.now() + ms;
      while (!pred(events)) {
        if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; got ${JSON.stringify(events.slice(-20), big, 1).slice(0, 3000)}`);
        await sleep(20);
      }
    },
    async stop() { await reader.stop(); obj.close(); },
  };
}

export interface LiveTcp extends LiveEvents<TcpEvent> {
  emitted(type: number): Promise<bigint>;
  lost(): Promise<bigint>;
}

/** The tcp probe with `globals` set and `autoload` programs switched, every program attached. */
export async function startTcpProbe(globals: Record<string, number | bigint | boolean>, autoload: Record<string, boolean> = {}): Promise<LiveTcp> {
  const obj = BpfObject.open(tcpObjPath);
  verifyProbeLayouts('tcp', obj);
  for (const [k, v] of Object.entries(globals)) obj.setGlobal(k, v);
  for (const [p, on] of Object.entries(autoload)) obj.setAutoload(p, on);
  obj.load();
  for (const a of obj.attachAll()) assert.ok(a.ok, `attach ${a.program}: ${a.error}`);
  return {
    ...liveEvents<TcpEvent>(obj, (push) => ({ tcp: (v) => push(v.toObject()) })),
    async emitted(type) { return sumPerCpuU64(obj.mapLookup('emitted_events', type) ?? Buffer.alloc(0)); },
    async lost() { return sumPerCpuU64(obj.mapLookup('lost_events', 0) ?? Buffer.alloc(0)); },
  };
}

/** How a child process ended (at once if it already has). */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) { r({ code: child.exitCode, signal: child.signalCode }); return; }
    child.once('exit', (code, signal) => r({ code, signal }));
  });
}

/** The selftest object counting `pid`'s getppid() calls, loaded (`extra` runs before load). */
export function openSelftestFor(pid: number, extra: (o: BpfObject) => void = () => {}): BpfObject {
  const o = BpfObject.open(selftestObjectPath);
  o.setGlobal('targ_tgid', pid);
  o.setGlobal('targ_syscall', SYS_getppid);
  extra(o);
  o.load();
  return o;
}
