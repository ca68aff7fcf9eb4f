// Turns decoded events into spans, metrics and logs. Spans and logs are grouped per resource as
// they arrive and drained by the pipeline's batcher; metrics aggregate until collect().
import type {
  KeyValue, LogRecord, LogsData, MetricsData, Resource, Span, TracesData,
} from '../../../proto/src/model.ts';
import { readFileSync } from 'node:fs';
import { EventFlag, EventType } from '../decode/layouts.ts';
import type { ProcEventFields, TcpEventFields } from './events.ts';
import { ATTR_DIRECTION, METRICS, MetricsAggregator, type MetricsConfig, defaultMetricsConfig } from './metrics.ts';
import { EndpointTable, OTHER_ENDPOINT } from './endpoints.ts';
import { buildTcpSpan, connectFailure, cookieIds, type SpanIdSource } from './spans.ts';
import { monotonicToUnixOffset } from '../bpf/clock.ts';

export const SCOPE = { name: 'kernelscope.agent', version: '0.1.0' };

export interface SignalsConfig {
  spans: boolean;
  metrics: MetricsConfig;
  logs: {
    oomKills: boolean;
    processExecExit: boolean; // opt-in
    tcpResets: boolean; // opt-in
  };
  /** Bound on remembered accepted-socket cookies (to tell inbound from outbound at close). */
  maxInboundSockets: number;
  /**
   * The kernel's ephemeral port range (net.ipv4.ip_local_port_range). A socket the probe never saw
   * open (accepted before the agent started, say) is taken as accepted when its local port is
   * outside the range and its remote port inside: a server's port and a client's.
   */
  ephemeralPorts: readonly [number, number];
}

export const defaultSignalsConfig = (): SignalsConfig => ({
  spans: true,
  metrics: defaultMetricsConfig(),
  logs: { oomKills: true, processExecExit: false, tcpResets: false },
  maxInboundSockets: 65_536,
  ephemeralPorts: hostEphemeralPorts(),
});

/** This host's net.ipv4.ip_local_port_range, or Linux's default when it cannot be read. */
export function hostEphemeralPorts(): readonly [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo! > 0 && hi! >= lo!) return [lo!, hi!];
  } catch {
    // not Linux, or no procfs: the default range
  }
  return [32768, 60999];
}

/** Severity numbers of the OTel log data model. */
const SEV_INFO = 9;
const SEV_WARN = 13;
const SEV_ERROR = 17;

/**
 * This host's wall clock in Unix ns: CLOCK_MONOTONIC plus the offset to Unix time taken once, so
 * it never steps back (collection times must not: a delta point starts at the previous one).
 */
export function wallClock(): () => bigint {
  const offset = monotonicToUnixOffset(); // to the ns; Date.now() alone is up to 1 ms early
  return () => process.hrtime.bigint() + offset;
}

export class SignalBuilder {
  readonly metrics: MetricsAggregator;
  private spans = new Map<Resource, Span[]>();
  private logs = new Map<Resource, LogRecord[]>();
  private pendingSpans = 0;
  private pendingLogs = 0;
  /** Accepted sockets by cookie (a number while exact, which is always in practice). */
  private readonly inbound = new Map<number | bigint, true>();
  private readonly ids: SpanIdSource;
  private readonly endpoints = new EndpointTable();
  // One-entry cache of the span list: consecutive events mostly share a resource.
  private lastSpanResource: Resource | undefined;
  private lastSpanList: Span[] | undefined;

  /** Unix ns now, for stamps not tied to an event: metric collection, BPF failure logs. */
  private readonly now: () => bigint;

  constructor(
    readonly cfg: SignalsConfig,
    /** Event timestamp (the event source's monotonic clock) → Unix nanoseconds. */
    private readonly toUnixNano: (mono: bigint) => bigint,
    ids?: SpanIdSource,
    /**
     * Wall clock in Unix ns. Not toUnixNano(hrtime): a replay's events are on the recording
     * host's monotonic clock, and this host's monotonic time mapped with that offset is not now.
     */
    now?: () => bigint,
  ) {
    this.ids = ids ?? cookieIds();
    this.now = now ?? wallClock();
    this.metrics = new MetricsAggregator(cfg.metrics, this.now());
  }

