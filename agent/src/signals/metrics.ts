// Aggregates events into metrics per resource (pod/container/process) with peer dimensions.
// Peers beyond the per-resource cap fold into one "_other" series (counted), so a scanning
// workload cannot blow up cardinality. Temporality is delta (reset at each collect) or cumulative.
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions';
import {
  AggregationTemporality, type KeyValue, type Metric, type MetricsData, type Resource, type ScopeMetrics,
} from '../../../proto/src/model.ts';
import { type Endpoint, EndpointTable, OTHER_ENDPOINT } from './endpoints.ts';
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
  /** Dense index (0..METRIC_COUNT-1): series of one key are found by it in a small array. */
  id: number;
  name: string;
  unit: string;
  description: string;
  kind: Kind;
}

export const METRICS = {
  connectDuration: { id: 0, name: 'kscope.tcp.connect.duration', unit: 's', description: 'TCP connect latency (SYN_SENT to ESTABLISHED)', kind: 'exphist' },
  connectionsOpened: { id: 1, name: 'kscope.tcp.connections.opened', unit: '{connection}', description: 'TCP connections established', kind: 'sum' },
  connectionsFailed: { id: 2, name: 'kscope.tcp.connections.failed', unit: '{connection}', description: 'TCP connects that failed', kind: 'sum' },
  connectionsClosed: { id: 3, name: 'kscope.tcp.connections.closed', unit: '{connection}', description: 'TCP connections closed', kind: 'sum' },
  bytesSent: { id: 4, name: 'kscope.tcp.bytes.sent', unit: 'By', description: 'Payload bytes acknowledged by the peer', kind: 'sum' },
  bytesReceived: { id: 5, name: 'kscope.tcp.bytes.received', unit: 'By', description: 'Payload bytes received', kind: 'sum' },
  retransmits: { id: 6, name: 'kscope.tcp.retransmits', unit: '{segment}', description: 'TCP segments retransmitted', kind: 'sum' },
  resets: { id: 7, name: 'kscope.tcp.resets', unit: '{reset}', description: 'TCP resets sent or received', kind: 'sum' },
  rtt: { id: 8, name: 'kscope.tcp.rtt', unit: 's', description: 'Smoothed RTT of connections at close', kind: 'exphist' },
  processStarts: { id: 9, name: 'kscope.process.starts', unit: '{process}', description: 'Processes started (exec)', kind: 'sum' },
  processExits: { id: 10, name: 'kscope.process.exits', unit: '{process}', description: 'Processes exited', kind: 'sum' },
  oomKills: { id: 11, name: 'kscope.process.oom_kills', unit: '{process}', description: 'Processes chosen as OOM victims', kind: 'sum' },
} as const satisfies Record<string, MetricDef>;

export const METRIC_COUNT = Object.keys(METRICS).length;

interface Series {
  def: MetricDef;
  attrs: KeyValue[];
  value: number;
  hist: ExpHistogram | null;
  startTime: bigint;
  touched: boolean;
}

/** The series of one key (peer or label), indexed by MetricDef.id. */
type SeriesSlots = Array<Series | null>;

const newSlots = (): SeriesSlots => new Array<Series | null>(METRIC_COUNT).fill(null);

/** Stable content key of a resource's attributes (computed once per resource object). */
export function resourceKey(r: Resource): string {
  let k = '';
  for (const a of r.attributes) k += `${a.key}\u0001${valueKey(a.value)}\u0002`;
  return k;
}

