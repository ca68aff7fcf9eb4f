// Consumers the graph builder puts between components: fan-out (one producer, several consumers)
// and the instrumentation wrapper that counts accepted/refused/dropped items per tenant.
import { countItems, type SignalData, type SignalType } from '../../../proto/src/model.ts';
import { PermanentError, isRetryable, type Consumer, type RequestContext } from '../component/index.ts';
import type { SelfTelemetry } from '../telemetry/metrics.ts';
import { cloneSignal } from './clone.ts';

export interface FanOutMember<S extends SignalType> {
  id: string;
  consumer: Consumer<S>;
  /** The member (or something after it) mutates batches: give it its own copy. */
  mutates: boolean;
}

/**
 * Sends each batch to every member and resolves when all accepted. A rejection from any member
 * rejects the whole call (the sender retries; members that already accepted see a duplicate, the
 * at-least-once contract). The members by id are public so routing can address a subset.
 */
export class FanOutConsumer<S extends SignalType> implements Consumer<S> {
  readonly members: ReadonlyMap<string, FanOutMember<S>>;
  private readonly list: FanOutMember<S>[];

  constructor(readonly signal: S, members: FanOutMember<S>[]) {
    this.list = members;
    this.members = new Map(members.map((m) => [m.id, m]));
  }

  consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    const list = this.list;
    if (list.length === 1) return list[0].consumer.consume(batch, ctx);
    return this.consumeSubset(list, batch, ctx);
  }

  /** Any member's refusal: the request would fail as a whole, so none of them gets it. */
  refusal(): Error | undefined {
    for (const m of this.list) {
      const err = m.consumer.refusal?.();
      if (err) return err;
    }
    return undefined;
  }

  /** Sends to the given members only (routing). */
  async consumeSubset(members: readonly FanOutMember<S>[], batch: SignalData[S], ctx: RequestContext): Promise<void> {
    if (members.length === 1) return members[0].consumer.consume(batch, ctx);
    // Members that do not mutate share the original. A mutating member gets a copy, except that
    // the last one may keep the original when nobody else reads it (a queued exporter reads later,
    // so sharing with one would let the mutation leak into what it sends). Copies are made before
    // any member runs, because a member mutates synchronously inside consume().
    let lastMutating = -1;
    let anyReader = false;
    for (let i = 0; i < members.length; i++) {
      if (members[i].mutates) lastMutating = i;
      else anyReader = true;
    }
    const data = new Array<SignalData[S]>(members.length);
    for (let i = 0; i < members.length; i++)
      data[i] = members[i].mutates && (anyReader || i !== lastMutating) ? cloneSignal(this.signal, batch) : batch;
    const ps = new Array<Promise<void>>(members.length);
    for (let i = 0; i < members.length; i++) ps[i] = members[i].consumer.consume(data[i], ctx);
    await settleAll(ps);
  }
}

/**
 * Waits for every branch of a fan-out (consumers, routes) and fails with one error if any did. A
 * retryable error outranks a permanent one: the sender then retries and may still get everything
 * through, where a permanent error would make it drop the retryable branches' data too. Never
 * the first to fail: that would depend on timing.
 */
export async function settleAll(ps: Promise<void>[]): Promise<void> {
  const rs = await Promise.allSettled(ps);
  let firstErr: unknown;
  for (const r of rs) {
    if (r.status === 'rejected') {
      if (firstErr === undefined || (isRetryable(r.reason) && !isRetryable(firstErr))) firstErr = r.reason;
    }
  }
  if (firstErr !== undefined) throw firstErr;
}

interface TenantCounters {
  accepted: { value: number };
  refused: { value: number };
  dropped: { value: number };
}

/** Counts items through a component, per tenant, into the shared self-telemetry counters. */
export class InstrumentedConsumer<S extends SignalType> implements Consumer<S> {
  private readonly byTenant = new Map<string, TenantCounters>();

  constructor(
    private readonly inner: Consumer<S>,
    private readonly signal: S,
    private readonly kind: string,
    private readonly id: string,
    private readonly telemetry: SelfTelemetry,
    private readonly pipeline = '',
  ) {}

  private counters(tenant: string): TenantCounters {
    let c = this.byTenant.get(tenant);
    if (!c) {
      const labels = { kind: this.kind, component: this.id, pipeline: this.pipeline, signal: this.signal, tenant };
      c = { accepted: this.telemetry.accepted.at(labels), refused: this.telemetry.refused.at(labels), dropped: this.telemetry.dropped.at(labels) };
      // The family caps label sets; this cache is bounded the same way.
      if (this.byTenant.size < 4096) this.byTenant.set(tenant, c);
    }
    return c;
  }

  refusal(): Error | undefined {
    return this.inner.refusal?.();
  }

  async consume(batch: SignalData[S], ctx: RequestContext): Promise<void> {
    const n = countItems(this.signal, batch);
    const c = this.counters(ctx.tenant ?? '');
    try {
      await this.inner.consume(batch, ctx);
      c.accepted.value += n;
    } catch (err) {
      if (err instanceof PermanentError) c.dropped.value += n;
      else c.refused.value += n;
      throw err;
    }
  }
}
