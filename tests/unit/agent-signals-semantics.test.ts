// Signal semantics an audit found wrong (A–G), each driven through the real EventDecoder and
// SignalBuilder (or the whole AgentPipeline): records come from the committed fixture
// tests/fixtures/tcp-proc-loopback.kscope, patched through the decoder's layouts (layouts.ts)
// where a case is not in it, or built with those layouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  EVENT_HEADER, EXEC_EVENT, EventDecoder, EventFlag, EventType, PROC_EVENT, TCP_EVENT, decodeAll, frameRecords, splitRecords,
  type KernelEvent,
} from '../../agent/src/decode/index.ts';
import { FixtureReader } from '../../agent/src/sources/fixture.ts';
import { createReplayEnricher, recordedHostOf } from '../../agent/src/enrich/index.ts';
import { defaultEnricherConfig } from '../../agent/src/enrich/enricher.ts';
import { AgentPipeline, type AgentExporters } from '../../agent/src/pipeline.ts';
import { parseAgentConfig } from '../../agent/src/config.ts';
import { SignalBuilder, defaultSignalsConfig, type SignalsConfig } from '../../agent/src/signals/builder.ts';
import { METRICS } from '../../agent/src/signals/metrics.ts';
import type { ProcEventFields } from '../../agent/src/signals/events.ts';
import { replayThroughAgent } from '../fixtures/golden-otlp.ts';
import {
  getAttr, type AnyValue, type KeyValue, type LogsData, type Metric, type MetricsData, type Resource, type SignalData, type SignalType, type Span,
  StatusCode,
} from '../../proto/src/model.ts';
import { silentLogger } from '../../lib/log.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/tcp-proc-loopback.kscope', import.meta.url));
const W = (JSON.parse(readFileSync(new URL('../fixtures/tcp-proc-loopback.workload.json', import.meta.url), 'utf8')) as {
  workload: {
    serverPid: number; clientPid: number; host: string; ports: { server: number; refused: number };
    procs: { pid: number; exitCode: number }[]; cgroup: { id: string };
  };
}).workload;

// ------------------------------------------------------------------ records

interface Rec { rec: Uint8Array; ev: KernelEvent }

/** Every record of the fixture, with its decoded form to pick records by. */
function fixture(): { header: FixtureReader['header']; recs: Rec[] } {
  const r = new FixtureReader(FIXTURE);
  const recs: Rec[] = [];
  try {
    for (let f = r.next(); f; f = r.next())
      for (const rec of splitRecords(f.buf, f.byteLength, f.count)) recs.push({ rec, ev: decodeAll(frameRecords([rec]))[0]! });
    return { header: r.header, recs };
  } finally {
    r.close();
  }
}

const H = EVENT_HEADER.fields;
const T = TCP_EVENT.fields;
const P = PROC_EVENT.fields;
const X = EXEC_EVENT.fields;

/** A copy of a TCP record with fields rewritten at the decoder's layout offsets. */
function patchTcp(rec: Uint8Array, f: {
  type?: number; flags?: number; tgid?: number; cookie?: bigint; durationNs?: bigint; error?: number; srttUs?: number;
  dport?: number; daddr?: [number, number, number, number];
}): Uint8Array {
  const u8 = rec.slice();
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  if (f.type !== undefined) dv.setUint16(H.type.offset, f.type, true);
  if (f.flags !== undefined) dv.setUint16(H.flags.offset, f.flags, true);
  if (f.tgid !== undefined) dv.setUint32(H.tgid.offset, f.tgid, true);
  if (f.cookie !== undefined) dv.setBigUint64(T.sock_cookie.offset, f.cookie, true);
  if (f.durationNs !== undefined) dv.setBigUint64(T.duration_ns.offset, f.durationNs, true);
  if (f.error !== undefined) dv.setInt32(T.error.offset, f.error, true);
  if (f.srttUs !== undefined) dv.setUint32(T.srtt_us.offset, f.srttUs, true);
  if (f.dport !== undefined) dv.setUint16(T.dport.offset, f.dport, true);
  if (f.daddr !== undefined) u8.set(f.daddr, T.daddr.offset);
  return u8;
}

