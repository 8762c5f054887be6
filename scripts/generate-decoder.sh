#!/usr/bin/env bash
# Regenerates RivetCPU's decoder (Sources/RivetCPU/DecoderTable.swift) and CSR constants
# (Sources/RivetCPU/CSRNumbers.swift) from RivetISA's instruction and CSR tables. Run it after changing
# Sources/RivetISA/InstructionTable.swift or CSRTable.swift, and commit the result; the test
# `GeneratedSourcesTests` (RivetISATests) fails while the checked-in files are stale.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
swiftc -O -module-name RivetISAGenerator -o "$tmp/generate" "$repo"/Sources/RivetISA/*.swift "$repo/scripts/generate-decoder/main.swift"
"$tmp/generate" "$repo/Sources/RivetCPU"
