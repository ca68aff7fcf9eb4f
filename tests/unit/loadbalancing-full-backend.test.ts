// Load-balancing exporter: a batch split over several backends waits (up to the caller's deadline)
// for a momentarily full backend queue instead of failing the whole batch, which would make the
// client resend the parts the other backends had already queued (duplicates there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoadBalancingExporter, type EndpointSender, type EndpointSenderFactory } from '../../collector/src/exporters/loadbalancing/index.ts';
import { HashRing } from '../../collector/src/exporters/loadbalancing/ring.ts';
import { RetryableError } from '../../collector/src/component/errors.ts';
import { collectSpans, span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { SignalData, SignalType, TracesData } from '../../proto/src/model.ts';
import { host, lbConfig, ManualResolver, until } from './loadbalancing-helpers.ts';

const EPS = ['10.0.0.1:4317', '10.0.0.2:4317'];

/** Backends recording what they got; one can be held until released. */
function sinks() {
  const got = new Map<string, TracesData[]>();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const held = new Set<string>();
  const factory: EndpointSenderFactory = <S extends SignalType>(endpoint: string) => {
    const sender: EndpointSender<S> = {
      async send(batch: SignalData[S]) {
        if (held.has(endpoint)) await gate;
        if (!got.has(endpoint)) got.set(endpoint, []);
        got.get(endpoint)!.push(batch as TracesData);
      },
      async close() {},
    };
    return sender;
  };
  return { factory, held, release, spansOf: (ep: string) => collectSpans(got.get(ep) ?? []).length };
}

function ownedBy(owner: string, n: number, salt: number) {
  const ring = new HashRing(EPS);
  const out = [];
  for (let i = 0; out.length < n; i++) {
    const id = tid(i, salt);
    if (ring.locateBytes(id) === owner) out.push(span(id));
  }
  return out;
}

const cfg = () => lbConfig({ resolver: { static: { hostnames: EPS } }, sending_queue: { num_consumers: 1, queue_size: 1, drain_timeout: '2s' } });

/** Fills the queue of EPS[1]: one batch held in its send, one waiting in its queue of 1. */
async function fillSecond(lb: LoadBalancingExporter<'traces'>) {
  await lb.consume(traces(ownedBy(EPS[1], 1, 1)), {});
  await new Promise((r) => setTimeout(r, 20));
  await lb.consume(traces(ownedBy(EPS[1], 1, 2)), {});
  await assert.rejects(lb.consume(traces(ownedBy(EPS[1], 1, 3)), {}), RetryableError, 'full (a batch for it alone is refused at once, as configured)');
}

test('a batch split over backends waits for a momentarily full backend instead of failing as a whole', async () => {
  const s = sinks();
  s.held.add(EPS[1]);
  const lb = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger() }, cfg(), 'traces', s.factory, new ManualResolver(EPS));
  await lb.start(host);
  await fillSecond(lb);
  const mixed = traces([...ownedBy(EPS[0], 5, 4), ...ownedBy(EPS[1], 5, 5)]);
  const p = lb.consume(mixed, { deadline: Date.now() + 5000 }).then(() => 'accepted', (e: unknown) => String(e));
  await until(() => s.spansOf(EPS[0]) === 5); // the other backend already has its part
  setTimeout(() => s.release(), 100); // room comes back
  // Refused instead, the client's resend would duplicate EPS[0]'s part.
  assert.equal(await p, 'accepted');
  await until(() => s.spansOf(EPS[1]) === 7);
  assert.equal(s.spansOf(EPS[0]), 5);
  await lb.shutdown();
});

test("the wait for a full backend ends at the caller's deadline", async () => {
  const s = sinks();
  s.held.add(EPS[1]);
  const lb = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger() }, cfg(), 'traces', s.factory, new ManualResolver(EPS));
  await lb.start(host);
  await fillSecond(lb);
  const t0 = Date.now();
  await assert.rejects(lb.consume(traces([...ownedBy(EPS[0], 2, 6), ...ownedBy(EPS[1], 2, 7)]), { deadline: t0 + 150 }), RetryableError);
  const took = Date.now() - t0;
  assert.ok(took >= 140 && took < 2000, `${took} ms`);
  s.release();
  await lb.shutdown();
});
