// Aggregates events into metrics per resource (pod/container/process) with peer dimensions.
// Distinct peers are capped per workload (pod, else container, else process: resources are per
// process, and a workload's processes share their peers); peers beyond the cap fold into one
// "_other" series per resource (counted), so a scanning workload cannot blow up cardinality.
// Temporality is delta (reset at each collect) or cumulative.
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions';
import { ATTR_CONTAINER_ID, ATTR_K8S_POD_UID } from '@opentelemetry/semantic-conventions/incubating';
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
  /**
   * Distinct peers per workload (pod uid, else container id, else the process's resource) before
   * further peers fold into "_other" (YAML `max_peers_per_resource`, named before the cap moved
   * to the workload). Delta frees a peer once no event touched it for a whole interval;
   * cumulative keeps it until its resource is dropped (its series must keep being reported).
   */
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
  processStarts: { id: 9, name: 'kscope.process.starts', unit: '{process}', description: 'Processes started (fork)', kind: 'sum' },
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
  /** The peer this series belongs to (null: label-keyed). */
  peer: PeerSeries | null;
  /** Its key in ResourceState.extra (peer series with an extra attribute), else null. */
  extraKey: string | null;
}

/** The series of one key (peer or label), indexed by MetricDef.id. */
type SeriesSlots = Array<Series | null>;

const newSlots = (): SeriesSlots => new Array<Series | null>(METRIC_COUNT).fill(null);

/** Peer key in a workload: Endpoint.numKey (IPv4) or Endpoint.textKey. */
type PeerKey = number | string;

/** One peer's series in one resource. */
class PeerSeries {
  readonly slots: SeriesSlots = newSlots();
  /** An event recorded for this peer since the last collect (delta frees untouched peers). */
  touched = true;
}

/** A peer folded into "_other" in one resource: which of its metric series were counted as folded. */
class FoldedPeer {
  /** Bit per MetricDef.id. */
  counted = 0;
  touched = true;
}

/** What the peer cap is applied to: a pod, else a container, else one process's resource. */
class Workload {
  /** Peers with series in any of the workload's resources → how many of its resources hold them. */
  readonly peers = new Map<PeerKey, number>();
  resources = 0;
  constructor(readonly key: string) {}
}

