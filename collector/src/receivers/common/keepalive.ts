// `protocols.grpc.keepalive` of the gRPC receivers, laid out as otelcol's configgrpc
// (server_parameters: time, timeout, max_connection_idle, max_connection_age,
// max_connection_age_grace).
import type { ServerKeepalive } from '../../../../proto/src/grpc/common.ts';
import { ConfigError } from '../../component/errors.ts';
import type { ConfigReader } from '../../config/reader.ts';

/**
 * Pings default on (30 s, 10 s for the ack), where grpc-go waits 2 h: a receiver only writes
 * when answering, so a client that vanished mid-stream (node lost, cable cut) would keep its
 * streams, an OTel Arrow stream's dictionaries among them, until the kernel gave up on a
 * connection nobody writes to — never, without TCP keepalive. Clients do not object to server
 * pings.
 */
export function readServerKeepalive(k: ConfigReader): ServerKeepalive {
  if (k.has('enforcement_policy')) {
    // grpc-js has no ping-abuse policy; accepting the key would promise one.
    throw new ConfigError(k.field('enforcement_policy'), 'is not supported by this receiver (grpc-js enforces no ping policy)');
  }
  const s = k.sub('server_parameters');
  const cfg: ServerKeepalive = {
    timeMs: s.duration('time', 30_000),
    timeoutMs: s.duration('timeout', 10_000),
    maxConnectionIdleMs: s.duration('max_connection_idle', 0),
    maxConnectionAgeMs: s.duration('max_connection_age', 0),
    maxConnectionAgeGraceMs: s.duration('max_connection_age_grace', 0),
  };
  if (cfg.timeMs > 0 && cfg.timeoutMs <= 0) throw new ConfigError(s.field('timeout'), 'must be positive when time is set');
  s.done();
  k.done();
  return cfg;
}
