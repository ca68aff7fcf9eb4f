#!/usr/bin/env bash
# The README's first command: install everything this machine needs, then run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec bash scripts/start.sh "$@"