  get spanCount(): number {
    return this.pendingSpans;
  }

  get logCount(): number {
    return this.pendingLogs;
  }

  /** `resource` is the event owner's resource (from the enricher). */
  onTcp(ev: TcpEventFields, resource: Resource): void {
    const type = ev.typeCode;
    if (type < EventType.TcpConnect || type > EventType.TcpResetReceived) return;
    const m = this.metrics;
    const ep = this.endpoints;
    // Interned once per event, shared by the metrics and the span (resets need neither).
    const dst = type < EventType.TcpResetSent ? ep.dst(ev) : OTHER_ENDPOINT;
    let inbound = false;
    switch (type) {
      case EventType.TcpConnect:
        // Start not seen (socket older than the probe): there is no latency to record.
        if ((ev.flags & EventFlag.DurationUnknown) === 0) m.addEndpoint(resource, METRICS.connectDuration, dst, ev.durationNs / 1e9);
        m.add(resource, METRICS.connectionsOpened, 'outbound', DIR_OUTBOUND, 1);
        break;
      case EventType.TcpConnectFail:
        m.addPeerExtra(resource, METRICS.connectionsFailed, dst, 1, connectFailure(ev.error).errorType);
        break;
      case EventType.TcpAccept:
        this.rememberInbound(ev);
        m.add(resource, METRICS.connectionsOpened, 'inbound', DIR_INBOUND, 1);
        break;
      case EventType.TcpClose: {
        // remembered at accept; else the probe's own mark (a socket closed before its accept, or
        // past the bound of remembered ones); else, for one it never saw created, its ports
        inbound = this.inbound.delete(cookieKey(ev)) || this.markedAccepted(ev);
        if (inbound) m.add(resource, METRICS.connectionsClosed, 'inbound', DIR_INBOUND, 1);
        else m.add(resource, METRICS.connectionsClosed, 'outbound', DIR_OUTBOUND, 1);
        // Peer dimension: the remote endpoint for outbound, the local service port for inbound.
        const peer = inbound ? ep.src(ev) : dst;
        m.addEndpoint(resource, METRICS.bytesSent, peer, ev.bytesAcked);
        m.addEndpoint(resource, METRICS.bytesReceived, peer, ev.bytesReceived);
        const srtt = ev.srttUs;
        if (srtt > 0) m.addEndpoint(resource, METRICS.rtt, peer, srtt / 1e6);
        break;
      }
      case EventType.TcpRetransmit:
        // Same peer dimension as closes: an accepted socket's clients (ephemeral ports) would
        // each make a series; its local service endpoint is the server. A socket not accepted
        // yet is not known as inbound and keeps its remote endpoint.
        m.addEndpoint(resource, METRICS.retransmits, this.inbound.has(cookieKey(ev)) || this.markedAccepted(ev) ? ep.src(ev) : dst, 1);
        return;
      case EventType.TcpResetSent:
      case EventType.TcpResetReceived: {
        const dir = type === EventType.TcpResetSent ? 'sent' : 'received';
        m.add(resource, METRICS.resets, dir, resetAttrs[dir], 1);
        if (this.cfg.logs.tcpResets)
          this.pushLog(resource, this.toUnixNano(ev.tsNs), SEV_WARN, `tcp reset ${dir}`, 'kscope.tcp.reset', [
            { key: 'network.peer.address', value: ev.daddr },
            { key: 'network.peer.port', value: BigInt(ev.dport) },
            { key: 'kscope.tcp.direction', value: dir },
          ]);
        return;
      }
      default:
        return;
    }
    if (!this.cfg.spans) return;
    const span = buildTcpSpan(ev, this.ids, this.toUnixNano(ev.tsNs), inbound, dst, ep.src(ev));
    if (!span) return;
    let list: Span[] | undefined;
    if (resource === this.lastSpanResource) list = this.lastSpanList!;
    else {
      list = this.spans.get(resource);
      if (!list) this.spans.set(resource, (list = []));
      this.lastSpanResource = resource;
      this.lastSpanList = list;
    }
    list.push(span);
    this.pendingSpans++;
  }

