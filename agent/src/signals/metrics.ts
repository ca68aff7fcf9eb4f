// Aggregates events into metrics per resource (pod/container/process) with peer dimensions.
// Peers beyond the per-resource cap fold into one "_other" series (counted), so a scanning
// workload cannot blow up cardinality. Temporality is delta (reset at each collect) or cumulative.
import { ATTR_ERROR_TYPE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT } from '@opentelemetry/semantic-conventions';
import {
  AggregationTemporality, type KeyValue, type Metric, type MetricsData, type Resource, type ScopeMetrics,
} from '../../../proto/src/model.ts';
import { ExpHistogram } from './exphist.ts';

export const ATTR_DIRECTION = 'kscope.tcp.direction';
export const OTHER_PEER = '_other';

export type Temporality = 'delta' | 'cumulative';

export interface MetricsConfig {
  temporality: Temporality;
  /** Distinct peer series per resource before folding into "_other". */
  maxPeersPerResource: number;
  /** Resources tracked at once; beyond this new resources fold into the first-seen overflow bucket. */
  maxResources: number;
  histogramMaxSize: number;
}

export const defaultMetricsConfig = (): MetricsConfig => ({
  temporality: 'delta',
  maxPeersPerResource: 100,
  maxResources: 10_000,
  histogramMaxSize: 160,
});

type Kind = 'sum' | 'exphist';

interface MetricDef {
  name: string;
  unit: string;
  description: string;
  kind: Kind;
}

export const METRICS = {
  connectDuration: { name: 'kscope.tcp.connect.duration', unit: 's', description: 'TCP connect latency (SYN_SENT to ESTABLISHED)', kind: 'exphist' },
  connectionsOpened: { name: 'kscope.tcp.connections.opened', unit: '{connection}', description: 'TCP connections established', kind: 'sum' },
  connectionsFailed: { name: 'kscope.tcp.connections.failed', unit: '{connection}', description: 'TCP connects that failed', kind: 'sum' },
  connectionsClosed: { name: 'kscope.tcp.connections.closed', unit: '{connection}', description: 'TCP connections closed', kind: 'sum' },
  bytesSent: { name: 'kscope.tcp.bytes.sent', unit: 'By', description: 'Payload bytes acknowledged by the peer', kind: 'sum' },
  bytesReceived: { name: 'kscope.tcp.bytes.received', unit: 'By', description: 'Payload bytes received', kind: 'sum' },
  retransmits: { name: 'kscope.tcp.retransmits', unit: '{segment}', description: 'TCP segments retransmitted', kind: 'sum' },
  resets: { name: 'kscope.tcp.resets', unit: '{reset}', description: 'TCP resets sent or received', kind: 'sum' },
  rtt: { name: 'kscope.tcp.rtt', unit: 's', description: 'Smoothed RTT of connections at close', kind: 'exphist' },
  processStarts: { name: 'kscope.process.starts', unit: '{process}', description: 'Processes started (exec)', kind: 'sum' },
  processExits: { name: 'kscope.process.exits', unit: '{process}', description: 'Processes exited', kind: 'sum' },
  oomKills: { name: 'kscope.process.oom_kills', unit: '{process}', description: 'Processes chosen as OOM victims', kind: 'sum' },
} as const satisfies Record<string, MetricDef>;

interface Series {
  def: MetricDef;
  attrs: KeyValue[];
  value: number;
  hist: ExpHistogram | null;
  startTime: bigint;
  touched: boolean;
}

class ResourceState {
  readonly series = new Map<string, Series>();
  readonly peers = new Set<string>();
  /** Consecutive collects without any new data point. */
  idleCollects = 0;
  constructor(readonly resource: Resource) {}
}

/**
 * Collects a resource may stay idle before its state is dropped. Resources are per process and
 * every exec interns a new one, so without this the map fills with dead processes and, once at
 * maxResources, new processes' metrics fold into an unrelated resource. Delta: an idle resource
 * has nothing to report, so dropping it at once loses nothing. Cumulative: after a while; if the
 * resource comes back its series restart with a new start time (a reset, valid in OTLP).
 */
const IDLE_COLLECTS_DELTA = 1;
const IDLE_COLLECTS_CUMULATIVE = 10;

export class MetricsAggregator {
  private readonly resources = new Map<Resource, ResourceState>();
  /** Series folded into "_other" because a resource hit its peer cap. */
  foldedPeers = 0;
  /** Events attributed to an existing resource because maxResources was reached. */
  foldedResources = 0;
  private lastCollect: bigint;

  constructor(readonly cfg: MetricsConfig, now: bigint) {
    this.lastCollect = now;
  }

  private state(resource: Resource): ResourceState {
    let st = this.resources.get(resource);
    if (st) return st;
    if (this.resources.size >= this.cfg.maxResources) {
      this.foldedResources++;
      return this.resources.values().next().value as ResourceState;
    }
    st = new ResourceState(resource);
    this.resources.set(resource, st);
    return st;
  }

