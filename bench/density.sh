#!/usr/bin/env bash
# Density: N idle guests on this host, rivet next to qemu-system-riscv64 (see bench/density.py for what is
# measured and how). Writes bench/results/density.json and prints one JSON line per run.
#
# Usage: bench/density.sh [--quick] [--max]
#   default   rivet clones (--incoming file: of one snapshot) at N=10,50,100; rivet booted at N=10;
#             qemu booted at N=10 and -incoming exec:cat at N=10,50; rivet booted at N=10 with
#             --memory-merge on and host KSM turned on for the run (pages_sharing reported)
#   --quick   rivet clones and qemu -incoming at N=10 only
#   --max     also rivet clones at N=max (total PSS up to 8 GiB, MemAvailable kept above 4 GiB, at most
#             600 guests; the longest run, ~10 minutes)
# Environment: RIVET_BIN, RIVET_GUEST, QEMU, DENSITY_ARGS (extra density.py arguments, e.g. "--ksm --merge on").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v "${QEMU:-qemu-system-riscv64}" >/dev/null || { echo "density.sh: qemu-system-riscv64 is required (apt-get install qemu-system-misc)" >&2; exit 1; }
python3 -c 'import qemu.qmp' 2>/dev/null || { echo "density.sh: the qemu.qmp Python package is required (pip install qemu.qmp)" >&2; exit 1; }
quick=0 max=0
for a in "$@"; do
    case $a in
        --quick) quick=1 ;;
        --max) max=1 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "density.sh: unknown argument $a (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$here/results"
out="$here/results/density.json"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
extra=(${DENSITY_ARGS:-})
run() { python3 "$here/density.py" "${extra[@]}" "$@" --out "$tmp/$(date +%s%N).json"; }
if [ $quick = 1 ]; then
    run --vm rivet --mode clone --counts 10
    run --vm qemu --mode clone --counts 10
else
    run --vm rivet --mode clone --counts 10,50,100
    run --vm rivet --mode boot --counts 10
    run --vm qemu --mode boot --counts 10
    run --vm qemu --mode clone --counts 10,50
    # Same-page merging: KSM on for this run where the host allows it (back to its old setting after).
    run --vm rivet --mode boot --counts 10 --merge on --ksm
    if [ $max = 1 ]; then run --vm rivet --mode clone --counts max --budget-gib 8 --reserve-gib 4 --max-guests 600 --start-limit 600; fi
fi
python3 - "$out" "$tmp"/*.json <<'PY'
import json, sys
json.dump([r for f in sorted(sys.argv[2:]) for r in json.load(open(f))], open(sys.argv[1], "w"), indent=1)
PY
echo "density.sh: results in $out" >&2
