// One network server per configured receiver, shared by the per-signal instances the pipeline
// builder creates (otelcol's sharedcomponent): the first start() listens, the last shutdown()
// closes. Keyed by the validated config object, which the builder hands to every signal's
// create() of one receiver id, so two services in one process never share a server.
import type { SignalType } from '../../../../proto/src/model.ts';
import type { Consumer } from '../../component/index.ts';

export interface SharedServer {
  consumers: Partial<Record<SignalType, Consumer>>;
  start(): Promise<void>;
  shutdown(): Promise<void>;
}

interface Entry<T> {
  server: T;
  refs: number;
  started?: Promise<void>;
  stopped?: Promise<void>;
}

export class SharedRegistry<T extends SharedServer> {
  private readonly entries = new WeakMap<object, Entry<T>>();

  acquire(key: object, make: () => T): { server: T; start(): Promise<void>; shutdown(): Promise<void> } {
    let e = this.entries.get(key);
    if (!e) this.entries.set(key, (e = { server: make(), refs: 0 }));
    e.refs++;
    const entry = e;
    let released = false;
    return {
      server: entry.server,
      start: () => (entry.started ??= entry.server.start()),
      shutdown: async () => {
        if (released) return;
        released = true;
        if (--entry.refs > 0) return;
        this.entries.delete(key);
        await (entry.stopped ??= entry.server.shutdown());
      },
    };
  }
}
