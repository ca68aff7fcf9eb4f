// Interned (address, port) endpoints. Every TCP event names two endpoints and most events repeat
// the same few peers, so the address text, the port as bigint and the KeyValues spans and metric
// series carry are built once per endpoint and shared (readers of the model never mutate them).
// IPv4 endpoints are keyed by a number (address << 16 | port, exact below 2^48) read straight from
// the decoder view, so the hot path neither formats the address nor hashes a string.
import {
  ATTR_CLIENT_ADDRESS, ATTR_CLIENT_PORT, ATTR_NETWORK_PEER_ADDRESS, ATTR_NETWORK_PEER_PORT,
  ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT,
} from '@opentelemetry/semantic-conventions';
import type { KeyValue } from '../../../proto/src/model.ts';
import { AF_INET } from '../decode/layouts.ts';

export class Endpoint {
  readonly portBig: bigint;
  readonly peerAddress: KeyValue;
  readonly peerPort: KeyValue;
  readonly serverAddress: KeyValue;
  readonly serverPort: KeyValue;
  readonly clientAddress: KeyValue;
  readonly clientPort: KeyValue;
  /** Metric series attributes of this peer: server.address, server.port. */
  readonly metricAttrs: KeyValue[];

  constructor(
    readonly address: string,
    readonly port: number,
    /** IPv4: address * 65536 + port; -1 otherwise (then `textKey` identifies the endpoint). */
    readonly numKey: number,
    /** `${address}:${port}`. */
    readonly textKey: string,
  ) {
    this.portBig = BigInt(port);
    this.peerAddress = { key: ATTR_NETWORK_PEER_ADDRESS, value: address };
    this.peerPort = { key: ATTR_NETWORK_PEER_PORT, value: this.portBig };
    this.serverAddress = { key: ATTR_SERVER_ADDRESS, value: address };
    this.serverPort = { key: ATTR_SERVER_PORT, value: this.portBig };
    this.clientAddress = { key: ATTR_CLIENT_ADDRESS, value: address };
    this.clientPort = { key: ATTR_CLIENT_PORT, value: this.portBig };
    this.metricAttrs = [this.serverAddress, this.serverPort];
  }
}

/** The fold target of the per-resource peer cap. */
export const OTHER_ENDPOINT = new Endpoint('_other', 0, -1, '_other:0');

const TWO16 = 65536;

/** Dotted-quad IPv4 text → host-order u32, or -1 when it is not one. */
export function parseIPv4(s: string): number {
  let n = 0, part = 0, digits = 0, dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return -1;
      n = n * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return n * 256 + part;
}

/** Bounded intern table (cleared when full: a scan cannot grow it without limit). */
const RECENT_SLOTS = 1024; // power of two

export class EndpointTable {
  private readonly v4 = new Map<number, Endpoint>();
  private readonly other = new Map<string, Endpoint>();
  // Direct-mapped cache in front of `v4`: its keys exceed small-integer range, so a Map lookup
  // hashes a heap number; this is one multiply and two typed-array compares.
  private readonly recentAddr = new Uint32Array(RECENT_SLOTS);
  private readonly recentPort = new Int32Array(RECENT_SLOTS).fill(-1);
  private readonly recent: Array<Endpoint | null> = new Array<Endpoint | null>(RECENT_SLOTS).fill(null);

  constructor(readonly maxEntries = 16_384) {}

  /** IPv4 endpoint from the numeric address (the view's daddrV4/saddrV4). */
  ofV4(addr: number, port: number): Endpoint {
    const slot = Math.imul(addr ^ Math.imul(port, 0x9e3779b1), 0x85ebca6b) >>> 22; // top 10 bits
    if (this.recentAddr[slot] === addr && this.recentPort[slot] === port) return this.recent[slot]!;
    const k = addr * TWO16 + port;
    let e = this.v4.get(k);
    if (e === undefined) {
      if (this.v4.size >= this.maxEntries) this.v4.clear();
      const address = `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
      e = new Endpoint(address, port, k, `${address}:${port}`);
      this.v4.set(k, e);
    }
    this.recentAddr[slot] = addr;
    this.recentPort[slot] = port;
    this.recent[slot] = e;
    return e;
  }

  /** Endpoint from address text; IPv4 text maps to the same entry as ofV4. */
  ofText(address: string, port: number): Endpoint {
    const v4 = parseIPv4(address);
    if (v4 >= 0) return this.ofV4(v4, port);
    const textKey = `${address}:${port}`;
    let e = this.other.get(textKey);
    if (e === undefined) {
      if (this.other.size >= this.maxEntries) this.other.clear();
      e = new Endpoint(address, port, -1, textKey);
      this.other.set(textKey, e);
    }
    return e;
  }

  /** Remote endpoint of an event: numeric when the event is a decoder view of an IPv4 socket. */
  dst(ev: { family: number; daddr: string; dport: number; daddrV4?: number }): Endpoint {
    if (ev.family === AF_INET) {
      const a = ev.daddrV4;
      if (a !== undefined) return this.ofV4(a, ev.dport);
    }
    return this.ofText(ev.daddr, ev.dport);
  }

  /** Local endpoint of an event. */
  src(ev: { family: number; saddr: string; sport: number; saddrV4?: number }): Endpoint {
    if (ev.family === AF_INET) {
      const a = ev.saddrV4;
      if (a !== undefined) return this.ofV4(a, ev.sport);
    }
    return this.ofText(ev.saddr, ev.sport);
  }
}