function header(dv: DataView, u8: Uint8Array, type: number, tgid: number, ts: bigint, cgroup: bigint, comm: string): void {
  dv.setBigUint64(H.ts_ns.offset, ts, true);
  dv.setBigUint64(H.cgroup_id.offset, cgroup, true);
  dv.setUint32(H.tgid.offset, tgid, true);
  dv.setUint32(H.tid.offset, tgid, true);
  dv.setUint16(H.type.offset, type, true);
  u8.set(new TextEncoder().encode(comm).subarray(0, H.comm.size - 1), H.comm.offset);
}

/** A proc record (fork, exit) built with the decoder's layout. */
function procRecord(type: number, tgid: number, ts: bigint, cgroup: bigint, comm: string, f: { ppid?: number; child?: number; wstatus?: number; durationNs?: bigint }): Uint8Array {
  const u8 = new Uint8Array(PROC_EVENT.size);
  const dv = new DataView(u8.buffer);
  header(dv, u8, type, tgid, ts, cgroup, comm);
  dv.setBigUint64(P.duration_ns.offset, f.durationNs ?? 0n, true);
  dv.setUint32(P.ppid.offset, f.ppid ?? 0, true);
  dv.setUint32(P.child_pid.offset, f.child ?? 0, true);
  dv.setInt32(P.exit_code.offset, f.wstatus ?? 0, true);
  return u8;
}

function execRecord(tgid: number, ts: bigint, cgroup: bigint, comm: string, ppid: number, filename: string): Uint8Array {
  const u8 = new Uint8Array(EXEC_EVENT.size);
  const dv = new DataView(u8.buffer);
  header(dv, u8, EventType.ProcExec, tgid, ts, cgroup, comm);
  dv.setUint32(X.ppid.offset, ppid, true);
  const name = new TextEncoder().encode(filename);
  dv.setUint16(X.filename_len.offset, name.length, true);
  u8.set(name, X.filename.offset);
  return u8;
}

// ------------------------------------------------------------------ builder and output helpers

const res = (attrs: Record<string, string | bigint>): Resource =>
  ({ attributes: Object.entries(attrs).map(([key, value]) => ({ key, value })), droppedAttributesCount: 0 });

function builder(cfg: SignalsConfig = defaultSignalsConfig(), now?: () => bigint, toUnixNano = (m: bigint) => m + 1_700_000_000_000_000_000n): SignalBuilder {
  return new SignalBuilder(cfg, toUnixNano, undefined, now);
}

/** Decodes the records with the real decoder; each view goes to the builder with the resource of its owner. */
function feed(b: SignalBuilder, records: Uint8Array[], resourceOf: (tgid: number) => Resource): void {
  const dec = new EventDecoder({
    tcp: (v) => b.onTcp(v, resourceOf(v.tgid)),
    // a fork goes with the child's resource, as the pipeline hands it over
    proc: (v) => b.onProc(v, resourceOf(v.typeCode === EventType.ProcFork ? v.childPid : v.tgid)),
    exec: (v) => b.onProc(v as unknown as ProcEventFields, resourceOf(v.tgid)),
  });
  const buf = frameRecords(records);
  dec.decodeBatch(buf, buf.byteLength, records.length);
  assert.equal(dec.stats.records, records.length);
}

const dataPoints = (m: Metric): unknown[] => ('dataPoints' in m.data ? m.data.dataPoints : []);

interface Pt { resource: KeyValue[]; attrs: Record<string, AnyValue>; value?: bigint; count?: bigint; start: bigint; time: bigint }

function points(md: MetricsData, metric: string, pid?: number): Pt[] {
  const out: Pt[] = [];
  for (const rm of md.resourceMetrics) {
    if (pid !== undefined && getAttr(rm.resource.attributes, 'process.pid') !== BigInt(pid)) continue;
    for (const sm of rm.scopeMetrics)
      for (const m of sm.metrics) {
        if (m.name !== metric) continue;
        for (const p of dataPoints(m) as Array<{ attributes: KeyValue[]; value?: bigint | number; count?: bigint; startTimeUnixNano: bigint; timeUnixNano: bigint }>)
          out.push({
            resource: rm.resource.attributes, attrs: Object.fromEntries(p.attributes.map((a) => [a.key, a.value])),
            ...(m.data.type === 'sum' ? { value: BigInt(p.value as bigint) } : { count: p.count }), start: p.startTimeUnixNano, time: p.timeUnixNano,
          });
      }
  }
  return out;
}

