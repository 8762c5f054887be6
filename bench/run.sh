#!/usr/bin/env bash
# Rivet next to QEMU (qemu-system-riscv64, TCG) on the same workloads, in the same run, on this machine.
#
# Usage: bench/run.sh [--quick] [--only NAME] [--reps N] [--accel LIST]
#   --quick      one repetition, a subset (boot, poweroff, intloop, disk, baremetal with 1000 iterations)
#   --only NAME  one workload: boot poweroff smp intloop sha256 sort nbody memwalk interp lists qsortcall
#                disk baremetal idle
#   --reps N     repetitions per workload (default 3); the table shows the median
#   --accel LIST run rivet once per accelerator in the comma-separated LIST (e.g. jit,interp), passing
#                `--accel X` to rivet; the table then has a column and a ratio to QEMU per mode. Without
#                it rivet runs once with its default and no --accel option.
# Environment: RIVET_BIN (default <repo>/.build/release/rivet), RIVET_GUEST (default: the cached default
# guest, built with guest/build.sh when missing), QEMU (default qemu-system-riscv64).
# Output: the table and a one-line-per-workload summary (`workload rivet... qemu ratio...`) on stdout,
# progress on stderr, everything as JSON in bench/results/latest.json (per-run logs in bench/results/logs/).
# Exit status 1 if any workload failed or results differed.
#
# Workloads and what is timed (wall time is from process start; guest times use the guest's clock, which
# on rivet follows the host's real time):
#   boot       start to the `RIVET-GUEST: init reached` line (kernel + initramfs up to /init)
#   poweroff   start to process exit with rivet.run=true (boot, run, power-off)
#   smp        the same as poweroff with 2 harts
#   intloop sha256 sort nbody memwalk interp lists qsortcall
#              the seconds the /bench program prints itself (timed inside the guest)
#   disk       dd of 64 MiB to a raw virtio-blk disk with conv=fsync, timed by /proc/uptime in the guest
#   baremetal  bench/baremetal intmix ELF: rivet run-elf vs qemu -machine spike -bios none, wall time
#   idle       host CPU use (% of one core) of an idle interactive guest over 10 s, after boot
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
RIVET=${RIVET_BIN:-$repo/.build/release/rivet}
QEMU=${QEMU:-qemu-system-riscv64}
FW=/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin
ALL=(boot poweroff smp intloop sha256 sort nbody memwalk interp lists qsortcall disk baremetal idle)
QUICK=(boot poweroff intloop disk baremetal)

