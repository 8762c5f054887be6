#!/usr/bin/env bash
# Runs every ISA test ELF on the oracle, QEMU's spike machine (HTIF tohost):
#   tests/isa/run-qemu.sh [QEMU_BINARY]
# It runs the build/qemu/ variant, built with -DQEMU_ORACLE: the few cases where QEMU 7.2 is
# known to differ from the specification (marked `#ifndef QEMU_ORACLE` in the sources, listed in
# README.md) are left out there and kept in the build/ ELFs that Rivet runs.
# -icount shift=0 makes cycle/instret count instructions exactly (zicntr needs it).
# QEMU exits with status n when the test writes (n << 1) | 1 to tohost, 0 for a pass.
set -u
qemu=${1:-qemu-system-riscv64}
dir=$(cd "$(dirname "$0")" && pwd)
make -s -C "$dir" qemu >/dev/null || { echo "build of ISA tests failed" >&2; exit 2; }
passed=0
failed=0
for elf in "$dir"/build/qemu/*.elf; do
  name=$(basename "$elf" .elf)
  timeout 60 "$qemu" -machine spike -bios none -nographic -monitor none -serial none -icount shift=0 \
    -kernel "$elf" >"$dir/build/qemu/$name.log" 2>&1
  status=$?
  if [ $status -eq 0 ]; then
    echo "PASS $name"
    passed=$((passed + 1))
  elif [ $status -eq 124 ]; then
    echo "FAIL $name (timeout: no tohost write)"
    failed=$((failed + 1))
  else
    echo "FAIL $name (case $status)"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