const peersOf = (pts: Pt[]) => pts.map((p) => String(p.attrs['server.address'])).sort();
const spansOf = (b: SignalBuilder): Span[] => b.drainSpans().resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
const byPid = new Map<number, Resource>();
const procRes = (pid: number) => {
  let r = byPid.get(pid);
  if (!r) byPid.set(pid, (r = res({ 'process.pid': BigInt(pid) })));
  return r;
};

// ------------------------------------------------------------------ A

test('A: retransmits on accepted sockets are keyed by the local service endpoint, like closes', () => {
  const { recs } = fixture();
  const of = (type: string, pid: number, pred: (e: KernelEvent) => boolean) => recs.filter((x) => x.ev.type === type && x.ev.tgid === pid && pred(x.ev));
  const accepts = of('TcpAccept', W.serverPid, (e) => e.kind === 'tcp' && e.sport === W.ports.server);
  const serverCloses = of('TcpClose', W.serverPid, (e) => e.kind === 'tcp' && e.sport === W.ports.server);
  const connects = of('TcpConnect', W.clientPid, (e) => e.kind === 'tcp' && e.dport === W.ports.server);
  assert.equal(accepts.length, 5);
  assert.equal(serverCloses.length, 5);
  assert.equal(connects.length, 5);
  const retransmit = (x: Rec) => patchTcp(x.rec, { type: EventType.TcpRetransmit });
  const b = builder();
  // each socket retransmits once while open, then closes (server side)
  feed(b, [...accepts.map((x) => x.rec), ...accepts.map(retransmit), ...serverCloses.map((x) => x.rec), ...connects.map((x) => x.rec), ...connects.map(retransmit)], procRes);
  const md = b.collectMetrics();
  const server = points(md, 'kscope.tcp.retransmits', W.serverPid);
  const clientPorts = new Set(accepts.map((x) => (x.ev as { dport: number }).dport));
  assert.equal(clientPorts.size, 5, 'five clients, five ephemeral ports');
  assert.deepEqual(server.map((p) => [p.attrs['server.address'], p.attrs['server.port'], p.value]), [[W.host, BigInt(W.ports.server), 5n]],
    'one series for the server endpoint, not one per client port');
  const sent = points(md, 'kscope.tcp.bytes.sent', W.serverPid);
  assert.deepEqual(server.map((p) => p.attrs), sent.map((p) => p.attrs), 'the same peer dimension as the server\'s closes');
  // outbound sockets keep the remote endpoint (the server they talk to)
  const client = points(md, 'kscope.tcp.retransmits', W.clientPid);
  assert.deepEqual(client.map((p) => [p.attrs['server.address'], p.attrs['server.port'], p.value]), [[W.host, BigInt(W.ports.server), 5n]]);
});

// ------------------------------------------------------------------ B

/** The fixture's first connect to the server, re-aimed at 10.0.0.<n>:80 and owned by `tgid`. */
function connectTo(base: Rec, n: number, tgid: number, cookie: bigint): Uint8Array {
  return patchTcp(base.rec, { daddr: [10, 0, 0, n], dport: 80, tgid, cookie });
}

function firstConnect(): Rec {
  return fixture().recs.find((x) => x.ev.type === 'TcpConnect' && x.ev.kind === 'tcp' && x.ev.dport === W.ports.server)!;
}

