#!/bin/bash
# CPU-bound riscv64 Linux programs under `rivet user` and qemu-riscv64, in the same run.
# Usage: bench/user.sh [--accel LIST] [--only NAME] [path/to/rivet]   (default .build/release/rivet)
#   --accel LIST  run rivet once per accelerator in the comma-separated LIST (e.g. jit,interp), passing
#                 `--accel X` to `rivet user`; without it rivet runs once with its default, no option
#   --only NAME   one program: primes matmul hash pthreads (bench/user/) or interp lists qsortcall
#                 intloop sha256 sort nbody memwalk (guest/bench/, the guest's /bench programs)
# Default programs: primes matmul hash pthreads interp lists qsortcall.
# Prints one line per program: wall seconds under each runner and the ratio rivet/qemu (lower is better
# for rivet). The programs' outputs must agree (the seconds in a guest/bench `BENCH` line are ignored).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
USER_PROGRAMS=" primes matmul hash pthreads "
GUEST_PROGRAMS=" interp lists qsortcall intloop sha256 sort nbody memwalk "
programs=(primes matmul hash pthreads interp lists qsortcall)
rivet=$here/../.build/release/rivet accel_list=""
while [ $# -gt 0 ]; do
    case $1 in
        --accel) [ $# -ge 2 ] || { echo "user.sh: --accel needs a list such as jit,interp" >&2; exit 2; }; accel_list=$2; shift 2 ;;
        --only)
            [ $# -ge 2 ] || { echo "user.sh: --only needs a program name" >&2; exit 2; }
            [[ "$USER_PROGRAMS$GUEST_PROGRAMS" == *" $2 "* ]] || { echo "user.sh: unknown program '$2' (one of: $(echo $USER_PROGRAMS $GUEST_PROGRAMS))" >&2; exit 2; }
            programs=("$2"); shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "user.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) rivet=$1; shift ;;
    esac
done
accels=("")
if [ -n "$accel_list" ]; then
    [[ $accel_list =~ ^[a-z0-9]+(,[a-z0-9]+)*$ ]] || { echo "user.sh: --accel wants mode names separated by commas (e.g. jit,interp), got '$accel_list'" >&2; exit 2; }
    IFS=, read -r -a accels <<<"$accel_list"
    "$rivet" user --help 2>&1 | grep -q -- '--accel' || { echo "user.sh: $rivet has no --accel option (run without --accel)" >&2; exit 1; }
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for p in "${programs[@]}"; do
    if [[ $USER_PROGRAMS == *" $p "* ]]; then
        riscv64-linux-gnu-gcc -O2 -static -o "$out/$p" "$here/user/$p.c" -lpthread
    else
        riscv64-linux-gnu-gcc -O2 -static -I"$repo/guest/bench" -o "$out/$p" "$repo/guest/bench/$p.c" \
            "$repo/guest/bench/benchlib.c" -lm
    fi
done
now() { date +%s.%N; }
# The result without the timing a guest/bench program prints (`BENCH name SECONDS result`).
result_of() { sed -E 's/^(BENCH [^ ]+) [0-9.]+ /\1 /'; }

names=()
for a in "${accels[@]}"; do names+=("${a:+rivet-$a}"); done
[ -n "$accel_list" ] || names=(rivet)
printf "%-10s" program
for n in "${names[@]}"; do printf " %14s" "${n}_s"; done
printf " %10s" qemu_s
for n in "${names[@]}"; do if [ -n "$accel_list" ]; then printf " %18s" "$n/qemu"; else printf " %8s" ratio; fi; done
echo
for p in "${programs[@]}"; do
    times=()
    t0=$(now); q_out=$(qemu-riscv64 "$out/$p" | result_of) || { echo "user.sh: $p failed under qemu-riscv64" >&2; exit 1; }; t1=$(now)
    q_time=$(echo "$t1 - $t0" | bc)
    for a in "${accels[@]}"; do
        t0=$(now); r_out=$("$rivet" user ${a:+--accel "$a"} "$out/$p" | result_of) || { echo "user.sh: $p failed under rivet user${a:+ --accel $a}" >&2; exit 1; }; t1=$(now)
        if [ "$r_out" != "$q_out" ]; then echo "$p: outputs differ (rivet${a:+ --accel $a}: $r_out; qemu: $q_out)" >&2; exit 1; fi
        times+=("$(echo "$t1 - $t0" | bc)")
    done
    printf "%-10s" "$p"
    for t in "${times[@]}"; do printf " %14.2f" "$t"; done
    printf " %10.2f" "$q_time"
    w=8; [ -z "$accel_list" ] || w=18
    for t in "${times[@]}"; do awk -v r="$t" -v q="$q_time" -v w="$w" 'BEGIN { printf " %*.2f", w, r / q }'; done
    echo
done
