// Replay source: feeds a recorded fixture through the same batch callback as the live source,
// as fast as possible or at the recorded pace (batch arrival times from the file).
import { setTimeout as sleep } from 'node:timers/promises';
import { FixtureFormatError, FixtureReader, type FixtureHeader } from './fixture.ts';
import type { BatchSource, SourceBatchHandler, SourceProbe } from './types.ts';

export type ReplaySpeed = 'max' | 'recorded';

export interface ReplayStats {
  batches: number;
  records: number;
  handlerErrors: number;
}

export class ReplaySource implements BatchSource {
  readonly header: FixtureHeader;
  readonly probes: SourceProbe[];
  readonly stats: ReplayStats = { batches: 0, records: 0, handlerErrors: 0 };
  #reader: FixtureReader;
  #stop = false;
  /** Cuts a pacing sleep short when stop() is called. */
  readonly #wake = new AbortController();
  #done: Promise<void> | undefined;

  constructor(path: string, readonly opts: { speed?: ReplaySpeed; onError?: (err: unknown) => void } = {}) {
    this.#reader = new FixtureReader(path);
    this.header = this.#reader.header;
    this.probes = this.header.probes.map((p) => ({
      id: p.id, name: p.name, ...(p.layout ? { layout: p.layout } : {}), ...(p.decoder ? { decoder: p.decoder } : {}),
    }));
  }

  /** Resolves when the whole file was delivered (or stop() was called). */
  start(onBatch: SourceBatchHandler): Promise<void> {
    this.#done ??= this.#run(onBatch).finally(() => this.#reader.close());
    return this.#done;
  }

  async #run(onBatch: SourceBatchHandler): Promise<void> {
    const byId = new Map(this.probes.map((p) => [p.id, p]));
    const paced = this.opts.speed === 'recorded';
    const t0 = process.hrtime.bigint();
    const startNs = BigInt(this.header.startMonotonicNs);
    const endNs = BigInt(this.header.endMonotonicNs);
    let first: bigint | undefined;
    let sinceYield = 0;
    for (;;) {
      if (this.#stop) return;
      const f = this.#reader.next();
      if (!f) return;
      const probe = byId.get(f.probeId) ?? { id: f.probeId, name: `probe-${f.probeId}` };
      if (paced) {
        // pacing trusts frame times: one outside the recording (corrupt) would stall the replay
        if (f.monoNs < startNs || f.monoNs > endNs) {
          throw new FixtureFormatError(`${this.#reader.path}: frame at offset ${f.offset} has time ${f.monoNs}, outside the recording (${startNs}..${endNs})`);
        }
        first ??= f.monoNs;
        const dueNs = f.monoNs - first - (process.hrtime.bigint() - t0);
        if (dueNs > 1_000_000n) await sleep(Number(dueNs / 1_000_000n), undefined, { signal: this.#wake.signal }).catch(() => undefined);
        if (this.#stop) return;
      } else if (++sinceYield >= 64) {
        // let timers and I/O run during a long replay
        sinceYield = 0;
        await new Promise<void>((r) => setImmediate(r));
      }
      try {
        onBatch(f.buf, f.byteLength, f.count, probe);
      } catch (err) {
        this.stats.handlerErrors++;
        this.opts.onError?.(err);
      }
      this.stats.batches++;
      this.stats.records += f.count;
    }
  }

  async stop(): Promise<void> {
    this.#stop = true;
    this.#wake.abort();
    await this.#done?.catch(() => undefined);
  }
}