/** The workload of a resource: k8s.pod.uid, else container.id, else the resource itself. */
function workloadKeyOf(r: Resource, resKey: string): string {
  let container: string | undefined;
  for (const a of r.attributes) {
    if (typeof a.value !== 'string' || a.value === '') continue;
    if (a.key === ATTR_K8S_POD_UID) return `pod\u0001${a.value}`;
    if (a.key === ATTR_CONTAINER_ID) container = a.value;
  }
  return container !== undefined ? `container\u0001${container}` : `resource\u0001${resKey}`;
}

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
  list: Series[] = [];
  /** IPv4 peers by Endpoint.numKey. */
  readonly peerNum = new Map<number, PeerSeries>();
  /** Other peers by Endpoint.textKey. */
  readonly peerText = new Map<string, PeerSeries>();
  /** The "_other" series (peers beyond the workload's cap). */
  other: PeerSeries | null = null;
  /** Peers folded into "_other", so each folded series is counted once (bounded, see newPeer). */
  readonly folded = new Map<PeerKey, FoldedPeer>();
  /** Label-keyed series (add/observe) by their key. */
  readonly labeled = new Map<string, SeriesSlots>();
  /** Peer series with an extra attribute, by `${def.id}|${peer}|${extra}` (rare: failures). */
  readonly extra = new Map<string, Series>();
  /** Consecutive collects without any new data point. */
  idleCollects = 0;
  constructor(readonly resource: Resource, readonly workload: Workload) {}
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
  /**
   * Metric series folded into "_other" because the workload hit its peer cap: each (resource,
   * peer, metric) once while the fold is remembered (delta: until the peer goes a whole interval
   * without events; at most maxPeersPerResource folded peers are remembered per resource).
   */
  foldedPeers = 0;
  /** Resources (objects) whose metrics went to another resource's series because maxResources was reached. */
  foldedResources = 0;
  private readonly foldedResourceSeen = new WeakSet<Resource>();
  /** Peer caps by workload key. */
  private readonly workloads = new Map<string, Workload>();
  /** Time of the last collect, on the collection clock: delta starts, new series' start times. */
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
          if (!this.foldedResourceSeen.has(resource)) {
            this.foldedResourceSeen.add(resource);
            this.foldedResources++;
          }
          return this.resources.values().next().value as ResourceState;
        }
        const wk = workloadKeyOf(resource, key);
        let w = this.workloads.get(wk);
        if (w === undefined) this.workloads.set(wk, (w = new Workload(wk)));
        w.resources++;
        st = new ResourceState(resource, w);
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

  /** The series of a peer after applying the workload's cardinality cap (st.other when folded). */
  private peerSeries(st: ResourceState, peer: Endpoint, defId: number): PeerSeries {
    const p = peer.numKey >= 0 ? st.peerNum.get(peer.numKey) : st.peerText.get(peer.textKey);
    if (p === undefined) return this.newPeer(st, peer, defId);
    p.touched = true;
    return p;
  }

  /** First event of a peer in a resource, or a folded peer's (off the per-event fast path). */
  private newPeer(st: ResourceState, peer: Endpoint, defId: number): PeerSeries {
    const num = peer.numKey >= 0;
    const key: PeerKey = num ? peer.numKey : peer.textKey;
    const w = st.workload;
    const holders = w.peers.get(key);
    if (holders !== undefined || w.peers.size < this.cfg.maxPeersPerResource) {
      w.peers.set(key, (holders ?? 0) + 1);
      const p = new PeerSeries();
      if (num) st.peerNum.set(peer.numKey, p);
      else st.peerText.set(peer.textKey, p);
      return p;
    }
    let f = st.folded.get(key);
    if (f === undefined) {
      // Bounded like the real peers: a scan must not grow it; forgetting only risks a recount.
      if (st.folded.size >= this.cfg.maxPeersPerResource) st.folded.clear();
      st.folded.set(key, (f = new FoldedPeer()));
    }
    f.touched = true;
    const bit = 1 << defId;
    if ((f.counted & bit) === 0) {
      f.counted |= bit;
      this.foldedPeers++;
    }
    let o = st.other;
    if (o === null) st.other = o = new PeerSeries();
    o.touched = true;
    return o;
  }

  /** A peer's last series is gone from a resource: the workload's cap frees up when no resource holds it. */
  private releasePeer(w: Workload, key: PeerKey): void {
    const n = w.peers.get(key);
    if (n === undefined) return;
    if (n <= 1) w.peers.delete(key);
    else w.peers.set(key, n - 1);
  }

  private dropResource(st: ResourceState): void {
    this.resources.delete(st.key);
    const w = st.workload;
    for (const k of st.peerNum.keys()) this.releasePeer(w, k);
    for (const k of st.peerText.keys()) this.releasePeer(w, k);
    if (--w.resources <= 0) this.workloads.delete(w.key);
  }

  /**
   * Delta: drops the peer series no event touched since the last collect, and the peers with
   * none left, so peers that went quiet free the workload's cap (cumulative keeps every series).
   */
  private prunePeers(st: ResourceState): void {
    const w = st.workload;
    for (const [k, p] of st.peerNum) {
      if (p.touched) p.touched = false;
      else { st.peerNum.delete(k); this.releasePeer(w, k); }
    }
    for (const [k, p] of st.peerText) {
      if (p.touched) p.touched = false;
      else { st.peerText.delete(k); this.releasePeer(w, k); }
    }
    if (st.other !== null) {
      if (st.other.touched) st.other.touched = false;
      else st.other = null;
    }
    for (const [k, f] of st.folded) {
      if (f.touched) f.touched = false;
      else st.folded.delete(k);
    }
    let stale = false;
    for (const s of st.list) if (!s.touched && s.peer !== null) { stale = true; break; }
    if (!stale) return;
    const kept: Series[] = [];
    for (const s of st.list) {
      if (s.touched || s.peer === null) kept.push(s);
      else if (s.extraKey !== null) st.extra.delete(s.extraKey);
      else s.peer.slots[s.def.id] = null;
    }
    st.list = kept;
  }

  // A new series starts at the last collect: the collection clock, like the points' times, so
  // start <= time holds whatever clock the events were stamped with (a replay's, say).
  private create(st: ResourceState, def: MetricDef, attrs: KeyValue[], peer: PeerSeries | null, extraKey: string | null): Series {
    const s: Series = {
      def, attrs, value: 0, hist: def.kind === 'exphist' ? new ExpHistogram(this.cfg.histogramMaxSize) : null,
      startTime: this.lastCollect, touched: false, peer, extraKey,
    };
    st.list.push(s);
    return s;
  }

  private labeled(st: ResourceState, def: MetricDef, key: string, attrs: KeyValue[] | (() => KeyValue[])): Series {
    let slots = st.labeled.get(key);
    if (slots === undefined) st.labeled.set(key, (slots = newSlots()));
    let s = slots[def.id];
    if (s == null) slots[def.id] = s = this.create(st, def, typeof attrs === 'function' ? attrs() : attrs, null, null);
    s.touched = true;
    return s;
  }

  /** `attrs` (or what the thunk returns) becomes the series' attributes when the series is new; it is kept, not copied. */
  add(resource: Resource, def: MetricDef, key: string, attrs: KeyValue[] | (() => KeyValue[]), value: number): void {
    this.labeled(this.state(resource), def, key, attrs).value += value;
  }

  observe(resource: Resource, def: MetricDef, key: string, attrs: KeyValue[] | (() => KeyValue[]), value: number): void {
    this.labeled(this.state(resource), def, key, attrs).hist!.record(value);
  }

  /** A metric keyed by the remote peer (capped). */
  addPeer(resource: Resource, def: MetricDef, address: string, port: number, value: number, extra?: KeyValue): void {
    const peer = this.endpoints.ofText(address, port);
    if (extra) this.addPeerExtra(resource, def, peer, value, extra);
    else this.addEndpoint(resource, def, peer, value);
  }

  /** addPeer with an interned endpoint (the hot path: no strings built or hashed). */
  addEndpoint(resource: Resource, def: MetricDef, peer: Endpoint, value: number): void {
    const st = this.state(resource);
    const p = this.peerSeries(st, peer, def.id);
    let s = p.slots[def.id];
    if (s == null) p.slots[def.id] = s = this.create(st, def, p === st.other ? OTHER_ENDPOINT.metricAttrs : peer.metricAttrs, p, null);
    s.touched = true;
    if (s.hist !== null) s.hist.record(value);
    else s.value += value;
  }

  /** A peer series with one more attribute (e.g. error.type), one series per extra value. */
  addPeerExtra(resource: Resource, def: MetricDef, peer: Endpoint, value: number, extra: KeyValue): void {
    const st = this.state(resource);
    const ps = this.peerSeries(st, peer, def.id);
    const p = ps === st.other ? OTHER_ENDPOINT : peer;
    const key = `${def.id}|${p.textKey}|${String(extra.value)}`;
    let s = st.extra.get(key);
    if (s === undefined) {
      s = this.create(st, def, [p.serverAddress, p.serverPort, extra], ps, key);
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
        this.dropResource(st);
        this.byObject.clear();
        continue;
      }
      if (delta) this.prunePeers(st);
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
    for (const st of this.resources.values()) if (!alive(st.resource)) this.dropResource(st);
    this.byObject.clear();
    this.forget();
  }

  get resourceCount(): number {
    return this.resources.size;
  }
}

export { ATTR_ERROR_TYPE };