reps=3 quick=0 only="" accel_list=""
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1; shift ;;
        --only) [ $# -ge 2 ] || { echo "run.sh: --only needs a workload name" >&2; exit 2; }; only=$2; shift 2 ;;
        --reps) [ $# -ge 2 ] || { echo "run.sh: --reps needs a number" >&2; exit 2; }; reps=$2; shift 2 ;;
        --accel) [ $# -ge 2 ] || { echo "run.sh: --accel needs a list such as jit,interp" >&2; exit 2; }; accel_list=$2; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $reps =~ ^[1-9][0-9]?$ ]] || { echo "run.sh: --reps must be 1 to 99" >&2; exit 2; }
if [ $quick = 1 ]; then reps=1; workloads=("${QUICK[@]}"); else workloads=("${ALL[@]}"); fi
if [ -n "$only" ]; then
    [[ " ${ALL[*]} " == *" $only "* ]] || { echo "run.sh: unknown workload '$only' (one of: ${ALL[*]})" >&2; exit 2; }
    workloads=("$only")
fi
# ACCELS holds one entry per rivet run of a workload: "" (rivet's default, no option) or a mode name.
ACCELS=("") A=()
if [ -n "$accel_list" ]; then
    [[ $accel_list =~ ^[a-z0-9]+(,[a-z0-9]+)*$ ]] || { echo "run.sh: --accel wants mode names separated by commas (e.g. jit,interp), got '$accel_list'" >&2; exit 2; }
    IFS=, read -r -a ACCELS <<<"$accel_list"
fi
rivet_vm() { if [ -z "$1" ]; then echo rivet; else echo "rivet-$1"; fi; }   # the sample's vm tag
set_accel() { A=(); [ -z "$1" ] || A=(--accel "$1"); }
baremetal_iters=$([ $quick = 1 ] && echo 1000 || echo 5000)

log() { echo "[bench] $*" >&2; }
[ -x "$RIVET" ] || { echo "run.sh: rivet binary not found at $RIVET (swift build -c release, or set RIVET_BIN)" >&2; exit 1; }
command -v "$QEMU" >/dev/null || { echo "run.sh: $QEMU not found (apt-get install qemu-system-misc)" >&2; exit 1; }
[ -f "$FW" ] || { echo "run.sh: $FW not found (apt-get install opensbi)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "run.sh: python3 is required" >&2; exit 1; }
if [ -n "$accel_list" ] && ! "$RIVET" run --help 2>&1 | grep -q -- '--accel'; then
    echo "run.sh: $RIVET has no --accel option (run without --accel, or use a build that has it)" >&2; exit 1
fi

if [ -n "${RIVET_GUEST:-}" ]; then
    guest=$RIVET_GUEST
elif [ -f "${RIVET_CACHE:-$HOME/.cache/rivet}/guest-default/recipe.sha" ]; then
    guest=$(cd "${RIVET_CACHE:-$HOME/.cache/rivet}/guest-default" && pwd -P)
else
    log "no cached guest: building it with guest/build.sh (several minutes)"
    guest=$("$repo/guest/build.sh")
fi
for f in Image initramfs.cpio.gz; do
    [ -f "$guest/$f" ] || { echo "run.sh: $guest/$f missing (run guest/build.sh)" >&2; exit 1; }
done
for w in "${workloads[@]}"; do  # an older guest lacks newer /bench programs (build.sh keeps a copy in bench/)
    case $w in intloop|sha256|sort|nbody|memwalk|interp|lists|qsortcall)
        [ -f "$guest/bench/$w" ] || { echo "run.sh: guest $guest has no /bench/$w (built before it existed: run guest/build.sh and use the directory it prints)" >&2; exit 1; } ;;
    esac
done

results=$here/results
mkdir -p "$results/logs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Run a private copy: others may rebuild the binary at RIVET_BIN while the bench runs.
rivet_src=$RIVET
rivet_built=$(date -r "$RIVET" '+%Y-%m-%d %H:%M:%S')
cp "$RIVET" "$work/rivet"
RIVET=$work/rivet
rivet_sha=$(sha256sum "$RIVET" | cut -c1-16)
samples=$work/samples.jsonl
measure() { python3 "$here/measure.py" "$@"; }

# Run metadata (first line of the samples; the report copies it into the JSON).
python3 - "$rivet_src" "$QEMU" "$guest" "$reps" "$quick" "$rivet_sha" "$rivet_built" "$accel_list" >"$samples" <<'EOF'
import json, os, subprocess, sys, time
rivet, qemu, guest, reps, quick, sha, built, accel = sys.argv[1:]
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
qv = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
print(json.dumps({"kind": "meta", "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "host_cpu": model,
                  "host_cores": os.cpu_count(), "load_average_start": os.getloadavg()[0], "rivet_bin": rivet,
                  "rivet_sha256_prefix": sha, "rivet_built": built,
                  "qemu": qv, "guest": guest, "repetitions": int(reps), "quick": quick == "1",
                  "rivet_accel": accel.split(",") if accel else None}))
EOF

# Commands are built as arrays (the append string contains spaces).
set_rivet() { local a=$1; shift; R=("$RIVET" run "${A[@]}" --kernel "$guest/Image" --initrd "$guest/initramfs.cpio.gz" --append "$a" "$@"); }
set_qemu() { local a=$1; shift; Q=("$QEMU" -machine virt -m 256M -nographic -bios "$FW" -kernel "$guest/Image" -initrd "$guest/initramfs.cpio.gz" -append "$a" "$@"); }

# sample VM WORKLOAD LABEL REP MEASURE-ARGS...   (runs CMD, appends one sample; RIVET_STATS=1 is set, so
# rivet prints its instruction statistics; MIPS_SCOPE says what those cover)
sample() {
    local vm=$1 w=$2 label=$3 rep=$4; shift 4
    local logf="$results/logs/$w-$vm-$rep.log"
    local line scope=""
    [[ $vm == rivet* ]] && scope=${MIPS_SCOPE:-}
    line=$(RIVET_STATS=1 measure "$@" --log "$logf" --tag "vm=$vm" --tag "workload=$w" --tag "label=$label" --tag "rep=$rep" \
        --tag "mips_scope=$scope" -- "${CMD[@]}") || { log "$w on $vm: helper failed"; return 0; }
    echo "$line" >>"$samples"
    local v; v=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("value") if d.get("value") is not None else "FAILED: " + d.get("error", "?"))' "$line")
    log "$w $vm rep $rep: $v"
}

