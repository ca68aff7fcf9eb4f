// The agent pipeline's size trigger holds inside one ring poll: a poll hands over everything since
// the last one (thousands of events at 10k/s), and the spans it makes must still leave in batches
// of at most send_batch_size, with nothing lost or duplicated. Driven by the recorded tcp-burst
// fixture replayed as one ring batch through the real decoder, replay enricher and signal builder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { AgentPipeline, type AgentExporters } from '../../agent/src/pipeline.ts';
import { parseAgentConfig } from '../../agent/src/config.ts';
import { frameRecords, splitRecords } from '../../agent/src/decode/decoder.ts';
import { FixtureReader } from '../../agent/src/sources/fixture.ts';
import { createReplayEnricher, recordedHostOf } from '../../agent/src/enrich/index.ts';
import { defaultEnricherConfig } from '../../agent/src/enrich/enricher.ts';
import type { KernelEvent } from '../../agent/src/decode/index.ts';
import type { SignalData, SignalType, Span, TracesData } from '../../proto/src/model.ts';
import { silentLogger } from '../../lib/log.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/tcp-burst.kscope', import.meta.url));

/** The fixture's header and every record, as one ring batch. */
function fixtureAsOnePoll(): { header: FixtureReader['header']; buf: ArrayBuffer; count: number } {
  const r = new FixtureReader(FIXTURE);
  const records: Uint8Array[] = [];
  try {
    for (let f = r.next(); f; f = r.next()) records.push(...splitRecords(f.buf, f.byteLength, f.count));
    return { header: r.header, buf: frameRecords(records), count: records.length };
  } finally {
    r.close();
  }
}

// Ids are salted per pipeline, so spans of two runs are compared by content; ids stay unique per run.
const spanKey = (s: Span) =>
  `${s.name}|${s.kind}|${s.startTimeUnixNano}|${s.endTimeUnixNano}|${s.status.code}|` + s.attributes.map((a) => `${a.key}=${String(a.value)}`).join(',');
const spanId = (s: Span) => Buffer.from(s.traceId).toString('hex') + Buffer.from(s.spanId).toString('hex');

/** Replays the poll through a pipeline with this batch size; returns the span batches exported. */
async function run(sendBatchSize: number): Promise<{ sizes: number[]; spans: string[]; ids: string[] }> {
  const poll = fixtureAsOnePoll();
  const cfg = parseAgentConfig({ batch: { send_batch_size: sendBatchSize, timeout: '1h' } }, {});
  const sizes: number[] = [];
  const spans: string[] = [];
  const ids: string[] = [];
  const exporter = <S extends SignalType>(signal: S) => ({
    async start() {},
    async shutdown() {},
    async consume(batch: SignalData[S]) {
      if (signal !== 'traces') return;
      let n = 0;
      for (const rs of (batch as TracesData).resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) {
        n++;
        spans.push(spanKey(s));
        ids.push(spanId(s));
      }
      sizes.push(n);
    },
  });
  const exporters = { traces: exporter('traces'), metrics: exporter('metrics'), logs: exporter('logs') } as unknown as AgentExporters;
  const enricher = createReplayEnricher<KernelEvent>({ ...defaultEnricherConfig(), holdMs: 60_000 }, recordedHostOf(poll.header));
  await enricher.start();
  const pipeline = new AgentPipeline({ signals: cfg.signals, batch: cfg.batch, enricher, exporters, toUnixNano: (m) => m, logger: silentLogger() });
  await pipeline.start({ reportFatal: (err: Error) => { throw err; } });
  pipeline.onBatch(poll.buf, poll.buf.byteLength, poll.count);
  await pipeline.shutdown(); // releases held events and flushes the rest
  return { sizes, spans, ids };
}

test('one ring poll of thousands of events leaves in batches of at most send_batch_size, none lost or duplicated', async () => {
  const whole = await run(1_000_000);
  assert.equal(whole.sizes.length, 1, 'with a batch size above the poll, one batch');
  const total = whole.sizes[0]!;
  assert.ok(total > 1000, `the fixture makes over 1000 spans (got ${total})`);

  const cut = await run(100);
  assert.ok(cut.sizes.every((n) => n <= 100), `batch sizes ${JSON.stringify(cut.sizes.slice(0, 20))}… exceed 100`);
  assert.equal(cut.sizes.filter((n) => n === 100).length, Math.floor(total / 100), 'full batches until the last');
  assert.deepEqual([...cut.spans].sort(), [...whole.spans].sort(), 'the same spans, each once');
  assert.equal(new Set(cut.ids).size, cut.ids.length, 'no span exported twice');
});
