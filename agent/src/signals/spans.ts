// TCP events → spans. One trace per connection (ids derived from the socket cookie and a per-boot
// salt, so the connect/accept span and the connection span of one socket share a trace without
// any state kept between events).
import { ATTR_ERROR_TYPE, ATTR_NETWORK_TRANSPORT, ATTR_NETWORK_TYPE, ERROR_TYPE_VALUE_OTHER } from '@opentelemetry/semantic-conventions';
import { randomBytes } from 'node:crypto';
import { EMPTY_BYTES, NO_EVENTS, NO_LINKS, STATUS_UNSET, type KeyValue, type Span, SpanKind, type Status, StatusCode } from '../../../proto/src/model.ts';
import { slab, slabSlot, slabView } from '../../../proto/src/id-slab.ts';
import { AF_INET6, EventFlag, EventType } from '../decode/layouts.ts';
import { errnoName } from '../decode/format.ts';
import { type Endpoint, EndpointTable } from './endpoints.ts';
import type { TcpEventFields } from './events.ts';

export const ATTR_TCP_BYTES_SENT = 'kscope.tcp.bytes_sent';
export const ATTR_TCP_BYTES_RECEIVED = 'kscope.tcp.bytes_received';
export const ATTR_TCP_SRTT_US = 'kscope.tcp.srtt_us';
export const ATTR_TCP_RETRANSMITS = 'kscope.tcp.retransmits';
export const ATTR_TCP_OWNER_UNKNOWN = 'kscope.owner_unknown';
/** The start of the span's interval was not seen (socket older than the probe): its duration is not measured. */
export const ATTR_DURATION_UNKNOWN = 'kscope.duration_unknown';

/**
 * error.type of a connect that closed with no socket error (sk_err 0): the application closed
 * or abandoned the socket before the handshake completed (its own connect timeout, happy
 * eyeballs dropping the losing attempt). Real errors keep their errno name (ECONNREFUSED,
 * ETIMEDOUT, ...); a code with no known name is "_OTHER".
 */
export const ERROR_TYPE_ABORTED = 'aborted';

export interface ConnectFailure {
  /** error.type, for the span and the connections.failed series (low cardinality). */
  readonly errorType: KeyValue;
  readonly status: Status;
}

// Shared per code (bounded: errno values are small; others are not cached), never mutated.
const failures = new Map<number, ConnectFailure>();

/** error.type and span status of a failed connect's socket error. */
export function connectFailure(err: number): ConnectFailure {
  let f = failures.get(err);
  if (f !== undefined) return f;
  const name = errnoName(err);
  const type = err === 0 ? ERROR_TYPE_ABORTED : name ?? ERROR_TYPE_VALUE_OTHER;
  // The status message may say more than error.type: the code itself when it has no name.
  const message = err === 0 ? 'connect aborted before the handshake completed' : name ?? `errno ${err}`;
  f = { errorType: { key: ATTR_ERROR_TYPE, value: type }, status: { code: StatusCode.Error, message } };
  if (err >= 0 && err < 4096) failures.set(err, f);
  return f;
}

/** murmur3's 32-bit finaliser: every input bit reaches every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export interface SpanIdSource {
  traceId(cookie: bigint): Uint8Array;
  spanId(cookie: bigint, role: number): Uint8Array;
  /** The same ids from the cookie's u32 halves, without BigInt (optional fast path). */
  traceIdOf?(lo: number, hi: number): Uint8Array;
  spanIdOf?(lo: number, hi: number, role: number): Uint8Array;
}

const DOMAIN_TRACE_HI = 0;
const DOMAIN_TRACE_LO = 1;
const DOMAIN_SPAN = 2; // + role
const CACHED_ROLES = 8;

/**
 * Deterministic ids per socket cookie; the salt keeps ids unique across agents and boots.
 * Each id half is a 4-round Feistel permutation of the 64-bit cookie keyed by (salt, domain): a
 * bijection, so distinct cookies never share a span id (or a trace id) under one salt, computed
 * with 32-bit integer arithmetic only (no BigInt on the hot path).
 */
export class CookieIds implements SpanIdSource {
  private readonly keys = new Uint32Array((DOMAIN_SPAN + CACHED_ROLES) * 4);
  private readonly s0: number;
  private readonly s1: number;

  constructor(salt: bigint) {
    this.s0 = Number(BigInt.asUintN(32, salt));
    this.s1 = Number(BigInt.asUintN(32, salt >> 32n));
    for (let d = 0; d < DOMAIN_SPAN + CACHED_ROLES; d++) this.roundKeys(d, this.keys, d * 4);
  }

  private roundKeys(domain: number, out: Uint32Array, at: number): void {
    for (let r = 0; r < 4; r++) out[at + r] = fmix32(this.s0 ^ fmix32((this.s1 ^ Math.imul(domain * 4 + r + 1, 0x9e3779b9)) >>> 0));
  }

