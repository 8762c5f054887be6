#!/usr/bin/env bash
# Live migration over loopback TCP: total time, downtime and bytes sent for an idle guest and for the
# abwalk A-B workload, rivet next to qemu-system-riscv64 (QEMU 7.2, `migrate tcp:` between two processes)
# in the same run, same guest, bandwidth limit and downtime limit. See bench/migrate.py.
#
# Usage: bench/migrate.sh [OUT.json]     (RIVET_BIN, RIVET_GUEST, BANDWIDTH, REPEAT override)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
command -v qemu-system-riscv64 >/dev/null || { echo "qemu-system-riscv64 is required (apt-get install qemu-system-misc)" >&2; exit 1; }
python3 -c 'import qemu.qmp' 2>/dev/null || { echo "the qemu.qmp Python package is required (pip install qemu.qmp)" >&2; exit 1; }
exec python3 "$here/bench/migrate.py" "$@"
