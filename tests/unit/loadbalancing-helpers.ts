// In-process fakes for the load-balancing exporter's unit tests: backends that record what each
// endpoint received (and can hang until their send is aborted), a resolver the test drives, and
// the exporter config the tests share.
import { validateConfig, type EndpointSender, type EndpointSenderFactory, type Resolver } from '../../collector/src/exporters/loadbalancing/index.ts';
import { collectSpans, hex } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { SignalData, SignalType, TracesData } from '../../proto/src/model.ts';
import type { RequestContext } from '../../collector/src/component/index.ts';

/** In-process backends: what each endpoint received; a backend can be made to hang. */
export class Backends {
  got = new Map<string, SignalData[SignalType][]>();
  hang = new Set<string>();
  abortedSends = 0;
  factory: EndpointSenderFactory = <S extends SignalType>(endpoint: string) => {
    const self = this;
    const sender: EndpointSender<S> = {
      async send(batch: SignalData[S], _ctx: RequestContext, abort: AbortSignal) {
        if (self.hang.has(endpoint)) {
          await new Promise<void>((_, rej) => {
            abort.addEventListener('abort', () => { self.abortedSends++; rej(abort.reason); }, { once: true });
          });
        }
        let l = self.got.get(endpoint);
        if (!l) self.got.set(endpoint, (l = []));
        l.push(batch);
      },
      async close() {},
    };
    return sender;
  };
  spansOf(ep: string) { return collectSpans((this.got.get(ep) ?? []) as TracesData[]); }
  total() { let n = 0; for (const ep of this.got.keys()) n += this.spansOf(ep).length; return n; }
  /** trace id → set of endpoints that got any of its spans. */
  traceHomes(): Map<string, Set<string>> {
    const m = new Map<string, Set<string>>();
    for (const ep of this.got.keys()) for (const s of this.spansOf(ep)) {
      const k = hex(s.traceId);
      let set = m.get(k);
      if (!set) m.set(k, (set = new Set()));
      set.add(ep);
    }
    return m;
  }
}

/** A resolver the test drives. */
export class ManualResolver implements Resolver {
  private cb?: (eps: string[]) => void;
  constructor(private eps: string[]) {}
  async start(cb: (eps: string[]) => void) { this.cb = cb; cb(this.eps); }
  set(eps: string[]) { this.eps = eps; this.cb?.(eps); }
  async shutdown() {}
}

export const settings = { id: 'loadbalancing', logger: testLogger() };
export const host = { reportFatal: (e: Error) => { throw e; } };
export const EPS = ['10.0.0.1:4317', '10.0.0.2:4317', '10.0.0.3:4317'];

export function lbConfig(extra: Record<string, unknown> = {}) {
  return validateConfig({
    resolver: { static: { hostnames: EPS } },
    sending_queue: { num_consumers: 2, drain_timeout: '2s' },
    retry_on_failure: { initial_interval: '10ms', max_interval: '50ms' },
    ...extra,
  }, 'exporters.loadbalancing');
}

export async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
