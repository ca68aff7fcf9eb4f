// The collector's own metrics: counters and gauges with labels, rendered as Prometheus text.
// Label values include tenant names, which senders control, so each metric keeps at most
// `maxSeries` label sets; further ones are folded into one series with every label "_other".

type Labels = Record<string, string>;

interface Series {
  labels: Labels;
  value: number;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function seriesKey(labels: Labels): string {
  let k = '';
  for (const name in labels) k += `${name}\u0000${labels[name]}\u0001`;
  return k;
}

export class MetricFamily {
  readonly series = new Map<string, Series>();
  overflowed = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly maxSeries: number,
  ) {}

  /** Returns the series for these labels (created on first use); hot callers keep the handle. */
  at(labels: Labels): Series {
    const key = seriesKey(labels);
    let s = this.series.get(key);
    if (s) return s;
    if (this.series.size >= this.maxSeries) {
      this.overflowed++;
      const other: Labels = {};
      for (const n in labels) other[n] = '_other';
      const ok = seriesKey(other);
      s = this.series.get(ok);
      if (!s) {
        s = { labels: other, value: 0 };
        this.series.set(ok, s);
      }
      return s;
    }
    s = { labels: { ...labels }, value: 0 };
    this.series.set(key, s);
    return s;
  }

  add(labels: Labels, n = 1): void {
    this.at(labels).value += n;
  }

  set(labels: Labels, v: number): void {
    this.at(labels).value = v;
  }

  get(labels: Labels): number {
    return this.series.get(seriesKey(labels))?.value ?? 0;
  }

  /** Sum over all series whose labels include `match`. */
  sum(match: Labels = {}): number {
    let t = 0;
    for (const s of this.series.values()) if (matches(s.labels, match)) t += s.value;
    return t;
  }

  /** Removes the series whose labels include `match` (a component that is gone for good). */
  drop(match: Labels): void {
    for (const [k, s] of this.series) if (matches(s.labels, match)) this.series.delete(k);
  }
}

function matches(labels: Labels, match: Labels): boolean {
  for (const n in match) if (labels[n] !== match[n]) return false;
  return true;
}

export class MetricsRegistry {
  private readonly families = new Map<string, MetricFamily>();
  private readonly collectors: Array<() => void> = [];

  constructor(private readonly maxSeries = 2000) {}

  counter(name: string, help: string): MetricFamily {
    return this.family(name, help, 'counter');
  }

  gauge(name: string, help: string): MetricFamily {
    return this.family(name, help, 'gauge');
  }

  /** A callback run before each render (for gauges sampled on demand, e.g. queue sizes, RSS). */
  onCollect(fn: () => void): () => void {
    this.collectors.push(fn);
    return () => {
      const i = this.collectors.indexOf(fn);
      if (i >= 0) this.collectors.splice(i, 1);
    };
  }

  private family(name: string, help: string, type: 'counter' | 'gauge'): MetricFamily {
    let f = this.families.get(name);
    if (!f) {
      f = new MetricFamily(name, help, type, this.maxSeries);
      this.families.set(name, f);
    } else if (f.type !== type) {
      throw new Error(`metric ${name} registered as ${f.type} and ${type}`);
    }
    return f;
  }

  get(name: string): MetricFamily | undefined {
    return this.families.get(name);
  }

  /** Removes from every family the series whose labels include `match`. */
  dropSeries(match: Labels): void {
    for (const f of this.families.values()) f.drop(match);
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    for (const c of this.collectors) {
      try {
        c();
      } catch {
        // a failing sampler must not break the scrape
      }
    }
    let out = '';
    for (const f of this.families.values()) {
      out += `# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${f.name} ${f.type}\n`;
      for (const s of f.series.values()) {
        const names = Object.keys(s.labels);
        const lbl = names.length ? `{${names.map((n) => `${n}="${escapeLabel(s.labels[n])}"`).join(',')}}` : '';
        out += `${f.name}${lbl} ${Number.isFinite(s.value) ? s.value : s.value > 0 ? '+Inf' : s.value < 0 ? '-Inf' : 'NaN'}\n`;
      }
    }
    return out;
  }
}

/**
 * The counters every component shares, named after otelcol's: accepted / refused / dropped items
 * per component, signal and tenant.
 */
export class SelfTelemetry {
  readonly accepted: MetricFamily;
  readonly refused: MetricFamily;
  readonly dropped: MetricFamily;

  constructor(readonly registry: MetricsRegistry) {
    this.accepted = registry.counter('kscope_collector_accepted_items_total', 'Items (spans, data points, log records) a component passed on.');
    this.refused = registry.counter('kscope_collector_refused_items_total', 'Items a component refused with a retryable error (sender may retry).');
    this.dropped = registry.counter('kscope_collector_dropped_items_total', 'Items a component dropped for good (permanent error, queue full, retries exhausted).');
  }
}