  /**
   * `resource` is the owner's resource; for ProcFork the new process's (the pipeline resolves it
   * by childPid), so starts and exits land on the same process.
   */
  onProc(ev: ProcEventFields, resource: Resource): void {
    const now = this.toUnixNano(ev.tsNs);
    switch (ev.typeCode) {
      case EventType.ProcFork:
        // A process starts at fork: a fork-only worker exits without ever exec'ing, and an exec
        // chain (sh → exec → exec) is still one process.
        this.metrics.add(resource, METRICS.processStarts, '', NO_ATTRS, 1);
        break;
      case EventType.ProcExec:
        if (this.cfg.logs.processExecExit)
          this.pushLog(resource, now, SEV_INFO, `exec ${ev.filename ?? ev.comm}`, 'kscope.process.exec', [
            { key: 'process.pid', value: BigInt(ev.tgid) },
            { key: 'process.parent_pid', value: BigInt(ev.ppid) },
            { key: 'process.executable.path', value: ev.filename ?? '' },
          ]);
        break;
      case EventType.ProcExit: {
        const wstatus = ev.exitCode ?? 0;
        const status = wstatus === 0 ? 'ok' : 'error';
        this.metrics.add(resource, METRICS.processExits, status, exitAttrs[status], 1);
        if (this.cfg.logs.processExecExit) {
          // exitCode is the raw wait(2) status: say the exit code or the signal, not 768 for `exit 3`.
          // process.exit.code of a killed process is 128 + signal, as shells and Kubernetes report
          // it (137 = SIGKILL; semconv has no signal attribute), so a kill never reads as success.
          const signal = wstatus & 0x7f;
          const code = signal !== 0 ? 128 + signal : (wstatus >> 8) & 0xff;
          this.pushLog(resource, now, wstatus === 0 ? SEV_INFO : SEV_WARN,
            signal !== 0 ? `exit ${ev.comm} signal ${signal}` : `exit ${ev.comm} status ${code}`, 'kscope.process.exit', [
            { key: 'process.pid', value: BigInt(ev.tgid) },
            { key: 'process.exit.code', value: BigInt(code) },
            { key: 'kscope.process.term_signal', value: BigInt(signal) },
            { key: 'kscope.process.lifetime_ns', value: BigInt(ev.durationNs ?? 0) },
          ]);
        }
        break;
      }
      case EventType.ProcOomVictim:
        this.metrics.add(resource, METRICS.oomKills, '', NO_ATTRS, 1);
        if (this.cfg.logs.oomKills)
          this.pushLog(resource, now, SEV_ERROR, `OOM kill of ${ev.comm} (pid ${ev.tgid})`, 'kscope.process.oom_kill', [
            { key: 'process.pid', value: BigInt(ev.tgid) },
            { key: 'kscope.process.rss_pages', value: BigInt(ev.rssPages ?? 0) },
            { key: 'kscope.process.oom_score_adj', value: BigInt(ev.oomScoreAdj ?? 0) },
          ]);
        break;
      default:
        break;
    }
  }

  /** A BPF load or verifier failure as a log record, with the verifier log tail. */
  onBpfFailure(resource: Resource, program: string, message: string, verifierLogTail: string): void {
    const now = this.now();
    this.pushLog(resource, now, SEV_ERROR, `BPF program ${program} failed: ${message}`, 'kscope.bpf.load_failure', [
      { key: 'kscope.bpf.program', value: program },
      { key: 'kscope.bpf.verifier_log', value: verifierLogTail },
    ]);
  }

