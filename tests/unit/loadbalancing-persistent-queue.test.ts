// Load-balancing exporter with sending_queue.storage: one persistent queue per backend in
// <directory>/<signal>/<endpoint as a file name>, OTLP-encoded; a removed backend's records are
// re-routed (now, or from its leftover directory after a restart) and its directory goes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HashRing, LoadBalancingExporter, validateConfig, type EndpointSender, type EndpointSenderFactory } from '../../collector/src/exporters/loadbalancing/index.ts';
import { collectSpans, hex, span, tid, traces } from '../../collector/src/processors/tail_sampling/testdata/fixtures.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { SignalData, SignalType, TracesData } from '../../proto/src/model.ts';
import { ManualResolver, until } from './loadbalancing-helpers.ts';

const host = { reportFatal: (e: Error) => { throw e; } };
const EPS = ['10.0.0.1:4317', '10.0.0.2:4317', '10.0.0.3:4317'];

/** In-process backends; a backend in `hang` holds every send until it is aborted. */
class Sinks {
  got = new Map<string, TracesData[]>();
  hang = new Set<string>();
  factory: EndpointSenderFactory = <S extends SignalType>(endpoint: string) => {
    const self = this;
    const sender: EndpointSender<S> = {
      async send(batch: SignalData[S], _ctx, abort) {
        if (self.hang.has(endpoint)) await new Promise<void>((_, rej) => abort.addEventListener('abort', () => rej(abort.reason), { once: true }));
        if (!self.got.has(endpoint)) self.got.set(endpoint, []);
        self.got.get(endpoint)!.push(batch as TracesData);
      },
      async close() {},
    };
    return sender;
  };
  spansOf(ep: string) { return collectSpans(this.got.get(ep) ?? []); }
  total() { let n = 0; for (const ep of this.got.keys()) n += this.spansOf(ep).length; return n; }
}

function cfgIn(dir: string, extra: Record<string, unknown> = {}) {
  return validateConfig({
    resolver: { static: { hostnames: EPS } },
    sending_queue: { num_consumers: 2, drain_timeout: '300ms', storage: { directory: dir, fsync: false } },
    retry_on_failure: { initial_interval: '10ms', max_interval: '50ms' },
    ...extra,
  }, 'exporters.loadbalancing');
}

/** `n` spans, each of its own trace, every one owned by `owner` on a ring of `members`. */
function ownedBy(owner: string, members: string[], n: number, salt: number) {
  const ring = new HashRing(members);
  const out = [];
  for (let i = 0; out.length < n; i++) {
    const id = tid(i, salt);
    if (ring.locateBytes(id) === owner) out.push(span(id, { name: `s${i}` }));
  }
  return out;
}

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ks-lbpq-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** The queue directory name of an IPv4 endpoint (see backendQueueDir). */
const backendQueueDir = (ep: string) => ep.replace(':', '_');

test('queue directory names: readable, reversible, and foreign names are not taken for ours', async () => {
  const { backendQueueDir, endpointOfQueueDir } = await import('../../collector/src/exporters/loadbalancing/exporter.ts');
  assert.equal(backendQueueDir('10.0.0.1:4317'), '10.0.0.1_4317');
  for (const ep of ['10.0.0.1:4317', '[fd00::1]:4317', 'my_host:4317', 'a.b-c:1', 'x%3A:2']) {
    const name = backendQueueDir(ep);
    assert.doesNotMatch(name, /[/:\\]/);
    assert.equal(endpointOfQueueDir(name), ep);
  }
  assert.notEqual(backendQueueDir('a_b:1'), backendQueueDir('a:b:1'));
  assert.equal(endpointOfQueueDir('lost+found'), undefined);
  assert.equal(endpointOfQueueDir('%zz'), undefined);
});

