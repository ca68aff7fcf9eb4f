#!/bin/sh
# Prints the source hash of one probe: sha256 over the lines "<sha256>  <path>"
# of <probe>/<probe>.bpf.c, <probe>/<probe>.h and include/*.h (C-locale order),
# paths relative to bpf/. tests/unit/bpf-prebuilt.test.ts computes the same.
# Usage: srchash.sh <probe>     (run from bpf/)
set -eu
p="$1"
LC_ALL=C
export LC_ALL
sha256sum "$p/$p.bpf.c" "$p/$p.h" $(ls include/*.h | sort) | sha256sum | cut -d' ' -f1
