"""CPU behaviour seen from inside the Linux guest: self-modifying code and FP/integer programs agree with QEMU."""
import os
import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[2]
RIVET = os.environ.get("RIVET_BIN", str(REPO / ".build/release/rivet"))


def boot(command, *extra, timeout=120):
    r = subprocess.run([RIVET, "run", "--time-limit", str(timeout - 10), *extra,
                        "--append", f"console=ttyS0 rivet.run={command}"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    return r.stdout


def test_self_modifying_code_in_linux():
    # /bench/smc writes code into an executable mapping, flushes the icache, runs it, rewrites it, runs again.
    out = boot("/bench/smc")
    assert "SMC OK" in out, out[-2000:]


def test_self_modifying_code_on_several_harts():
    out = boot("/bench/smc", "--smp", "2")
    assert "SMC OK" in out, out[-2000:]


def test_guest_programs_compute_the_same_results_as_on_qemu():
    # The benchmark programs print a checksum of their work; small sizes keep this quick.
    out = boot("/bench/sha256,1;/bench/nbody,2000;/bench/sort,100000")
    got = sorted(l.split()[1] + " " + l.split()[3] for l in out.splitlines() if l.startswith("BENCH "))
    assert len(got) == 3, out[-2000:]
    guest = pathlib.Path(os.environ.get("RIVET_GUEST", pathlib.Path(os.environ.get("RIVET_CACHE", pathlib.Path.home() / ".cache/rivet")) / "guest-default"))
    q = subprocess.run(["qemu-system-riscv64", "-machine", "virt", "-m", "256M", "-nographic",
                        "-bios", "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin",
                        "-kernel", str(guest / "Image"), "-initrd", str(guest / "initramfs.cpio.gz"),
                        "-append", "console=ttyS0 rivet.run=/bench/sha256,1;/bench/nbody,2000;/bench/sort,100000"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    want = sorted(l.split()[1] + " " + l.split()[3] for l in q.stdout.splitlines() if l.startswith("BENCH "))
    assert got == want
