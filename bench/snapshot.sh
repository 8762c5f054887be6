#!/usr/bin/env bash
# Snapshot size, save time, restore-to-first-output and cold boot to the same point (the shell answering
# `echo`), rivet next to qemu-system-riscv64 in the same run (QEMU: migrate "exec:cat > F" and
# -incoming "exec:cat F"). See bench/snapshot.py for what each number measures.
#
# Usage: bench/snapshot.sh [OUT.json]     (RIVET_BIN, RIVET_GUEST, REPEAT override)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
command -v qemu-system-riscv64 >/dev/null || { echo "qemu-system-riscv64 is required (apt-get install qemu-system-misc)" >&2; exit 1; }
python3 -c 'import qemu.qmp' 2>/dev/null || { echo "the qemu.qmp Python package is required (pip install qemu.qmp)" >&2; exit 1; }
exec python3 "$here/bench/snapshot.py" "$@"
