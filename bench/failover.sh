#!/usr/bin/env bash
# Failover costs on loopback: guest slowdown of intloop (CPU-bound), memwalk and abwalk (memory-writing)
# while replicating at checkpoint periods 20, 50 and 200 ms, checkpoint sizes, and takeover time
# (primary killed to the standby's first console byte). See bench/failover.py and docs/failover.md.
#
# Usage: bench/failover.sh [OUT.json]       (RIVET_BIN, RIVET_GUEST, REPEAT, PERIODS, TAKEOVERS override)
#        bench/failover.sh --soak N         the kill -9 test of tests/integration/test_failover.py, N trials
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
exec python3 "$here/bench/failover.py" "$@"
