#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for SECONDS (default 10) from the committed seed corpus.
# New corpus entries go to a scratch directory (the committed seeds stay small); crashing inputs are kept
# in $FUZZ_ARTIFACTS (default: a scratch directory) and make the script fail.
# Usage: Fuzz/run.sh [SECONDS] [TARGET...]   (targets: qcow2 elf devicetree virtio sizes)
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-10}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(qcow2 elf devicetree virtio sizes)

echo "== fuzz: build (release, -sanitize=fuzzer)" >&2
swift build -c release --sanitize=fuzzer 2>&1 | tail -n 1 >&2
bin=$(swift build -c release --sanitize=fuzzer --show-bin-path)

scratch=$(mktemp -d /tmp/rivet-fuzz.XXXXXX)
# The image files the targets write each run live in memory: on ext4, rewriting a file flushes it on close.
files=$(mktemp -d /dev/shm/rivet-fuzz.XXXXXX 2>/dev/null || mktemp -d /tmp/rivet-fuzz-files.XXXXXX)
trap 'rm -rf "$files"' EXIT
artifacts=${FUZZ_ARTIFACTS:-$scratch/artifacts}
mkdir -p "$artifacts"
status=0
for t in "${targets[@]}"; do
    case $t in
        qcow2) exe=FuzzQcow2; maxlen=65536 ;;
        elf) exe=FuzzELF; maxlen=16384 ;;
        devicetree) exe=FuzzDeviceTree; maxlen=4096 ;;
        virtio) exe=FuzzVirtio; maxlen=4096 ;;
        sizes) exe=FuzzSizes; maxlen=64 ;;
        *) echo "unknown target $t" >&2; exit 64 ;;
    esac
    work=$scratch/corpus-$t
    mkdir -p "$work"
    cp Corpus/$t/* "$work"/
    log=$scratch/$t.log
    if TMPDIR=$files "$bin/$exe" "$work" -max_total_time="$seconds" -max_len=$maxlen -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/$t-" -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=CRASH; status=1
    fi
    runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    echo "fuzz $t: $result, $runs executions in ${seconds}s, $cov, corpus $(ls "$work" | wc -l) inputs" >&2
    if [ $result != ok ]; then
        grep -E 'Fatal error|ERROR: libFuzzer|SUMMARY|fuzz oracle|artifact' "$log" | head -n 8 >&2 || true
        echo "   log: $log; crashing input in $artifacts" >&2
    fi
done
[ $status -ne 0 ] || rm -rf "$scratch"
exit $status
