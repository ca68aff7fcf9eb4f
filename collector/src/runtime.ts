// Node flags the collector process runs with: the image's ENTRYPOINT, `agent up` (the quick start)
// and the e2e tests' collector processes. A test keeps deploy/docker/collector.Dockerfile equal.
//
// A 64 MiB young generation: the collector's unit of work is a request of up to ~10k spans, whose
// decoded model objects (~9 MB) are all alive until the batch is handed on. With node's default
// 16 MiB semi-spaces, scavenges land mid-batch, copy it and promote it to the old generation, and
// decode at 10k spans runs at ~0.4 M spans/s; with 64 MiB most batches die young (~1 M spans/s,
// docs/performance.md). The cost is up to 2 × 64 MiB of committed new space under load.
export const COLLECTOR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