  /**
   * Accepted by what the event itself says: the probe's passive mark, or, for a socket the probe
   * never saw created, its ports (see ephemeralPorts).
   */
  private markedAccepted(ev: TcpEventFields): boolean {
    if ((ev.flags & EventFlag.Passive) !== 0) return true;
    if ((ev.flags & EventFlag.OwnerUnknown) === 0) return false;
    const [lo, hi] = this.cfg.ephemeralPorts;
    const local = ev.sport, remote = ev.dport;
    return (local < lo || local > hi) && remote >= lo && remote <= hi;
  }

  private rememberInbound(ev: TcpEventFields): void {
    const cookie = cookieKey(ev);
    if (this.inbound.size >= this.cfg.maxInboundSockets) {
      // Forget the oldest: a close we can't classify is reported as outbound, never dropped.
      const oldest = this.inbound.keys().next().value;
      if (oldest !== undefined) this.inbound.delete(oldest);
    }
    this.inbound.set(cookie, true);
  }

  private pushLog(resource: Resource, now: bigint, severity: number, body: string, eventName: string, attributes: LogRecord['attributes']): void {
    let list = this.logs.get(resource);
    if (!list) this.logs.set(resource, (list = []));
    list.push({
      timeUnixNano: now,
      observedTimeUnixNano: now,
      severityNumber: severity,
      severityText: severity >= SEV_ERROR ? 'ERROR' : severity >= SEV_WARN ? 'WARN' : 'INFO',
      body,
      attributes,
      droppedAttributesCount: 0,
      flags: 0,
      traceId: new Uint8Array(0),
      spanId: new Uint8Array(0),
      eventName,
    });
    this.pendingLogs++;
  }

  drainSpans(): TracesData {
    const out: TracesData = { resourceSpans: [] };
    for (const [resource, spans] of this.spans)
      out.resourceSpans.push({ resource, schemaUrl: '', scopeSpans: [{ scope: scopeOf(), spans, schemaUrl: '' }] });
    this.spans = new Map();
    this.lastSpanResource = undefined;
    this.lastSpanList = undefined;
    this.pendingSpans = 0;
    return out;
  }

  drainLogs(): LogsData {
    const out: LogsData = { resourceLogs: [] };
    for (const [resource, logRecords] of this.logs)
      out.resourceLogs.push({ resource, schemaUrl: '', scopeLogs: [{ scope: scopeOf(), logRecords, schemaUrl: '' }] });
    this.logs = new Map();
    this.pendingLogs = 0;
    return out;
  }

  collectMetrics(): MetricsData {
    return this.metrics.collect(this.now(), SCOPE);
  }
}

function scopeOf() {
  return { name: SCOPE.name, version: SCOPE.version, attributes: [], droppedAttributesCount: 0 };
}

// Series attributes shared by every series of their key (kept, never mutated).
const NO_ATTRS: KeyValue[] = [];
const DIR_OUTBOUND: KeyValue[] = [{ key: ATTR_DIRECTION, value: 'outbound' }];
const DIR_INBOUND: KeyValue[] = [{ key: ATTR_DIRECTION, value: 'inbound' }];
const resetAttrs: Record<'sent' | 'received', KeyValue[]> = {
  sent: [{ key: ATTR_DIRECTION, value: 'sent' }],
  received: [{ key: ATTR_DIRECTION, value: 'received' }],
};
const exitAttrs: Record<'ok' | 'error', KeyValue[]> = {
  ok: [{ key: 'kscope.process.exit_status', value: 'ok' }],
  error: [{ key: 'kscope.process.exit_status', value: 'error' }],
};

const TWO32 = 4294967296;
/** Largest high half for which lo + hi * 2^32 stays an exact double. */
const EXACT_HI = 0x1fffff;

/** The socket cookie as a Map key: a number (no BigInt) whenever that is exact. */
function cookieKey(ev: TcpEventFields): number | bigint {
  const lo = ev.sockCookieLo, hi = ev.sockCookieHi;
  if (lo !== undefined && hi !== undefined) return hi <= EXACT_HI ? lo + hi * TWO32 : ev.sockCookie;
  const c = ev.sockCookie;
  return c <= 0x1fffffffffffffn ? Number(c) : c;
}