function valueKey(v: unknown): string {
  if (typeof v === 'bigint') return `i${v}`;
  if (typeof v === 'number') return `d${v}`;
  if (typeof v === 'string') return `s${v}`;
  if (typeof v === 'boolean') return `b${v}`;
  if (v instanceof Uint8Array) return `x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
  if (Array.isArray(v)) return `a[${v.map(valueKey).join(',')}]`;
  if (v && typeof v === 'object' && 'values' in v) return `k{${(v as { values: { key: string; value: unknown }[] }).values.map((x) => `${x.key}:${valueKey(x.value)}`).join(',')}}`;
  return 'n';
}

class ResourceState {
  key = '';
  /** Every series in creation order (collect walks this). */
  readonly list: Series[] = [];
  /** IPv4 peers by Endpoint.numKey. */
  readonly peerNum = new Map<number, SeriesSlots>();
  /** Other peers by Endpoint.textKey. */
  readonly peerText = new Map<string, SeriesSlots>();
  /** Peers folded into "_other". */
  other: SeriesSlots | null = null;
  /** Label-keyed series (add/observe) by their key. */
  readonly labeled = new Map<string, SeriesSlots>();
  /** Peer series with an extra attribute, by `${def.id}|${peer}|${extra}` (rare: failures). */
  readonly extra = new Map<string, Series>();
  /** Consecutive collects without any new data point. */
  idleCollects = 0;
  constructor(readonly resource: Resource) {}

  get peerCount(): number {
    return this.peerNum.size + this.peerText.size;
  }
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
  /** One state per distinct resource (by attribute content): the series that are exported. */
  private readonly resources = new Map<string, ResourceState>();
  /**
   * Resource object → its state. The enricher interns resources, but an event released from a
   * hold (or resolved while its cgroup is pending) may carry a fresh object with the same
   * attributes: it must land in the same series, not a twin with identical attributes.
   */
  private readonly byObject = new Map<Resource, ResourceState>();
  /** Series folded into "_other" because a resource hit its peer cap. */
  foldedPeers = 0;
  /** Events attributed to an existing resource because maxResources was reached. */
  foldedResources = 0;
  private lastCollect: bigint;
  /** Interned endpoints for addPeer (string address callers). */
  readonly endpoints = new EndpointTable();
  // One-entry cache: consecutive events mostly share a resource.
  private lastResource: Resource | undefined;
  private lastState: ResourceState | undefined;

  constructor(readonly cfg: MetricsConfig, now: bigint) {
    this.lastCollect = now;
  }

  private state(resource: Resource): ResourceState {
    if (resource === this.lastResource) return this.lastState!;
    let st = this.byObject.get(resource);
    if (st === undefined) {
      const key = resourceKey(resource);
      st = this.resources.get(key);
      if (st === undefined) {
        if (this.resources.size >= this.cfg.maxResources) {
          this.foldedResources++;
          return this.resources.values().next().value as ResourceState;
        }
        st = new ResourceState(resource);
        st.key = key;
        this.resources.set(key, st);
      }
      // Bounded: transient resource objects must not accumulate here.
      if (this.byObject.size >= this.cfg.maxResources * 2) this.byObject.clear();
      this.byObject.set(resource, st);
    }
    this.lastResource = resource;
    this.lastState = st;
    return st;
  }

  private forget(): void {
    this.lastResource = undefined;
    this.lastState = undefined;
  }

  /** The series slots of a peer after applying the cardinality cap. */
  private peerSlots(st: ResourceState, peer: Endpoint): SeriesSlots {
    const num = peer.numKey >= 0;
    let slots = num ? st.peerNum.get(peer.numKey) : st.peerText.get(peer.textKey);
    if (slots !== undefined) return slots;
    if (st.peerCount < this.cfg.maxPeersPerResource) {
      slots = newSlots();
      if (num) st.peerNum.set(peer.numKey, slots);
      else st.peerText.set(peer.textKey, slots);
      return slots;
    }
    this.foldedPeers++;
    return (st.other ??= newSlots());
  }

  private create(st: ResourceState, def: MetricDef, attrs: KeyValue[], now: bigint): Series {
    const s: Series = { def, attrs, value: 0, hist: def.kind === 'exphist' ? new ExpHistogram(this.cfg.histogramMaxSize) : null, startTime: now, touched: false };
    st.list.push(s);
    return s;
  }

  private labeled(st: ResourceState, def: MetricDef, key: string, attrs: KeyValue[] | (() => KeyValue[]), now: bigint): Series {
    let slots = st.labeled.get(key);
    if (slots === undefined) st.labeled.set(key, (slots = newSlots()));
    let s = slots[def.id];
    if (s == null) slots[def.id] = s = this.create(st, def, typeof attrs === 'function' ? attrs() : attrs, now);
    s.touched = true;
    return s;
  }

  /** `attrs` (or what the thunk returns) becomes the series' attributes when the series is new; it is kept, not copied. */
  add(resource: Resource, def: MetricDef, key: string, attrs: KeyValue[] | (() => KeyValue[]), value: number, now: bigint): void {
    this.labeled(this.state(resource), def, key, attrs, now).value += value;
  }

  observe(resource: Resource, def: MetricDef, key: string, attrs: KeyValue[] | (() => KeyValue[]), value: number, now: bigint): void {
    this.labeled(this.state(resource), def, key, attrs, now).hist!.record(value);
  }

  /** A metric keyed by the remote peer (capped). */
  addPeer(resource: Resource, def: MetricDef, address: string, port: number, value: number, now: bigint, extra?: KeyValue): void {
    const peer = this.endpoints.ofText(address, port);
    if (extra) this.addPeerExtra(resource, def, peer, value, now, extra);
    else this.addEndpoint(resource, def, peer, value, now);
  }

  /** addPeer with an interned endpoint (the hot path: no strings built or hashed). */
  addEndpoint(resource: Resource, def: MetricDef, peer: Endpoint, value: number, now: bigint): void {
    const st = this.state(resource);
    const slots = this.peerSlots(st, peer);
    let s = slots[def.id];
    if (s == null) slots[def.id] = s = this.create(st, def, slots === st.other ? OTHER_ENDPOINT.metricAttrs : peer.metricAttrs, now);
    s.touched = true;
    if (s.hist !== null) s.hist.record(value);
    else s.value += value;
  }

  /** A peer series with one more attribute (e.g. error.type), one series per extra value. */
  addPeerExtra(resource: Resource, def: MetricDef, peer: Endpoint, value: number, now: bigint, extra: KeyValue): void {
    const st = this.state(resource);
    const p = this.peerSlots(st, peer) === st.other ? OTHER_ENDPOINT : peer;
    const key = `${def.id}|${p.textKey}|${String(extra.value)}`;
    let s = st.extra.get(key);
    if (s === undefined) {
      s = this.create(st, def, [p.serverAddress, p.serverPort, extra], now);
      st.extra.set(key, s);
    }
    s.touched = true;
    if (s.hist !== null) s.hist.record(value);
    else s.value += value;
  }

  /** Builds the metrics payload and, for delta temporality, resets the series. */
  collect(now: bigint, scope: { name: string; version: string }): MetricsData {
    const delta = this.cfg.temporality === 'delta';
    const temporality = delta ? AggregationTemporality.Delta : AggregationTemporality.Cumulative;
    const out: MetricsData = { resourceMetrics: [] };
    const idleLimit = delta ? IDLE_COLLECTS_DELTA : IDLE_COLLECTS_CUMULATIVE;
    this.forget();
    for (const st of this.resources.values()) {
      let active = false;
      for (const s of st.list) if (s.touched) { active = true; break; }
      if (active) st.idleCollects = 0;
      else if (++st.idleCollects >= idleLimit) {
        this.resources.delete(st.key);
        this.byObject.clear();
        continue;
      }
      const byName = new Map<string, Metric>();
      for (const s of st.list) {
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
    this.forget();
    for (const [k, st] of this.resources) if (!alive(st.resource)) this.resources.delete(k);
    this.byObject.clear();
    this.forget();
  }

  get resourceCount(): number {
    return this.resources.size;
  }
}

export { ATTR_ERROR_TYPE };
