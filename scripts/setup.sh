#!/usr/bin/env bash
# Installs what Rivet's build, tests and default guest need on a Debian 12 machine (as root), then builds
# the default guest (cached outside the clone, keyed by its recipe; see docs/guest.md).
# Usage: scripts/setup.sh [--no-guest]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc-riscv64-unknown-elf gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu opensbi qemu-system-misc
          qemu-utils qemu-user device-tree-compiler gdb-multiarch e2fsprogs linux-source-6.1 bc flex bison
          libssl-dev libelf-dev cpio zlib1g-dev make python3-pip u-boot-qemu
          libslirp-dev libglib2.0-dev iproute2 binutils)   # libglib2.0-dev: slirp.pc requires glib-2.0; binutils: x86 objdump checks the JIT assembler
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
fi
python3 -c 'import pytest' 2>/dev/null || { echo "[setup] installing pytest" >&2; pip install -q pytest >&2; }
python3 -c 'import qemu.qmp' 2>/dev/null || { echo "[setup] installing qemu.qmp" >&2; pip install -q qemu.qmp >&2 || echo "[setup] warning: qemu.qmp not installed" >&2; }

if [ "${1:-}" != "--no-guest" ]; then
    echo "[setup] default guest (cached after the first build)" >&2
    bash guest/build.sh >/dev/null
fi
