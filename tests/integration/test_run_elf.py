"""`rivet run-elf`: exit codes of the HTIF tohost convention, the instruction limit, bad files, --trace."""
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RIVET = os.environ.get("RIVET_BIN", str(REPO / ".build/release/rivet"))

PROGRAM = r"""
    .section .text.init
    .globl _start
_start:
    li t0, %(value)s
    la t1, tohost
    sd t0, 0(t1)
1:  j 1b
    .section .tohost, "aw", @progbits
    .align 6
    .globl tohost
tohost: .dword 0
    .align 6
    .globl fromhost
fromhost: .dword 0
"""

LOOP = r"""
    .section .text.init
    .globl _start
_start:
    addi a0, a0, 1
    c.addi a1, 3
    j _start
    .section .tohost, "aw", @progbits
    .globl tohost
tohost: .dword 0
"""


def build(tmp_path, source, name="prog"):
    src = tmp_path / f"{name}.S"
    src.write_text(source)
    elf = tmp_path / f"{name}.elf"
    subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv64gc", "-mabi=lp64d", "-nostdlib", "-nostartfiles",
                    "-static", "-T", str(REPO / "tests/isa/link.ld"), "-o", str(elf), str(src)], check=True)
    return elf


def run(*args, timeout=30):
    return subprocess.run([RIVET, "run-elf", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_pass_exits_zero(tmp_path):
    r = run(build(tmp_path, PROGRAM % {"value": 1}))
    assert r.returncode == 0, r.stdout + r.stderr


def test_failure_names_the_case(tmp_path):
    r = run(build(tmp_path, PROGRAM % {"value": (7 << 1) | 1}))
    assert r.returncode == 1
    assert "FAIL: test 7" in r.stdout


def test_instruction_limit(tmp_path):
    r = run(build(tmp_path, LOOP), "--max-instructions", "1000")
    assert r.returncode == 2
    assert "1000" in r.stderr and "max-instructions" in r.stderr


def test_bad_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"\x7fELF" + b"\x00" * 10)
    r = run(bad)
    assert r.returncode == 3
    assert r.stderr.count("\n") == 1 and "bad.elf" in r.stderr
    r = run(tmp_path / "missing.elf")
    assert r.returncode == 3 and "missing.elf" in r.stderr


def test_trace_matches_objdump(tmp_path):
    elf = build(tmp_path, LOOP)
    r = run(elf, "--trace", "--max-instructions", "6")
    assert r.returncode == 2
    traced = [l for l in r.stdout.splitlines() if l.strip()]
    assert len(traced) == 6
    dump = subprocess.run(["riscv64-linux-gnu-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    # objdump prints branch targets with a <symbol> suffix; the trace prints the bare address.
    lines = {}
    for l in dump.splitlines():
        if l.startswith("    8") and ":" in l:
            lines[l.split(":")[0].strip()] = l.split(" <")[0].rstrip()
    for t in traced:
        addr = t.split(":")[0].strip()
        assert addr in lines, t
        mine = t.split(" <")[0].rstrip()
        assert mine == lines[addr], f"trace {t!r} != objdump {lines[addr]!r}"
