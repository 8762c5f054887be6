"""The translator (--accel jit) against the interpreter (--accel interp): the same machine.

Both modes must produce byte-identical --icount runs (the same instructions retired between the same
interrupts), the translator must keep working when its code cache is tiny and flushed over and over, and the
command line must name a bad accelerator clearly. docs/translator.md describes what is checked here.
"""
import os
import platform
import re
import subprocess
from pathlib import Path

import pytest

from test_machine import append, MARKER

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="the translator targets x86-64 hosts")

# Work with calls, jump tables, loads/stores, M-extension ops, FP (callouts) and system calls, with timer
# interrupts arriving in the middle of it: everything block boundaries and interrupt points depend on.
WORKLOAD = "date;cat,/proc/uptime;/bench/sort,20000;/bench/intloop,200000;/bench/nbody,2000;cat,/proc/interrupts"


def run_mode(rivet_bin, mode, *args, env_extra=None, time_limit=120):
    env = dict(os.environ, RIVET_STATS="1", **(env_extra or {}))
    env.pop("RIVET_ACCEL", None)
    argv = [str(rivet_bin), "run", "--accel", mode, "--time-limit", str(time_limit), *map(str, args)]
    p = subprocess.run(argv, capture_output=True, env=env, timeout=time_limit + 30)
    return p


def instructions(stderr):
    m = re.search(rb"rivet: (\d+) instructions in", stderr)
    assert m, f"no RIVET_STATS line in stderr: {stderr[-2000:]!r}"
    return int(m.group(1))


def jit_line(stderr):
    m = re.search(rb"rivet: jit: (\d+) blocks compiled, (\d+) KiB of code.*?, (\d+) code-cache flushes", stderr)
    return m


@pytest.mark.parametrize("harts", [1, 2])
def test_icount_runs_are_identical_with_and_without_the_translator(rivet_bin, guest_dir, harts):
    runs = {}
    for mode in ("interp", "jit"):
        p = run_mode(rivet_bin, mode, "--icount", "--smp", harts, "--append", append(WORKLOAD))
        assert p.returncode == 0, f"{mode}: exit {p.returncode}\n{p.stdout[-3000:]!r}\n{p.stderr[-2000:]!r}"
        assert MARKER.encode() in p.stdout, p.stdout[-3000:]
        runs[mode] = p
    assert jit_line(runs["jit"].stderr), "the jit run compiled nothing"
    assert not jit_line(runs["interp"].stderr), "--accel interp must not compile"
    assert runs["jit"].stdout == runs["interp"].stdout, "console output differs between --accel jit and interp"
    assert instructions(runs["jit"].stderr) == instructions(runs["interp"].stderr)


def test_every_block_compiled_at_first_use_still_matches_the_interpreter(rivet_bin, guest_dir):
    """Threshold 0: boot code that runs once is translated too (the path the ISA tests also take in CI)."""
    base = run_mode(rivet_bin, "interp", "--icount", "--append", append(WORKLOAD))
    eager = run_mode(rivet_bin, "jit", "--icount", "--append", append(WORKLOAD), env_extra={"RIVET_JIT_THRESHOLD": "0"})
    assert base.returncode == 0 and eager.returncode == 0, eager.stderr[-2000:]
    assert eager.stdout == base.stdout
    assert instructions(eager.stderr) == instructions(base.stderr)


def test_a_tiny_code_cache_is_flushed_and_refilled_without_harm(rivet_bin, guest_dir):
    """64 KiB of code memory holds a few hundred blocks: booting Linux refills it many times over."""
    base = run_mode(rivet_bin, "interp", "--icount", "--append", append(WORKLOAD))
    small = run_mode(rivet_bin, "jit", "--icount", "--append", append(WORKLOAD), env_extra={"RIVET_JIT_CACHE_KB": "64"})
    assert small.returncode == 0, small.stderr[-2000:]
    m = jit_line(small.stderr)
    assert m, small.stderr[-2000:]
    assert int(m.group(3)) >= 20, f"expected many flushes of a 64 KiB code cache: {m.group(0)!r}"
    assert small.stdout == base.stdout
    assert instructions(small.stderr) == instructions(base.stderr)


