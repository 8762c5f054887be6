"""`rivet run-elf` HTIF: the console device (putchar/getchar answered through fromhost), riscv-pk's
write/exit syscalls, unknown commands, and spike's --signature file. The console programs are checked
against QEMU's spike machine, which implements the same HTIF console."""
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RIVET = os.environ.get("RIVET_BIN", str(REPO / ".build/release/rivet"))

MAILBOX = r"""
    .section .tohost, "aw", @progbits
    .align 6
    .globl tohost
tohost: .dword 0
    .size tohost, 8
    .align 6
    .globl fromhost
fromhost: .dword 0
    .size fromhost, 8
    .bss
    .align 4
    .skip 2048
stack_top:
"""

# riscv-pk's pattern: wait for tohost to be free, send a command, wait for the answer in fromhost.
HTIF_CALL = r"""
/* a0 = command; returns the answer (fromhost) in a0 */
htif_call:
    la t0, tohost
    la t1, fromhost
1:  ld t2, 0(t0)
    bnez t2, 1b
    sd a0, 0(t0)
2:  ld a0, 0(t1)
    beqz a0, 2b
    sd zero, 0(t1)
    ret
putchar:
    addi sp, sp, -16
    sd ra, 0(sp)
    li t3, (1 << 56) | (1 << 48)
    or a0, a0, t3
    call htif_call
    ld ra, 0(sp)
    addi sp, sp, 16
    ret
getchar:
    addi sp, sp, -16
    sd ra, 0(sp)
    li a0, (1 << 56)
    call htif_call
    ld ra, 0(sp)
    addi sp, sp, 16
    ret
exit:
    slli a0, a0, 1
    ori a0, a0, 1
    la t0, tohost
    sd a0, 0(t0)
1:  j 1b
"""

CONSOLE = r"""
    .section .text.init
    .globl _start
_start:
    la sp, stack_top
    la s0, message
1:  lbu a0, 0(s0)
    beqz a0, 2f
    call putchar
    /* the answer echoes the byte with 0x100 set, as on spike and QEMU */
    li t0, 0x01010000000001ff
    and a0, a0, t0
    li t0, 0x0101000000000100
    lbu t1, 0(s0)
    or t0, t0, t1
    bne a0, t0, 9f
    addi s0, s0, 1
    j 1b
2:  li a0, 0
    call exit
9:  li a0, 9
    call exit
""" + HTIF_CALL + r"""
    .data
message: .asciz "Hello from HTIF! 0123456789 ~!@#$%^&*()\n"
""" + MAILBOX

# Reads bytes until a newline, echoing each upper-cased; the answer must carry device 1, 0x100 and the byte.
ECHO = r"""
    .section .text.init
    .globl _start
_start:
    la sp, stack_top
1:  call getchar
    srli t0, a0, 56
    li t1, 1
    bne t0, t1, 9f
    andi t0, a0, 0x100
    beqz t0, 9f
    andi s0, a0, 0xff
    mv a0, s0
    li t0, 'a'
    bltu a0, t0, 2f
    li t0, 'z'
    bgtu a0, t0, 2f
    addi a0, a0, 'A' - 'a'
2:  call putchar
    li t0, '\n'
    bne s0, t0, 1b
    li a0, 0
    call exit
9:  li a0, 9
    call exit
""" + HTIF_CALL + MAILBOX