test('sending_queue.storage: every backend joins the ring with its own persistent queue and gets its share', withDir(async (dir) => {
  const be = new Sinks();
  const lb = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger() }, cfgIn(dir), 'traces', be.factory, new ManualResolver(EPS));
  await lb.start(host);
  assert.deepEqual([...lb.members], EPS, 'no backend left out of the ring');
  await lb.consume(traces(Array.from({ length: 300 }, (_, i) => span(tid(i, 7)))), {});
  await until(() => be.total() === 300);
  for (const ep of EPS) assert.ok(be.spansOf(ep).length > 0, `${ep} got its share`);
  assert.deepEqual(readdirSync(join(dir, 'traces')).sort(), EPS.map(backendQueueDir).sort(), 'one directory per backend, per signal');
  await lb.shutdown();
}));

test('a removed backend with persisted records re-routes them to the live backends, then its directory goes', withDir(async (dir) => {
  const be = new Sinks();
  const r = new ManualResolver(EPS);
  const lb = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger() }, cfgIn(dir, { sending_queue: { num_consumers: 2, drain_timeout: '5s', storage: { directory: dir, fsync: false } } }), 'traces', be.factory, r);
  await lb.start(host);
  const dead = EPS[1];
  be.hang.add(dead);
  for (let k = 0; k < 5; k++) await lb.consume(traces(ownedBy(dead, EPS, 40, k)), {});
  assert.equal(be.spansOf(dead).length, 0);
  r.set([EPS[0], EPS[2]]);
  await lb.settled();
  await until(() => be.spansOf(EPS[0]).length + be.spansOf(EPS[2]).length === 200);
  await until(() => !existsSync(join(dir, 'traces', backendQueueDir(dead))));
  assert.ok(lb.metrics().reroutedItems >= 200);
  await lb.shutdown();
}));

test('after a restart, the leftover queue of a backend no longer in the ring is re-routed and removed', withDir(async (dir) => {
  const be = new Sinks();
  const dead = EPS[1];
  be.hang.add(dead);
  // First life: the backend hangs; shutdown's drain times out and its records stay on disk.
  const lb1 = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger() }, cfgIn(dir), 'traces', be.factory, new ManualResolver(EPS));
  await lb1.start(host);
  const spans = ownedBy(dead, EPS, 120, 3);
  for (let k = 0; k < 4; k++) await lb1.consume(traces(spans.slice(k * 30, k * 30 + 30)), {});
  await lb1.shutdown();
  assert.equal(be.total(), 0);
  assert.ok(existsSync(join(dir, 'traces', backendQueueDir(dead))), 'kept on disk');

  // Second life without that backend: its records reach the new owners, each trace whole on one.
  const live = [EPS[0], EPS[2]];
  const lb2 = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger() }, cfgIn(dir), 'traces', be.factory, new ManualResolver(live));
  await lb2.start(host);
  await until(() => be.total() === 120);
  const ring = new HashRing(live);
  for (const ep of live) for (const s of be.spansOf(ep)) assert.equal(ring.locateBytes(s.traceId), ep, `trace ${hex(s.traceId)} on its owner`);
  await until(() => !existsSync(join(dir, 'traces', backendQueueDir(dead))));
  await lb2.shutdown();
  assert.equal(be.spansOf(dead).length, 0);
}));

test('a backend that comes back while its predecessor still drains waits for the directory and joins the ring', withDir(async (dir) => {
  const be = new Sinks();
  const r = new ManualResolver(EPS);
  const lb = new LoadBalancingExporter({ id: 'loadbalancing', logger: testLogger() }, cfgIn(dir), 'traces', be.factory, r);
  await lb.start(host);
  const flap = EPS[2];
  be.hang.add(flap);
  await lb.consume(traces(ownedBy(flap, EPS, 50, 9)), {});
  r.set([EPS[0], EPS[1]]);
  r.set(EPS); // back at once: its old queue's directory is still open
  be.hang.delete(flap);
  await lb.settled();
  assert.deepEqual([...lb.members], EPS, 'back in the ring');
  await lb.consume(traces(ownedBy(flap, EPS, 50, 10)), {});
  await until(() => be.total() === 100);
  await lb.shutdown();
}));