  /** Peer key after applying the cardinality cap. */
  private peer(st: ResourceState, address: string, port: number): [string, number] {
    const key = `${address}:${port}`;
    if (st.peers.has(key)) return [address, port];
    if (st.peers.size < this.cfg.maxPeersPerResource) {
      st.peers.add(key);
      return [address, port];
    }
    this.foldedPeers++;
    return [OTHER_PEER, 0];
  }

  private series(st: ResourceState, def: MetricDef, key: string, attrs: () => KeyValue[], now: bigint): Series {
    const k = def.name + '|' + key;
    let s = st.series.get(k);
    if (!s) {
      s = { def, attrs: attrs(), value: 0, hist: def.kind === 'exphist' ? new ExpHistogram(this.cfg.histogramMaxSize) : null, startTime: now, touched: false };
      st.series.set(k, s);
    }
    s.touched = true;
    return s;
  }

  add(resource: Resource, def: MetricDef, key: string, attrs: () => KeyValue[], value: number, now: bigint): void {
    const s = this.series(this.state(resource), def, key, attrs, now);
    s.value += value;
  }

  observe(resource: Resource, def: MetricDef, key: string, attrs: () => KeyValue[], value: number, now: bigint): void {
    const s = this.series(this.state(resource), def, key, attrs, now);
    s.hist!.record(value);
  }

  /** A metric keyed by the remote peer (capped). */
  addPeer(resource: Resource, def: MetricDef, address: string, port: number, value: number, now: bigint, extra?: KeyValue): void {
    const st = this.state(resource);
    const [a, p] = this.peer(st, address, port);
    const key = extra ? `${a}:${p}|${String(extra.value)}` : `${a}:${p}`;
    const s = this.series(st, def, key, () => peerAttrs(a, p, extra), now);
    if (s.hist) s.hist.record(value);
    else s.value += value;
  }

  /** Builds the metrics payload and, for delta temporality, resets the series. */
  collect(now: bigint, scope: { name: string; version: string }): MetricsData {
    const delta = this.cfg.temporality === 'delta';
    const temporality = delta ? AggregationTemporality.Delta : AggregationTemporality.Cumulative;
    const out: MetricsData = { resourceMetrics: [] };
    const idleLimit = delta ? IDLE_COLLECTS_DELTA : IDLE_COLLECTS_CUMULATIVE;
    for (const st of this.resources.values()) {
      let active = false;
      for (const s of st.series.values()) if (s.touched) active = true;
      if (active) st.idleCollects = 0;
      else if (++st.idleCollects >= idleLimit) {
        this.resources.delete(st.resource);
        continue;
      }
      const byName = new Map<string, Metric>();
      for (const s of st.series.values()) {
        if (delta && !s.touched) continue;
        s.touched = false;
        const start = delta ? this.lastCollect : s.startTime;
        let m = byName.get(s.def.name);
        if (!m) {
          m = {
            name: s.def.name,
            description: s.def.description,
            unit: s.def.unit,
            metadata: [],
            data: s.def.kind === 'exphist'
              ? { type: 'exponentialHistogram', dataPoints: [], aggregationTemporality: temporality }
              : { type: 'sum', dataPoints: [], aggregationTemporality: temporality, isMonotonic: true },
          };
          byName.set(s.def.name, m);
        }
        if (m.data.type === 'exponentialHistogram') m.data.dataPoints.push(s.hist!.toDataPoint(s.attrs, start, now));
        else if (m.data.type === 'sum')
          m.data.dataPoints.push({ attributes: s.attrs, startTimeUnixNano: start, timeUnixNano: now, value: BigInt(s.value), exemplars: [], flags: 0 });
        if (delta) {
          s.value = 0;
          s.hist?.reset();
        }
      }
      if (byName.size === 0) continue;
      const sm: ScopeMetrics = { scope: { name: scope.name, version: scope.version, attributes: [], droppedAttributesCount: 0 }, metrics: [...byName.values()], schemaUrl: '' };
      out.resourceMetrics.push({ resource: st.resource, scopeMetrics: [sm], schemaUrl: '' });
    }
    this.lastCollect = now;
    return out;
  }

  /** Drops resources whose processes are gone (called by the pipeline with the resource set still alive). */
  retain(alive: (r: Resource) => boolean): void {
    for (const r of this.resources.keys()) if (!alive(r)) this.resources.delete(r);
  }

  get resourceCount(): number {
    return this.resources.size;
  }
}

function peerAttrs(address: string, port: number, extra?: KeyValue): KeyValue[] {
  const a: KeyValue[] = [
    { key: ATTR_SERVER_ADDRESS, value: address },
    { key: ATTR_SERVER_PORT, value: BigInt(port) },
  ];
  if (extra) a.push(extra);
  return a;
}

export { ATTR_ERROR_TYPE };