  /** Writes the permutation of (hi, lo) under the domain's keys big-endian at out[o..o+8). */
  private permute(lo: number, hi: number, domain: number, out: Uint8Array, o: number, nonZero: boolean): void {
    let k = this.keys, at = domain * 4;
    if (domain >= DOMAIN_SPAN + CACHED_ROLES) {
      k = new Uint32Array(4);
      this.roundKeys(domain, k, 0);
      at = 0;
    }
    let l = hi >>> 0, r = lo >>> 0, t: number;
    t = (l ^ fmix32((r ^ k[at]!) >>> 0)) >>> 0; l = r; r = t;
    t = (l ^ fmix32((r ^ k[at + 1]!) >>> 0)) >>> 0; l = r; r = t;
    t = (l ^ fmix32((r ^ k[at + 2]!) >>> 0)) >>> 0; l = r; r = t;
    t = (l ^ fmix32((r ^ k[at + 3]!) >>> 0)) >>> 0; l = r; r = t;
    if (nonZero && l === 0 && r === 0) r = 1;
    out[o] = l >>> 24; out[o + 1] = l >>> 16; out[o + 2] = l >>> 8; out[o + 3] = l;
    out[o + 4] = r >>> 24; out[o + 5] = r >>> 16; out[o + 6] = r >>> 8; out[o + 7] = r;
  }

  traceIdOf(lo: number, hi: number): Uint8Array {
    const o = slabSlot(16); // ids are views into shared slabs (id-slab.ts)
    this.permute(lo, hi, DOMAIN_TRACE_HI, slab, o, false);
    this.permute(lo, hi, DOMAIN_TRACE_LO, slab, o + 8, true); // never the all-zero (invalid) trace id
    return slabView(o, 16);
  }

  spanIdOf(lo: number, hi: number, role: number): Uint8Array {
    const o = slabSlot(8);
    this.permute(lo, hi, DOMAIN_SPAN + (role >>> 0), slab, o, true);
    return slabView(o, 8);
  }

  traceId(cookie: bigint): Uint8Array {
    return this.traceIdOf(cookieLo(cookie), cookieHi(cookie));
  }

  spanId(cookie: bigint, role: number): Uint8Array {
    return this.spanIdOf(cookieLo(cookie), cookieHi(cookie), role);
  }
}

const cookieLo = (c: bigint): number => Number(BigInt.asUintN(32, c));
const cookieHi = (c: bigint): number => Number(BigInt.asUintN(32, c >> 32n));

/** Deterministic ids per socket cookie; the salt keeps ids unique across agents and boots. */
export function cookieIds(salt: bigint = BigInt('0x' + randomBytes(8).toString('hex'))): CookieIds {
  return new CookieIds(salt);
}

const ROLE_OPEN = 1; // connect or accept span
const ROLE_CONNECTION = 2;

// Shared, never mutated: most spans carry the same constants.
const KV_TRANSPORT_TCP: KeyValue = { key: ATTR_NETWORK_TRANSPORT, value: 'tcp' };
const KV_TYPE_IPV4: KeyValue = { key: ATTR_NETWORK_TYPE, value: 'ipv4' };
const KV_TYPE_IPV6: KeyValue = { key: ATTR_NETWORK_TYPE, value: 'ipv6' };
const KV_OWNER_UNKNOWN: KeyValue = { key: ATTR_TCP_OWNER_UNKNOWN, value: true };
const KV_DURATION_UNKNOWN: KeyValue = { key: ATTR_DURATION_UNKNOWN, value: true };

const defaultEndpoints = new EndpointTable(4096);
/** Last substitute cookie handed to a cookieless socket (see buildTcpSpan). */
let nextCookieless = 0;

/**
 * Builds the span for a TCP event, or returns null for events that carry no span (retransmits,
 * resets). `toUnixNano` maps the monotonic event timestamp to Unix time.
 */
export function tcpEventToSpan(
  ev: TcpEventFields,
  ids: SpanIdSource,
  toUnixNano: (mono: bigint) => bigint,
  /** For close events: whether the socket was accepted (server side) rather than connected. */
  inbound = false,
): Span | null {
  return buildTcpSpan(ev, ids, toUnixNano(ev.tsNs), inbound, defaultEndpoints.dst(ev), defaultEndpoints.src(ev));
}

