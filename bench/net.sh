#!/usr/bin/env bash
# Network benchmark: TCP throughput host->guest and guest->host, and HTTP request latency, Rivet vs
# qemu-system-riscv64 (TCG), both with user-mode networking (libslirp) and the same default guest, in the
# same run (interleaved). See bench/net.py for what is timed.
# Usage: bench/net.sh [--reps N] [--mib M] [--requests R]
# Environment: RIVET_BIN, RIVET_GUEST (default: the cached default guest), QEMU.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${RIVET_GUEST:-}" ]; then
    guest=$RIVET_GUEST
else
    guest=$(bash "$here/../guest/build.sh")
fi
exec python3 "$here/net.py" --guest "$guest" "$@"
