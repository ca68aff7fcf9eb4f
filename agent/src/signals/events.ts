// The decoded event fields the signal builders read: a structural subset of the decoder's views
// (agent/src/decode/decoder.ts), so the hot path hands a view over without copying; tests and
// replays may pass plain objects of the same shape.

export interface EventHeaderFields {
  readonly typeCode: number; // EventType code (agent/src/decode/layouts.ts)
  readonly flags: number; // EventFlag bits
  readonly tsNs: bigint; // CLOCK_MONOTONIC ns
  readonly cgroupId: bigint;
  readonly tgid: number;
  readonly tid: number;
  readonly comm: string;
}

export interface TcpEventFields extends EventHeaderFields {
  readonly sockCookie: bigint;
  readonly durationNs: number;
  readonly bytesAcked: number;
  readonly bytesReceived: number;
  readonly srttUs: number;
  readonly totalRetrans: number;
  readonly error: number;
  readonly family: number;
  readonly sport: number;
  readonly dport: number;
  readonly saddr: string;
  readonly daddr: string;
  // Allocation-free forms the decoder views provide (plain objects may omit them; the builders
  // then derive the same values from sockCookie, saddr and daddr).
  /** Low / high u32 halves of sockCookie. */
  readonly sockCookieLo?: number;
  readonly sockCookieHi?: number;
  /** IPv4 addresses as host-order u32 (meaningful for family AF_INET only). */
  readonly saddrV4?: number;
  readonly daddrV4?: number;
}

export interface ProcEventFields extends EventHeaderFields {
  readonly durationNs?: number;
  readonly ppid: number;
  /** The new process (fork events; the header's tgid is the parent). */
  readonly childPid?: number;
  /** Raw wait(2) status (exit events). */
  readonly exitCode?: number;
  readonly filename?: string; // exec only
  readonly rssPages?: number;
  readonly oomScoreAdj?: number;
}
