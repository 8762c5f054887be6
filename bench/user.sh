#!/bin/bash
# CPU-bound riscv64 Linux programs under `rivet user` and qemu-riscv64, in the same run.
# Usage: bench/user.sh [path/to/rivet]   (default .build/release/rivet)
# Prints one line per program: seconds under each and the ratio rivet/qemu (lower is better for rivet).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rivet=${1:-$here/../.build/release/rivet}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for p in primes matmul hash pthreads; do
    riscv64-linux-gnu-gcc -O2 -static -o "$out/$p" "$here/user/$p.c" -lpthread
done
now() { date +%s.%N; }
printf "%-10s %10s %10s %8s\n" program rivet_s qemu_s ratio
for p in primes matmul hash pthreads; do
    t0=$(now); r_out=$("$rivet" user "$out/$p"); t1=$(now)
    q_out=$(qemu-riscv64 "$out/$p"); t2=$(now)
    if [ "$r_out" != "$q_out" ]; then echo "$p: outputs differ ($r_out vs $q_out)" >&2; exit 1; fi
    awk -v p="$p" -v r="$(echo "$t1 - $t0" | bc)" -v q="$(echo "$t2 - $t1" | bc)" \
        'BEGIN { printf "%-10s %10.2f %10.2f %8.2f\n", p, r, q, r / q }'
done