test('B: the peer cap is per workload (pod uid, else container id, else process)', () => {
  const cfg = defaultSignalsConfig();
  cfg.metrics.maxPeersPerResource = 2;
  const b = builder(cfg);
  const base = firstConnect();
  const r: Record<number, Resource> = {
    1: res({ 'k8s.pod.uid': 'pod-a', 'container.id': 'c1', 'process.pid': 1n }),
    2: res({ 'k8s.pod.uid': 'pod-a', 'container.id': 'c2', 'process.pid': 2n }),
    3: res({ 'k8s.pod.uid': 'pod-b', 'process.pid': 3n }),
    4: res({ 'container.id': 'c9', 'process.pid': 4n }),
    5: res({ 'container.id': 'c9', 'process.pid': 5n }),
    6: res({ 'process.pid': 6n }),
    7: res({ 'process.pid': 7n }),
  };
  let cookie = 1000n;
  const plan: Array<[number, number[]]> = [[1, [1, 2]], [2, [3, 1]], [3, [3, 4]], [4, [1, 2]], [5, [3]], [6, [1, 2]], [7, [3]]];
  feed(b, plan.flatMap(([pid, peers]) => peers.map((n) => connectTo(base, n, pid, cookie++))), (pid) => r[pid]!);
  const md = b.collectMetrics();
  const peers = (pid: number) => peersOf(points(md, 'kscope.tcp.connect.duration', pid));
  assert.deepEqual(peers(1), ['10.0.0.1', '10.0.0.2']);
  assert.deepEqual(peers(2), ['10.0.0.1', '_other'], 'pod-a already has 2 peers: a third folds; a peer it has does not');
  assert.deepEqual(peers(3), ['10.0.0.3', '10.0.0.4'], 'another pod has its own cap');
  assert.deepEqual(peers(5), ['_other'], 'no pod: processes of one container share the cap');
  assert.deepEqual(peers(7), ['10.0.0.3'], 'neither: each process is its own workload');
});

/**
 * One pod with a peer cap of 2: the returned function feeds one connect to 10.0.0.<n> per peer,
 * collects the interval, and returns its connect-duration points.
 */
function twoPeerCap(temporality: 'delta' | 'cumulative'): (peers: number[]) => Pt[] {
  const cfg = defaultSignalsConfig();
  cfg.metrics.maxPeersPerResource = 2;
  cfg.metrics.temporality = temporality;
  const b = builder(cfg);
  const base = firstConnect();
  const r = res({ 'k8s.pod.uid': 'pod-a', 'process.pid': 1n });
  let cookie = 1n;
  return (peers) => {
    feed(b, peers.map((n) => connectTo(base, n, 1, cookie++)), () => r);
    return points(b.collectMetrics(), 'kscope.tcp.connect.duration');
  };
}

test('B: delta frees the peers that went a whole interval without events', () => {
  const collect = twoPeerCap('delta');
  const interval = (peers: number[]) => peersOf(collect(peers));
  assert.deepEqual(interval([1, 2]), ['10.0.0.1', '10.0.0.2']);
  assert.deepEqual(interval([3]), ['_other'], '1 and 2 were active in the interval before: still held');
  assert.deepEqual(interval([3]), ['10.0.0.3'], '1 and 2 went an interval without events: freed');
  assert.deepEqual(interval([1, 3]), ['10.0.0.1', '10.0.0.3']);
});

test('B: cumulative keeps every peer series (they must persist), so the cap stays taken', () => {
  const collect = twoPeerCap('cumulative');
  const interval = (peers: number[]) => collect(peers).map((p) => [String(p.attrs['server.address']), p.count]).sort();
  assert.deepEqual(interval([1, 2]), [['10.0.0.1', 1n], ['10.0.0.2', 1n]]);
  assert.deepEqual(interval([3]), [['10.0.0.1', 1n], ['10.0.0.2', 1n], ['_other', 1n]]);
  assert.deepEqual(interval([3]), [['10.0.0.1', 1n], ['10.0.0.2', 1n], ['_other', 2n]]);
});

// ------------------------------------------------------------------ C

/** A fake wall clock: a step per call, far from anything the events map to. */
function fakeWall(start: bigint) {
  const calls: bigint[] = [];
  let t = start;
  return { calls, now: () => { t += 1_000_000_000n; calls.push(t); return t; } };
}

