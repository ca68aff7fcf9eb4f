// The main job's live terminal view: top connections by p99 connect latency per workload
// (pod, else process) and peer, computed from the spans the collector wrote (so what it shows
// went through the whole pipeline), refreshed in place.
import { openSync, readSync, closeSync, fstatSync, existsSync } from 'node:fs';
import { decodeJson } from '../../../proto/src/otlp/index.ts';
import { getAttr, type Resource, type TracesData } from '../../../proto/src/model.ts';

interface Row {
  workload: string;
  peer: string;
  durationsMs: number[];
  failures: number;
  bytesSent: number;
}

/** Keeps at most this many samples per row (newest win) so memory stays bounded. */
const MAX_SAMPLES = 2048;
const MAX_ROWS = 5000;

export function workloadOf(resource: Resource): string {
  const a = resource.attributes;
  const pod = getAttr(a, 'k8s.pod.name');
  if (pod) return `${getAttr(a, 'k8s.namespace.name') ?? ''}/${pod}`;
  const exe = getAttr(a, 'process.executable.name');
  const pid = getAttr(a, 'process.pid');
  // Softirq-side events of sockets no task was seen owning (e.g. closed before accept()).
  if (pid === undefined || pid === 0n || pid === 0) return exe ? String(exe) : '(owner unknown)';
  return `${exe ?? '?'}[${pid}]`;
  return String(getAttr(a, 'service.name') ?? 'unknown');
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export class ConnectionSummary {
  private readonly rows = new Map<string, Row>();
  spans = 0;

  ingest(d: TracesData): void {
    for (const rs of d.resourceSpans) {
      const workload = workloadOf(rs.resource);
      for (const ss of rs.scopeSpans)
        for (const s of ss.spans) {
          this.spans++;
          if (s.name !== 'tcp connect' && s.name !== 'tcp connection') continue;
          const peer = `${getAttr(s.attributes, 'server.address') ?? '?'}:${getAttr(s.attributes, 'server.port') ?? '?'}`;
          const key = `${workload}\u0000${peer}`;
          let row = this.rows.get(key);
          if (!row) {
            if (this.rows.size >= MAX_ROWS) continue;
            this.rows.set(key, (row = { workload, peer, durationsMs: [], failures: 0, bytesSent: 0 }));
          }
          if (s.name === 'tcp connection') {
            row.bytesSent += Number(getAttr(s.attributes, 'kscope.tcp.bytes_sent') ?? 0);
            continue;
          }
          if (s.status.code === 2) row.failures++;
          else {
            if (row.durationsMs.length >= MAX_SAMPLES) row.durationsMs.shift();
            row.durationsMs.push(Number(s.endTimeUnixNano - s.startTimeUnixNano) / 1e6);
          }
        }
    }
  }

  top(n: number): Array<{ workload: string; peer: string; count: number; failures: number; p50: number; p99: number; bytesSent: number }> {
    const out = [];
    for (const r of this.rows.values()) {
      const sorted = [...r.durationsMs].sort((a, b) => a - b);
      out.push({ workload: r.workload, peer: r.peer, count: sorted.length, failures: r.failures, p50: percentile(sorted, 50), p99: percentile(sorted, 99), bytesSent: r.bytesSent });
    }
    out.sort((a, b) => (Number.isNaN(b.p99) ? -1 : b.p99) - (Number.isNaN(a.p99) ? -1 : a.p99) || b.failures - a.failures);
    return out.slice(0, n);
  }

  render(n = 15, title = ''): string {
    const rows = this.top(n);
    const w = Math.max(8, ...rows.map((r) => r.workload.length));
    const pw = Math.max(4, ...rows.map((r) => r.peer.length));
    const fmt = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(3));
    const lines = [
      title,
      `${'WORKLOAD'.padEnd(w)}  ${'PEER'.padEnd(pw)}  ${'CONNECTS'.padStart(8)}  ${'FAILED'.padStart(6)}  ${'P50 ms'.padStart(9)}  ${'P99 ms'.padStart(9)}  ${'SENT B'.padStart(10)}`,
      ...rows.map((r) => `${r.workload.padEnd(w)}  ${r.peer.padEnd(pw)}  ${String(r.count).padStart(8)}  ${String(r.failures).padStart(6)}  ${fmt(r.p50).padStart(9)}  ${fmt(r.p99).padStart(9)}  ${String(r.bytesSent).padStart(10)}`),
    ];
    if (rows.length === 0) lines.push('(no connections seen yet)');
    return lines.join('\n');
  }
}

/** Follows an OTLP/JSON-lines file (the file exporter's output), handing each complete line's traces over. */
export class JsonLinesFollower {
  private offset = 0;
  private partial = '';
  errors = 0;

  constructor(readonly path: string, private readonly onTraces: (d: TracesData) => void) {}

  poll(): void {
    if (!existsSync(this.path)) return;
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < this.offset) this.offset = 0; // rotated
      const buf = Buffer.alloc(Math.min(size - this.offset, 64 * 1024 * 1024));
      if (buf.length === 0) return;
      readSync(fd, buf, 0, buf.length, this.offset);
      this.offset += buf.length;
      const text = this.partial + buf.toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          this.onTraces(decodeJson('traces', line));
        } catch {
          this.errors++;
        }
      }
    } finally {
      closeSync(fd);
    }
  }
}
