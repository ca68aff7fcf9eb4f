#!/usr/bin/env bash
# Re-records the committed kernel-event fixtures (tests/fixtures/*.kscope) and their golden output
# on this machine. Needs root, BPF, a writable cgroup2 hierarchy and the native addon.
#   scripts/record-fixtures.sh [tcp-proc-loopback|tcp-burst|all]
# See tests/fixtures/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "record-fixtures: run as root (BPF programs and cgroup directories)" >&2
  exit 1
fi
exec npx tsx tests/fixtures/record.ts "${1:-all}"
