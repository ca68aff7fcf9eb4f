// The RequestContext a receiver hands its pipeline: transport facts (size, peer, deadline) from the
// call, the resolved tenant identity, and the configured metadata keys copied from the headers.
import type { RequestContext } from '../../component/index.ts';
import type { Identity } from './auth.ts';

/** IPv4-mapped IPv6 peers (::ffff:10.0.0.1) as plain IPv4, so k8s attribute association matches pod IPs. */
export function normalisePeerAddress(addr: string | undefined): string | undefined {
  if (!addr) return undefined;
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

export function receiverContext(call: RequestContext, id: Identity, headers: Record<string, string>, metadataKeys: readonly string[]): RequestContext {
  const ctx: RequestContext = {};
  if (call.bytes !== undefined) ctx.bytes = call.bytes;
  const peer = normalisePeerAddress(call.peerAddress);
  if (peer) ctx.peerAddress = peer;
  if (call.deadline !== undefined) ctx.deadline = call.deadline;
  if (id.tenant !== undefined) ctx.tenant = id.tenant;
  if (id.tier !== undefined) ctx.tier = id.tier;
  if (metadataKeys.length) {
    const md: Record<string, string> = {};
    for (const k of metadataKeys) if (headers[k] !== undefined) md[k] = headers[k];
    ctx.metadata = md;
  }
  return ctx;
}
