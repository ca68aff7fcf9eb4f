#!/usr/bin/env bash
# The main job: collector + agent on this machine with a live summary (see `agent up --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d /sys/kernel/tracing/events ] && [ "$(id -u)" -eq 0 ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi
# the bundled build (no tsx loader: less memory and start-up); rebuilt when sources changed
node scripts/build-dist.mjs --check || node scripts/build-dist.mjs >/dev/null
# node flags and malloc arenas as in deploy/docker/agent.Dockerfile (lower RSS, same CPU; a test
# in tests/e2e/dist-bundle.test.ts keeps the two equal)
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec node --max-semi-space-size=8 --single-threaded dist/agent.mjs up "$@"
