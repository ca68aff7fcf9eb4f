// Enrichment of replayed events from what the fixture recorded about its host, never this host's.
// A fixture's pids and cgroup ids belong to the recording host: resolving them against the local
// /proc and cgroupfs would attach an unrelated local process (a reused pid) or miss the recorded
// pod cgroups. So replay builds the Enricher's CgroupIndex and ProcessCache from the header tables,
// with every host lookup off, and leaves out this host's node name and Kubernetes API.
import { silentLogger, type Logger } from '../../../lib/log.ts';
import { CgroupIndex, type RecordedCgroup } from './cgroup-index.ts';
import { Enricher, type EnricherConfig, type ReleaseHandler } from './enricher.ts';
import { ProcessCache, type RecordedProcess } from './process-cache.ts';

/** The host facts a fixture header carries (FixtureHeader `cgroups`, `processes`, `cgroupRoot`). */
export interface RecordedHost {
  cgroups: readonly RecordedCgroup[];
  processes: readonly RecordedProcess[];
  /** Where the recording host's cgroup2 tree was (informational only). */
  cgroupRoot?: string;
}

/** Picks the recorded tables out of a fixture header, tolerating headers that lack them. */
export function recordedHostOf(header: { cgroups?: unknown; processes?: unknown; cgroupRoot?: unknown }): RecordedHost {
  return {
    cgroups: Array.isArray(header.cgroups) ? (header.cgroups as RecordedCgroup[]) : [],
    processes: Array.isArray(header.processes) ? (header.processes as RecordedProcess[]).filter((p) => p !== null && typeof p === 'object') : [],
    ...(typeof header.cgroupRoot === 'string' ? { cgroupRoot: header.cgroupRoot } : {}),
  };
}

/**
 * The Enricher config for replay: the local node name is not the recording host's, so it is
 * dropped (k8s.node.name only comes from recorded pod metadata, of which fixtures have none).
 */
export function replayEnricherConfig(cfg: EnricherConfig): EnricherConfig {
  return { ...cfg, nodeName: '' };
}

/** An Enricher answering only from the recorded tables: no /proc, no cgroupfs, no pod informer. */
export function createReplayEnricher<T>(
  cfg: EnricherConfig,
  recorded: RecordedHost,
  deps: { logger?: Logger; onRelease?: ReleaseHandler<T>; now?: () => number } = {},
): Enricher<T> {
  const now = deps.now ?? Date.now;
  const log = deps.logger ?? silentLogger();
  const rc = replayEnricherConfig(cfg);
  const index = CgroupIndex.fromRecorded(recorded.cgroups, { maxEntries: rc.maxCgroupPaths, rescanIntervalMs: 0 }, now);
  const processes = ProcessCache.fromRecorded(recorded.processes, { maxEntries: rc.maxProcesses, exitTtlMs: rc.processExitTtlMs, maxCmdlineBytes: 4096 }, now);
  log.info(
    { cgroups: index.size, processes: recorded.processes.length, recordedCgroupRoot: recorded.cgroupRoot },
    'replay: enriching from the fixture\'s recorded cgroup and process tables (no host lookups, no Kubernetes API)',
  );
  return new Enricher<T>(rc, { logger: log, onRelease: deps.onRelease, now, index, processes, pods: null });
}
