// Byte layouts of the records the eBPF probes write (bpf/include/event_common.h, bpf/tcp/tcp.h,
// bpf/proc/proc.h), hand-mirrored here and checked against the object's BTF at startup
// (verify.ts), so a C change that is not mirrored fails loudly instead of decoding garbage.

/** One top-level member of a C struct: byte offset and byte size. */
export interface FieldLayout {
  readonly offset: number;
  readonly size: number;
}

export interface StructLayout<F extends string = string> {
  /** C struct name, as found in the object's BTF. */
  readonly name: string;
  readonly size: number;
  readonly fields: Readonly<Record<F, FieldLayout>>;
}

function layout<F extends string>(name: string, size: number, fields: Record<F, [number, number]>): StructLayout<F> {
  const out = {} as Record<F, FieldLayout>;
  for (const k of Object.keys(fields) as F[]) out[k] = Object.freeze({ offset: fields[k][0], size: fields[k][1] });
  return Object.freeze({ name, size, fields: Object.freeze(out) });
}

export const COMM_LEN = 16;
export const FILENAME_LEN = 256;

export const EVENT_HEADER = layout('ks_event_header', 48, {
  ts_ns: [0, 8],
  cgroup_id: [8, 8],
  tgid: [16, 4],
  tid: [20, 4],
  netns_ino: [24, 4],
  type: [28, 2],
  flags: [30, 2],
  comm: [32, COMM_LEN],
});

export const TCP_EVENT = layout('ks_tcp_event', 136, {
  hdr: [0, 48],
  sock_cookie: [48, 8],
  duration_ns: [56, 8],
  bytes_acked: [64, 8],
  bytes_received: [72, 8],
  srtt_us: [80, 4],
  total_retrans: [84, 4],
  error: [88, 4],
  family: [92, 2],
  sport: [94, 2],
  dport: [96, 2],
  oldstate: [98, 1],
  newstate: [99, 1],
  _pad0: [100, 4],
  saddr: [104, 16],
  daddr: [120, 16],
});

export const PROC_EVENT = layout('ks_proc_event', 96, {
  hdr: [0, 48],
  duration_ns: [48, 8],
  total_vm_pages: [56, 8],
  rss_pages: [64, 8],
  ppid: [72, 4],
  child_pid: [76, 4],
  exit_code: [80, 4],
  oom_score_adj: [84, 4],
  uid: [88, 4],
  _pad0: [92, 4],
});

export const EXEC_EVENT = layout('ks_exec_event', 320, {
  hdr: [0, 48],
  ppid: [48, 4],
  old_tid: [52, 4],
  uid: [56, 4],
  filename_len: [60, 2],
  _pad0: [62, 2],
  filename: [64, FILENAME_LEN],
});

/** Structs each object must carry in its BTF, by probe. */
export const PROBE_LAYOUTS = {
  tcp: [EVENT_HEADER, TCP_EVENT],
  proc: [EVENT_HEADER, PROC_EVENT, EXEC_EVENT],
} as const satisfies Record<string, readonly StructLayout[]>;

/** enum ks_event_type */
export const EventType = {
  TcpConnect: 1,
  TcpConnectFail: 2,
  TcpAccept: 3,
  TcpClose: 4,
  TcpRetransmit: 5,
  TcpResetSent: 6,
  TcpResetReceived: 7,
  ProcExec: 16,
  ProcExit: 17,
  ProcFork: 18,
  ProcOomVictim: 19,
} as const;
export type EventTypeName = keyof typeof EventType;
export type EventTypeCode = (typeof EventType)[EventTypeName];

export const EVENT_TYPE_NAMES: Readonly<Record<number, EventTypeName>> = Object.freeze(
  Object.fromEntries(Object.entries(EventType).map(([k, v]) => [v, k as EventTypeName])),
);

/** Size of the per-type counter map `emitted_events` (KS_EV_TYPE_MAX). */
export const EVENT_TYPE_MAX = 24;

/** enum ks_event_flags (hdr.flags) */
export const EventFlag = {
  /** Socket owner unknown: tgid/tid/comm are zero (never the softirq's current task). */
  OwnerUnknown: 1 << 0,
  /** cgroup_id comes from the socket's creator cgroup, not from a known owner. */
  CgroupFromSocket: 1 << 1,
  /** IPv6 socket with a v4-mapped peer, reported as AF_INET. */
  V4Mapped: 1 << 2,
  /** Start of the interval not seen; duration_ns is 0. */
  DurationUnknown: 1 << 3,
  /** exec filename cut at FILENAME_LEN - 1 bytes. */
  Truncated: 1 << 4,
  /** tcp close of a socket older than the probe: bytes_acked may count the SYN (+1). */
  BytesApprox: 1 << 5,
  /** tcp: a socket the probe saw created passively (accepted: the server side). */
  Passive: 1 << 6,
} as const;

export const AF_INET = 2;
export const AF_INET6 = 10;

/** Linux TCP states (include/net/tcp_states.h). */
export const TCP_STATE_NAMES: readonly string[] = Object.freeze([
  'UNKNOWN', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE',
  'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV', 'BOUND_INACTIVE',
]);

/** Ring-buffer batch framing from the native reader: [u32 length][u32 0][record][pad to 8]. */
export const FRAME_HEADER_BYTES = 8;