test('C: metric points and BPF-failure logs are stamped with the wall clock, events with their own mapping', () => {
  const { header, recs } = fixture();
  // a replay's mapping (agent.openReplay): the recording's monotonic start → some Unix time
  const replayStart = 1_900_000_000_000_000_000n;
  const toUnixNano = (m: bigint) => m + replayStart - BigInt(header.startMonotonicNs);
  for (const temporality of ['delta', 'cumulative'] as const) {
    const cfg = defaultSignalsConfig();
    cfg.metrics.temporality = temporality;
    const wall = fakeWall(1_800_000_000_000_000_000n); // before every replayed event
    const b = builder(cfg, wall.now, toUnixNano);
    assert.equal(wall.calls.length, 1, 'the aggregator starts at the wall clock');
    feed(b, recs.map((x) => x.rec), procRes);
    const md = b.collectMetrics();
    const collectedAt = wall.calls.at(-1)!;
    const all = md.resourceMetrics.flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics.map((m) => m.name)));
    assert.ok(all.length > 5, 'the fixture makes metrics');
    for (const name of new Set(all))
      for (const p of points(md, name)) {
        assert.equal(p.time, collectedAt, `${temporality} ${name}: time is the collect's wall clock`);
        assert.equal(p.start, wall.calls[0], `${temporality} ${name}: start is the previous collect (here the start), never after time`);
      }
    const next = b.collectMetrics(); // nothing new
    if (temporality === 'cumulative') for (const p of points(next, 'kscope.tcp.bytes.sent')) assert.ok(p.start < p.time);
    // spans keep the events' own clock
    const span = spansOf(b)[0]!;
    assert.ok(span.endTimeUnixNano >= replayStart && span.endTimeUnixNano < replayStart + 60_000_000_000n, 'span time from toUnixNano');
    b.onBpfFailure(res({ 'service.name': 'kscope-agent' }), 'ks_prog', 'Operation not permitted', 'libbpf: ...');
    const log = b.drainLogs().resourceLogs.flatMap((rl) => rl.scopeLogs.flatMap((sl) => sl.logRecords)).find((l) => l.eventName === 'kscope.bpf.load_failure')!;
    assert.equal(log.timeUnixNano, wall.calls.at(-1), 'a log not tied to an event: the wall clock');
  }
});

test('C: the pipeline hands its wall clock to the builder', () => {
  const wall = fakeWall(1_800_000_000_000_000_000n);
  const cfg = parseAgentConfig({}, {});
  const nop = { async start() {}, async shutdown() {}, async consume() {} };
  const enricher = createReplayEnricher<KernelEvent>(defaultEnricherConfig(), recordedHostOf(fixture().header));
  const p = new AgentPipeline({
    signals: cfg.signals, batch: cfg.batch, enricher, exporters: { traces: nop, metrics: nop, logs: nop } as unknown as AgentExporters,
    toUnixNano: (m) => m, now: wall.now, logger: silentLogger(),
  });
  p.builder.metrics.add(res({ 'process.pid': 1n }), METRICS.connectionsOpened, 'outbound', [], 1);
  const [pt] = points(p.builder.collectMetrics(), METRICS.connectionsOpened.name);
  assert.deepEqual([pt!.start, pt!.time], [wall.calls[0], wall.calls.at(-1)]);
});

test('C: an agent replaying a fixture stamps metric points with this host\'s wall clock', { timeout: 60_000 }, async () => {
  const before = BigInt(Date.now()) * 1_000_000n;
  const out = await replayThroughAgent(FIXTURE);
  const after = BigInt(Date.now()) * 1_000_000n + 1_000_000_000n; // Date.now is ms: generous rounding
  const pts = out.metrics.flatMap((md) => md.resourceMetrics.flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics.flatMap((m) => dataPoints(m) as Array<{ startTimeUnixNano: bigint; timeUnixNano: bigint }>))));
  assert.ok(pts.length > 0);
  for (const p of pts) {
    assert.ok(p.timeUnixNano >= before && p.timeUnixNano <= after, `point time ${p.timeUnixNano} not within the run [${before}, ${after}]`);
    assert.ok(p.startTimeUnixNano >= before && p.startTimeUnixNano <= p.timeUnixNano, 'start within the run, not after time');
  }
});

// ------------------------------------------------------------------ D

test('D: a connect aborted in user space (sk_err 0) has one low-cardinality error.type; errno names stay', () => {
  const refused = fixture().recs.find((x) => x.ev.type === 'TcpConnectFail')!;
  assert.equal((refused.ev as { error: number }).error, 111);
  const b = builder();
  feed(b, [refused.rec, patchTcp(refused.rec, { error: 0, cookie: 77n }), patchTcp(refused.rec, { error: 0, cookie: 78n }), patchTcp(refused.rec, { error: 4000, cookie: 79n })], procRes);
  const spans = spansOf(b);
  assert.deepEqual(spans.map((s) => getAttr(s.attributes, 'error.type')), ['ECONNREFUSED', 'aborted', 'aborted', '_OTHER']);
  for (const s of spans) assert.equal(s.status.code, StatusCode.Error);
  assert.equal(spans[0]!.status.message, 'ECONNREFUSED');
  assert.doesNotMatch(spans[1]!.status.message, /errno 0/);
  const failed = points(b.collectMetrics(), 'kscope.tcp.connections.failed');
  assert.deepEqual(failed.map((p) => [p.attrs['error.type'], p.value]).sort(), [['ECONNREFUSED', 1n], ['_OTHER', 1n], ['aborted', 2n]],
    'the metric uses the span\'s error.type values');
});

