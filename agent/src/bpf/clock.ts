// CLOCK_MONOTONIC (bpf_ktime_get_ns, process.hrtime) → Unix ns for event timestamps.
import { clockPair } from './object.ts';

/** CLOCK_REALTIME − CLOCK_MONOTONIC in ns, both read back to back by the native addon. */
export function nativeClockOffset(): bigint {
  const { monotonicNs, realtimeNs } = clockPair();
  return realtimeNs - monotonicNs;
}

/** The same offset without the addon, to a few µs: Date.now() has whole ms (an offset taken
 * from it is up to 1 ms early), so spin until its next tick and pair the new ms with the monotonic
 * time of that edge, bracketed by two hrtime reads; a wide bracket (preempted) waits for the next
 * tick, at most 5 (ms). (performance.timeOrigin + now() is a few hundred µs off: Node reads its
 * two origins at different moments.) */
export function fallbackClockOffset(): bigint {
  let best: { width: bigint; offset: bigint } | undefined;
  for (let edges = 0; edges < 5; edges++) {
    const first = Date.now();
    // the tick falls between the previous Date.now() (after prevStart) and this one (before end)
    let prevStart = process.hrtime.bigint();
    for (;;) {
      const start = process.hrtime.bigint();
      const wall = Date.now();
      const end = process.hrtime.bigint();
      if (wall !== first) {
        const width = end - prevStart;
        if (!best || width < best.width) best = { width, offset: BigInt(wall) * 1_000_000n - (prevStart + end) / 2n };
        break;
      }
      prevStart = start;
    }
    if (best!.width <= 4_000n) break;
  }
  return best!.offset;
}

/** Wall-clock offset for CLOCK_MONOTONIC timestamps (bpf_ktime_get_ns and hrtime share the clock):
 * the addon's clock pair, else the Date.now() tick edge. */
export function monotonicToUnixOffset(): bigint {
  try {
    return nativeClockOffset();
  } catch {
    return fallbackClockOffset(); // addon not built (replay)
  }
}

/**
 * CLOCK_MONOTONIC → Unix ns. The offset only moves when the wall clock is stepped (NTP slews both
 * clocks alike), so it is re-read at most once a second of monotonic time: a step shows within a
 * second, at the cost of one clock pair per second. Event timestamps drive the refresh, so
 * converting them costs no clock read.
 */
export class UnixClock {
  #offset: bigint;
  #readAt: bigint;
  constructor(private readonly readOffset: () => bigint = monotonicToUnixOffset,
    private readonly refreshNs = 1_000_000_000n, private readonly mono: () => bigint = () => process.hrtime.bigint()) {
    this.#readAt = this.mono();
    this.#offset = this.readOffset();
  }

  #at(m: bigint): bigint {
    if (m - this.#readAt >= this.refreshNs) {
      this.#readAt = this.mono();
      this.#offset = this.readOffset();
    }
    return this.#offset;
  }

  /** a CLOCK_MONOTONIC timestamp (e.g. bpf_ktime_get_ns) as Unix ns */
  readonly toUnixNano = (m: bigint): bigint => m + this.#at(m);
  /** now, in Unix ns */
  readonly now = (): bigint => {
    const m = this.mono();
    return m + this.#at(m);
  };
}
