#!/usr/bin/env bash
# Hart threads: a parallel CPU workload on 1 and 2 harts, and the host CPU an idle 4-hart guest costs.
#
# Usage: bench/smp.sh [--reps N] [--iterations N] [--no-qemu]
#   smp-parallel  /bench/smpstress compute 2 N (two threads of independent integer work, no sharing), timed
#                 inside the guest (its clock follows host time), on: rivet --smp 1; rivet --smp 2
#                 --hart-threads single; rivet --smp 2 (multi, the default); and QEMU -smp 1 / -smp 2 (MTTCG)
#   idle-smp4     host CPU (% of one core, utime+stime over 10 s) of an idle 4-hart guest, both modes
# Environment: RIVET_BIN, RIVET_GUEST (as bench/run.sh), QEMU (default qemu-system-riscv64).
# Prints a table (median of the repetitions); exit 1 if a run fails. The host must have 2 free cores for
# the 2-hart numbers to mean anything: run it on a quiet machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
RIVET=${RIVET_BIN:-$repo/.build/release/rivet}
QEMU=${QEMU:-qemu-system-riscv64}
FW=/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin
guest=${RIVET_GUEST:-${RIVET_CACHE:-$HOME/.cache/rivet}/guest-default}
reps=3 iterations=20000000 qemu=1
while [ $# -gt 0 ]; do
    case $1 in
        --reps) reps=$2; shift 2 ;;
        --iterations) iterations=$2; shift 2 ;;
        --no-qemu) qemu=0; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "smp.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$RIVET" ] || { echo "smp.sh: rivet binary not found at $RIVET" >&2; exit 1; }
[ -f "$guest/Image" ] || { echo "smp.sh: no guest at $guest (bash guest/build.sh)" >&2; exit 1; }
log() { echo "[smp] $*" >&2; }
cmdline="console=ttyS0 rivet.run=/bench/smpstress,compute,2,$iterations"

# One run: prints "<guest seconds> <wall seconds>".
one() {
    local out start end
    start=$(date +%s.%N)
    out=$("$@" < /dev/null 2>&1) || { echo "smp.sh: run failed: $*" >&2; echo "$out" | tail -5 >&2; exit 1; }
    end=$(date +%s.%N)
    local secs
    secs=$(echo "$out" | awk '/^BENCH smp-parallel/ {print $3}')
    [ -n "$secs" ] || { echo "smp.sh: no BENCH line from: $*" >&2; echo "$out" | tail -5 >&2; exit 1; }
    echo "$secs $(echo "$end - $start" | bc)"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

row() {
    local name=$1; shift
    local g=() w=()
    for _ in $(seq "$reps"); do
        read -r gs ws < <(one "$@")
        g+=("$gs"); w+=("$ws")
        log "$name: guest ${gs}s wall ${ws}s"
    done
    printf '%-28s %10s %10s\n' "$name" "$(printf '%s\n' "${g[@]}" | median)" "$(printf '%s\n' "${w[@]}" | median)"
}

printf '%-28s %10s %10s\n' "smp-parallel (2 threads)" "guest s" "wall s"
row "rivet --smp 1" "$RIVET" run --time-limit 600 --smp 1 --kernel "$guest/Image" --initrd "$guest/initramfs.cpio.gz" --append "$cmdline"
row "rivet --smp 2 single" "$RIVET" run --time-limit 600 --smp 2 --hart-threads single --kernel "$guest/Image" --initrd "$guest/initramfs.cpio.gz" --append "$cmdline"
row "rivet --smp 2 multi" "$RIVET" run --time-limit 600 --smp 2 --hart-threads multi --kernel "$guest/Image" --initrd "$guest/initramfs.cpio.gz" --append "$cmdline"
if [ $qemu = 1 ] && command -v "$QEMU" >/dev/null; then
    for n in 1 2; do
        row "qemu -smp $n" timeout 600 "$QEMU" -machine virt -nographic -m 256M -smp $n -bios "$FW" \
            -kernel "$guest/Image" -initrd "$guest/initramfs.cpio.gz" -append "$cmdline" -no-reboot
    done
fi

# Idle: boot an interactive shell whose stdin stays open and silent, wait for the prompt, measure.
idle() {
    local mode=$1 fifo out pid t0 t1
    fifo=$(mktemp -u); mkfifo "$fifo"; out=$(mktemp)
    "$RIVET" run --time-limit 120 --smp 4 --hart-threads "$mode" --kernel "$guest/Image" \
        --initrd "$guest/initramfs.cpio.gz" < "$fifo" > "$out" 2>&1 &
    pid=$!
    exec 9> "$fifo"
    for _ in $(seq 120); do grep -q "init reached" "$out" && break; sleep 1; done
    sleep 3
    t0=$(awk '{print $14 + $15}' /proc/$pid/stat); sleep 10; t1=$(awk '{print $14 + $15}' /proc/$pid/stat)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    exec 9>&-
    rm -f "$fifo" "$out"
    echo "scale=1; ($t1 - $t0) * 100 / $(getconf CLK_TCK) / 10" | bc
}
printf '%-28s %10s\n' "idle-smp4 (host CPU %)" ""
for mode in single multi; do printf '%-28s %10s\n' "rivet --smp 4 $mode" "$(idle $mode)"; done