# riscv-pk's syscall proxy: tohost = address of [number, a0, a1, a2, ...]; fromhost = 1 when done.
SYSCALLS = r"""
    .section .text.init
    .globl _start
_start:
    la sp, stack_top
    li a0, 64; li a1, 1; la a2, out; li a3, 4
    call syscall
    li t0, 4; bne a0, t0, 8f
    li a0, 64; li a1, 2; la a2, err; li a3, 4
    call syscall
    li t0, 4; bne a0, t0, 8f
    li a0, 64; li a1, 5; la a2, out; li a3, 4     /* not stdout or stderr */
    call syscall
    li t0, -9; bne a0, t0, 8f
    li a0, 64; li a1, 1; li a2, 0x100; li a3, 4   /* buffer outside RAM */
    call syscall
    li t0, -14; bne a0, t0, 8f
    li a0, 1234; li a1, 0; li a2, 0; li a3, 0      /* unknown number */
    call syscall
    li t0, -38; bne a0, t0, 8f
    li a0, 93; li a1, EXIT_CODE; li a2, 0; li a3, 0
    call syscall
8:  li a0, 100
    call exit

syscall:
    la t3, magic
    sd a0, 0(t3)
    sd a1, 8(t3)
    sd a2, 16(t3)
    sd a3, 24(t3)
    fence
    la t0, tohost
    sd t3, 0(t0)
    la t1, fromhost
1:  ld t2, 0(t1)
    beqz t2, 1b
    sd zero, 0(t1)
    li t0, 1
    bne t2, t0, 8b
    ld a0, 0(t3)
    ret
exit:
    slli a0, a0, 1
    ori a0, a0, 1
    la t0, tohost
    sd a0, 0(t0)
1:  j 1b
    .data
    .align 6
magic: .skip 64
out: .ascii "out\n"
err: .ascii "err\n"
""" + MAILBOX

UNKNOWN_DEVICE = r"""
    .section .text.init
    .globl _start
_start:
    li a0, (7 << 56) | 42
    la t0, tohost
    sd a0, 0(t0)
1:  j 1b
""" + MAILBOX

# Five signature words; the program changes the third one before it exits with EXIT_VALUE in tohost.
SIGNATURE = r"""
    .section .text.init
    .globl _start
_start:
    la t0, begin_signature
    li t1, 0xcafef00d
    sw t1, 8(t0)
    li a0, EXIT_VALUE
    la t0, tohost
    sd a0, 0(t0)
1:  j 1b
    .data
    .align 4
    .globl begin_signature
begin_signature:
    .word 0x11223344, 0xdeadbeef, 0, 0x0badc0de, 0x00000007
    .globl end_signature
end_signature:
""" + MAILBOX


def build(tmp_path, source, name="prog", defines=()):
    src = tmp_path / f"{name}.S"
    src.write_text(source)
    elf = tmp_path / f"{name}.elf"
    subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv64gc", "-mabi=lp64d", "-nostdlib", "-nostartfiles",
                    "-static", *[f"-D{d}" for d in defines], "-T", str(REPO / "tests/isa/link.ld"),
                    "-o", str(elf), str(src)], check=True)
    return elf


def rivet(*args, stdin=b"", timeout=30):
    return subprocess.run([RIVET, "run-elf", *map(str, args)], input=stdin, capture_output=True, timeout=timeout)


def qemu_spike(elf, stdin=b""):
    """The oracle: QEMU's spike machine with its HTIF console on stdio."""
    return subprocess.run(["qemu-system-riscv64", "-machine", "spike", "-bios", "none", "-nographic",
                           "-monitor", "none", "-kernel", str(elf)], input=stdin, capture_output=True, timeout=30)


