#!/bin/bash
# Cost of clock_gettime(CLOCK_MONOTONIC) per call under `rivet user` (with its vDSO, and without:
# RIVET_NO_VDSO=1) and qemu-riscv64, best of N runs each (the host is shared: the minimum is the signal).
# Usage: bench/user-clock.sh [path/to/rivet] [runs]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rivet=${1:-$here/../.build/release/rivet}
runs=${2:-8}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
riscv64-linux-gnu-gcc -O2 -static -o "$out/clock" "$here/user/clock.c"
best() { local b=999999999 v; for _ in $(seq "$runs"); do v=$("$@"); [ "$v" -lt "$b" ] && b=$v; done; echo "$b"; }
printf "%-22s %8s\n" runner ns_per_call
printf "%-22s %8s\n" "rivet (vDSO)" "$(best "$rivet" user "$out/clock")"
printf "%-22s %8s\n" "rivet (system call)" "$(RIVET_NO_VDSO=1 best "$rivet" user "$out/clock")"
printf "%-22s %8s\n" "qemu-riscv64" "$(best qemu-riscv64 "$out/clock")"
