// TCP events → spans. One trace per connection (ids derived from the socket cookie and a per-boot
// salt, so the connect/accept span and the connection span of one socket share a trace without
// any state kept between events).
import {
  ATTR_CLIENT_ADDRESS, ATTR_CLIENT_PORT, ATTR_ERROR_TYPE, ATTR_NETWORK_PEER_ADDRESS, ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_TRANSPORT, ATTR_NETWORK_TYPE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT,
} from '@opentelemetry/semantic-conventions';
import { randomBytes } from 'node:crypto';
import { EMPTY_BYTES, type KeyValue, type Span, SpanKind, StatusCode } from '../../../proto/src/model.ts';
import { AF_INET6, EventType } from '../decode/layouts.ts';
import { errnoName } from '../decode/format.ts';
import type { TcpEventFields } from './events.ts';

export const ATTR_TCP_BYTES_SENT = 'kscope.tcp.bytes_sent';
export const ATTR_TCP_BYTES_RECEIVED = 'kscope.tcp.bytes_received';
export const ATTR_TCP_SRTT_US = 'kscope.tcp.srtt_us';
export const ATTR_TCP_RETRANSMITS = 'kscope.tcp.retransmits';
export const ATTR_TCP_OWNER_UNKNOWN = 'kscope.owner_unknown';

const MASK64 = (1n << 64n) - 1n;

/** splitmix64: a cheap, well-mixed 64-bit hash; enough to spread cookies into ids. */
function mix64(x: bigint): bigint {
  x = (x + 0x9e3779b97f4a7c15n) & MASK64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return x ^ (x >> 31n);
}

export interface SpanIdSource {
  traceId(cookie: bigint): Uint8Array;
  spanId(cookie: bigint, role: number): Uint8Array;
}

/** Deterministic ids per socket cookie; the salt keeps ids unique across agents and boots. */
export function cookieIds(salt: bigint = BigInt('0x' + randomBytes(8).toString('hex'))): SpanIdSource {
  return {
    traceId(cookie) {
      const out = new Uint8Array(16);
      const dv = new DataView(out.buffer);
      dv.setBigUint64(0, mix64(cookie ^ salt));
      dv.setBigUint64(8, mix64((cookie + 0x5bd1e995n) ^ salt) || 1n);
      return out;
    },
    spanId(cookie, role) {
      const out = new Uint8Array(8);
      new DataView(out.buffer).setBigUint64(0, mix64(cookie ^ salt ^ (BigInt(role) << 56n)) || 1n);
      return out;
    },
  };
}

const ROLE_OPEN = 1; // connect or accept span
const ROLE_CONNECTION = 2;

function networkType(ev: TcpEventFields): string {
  return ev.family === AF_INET6 ? 'ipv6' : 'ipv4';
}

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
  const end = toUnixNano(ev.tsNs);
  const start = ev.durationNs > 0 ? end - BigInt(ev.durationNs) : end;
  const cookie = ev.sockCookie;
  const attrs: KeyValue[] = [
    { key: ATTR_NETWORK_TRANSPORT, value: 'tcp' },
    { key: ATTR_NETWORK_TYPE, value: networkType(ev) },
    { key: ATTR_NETWORK_PEER_ADDRESS, value: ev.daddr },
    { key: ATTR_NETWORK_PEER_PORT, value: BigInt(ev.dport) },
  ];
  let name: string;
  let kind: SpanKind;
  let statusCode = StatusCode.Unset;
  let statusMessage = '';
  let parent: Uint8Array = EMPTY_BYTES;
  let role = ROLE_OPEN;
  const outbound = ev.typeCode === EventType.TcpConnect || ev.typeCode === EventType.TcpConnectFail;
  switch (ev.typeCode) {
    case EventType.TcpConnect:
      name = 'tcp connect';
      kind = SpanKind.Client;
      break;
    case EventType.TcpConnectFail: {
      name = 'tcp connect';
      kind = SpanKind.Client;
      statusCode = StatusCode.Error;
      const errName = errnoName(ev.error) ?? `errno ${ev.error}`;
      statusMessage = errName;
      attrs.push({ key: ATTR_ERROR_TYPE, value: errName });
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
      parent = ids.spanId(cookie, ROLE_OPEN);
      attrs.push(
        { key: ATTR_TCP_BYTES_SENT, value: BigInt(ev.bytesAcked) },
        { key: ATTR_TCP_BYTES_RECEIVED, value: BigInt(ev.bytesReceived) },
        { key: ATTR_TCP_SRTT_US, value: BigInt(ev.srttUs) },
        { key: ATTR_TCP_RETRANSMITS, value: BigInt(ev.totalRetrans) },
      );
      break;
    default:
      return null;
  }
  // The local address is the client's for connected sockets and the server's for accepted ones.
  if (outbound || (ev.typeCode === EventType.TcpClose && !inbound)) {
    attrs.push(
      { key: ATTR_SERVER_ADDRESS, value: ev.daddr },
      { key: ATTR_SERVER_PORT, value: BigInt(ev.dport) },
      { key: ATTR_CLIENT_ADDRESS, value: ev.saddr },
      { key: ATTR_CLIENT_PORT, value: BigInt(ev.sport) },
    );
  } else {
    attrs.push(
      { key: ATTR_SERVER_ADDRESS, value: ev.saddr },
      { key: ATTR_SERVER_PORT, value: BigInt(ev.sport) },
      { key: ATTR_CLIENT_ADDRESS, value: ev.daddr },
      { key: ATTR_CLIENT_PORT, value: BigInt(ev.dport) },
    );
  }
  if (ev.flags & 1) attrs.push({ key: ATTR_TCP_OWNER_UNKNOWN, value: true });
  return {
    traceId: ids.traceId(cookie),
    spanId: ids.spanId(cookie, role),
    traceState: '',
    parentSpanId: parent,
    flags: 1, // sampled
    name,
    kind,
    startTimeUnixNano: start,
    endTimeUnixNano: end,
    attributes: attrs,
    droppedAttributesCount: 0,
    events: [],
    droppedEventsCount: 0,
    links: [],
    droppedLinksCount: 0,
    status: { code: statusCode, message: statusMessage },
  };
}