// ------------------------------------------------------------------ E

test('E: a connect whose start was not seen records no latency, and its span says the duration is unknown', () => {
  const connects = fixture().recs.filter((x) => x.ev.type === 'TcpConnect' && x.ev.kind === 'tcp' && x.ev.dport === W.ports.server);
  const measured = connects[0]!, unknown = connects[1]!;
  const measuredNs = (measured.ev as { durationNs: number }).durationNs;
  assert.ok(measuredNs > 0);
  const b = builder();
  feed(b, [measured.rec, patchTcp(unknown.rec, { flags: (unknown.ev.flags | EventFlag.DurationUnknown), durationNs: 0n })], procRes);
  const [a, u] = spansOf(b);
  assert.equal(a!.endTimeUnixNano - a!.startTimeUnixNano, BigInt(measuredNs));
  assert.equal(getAttr(a!.attributes, 'kscope.duration_unknown'), undefined);
  assert.equal(getAttr(u!.attributes, 'kscope.duration_unknown'), true, 'the span is marked: its 0 length is not a measurement');
  assert.equal(u!.startTimeUnixNano, u!.endTimeUnixNano, 'only the end (ESTABLISHED) is known');
  const md = b.collectMetrics();
  const hist = points(md, 'kscope.tcp.connect.duration', W.clientPid);
  assert.deepEqual(hist.map((p) => p.count), [1n], 'only the measured connect is in the latency histogram');
  assert.deepEqual(points(md, 'kscope.tcp.connections.opened', W.clientPid).map((p) => p.value), [2n], 'both are counted as opened');
});

test('a close of a socket the probe never saw open is inbound when its ports say so (server port local, ephemeral remote)', () => {
  const close = fixture().recs.find((x) => x.ev.type === 'TcpClose' && x.ev.kind === 'tcp')!;
  const unseen = (sport: number, dport: number) => {
    const u8 = patchTcp(close.rec, { cookie: 0n, flags: close.ev.flags | EventFlag.OwnerUnknown, dport });
    new DataView(u8.buffer, u8.byteOffset, u8.byteLength).setUint16(T.sport.offset, sport, true);
    return u8;
  };
  const cfg = { ...defaultSignalsConfig(), ephemeralPorts: [32768, 60999] as const };
  const b = builder(cfg);
  // accepted before the agent started: local 8080, remote 45678 (ephemeral)
  feed(b, [unseen(8080, 45678), unseen(45679, 443)], procRes);
  const [inbound, outbound] = spansOf(b);
  assert.equal(getAttr(inbound!.attributes, 'server.port'), 8080n, 'the local end is the server');
  assert.equal(getAttr(inbound!.attributes, 'client.port'), 45678n);
  assert.equal(getAttr(outbound!.attributes, 'server.port'), 443n, 'a local ephemeral port: connected, outbound');
  const dirs = points(b.collectMetrics(), 'kscope.tcp.connections.closed').map((p) => p.attrs['kscope.tcp.direction']).sort();
  assert.deepEqual(dirs, ['inbound', 'outbound']);
});

test("a close the probe marked passive is inbound, even when its accept was not seen (still queued, or past the remembered ones)", () => {
  const close = fixture().recs.find((x) => x.ev.type === 'TcpClose' && x.ev.kind === 'tcp' && x.ev.tgid === W.clientPid)!;
  const b = builder();
  // the client's close record, marked passive: its local end (the client port) becomes the server
  feed(b, [patchTcp(close.rec, { cookie: 987_654_321n, flags: close.ev.flags | EventFlag.Passive })], procRes);
  const [span] = spansOf(b);
  assert.equal(getAttr(span!.attributes, 'server.port'), BigInt((close.ev as { sport: number }).sport));
  assert.deepEqual(points(b.collectMetrics(), 'kscope.tcp.connections.closed').map((p) => p.attrs['kscope.tcp.direction']), ['inbound']);
});

