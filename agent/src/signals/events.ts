// The decoded event fields the signal builders read. The decoder (agent/src/decode) fills objects
// of these shapes; the builders never touch raw bytes.

export interface EventHeaderFields {
  type: number; // EventType code (agent/src/decode/layouts.ts)
  flags: number; // EventFlag bits
  tsNs: bigint; // CLOCK_MONOTONIC ns
  cgroupId: number;
  tgid: number;
  tid: number;
  netnsIno: number;
  comm: string;
}

export interface TcpEventFields extends EventHeaderFields {
  sockCookie: bigint;
  durationNs: bigint;
  bytesAcked: bigint;
  bytesReceived: bigint;
  srttUs: number;
  totalRetrans: number;
  error: number;
  family: number;
  sport: number;
  dport: number;
  oldstate: number;
  newstate: number;
  saddr: string;
  daddr: string;
}

export interface ProcEventFields extends EventHeaderFields {
  durationNs: bigint;
  ppid: number;
  childPid: number;
  exitCode: number;
  uid: number;
  /** exec only */
  filename?: string;
  totalVmPages?: bigint;
  rssPages?: bigint;
  oomScoreAdj?: number;
}
