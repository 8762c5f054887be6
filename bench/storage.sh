#!/usr/bin/env bash
# Storage throughput: rivet's block layer (`rivet img bench`) next to `qemu-img bench` on the same qcow2
# image in the same run; 4 KiB requests, one at a time (qemu-img bench -d 1), page cache on (both default).
# "stride" is qemu-img bench's only non-sequential pattern (-S step, wrapping): a large prime step of
# 4 KiB blocks spreads requests over the whole image like random I/O. Ratio = rivet IOPS / qemu-img IOPS.
#
# Usage: bench/storage.sh            (RIVET_BIN overrides the binary; COUNT, SIZE_MB tune the run)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
RIVET=${RIVET_BIN:-$here/.build/release/rivet}
COUNT=${COUNT:-50000}
SIZE_MB=${SIZE_MB:-256}
STEP=$((4096 * 7919))
command -v qemu-img >/dev/null || { echo "qemu-img is required (apt-get install qemu-utils)" >&2; exit 1; }
[ -x "$RIVET" ] || { echo "rivet binary not found at $RIVET (swift build -c release)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Seconds from qemu-img bench's "Run completed in X seconds." / rivet's "Run completed in X seconds: ..."
secs() { sed -n 's/.*Run completed in \([0-9.]*\) seconds.*/\1/p'; }

rivet_run() { "$RIVET" img bench -c "$COUNT" -s 4096 "$@" | secs; }
qemu_run() { qemu-img bench -q -c "$COUNT" -d 1 -s 4096 -f qcow2 "$@" 2>&1 | secs; }
# qemu-img bench's default queue depth (64), for reference: rivet's API is synchronous (depth 1).
qemu_deep() { qemu-img bench -q -c "$COUNT" -d 64 -s 4096 -f qcow2 "$@" 2>&1 | secs; }

printf '%-28s %12s %12s %8s %14s\n' "test (4 KiB, depth 1)" "rivet IOPS" "qemu IOPS" "ratio" "qemu -d 64"
report() {
    local name=$1 r=$2 q=$3 d=${4:-0}
    awk -v n="$name" -v r="$r" -v q="$q" -v d="$d" -v c="$COUNT" 'BEGIN {
        ri = c / r; qi = c / q; printf "%-28s %12.0f %12.0f %8.2f %14s\n", n, ri, qi, ri / qi, (d > 0 ? sprintf("%.0f", c / d) : "-") }'
}

img() { qemu-img create -q -f qcow2 "$work/$1" "${SIZE_MB}M"; echo "$work/$1"; }

# Allocating writes: each tool starts from its own empty image.
a=$(img r-alloc.qcow2); b=$(img q-alloc.qcow2)
report "seq write (allocating)" "$(rivet_run -w "$a")" "$(qemu_run -w "$b")"

# Everything else on one fully allocated image shared by both tools.
full=$(img full.qcow2)
qemu-img bench -q -c $((SIZE_MB * 16)) -d 16 -s 65536 -w -f qcow2 "$full" >/dev/null
report "seq write (overwrite)" "$(rivet_run -w "$full")" "$(qemu_run -w "$full")" "$(qemu_deep -w "$full")"
report "seq read" "$(rivet_run "$full")" "$(qemu_run "$full")" "$(qemu_deep "$full")"
report "stride write (random-like)" "$(rivet_run -w --pattern stride -S $STEP "$full")" "$(qemu_run -w -S $STEP "$full")" "$(qemu_deep -w -S $STEP "$full")"
report "stride read (random-like)" "$(rivet_run --pattern stride -S $STEP "$full")" "$(qemu_run -S $STEP "$full")" "$(qemu_deep -S $STEP "$full")"

# Seeded uniform random offsets: rivet only (qemu-img bench has no random pattern).
rr=$(rivet_run --pattern rand "$full"); rw=$(rivet_run -w --pattern rand "$full")
awk -v r="$rr" -v w="$rw" -v c="$COUNT" 'BEGIN {
    printf "%-28s %12.0f %12s %8s %14s\n", "random read (rivet only)", c / r, "-", "-", "-"
    printf "%-28s %12.0f %12s %8s %14s\n", "random write (rivet only)", c / w, "-", "-", "-" }'
qemu-img check -q "$full" && echo "image still passes qemu-img check"