def test_console_output_matches_qemu(tmp_path):
    elf = build(tmp_path, CONSOLE)
    r = rivet(elf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == b"Hello from HTIF! 0123456789 ~!@#$%^&*()\n"
    q = qemu_spike(elf)
    assert q.returncode == 0 and q.stdout == r.stdout, q


def test_console_input_is_read_byte_by_byte(tmp_path):
    elf = build(tmp_path, ECHO)
    r = rivet(elf, stdin=b"hello, World 42\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == b"HELLO, WORLD 42\n"


def test_console_waits_for_input_and_stops_at_the_limit_without_it(tmp_path):
    # No input ever comes (stdin at end of file): getchar gets no answer, as on spike; the instruction
    # limit ends the run and what was typed before is not lost.
    elf = build(tmp_path, ECHO)
    r = rivet(elf, "--max-instructions", "2000000", stdin=b"ab")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == b"AB"


def test_riscv_pk_syscalls_write_and_exit(tmp_path):
    elf = build(tmp_path, SYSCALLS, defines=["EXIT_CODE=0"])
    r = rivet(elf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == b"out\n" and r.stderr == b"err\n"
    elf = build(tmp_path, SYSCALLS, name="exit7", defines=["EXIT_CODE=7"])
    r = rivet(elf)
    assert r.returncode == 1 and r.stdout == b"out\nFAIL: test 7\n", r.stdout + r.stderr


def test_unknown_htif_device_is_a_clear_error(tmp_path):
    r = rivet(build(tmp_path, UNKNOWN_DEVICE))
    assert r.returncode == 3
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "unknown HTIF command" in err and "device 7" in err


FLOOD = r"""
    .section .text.init
    .globl _start
_start:
    li a0, (1 << 56) | (1 << 48) | 'x'
    la t0, tohost
1:  sd a0, 0(t0)        /* never waits, never reads fromhost */
    j 1b
""" + MAILBOX

BAD_SYSCALL_BLOCK = r"""
    .section .text.init
    .globl _start
_start:
    li a0, 0x100         /* an even payload: the address of a syscall block, here outside RAM */
    la t0, tohost
    sd a0, 0(t0)
1:  j 1b
""" + MAILBOX


def test_a_guest_that_never_reads_answers_is_held_back(tmp_path):
    # Commands stay in tohost once a few answers wait uncollected, so the host keeps nothing unbounded.
    r = rivet(build(tmp_path, FLOOD), "--max-instructions", "5000000")
    assert r.returncode == 2, r.stdout + r.stderr
    assert 0 < len(r.stdout) <= 32 and set(r.stdout) == {ord("x")}


def test_syscall_block_outside_ram_is_a_clear_error(tmp_path):
    r = rivet(build(tmp_path, BAD_SYSCALL_BLOCK))
    assert r.returncode == 3
    assert r.stderr == b"rivet: HTIF syscall block at 0x100 is outside RAM\n"


@pytest.mark.parametrize("granularity,expected", [
    (4, "11223344\ndeadbeef\ncafef00d\n0badc0de\n00000007\n"),
    (8, "deadbeef11223344\n0badc0decafef00d\n0000000000000007\n"),
])
def test_signature_file_in_spike_format(tmp_path, granularity, expected):
    elf = build(tmp_path, SIGNATURE, defines=["EXIT_VALUE=1"])
    sig = tmp_path / "sig.txt"
    sig.write_text("stale\n")
    r = rivet(elf, "--signature", sig, "--signature-granularity", granularity)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sig.read_text() == expected
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("sig")) == ["sig.txt"]


def test_signature_is_written_when_the_program_fails_but_not_when_it_never_ends(tmp_path):
    elf = build(tmp_path, SIGNATURE, defines=["EXIT_VALUE=7"])
    sig = tmp_path / "sig.txt"
    r = rivet(elf, "--signature", sig)
    assert r.returncode == 1 and b"FAIL: test 3" in r.stdout
    assert sig.read_text().splitlines()[2] == "cafef00d"
    sig.unlink()
    r = rivet(elf, "--signature", sig, "--max-instructions", "2")
    assert r.returncode == 2 and not sig.exists()


def test_signature_errors(tmp_path):
    elf = build(tmp_path, CONSOLE)
    r = rivet(elf, "--signature", tmp_path / "sig.txt")
    assert r.returncode == 3 and b"begin_signature" in r.stderr and r.stderr.count(b"\n") == 1
    assert not (tmp_path / "sig.txt").exists()
    r = rivet(elf, "--signature", tmp_path / "sig.txt", "--signature-granularity", "5")
    assert r.returncode == 64 and b"4 or 8" in r.stderr
