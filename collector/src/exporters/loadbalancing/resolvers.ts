// Where the backends of the load-balancing exporter come from. A resolver reports the full,
// current endpoint list ("host:port") whenever it changes; the exporter rebuilds its ring.
import { lookup as dnsLookup } from 'node:dns/promises';
import type { Logger } from '../../component/index.ts';
import type { V1EndpointSlice } from '@kubernetes/client-node';

export type MembershipListener = (endpoints: string[]) => void;

export interface Resolver {
  /** Resolves once (the listener may be called before this returns), then keeps watching. */
  start(onChange: MembershipListener): Promise<void>;
  shutdown(): Promise<void>;
}

export interface ResolverStats {
  resolutions: number;
  errors: number;
  lastError?: string;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function normalise(eps: Iterable<string>): string[] {
  return [...new Set(eps)].sort();
}

/** Joins an address and a port; IPv6 literals get brackets. */
export function hostPort(addr: string, port: number): string {
  return addr.includes(':') && !addr.startsWith('[') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

// ------------------------------------------------------------------ static

export class StaticResolver implements Resolver {
  readonly stats: ResolverStats = { resolutions: 0, errors: 0 };
  constructor(private readonly hostnames: string[]) {}
  async start(onChange: MembershipListener): Promise<void> {
    this.stats.resolutions++;
    onChange(normalise(this.hostnames));
  }
  async shutdown(): Promise<void> {}
}

// ------------------------------------------------------------------ DNS

export type AddressLookup = (hostname: string) => Promise<string[]>;

/** getaddrinfo through node:dns (honours /etc/hosts and the cluster resolver), all A and AAAA. */
export const systemLookup: AddressLookup = async (hostname) => {
  const rs = await dnsLookup(hostname, { all: true, verbatim: true });
  return rs.map((r) => r.address);
};

export interface DnsResolverOptions {
  hostname: string;
  port: number;
  intervalMs: number;
  timeoutMs: number;
  lookup?: AddressLookup;
  logger?: Logger;
}

/**
 * Re-resolves a (headless Service) name every interval. A failed or timed-out lookup keeps the
 * last known list, so a DNS hiccup does not empty the ring; an answer with other addresses
 * replaces it.
 */
export class DnsResolver implements Resolver {
  readonly stats: ResolverStats = { resolutions: 0, errors: 0 };
  private timer: NodeJS.Timeout | undefined;
  private current: string[] = [];
  private listener: MembershipListener | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly lookup: AddressLookup;

  constructor(private readonly o: DnsResolverOptions) {
    this.lookup = o.lookup ?? systemLookup;
  }

  async start(onChange: MembershipListener): Promise<void> {
    this.listener = onChange;
    await this.resolveNow();
    this.timer = setInterval(() => void this.resolveNow(), this.o.intervalMs);
    this.timer.unref();
  }

  /** One resolution (also used by tests); concurrent calls share the one in flight. */
  resolveNow(): Promise<void> {
    this.running ??= this.resolveOnce().finally(() => { this.running = undefined; });
    return this.running;
  }

  private async resolveOnce(): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    try {
      const addrs = await Promise.race([
        this.lookup(this.o.hostname),
        new Promise<never>((_, rej) => { t = setTimeout(() => rej(new Error(`DNS lookup of ${this.o.hostname} timed out`)), this.o.timeoutMs); }),
      ]);
      this.stats.resolutions++;
      const eps = normalise(addrs.map((a) => hostPort(a, this.o.port)));
      if (this.stopped || sameList(eps, this.current)) return;
      this.current = eps;
      this.listener?.(eps);
    } catch (err) {
      this.stats.errors++;
      this.stats.lastError = (err as Error).message;
      this.o.logger?.warn({ err: (err as Error).message, hostname: this.o.hostname }, 'loadbalancing: DNS resolution failed; keeping the last endpoints');
    } finally {
      clearTimeout(t);
    }
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}

// ------------------------------------------------------------------ Kubernetes EndpointSlices

/** The parts of a discovery.k8s.io/v1 EndpointSlice the resolver reads. */
export interface EndpointSliceLike {
  metadata?: { name?: string; namespace?: string; uid?: string };
  addressType?: string;
  endpoints?: Array<{ addresses?: string[]; conditions?: { ready?: boolean; terminating?: boolean } }>;
}

export interface SliceHandlers {
  upsert(slice: EndpointSliceLike): void;
  remove(slice: EndpointSliceLike): void;
  /** The source re-listed: these are all the slices that exist now. */
  reset(slices: EndpointSliceLike[]): void;
}

/** Delivers EndpointSlice events for one Service (a real informer, or a fake in tests). */
export interface EndpointSliceSource {
  start(h: SliceHandlers): Promise<void>;
  stop(): Promise<void>;
}

export interface K8sResolverOptions {
  /** "name.namespace" (namespace defaults to "default"). */
  service: string;
  ports: number[];
  source?: EndpointSliceSource;
  kubeconfig?: string;
  logger?: Logger;
}

export function parseServiceRef(service: string): { name: string; namespace: string } {
  const [name, namespace = 'default'] = service.split('.', 2);
  return { name, namespace };
}

/**
 * Ready endpoints of a Service's EndpointSlices, × each configured port. A pod that turns
 * not-ready or terminating leaves the ring at once (before DNS would notice).
 */
export class K8sResolver implements Resolver {
  readonly stats: ResolverStats = { resolutions: 0, errors: 0 };
  private readonly slices = new Map<string, string[]>();
  private current: string[] = [];
  private listener: MembershipListener | undefined;
  private source: EndpointSliceSource | undefined;

  constructor(private readonly o: K8sResolverOptions) {}

  private sliceKey(s: EndpointSliceLike): string {
    return s.metadata?.uid ?? `${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`;
  }

  private endpointsOf(s: EndpointSliceLike): string[] {
    const out: string[] = [];
    if (s.addressType === 'FQDN') return out;
    for (const ep of s.endpoints ?? []) {
      // The API says a nil ready condition means ready.
      if (ep.conditions?.ready === false || ep.conditions?.terminating === true) continue;
      const addr = ep.addresses?.[0];
      if (!addr) continue;
      for (const port of this.o.ports) out.push(hostPort(addr, port));
    }
    return out;
  }

  private publish(): void {
    this.stats.resolutions++;
    const all: string[] = [];
    for (const eps of this.slices.values()) all.push(...eps);
    const eps = normalise(all);
    if (sameList(eps, this.current)) return;
    this.current = eps;
    this.listener?.(eps);
  }

  async start(onChange: MembershipListener): Promise<void> {
    this.listener = onChange;
    this.source = this.o.source ?? (await informerSource(this.o));
    await this.source.start({
      upsert: (s) => { this.slices.set(this.sliceKey(s), this.endpointsOf(s)); this.publish(); },
      remove: (s) => { this.slices.delete(this.sliceKey(s)); this.publish(); },
      reset: (ss) => { this.slices.clear(); for (const s of ss) this.slices.set(this.sliceKey(s), this.endpointsOf(s)); this.publish(); },
    });
  }

  async shutdown(): Promise<void> {
    await this.source?.stop();
  }
}

/** The real source: an @kubernetes/client-node informer on the Service's EndpointSlices. */
async function informerSource(o: K8sResolverOptions): Promise<EndpointSliceSource> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
  else kc.loadFromDefault();
  const api = kc.makeApiClient(k8s.DiscoveryV1Api);
  const { name, namespace } = parseServiceRef(o.service);
  const labelSelector = `kubernetes.io/service-name=${name}`;
  const informer = k8s.makeInformer<V1EndpointSlice>(
    kc,
    `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
    () => api.listNamespacedEndpointSlice({ namespace, labelSelector }),
    labelSelector,
  );
  return {
    async start(h) {
      informer.on('add', (s) => h.upsert(s as EndpointSliceLike));
      informer.on('update', (s) => h.upsert(s as EndpointSliceLike));
      informer.on('delete', (s) => h.remove(s as EndpointSliceLike));
      informer.on('error', (err) => {
        o.logger?.warn({ err: (err as Error)?.message }, 'loadbalancing: EndpointSlice watch failed; restarting in 5s');
        setTimeout(() => void informer.start().then(() => h.reset(informer.list(namespace) as EndpointSliceLike[])).catch(() => {}), 5000).unref();
      });
      // Do not hold the collector's start-up hostage to an unreachable apiserver: after 10 s go on
      // with an empty ring (consume answers retryable) while the informer keeps trying.
      let t: NodeJS.Timeout | undefined;
      const synced = await Promise.race([
        informer.start().then(() => true),
        new Promise<boolean>((r) => { t = setTimeout(() => r(false), 10_000); }),
      ]);
      clearTimeout(t);
      if (synced) h.reset(informer.list(namespace) as EndpointSliceLike[]);
      else o.logger?.warn({ service: o.service }, 'loadbalancing: EndpointSlices not listed within 10s; starting with no backends');
    },
    async stop() {
      await informer.stop();
    },
  };
}
