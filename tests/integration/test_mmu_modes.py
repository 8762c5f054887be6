"""`--cpu rv64,mmu=sv39|sv48|sv57`: satp accepts exactly the modes up to the chosen one (a wider one reads
back unchanged, which is how Linux probes), the device tree says the same, and Linux boots in that mode."""
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

# Probes satp like Linux (Sv57, Sv48, Sv39 in turn, from satp = 0) and prints, through the HTIF console,
# Y when the mode was taken, N when satp kept its old value, X otherwise.
SATP_PROBE = r"""
    .section .text.init
    .globl _start
_start:
    li s0, 10
1:  csrw satp, zero
    slli t0, s0, 60
    li t1, 0x80123
    or s1, t0, t1
    csrw satp, s1
    csrr t2, satp
    li a0, 'Y'
    beq t2, s1, 2f
    li a0, 'N'
    beqz t2, 2f
    li a0, 'X'
2:  call putchar
    addi s0, s0, -1
    li t0, 8
    bgeu s0, t0, 1b
    csrw satp, zero
    li a0, '\n'
    call putchar
    li a0, 1
    la t0, tohost
    sd a0, 0(t0)
3:  j 3b
putchar:
    la t0, tohost
    la t1, fromhost
    li t2, (1 << 56) | (1 << 48)
    or a0, a0, t2
    sd a0, 0(t0)
1:  ld t2, 0(t1)
    beqz t2, 1b
    sd zero, 0(t1)
    ret
    .section .tohost, "aw", @progbits
    .align 6
    .globl tohost
tohost: .dword 0
    .align 6
    .globl fromhost
fromhost: .dword 0
"""

EXPECTED_PROBE = {"sv39": "NNY", "sv48": "NYY", "sv57": "YYY"}


@pytest.fixture(scope="module")
def probe_elf(tmp_path_factory):
    d = tmp_path_factory.mktemp("satp")
    (d / "probe.S").write_text(SATP_PROBE)
    subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv64gc", "-mabi=lp64d", "-nostdlib", "-nostartfiles",
                    "-static", "-T", str(REPO / "tests/isa/link.ld"), "-o", str(d / "probe.elf"), str(d / "probe.S")],
                   check=True)
    return d / "probe.elf"


@pytest.mark.parametrize("mode", ["sv39", "sv48", "sv57", None])
def test_satp_takes_only_the_supported_modes(rivet_bin, probe_elf, mode):
    args = [str(rivet_bin), "run-elf", str(probe_elf)] + (["--cpu", f"rv64,mmu={mode}"] if mode else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == EXPECTED_PROBE[mode or "sv57"] + "\n"


@pytest.mark.parametrize("mode", ["sv39", "sv48", "sv57"])
def test_linux_runs_in_the_chosen_mode_and_the_device_tree_agrees(rivet_run, guest_dir, tmp_path, mode):
    dtb = tmp_path / "virt.dtb"
    r = rivet_run("--cpu", f"rv64,mmu={mode}", "--dtb-out", dtb,
                  "--append", "console=ttyS0 rivet.run=cat,/proc/cpuinfo", time_limit=60)
    assert r.returncode == 0, r.describe()
    mmu_lines = [line.split(":", 1)[1].strip() for line in r.stdout.splitlines() if line.startswith("mmu")]
    assert mmu_lines == [mode], r.describe()
    isa_lines = [line.split(":", 1)[1].strip() for line in r.stdout.splitlines() if line.startswith("isa")]
    assert isa_lines and isa_lines[0].startswith("rv64imafdc"), r.describe()
    dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True, text=True, check=True).stdout
    assert f'mmu-type = "riscv,{mode}";' in dts
    assert dts.count("mmu-type") == 1


@pytest.mark.parametrize("bad,message", [
    ("rv64,mmu=sv32", "unknown MMU mode 'sv32'"),
    ("rv32", "unknown CPU model 'rv32'"),
    ("rv64,vlen=128", "unknown option 'vlen=128'"),
])
def test_bad_cpu_option_is_a_one_line_error(rivet_run, guest_dir, bad, message):
    r = rivet_run("--cpu", bad, time_limit=10)
    assert r.returncode == 1 and message in r.stderr and r.stderr.count("\n") == 1, r.describe()