/** tcpEventToSpan with the end time already mapped and the event's interned endpoints (remote, local). */
export function buildTcpSpan(ev: TcpEventFields, ids: SpanIdSource, end: bigint, inbound: boolean, dst: Endpoint, src: Endpoint): Span | null {
  const type = ev.typeCode;
  let name: string;
  let kind: SpanKind;
  let status = STATUS_UNSET;
  let errorType: KeyValue | undefined;
  let role = ROLE_OPEN;
  switch (type) {
    case EventType.TcpConnect:
      name = 'tcp connect';
      kind = SpanKind.Client;
      break;
    case EventType.TcpConnectFail: {
      name = 'tcp connect';
      kind = SpanKind.Client;
      const f = connectFailure(ev.error);
      status = f.status;
      errorType = f.errorType;
      break;
    }
    case EventType.TcpAccept:
      name = 'tcp accept';
      kind = SpanKind.Server;
      break;
    case EventType.TcpClose:
      name = 'tcp connection';
      kind = SpanKind.Internal;
      role = ROLE_CONNECTION;
      break;
    default:
      return null;
  }
  // Start not seen: only the end is known. OTLP needs a start, so the span is the instant of the
  // event, marked kscope.duration_unknown, rather than a measured 0 ns.
  const durationUnknown = (ev.flags & EventFlag.DurationUnknown) !== 0;
  const durationNs = ev.durationNs;
  const start = durationNs > 0 && !durationUnknown ? end - BigInt(durationNs) : end;
  const netType = ev.family === AF_INET6 ? KV_TYPE_IPV6 : KV_TYPE_IPV4;
  let traceId: Uint8Array, spanId: Uint8Array, parent: Uint8Array = EMPTY_BYTES;
  let lo = ev.sockCookieLo, hi = ev.sockCookieHi;
  if (lo === undefined || hi === undefined) {
    const c = ev.sockCookie;
    lo = cookieLo(c);
    hi = cookieHi(c);
  }
  // Cookie 0: a socket the probe never saw open, whose cookie the kernel never assigned. Every such
  // span would share one trace and span id; each gets a cookie of its own from a range the kernel's
  // counter does not reach (high half all ones). Its parent, the open span, was never seen.
  const cookieless = lo === 0 && hi === 0;
  if (cookieless) {
    lo = nextCookieless = (nextCookieless + 1) >>> 0;
    hi = 0xffffffff;
  }
  if (ids.traceIdOf !== undefined && ids.spanIdOf !== undefined) {
    traceId = ids.traceIdOf(lo, hi);
    spanId = ids.spanIdOf(lo, hi, role);
    if (role === ROLE_CONNECTION && !cookieless) parent = ids.spanIdOf(lo, hi, ROLE_OPEN);
  } else {
    const c = (BigInt(hi) << 32n) | BigInt(lo);
    traceId = ids.traceId(c);
    spanId = ids.spanId(c, role);
    if (role === ROLE_CONNECTION && !cookieless) parent = ids.spanId(c, ROLE_OPEN);
  }
  // The local address is the client's for connected sockets and the server's for accepted ones.
  const outbound = type === EventType.TcpConnect || type === EventType.TcpConnectFail || (type === EventType.TcpClose && !inbound);
  const server = outbound ? dst : src;
  const client = outbound ? src : dst;
  // Built whole (no push, no backing-store growth): the attribute order is the one exported.
  let attrs: KeyValue[];
  if (role === ROLE_CONNECTION)
    attrs = [
      KV_TRANSPORT_TCP, netType, dst.peerAddress, dst.peerPort,
      { key: ATTR_TCP_BYTES_SENT, value: BigInt(ev.bytesAcked) },
      { key: ATTR_TCP_BYTES_RECEIVED, value: BigInt(ev.bytesReceived) },
      { key: ATTR_TCP_SRTT_US, value: BigInt(ev.srttUs) },
      { key: ATTR_TCP_RETRANSMITS, value: BigInt(ev.totalRetrans) },
      server.serverAddress, server.serverPort, client.clientAddress, client.clientPort,
    ];
  else if (errorType !== undefined)
    attrs = [KV_TRANSPORT_TCP, netType, dst.peerAddress, dst.peerPort, errorType, server.serverAddress, server.serverPort, client.clientAddress, client.clientPort];
  else attrs = [KV_TRANSPORT_TCP, netType, dst.peerAddress, dst.peerPort, server.serverAddress, server.serverPort, client.clientAddress, client.clientPort];
  if (ev.flags & EventFlag.OwnerUnknown) attrs.push(KV_OWNER_UNKNOWN);
  if (durationUnknown) attrs.push(KV_DURATION_UNKNOWN);
  return {
    traceId,
    spanId,
    traceState: '',
    parentSpanId: parent,
    flags: 1, // sampled
    name,
    kind,
    startTimeUnixNano: start,
    endTimeUnixNano: end,
    attributes: attrs,
    droppedAttributesCount: 0,
    events: NO_EVENTS,
    droppedEventsCount: 0,
    links: NO_LINKS,
    droppedLinksCount: 0,
    status,
  };
}