test('closes of sockets the probe never saw open (cookie 0) get a trace and span id each', () => {
  const close = fixture().recs.find((x) => x.ev.type === 'TcpClose' && x.ev.kind === 'tcp')!;
  const b = builder();
  feed(b, [0, 1, 2].map(() => patchTcp(close.rec, { cookie: 0n, flags: close.ev.flags | EventFlag.OwnerUnknown })), procRes);
  const spans = spansOf(b);
  assert.equal(spans.length, 3);
  const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');
  assert.equal(new Set(spans.map((s) => hex(s.traceId))).size, 3, 'one trace per connection');
  assert.equal(new Set(spans.map((s) => hex(s.spanId))).size, 3);
  for (const s of spans) assert.equal(s.parentSpanId.length, 0, 'no parent: the open span was never seen');
});

// ------------------------------------------------------------------ F

test('F: each folded series is counted once', () => {
  const cfg = defaultSignalsConfig();
  cfg.metrics.maxPeersPerResource = 1;
  const b = builder(cfg);
  const { recs } = fixture();
  const base = recs.find((x) => x.ev.type === 'TcpConnect' && x.ev.kind === 'tcp' && x.ev.dport === W.ports.server)!;
  const close = recs.find((x) => x.ev.type === 'TcpClose' && x.ev.tgid === W.clientPid)!;
  const closeTo = (n: number, cookie: bigint) => patchTcp(close.rec, { daddr: [10, 0, 0, n], dport: 80, tgid: 1, cookie, srttUs: 0 });
  feed(b, [
    connectTo(base, 1, 1, 1n), // the one peer under the cap
    connectTo(base, 2, 1, 2n), connectTo(base, 2, 1, 3n), connectTo(base, 2, 1, 4n), // folded: connect.duration of .2
    closeTo(2, 2n), closeTo(2, 3n), // folded: bytes.sent and bytes.received of .2
    connectTo(base, 3, 1, 5n), // folded: connect.duration of .3
  ], () => res({ 'process.pid': 1n }));
  assert.equal(b.metrics.foldedPeers, 4, '(.2, duration), (.2, sent), (.2, received), (.3, duration)');
  const other = points(b.collectMetrics(), 'kscope.tcp.connect.duration').find((p) => p.attrs['server.address'] === '_other')!;
  assert.equal(other.count, 4n, 'every folded event is still in _other');
});

test('F: the pipeline exports both fold counters', async () => {
  const { header, recs } = fixture();
  const cfg = parseAgentConfig({ signals: { metrics: { max_peers_per_resource: 1, max_resources: 1 } } }, {});
  const nop = { async start() {}, async shutdown() {}, async consume() {} };
  const enricher = createReplayEnricher<KernelEvent>({ ...defaultEnricherConfig(), holdMs: 60_000 }, recordedHostOf(header));
  await enricher.start();
  const p = new AgentPipeline({
    signals: cfg.signals, batch: cfg.batch, enricher, exporters: { traces: nop, metrics: nop, logs: nop } as unknown as AgentExporters,
    toUnixNano: (m) => m, logger: silentLogger(),
  });
  const buf = frameRecords(recs.map((x) => x.rec));
  p.onBatch(buf, buf.byteLength, recs.length);
  await p.shutdown();
  const m = p.builder.metrics;
  assert.ok(m.foldedPeers > 0 && m.foldedResources > 0, `both caps hit (${m.foldedPeers}, ${m.foldedResources})`);
  const text = p.telemetry.render();
  assert.match(text, new RegExp(`^kscope_agent_metric_series_folded_total ${m.foldedPeers}$`, 'm'));
  assert.match(text, new RegExp(`^kscope_agent_metric_resources_folded_total ${m.foldedResources}$`, 'm'));
});

// ------------------------------------------------------------------ G

