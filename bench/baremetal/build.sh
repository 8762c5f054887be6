#!/usr/bin/env bash
# Builds bench/baremetal/intmix.elf-style binaries: first the host reference (to learn the checksum),
# then the RV64 bare-metal ELF that checks its own result against it.
# Usage: build.sh OUTDIR [ITERATIONS]   -> prints OUTDIR/intmix.elf on stdout
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR [ITERATIONS]}
iters=${2:-1000}
[[ $iters =~ ^[1-9][0-9]{0,6}$ ]] || { echo "build.sh: ITERATIONS must be a positive integer below 10^7" >&2; exit 2; }
command -v riscv64-unknown-elf-gcc >/dev/null || { echo "build.sh: riscv64-unknown-elf-gcc missing (apt-get install gcc-riscv64-unknown-elf)" >&2; exit 1; }
command -v cc >/dev/null || { echo "build.sh: host C compiler missing (apt-get install gcc)" >&2; exit 1; }
mkdir -p "$out"
cc -O2 -std=c11 -Wall -Wextra -Werror -DHOST -DITERATIONS="$iters" -o "$out/intmix-host" "$src/intmix.c"
expected=$("$out/intmix-host")
riscv64-unknown-elf-gcc -O2 -std=c11 -Wall -Wextra -Werror -march=rv64gc -mabi=lp64d -mcmodel=medany \
    -ffreestanding -fno-tree-loop-distribute-patterns -nostdlib -nostartfiles -static \
    -DITERATIONS="$iters" -DEXPECTED="$expected" -T "$src/link.ld" \
    -o "$out/intmix.elf" "$src/start.S" "$src/intmix.c"
echo "$out/intmix.elf"