both() {  # both WORKLOAD LABEL APPEND MEASURE-ARGS...  (rivet in each mode, then qemu, in each repetition)
    local w=$1 label=$2 append=$3; shift 3
    local extra_r=() extra_q=()
    case $w in smp) extra_r=(--smp 2); extra_q=(-smp 2) ;; esac
    for rep in $(seq 1 "$reps"); do
        for accel in "${ACCELS[@]}"; do
            set_accel "$accel"; set_rivet "$append" "${extra_r[@]}"; CMD=("${R[@]}")
            sample "$(rivet_vm "$accel")" "$w" "$label" "$rep" "$@"
        done
        set_qemu "$append" "${extra_q[@]}"; CMD=("${Q[@]}")
        sample qemu "$w" "$label" "$rep" "$@"
    done
}

con="console=ttyS0"
for w in "${workloads[@]}"; do
    log "workload $w"
    MIPS_SCOPE=""
    case $w in
        boot)
            both boot "boot to init marker" "$con" run --value marker --marker "RIVET-GUEST: init reached" --timeout 300 ;;
        poweroff)
            MIPS_SCOPE="whole run"
            both poweroff "boot to power-off (run=true)" "$con rivet.run=true" run --value exit --timeout 300 ;;
        smp)
            MIPS_SCOPE="whole run, 2 harts"
            both smp "SMP 2 harts boot to power-off" "$con rivet.run=true" run --value exit --timeout 300 ;;
        intloop|sha256|sort|nbody|memwalk|interp|lists|qsortcall)
            MIPS_SCOPE="whole run incl. boot"
            both "$w" "/bench/$w (guest-timed)" "$con rivet.run=/bench/$w" run --value bench --timeout 900 ;;
        disk)
            dd_cmd='s=$(cat,/proc/uptime);dd,if=/dev/zero,of=/dev/vda,bs=1M,count=64,conv=fsync;e=$(cat,/proc/uptime);echo,DDTIME,$s,$e'
            MIPS_SCOPE="whole run incl. boot"
            for rep in $(seq 1 "$reps"); do
                for accel in "${ACCELS[@]}"; do
                    rm -f "$work/disk-r.raw"; truncate -s 72M "$work/disk-r.raw"  # a fresh sparse disk each time
                    set_accel "$accel"; set_rivet "$con rivet.run=$dd_cmd" --drive "$work/disk-r.raw,format=raw"; CMD=("${R[@]}")
                    sample "$(rivet_vm "$accel")" disk "dd 64 MiB to virtio-blk (fsync)" "$rep" run --value dd --timeout 600
                done
                rm -f "$work/disk-q.raw"; truncate -s 72M "$work/disk-q.raw"
                set_qemu "$con rivet.run=$dd_cmd" -drive "file=$work/disk-q.raw,format=raw,if=none,id=d0" -device virtio-blk-device,drive=d0
                CMD=("${Q[@]}")
                sample qemu disk "dd 64 MiB to virtio-blk (fsync)" "$rep" run --value dd --timeout 600
            done
            rm -f "$work/disk-r.raw" "$work/disk-q.raw" ;;
        baremetal)
            log "building bench/baremetal (intmix, $baremetal_iters iterations)"
            elf=$("$here/baremetal/build.sh" "$work/baremetal" "$baremetal_iters")
            label="bare-metal intmix ($baremetal_iters it.)"
            MIPS_SCOPE="benchmark only"
            for rep in $(seq 1 "$reps"); do
                for accel in "${ACCELS[@]}"; do
                    set_accel "$accel"; CMD=("$RIVET" run-elf "${A[@]}" --max-instructions 100000000000 "$elf")
                    sample "$(rivet_vm "$accel")" baremetal "$label" "$rep" run --value exit --timeout 900
                done
                CMD=("$QEMU" -machine spike -bios none -nographic -kernel "$elf")
                sample qemu baremetal "$label" "$rep" run --value exit --timeout 900
            done ;;
        idle)
            # One sample each (a 10 s window is already an average).
            for accel in "${ACCELS[@]}"; do
                set_accel "$accel"; set_rivet "$con"; CMD=("${R[@]}")
                sample "$(rivet_vm "$accel")" idle "idle shell, host CPU" 1 idle --window 10 --settle 3
            done
            set_qemu "$con"; CMD=("${Q[@]}")
            sample qemu idle "idle shell, host CPU" 1 idle --window 10 --settle 3 ;;
    esac
done

python3 -c 'import json, os; print(json.dumps({"kind": "meta", "load_average_end": os.getloadavg()[0]}))' >>"$samples"
status=0
measure report "$samples" "$results/latest.json" || status=1
log "JSON: $results/latest.json"
exit $status