test('G: a process starts at fork (once per process), and a killed process reports 128 + signal', async () => {
  const { header, recs } = fixture();
  const cg = BigInt(W.cgroup.id);
  const t0 = BigInt(header.endMonotonicNs);
  const ms = (n: number) => t0 + BigInt(n) * 1_000_000n;
  const worker = 40001, chain = 40002;
  const extra = [
    // a fork-only worker (never execs), killed by SIGKILL
    procRecord(EventType.ProcFork, W.clientPid, ms(1), cg, 'ks-wl-client', { ppid: 1, child: worker }),
    procRecord(EventType.ProcExit, worker, ms(2), cg, 'ks-wl-client', { ppid: W.clientPid, wstatus: 9, durationNs: 1_000_000n }),
    // an exec chain: sh execs true; one process
    procRecord(EventType.ProcFork, W.clientPid, ms(3), cg, 'ks-wl-client', { ppid: 1, child: chain }),
    execRecord(chain, ms(4), cg, 'sh', W.clientPid, '/bin/sh'),
    execRecord(chain, ms(5), cg, 'true', W.clientPid, '/usr/bin/true'),
    procRecord(EventType.ProcExit, chain, ms(6), cg, 'true', { ppid: W.clientPid, wstatus: 0, durationNs: 2_000_000n }),
  ];
  const cfg = parseAgentConfig({ signals: { logs: { process_exec_exit: true } } }, {});
  const metrics: MetricsData[] = [];
  const logs: LogsData[] = [];
  const exporter = <S extends SignalType>(signal: S) => ({
    async start() {}, async shutdown() {},
    async consume(batch: SignalData[S]) {
      if (signal === 'metrics') metrics.push(batch as MetricsData);
      if (signal === 'logs') logs.push(batch as LogsData);
    },
  });
  const enricher = createReplayEnricher<KernelEvent>({ ...defaultEnricherConfig(), holdMs: 60_000 }, recordedHostOf(header));
  await enricher.start();
  const p = new AgentPipeline({
    signals: cfg.signals, batch: cfg.batch, enricher,
    exporters: { traces: exporter('traces'), metrics: exporter('metrics'), logs: exporter('logs') } as unknown as AgentExporters,
    toUnixNano: (m) => m, logger: silentLogger(),
  });
  const records = [...recs.map((x) => x.rec), ...extra];
  const buf = frameRecords(records);
  p.onBatch(buf, buf.byteLength, records.length);
  await p.shutdown();
  const sum = (metric: string, pid: number) => metrics.flatMap((md) => points(md, metric, pid)).reduce((n, pt) => n + pt.value!, 0n);
  const resourceOf = (metric: string, pid: number) => metrics.flatMap((md) => points(md, metric, pid)).map((pt) => pt.resource);
  for (const pid of [...W.procs.map((x) => x.pid), worker, chain]) {
    assert.equal(sum('kscope.process.starts', pid), 1n, `one start for pid ${pid}`);
    assert.equal(sum('kscope.process.exits', pid), 1n, `one exit for pid ${pid}`);
    // an exec chain ends on another image than its first exec's, where its start is
    if (pid !== chain) assert.deepEqual(resourceOf('kscope.process.starts', pid), resourceOf('kscope.process.exits', pid), `start and exit of ${pid} on one resource`);
  }
  assert.equal(getAttr(resourceOf('kscope.process.starts', chain)[0]!, 'process.executable.path'), '/bin/sh', 'the chain starts as its first exec');
  const records2 = logs.flatMap((ld) => ld.resourceLogs.flatMap((rl) => rl.scopeLogs.flatMap((sl) => sl.logRecords)));
  const exitOf = (pid: number) => records2.find((l) => l.eventName === 'kscope.process.exit' && getAttr(l.attributes, 'process.pid') === BigInt(pid))!;
  assert.equal(getAttr(exitOf(worker).attributes, 'process.exit.code'), 137n, 'SIGKILL: 128 + 9, as shells and Kubernetes say');
  assert.equal(getAttr(exitOf(worker).attributes, 'kscope.process.term_signal'), 9n);
  assert.equal(exitOf(worker).body, 'exit ks-wl-client signal 9');
  assert.equal(getAttr(exitOf(chain).attributes, 'process.exit.code'), 0n);
  for (const w of W.procs) assert.equal(getAttr(exitOf(w.pid).attributes, 'process.exit.code'), BigInt(w.exitCode), 'exit(n) stays n');
  assert.equal(records2.filter((l) => l.eventName === 'kscope.process.exec' && getAttr(l.attributes, 'process.pid') === BigInt(chain)).length, 2,
    'each exec stays a log record of its own');
});