def test_bad_accelerator_names_are_refused_with_one_line(rivet_bin, guest_dir, tmp_path):
    for argv in ([str(rivet_bin), "run", "--accel", "kvm"],
                 [str(rivet_bin), "run-elf", "--accel", "hvf", "/nonexistent.elf"],
                 [str(rivet_bin), "user", "--accel", "fast", "/bin/true"]):
        p = subprocess.run(argv, capture_output=True, timeout=30)
        assert p.returncode != 0
        lines = p.stderr.decode().strip().splitlines()
        assert any("unknown accelerator" in line for line in lines), p.stderr
    env = dict(os.environ, RIVET_ACCEL="turbo")
    p = subprocess.run([str(rivet_bin), "run", "--time-limit", "5"], capture_output=True, env=env, timeout=30)
    assert p.returncode != 0 and b"RIVET_ACCEL turbo: unknown accelerator" in p.stderr, p.stderr


def test_user_mode_programs_run_identically_in_both_modes(rivet_bin, tmp_path):
    """A forking, multi-threaded user program: same output, and the forked child compiles on its own."""
    src = tmp_path / "work.c"
    src.write_text(r'''
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static long fib(long n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
static void *worker(void *arg) { long n = (long)arg; return (void *)fib(n); }
int main(void) {
    pthread_t t[4]; long sum = 0;
    for (long i = 0; i < 4; i++) pthread_create(&t[i], 0, worker, (void *)(20 + i));
    for (int i = 0; i < 4; i++) { void *r; pthread_join(t[i], &r); sum += (long)r; }
    pid_t pid = fork();
    if (pid == 0) { printf("child %ld\n", fib(24)); fflush(stdout); _exit(3); }
    int st; waitpid(pid, &st, 0);
    printf("threads %ld child-exit %d parent %ld\n", sum, WEXITSTATUS(st), fib(23));
    return 0;
}
''')
    exe = tmp_path / "work"
    subprocess.run(["riscv64-linux-gnu-gcc", "-O2", "-static", "-pthread", "-o", str(exe), str(src)], check=True)
    outs = {}
    for mode in ("interp", "jit"):
        env = dict(os.environ, RIVET_JIT_THRESHOLD="2")
        p = subprocess.run([str(rivet_bin), "user", "--accel", mode, str(exe)], capture_output=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        outs[mode] = p.stdout
    assert outs["jit"] == outs["interp"]
    assert outs["jit"] == b"child 46368\nthreads 64079 child-exit 3 parent 28657\n"  # fib(20..23), fib(24), fib(23)


def test_double_arithmetic_agrees_with_qemu_in_both_modes(rivet_bin, tmp_path):
    """Inline D arithmetic (SSE/FMA with fix-ups) against the interpreter's and QEMU's: special operands
    (NaNs, infinities, zeros, subnormals, the smallest normals), exact and inexact results, every rounding
    mode, accrued flags read after each operation and cleared now and then (tests/user/fpmix.c)."""
    repo = Path(__file__).resolve().parents[2]
    exe = tmp_path / "fpmix"
    subprocess.run(["riscv64-linux-gnu-gcc", "-O2", "-static", "-o", str(exe), str(repo / "tests/user/fpmix.c")], check=True)
    oracle = subprocess.run(["qemu-riscv64", str(exe)], capture_output=True, timeout=120, check=True).stdout
    assert oracle.startswith(b"fpmix ") and b" invalid 0\n" not in oracle, oracle
    for mode, threshold in (("interp", "16"), ("jit", "16"), ("jit", "0")):
        env = dict(os.environ, RIVET_JIT_THRESHOLD=threshold)
        env.pop("RIVET_ACCEL", None)
        p = subprocess.run([str(rivet_bin), "user", "--accel", mode, str(exe)], capture_output=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stdout == oracle, (mode, threshold, p.stdout, oracle)


def test_self_modifying_loop_agrees_with_qemu_in_both_modes(rivet_bin, tmp_path):
    """Code patched between calls (with fence.i) after it was translated, including blocks compiled
    together into one unit and a one-block loop: every call runs the code as last written (tests/user/smcloop.c)."""
    repo = Path(__file__).resolve().parents[2]
    exe = tmp_path / "smcloop"
    subprocess.run(["riscv64-linux-gnu-gcc", "-O2", "-static", "-o", str(exe), str(repo / "tests/user/smcloop.c")], check=True)
    oracle = subprocess.run(["qemu-riscv64", str(exe)], capture_output=True, timeout=120, check=True).stdout
    assert oracle.startswith(b"smcloop "), oracle
    for mode, threshold in (("interp", "16"), ("jit", "16"), ("jit", "2"), ("jit", "0")):
        env = dict(os.environ, RIVET_JIT_THRESHOLD=threshold)
        env.pop("RIVET_ACCEL", None)
        p = subprocess.run([str(rivet_bin), "user", "--accel", mode, str(exe)], capture_output=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stdout == oracle, (mode, threshold, p.stdout, oracle)
