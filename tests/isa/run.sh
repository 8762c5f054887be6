#!/usr/bin/env bash
# Runs every ISA test ELF on Rivet: tests/isa/run.sh RIVET_BINARY
# Prints "PASS name" / "FAIL name (...)" per test, then "N passed, N failed"; exit 1 if any failed.
set -u
if [ $# -ne 1 ]; then
  echo "usage: $0 RIVET_BINARY" >&2
  exit 2
fi
rivet=$1
dir=$(cd "$(dirname "$0")" && pwd)
make -s -C "$dir" >/dev/null || { echo "build of ISA tests failed" >&2; exit 2; }
passed=0
failed=0
for elf in "$dir"/build/*.elf; do
  name=$(basename "$elf" .elf)
  out=$(timeout 120 "$rivet" run-elf "$elf" --max-instructions 50000000 2>&1)
  status=$?
  if [ $status -eq 0 ]; then
    echo "PASS $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name (exit $status): $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
